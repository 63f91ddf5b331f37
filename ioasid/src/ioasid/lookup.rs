// SPDX-License-Identifier: GPL-2.0
//! The lockless lookup table behind [`Ioasid::find_word`](super::Ioasid::find_word):
//! [`Lookup`] (what the core keeps up to date), [`HotTable`] (the implementation) and
//! [`NoLookup`] (none: lookups take the state lock).
//!
//! [`HotTable`] keeps 16 bytes per PASID, in a direct-mapped two-level table like
//! [`DenseStore`](super::DenseStore)'s: a *key* (the owning set's ID and the PASID's state, in
//! one atomic word) and the *data word*. A lookup hit is: the top entry (block pointer and block
//! sequence count, one cache line that lookups of the whole block share), the record's key
//! (compared with the caller's set), the word, and the sequence count again. A miss is decided
//! from the key alone (no owner: `ENOENT`; another owner: `EACCES`). Blocks of 256 records
//! (4 KiB) are allocated on first use and kept until the table is dropped, so readers need no
//! RCU read-side section.
//!
//! # Validation
//!
//! Only the state lock holder writes. The key is one atomic, so a miss is a consistent
//! snapshot. A hit must make sure that the word it read belongs to the incarnation of the
//! PASID whose key it saw: a record is reused for a new incarnation (possibly another set's)
//! only by [`publish`](Lookup::publish), which makes the block's sequence count odd, fences,
//! writes the word and the key, and makes the count even again. The reader reads the count
//! (even), the key, the word, fences, and reads the count again: equal counts mean no
//! incarnation began in the block meanwhile, so the word is the one of the incarnation whose
//! key was seen (its current data, or the data it had when it was freed after the key was
//! read); otherwise the reader retries, and after a few failed tries (heavy allocation in the
//! same block) reports that it could not decide and the caller takes the state lock.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{BlockMemory, Error, Pasid, SetId, StoreError, MAX_DENSE_BITS};

/// A table that [`IoasidCore`](super::IoasidCore) keeps in step with its PASIDs so that
/// [`Ioasid::find_word`](super::Ioasid::find_word) can look PASIDs up without the state lock.
///
/// The core calls the `&mut self` methods under the state lock, in the order the PASID's life
/// cycle dictates: `publish` once the PASID is stored (active), `set_word` on `set_data`,
/// `freed` when it is freed while referenced, `clear` when it starts releasing (or its
/// allocation is rolled back).
pub trait Lookup {
    /// The lockless reader type.
    type Reader: LookupReader;

    /// A reader of this table.
    ///
    /// # Safety
    ///
    /// The caller uses the reader only while the table exists (it may be moved meanwhile).
    unsafe fn reader(&self) -> Self::Reader;

    /// `pasid` is now active, owned by `set`, with data word `word` (a new incarnation).
    ///
    /// Errors: [`StoreError::NoMemory`]; the table is unchanged then.
    fn publish(&mut self, pasid: Pasid, set: SetId, word: usize) -> Result<(), StoreError>;

    /// The data word of the active `pasid` changed.
    fn set_word(&mut self, pasid: Pasid, word: usize);

    /// The active `pasid` of `set` was freed while referenced (not findable; `EACCES` for other
    /// sets).
    fn freed(&mut self, pasid: Pasid, set: SetId);

    /// `pasid` is releasing or gone: not findable by anyone (`ENOENT`).
    fn clear(&mut self, pasid: Pasid);
}

/// The lockless side of a [`Lookup`].
pub trait LookupReader {
    /// What [`IoasidCore::find`](super::IoasidCore::find) followed by
    /// [`Backend::data_word`](super::Backend::data_word) would have returned at some instant
    /// during the call, or `None` if the reader could not tell (the caller then takes the state
    /// lock).
    fn find(&self, set: SetId, pasid: Pasid) -> Option<Result<usize, Error>>;
}

/// No lookup table: [`Ioasid::find_word`](super::Ioasid::find_word) takes the state lock.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLookup;

impl Lookup for NoLookup {
    type Reader = NoLookup;
    unsafe fn reader(&self) -> NoLookup {
        NoLookup
    }
    fn publish(&mut self, _pasid: Pasid, _set: SetId, _word: usize) -> Result<(), StoreError> {
        Ok(())
    }
    fn set_word(&mut self, _pasid: Pasid, _word: usize) {}
    fn freed(&mut self, _pasid: Pasid, _set: SetId) {}
    fn clear(&mut self, _pasid: Pasid) {}
}

impl LookupReader for NoLookup {
    fn find(&self, _set: SetId, _pasid: Pasid) -> Option<Result<usize, Error>> {
        None
    }
}

const SHIFT: u32 = 8;
const RECORDS: usize = 1 << SHIFT;
const MASK: u32 = (RECORDS as u32) - 1;

/// Key state bits (the low two bits; the rest is the owner).
const ACTIVE: u64 = 1;
const FREED: u64 = 2;
/// Set indices must fit in the key: `index << 2` in the low 32 bits.
pub const MAX_KEY_SET_INDEX: u32 = (1 << 30) - 1;

/// The key of a PASID of `set` in `state` (`None` if the index does not fit: no such set can
/// exist, see [`MAX_KEY_SET_INDEX`]).
#[inline]
fn key(set: SetId, state: u64) -> Option<u64> {
    (set.index() <= MAX_KEY_SET_INDEX)
        .then(|| (u64::from(set.generation()) << 32) | (u64::from(set.index()) << 2) | state)
}

/// One PASID: the key (0: no owner) and the data word.
#[repr(C)]
struct Hot {
    key: AtomicU64,
    word: AtomicUsize,
}

/// A top-level entry: the block (null until the first PASID of the block is published) and
/// the block's sequence count (odd while an incarnation is being published).
#[repr(C)]
struct Top {
    blk: AtomicPtr<Hot>,
    seq: AtomicU32,
}

/// [`Lookup`] over a direct-mapped table (see the module documentation).
///
/// # Invariants
///
/// `top` points to `nblocks` entries from `mem`; a non-null block pointer points to `RECORDS`
/// zero-initialised-or-written `Hot`s from `mem`, freed only when the table is dropped.
pub struct HotTable<M: BlockMemory> {
    top: NonNull<Top>,
    nblocks: usize,
    mem: M,
}

// SAFETY: the table owns its memory (atomics only); changes need `&mut self`.
unsafe impl<M: BlockMemory + Send> Send for HotTable<M> {}
// SAFETY: as above; `&self` methods only create readers.
unsafe impl<M: BlockMemory + Sync> Sync for HotTable<M> {}

impl<M: BlockMemory> HotTable<M> {
    /// An empty table for PASIDs `0..2^bits` (`bits` clamped to `1..=MAX_DENSE_BITS`).
    ///
    /// Errors: [`StoreError::NoMemory`] (the top array is allocated here).
    pub fn new(bits: u32, mem: M) -> Result<Self, StoreError> {
        let bits = bits.clamp(1, MAX_DENSE_BITS);
        let nblocks = (1usize << bits).div_ceil(RECORDS);
        let layout = Layout::array::<Top>(nblocks).map_err(|_| StoreError::NoMemory)?;
        let top = mem.alloc_zeroed(layout).ok_or(StoreError::NoMemory)?;
        // INVARIANT: zeroed entries: no blocks, even counts.
        Ok(HotTable {
            top: top.cast(),
            nblocks,
            mem,
        })
    }

    #[inline]
    fn top(&self, pasid: Pasid) -> Option<&Top> {
        let b = (pasid >> SHIFT) as usize;
        // SAFETY: `b < nblocks` entries, alive as long as `self`.
        (b < self.nblocks).then(|| unsafe { &*self.top.as_ptr().add(b) })
    }

    /// The record of `pasid` if its block exists.
    #[inline]
    fn hot(&self, pasid: Pasid) -> Option<&Hot> {
        let blk = self.top(pasid)?.blk.load(Ordering::Relaxed);
        // SAFETY: a live block of `RECORDS` records; `pasid & MASK < RECORDS`.
        (!blk.is_null()).then(|| unsafe { &*blk.add((pasid & MASK) as usize) })
    }
}

impl<M: BlockMemory> Lookup for HotTable<M> {
    type Reader = HotReader;

    unsafe fn reader(&self) -> HotReader {
        // INVARIANT: the caller keeps the table alive while it uses the reader.
        HotReader {
            top: self.top,
            nblocks: self.nblocks,
            _not_owned: PhantomData,
        }
    }

    #[inline]
    fn publish(&mut self, pasid: Pasid, set: SetId, word: usize) -> Result<(), StoreError> {
        let key = key(set, ACTIVE).ok_or(StoreError::Occupied)?;
        let Some(top) = self.top(pasid) else {
            return Err(StoreError::Occupied);
        };
        let mut blk = top.blk.load(Ordering::Relaxed);
        if blk.is_null() {
            let layout = Layout::array::<Hot>(RECORDS).map_err(|_| StoreError::NoMemory)?;
            blk = self
                .mem
                .alloc_zeroed(layout)
                .ok_or(StoreError::NoMemory)?
                .cast::<Hot>()
                .as_ptr();
            // Release: readers that see the block see it zeroed.
            top.blk.store(blk, Ordering::Release);
        }
        // SAFETY: a live block; `pasid & MASK < RECORDS`.
        let hot = unsafe { &*blk.add((pasid & MASK) as usize) };
        let seq = top.seq.load(Ordering::Relaxed);
        top.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd count before the new incarnation's writes (see the module docs).
        fence(Ordering::Release);
        hot.word.store(word, Ordering::Relaxed);
        // Relaxed: a reader that sees this key before the even count below fails its second
        // count check (it sees the odd count at least, by the fence above); one that acquires
        // the even count sees the key and the word.
        hot.key.store(key, Ordering::Relaxed);
        top.seq.store(seq.wrapping_add(2), Ordering::Release);
        Ok(())
    }

    // Relaxed stores below: each is one atomic that readers use on its own (a state change
    // decided from the key alone, or a new word of the same incarnation); ordering with the
    // caller's later synchronisation comes from the state lock's release.

    #[inline]
    fn set_word(&mut self, pasid: Pasid, word: usize) {
        if let Some(hot) = self.hot(pasid) {
            hot.word.store(word, Ordering::Relaxed);
        }
    }

    #[inline]
    fn freed(&mut self, pasid: Pasid, set: SetId) {
        if let (Some(hot), Some(k)) = (self.hot(pasid), key(set, FREED)) {
            hot.key.store(k, Ordering::Relaxed);
        }
    }

    #[inline]
    fn clear(&mut self, pasid: Pasid) {
        if let Some(hot) = self.hot(pasid) {
            hot.key.store(0, Ordering::Relaxed);
        }
    }
}

impl<M: BlockMemory> Drop for HotTable<M> {
    fn drop(&mut self) {
        // No reader runs any more (readers are used only while the table exists).
        if let Ok(layout) = Layout::array::<Hot>(RECORDS) {
            for b in 0..self.nblocks {
                // SAFETY: `b < nblocks`.
                let blk = unsafe { &*self.top.as_ptr().add(b) }
                    .blk
                    .load(Ordering::Relaxed);
                if let Some(blk) = NonNull::new(blk) {
                    // SAFETY: blocks come from `alloc_zeroed(layout)` and are unused now.
                    unsafe { self.mem.free(blk.cast(), layout) };
                }
            }
        }
        if let Ok(layout) = Layout::array::<Top>(self.nblocks) {
            // SAFETY: the top array came from `alloc_zeroed(layout)` (same `nblocks`).
            unsafe { self.mem.free(self.top.cast(), layout) };
        }
    }
}

/// Tries a hit gets before giving up (a block busy with allocations).
const TRIES: u32 = 4;

/// The lockless reader of a [`HotTable`].
///
/// # Invariants
///
/// `top` is the top array (`nblocks` entries) of a `HotTable` that outlives every use of the
/// reader.
pub struct HotReader {
    top: NonNull<Top>,
    nblocks: usize,
    _not_owned: PhantomData<*const Top>,
}

// SAFETY: the reader only does atomic loads of the table's memory, from any thread.
unsafe impl Send for HotReader {}
// SAFETY: as above.
unsafe impl Sync for HotReader {}

impl LookupReader for HotReader {
    #[inline]
    fn find(&self, set: SetId, pasid: Pasid) -> Option<Result<usize, Error>> {
        let b = (pasid >> SHIFT) as usize;
        if b >= self.nblocks {
            return Some(Err(Error::PasidNotFound));
        }
        // A set whose index does not fit in a key does not exist: not the owner of anything.
        let want = key(set, ACTIVE)?;
        // SAFETY: `b < nblocks`; the table is alive (type invariant).
        let top = unsafe { &*self.top.as_ptr().add(b) };
        for _ in 0..TRIES {
            // Relaxed loads and acquire fences (`dmb ishld` on arm64) rather than acquire loads:
            // the same ordering, and cheaper where acquire loads cost a full barrier (QEMU TCG).
            let start = top.seq.load(Ordering::Relaxed);
            let blk = top.blk.load(Ordering::Relaxed);
            // Acquire: pairs with the release of the block pointer and of the even count, so
            // the record is initialised and holds at least that incarnation's key and word.
            fence(Ordering::Acquire);
            if blk.is_null() {
                return Some(Err(Error::PasidNotFound));
            }
            if start & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            // SAFETY: a block stays allocated while the table exists; `pasid & MASK < RECORDS`.
            let hot = unsafe { &*blk.add((pasid & MASK) as usize) };
            let k = hot.key.load(Ordering::Relaxed);
            if k != want {
                // One atomic snapshot of owner and state: decided without validation.
                return Some(Err(if k == 0 || k == want ^ ACTIVE ^ FREED {
                    Error::PasidNotFound
                } else {
                    Error::NotOwner
                }));
            }
            let word = hot.word.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if top.seq.load(Ordering::Relaxed) == start {
                return Some(Ok(word));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Heap;
    // SAFETY: `std::alloc::alloc_zeroed` returns zeroed memory of the layout or null.
    unsafe impl BlockMemory for Heap {
        fn alloc_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
            // SAFETY: never zero-sized here.
            NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
        }
        unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: caller.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
        }
    }

    #[test]
    fn hits_misses_and_states() {
        let mut t = HotTable::new(12, Heap).unwrap();
        // SAFETY: `t` outlives `r`.
        let r = unsafe { t.reader() };
        let (a, b) = (SetId::from_raw(1 << 32 | 1), SetId::from_raw(2 << 32 | 2));
        let stale = SetId::from_raw(5 << 32 | 1);
        assert_eq!(r.find(a, 7), Some(Err(Error::PasidNotFound)));
        assert_eq!(r.find(a, 1 << 20), Some(Err(Error::PasidNotFound)));
        t.publish(7, a, 70).unwrap();
        assert_eq!(r.find(a, 7), Some(Ok(70)));
        assert_eq!(r.find(b, 7), Some(Err(Error::NotOwner)));
        assert_eq!(r.find(stale, 7), Some(Err(Error::NotOwner)));
        assert_eq!(r.find(a, 8), Some(Err(Error::PasidNotFound)));
        t.set_word(7, 71);
        assert_eq!(r.find(a, 7), Some(Ok(71)));
        t.freed(7, a);
        assert_eq!(r.find(a, 7), Some(Err(Error::PasidNotFound)));
        assert_eq!(r.find(b, 7), Some(Err(Error::NotOwner)));
        t.clear(7);
        assert_eq!(r.find(a, 7), Some(Err(Error::PasidNotFound)));
        assert_eq!(r.find(b, 7), Some(Err(Error::PasidNotFound)));
        t.publish(7, b, 72).unwrap();
        assert_eq!(r.find(b, 7), Some(Ok(72)));
        assert_eq!(r.find(a, 7), Some(Err(Error::NotOwner)));
        // Indices beyond the key's range name no set: undecided (locked lookup).
        let big = SetId::from_raw(u64::from(MAX_KEY_SET_INDEX) + 1);
        assert_eq!(r.find(big, 7), None);
        assert_eq!(t.publish(9, big, 0), Err(StoreError::Occupied));
        assert_eq!(t.publish(4096, a, 0), Err(StoreError::Occupied));
    }

    #[test]
    fn a_reuse_during_a_hit_is_not_returned() {
        let mut t = HotTable::new(10, Heap).unwrap();
        let a = SetId::from_raw(1 << 32 | 1);
        t.publish(3, a, 30).unwrap();
        // SAFETY: `t` outlives `r`.
        let r = unsafe { t.reader() };
        let top = t.top(3).unwrap();
        // An odd count (a publish in progress) makes every try fail.
        let s = top.seq.load(Ordering::Relaxed);
        top.seq.store(s + 1, Ordering::Relaxed);
        assert_eq!(r.find(a, 3), None);
        top.seq.store(s + 2, Ordering::Relaxed);
        assert_eq!(r.find(a, 3), Some(Ok(30)));
    }
}
