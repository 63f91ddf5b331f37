// SPDX-License-Identifier: GPL-2.0

//! XArray: an index-to-pointer map with ID allocation.
//!
//! C header: [`include/linux/xarray.h`](srctree/include/linux/xarray.h)
//!
//! [`XArray<T>`] owns its entries: each stored `T` is converted with
//! [`ForeignOwnable::into_foreign`] and converted back when erased, replaced or when the array is
//! dropped. All access goes through a [`Guard`] that holds the array's internal spinlock, so a
//! borrowed entry cannot be freed while it is used. The allocating operations may drop and
//! retake that lock to allocate memory when the GFP flags allow sleeping (as the C `__xa_alloc`
//! does); they never run with a borrow outstanding because they take `&mut Guard`.
//!
//! # Examples
//!
//! ```
//! use kernel::{alloc::flags::GFP_KERNEL, prelude::*, xarray::{AllocKind, XArray}};
//!
//! let xa = KBox::pin_init(XArray::<KBox<u32>>::new(AllocKind::Alloc1), GFP_KERNEL)?;
//! let mut guard = xa.lock();
//! let id = guard.alloc(1..=10, KBox::new(7, GFP_KERNEL)?, GFP_KERNEL)?;
//! assert_eq!(id, 1);
//! assert_eq!(guard.get(id).map(|v| *v), Some(7));
//! assert!(guard.remove(id).is_some());
//! # Ok::<(), Error>(())
//! ```

use crate::{
    alloc::Flags,
    bindings,
    error::{to_result, Error, Result},
    init::{InPlaceInit, PinInit},
    pin_init,
    types::{ForeignOwnable, Opaque},
};
use core::{
    marker::PhantomData,
    mem::MaybeUninit,
    ops::RangeInclusive,
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};
use macros::{pin_data, pinned_drop};

/// Which indices an allocating XArray hands out first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocKind {
    /// Allocation may return index 0 (`XA_FLAGS_ALLOC`).
    Alloc,
    /// Index 0 is never allocated (`XA_FLAGS_ALLOC1`).
    Alloc1,
}

/// An XArray owning values of type `T`.
///
/// # Invariants
///
/// `xa` is an initialised `struct xarray` created with `XA_FLAGS_ALLOC` or `XA_FLAGS_ALLOC1`.
/// Every non-null entry in it was produced by `T::into_foreign` and is owned by the array.
#[pin_data(PinnedDrop)]
pub struct XArray<T: ForeignOwnable> {
    #[pin]
    xa: Opaque<bindings::xarray>,
    _owns: PhantomData<T>,
}

// SAFETY: the array owns `T`s; moving it between threads moves them. The C structure itself has
// no thread affinity.
unsafe impl<T: ForeignOwnable + Send> Send for XArray<T> {}
// SAFETY: shared access only reaches entries through `Guard`, which serialises on the internal
// spinlock, so `T` only needs to be sendable between the threads that take turns.
unsafe impl<T: ForeignOwnable + Send> Sync for XArray<T> {}

impl<T: ForeignOwnable> XArray<T> {
    /// Creates an empty allocating XArray.
    pub fn new(kind: AllocKind) -> impl PinInit<Self> {
        let flags = match kind {
            AllocKind::Alloc => bindings::XA_FLAGS_ALLOC,
            AllocKind::Alloc1 => bindings::XA_FLAGS_ALLOC1,
        };
        pin_init!(Self {
            // SAFETY: `xa_init_flags` initialises the whole structure it is given.
            xa <- Opaque::ffi_init(|xa| unsafe { bindings::xa_init_flags(xa, flags) }),
            _owns: PhantomData,
        })
    }

    /// Whether `index` holds an entry: one lock-free `xa_load` (the entry is not touched).
    pub fn contains(&self, index: u32) -> bool {
        // SAFETY: the array is initialised; `xa_load` takes the RCU read lock itself, and the
        // returned pointer is only compared with null.
        !unsafe { bindings::xa_load(self.xa.get(), index as _) }.is_null()
    }

    /// Takes the array's lock. Do not hold it across anything that sleeps.
    pub fn lock(&self) -> Guard<'_, T> {
        // SAFETY: `self.xa` is initialised (type invariant).
        unsafe { bindings::xa_lock(self.xa.get()) };
        // INVARIANT: the lock was just taken.
        Guard { xa: self, _not_send: PhantomData }
    }
}

#[pinned_drop]
impl<T: ForeignOwnable> PinnedDrop for XArray<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // Entries are dropped with the lock released: `T`'s destructor may sleep.
        loop {
            let entry = {
                let mut guard = self.lock();
                let Some(index) = guard.find_from(0).map(|(i, _)| i) else { break };
                guard.remove(index)
            };
            drop(entry);
        }
        // SAFETY: every entry was erased above; `xa_destroy` frees the internal nodes.
        unsafe { bindings::xa_destroy(self.xa.get()) };
    }
}

/// Locked access to an [`XArray`].
///
/// # Invariants
///
/// The array's lock is held for the guard's lifetime.
pub struct Guard<'a, T: ForeignOwnable> {
    xa: &'a XArray<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, T: ForeignOwnable> Guard<'a, T> {
    fn raw(&self) -> *mut bindings::xarray {
        self.xa.xa.get()
    }

    /// The raw entry at `index` (null if none).
    fn load_raw(&self, index: u32) -> *mut core::ffi::c_void {
        // SAFETY: the array is initialised; `xa_load` takes the RCU read lock itself.
        unsafe { bindings::xa_load(self.raw(), index as _) }
    }

    /// The first present index `>= start` and its raw entry.
    fn find_raw(&self, start: u32) -> Option<(u32, *mut core::ffi::c_void)> {
        let mut index: usize = start as usize;
        // SAFETY: the array is initialised; `index` is a valid in/out pointer.
        let p = unsafe {
            bindings::xa_find(self.raw(), &mut index, u32::MAX as _, bindings::XA_PRESENT)
        };
        (!p.is_null()).then_some((index as u32, p))
    }

    /// Borrows the entry at `index`, if any (upstream's name; `xa_load`).
    pub fn get(&self, index: u32) -> Option<T::Borrowed<'_>> {
        let p = self.load_raw(index);
        if p.is_null() {
            return None;
        }
        // SAFETY: non-null entries come from `into_foreign` (type invariant of `XArray`); the
        // lock we hold keeps it from being erased while the borrow (tied to `&self`) lives.
        Some(unsafe { T::borrow(p) })
    }

    /// Returns the first present index `>= start` and a borrow of its entry.
    pub fn find_from(&self, start: u32) -> Option<(u32, T::Borrowed<'_>)> {
        let (index, p) = self.find_raw(start)?;
        // SAFETY: as in `get`.
        Some((index, unsafe { T::borrow(p) }))
    }

    /// Allocates the lowest free index in `range` and stores `value` there.
    ///
    /// Fails with `EBUSY` when every index in the range is taken, `EINVAL` for an empty range and
    /// `ENOMEM` when memory for the array's nodes cannot be allocated; `value` is dropped then.
    /// May release and retake the lock to allocate when `gfp` allows sleeping.
    pub fn alloc(&mut self, range: RangeInclusive<u32>, value: T, gfp: Flags) -> Result<u32> {
        if range.is_empty() {
            return Err(crate::error::code::EINVAL);
        }
        let limit = bindings::xa_limit { min: *range.start(), max: *range.end() };
        let p = value.into_foreign();
        let mut id = 0u32;
        // SAFETY: the lock is held (type invariant), as `__xa_alloc` requires; `p` is a valid
        // entry pointer (not an internal XArray value: `into_foreign` returns aligned pointers).
        let ret = unsafe { bindings::__xa_alloc(self.raw(), &mut id, p as _, limit, gfp.as_raw()) };
        if let Err(e) = to_result(ret) {
            // SAFETY: `p` came from `into_foreign` above and was not stored.
            drop(unsafe { T::from_foreign(p) });
            return Err(e);
        }
        Ok(id)
    }

    /// Removes and returns the entry at `index` (upstream's name; `__xa_erase`).
    pub fn remove(&mut self, index: u32) -> Option<T> {
        // SAFETY: the lock is held, as `__xa_erase` requires.
        let p = unsafe { bindings::__xa_erase(self.raw(), index as _) };
        // SAFETY: entries come from `into_foreign`; erased, it is no longer owned by the array,
        // and borrows are tied to `&self`, which `&mut self` excludes.
        unsafe { T::try_from_foreign(p) }
    }

    /// Stores `value` at `index`, returning the entry it replaces.
    pub fn store(&mut self, index: u32, value: T, gfp: Flags) -> Result<Option<T>> {
        let p = value.into_foreign();
        // SAFETY: the lock is held, as `__xa_store` requires.
        let old = unsafe { bindings::__xa_store(self.raw(), index as _, p as _, gfp.as_raw()) };
        // SAFETY: `xa_is_err` only inspects the pointer value.
        if unsafe { bindings::xa_is_err(old) } {
            // SAFETY: `p` was not stored.
            drop(unsafe { T::from_foreign(p) });
            // SAFETY: `old` is an XArray error entry.
            return Err(Error::from_errno(unsafe { bindings::xa_err(old) }));
        }
        // SAFETY: a replaced entry came from `into_foreign` and is no longer in the array.
        Ok(unsafe { T::try_from_foreign(old) })
    }
}

impl<T: ForeignOwnable> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the lock is held (type invariant).
        unsafe { bindings::xa_unlock(self.raw()) };
    }
}

/// The memory an [`XArrayMap`] entry lives in.
///
/// Slots are *type-stable*: once a slot was handed to the array it is only ever reused for
/// another entry of the same map, or freed after an RCU grace period, so a lockless reader
/// that found it with `xa_load` can always read it. `seq` and `id` tell the reader whether the
/// slot still holds the entry it looked up.
#[repr(C)]
struct Slot<T> {
    /// Even while the slot holds the entry at `id`, odd while it is free or being set up.
    seq: AtomicU32,
    /// The index of the entry the slot holds (valid while `seq` is even).
    id: AtomicU32,
    /// Next free slot (owner only, while free).
    next_free: *mut Slot<T>,
    /// For the RCU-deferred free of slots beyond the free list's capacity.
    rcu: Opaque<bindings::callback_head>,
    value: MaybeUninit<T>,
}

/// Free slots an [`XArrayMap`] keeps for reuse; beyond this, removed slots are freed (after a
/// grace period).
const MAX_FREE_SLOTS: usize = 256;

/// An XArray of boxed values that is only used under an outer lock (or by one owner), with
/// optional lockless readers.
///
/// Unlike [`XArray`], whose entries can be erased by anyone holding `&XArray`, every change here
/// needs `&mut self`. That is what lets [`get`](XArrayMap::get) hand out a plain `&T` that lives
/// as long as the shared borrow of the map, and [`get_mut`](XArrayMap::get_mut) a `&mut T`: the
/// shape of a map that portable code (for example the PASID allocator's `IdStore`) expects.
///
/// Entries live in slots that are recycled through a free list (no allocation per entry in
/// steady state) and are only freed after an RCU grace period, which is what makes
/// [`XArrayMapReader`] sound.
///
/// # Invariants
///
/// The inner array is never reachable except through this type (and readers), and every entry
/// in it is a `*mut Slot<T>` from `KBox::into_raw` whose `value` is initialised. Slots on the
/// free list (`free`, `nr_free` of them) hold no value. A slot is freed only by `Drop` (no
/// reader can be running: readers are used under a borrow of the map's owner) or with
/// `kvfree_call_rcu`.
pub struct XArrayMap<T: 'static> {
    xa: core::pin::Pin<crate::alloc::KBox<XArray<crate::alloc::KBox<Slot<T>>>>>,
    free: *mut Slot<T>,
    nr_free: usize,
    /// The slots of the two most recently stored or looked-up (`get_mut`) indices (null: no
    /// entry), so that the owner's repeated accesses to the same entries (alloc then fill in,
    /// the list neighbour, the set of every operation) skip the `xa_load` walk. A cached slot
    /// is valid until its index is removed, which clears it.
    cache: [(u32, *mut Slot<T>); 2],
    /// The cache entry to replace next.
    victim: usize,
}

// SAFETY: the map owns its `T`s; the raw pointers are to slots it owns.
unsafe impl<T: Send> Send for XArrayMap<T> {}
// SAFETY: `&self` methods only read entries (`get`, `next`), as a `&T` would allow; the map is
// used under an outer lock (type documentation) and `XArray` has the same requirement.
unsafe impl<T: Send> Sync for XArrayMap<T> {}

impl<T: 'static> XArrayMap<T> {
    /// An empty map.
    pub fn new(kind: AllocKind, gfp: Flags) -> Result<Self> {
        Ok(Self {
            xa: crate::alloc::KBox::pin_init(XArray::new(kind), gfp)?,
            free: core::ptr::null_mut(),
            nr_free: 0,
            cache: [(0, core::ptr::null_mut()); 2],
            victim: 0,
        })
    }

    fn cached(&self, index: u32) -> *mut Slot<T> {
        for &(i, s) in &self.cache {
            if i == index && !s.is_null() {
                return s;
            }
        }
        core::ptr::null_mut()
    }

    fn remember(&mut self, index: u32, s: *mut Slot<T>) {
        self.cache[self.victim] = (index, s);
        self.victim ^= 1;
    }

    fn raw(&self) -> *mut bindings::xarray {
        self.xa.xa.get()
    }

    /// A free slot: from the free list, else freshly allocated. Its `seq` is odd.
    fn take_slot(&mut self, gfp: Flags) -> Result<*mut Slot<T>> {
        if !self.free.is_null() {
            let s = self.free;
            // SAFETY: slots on the free list are valid and owned by the map (invariant).
            self.free = unsafe { (*s).next_free };
            self.nr_free -= 1;
            return Ok(s);
        }
        let slot = crate::alloc::KBox::new(
            Slot {
                seq: AtomicU32::new(1),
                id: AtomicU32::new(0),
                next_free: core::ptr::null_mut(),
                rcu: Opaque::uninit(),
                value: MaybeUninit::uninit(),
            },
            gfp,
        )?;
        Ok(crate::alloc::KBox::into_raw(slot))
    }

    /// Gives back a slot that holds no value and is not in the array (readers may still look
    /// at it if it was).
    fn put_slot(&mut self, s: *mut Slot<T>) {
        if self.nr_free < MAX_FREE_SLOTS {
            // SAFETY: `s` is a valid slot owned by the map.
            unsafe { (*s).next_free = self.free };
            self.free = s;
            self.nr_free += 1;
        } else {
            // SAFETY: `s` came from `KBox::into_raw` (kmalloc) and is no longer used by the map;
            // lockless readers may still hold it, hence the free after a grace period.
            unsafe { bindings::kvfree_call_rcu((*s).rcu.get(), s.cast()) };
        }
    }

    /// Publishes a slot just stored at `id`: readers accept it from now on.
    ///
    /// # Safety
    ///
    /// `s` is a slot of the map, with a value, stored at `id`.
    unsafe fn publish(s: *mut Slot<T>, id: u32) {
        // SAFETY: `s` is valid (caller).
        unsafe {
            (*s).id.store(id, Ordering::Relaxed);
            (*s).seq.fetch_add(1, Ordering::Release);
        }
    }

    /// Stores `value` at the lowest free index in `range` (`EBUSY` if none, `ENOMEM`). `gfp` is
    /// used for the slot (when none is free) and the array's nodes.
    pub fn alloc(&mut self, range: RangeInclusive<u32>, value: T, gfp: Flags) -> Result<u32> {
        if range.is_empty() {
            return Err(crate::error::code::EINVAL);
        }
        let s = self.take_slot(gfp)?;
        // SAFETY: a free slot holds no value.
        unsafe { slot_value(s).write(value) };
        let limit = bindings::xa_limit { min: *range.start(), max: *range.end() };
        let mut id = 0u32;
        let xa = self.raw();
        // SAFETY: the array is initialised; `__xa_alloc` is called with its lock held; `s` is an
        // aligned pointer (not an internal XArray value). It may drop and retake the lock to
        // allocate nodes.
        let ret = unsafe {
            bindings::xa_lock(xa);
            let ret = bindings::__xa_alloc(xa, &mut id, s.cast(), limit, gfp.as_raw());
            bindings::xa_unlock(xa);
            ret
        };
        if let Err(e) = to_result(ret) {
            // SAFETY: the value was written above and the slot was not stored.
            drop(unsafe { slot_value(s).read() });
            self.put_slot(s);
            return Err(e);
        }
        // SAFETY: `s` holds a value and is stored at `id`.
        unsafe { Self::publish(s, id) };
        self.remember(id, s);
        Ok(id)
    }

    /// Stores `value` at `index`, which must be free (`EBUSY` otherwise).
    pub fn insert(&mut self, index: u32, value: T, gfp: Flags) -> Result {
        if !self.load_raw(index).is_null() {
            return Err(crate::error::code::EBUSY);
        }
        let s = self.take_slot(gfp)?;
        // SAFETY: a free slot holds no value.
        unsafe { slot_value(s).write(value) };
        let xa = self.raw();
        // SAFETY: as in `alloc`, for `__xa_insert`.
        let ret = unsafe {
            bindings::xa_lock(xa);
            let ret = bindings::__xa_insert(xa, index as _, s.cast(), gfp.as_raw());
            bindings::xa_unlock(xa);
            ret
        };
        if let Err(e) = to_result(ret) {
            // SAFETY: as in `alloc`.
            drop(unsafe { slot_value(s).read() });
            self.put_slot(s);
            return Err(e);
        }
        // SAFETY: `s` holds a value and is stored at `index`.
        unsafe { Self::publish(s, index) };
        self.remember(index, s);
        Ok(())
    }

    /// The slot at `index` (null if none), read without the array's spinlock: `xa_load` is
    /// RCU-safe, and no entry can be erased while `&self` is held since that takes `&mut self`.
    fn load_raw(&self, index: u32) -> *mut Slot<T> {
        // SAFETY: the array is initialised (invariant of `XArray`).
        unsafe { bindings::xa_load(self.raw(), index as _) }.cast::<Slot<T>>()
    }

    /// The value at `index`.
    pub fn get(&self, index: u32) -> Option<&T> {
        let mut s = self.cached(index);
        if s.is_null() {
            s = self.load_raw(index);
        }
        if s.is_null() {
            return None;
        }
        // SAFETY: stored slots hold an initialised value (type invariant); removing it needs
        // `&mut self`, so it outlives the returned shared borrow of `self`.
        Some(unsafe { &*slot_value(s) })
    }

    /// The value at `index`, mutably.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        let mut s = self.cached(index);
        if s.is_null() {
            s = self.load_raw(index);
            if s.is_null() {
                return None;
            }
            self.remember(index, s);
        }
        // SAFETY: as in `get`; `&mut self` excludes every other borrow of any entry.
        Some(unsafe { &mut *slot_value(s) })
    }

    /// Removes the value at `index`. Its slot goes back to the free list.
    pub fn remove(&mut self, index: u32) -> Option<T> {
        let xa = self.raw();
        // SAFETY: the array is initialised; `__xa_erase` is called with its lock held.
        let s = unsafe {
            bindings::xa_lock(xa);
            let p = bindings::__xa_erase(xa, index as _);
            bindings::xa_unlock(xa);
            p
        }
        .cast::<Slot<T>>();
        if s.is_null() {
            return None;
        }
        for c in &mut self.cache {
            if c.0 == index {
                c.1 = core::ptr::null_mut();
            }
        }
        // SAFETY: a stored slot is valid. Odd `seq`: readers that validate from now on reject
        // the slot; the fence orders the later reuse's writes after the increment.
        unsafe { (*s).seq.fetch_add(1, Ordering::Relaxed) };
        core::sync::atomic::fence(Ordering::Release);
        // SAFETY: the slot held an initialised value, moved out here (the bytes stay for
        // readers until the slot is reused).
        let value = unsafe { slot_value(s).read() };
        self.put_slot(s);
        Some(value)
    }

    /// The lowest present index `>= from` and its value.
    pub fn next(&self, from: u32) -> Option<(u32, &T)> {
        let mut index: usize = from as usize;
        // SAFETY: the array is initialised; `index` is a valid in/out pointer; `xa_find` is
        // RCU-safe and entries cannot be erased while `&self` is held.
        let s = unsafe {
            bindings::xa_find(self.raw(), &mut index, u32::MAX as _, bindings::XA_PRESENT)
        }
        .cast::<Slot<T>>();
        if s.is_null() {
            return None;
        }
        // SAFETY: as in `get`.
        Some((index as u32, unsafe { &*slot_value(s) }))
    }

    /// A lockless reader of the map's entries.
    pub fn reader(&self) -> XArrayMapReader<T> {
        XArrayMapReader { xa: self.raw(), _slots: PhantomData }
    }
}

impl<T: 'static> Drop for XArrayMap<T> {
    fn drop(&mut self) {
        // No reader runs any more (they are used under a borrow of the map's owner), so slots
        // can be freed at once.
        while let Some((index, _)) = self.next(0) {
            let xa = self.raw();
            // SAFETY: as in `remove`.
            let s = unsafe {
                bindings::xa_lock(xa);
                let p = bindings::__xa_erase(xa, index as _);
                bindings::xa_unlock(xa);
                p
            }
            .cast::<Slot<T>>();
            // SAFETY: a stored slot holds a value; it is dropped, then the slot freed.
            unsafe {
                slot_value(s).drop_in_place();
                drop(crate::alloc::KBox::from_raw(s));
            }
        }
        while !self.free.is_null() {
            let s = self.free;
            // SAFETY: free slots are valid, hold no value, and came from `KBox::into_raw`.
            unsafe {
                self.free = (*s).next_free;
                drop(crate::alloc::KBox::from_raw(s));
            }
        }
    }
}

/// Lockless (RCU) read access to an [`XArrayMap`]'s entries.
///
/// # Invariants
///
/// `xa` is the array of an [`XArrayMap<T>`]; [`read`](XArrayMapReader::read)'s caller keeps
/// that map alive.
pub struct XArrayMapReader<T> {
    xa: *mut bindings::xarray,
    _slots: PhantomData<*const T>,
}

// SAFETY: a reader only reads atomics of slots, under `rcu_read_lock`, from any thread.
unsafe impl<T: Send + Sync> Send for XArrayMapReader<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for XArrayMapReader<T> {}

impl<T> XArrayMapReader<T> {
    /// Under `rcu_read_lock`: `xa_load(id)`, then `f` on the entry, whose result is returned
    /// only if the slot held the entry at `id` throughout (its `seq` and `id` validate it, as a
    /// seqlock would); `None` if there was no entry or it was removed or replaced meanwhile.
    ///
    /// `f` gets a pointer to memory that may be changed concurrently (by the map's owner, or by
    /// the reuse of the slot for another entry): it must only read atomics and not trust them
    /// beyond returning them.
    ///
    /// # Safety
    ///
    /// The map this reader came from is alive for the call.
    pub unsafe fn read<R>(&self, id: u32, f: impl FnOnce(NonNull<T>) -> R) -> Option<R> {
        let rcu = crate::sync::rcu::read_lock();
        // SAFETY: the array is alive (caller) and initialised.
        let s = unsafe { bindings::xa_load(self.xa, id as _) }.cast::<Slot<T>>();
        let r = (!s.is_null()).then(|| {
            // SAFETY: a slot seen in the array stays allocated until a grace period after it is
            // given up (type invariant of `XArrayMap`), and we hold `rcu_read_lock`.
            let (seq, slot_id) = unsafe { (&(*s).seq, &(*s).id) };
            // Acquire: the slot's contents read below are at least as new as this `seq`.
            let start = seq.load(Ordering::Acquire);
            if start & 1 != 0 || slot_id.load(Ordering::Relaxed) != id {
                return None;
            }
            // SAFETY: non-null: computed from a valid slot pointer.
            let r = f(unsafe { NonNull::new_unchecked(slot_value(s)) });
            core::sync::atomic::fence(Ordering::Acquire);
            (seq.load(Ordering::Relaxed) == start).then_some(r)
        });
        drop(rcu);
        r.flatten()
    }
}

/// The value inside slot `s` (only the address is computed: `s` may be dangling).
fn slot_value<T>(s: *mut Slot<T>) -> *mut T {
    s.cast::<u8>().wrapping_add(core::mem::offset_of!(Slot<T>, value)).cast::<T>()
}

/// An entry of a [`SharedMap`]: the value and the index it is stored at.
struct SharedEntry<T> {
    index: u32,
    value: T,
}

/// Look-ups a [`SharedMap`] remembers (direct-mapped by index).
const SHARED_HINTS: usize = 16;

/// An XArray of boxed values that grows through `&self` and is read without any lock.
///
/// For tables that concurrent users extend and walk, like the page tables of an IOMMU domain
/// whose map and unmap take no lock: [`insert`](SharedMap::insert) takes the array's own
/// spinlock for the store only; [`get`](SharedMap::get) is one lock-free `xa_load` (or a hit in
/// the last few look-ups), and the `&T` it returns lives as long as the shared borrow of the
/// map, because entries are only ever removed through `&mut self` (or the map's drop).
///
/// # Invariants
///
/// Every entry of `xa` is a `KBox<SharedEntry<T>>` (from `into_foreign`) stored at its own
/// `index`; entries are erased only by [`remove`](SharedMap::remove) and the drop, both
/// `&mut self`. Every non-null pointer in `hints` points at an entry currently stored.
pub struct SharedMap<T: 'static> {
    xa: core::pin::Pin<crate::alloc::KBox<XArray<crate::alloc::KBox<SharedEntry<T>>>>>,
    hints: [core::sync::atomic::AtomicPtr<SharedEntry<T>>; SHARED_HINTS],
}

// SAFETY: the map owns its `T`s; moving it moves them.
unsafe impl<T: Send> Send for SharedMap<T> {}
// SAFETY: through `&self`, values are only handed out as `&T` (so `T: Sync`) and inserted
// from any thread (so `T: Send`); the array serialises its writers on its own lock.
unsafe impl<T: Send + Sync> Sync for SharedMap<T> {}

impl<T: 'static> SharedMap<T> {
    /// An empty map.
    pub fn new(gfp: Flags) -> Result<Self> {
        Ok(Self {
            xa: crate::alloc::KBox::pin_init(XArray::new(AllocKind::Alloc), gfp)?,
            hints: [const { core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()) };
                SHARED_HINTS],
        })
    }

    /// Stores `value` at `index`, which must be free (`EBUSY` otherwise; `value` is dropped
    /// on failure). Takes the array's spinlock; `gfp` for the entry and the array's nodes.
    pub fn insert(&self, index: u32, value: T, gfp: Flags) -> Result {
        let entry = crate::alloc::KBox::new(SharedEntry { index, value }, gfp)?;
        let mut guard = self.xa.lock();
        if !guard.load_raw(index).is_null() {
            return Err(crate::error::code::EBUSY);
        }
        // Nothing to give back: the index was checked free under the same lock.
        let _ = guard.store(index, entry, gfp)?;
        Ok(())
    }

    /// The value at `index`, without a lock.
    #[inline]
    pub fn get(&self, index: u32) -> Option<&T> {
        // Direct-mapped: the hint for `index` is `hints[index % SHARED_HINTS]`.
        let hint = self.hints.get(index as usize % SHARED_HINTS);
        if let Some(h) = hint {
            // Acquire, paired with the `Release` store below: the entry is read through it.
            let p = h.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: a non-null hint points at a stored entry (type invariant), which
                // stays stored while `&self` is held (removal takes `&mut self`).
                let e = unsafe { &*p };
                if e.index == index {
                    return Some(&e.value);
                }
            }
        }
        // SAFETY: the array is initialised; `xa_load` takes the RCU read lock itself.
        let p = unsafe { bindings::xa_load(self.xa.xa.get(), index as _) }
            .cast::<SharedEntry<T>>();
        if p.is_null() {
            return None;
        }
        if let Some(h) = hint {
            // INVARIANT: `p` is a stored entry.
            h.store(p, Ordering::Release);
        }
        // SAFETY: entries are `KBox<SharedEntry<T>>`s (type invariant), erased only through
        // `&mut self`: it outlives the returned borrow of `self`.
        Some(unsafe { &(*p).value })
    }

    /// Removes and returns the value at `index`.
    pub fn remove(&mut self, index: u32) -> Option<T> {
        for h in &self.hints {
            if !h.load(Ordering::Relaxed).is_null() {
                // SAFETY: as in `get`; no other access runs (`&mut self`).
                if unsafe { (*h.load(Ordering::Relaxed)).index } == index {
                    // INVARIANT: the entry is about to be erased.
                    h.store(core::ptr::null_mut(), Ordering::Relaxed);
                }
            }
        }
        let e = self.xa.lock().remove(index)?;
        Some(crate::alloc::KBox::into_inner(e).value)
    }
}
