// SPDX-License-Identifier: GPL-2.0
//! The access rights of an I/O mapping: the one `Prot` of the project.
//!
//! Bit for bit Linux's `IOMMU_*` flags (include/linux/iommu.h:18-32), so the kernel crate,
//! which compiles the SMMUv3 core with this very file as `kernel::smmuv3` (overlay symlink
//! `rust/kernel/portable/smmuv3`, `docs/portable-code.md`) and re-exports it as
//! `kernel::iommu::Prot`, checks the values against the bindings at build time and hands the
//! bits to C unchanged; an `int prot` from C enters through [`Prot::from_bits`], which refuses
//! bits it does not know. The SMMUv3 page tables
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

    /// Every flag above: the bits an `int prot` from C may carry.
    pub const ALL: Prot = Prot(0x3f);

    /// The flags of `bits`, or `None` if it has a bit no flag above names (a caller's bug, or
    /// a flag newer than this code: refused rather than dropped).
    pub const fn from_bits(bits: u32) -> Option<Prot> {
        if bits & !Self::ALL.0 == 0 {
            Some(Prot(bits))
        } else {
            None
        }
    }

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

    /// Every flag, in bit order (include/linux/iommu.h: IOMMU_READ (1 << 0) ... IOMMU_PRIV
    /// (1 << 5)).
    const FLAGS: [Prot; 6] = [
        Prot::READ,
        Prot::WRITE,
        Prot::CACHE,
        Prot::NOEXEC,
        Prot::MMIO,
        Prot::PRIV,
    ];

    #[test]
    fn flags_are_linux_bits() {
        for (i, p) in FLAGS.iter().enumerate() {
            assert_eq!(p.bits(), 1 << i);
        }
        let rw = Prot::READ | Prot::WRITE;
        assert!(rw.contains(Prot::READ) && rw.contains(Prot::WRITE) && !rw.contains(Prot::CACHE));
        assert!(rw.contains(Prot::NONE));
        assert_eq!(Prot::default(), Prot::NONE);
    }

    #[test]
    fn from_bits_refuses_unknown_bits() {
        let mut all = Prot::NONE;
        for p in FLAGS {
            all = all | p;
            assert_eq!(Prot::from_bits(p.bits()), Some(p));
        }
        assert_eq!(all, Prot::ALL);
        assert_eq!(Prot::from_bits(Prot::ALL.bits()), Some(Prot::ALL));
        assert_eq!(Prot::from_bits(0), Some(Prot::NONE));
        for bit in 6..32 {
            assert_eq!(Prot::from_bits(1 << bit), None, "bit {bit}");
            assert_eq!(
                Prot::from_bits(Prot::READ.bits() | 1 << bit),
                None,
                "READ | bit {bit}"
            );
        }
    }
}
