// SPDX-License-Identifier: GPL-2.0
//! Memory shared with the SMMU, and the SMMU's register page.
//!
//! The driver core never touches a pointer: it reads and writes 64-bit words of
//! [`DmaMemory`] blocks and 32/64-bit registers through [`Mmio`]. The kernel implements these
//! over `dma_alloc_coherent` memory and an `ioremap`ped page; host tests implement them over
//! QEMU guest RAM (qtest) or a model's physical memory.

/// Failure to obtain DMA memory. The kernel glue maps it to `ENOMEM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

/// A block of zero-initialised, physically contiguous memory that the SMMU can access.
///
/// All accesses are little-endian 64-bit words at 8-byte-aligned offsets. A write of one word is
/// a single-copy-atomic 64-bit store: the hitless STE/CD update sequences depend on it.
/// Accesses take `&self` because the memory is shared with the device anyway: the type gives no
/// exclusivity guarantee that the device would respect.
pub trait DmaMemory {
    /// The address the SMMU uses for the first byte (a physical address for table walks).
    fn dma_addr(&self) -> u64;
    /// Size of the block in bytes.
    fn size(&self) -> usize;
    /// Reads the 64-bit word at byte `offset` (8-aligned, inside the block).
    fn read_u64(&self, offset: usize) -> u64;
    /// Writes the 64-bit word at byte `offset` (8-aligned, inside the block) as one store.
    fn write_u64(&self, offset: usize, value: u64);
    /// Atomically replaces the 64-bit word at byte `offset` (8-aligned, inside the block) by
    /// `new` if it holds `old`, and returns what it held (`old` on success). Page tables
    /// install tables with it, so that concurrent maps sharing a parent entry link one table
    /// (kernel: `cmpxchg64` on the linear map; host doubles: under their own lock). Full
    /// barrier semantics: the table's contents written before are visible before the link.
    fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64;

    /// The index of the first non-zero word among the `count` words from byte `offset`, or
    /// `count` if they are all zero (page-table runs: the descriptors a map may fill). An
    /// implementation may stop early (return a smaller index) on a range it cannot check.
    fn first_nonzero(&self, offset: usize, count: usize) -> usize {
        (0..count)
            .find(|i| self.read_u64(offset + i * 8) != 0)
            .unwrap_or(count)
    }

    /// Writes `first + i * step` to the `count` words from byte `offset`, each as one store
    /// (a run of leaf descriptors).
    fn write_run(&self, offset: usize, count: usize, first: u64, step: u64) {
        let mut v = first;
        for i in 0..count {
            self.write_u64(offset + i * 8, v);
            v = v.wrapping_add(step);
        }
    }
}

/// Source of [`DmaMemory`] blocks.
pub trait DmaAllocator {
    /// The block type handed out; freed when dropped.
    type Memory: DmaMemory;
    /// Allocates `size` zeroed bytes aligned to `align` (a power of two; at least `size` when the
    /// architecture requires naturally aligned tables).
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<Self::Memory, AllocError>;
}

/// The SMMU's register page (page 0; page 1 offsets are passed as absolute offsets).
///
/// Writes have `writel()` semantics: every earlier write to [`DmaMemory`] is visible to the SMMU
/// before the register write is. Reads have `readl()` semantics: later reads of [`DmaMemory`] see
/// what the SMMU wrote before the register value was produced.
pub trait Mmio {
    /// Reads a 32-bit register at byte `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes a 32-bit register at byte `offset`.
    fn write32(&self, offset: usize, value: u32);
    /// Reads a 64-bit register at byte `offset`.
    fn read64(&self, offset: usize) -> u64;
    /// Writes a 64-bit register at byte `offset`.
    fn write64(&self, offset: usize, value: u64);
}
