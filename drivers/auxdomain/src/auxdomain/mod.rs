// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains over the portable SMMUv3 core: PASID enablement, stage-1 domains attached
//! at (device, PASID) pairs, MSI doorbells per domain, and the no-snoop policy.
//! See `docs/auxdomain.md`.

use super::smmuv3;
/// The one `Prot` (`smmuv3::prot`), also the policy's (`policy` refers to it as `super::Prot`).
pub use smmuv3::prot::Prot;

#[warn(missing_docs)]
pub mod policy;

#[warn(missing_docs)]
pub mod device;
#[warn(missing_docs)]
pub mod domain;
#[warn(missing_docs)]
pub mod error;

pub use device::{AuxDevice, DeviceInfo, PasidCap, RidMode};
pub use domain::{AuxDomain, NoSnoopControl, SmmuBackend, SmmuDev, SmmuTarget, SnoopControl};
pub use error::{Error, Result, Unsupported};
pub use policy::{
    AuxPolicy, DoorbellInfo, MsiSource, MsiWindow, ReservedKind, ReservedRegion, Teardown,
    MAX_ATTACH, MAX_DOORBELLS, MAX_VECTORS, SW_MSI_BASE, SW_MSI_SIZE,
};
