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
//! assert_eq!(guard.load(id).map(|v| *v), Some(7));
//! assert!(guard.erase(id).is_some());
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
use core::{marker::PhantomData, ops::RangeInclusive};
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
                guard.erase(index)
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

    /// Borrows the entry at `index`, if any.
    pub fn load(&self, index: u32) -> Option<T::Borrowed<'_>> {
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
        // SAFETY: as in `load`.
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

    /// Removes and returns the entry at `index`.
    pub fn erase(&mut self, index: u32) -> Option<T> {
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

/// An XArray of boxed values that is only used under an outer lock (or by one owner).
///
/// Unlike [`XArray`], whose entries can be erased by anyone holding `&XArray`, every change here
/// needs `&mut self`. That is what lets [`get`](XArrayMap::get) hand out a plain `&T` that lives
/// as long as the shared borrow of the map, and [`get_mut`](XArrayMap::get_mut) a `&mut T`: the
/// shape of a map that portable code (for example the PASID allocator's `IdStore`) expects.
///
/// # Invariants
///
/// The inner array is never reachable except through this type, and every entry in it was made
/// by `KBox::<T>::into_foreign`, which is `KBox::into_raw`: entries are valid `*mut T`.
pub struct XArrayMap<T: 'static> {
    xa: core::pin::Pin<crate::alloc::KBox<XArray<crate::alloc::KBox<T>>>>,
}

impl<T: 'static> XArrayMap<T> {
    /// An empty map.
    pub fn new(kind: AllocKind, gfp: Flags) -> Result<Self> {
        Ok(Self { xa: crate::alloc::KBox::pin_init(XArray::new(kind), gfp)? })
    }

    /// Boxes `value` and stores it at the lowest free index in `range` (`EBUSY` if none,
    /// `ENOMEM`). `gfp` is used for the box and the array's nodes.
    pub fn alloc(&mut self, range: RangeInclusive<u32>, value: T, gfp: Flags) -> Result<u32> {
        let entry = crate::alloc::KBox::new(value, gfp)?;
        self.xa.lock().alloc(range, entry, gfp)
    }

    /// Boxes `value` and stores it at `index`, which must be free (`EBUSY` otherwise).
    pub fn insert(&mut self, index: u32, value: T, gfp: Flags) -> Result {
        if !self.load_raw(index).is_null() {
            return Err(crate::error::code::EBUSY);
        }
        let entry = crate::alloc::KBox::new(value, gfp)?;
        self.xa.lock().store(index, entry, gfp).map(|_| ())
    }

    /// The raw entry at `index`, read without the array's spinlock: `xa_load` is RCU-safe,
    /// and no entry can be erased while `&self` is held since that takes `&mut self`.
    fn load_raw(&self, index: u32) -> *mut T {
        // SAFETY: the array is initialised (invariant of `XArray`).
        unsafe { bindings::xa_load(self.xa.xa.get(), index as _) }.cast::<T>()
    }

    /// The value at `index`.
    pub fn get(&self, index: u32) -> Option<&T> {
        let p = self.load_raw(index);
        // SAFETY: non-null entries are valid `*mut T` (type invariant); removing one needs
        // `&mut self`, so it outlives the returned shared borrow of `self`.
        unsafe { p.as_ref() }
    }

    /// The value at `index`, mutably.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        let p = self.load_raw(index);
        // SAFETY: as in `get`; `&mut self` excludes every other borrow of any entry.
        unsafe { p.as_mut() }
    }

    /// Removes the value at `index`.
    pub fn remove(&mut self, index: u32) -> Option<T> {
        let entry = self.xa.lock().erase(index)?;
        Some(crate::alloc::KBox::into_inner(entry))
    }

    /// The lowest present index `>= from` and its value.
    pub fn next(&self, from: u32) -> Option<(u32, &T)> {
        let mut index: usize = from as usize;
        // SAFETY: the array is initialised; `index` is a valid in/out pointer; `xa_find` is
        // RCU-safe and entries cannot be erased while `&self` is held.
        let p = unsafe {
            bindings::xa_find(self.xa.xa.get(), &mut index, u32::MAX as _, bindings::XA_PRESENT)
        };
        let index = index as u32;
        // SAFETY: as in `get`.
        unsafe { p.cast::<T>().as_ref() }.map(|v| (index, v))
    }
}
