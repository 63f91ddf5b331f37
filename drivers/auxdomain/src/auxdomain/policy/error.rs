// SPDX-License-Identifier: GPL-2.0
//! Errors of the auxiliary-domain layer, each with the errno the kernel returns for it.
//!
//! The layer's own refusals are variants here; what the backend (page table, command queue,
//! IOMMU API) reports travels unchanged in [`Error::Backend`] with its own errno.

/// What a backend's errors must tell the layer: an errno and a line for the log.
pub trait BackendError: Copy + core::fmt::Debug + PartialEq + Eq {
    /// The positive errno value.
    fn errno(&self) -> i32;
    /// A short description for the kernel log line.
    fn describe(&self) -> &'static str;
}

/// Why PASID support is refused ([`Error::Unsupported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// The device has no PCIe PASID capability, or its Max PASID Width is 0.
    DevicePasid,
    /// The IOMMU has no PASID support for the device (SMMU_IDR1.SSIDSIZE == 0, as QEMU 10.0's
    /// SMMUv3; or the IOMMU driver reports no PASIDs).
    IommuPasid,
    /// No PASID bits are left after combining the device's and the IOMMU's limits.
    NoPasidBits,
}

/// Errors returned by the auxiliary-domain layer; `B` is the backend's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<B> {
    /// PASIDs cannot be used on this device/IOMMU pair. `EOPNOTSUPP`. Never reported as
    /// success.
    Unsupported(Unsupported),
    /// PASIDs were not enabled on the device. `EOPNOTSUPP`.
    PasidDisabled,
    /// PASID 0 (the requester-ID context), or a PASID outside the device's
    /// `[min_pasid, max_pasid]` or beyond its PASID bits. `EINVAL`.
    InvalidPasid,
    /// Another domain is attached at this PASID of the device. `EBUSY`.
    PasidInUse,
    /// This domain is already attached at this (device, PASID), or this MSI source is already
    /// active. `EEXIST`.
    AlreadyAttached,
    /// The domain is not attached at this (device, PASID), or the MSI source is not active.
    /// `ENOENT`.
    NotAttached,
    /// The object is still in use: freeing a domain with attachments, disabling PASIDs with
    /// domains attached, replacing a requester-ID domain that is attached. `EBUSY`.
    StillAttached,
    /// A fixed-size table of the layer is full (attachments, doorbells, vectors, MSI window
    /// slots). `ENOSPC`.
    NoSpace,
    /// The IOVA range overlaps the reserved MSI window (maps and unmaps of user memory there
    /// are refused; the window is reported as a reserved region). `EADDRINUSE`, like iommufd
    /// for reserved ranges.
    ReservedIova,
    /// The unmap would remove a user-specified MSI doorbell mapping. `EBUSY`.
    DoorbellInUse,
    /// A user-specified MSI IOVA is bound to a different doorbell page already. `EBUSY`.
    DoorbellConflict,
    /// A user-specified MSI IOVA outside the window overlaps an existing mapping. `EEXIST`.
    MsiIovaMapped,
    /// The MSI source cannot use this domain: requester-ID (PCIe MSI/MSI-X) messages must be
    /// mapped in the device's requester-ID domain, PASID-tagged queue messages in the domain
    /// attached at that PASID. `EINVAL`.
    MsiRoute,
    /// A device that cannot have No_snoop stripped is attached to (or would be attached to) a
    /// domain enforcing cache coherency. `EINVAL`, like iommufd's enforce_cc failure.
    CoherencyUnsupported,
    /// `enforce_cache_coherency` after the domain's first mapping (VFIO's rule). `EBUSY`.
    CoherencyAfterMap,
    /// Malformed argument (window geometry, alignment, empty SID list). `EINVAL`.
    InvalidArgument,
    /// The backend's error, with its own errno.
    Backend(B),
}

impl<B: BackendError> Error<B> {
    /// The positive errno value the kernel returns (negated) for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Self::Unsupported(_) | Self::PasidDisabled => 95, // EOPNOTSUPP
            Self::InvalidPasid
            | Self::MsiRoute
            | Self::CoherencyUnsupported
            | Self::InvalidArgument => 22, // EINVAL
            Self::PasidInUse
            | Self::StillAttached
            | Self::DoorbellInUse
            | Self::DoorbellConflict
            | Self::CoherencyAfterMap => 16, // EBUSY
            Self::AlreadyAttached | Self::MsiIovaMapped => 17, // EEXIST
            Self::NotAttached => 2,                           // ENOENT
            Self::NoSpace => 28,                              // ENOSPC
            Self::ReservedIova => 98,                         // EADDRINUSE
            Self::Backend(e) => e.errno(),
        }
    }

    /// A short description for the kernel log line.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Unsupported(Unsupported::DevicePasid) => "device has no PASID capability",
            Self::Unsupported(Unsupported::IommuPasid) => {
                "IOMMU has no PASID support for the device (e.g. SMMU SSIDSIZE=0)"
            }
            Self::Unsupported(Unsupported::NoPasidBits) => "no PASID bits left for this device",
            Self::PasidDisabled => "PASID not enabled on the device",
            Self::InvalidPasid => "PASID 0 or outside the device's PASID range",
            Self::PasidInUse => "PASID already has a domain attached",
            Self::AlreadyAttached => "already attached / already active",
            Self::NotAttached => "not attached / not active",
            Self::StillAttached => "still in use",
            Self::NoSpace => "table full",
            Self::ReservedIova => "IOVA range overlaps the reserved MSI window",
            Self::DoorbellInUse => "range holds an MSI doorbell mapping",
            Self::DoorbellConflict => "MSI IOVA bound to another doorbell",
            Self::MsiIovaMapped => "MSI IOVA overlaps an existing mapping",
            Self::MsiRoute => "MSI source does not translate through this domain",
            Self::CoherencyUnsupported => "device cannot have No_snoop blocked",
            Self::CoherencyAfterMap => "enforce_cache_coherency after the first mapping",
            Self::InvalidArgument => "invalid argument",
            Self::Backend(e) => e.describe(),
        }
    }
}
