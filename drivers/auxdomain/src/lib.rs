// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains over the portable SMMUv3 core (see `docs/auxdomain.md`).
//!
//! Portable (`core` only, see `docs/portable-code.md`): the code lives in `src/auxdomain/` and
//! reaches the driver core as `super::smmuv3`, a sibling module in the kernel build and the
//! re-exported crate here.
#![cfg_attr(not(test), no_std)]
// The kernel crate's unsafe lints (6.12's `rust_common_flags`), so that host builds check the
// code that the kernel compiles under them too (`docs/portable-code.md`, "Lints").
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::unnecessary_safety_comment,
    clippy::unnecessary_safety_doc
)]

pub use ::smmuv3;

mod auxdomain;
pub use auxdomain::*;
