// SPDX-License-Identifier: GPL-2.0
//! The lockless lookup table behind [`Ioasid::find_word`](super::Ioasid::find_word):
//! [`Lookup`] (what the core keeps up to date), [`HotTable`] (the implementation) and
//! [`NoLookup`] (none: lookups take the state lock).
//!
//! [`HotTable`] keeps 12 bytes per PASID, in a direct-mapped two-level table like
//! [`DenseStore`](super::DenseStore)'s: a 32-bit *key* (the owning set's index and the PASID's
//! state) and the *data word*, in groups of four keys and four words (48 bytes, so a PASID's key
//! and word are side by side) in blocks of 1024 PASIDs, plus one 32-bit *generation* per set
//! index (a second small table, filled when a set is created). A lookup hit is: the top entry (block pointer
//! and block sequence count, one cache line that lookups of the whole block share), the key
//! (compared with the caller's set index), the word, the generation of the caller's set index
//! (compared with the caller's), then the key and the count again. A PASID of another set index
//! is `EACCES` from the key alone, a key of no owner `ENOENT`. Blocks are allocated on first use
//! and kept until the table is dropped, so readers need no RCU read-side section.
//!
//! # Validation
//!
//! Only the state lock holder writes. A key is one atomic, so a miss decided from it is a
//! consistent snapshot. A hit must make sure that the word it read belongs to the incarnation of
//! the PASID whose key it saw, and that the generation it read is the one of the set that owns
//! that incarnation: a record starts a new incarnation (possibly another set's) only through
//! [`publish`](Lookup::publish), which makes the block's sequence count odd, fences, writes the
//! word and the key, and makes the count even again. The reader reads the count (even), the
//! key, the word and the generation, fences, and reads the key and the count again: an
//! unchanged count means no incarnation began in the block meanwhile, and an unchanged key that
//! the incarnation was still active (or still freed) when the generation was read, so its set
//! was alive and at its index (a set's index is reused only after all its PASIDs are released,
//! and the new set's generation is stored with release, after those releases cleared the
//! keys). Otherwise the reader retries, and after a few failed tries (heavy allocation in the
//! same block) reports that it could not decide and the caller takes the state lock.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

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

    /// `set` was just created (before any of its PASIDs is published).
    ///
    /// Errors: [`StoreError::NoMemory`]; [`StoreError::Occupied`] if the set's index cannot be
    /// represented. The set creation fails then.
    fn set_created(&mut self, set: SetId) -> Result<(), StoreError>;

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
    fn set_created(&mut self, _set: SetId) -> Result<(), StoreError> {
        Ok(())
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

const SHIFT: u32 = 10;
const RECORDS: usize = 1 << SHIFT;
const MASK: u32 = (RECORDS as u32) - 1;
/// Set generations per block of the generation table.
const GEN_SHIFT: u32 = 10;
const GENS: usize = 1 << GEN_SHIFT;

/// Key state bits (the low two bits; the rest is the owner's set index).
const ACTIVE: u32 = 1;
const FREED: u32 = 2;
/// Largest set index a [`HotTable`] can name (so at most this many sets; the generation table
/// has one 32-bit word per index, in 4 KiB blocks allocated as sets are created).
pub const MAX_KEY_SET_INDEX: u32 = (1 << 20) - 1;

/// The key of a PASID of set index `index` in `state` (`None` if the index does not fit: no
/// such set can exist, see [`MAX_KEY_SET_INDEX`]).
#[inline]
fn key(index: u32, state: u32) -> Option<u32> {
    (index <= MAX_KEY_SET_INDEX).then_some((index << 2) | state)
}

/// Four records: their keys (0: no owner), then their data words (48 bytes, 12 per PASID, a
/// PASID's key and word side by side).
#[repr(C)]
struct Group {
    keys: [AtomicU32; 4],
    words: [AtomicUsize; 4],
}

/// A block of `RECORDS` records.
#[repr(C)]
struct Block {
    groups: [Group; RECORDS / 4],
}

impl Block {
    /// The key and the word of record `off` (`None` only for `off >= RECORDS`).
    #[inline]
    fn record(&self, off: usize) -> Option<(&AtomicU32, &AtomicUsize)> {
        let g = self.groups.get(off / 4)?;
        Some((g.keys.get(off % 4)?, g.words.get(off % 4)?))
    }
}

/// A top-level entry: the block (null until the first PASID of the block is published) and
/// the block's sequence count (odd while an incarnation is being published).
#[repr(C)]
struct Top {
    blk: AtomicPtr<Block>,
    seq: AtomicU32,
}

/// [`Lookup`] over a direct-mapped table (see the module documentation).
///
/// # Invariants
///
/// `top` points to `nblocks` entries and `gens` to `ngens` block pointers, all from `mem`; a
/// non-null block pointer points to a zero-initialised-or-written `Block` (or, in `gens`,
/// `GENS` `AtomicU32`s) from `mem`, freed only when the table is dropped. The generation of
/// every set created since (at its index) is in `gens` before any PASID of it is published.
pub struct HotTable<M: BlockMemory> {
    top: NonNull<Top>,
    nblocks: usize,
    gens: NonNull<AtomicPtr<AtomicU32>>,
    ngens: usize,
    mem: M,
}

// SAFETY: the table owns its memory (atomics only); changes need `&mut self`.
unsafe impl<M: BlockMemory + Send> Send for HotTable<M> {}
// SAFETY: as above; `&self` methods only create readers.
unsafe impl<M: BlockMemory + Sync> Sync for HotTable<M> {}

impl<M: BlockMemory> HotTable<M> {
    /// An empty table for PASIDs `0..2^bits` (`bits` clamped to `1..=MAX_DENSE_BITS`) and set
    /// indices `0..=max_sets` (clamped to [`MAX_KEY_SET_INDEX`]; the core refuses more sets).
    ///
    /// Errors: [`StoreError::NoMemory`] (the top arrays are allocated here).
    pub fn new(bits: u32, max_sets: u32, mem: M) -> Result<Self, StoreError> {
        let bits = bits.clamp(1, MAX_DENSE_BITS);
        let nblocks = (1usize << bits).div_ceil(RECORDS);
        let ngens = (max_sets.min(MAX_KEY_SET_INDEX) as usize + 1).div_ceil(GENS);
        let top_layout = Layout::array::<Top>(nblocks).map_err(|_| StoreError::NoMemory)?;
        let gens_layout =
            Layout::array::<AtomicPtr<AtomicU32>>(ngens).map_err(|_| StoreError::NoMemory)?;
        let top = mem.alloc_zeroed(top_layout).ok_or(StoreError::NoMemory)?;
        let Some(gens) = mem.alloc_zeroed(gens_layout) else {
            // SAFETY: `top` came from `alloc_zeroed(top_layout)` and is not used further.
            unsafe { mem.free(top, top_layout) };
            return Err(StoreError::NoMemory);
        };
        // INVARIANT: zeroed entries: no blocks, even counts.
        Ok(HotTable {
            top: top.cast(),
            nblocks,
            gens: gens.cast(),
            ngens,
            mem,
        })
    }

    #[inline]
    fn top(&self, pasid: Pasid) -> Option<&Top> {
        let b = (pasid >> SHIFT) as usize;
        // SAFETY: `b < nblocks` entries, alive as long as `self`.
        (b < self.nblocks).then(|| unsafe { &*self.top.as_ptr().add(b) })
    }

    /// The block of `pasid` if it exists.
    #[inline]
    fn block(&self, pasid: Pasid) -> Option<&Block> {
        let blk = self.top(pasid)?.blk.load(Ordering::Relaxed);
        // SAFETY: a live block (type invariant).
        (!blk.is_null()).then(|| unsafe { &*blk })
    }

    fn gen_block(&self, i: usize) -> Option<&AtomicPtr<AtomicU32>> {
        // SAFETY: `i < ngens` entries, alive as long as `self`.
        (i < self.ngens).then(|| unsafe { &*self.gens.as_ptr().add(i) })
    }
}

impl<M: BlockMemory> Lookup for HotTable<M> {
    type Reader = HotReader;

    unsafe fn reader(&self) -> HotReader {
        // INVARIANT: the caller keeps the table alive while it uses the reader.
        HotReader {
            top: self.top,
            nblocks: self.nblocks,
            gens: self.gens,
            ngens: self.ngens,
            _not_owned: PhantomData,
        }
    }

    fn set_created(&mut self, set: SetId) -> Result<(), StoreError> {
        let index = set.index();
        let Some(entry) = self.gen_block((index >> GEN_SHIFT) as usize) else {
            return Err(StoreError::Occupied);
        };
        let mut blk = entry.load(Ordering::Relaxed);
        if blk.is_null() {
            let layout = Layout::array::<AtomicU32>(GENS).map_err(|_| StoreError::NoMemory)?;
            blk = self
                .mem
                .alloc_zeroed(layout)
                .ok_or(StoreError::NoMemory)?
                .cast::<AtomicU32>()
                .as_ptr();
            entry.store(blk, Ordering::Release);
        }
        // SAFETY: a live block of `GENS` words; the index is masked.
        let g = unsafe { &*blk.add((index as usize) & (GENS - 1)) };
        // Release: a reader that sees this generation sees the key clears that preceded the
        // set's creation (the previous set at this index released all its PASIDs).
        g.store(set.generation(), Ordering::Release);
        Ok(())
    }

    #[inline]
    fn publish(&mut self, pasid: Pasid, set: SetId, word: usize) -> Result<(), StoreError> {
        let key = key(set.index(), ACTIVE).ok_or(StoreError::Occupied)?;
        let Some(top) = self.top(pasid) else {
            return Err(StoreError::Occupied);
        };
        let mut blk = top.blk.load(Ordering::Relaxed);
        if blk.is_null() {
            blk = self
                .mem
                .alloc_zeroed(Layout::new::<Block>())
                .ok_or(StoreError::NoMemory)?
                .cast::<Block>()
                .as_ptr();
            // Release: readers that see the block see it zeroed.
            top.blk.store(blk, Ordering::Release);
        }
        // SAFETY: a live block.
        let blk = unsafe { &*blk };
        let off = (pasid & MASK) as usize;
        let Some((k, w)) = blk.record(off) else {
            return Err(StoreError::Occupied);
        };
        let seq = top.seq.load(Ordering::Relaxed);
        top.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd count before the new incarnation's writes (see the module docs).
        fence(Ordering::Release);
        w.store(word, Ordering::Relaxed);
        // Relaxed: a reader that sees this key before the even count below fails its second
        // count check (it sees the odd count at least, by the fence above); one that acquires
        // the even count sees the key and the word.
        k.store(key, Ordering::Relaxed);
        top.seq.store(seq.wrapping_add(2), Ordering::Release);
        Ok(())
    }

    // Relaxed stores below: each is one atomic that readers check on its own or validate with
    // a second read (a state change, or a new word of the same incarnation); ordering with the
    // caller's later synchronisation comes from the state lock's release.

    #[inline]
    fn set_word(&mut self, pasid: Pasid, word: usize) {
        if let Some(w) = self
            .block(pasid)
            .and_then(|b| b.record((pasid & MASK) as usize))
            .map(|(_, w)| w)
        {
            w.store(word, Ordering::Relaxed);
        }
    }

    #[inline]
    fn freed(&mut self, pasid: Pasid, set: SetId) {
        let k = self
            .block(pasid)
            .and_then(|b| b.record((pasid & MASK) as usize))
            .map(|(k, _)| k);
        if let (Some(k), Some(v)) = (k, key(set.index(), FREED)) {
            k.store(v, Ordering::Relaxed);
        }
    }

    #[inline]
    fn clear(&mut self, pasid: Pasid) {
        if let Some(k) = self
            .block(pasid)
            .and_then(|b| b.record((pasid & MASK) as usize))
            .map(|(k, _)| k)
        {
            k.store(0, Ordering::Relaxed);
        }
    }
}

impl<M: BlockMemory> Drop for HotTable<M> {
    fn drop(&mut self) {
        // No reader runs any more (readers are used only while the table exists).
        let blocks = (0..self.nblocks).map(|b| {
            // SAFETY: `b < nblocks` entries, alive as long as `self`.
            unsafe { &*self.top.as_ptr().add(b) }
                .blk
                .load(Ordering::Relaxed)
                .cast::<u8>()
        });
        let block_layout = Layout::new::<Block>();
        for blk in blocks.filter_map(NonNull::new) {
            // SAFETY: blocks come from `alloc_zeroed(block_layout)` and are unused now.
            unsafe { self.mem.free(blk, block_layout) };
        }
        if let Ok(layout) = Layout::array::<AtomicU32>(GENS) {
            for i in 0..self.ngens {
                let blk = self.gen_block(i).map(|e| e.load(Ordering::Relaxed));
                if let Some(blk) = blk.and_then(NonNull::new) {
                    // SAFETY: generation blocks come from `alloc_zeroed(layout)`.
                    unsafe { self.mem.free(blk.cast(), layout) };
                }
            }
        }
        // SAFETY: the top arrays came from `alloc_zeroed` with these layouts (same lengths).
        unsafe {
            if let Ok(layout) = Layout::array::<Top>(self.nblocks) {
                self.mem.free(self.top.cast(), layout);
            }
            if let Ok(layout) = Layout::array::<AtomicPtr<AtomicU32>>(self.ngens) {
                self.mem.free(self.gens.cast(), layout);
            }
        }
    }
}

/// Tries a lookup gets before giving up (a block busy with allocations).
const TRIES: u32 = 4;

/// The lockless reader of a [`HotTable`].
///
/// # Invariants
///
/// `top` and `gens` are the top arrays (`nblocks`, `ngens` entries) of a `HotTable` that
/// outlives every use of the reader.
pub struct HotReader {
    top: NonNull<Top>,
    nblocks: usize,
    gens: NonNull<AtomicPtr<AtomicU32>>,
    ngens: usize,
    _not_owned: PhantomData<*const Top>,
}

// SAFETY: the reader only does atomic loads of the table's memory, from any thread.
unsafe impl Send for HotReader {}
// SAFETY: as above.
unsafe impl Sync for HotReader {}

impl HotReader {
    /// The generation of the set at `index` (0 if no set was ever created there).
    #[inline]
    fn generation(&self, index: u32) -> u32 {
        let i = (index >> GEN_SHIFT) as usize;
        if i >= self.ngens {
            return 0;
        }
        // SAFETY: `i < ngens`; the table is alive (type invariant).
        let blk = unsafe { &*self.gens.as_ptr().add(i) }.load(Ordering::Relaxed);
        if blk.is_null() {
            return 0;
        }
        // SAFETY: a live block of `GENS` words (the caller's acquire fence orders this read
        // after the block pointer's); the index is masked.
        unsafe { &*blk.add((index as usize) & (GENS - 1)) }.load(Ordering::Relaxed)
    }
}

impl LookupReader for HotReader {
    #[inline]
    fn find(&self, set: SetId, pasid: Pasid) -> Option<Result<usize, Error>> {
        let b = (pasid >> SHIFT) as usize;
        if b >= self.nblocks {
            return Some(Err(Error::PasidNotFound));
        }
        // A set whose index does not fit in a key does not exist: let the locked path decide.
        let want = key(set.index(), ACTIVE)?;
        let off = (pasid & MASK) as usize;
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
            // SAFETY: a block stays allocated while the table exists.
            let blk = unsafe { &*blk };
            let Some((key, word)) = blk.record(off) else {
                return Some(Err(Error::PasidNotFound));
            };
            let k = key.load(Ordering::Relaxed);
            if k == 0 {
                // No owner: one atomic snapshot decides.
                return Some(Err(Error::PasidNotFound));
            }
            if k >> 2 != set.index() {
                // Another set index owns it (active or freed): decided from the key alone.
                return Some(Err(Error::NotOwner));
            }
            // Our set index: the generation tells our set from a stale ID of an earlier set at
            // the same index; validate that key, word and generation belong together.
            let w = word.load(Ordering::Relaxed);
            let generation = self.generation(set.index());
            fence(Ordering::Acquire);
            if key.load(Ordering::Relaxed) != k || top.seq.load(Ordering::Relaxed) != start {
                continue;
            }
            return Some(if generation != set.generation() {
                Err(Error::NotOwner)
            } else if k == want {
                Ok(w)
            } else {
                // Our own PASID, freed while referenced.
                Err(Error::PasidNotFound)
            });
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
        let mut t = HotTable::new(12, 8, Heap).unwrap();
        // SAFETY: `t` outlives `r`.
        let r = unsafe { t.reader() };
        let (a, b) = (SetId::from_raw(1 << 32 | 1), SetId::from_raw(2 << 32 | 2));
        let stale = SetId::from_raw(5 << 32 | 1);
        t.set_created(a).unwrap();
        t.set_created(b).unwrap();
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
        assert_eq!(r.find(stale, 7), Some(Err(Error::NotOwner)));
        assert_eq!(r.find(b, 7), Some(Err(Error::NotOwner)));
        t.clear(7);
        assert_eq!(r.find(a, 7), Some(Err(Error::PasidNotFound)));
        assert_eq!(r.find(b, 7), Some(Err(Error::PasidNotFound)));
        t.publish(7, b, 72).unwrap();
        assert_eq!(r.find(b, 7), Some(Ok(72)));
        assert_eq!(r.find(a, 7), Some(Err(Error::NotOwner)));
        // A new set at a's index: a's ID is stale from now on.
        let a2 = SetId::from_raw(9 << 32 | 1);
        t.set_created(a2).unwrap();
        t.publish(9, a2, 90).unwrap();
        assert_eq!(r.find(a2, 9), Some(Ok(90)));
        assert_eq!(r.find(a, 9), Some(Err(Error::NotOwner)));
        // Indices beyond the key's range name no set: undecided (locked lookup).
        let big = SetId::from_raw(u64::from(MAX_KEY_SET_INDEX) + 1);
        assert_eq!(r.find(big, 7), None);
        assert_eq!(t.publish(9, big, 0), Err(StoreError::Occupied));
        assert_eq!(t.set_created(big), Err(StoreError::Occupied));
        assert_eq!(t.publish(4096, a, 0), Err(StoreError::Occupied));
    }

    #[test]
    fn a_publish_in_progress_is_not_returned() {
        let mut t = HotTable::new(10, 4, Heap).unwrap();
        let a = SetId::from_raw(1 << 32 | 1);
        t.set_created(a).unwrap();
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
