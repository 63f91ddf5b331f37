// SPDX-License-Identifier: GPL-2.0
//! Portable I/O ASID (PASID) allocator core.
//!
//! The crate root only holds crate-level attributes: the kernel build includes `ioasid/mod.rs`
//! as a module of its own crate. See the module documentation for the API and
//! `docs/ioasid.md` for the semantics.
#![cfg_attr(not(test), no_std)]
// The kernel crate's unsafe lints (6.12's `rust_common_flags`), so that host builds check the
// code that the kernel compiles under them too (`docs/portable-code.md`, "Lints").
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::unnecessary_safety_comment,
    clippy::unnecessary_safety_doc
)]

mod ioasid;
pub use ioasid::*;
