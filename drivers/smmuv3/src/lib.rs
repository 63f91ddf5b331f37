// SPDX-License-Identifier: GPL-2.0
//! Portable Arm SMMUv3 driver core.
//!
//! Everything here is plain `core` code over two small traits ([`dma::DmaAllocator`] for memory the
//! SMMU reads and writes, [`dma::Mmio`] for its register page), so the same files compile into the
//! kernel (through the `rust/` overlay) and into host tests that drive QEMU's SMMUv3 or a model.
//!
//! The crate root only holds crate-level attributes: the kernel build includes `smmuv3/mod.rs`
//! as a module of its own crate, so no module may rely on being the root. Portable code says
//! `super::`, never `crate::`.
#![cfg_attr(not(test), no_std)]

mod smmuv3;
pub use smmuv3::*;
