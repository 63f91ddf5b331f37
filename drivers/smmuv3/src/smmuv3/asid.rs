// SPDX-License-Identifier: GPL-2.0
//! ASID allocator for stage-1 contexts.
//!
//! The SMMU supports 8- or 16-bit ASIDs (SMMU_IDR0.ASID16, IHI 0070 6.3.1; Linux reads it at
//! arm-smmu-v3.c:4287). ASID 0 is never handed out, like the C driver: its ASID xarray is
//! `DEFINE_XARRAY_ALLOC1` (arm-smmu-v3.c:77) and allocations use
//! `XA_LIMIT(1, (1 << asid_bits) - 1)` (arm-smmu-v3.c:2396-2397 for DMA domains,
//! arm-smmu-v3-sva.c:409-410 for SVA). The C
//! code gives no reason; the ones that apply here: SVA/BTM shares the ASID space with the
//! CPU, whose arm64 allocator keeps ASID 0 for `init_mm`/the reserved TTBR0
//! (arch/arm64/mm/context.c), and 0 is what a cleared CD holds, so "ASID 0" can mean "none"
//! in diagnostics.
//!
//! Storage is a plain fixed-size bitmap inside the struct (65536 bits = 8 KiB), no allocator:
//! the caller places the struct (a `static`, or inside its per-SMMU state) and provides the
//! locking (`&mut self`). `new` is `const` so it can initialise a static.
//!
//! Allocation returns the lowest free ASID, like `xa_alloc()`.

/// Errors of the ASID allocator. [`AsidError::errno`] gives the errno for the kernel glue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsidError {
    /// Every ASID is in use. `EBUSY`, what `xa_alloc()` returns when the limit range is full
    /// (and therefore what `arm_smmu_domain_finalise_s1()` propagates).
    Exhausted,
    /// ASID 0, an ASID beyond the configured width, or freeing one that is not allocated.
    /// `EINVAL`.
    InvalidArgument,
}

impl AsidError {
    /// The positive errno value the kernel glue returns (negated) for this error.
    pub const fn errno(&self) -> i32 {
        match self {
            Self::Exhausted => 16,       // EBUSY
            Self::InvalidArgument => 22, // EINVAL
        }
    }
}

/// Width of ASIDs the SMMU implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsidBits {
    /// 8-bit ASIDs (SMMU_IDR0.ASID16 == 0).
    Bits8,
    /// 16-bit ASIDs (SMMU_IDR0.ASID16 == 1).
    Bits16,
}

impl AsidBits {
    /// From SMMU_IDR0.ASID16.
    pub const fn from_asid16(asid16: bool) -> Self {
        if asid16 {
            Self::Bits16
        } else {
            Self::Bits8
        }
    }

    /// Number of ASID values (256 or 65536).
    pub const fn count(self) -> u32 {
        match self {
            Self::Bits8 => 1 << 8,
            Self::Bits16 => 1 << 16,
        }
    }
}

const WORDS: usize = (1 << 16) / 64;

/// Fixed-size ASID bitmap (8 KiB). Bit set = ASID in use; bit 0 is permanently set.
pub struct AsidAllocator {
    map: [u64; WORDS],
    bits: AsidBits,
    used: u32,
}

impl AsidAllocator {
    /// An allocator with every ASID but 0 free.
    pub const fn new(bits: AsidBits) -> Self {
        let mut map = [0u64; WORDS];
        map[0] = 1;
        Self { map, bits, used: 0 }
    }

    /// The configured ASID width.
    pub fn bits(&self) -> AsidBits {
        self.bits
    }

    /// Number of ASIDs currently allocated (0 excluded).
    pub fn in_use(&self) -> u32 {
        self.used
    }

    /// Number of ASIDs that can be allocated in total (255 or 65535).
    pub fn capacity(&self) -> u32 {
        self.bits.count() - 1
    }

    /// Allocates the lowest free ASID.
    pub fn alloc(&mut self) -> Result<u16, AsidError> {
        let words = (self.bits.count() as usize).div_ceil(64);
        for (i, w) in self.map.iter_mut().enumerate().take(words) {
            if *w != u64::MAX {
                let bit = (!*w).trailing_zeros();
                *w |= 1 << bit;
                self.used += 1;
                return Ok((i as u32 * 64 + bit) as u16);
            }
        }
        Err(AsidError::Exhausted)
    }

    fn locate(&self, asid: u16) -> Result<(usize, u64), AsidError> {
        if asid == 0 || u32::from(asid) >= self.bits.count() {
            return Err(AsidError::InvalidArgument);
        }
        Ok((usize::from(asid) / 64, 1u64 << (asid % 64)))
    }

    /// Marks a specific ASID as used (e.g. one shared with a CPU mm for SVA).
    pub fn reserve(&mut self, asid: u16) -> Result<(), AsidError> {
        let (i, m) = self.locate(asid)?;
        let w = self.map.get_mut(i).ok_or(AsidError::InvalidArgument)?;
        if *w & m != 0 {
            return Err(AsidError::Exhausted);
        }
        *w |= m;
        self.used += 1;
        Ok(())
    }

    /// Returns `asid` to the pool. The caller must have invalidated the ASID's TLB entries
    /// (CMD_TLBI_NH_ASID + CMD_SYNC, arm-smmu-v3.c:2372-2377 frees after the context is torn
    /// down) before it can be handed out again.
    pub fn free(&mut self, asid: u16) -> Result<(), AsidError> {
        let (i, m) = self.locate(asid)?;
        let w = self.map.get_mut(i).ok_or(AsidError::InvalidArgument)?;
        if *w & m == 0 {
            return Err(AsidError::InvalidArgument);
        }
        *w &= !m;
        self.used = self.used.saturating_sub(1);
        Ok(())
    }

    /// Whether `asid` is allocated (ASID 0 reports `true`: it is permanently reserved).
    pub fn is_allocated(&self, asid: u16) -> bool {
        let i = usize::from(asid) / 64;
        self.map.get(i).is_some_and(|w| w & (1 << (asid % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_exhausts_after_255_and_never_returns_zero() {
        let mut a = AsidAllocator::new(AsidBits::Bits8);
        for expect in 1..=255u16 {
            assert_eq!(a.alloc(), Ok(expect));
        }
        assert_eq!(a.alloc(), Err(AsidError::Exhausted));
        assert_eq!(a.alloc().unwrap_err().errno(), 16);
        assert_eq!(a.in_use(), 255);
        a.free(77).unwrap();
        assert_eq!(a.alloc(), Ok(77));
    }

    #[test]
    fn sixteen_bit_full_range() {
        let mut a = AsidAllocator::new(AsidBits::from_asid16(true));
        for expect in 1..=65535u32 {
            assert_eq!(a.alloc(), Ok(expect as u16));
        }
        assert_eq!(a.alloc(), Err(AsidError::Exhausted));
        assert_eq!(a.capacity(), 65535);
        a.free(65535).unwrap();
        a.free(1).unwrap();
        assert_eq!(a.alloc(), Ok(1));
        assert_eq!(a.alloc(), Ok(65535));
    }

    #[test]
    fn invalid_frees_and_reserve() {
        let mut a = AsidAllocator::new(AsidBits::Bits8);
        assert_eq!(a.free(0), Err(AsidError::InvalidArgument));
        assert_eq!(a.free(5), Err(AsidError::InvalidArgument));
        assert_eq!(a.free(256), Err(AsidError::InvalidArgument));
        assert_eq!(a.reserve(256), Err(AsidError::InvalidArgument));
        assert_eq!(a.reserve(0), Err(AsidError::InvalidArgument));
        a.reserve(1).unwrap();
        assert_eq!(a.reserve(1), Err(AsidError::Exhausted));
        assert_eq!(a.alloc(), Ok(2));
        assert!(a.is_allocated(0) && a.is_allocated(1) && !a.is_allocated(3));
        assert_eq!(core::mem::size_of::<AsidAllocator>(), 8192 + 8);
    }
}
