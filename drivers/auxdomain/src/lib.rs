// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains over the portable SMMUv3 core (see `docs/auxdomain.md`).
//!
//! Portable (`core` only, see `docs/portable-code.md`): the code lives in `src/auxdomain/` and
//! reaches the driver core as `super::smmuv3`, a sibling module in the kernel build and the
//! re-exported crate here.
#![cfg_attr(not(test), no_std)]

pub use ::smmuv3;

mod auxdomain;
pub use auxdomain::*;
