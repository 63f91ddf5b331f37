// SPDX-License-Identifier: GPL-2.0
//! Plain values of the auxiliary-domain layer: protections, the MSI window, reserved regions,
//! MSI sources and what the bookkeeping reports.

/// Most (device, PASID) attachments of one domain (the requester-ID attachment included).
pub const MAX_ATTACH: usize = 16;
/// Most distinct doorbell bindings of one domain.
pub const MAX_DOORBELLS: usize = 16;
/// Most active MSI sources (vectors and queue messages) of one domain.
pub const MAX_VECTORS: usize = 64;
/// Linux's `MSI_IOVA_BASE` (arm-smmu-v3.c): the default software-managed MSI window.
pub const SW_MSI_BASE: u64 = 0x800_0000;
/// Linux's `MSI_IOVA_LENGTH`.
pub const SW_MSI_SIZE: u64 = 0x10_0000;

// Access rights of a mapping: the one `Prot`, provided by the code including the policy (see
// `super`).
use super::Prot;

/// Prot of a doorbell mapping (Linux `iommu_dma_get_msi_page`: write, no-exec, MMIO).
pub const DOORBELL_PROT: Prot = Prot::WRITE.union(Prot::NOEXEC).union(Prot::MMIO);

/// The reserved IOVA window where doorbells are mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiWindow {
    /// First IOVA (granule aligned).
    pub base: u64,
    /// Size in bytes (granule multiple, non-zero).
    pub size: u64,
}

impl Default for MsiWindow {
    fn default() -> Self {
        Self {
            base: SW_MSI_BASE,
            size: SW_MSI_SIZE,
        }
    }
}

impl MsiWindow {
    /// Whether the window is usable with pages of `granule` bytes in an input address space
    /// of `ias` bits: non-empty, granule-aligned, inside the address space.
    pub fn fits(&self, granule: u64, ias: u32) -> bool {
        let end = self.base.checked_add(self.size);
        let ias_ok = end.is_some_and(|e| ias >= 64 || e <= 1u64 << ias);
        granule.is_power_of_two()
            && self.size != 0
            && (self.base | self.size) & (granule - 1) == 0
            && ias_ok
    }

    /// Whether [`iova`, `iova + size`) overlaps the window.
    pub fn overlaps(&self, iova: u64, size: u64) -> bool {
        let end = iova.saturating_add(size);
        iova < self.base.saturating_add(self.size) && self.base < end
    }

    /// Whether the page of `page` bytes at `iova` lies inside the window.
    pub fn contains_page(&self, iova: u64, page: u64) -> bool {
        iova >= self.base && iova.saturating_add(page) <= self.base.saturating_add(self.size)
    }
}

/// Kind of a reserved region (Linux `IOMMU_RESV_SW_MSI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedKind {
    /// Software-managed MSI window: the IOMMU layer maps doorbells there.
    SwMsi,
}

/// A reserved IOVA region, to be reported to users (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
/// iommufd IOMMU_IOAS_IOVA_RANGES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedRegion {
    /// First IOVA.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// Kind.
    pub kind: ReservedKind,
}

/// Where an MSI comes from, which decides the domain that translates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiSource {
    /// A PCIe MSI/MSI-X vector: the write carries the requester ID only, so it translates
    /// through the device's requester-ID domain.
    Rid {
        /// Vector number.
        vector: u32,
    },
    /// A per-queue interrupt message tagged with the queue's PASID: it translates through
    /// the domain attached at that PASID.
    Queue {
        /// The queue's PASID.
        pasid: u32,
        /// Queue number.
        queue: u32,
    },
}

/// A doorbell binding, as reported by [`super::AuxPolicy::doorbells`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorbellInfo {
    /// Physical address of the doorbell page.
    pub pa_page: u64,
    /// IOVA of its mapping.
    pub iova_page: u64,
    /// Active MSI sources using it.
    pub refs: u32,
    /// Placed at a user-specified IOVA.
    pub user: bool,
}

/// What tearing a domain down removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Teardown {
    /// Doorbell bindings still present (a user forgot to deactivate), unmapped here.
    pub doorbells: usize,
    /// MSI sources still active, dropped here.
    pub vectors: usize,
}
