// SPDX-License-Identifier: GPL-2.0
//! Which PASIDs a device may use: its PCIe PASID capability, the IOMMU's PASID bits and the
//! driver's own range, combined once when PASIDs are enabled.

use super::error::{Error, Unsupported};

/// What is known about a device's PASIDs before they are enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasidLimits {
    /// Max PASID Width of the device's PASID capability (`None` or 0: no capability).
    pub device_bits: Option<u32>,
    /// PASID bits the IOMMU offers the device (SMMU: SSIDSIZE, capped by the CD table format;
    /// Linux: `ilog2(dev->iommu->max_pasids)`); 0 when it has none.
    pub iommu_bits: u32,
    /// Smallest PASID the driver accepts (raised to 1: PASID 0 is the requester-ID context).
    pub min_pasid: u32,
    /// Largest PASID the driver accepts.
    pub max_pasid: u32,
}

/// Checks both capabilities (`EOPNOTSUPP` naming the missing one, so nothing is ever
/// programmed for a device that cannot use PASIDs) and returns the usable bits and range
/// `[max(min_pasid, 1), min(max_pasid, 2^bits - 1)]` (`EINVAL` if empty). PASIDs are at most
/// 20 bits wide (PCIe).
pub fn usable_pasid_range<B>(l: &PasidLimits) -> Result<(u32, u32, u32), Error<B>> {
    let dev_bits = match l.device_bits {
        Some(b) if b > 0 => b,
        _ => return Err(Error::Unsupported(Unsupported::DevicePasid)),
    };
    if l.iommu_bits == 0 {
        return Err(Error::Unsupported(Unsupported::IommuPasid));
    }
    let bits = dev_bits.min(l.iommu_bits).min(20);
    if bits == 0 {
        return Err(Error::Unsupported(Unsupported::NoPasidBits));
    }
    let min = l.min_pasid.max(1);
    let max = l.max_pasid.min((1u32 << bits) - 1);
    if min > max {
        return Err(Error::InvalidPasid);
    }
    Ok((bits, min, max))
}
