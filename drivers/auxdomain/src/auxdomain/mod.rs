// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains over the portable SMMUv3 core: PASID enablement, stage-1 domains attached
//! at (device, PASID) pairs, MSI doorbells per domain, and the no-snoop policy.
//! See `docs/auxdomain.md`.

use super::smmuv3;

#[warn(missing_docs)]
pub mod device;
#[warn(missing_docs)]
pub mod domain;
#[warn(missing_docs)]
pub mod error;

pub use device::{AuxDevice, DeviceInfo, PasidCap, RidMode};
pub use domain::{
    AuxDomain, DoorbellInfo, MsiSource, MsiWindow, NoSnoopControl, ReservedKind, ReservedRegion,
    SnoopControl, Teardown, MAX_ATTACH, MAX_DOORBELLS, MAX_VECTORS, SW_MSI_BASE, SW_MSI_SIZE,
};
pub use error::{Error, Result, Unsupported};
