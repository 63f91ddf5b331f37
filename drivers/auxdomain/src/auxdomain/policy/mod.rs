// SPDX-License-Identifier: GPL-2.0
//! The backend-independent half of the auxiliary-domain layer: what an auxiliary domain
//! promises whatever translates its DMA.
//!
//! An [`AuxPolicy`] keeps a domain's (device, PASID) attachments, its reserved MSI window and
//! refcounted doorbell bindings, the active MSI sources and the one-way no-snoop switch, and
//! takes every decision those need (errors included). [`AuxDomain`] is the one auxiliary
//! domain: the policy over a backend ([`AuxBackend`], [`Attach`], [`Invalidate`],
//! [`Coherency`]) that owns the page table, the invalidations and the attachments in hardware:
//!
//! - the project's SMMUv3 driver core (`super::SmmuBackend`, proven on the SMMUv3 model);
//! - the kernel's IOMMU API (`kernel::auxdomain`, over 6.12's paging domains and
//!   `iommu_attach_device_pasid`).
//!
//! Both builds compile these very files (`docs/portable-code.md`); this module refers to
//! nothing outside itself but `super::Prot`, the project's one `Prot`, which each includer
//! provides: `smmuv3::prot::Prot` on the host (the crate this one depends on), the kernel
//! crate's `kernel::iommu::Prot` (the same file, entered through the overlay) in the kernel.

#[warn(missing_docs)]
pub mod domain;
#[warn(missing_docs)]
pub mod error;
#[warn(missing_docs)]
pub mod pasid;
#[warn(missing_docs)]
pub mod state;
#[warn(missing_docs)]
pub mod types;

pub use super::Prot;
pub use domain::{Attach, AuxBackend, AuxDomain, Coherency, DeviceFacts, DeviceId, Invalidate};
pub use error::{BackendError, Error, Unsupported};
pub use pasid::{usable_pasid_range, PasidLimits};
pub use state::{Attachment, AuxPolicy, Mapper, Translation};
pub use types::{
    DoorbellInfo, MsiSource, MsiWindow, ReservedKind, ReservedRegion, Teardown, MAX_ATTACH,
    MAX_DOORBELLS, MAX_VECTORS, SW_MSI_BASE, SW_MSI_SIZE,
};
