// SPDX-License-Identifier: GPL-2.0
//! A software Arm SMMUv3 with SubstreamIDs, and a PCIe DMA device model, for host tests.
//!
//! The model is written from the SMMUv3 architecture specification (IHI 0070) and shares no
//! field definitions with the driver it checks: only the [`smmuv3::dma::Mmio`] plumbing trait
//! (implemented by [`SmmuModel`]) and the simulated physical memory ([`physmem::PhysMem`]).
//! Where the spec leaves a choice, it follows QEMU's hw/arm/smmuv3.c so that scenario runs on
//! the model and on QEMU can be compared record for record; see `docs/smmu-model.md`.

pub mod spec;

mod cache;
mod config;
mod device;
mod smmu;
mod types;
mod walk;

pub use device::*;
pub use smmu::SmmuModel;
pub use types::*;
pub use walk::Perms;
