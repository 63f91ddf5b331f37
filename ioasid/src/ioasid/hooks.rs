// SPDX-License-Identifier: GPL-2.0
//! What the platform plugs in: locks, custom PASID allocators and free notifiers.

use super::{Error, Pasid, SetId};

/// A lock around a value of type [`Lock::Target`].
///
/// The kernel implements it over `kernel::sync::SpinLock<T>` or `Mutex<T>` (typically held in a
/// `Pin<KBox<..>>`), host tests over `std::sync::Mutex<T>` or a `RefCell<T>`.
///
/// [`Ioasid`](super::Ioasid) uses two locks: the *state lock* around
/// [`IoasidCore`](super::IoasidCore), held for short, non-blocking critical sections (plus the
/// custom allocator hook), and the *notifier lock* around
/// [`Notifiers`](super::Notifiers), held while free notifiers run. Lock order: the notifier
/// lock is the outer one (a notifier may take the state lock through `Ioasid` methods); the
/// notifier lock is never taken with the state lock held. Neither lock is taken recursively.
pub trait Lock {
    /// The protected value.
    type Target;

    /// Runs `f` with exclusive access to the protected value and returns its result.
    fn with<R>(&self, f: impl FnOnce(&mut Self::Target) -> R) -> R;
}

/// A platform hook that hands out PASIDs instead of the default allocator, e.g. a paravirtual
/// guest whose host owns the PASID space (virtio-iommu, VT-d virtual command interface).
///
/// Both methods are called with the state lock held: they must not sleep if that lock is a
/// spinlock, and must not call back into the allocator. Interior mutability is the
/// implementation's business (`&self`).
pub trait PasidAllocator {
    /// Returns a PASID in `min..=max` that the platform no longer uses, or an error
    /// ([`Error::NoSpace`] and [`Error::NoMemory`] are passed to the caller unchanged).
    ///
    /// `min..=max` is already clipped to the PASID space but may contain reserved PASIDs
    /// (including 0): returning one of them, or a PASID outside the request, or a PASID that is
    /// still live, fails the allocation with [`Error::AllocatorFault`]; in the first two cases
    /// the PASID is handed back through [`free`](PasidAllocator::free) at once.
    fn alloc(&self, min: Pasid, max: Pasid) -> Result<Pasid, Error>;

    /// Gives back a PASID that [`alloc`](PasidAllocator::alloc) returned. Called exactly once
    /// per PASID, after every free notifier has returned for it.
    fn free(&self, pasid: Pasid);
}

impl<T: PasidAllocator + ?Sized> PasidAllocator for &T {
    fn alloc(&self, min: Pasid, max: Pasid) -> Result<Pasid, Error> {
        (**self).alloc(min, max)
    }

    fn free(&self, pasid: Pasid) {
        (**self).free(pasid)
    }
}

/// The allocator type of a platform that never registers a custom allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAllocator {}

impl PasidAllocator for NoAllocator {
    fn alloc(&self, _min: Pasid, _max: Pasid) -> Result<Pasid, Error> {
        match *self {}
    }

    fn free(&self, _pasid: Pasid) {
        match *self {}
    }
}

/// A subscriber told when a PASID is released (its last reference dropped), e.g. the IOMMU
/// driver (to tear down the PASID table entry) or an mdev parent.
///
/// [`released`](FreeNotifier::released) runs without the state lock but with the notifier
/// lock held, while the PASID is in the [`Releasing`](super::PasidState::Releasing) state: it
/// is not findable and cannot be allocated again until every notifier has returned. It may call
/// [`Ioasid`](super::Ioasid) methods that cannot release a PASID (`alloc`, `find`, `get`,
/// `set_data`, `pasid_info`, `set_info`, `dump`, ...) but not `free`, `put`, `destroy_set`,
/// `subscribe` or `unsubscribe`, which take the notifier lock.
///
/// Closures `Fn(SetId, Pasid, &D)` are notifiers.
pub trait FreeNotifier<D> {
    /// `pasid` of `set` has been released; `data` is its private data, dropped after all
    /// notifiers have returned.
    fn released(&self, set: SetId, pasid: Pasid, data: &D);
}

impl<D, F: Fn(SetId, Pasid, &D)> FreeNotifier<D> for F {
    fn released(&self, set: SetId, pasid: Pasid, data: &D) {
        self(set, pasid, data)
    }
}
