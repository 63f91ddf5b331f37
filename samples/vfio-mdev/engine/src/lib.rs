// SPDX-License-Identifier: GPL-2.0
//! The sample's virtual copy engine rules (see `docs/sample-mdev.md`). Portable (`core` only,
//! see `docs/portable-code.md`): the kernel sample includes `src/copy_engine/mod.rs`.
#![cfg_attr(not(test), no_std)]

mod copy_engine;
pub use copy_engine::*;
