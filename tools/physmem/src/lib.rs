// SPDX-License-Identifier: GPL-2.0
//! Simulated physical memory for host tests.
//!
//! [`PhysMem`] is a sparse, byte-addressed physical address space shared (by cloning the handle)
//! between the code under test, which allocates tables from it through
//! [`smmuv3::dma::DmaAllocator`], and device models, which read and write it as a bus master
//! would. Freed blocks are poisoned so a model that walks a stale table sees garbage, not a
//! plausible old entry.

use smmuv3::dma::{AllocError, DmaAllocator, DmaMemory};

mod store;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
pub use store::ArenaStore;

const PAGE: u64 = 4096;
/// Byte written over freed blocks.
pub const POISON: u8 = 0x6b;

#[derive(Default)]
struct Inner {
    pages: HashMap<u64, Box<[u8; PAGE as usize]>>,
    /// Live allocations: start -> size.
    live: BTreeMap<u64, u64>,
    next: u64,
    limit: u64,
    allocs: u64,
    frees: u64,
    /// Remaining allocations before failure injection kicks in (`None`: never fail).
    fail_after: Option<u64>,
}

/// Handle to a shared simulated physical address space.
#[derive(Clone)]
pub struct PhysMem {
    inner: Arc<Mutex<Inner>>,
}

impl PhysMem {
    /// A memory whose allocator hands out addresses in `[base, base + size)`.
    pub fn new(base: u64, size: u64) -> Self {
        let inner = Inner {
            next: base,
            limit: base + size,
            ..Default::default()
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `buf.len()` bytes at physical address `pa` (unbacked memory reads as zero).
    pub fn read(&self, pa: u64, buf: &mut [u8]) {
        let inner = self.lock();
        for (i, b) in buf.iter_mut().enumerate() {
            let a = pa + i as u64;
            *b = inner
                .pages
                .get(&(a / PAGE))
                .map_or(0, |p| p[(a % PAGE) as usize]);
        }
    }

    /// Writes `buf` at physical address `pa`.
    pub fn write(&self, pa: u64, buf: &[u8]) {
        let mut inner = self.lock();
        for (i, b) in buf.iter().enumerate() {
            let a = pa + i as u64;
            inner
                .pages
                .entry(a / PAGE)
                .or_insert_with(|| Box::new([0; PAGE as usize]))[(a % PAGE) as usize] = *b;
        }
    }

    /// Reads a little-endian 64-bit word.
    pub fn read_u64(&self, pa: u64) -> u64 {
        let mut b = [0; 8];
        self.read(pa, &mut b);
        u64::from_le_bytes(b)
    }

    /// Writes a little-endian 64-bit word.
    pub fn write_u64(&self, pa: u64, v: u64) {
        self.write(pa, &v.to_le_bytes());
    }

    /// If the little-endian 64-bit word at `pa` is `old`, writes `new`; returns what it held.
    /// Atomic against every other access through this handle (one lock).
    pub fn cmpxchg_u64(&self, pa: u64, old: u64, new: u64) -> u64 {
        let mut inner = self.lock();
        let page = inner
            .pages
            .entry(pa / PAGE)
            .or_insert_with(|| Box::new([0; PAGE as usize]));
        let o = (pa % PAGE) as usize;
        let cur = u64::from_le_bytes(page[o..o + 8].try_into().unwrap_or([0; 8]));
        if cur == old {
            page[o..o + 8].copy_from_slice(&new.to_le_bytes());
        }
        cur
    }

    /// Reads a little-endian 32-bit word.
    pub fn read_u32(&self, pa: u64) -> u32 {
        let mut b = [0; 4];
        self.read(pa, &mut b);
        u32::from_le_bytes(b)
    }

    /// Writes a little-endian 32-bit word.
    pub fn write_u32(&self, pa: u64, v: u32) {
        self.write(pa, &v.to_le_bytes());
    }

    /// Number of blocks currently allocated (for leak checks).
    pub fn live_blocks(&self) -> usize {
        self.lock().live.len()
    }

    /// Total allocations and frees so far.
    pub fn alloc_stats(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.allocs, inner.frees)
    }

    /// Makes every allocation after the next `n` fail (fault injection); `None` disables it.
    pub fn fail_allocations_after(&self, n: Option<u64>) {
        self.lock().fail_after = n;
    }
}

/// A block allocated from a [`PhysMem`]; poisoned and returned when dropped.
pub struct Block {
    mem: PhysMem,
    pa: u64,
    size: usize,
}

impl Block {
    /// The memory this block lives in.
    pub fn mem(&self) -> &PhysMem {
        &self.mem
    }
}

impl DmaMemory for Block {
    fn dma_addr(&self) -> u64 {
        self.pa
    }
    fn size(&self) -> usize {
        self.size
    }
    fn read_u64(&self, offset: usize) -> u64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.size,
            "bad offset {offset:#x}"
        );
        self.mem.read_u64(self.pa + offset as u64)
    }
    fn write_u64(&self, offset: usize, value: u64) {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.size,
            "bad offset {offset:#x}"
        );
        self.mem.write_u64(self.pa + offset as u64, value)
    }
    fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.size,
            "bad offset {offset:#x}"
        );
        self.mem.cmpxchg_u64(self.pa + offset as u64, old, new)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.mem.write(self.pa, &vec![POISON; self.size]);
        let mut inner = self.mem.lock();
        inner.live.remove(&self.pa);
        inner.frees += 1;
    }
}

impl DmaAllocator for PhysMem {
    type Memory = Block;

    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<Block, AllocError> {
        if size == 0 || !align.is_power_of_two() {
            return Err(AllocError);
        }
        let pa = {
            let mut inner = self.lock();
            if let Some(n) = inner.fail_after.as_mut() {
                if *n == 0 {
                    return Err(AllocError);
                }
                *n -= 1;
            }
            // Bump allocation: addresses are never reused, so a stale pointer in a table can
            // only ever reach poison.
            let pa = inner.next.next_multiple_of(align as u64);
            if pa + size as u64 > inner.limit {
                return Err(AllocError);
            }
            inner.next = pa + size as u64;
            inner.live.insert(pa, size as u64);
            inner.allocs += 1;
            pa
        };
        self.write(pa, &vec![0; size]);
        Ok(Block {
            mem: self.clone(),
            pa,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_is_aligned_zeroed_and_poisoned_on_free() {
        let mem = PhysMem::new(0x4000_0000, 1 << 24);
        let b = mem.alloc_zeroed(64, 64).unwrap();
        assert_eq!(b.dma_addr() % 64, 0);
        assert_eq!(b.read_u64(8), 0);
        b.write_u64(8, 0x1122_3344_5566_7788);
        assert_eq!(mem.read_u32(b.dma_addr() + 8), 0x5566_7788);
        let pa = b.dma_addr();
        drop(b);
        assert_eq!(mem.read_u64(pa + 8), u64::from_le_bytes([POISON; 8]));
        assert_eq!(mem.live_blocks(), 0);
    }

    #[test]
    fn exhaustion_and_fault_injection_fail_cleanly() {
        let mem = PhysMem::new(0, 8192);
        let _a = mem.alloc_zeroed(4096, 4096).unwrap();
        let _b = mem.alloc_zeroed(4096, 4096).unwrap();
        assert_eq!(mem.alloc_zeroed(8, 8).err(), Some(AllocError));
        let mem = PhysMem::new(0, 1 << 20);
        mem.fail_allocations_after(Some(1));
        assert!(mem.alloc_zeroed(8, 8).is_ok());
        assert!(mem.alloc_zeroed(8, 8).is_err());
    }
}
