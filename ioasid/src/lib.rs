// SPDX-License-Identifier: GPL-2.0
//! Portable I/O ASID (PASID) allocator core.
//!
//! The crate root only holds crate-level attributes: the kernel build includes `ioasid/mod.rs`
//! as a module of its own crate. See the module documentation for the API and
//! `docs/ioasid.md` for the semantics.
#![cfg_attr(not(test), no_std)]

mod ioasid;
pub use ioasid::*;
