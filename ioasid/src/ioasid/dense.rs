// SPDX-License-Identifier: GPL-2.0
//! [`DenseStore`]: a direct-mapped table for a small, dense ID space (the PASID space).
//!
//! A PASID space is at most 2^20 IDs and allocation always takes the lowest free one, so the
//! IDs in use are dense. Instead of a general radix tree (an XArray: a walk of up to four levels
//! per access, and an entry that points to a separately allocated record), the store is a fixed
//! two-level table, like the IOMMU's own PASID tables:
//!
//! * a *top* array with one pointer per block of [`BLOCK`] IDs (4096 pointers for 20 bits);
//! * *blocks*, allocated zeroed on first use, holding the records inline and an
//!   occupancy bitmap;
//! * a bitmap of full blocks over the top array.
//!
//! So an access is two dependent loads (top, record), and the lowest free ID in a range is
//! found with a few word operations on the bitmaps (what the IDA does with its 1024-bit leaves,
//! minus the XArray walk above them). The store has no lockless readers: lockless PASID lookups
//! go through the core's [`Lookup`](super::Lookup) table.
//!
//! The price is memory: a block stays allocated once used, until the store is dropped (the
//! high-water mark of the space is kept). For 20 bits the top array takes 32 KiB, and each
//! block of 256 IDs `256 * size_of::<T>()` bytes plus a 40-byte header.
//!
//! Memory comes from the platform through [`BlockMemory`] (kernel: `kvmalloc`/`kvfree`).

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{IdStore, StoreError};

/// log2 of [`BLOCK`].
pub const BLOCK_SHIFT: u32 = 8;
/// IDs per block of a [`DenseStore`].
pub const BLOCK: usize = 1 << BLOCK_SHIFT;
const MASK: u32 = (BLOCK as u32) - 1;
const WORDS: usize = BLOCK / 64;
/// Widest ID space a [`DenseStore`] covers (a 16 M-entry top array would be 128 MiB).
pub const MAX_DENSE_BITS: u32 = 24;

/// Where a [`DenseStore`] gets its memory (top array, bitmaps, blocks).
///
/// # Safety
///
/// [`alloc_zeroed`](BlockMemory::alloc_zeroed) returns `None` or a pointer to `layout.size()`
/// zeroed bytes aligned to `layout.align()`, valid for reads and writes from any thread until it
/// is passed to [`free`](BlockMemory::free) with the same layout.
pub unsafe trait BlockMemory {
    /// Allocates zeroed memory for `layout` (never zero-sized); `None` if memory ran out.
    fn alloc_zeroed(&self, layout: Layout) -> Option<NonNull<u8>>;

    /// Frees memory from [`alloc_zeroed`](BlockMemory::alloc_zeroed).
    ///
    /// # Safety
    ///
    /// `ptr` came from `alloc_zeroed(layout)` of this memory and is not used afterwards.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout);
}

/// One record, initialised iff its `used` bit is set.
type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// A block of [`BLOCK`] records. All-zero bytes are a valid empty block.
#[repr(C)]
struct Block<T> {
    /// Occupancy bitmap (owner only).
    used: [u64; WORDS],
    /// Set bits in `used` (owner only).
    count: u32,
    slots: [Slot<T>; BLOCK],
}

/// A pointer to record `off` of block `blk` (only the address is computed).
fn slot_ptr<T>(blk: *mut Block<T>, off: u32) -> *mut Slot<T> {
    // `off & MASK < BLOCK`: inside the block's `slots`.
    blk.wrapping_byte_add(core::mem::offset_of!(Block<T>, slots))
        .cast::<Slot<T>>()
        .wrapping_add((off & MASK) as usize)
}

/// An [`IdStore`] over a direct-mapped table (see the module documentation).
///
/// # Invariants
///
/// `top` points to `nblocks` atomic block pointers and `full` to `nblocks.div_ceil(64)` words,
/// both from `mem`. A non-null block pointer points to a `Block<T>` from `mem`, never freed
/// before the store is dropped; a record's value is initialised iff its `used` bit is set. A
/// block's bit in `full` is set iff its `count` is [`BLOCK`]. The top array and the blocks are
/// only changed (and only accessed) through the store.
pub struct DenseStore<T, M: BlockMemory> {
    top: NonNull<AtomicPtr<Block<T>>>,
    full: NonNull<u64>,
    nblocks: usize,
    /// IDs are `0..capacity`.
    capacity: u32,
    /// Every ID below it is in use (a search for the lowest free ID starts here).
    hint: u32,
    mem: M,
    _owns: PhantomData<T>,
}

// SAFETY: the store owns its `T`s (moving it moves them) and its memory handle.
unsafe impl<T: Send, M: BlockMemory + Send> Send for DenseStore<T, M> {}
// SAFETY: `&self` methods only hand out `&T` (needs `T: Sync`) and read the owner's bitmaps;
// every change needs `&mut self`.
unsafe impl<T: Send + Sync, M: BlockMemory + Sync> Sync for DenseStore<T, M> {}

impl<T, M: BlockMemory> DenseStore<T, M> {
    /// An empty store for IDs `0..2^bits` (`bits` is clamped to `1..=MAX_DENSE_BITS`).
    ///
    /// Errors: [`StoreError::NoMemory`] (the top array and the full bitmap are allocated here).
    pub fn new(bits: u32, mem: M) -> Result<Self, StoreError> {
        let bits = bits.clamp(1, MAX_DENSE_BITS);
        let capacity = 1u32 << bits;
        let nblocks = (capacity as usize).div_ceil(BLOCK);
        let top_layout =
            Layout::array::<AtomicPtr<Block<T>>>(nblocks).map_err(|_| StoreError::NoMemory)?;
        let full_layout =
            Layout::array::<u64>(nblocks.div_ceil(64)).map_err(|_| StoreError::NoMemory)?;
        let top = mem.alloc_zeroed(top_layout).ok_or(StoreError::NoMemory)?;
        let Some(full) = mem.alloc_zeroed(full_layout) else {
            // SAFETY: `top` came from `alloc_zeroed(top_layout)` and is not used further.
            unsafe { mem.free(top, top_layout) };
            return Err(StoreError::NoMemory);
        };
        // INVARIANT: zeroed pointers are null (no block) and zeroed words mark nothing full.
        Ok(DenseStore {
            top: top.cast(),
            full: full.cast(),
            nblocks,
            capacity,
            hint: 0,
            mem,
            _owns: PhantomData,
        })
    }

    /// Number of IDs the store covers (`2^bits`).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn top_entry(&self, b: usize) -> &AtomicPtr<Block<T>> {
        // SAFETY: callers pass `b < nblocks`; the top array has `nblocks` initialised entries
        // (type invariant) and lives as long as `self`.
        unsafe { &*self.top.as_ptr().add(b) }
    }

    /// The block of `id`, if it exists and `id` is in range.
    #[inline]
    fn block_of(&self, id: u32) -> Option<*mut Block<T>> {
        let b = (id >> BLOCK_SHIFT) as usize;
        if b >= self.nblocks {
            return None;
        }
        // Relaxed: block pointers are only accessed through the store.
        let blk = self.top_entry(b).load(Ordering::Relaxed);
        (!blk.is_null()).then_some(blk)
    }

    /// The record of `id` if it holds a value.
    #[inline]
    fn occupied(&self, id: u32) -> Option<*mut Slot<T>> {
        let blk = self.block_of(id)?;
        let off = id & MASK;
        // SAFETY: a live block (type invariant); `off / 64 < WORDS`.
        let used = unsafe { (*blk).used[(off / 64) as usize] };
        (used & (1u64 << (off % 64)) != 0).then(|| slot_ptr(blk, off))
    }

    fn full_word(&self, w: usize) -> *mut u64 {
        // Callers pass `w < nblocks.div_ceil(64)`.
        self.full.as_ptr().wrapping_add(w)
    }

    #[cfg(test)]
    fn is_full(&self, b: usize) -> bool {
        // SAFETY: `b < nblocks`, so the word is inside the full bitmap.
        unsafe { *self.full_word(b / 64) & (1u64 << (b % 64)) != 0 }
    }

    fn set_full(&mut self, b: usize, full: bool) {
        let w = self.full_word(b / 64);
        let bit = 1u64 << (b % 64);
        // SAFETY: as in `is_full`; `&mut self` makes this the only access.
        unsafe {
            if full {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }

    /// The first block `>= from` and `<= last` that is not full (`last < nblocks`).
    #[inline]
    fn next_nonfull(&self, from: usize, last: usize) -> Option<usize> {
        let mut b = from;
        while b <= last {
            // SAFETY: `b <= last < nblocks`.
            let free = !unsafe { *self.full_word(b / 64) } & (u64::MAX << (b % 64));
            if free != 0 {
                let found = (b & !63) + free.trailing_zeros() as usize;
                return (found <= last).then_some(found);
            }
            b = (b | 63).saturating_add(1);
        }
        None
    }

    /// The lowest free ID in `min..=max` (`max < capacity`).
    #[inline]
    fn find_free(&self, min: u32, max: u32) -> Option<u32> {
        let (first, last) = ((min >> BLOCK_SHIFT) as usize, (max >> BLOCK_SHIFT) as usize);
        let mut b = self.next_nonfull(first, last)?;
        loop {
            let lo = if b == first { min & MASK } else { 0 };
            let hi = if b == last { max & MASK } else { MASK };
            let base = (b as u32) << BLOCK_SHIFT;
            // SAFETY: `b < nblocks`.
            let blk = unsafe { &*self.top.as_ptr().add(b) }.load(Ordering::Relaxed);
            if blk.is_null() {
                return Some(base | lo);
            }
            // SAFETY: a live block; `used` is only touched by the owner (we hold `&self`, no
            // `&mut self` exists).
            let used = unsafe { &(*blk).used };
            if let Some(off) = first_zero(used, lo, hi) {
                return Some(base | off);
            }
            b = self.next_nonfull(b.saturating_add(1), last)?;
        }
    }

    /// The block of `id`, allocated (zeroed) if needed.
    #[inline]
    fn ensure_block(&mut self, id: u32) -> Result<*mut Block<T>, StoreError> {
        if let Some(blk) = self.block_of(id) {
            return Ok(blk);
        }
        let b = (id >> BLOCK_SHIFT) as usize;
        if b >= self.nblocks {
            return Err(StoreError::Occupied);
        }
        let blk = self
            .mem
            .alloc_zeroed(Layout::new::<Block<T>>())
            .ok_or(StoreError::NoMemory)?
            .cast::<Block<T>>()
            .as_ptr();
        // Only the store reads block pointers; Release is not needed but costs nothing here.
        self.top_entry(b).store(blk, Ordering::Release);
        Ok(blk)
    }

    /// Stores `value` at the free `id` (in range).
    #[inline]
    fn put(&mut self, id: u32, value: T) -> Result<(), StoreError> {
        let blk = match self.ensure_block(id) {
            Ok(blk) => blk,
            Err(e) => {
                drop(value);
                return Err(e);
            }
        };
        let off = id & MASK;
        let s = slot_ptr(blk, off);
        // SAFETY: `blk` is a live block and `id` was free (callers check), so the record holds
        // no value; `&mut self` makes this the only access.
        let count = unsafe {
            (*(*s).get()).write(value);
            (*blk).used[(off / 64) as usize] |= 1u64 << (off % 64);
            (*blk).count = (*blk).count.wrapping_add(1);
            (*blk).count
        };
        if count as usize == BLOCK {
            self.set_full((id >> BLOCK_SHIFT) as usize, true);
        }
        Ok(())
    }
}

/// The first clear bit of `used` in `lo..=hi` (`hi < BLOCK`).
fn first_zero(used: &[u64; WORDS], lo: u32, hi: u32) -> Option<u32> {
    let mut w = (lo / 64) as usize;
    let mut mask = u64::MAX << (lo % 64);
    while w <= (hi / 64) as usize {
        let free = !*used.get(w)? & mask;
        if free != 0 {
            let off = (w as u32) * 64 + free.trailing_zeros();
            return (off <= hi).then_some(off);
        }
        w += 1;
        mask = u64::MAX;
    }
    None
}

impl<T, M: BlockMemory> IdStore<T> for DenseStore<T, M> {
    #[inline]
    fn alloc(&mut self, min: u32, max: u32, value: T) -> Result<u32, StoreError> {
        let max = max.min(self.capacity - 1);
        let from = min.max(self.hint);
        let Some(id) = (from <= max).then(|| self.find_free(from, max)).flatten() else {
            drop(value);
            return Err(StoreError::Full);
        };
        self.put(id, value)?;
        if from == self.hint {
            // Everything in `hint..id` was in use, and `id` is now.
            self.hint = id.saturating_add(1);
        }
        Ok(id)
    }

    fn insert(&mut self, id: u32, value: T) -> Result<(), StoreError> {
        if id >= self.capacity || self.occupied(id).is_some() {
            drop(value);
            return Err(StoreError::Occupied);
        }
        self.put(id, value)
    }

    #[inline]
    fn get(&self, id: u32) -> Option<&T> {
        let s = self.occupied(id)?;
        // SAFETY: a set `used` bit means an initialised value (type invariant); removing it
        // needs `&mut self`, so it outlives the shared borrow of `self`.
        Some(unsafe { (*(*s).get()).assume_init_ref() })
    }

    #[inline]
    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let s = self.occupied(id)?;
        // SAFETY: as in `get`; `&mut self` excludes every other borrow of the store's values.
        Some(unsafe { (*(*s).get()).assume_init_mut() })
    }

    #[inline]
    fn remove(&mut self, id: u32) -> Option<T> {
        let s = self.occupied(id)?;
        let blk = self.block_of(id)?;
        let off = id & MASK;
        // SAFETY: `s` is an occupied record of the live block `blk`; its value is moved out
        // and its `used` bit cleared, under `&mut self`.
        let value = unsafe {
            (*blk).used[(off / 64) as usize] &= !(1u64 << (off % 64));
            (*blk).count = (*blk).count.wrapping_sub(1);
            (*(*s).get()).assume_init_read()
        };
        self.set_full((id >> BLOCK_SHIFT) as usize, false);
        self.hint = self.hint.min(id);
        Some(value)
    }

    fn next(&self, from: u32) -> Option<(u32, &T)> {
        let mut b = (from >> BLOCK_SHIFT) as usize;
        let mut lo = from & MASK;
        while b < self.nblocks {
            // SAFETY: `b < nblocks`.
            let blk = unsafe { &*self.top.as_ptr().add(b) }.load(Ordering::Relaxed);
            if !blk.is_null() {
                // SAFETY: a live block; `used` is owner-only and we hold `&self`.
                let used = unsafe { &(*blk).used };
                let mut w = (lo / 64) as usize;
                let mut mask = u64::MAX << (lo % 64);
                while let Some(&bits) = used.get(w) {
                    let set = bits & mask;
                    if set != 0 {
                        let id =
                            ((b as u32) << BLOCK_SHIFT) | (w as u32 * 64 + set.trailing_zeros());
                        return self.get(id).map(|v| (id, v));
                    }
                    w += 1;
                    mask = u64::MAX;
                }
            }
            b += 1;
            lo = 0;
        }
        None
    }
}

impl<T, M: BlockMemory> Drop for DenseStore<T, M> {
    fn drop(&mut self) {
        for b in 0..self.nblocks {
            let blk = self.top_entry(b).load(Ordering::Relaxed);
            let Some(blk) = NonNull::new(blk) else {
                continue;
            };
            for off in 0..BLOCK as u32 {
                let s = slot_ptr(blk.as_ptr(), off);
                // SAFETY: a record of a live block; a set `used` bit: an initialised value,
                // dropped once here.
                unsafe {
                    if (*blk.as_ptr()).used[(off / 64) as usize] & (1u64 << (off % 64)) != 0 {
                        ptr::drop_in_place((*(*s).get()).as_mut_ptr());
                    }
                }
            }
            // SAFETY: blocks come from `alloc_zeroed` with this layout and are unused now.
            unsafe { self.mem.free(blk.cast(), Layout::new::<Block<T>>()) };
        }
        // SAFETY: both arrays come from `alloc_zeroed` with these layouts (they were computed
        // successfully in `new` with the same `nblocks`).
        unsafe {
            if let Ok(l) = Layout::array::<AtomicPtr<Block<T>>>(self.nblocks) {
                self.mem.free(self.top.cast(), l);
            }
            if let Ok(l) = Layout::array::<u64>(self.nblocks.div_ceil(64)) {
                self.mem.free(self.full.cast(), l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicUsize;

    /// Heap memory that counts live allocations and can be made to fail.
    #[derive(Default)]
    struct Heap {
        live: AtomicUsize,
        fail: core::sync::atomic::AtomicBool,
    }

    // SAFETY: `std::alloc::alloc_zeroed` returns zeroed memory of the layout or null.
    unsafe impl BlockMemory for &Heap {
        fn alloc_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
            if self.fail.load(Ordering::SeqCst) {
                return None;
            }
            // SAFETY: layouts here are never zero-sized.
            let p = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
            self.live.fetch_add(1, Ordering::SeqCst);
            Some(p)
        }
        unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
            self.live.fetch_sub(1, Ordering::SeqCst);
            // SAFETY: caller.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
        }
    }

    #[test]
    fn lowest_free_across_blocks_and_bounds() {
        let heap = Heap::default();
        {
            let mut s = DenseStore::<u64, _>::new(12, &heap).unwrap();
            assert_eq!(s.capacity(), 4096);
            for i in 1..=600u32 {
                assert_eq!(s.alloc(1, 4095, i as u64), Ok(i));
            }
            assert_eq!(heap.live.load(Ordering::SeqCst), 2 + 3); // top, full, 3 blocks
            assert_eq!(s.remove(300), Some(300));
            assert_eq!(s.remove(300), None);
            assert_eq!(s.alloc(1, 4095, 7), Ok(300));
            assert_eq!(s.alloc(256, 511, 0), Err(StoreError::Full));
            assert_eq!(s.alloc(4000, 5000, 1), Ok(4000)); // clamped to the capacity
            assert_eq!(s.alloc(4095, 4095, 1), Ok(4095));
            assert_eq!(s.alloc(4095, u32::MAX, 1), Err(StoreError::Full));
            assert_eq!(s.alloc(5000, 6000, 1), Err(StoreError::Full));
            assert_eq!(s.insert(4095, 1), Err(StoreError::Occupied));
            assert_eq!(s.insert(4096, 1), Err(StoreError::Occupied));
            assert_eq!(s.insert(2000, 9), Ok(()));
            assert_eq!(s.get(2000), Some(&9));
            *s.get_mut(2000).unwrap() = 10;
            assert_eq!(s.next(601), Some((2000, &10)));
            assert_eq!(s.next(2001), Some((4000, &1)));
            assert_eq!(s.next(4096), None);
            assert_eq!(s.get(601), None);
            assert_eq!(s.get(1 << 20), None);
        }
        assert_eq!(heap.live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn full_blocks_are_skipped_and_reopened() {
        let heap = Heap::default();
        let mut s = DenseStore::<u32, _>::new(20, &heap).unwrap();
        for i in 0..(BLOCK as u32 * 70) {
            assert_eq!(s.alloc(0, 1 << 20, i), Ok(i));
        }
        assert!((0..70).all(|b| s.is_full(b)));
        assert_eq!(s.remove(64 * BLOCK as u32 + 5), Some(64 * BLOCK as u32 + 5));
        assert!(!s.is_full(64));
        assert_eq!(s.alloc(0, 1 << 20, 0), Ok(64 * BLOCK as u32 + 5));
        assert!(s.is_full(64));
        assert_eq!(s.alloc(3, 1 << 20, 0), Ok(70 * BLOCK as u32));
    }

    #[test]
    fn out_of_memory_leaves_the_store_unchanged() {
        let heap = Heap::default();
        let mut s = DenseStore::<std::rc::Rc<()>, _>::new(10, &heap).unwrap();
        let v = std::rc::Rc::new(());
        heap.fail.store(true, Ordering::SeqCst);
        assert_eq!(s.alloc(1, 1023, v.clone()), Err(StoreError::NoMemory));
        assert_eq!(s.insert(5, v.clone()), Err(StoreError::NoMemory));
        assert_eq!(std::rc::Rc::strong_count(&v), 1);
        heap.fail.store(false, Ordering::SeqCst);
        assert_eq!(s.alloc(1, 1023, v.clone()), Ok(1));
        heap.fail.store(true, Ordering::SeqCst);
        assert_eq!(s.alloc(1, 1023, v.clone()), Ok(2)); // block exists: no allocation
        drop(s);
        assert_eq!(std::rc::Rc::strong_count(&v), 1);
        assert!(DenseStore::<u8, _>::new(10, &heap).is_err());
    }

    #[test]
    fn matches_a_map() {
        // A deterministic random walk against a BTreeMap.
        let heap = Heap::default();
        let mut s = DenseStore::<u32, _>::new(11, &heap).unwrap();
        let mut m = BTreeMap::new();
        let mut x = 0x1234_5678u32;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let id = x % 2100;
            match x % 5 {
                0 | 1 => {
                    let (lo, hi) = (id.min(x >> 21), id.max(x >> 21));
                    let want = (lo..=hi.min(2047)).find(|i| !m.contains_key(i));
                    let got = s.alloc(lo, hi, step);
                    assert_eq!(got.ok(), want, "alloc({lo}, {hi})");
                    if let Some(w) = want {
                        m.insert(w, step);
                    }
                }
                2 => assert_eq!(s.remove(id), m.remove(&id)),
                3 => assert_eq!(s.next(id), m.range(id..).next().map(|(k, v)| (*k, v))),
                _ => {
                    let ok = s.insert(id, step).is_ok();
                    assert_eq!(ok, id < 2048 && !m.contains_key(&id));
                    if ok {
                        m.insert(id, step);
                    }
                }
            }
        }
    }
}
