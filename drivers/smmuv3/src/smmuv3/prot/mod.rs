// SPDX-License-Identifier: GPL-2.0
//! The access rights of an I/O mapping: the one `Prot` of the project.
//!
//! Bit for bit Linux's `IOMMU_*` flags (include/linux/iommu.h:18-32), so the kernel crate,
//! which compiles this very file as `kernel::iommu::Prot` (overlay symlink
//! `rust/kernel/portable/prot`, `docs/portable-code.md`), checks the values against the
//! bindings at build time and hands the bits to C unchanged. The SMMUv3 page tables
//! (`pgtable`) turn them into descriptor attributes; the aux-domain policy adds `CACHE` while
//! coherency is enforced.

/// Access rights of a mapping (`IOMMU_READ`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prot(pub u32);

impl Prot {
    /// No access (the empty set, to build a `Prot` flag by flag).
    pub const NONE: Prot = Prot(0);
    /// IOMMU_READ: the device may read.
    pub const READ: Prot = Prot(1 << 0);
    /// IOMMU_WRITE: the device may write.
    pub const WRITE: Prot = Prot(1 << 1);
    /// IOMMU_CACHE: cache-coherent DMA (Normal write-back, inner shareable).
    pub const CACHE: Prot = Prot(1 << 2);
    /// IOMMU_NOEXEC: no instruction fetch (UXN and PXN).
    pub const NOEXEC: Prot = Prot(1 << 3);
    /// IOMMU_MMIO: device memory (Device-nGnRE, e.g. an MSI doorbell).
    pub const MMIO: Prot = Prot(1 << 4);
    /// IOMMU_PRIV: privileged-only access (`AP[1]` clear).
    pub const PRIV: Prot = Prot(1 << 5);

    /// The `IOMMU_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union of two sets of flags.
    pub const fn union(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }
}

impl core::ops::BitOr for Prot {
    type Output = Prot;
    fn bitor(self, rhs: Prot) -> Prot {
        self.union(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::Prot;

    #[test]
    fn flags_are_linux_bits() {
        // include/linux/iommu.h: IOMMU_READ (1 << 0) ... IOMMU_PRIV (1 << 5).
        let all = [
            Prot::READ,
            Prot::WRITE,
            Prot::CACHE,
            Prot::NOEXEC,
            Prot::MMIO,
            Prot::PRIV,
        ];
        for (i, p) in all.iter().enumerate() {
            assert_eq!(p.bits(), 1 << i);
        }
        let rw = Prot::READ | Prot::WRITE;
        assert!(rw.contains(Prot::READ) && rw.contains(Prot::WRITE) && !rw.contains(Prot::CACHE));
        assert!(rw.contains(Prot::NONE));
        assert_eq!(Prot::default(), Prot::NONE);
    }
}
