// SPDX-License-Identifier: GPL-2.0
//! Guest RAM as [`DmaMemory`]: the SMMU driver core builds its tables in QEMU's RAM, where
//! QEMU's SMMU model walks them.

use super::client::Qtest;
use super::error::{Error, Result};
use smmuv3::dma::{AllocError, DmaAllocator, DmaMemory};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Byte written over freed blocks (same as `physmem::POISON`).
pub const POISON: u8 = 0x6b;

struct State {
    next: u64,
    limit: u64,
    /// Live allocations: address -> size.
    live: BTreeMap<u64, u64>,
    allocs: u64,
    frees: u64,
    fail_after: Option<u64>,
}

/// Bump allocator over a range of guest RAM. Addresses are never reused, so a stale pointer
/// left in a table reaches poison, not a plausible new entry. Cheap to clone.
#[derive(Clone)]
pub struct GuestRam {
    qt: Qtest,
    state: Arc<Mutex<State>>,
}

impl GuestRam {
    /// An allocator handing out `[base, base + size)`.
    pub fn new(qt: Qtest, base: u64, size: u64) -> Self {
        let state = State {
            next: base,
            limit: base.saturating_add(size),
            live: BTreeMap::new(),
            allocs: 0,
            frees: 0,
            fail_after: None,
        };
        Self {
            qt,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The qtest client.
    pub fn qtest(&self) -> &Qtest {
        &self.qt
    }

    /// Allocates `size` zeroed bytes aligned to `align` (a power of two).
    pub fn alloc(&self, size: usize, align: usize) -> Result<GuestRamBlock> {
        if size == 0 || !align.is_power_of_two() {
            return Err(Error::Harness(format!(
                "bad allocation: size {size:#x} align {align:#x}"
            )));
        }
        let pa = {
            let mut st = self.lock();
            if let Some(n) = st.fail_after.as_mut() {
                if *n == 0 {
                    return Err(Error::Harness("allocation failure injected".into()));
                }
                *n -= 1;
            }
            let pa = st.next.checked_next_multiple_of(align as u64);
            let end = pa.and_then(|p| p.checked_add(size as u64));
            let (pa, end) = match (pa, end) {
                (Some(p), Some(e)) if e <= st.limit => (p, e),
                _ => {
                    return Err(Error::Harness(format!(
                        "guest RAM exhausted: {size:#x} bytes aligned {align:#x} at {:#x}, \
                         limit {:#x}",
                        st.next, st.limit
                    )))
                }
            };
            st.next = end;
            st.live.insert(pa, size as u64);
            st.allocs += 1;
            pa
        };
        let block = GuestRamBlock {
            ram: self.clone(),
            pa,
            size,
        };
        self.qt.memset(pa, size as u64, 0)?;
        Ok(block)
    }

    /// Number of blocks currently allocated (for leak checks).
    pub fn live_blocks(&self) -> usize {
        self.lock().live.len()
    }

    /// Total allocations and frees so far.
    pub fn alloc_stats(&self) -> (u64, u64) {
        let st = self.lock();
        (st.allocs, st.frees)
    }

    /// Makes every allocation after the next `n` fail; `None` disables the injection.
    pub fn fail_allocations_after(&self, n: Option<u64>) {
        self.lock().fail_after = n;
    }
}

impl DmaAllocator for GuestRam {
    type Memory = GuestRamBlock;

    fn alloc_zeroed(
        &self,
        size: usize,
        align: usize,
    ) -> core::result::Result<Self::Memory, AllocError> {
        self.alloc(size, align).map_err(|e| {
            // Exhaustion and injected failures are expected outcomes, not transport trouble;
            // only the latter is worth reporting through `Qtest::check`.
            if !matches!(e, Error::Harness(_)) {
                self.qt.defer(e);
            }
            AllocError
        })
    }
}

/// A block of guest RAM; poisoned when dropped.
pub struct GuestRamBlock {
    ram: GuestRam,
    pa: u64,
    size: usize,
}

impl GuestRamBlock {
    /// Guest physical address of the first byte.
    pub fn addr(&self) -> u64 {
        self.pa
    }

    fn range(&self, offset: usize, len: usize) -> Result<u64> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(self.pa + offset as u64),
            _ => Err(Error::Harness(format!(
                "access {offset:#x}+{len:#x} outside block of {:#x} bytes at {:#x}",
                self.size, self.pa
            ))),
        }
    }

    /// Reads bytes at `offset` into `buf`.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let a = self.range(offset, buf.len())?;
        self.ram.qt.read(a, buf)
    }

    /// Writes `data` at `offset`.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<()> {
        let a = self.range(offset, data.len())?;
        self.ram.qt.write(a, data)
    }

    /// Reads a 32-bit word at `offset` (one access).
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        let a = self.range(offset, 4)?;
        self.ram.qt.readl(a)
    }

    /// Fills `len` bytes at `offset` with `value`.
    pub fn fill(&self, offset: usize, len: usize, value: u8) -> Result<()> {
        let a = self.range(offset, len)?;
        self.ram.qt.memset(a, len as u64, value)
    }

    fn word(&self, offset: usize) -> Option<u64> {
        if !offset.is_multiple_of(8) {
            self.ram.qt.defer(Error::Harness(format!(
                "unaligned DmaMemory offset {offset:#x}"
            )));
            return None;
        }
        match self.range(offset, 8) {
            Ok(a) => Some(a),
            Err(e) => {
                self.ram.qt.defer(e);
                None
            }
        }
    }
}

impl DmaMemory for GuestRamBlock {
    fn dma_addr(&self) -> u64 {
        self.pa
    }
    fn size(&self) -> usize {
        self.size
    }
    fn read_u64(&self, offset: usize) -> u64 {
        let Some(a) = self.word(offset) else {
            return u64::MAX;
        };
        self.ram.qt.readq(a).unwrap_or_else(|e| {
            self.ram.qt.defer(e);
            u64::MAX
        })
    }
    fn write_u64(&self, offset: usize, value: u64) {
        let Some(a) = self.word(offset) else { return };
        if let Err(e) = self.ram.qt.writeq(a, value) {
            self.ram.qt.defer(e);
        }
    }
    /// Read then write under the RAM's lock: atomic against the other compare-and-swaps of
    /// this process (guest RAM has no atomic qtest command; the qtest rigs drive one thread).
    fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64 {
        let _serialised = self.ram.lock();
        let cur = self.read_u64(offset);
        if cur == old {
            self.write_u64(offset, new);
        }
        cur
    }
}

impl Drop for GuestRamBlock {
    fn drop(&mut self) {
        // Best effort: if QEMU is gone there is nothing to poison.
        let _ = self.ram.qt.memset(self.pa, self.size as u64, POISON);
        let mut st = self.ram.lock();
        st.live.remove(&self.pa);
        st.frees += 1;
    }
}
