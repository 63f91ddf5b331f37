// SPDX-License-Identifier: GPL-2.0
//! QEMU's edu register map (see `src/edu_regs/mod.rs`). Portable (`core` only, see
//! `docs/portable-code.md`): kernel code includes `src/edu_regs/mod.rs` with `#[path]`.
#![cfg_attr(not(test), no_std)]

mod edu_regs;
pub use edu_regs::*;
