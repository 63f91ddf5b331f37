// SPDX-License-Identifier: GPL-2.0

//! Revocable objects: data whose access can be withdrawn while references to its container
//! still exist (the building block of [`crate::devres::Devres`]).
//!
//! The design follows upstream Rust-for-Linux (`rust/kernel/revocable.rs`, 6.13+): readers take
//! an RCU read-side critical section; [`Revocable::revoke`] clears the availability flag, waits
//! for a grace period and then drops the data in place.

use crate::sync::rcu;
use core::{
    cell::UnsafeCell,
    mem::ManuallyDrop,
    ops::Deref,
    sync::atomic::{AtomicBool, Ordering},
};

/// A value that can be revoked: after [`Revocable::revoke`] (or while it runs) new accesses
/// fail, accesses already in progress are waited for, then the value is dropped.
///
/// # Invariants
///
/// `data` is initialised while `available` is true, and dropped exactly once: by whoever moves
/// `available` from true to false (`revoke`), or by `drop` if it is still true then.
///
/// # Examples
///
/// ```
/// use kernel::revocable::Revocable;
///
/// let r = Revocable::new(5u32);
/// assert_eq!(r.try_access().map(|v| *v), Some(5));
/// assert!(r.revoke());
/// assert!(r.try_access().is_none());
/// assert!(!r.revoke());
/// ```
pub struct Revocable<T> {
    available: AtomicBool,
    data: UnsafeCell<ManuallyDrop<T>>,
}

// SAFETY: the data may be dropped by `revoke` from any thread, hence `T: Send`.
unsafe impl<T: Send> Send for Revocable<T> {}

// SAFETY: `try_access` hands out `&T` to several threads (`T: Sync`) and `revoke` may drop `T`
// from another thread than the one that created it (`T: Send`).
unsafe impl<T: Send + Sync> Sync for Revocable<T> {}

impl<T> Revocable<T> {
    /// Makes `data` revocable.
    pub fn new(data: T) -> Self {
        // INVARIANT: `data` is initialised and `available` is true.
        Self {
            available: AtomicBool::new(true),
            data: UnsafeCell::new(ManuallyDrop::new(data)),
        }
    }

    /// Accesses the data unless it was revoked; the guard holds an RCU read-side critical
    /// section, so the caller must not sleep while holding it.
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        let rcu = rcu::read_lock();
        if self.available.load(Ordering::Acquire) {
            // INVARIANT (of the guard): the data is available and `revoke` cannot drop it
            // before this RCU critical section ends.
            Some(RevocableGuard { data: self.data.get(), _rcu: rcu, _p: core::marker::PhantomData })
        } else {
            None
        }
    }

    /// Accesses the data within an RCU critical section the caller already holds.
    pub fn try_access_with_guard<'a>(&'a self, _guard: &'a rcu::Guard) -> Option<&'a T> {
        if self.available.load(Ordering::Acquire) {
            // SAFETY: the data is available and cannot be dropped before `_guard`'s critical
            // section ends (the revoker waits for a grace period); it lives as long as `self`.
            Some(unsafe { &*self.data.get() })
        } else {
            None
        }
    }

    /// Whether the data is still available (it may be revoked right after this returns).
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// Accesses the data directly, without an RCU read-side section (the caller may sleep).
    ///
    /// # Safety
    ///
    /// The data must not have been revoked, and must not be revoked while the returned
    /// reference lives.
    pub unsafe fn access(&self) -> &T {
        // SAFETY: not revoked, so initialised and not dropped (type invariant), for as long as
        // the reference lives (the caller's promise).
        unsafe { &*self.data.get() }
    }

    /// # Safety
    ///
    /// Without `SYNC`, no reader may be left (no guard, no `access` reference).
    unsafe fn revoke_internal<const SYNC: bool>(&self) -> bool {
        if self.available.swap(false, Ordering::AcqRel) {
            if SYNC {
                // Readers that saw `available == true` hold an RCU critical section: wait.
                rcu::synchronize_rcu();
            }
            // SAFETY: this call moved `available` from true to false, so by the type invariant
            // it is the only one to drop the data, and no reader can still see it (waited for
            // above, or none left: the caller's promise).
            unsafe { ManuallyDrop::drop(&mut *self.data.get()) };
            true
        } else {
            false
        }
    }

    /// Revokes access and drops the data; returns whether this call did it (false if it was
    /// revoked already).
    ///
    /// Sleeps (waits for an RCU grace period) when it drops the data.
    pub fn revoke(&self) -> bool {
        // SAFETY: `SYNC` waits for the readers.
        unsafe { self.revoke_internal::<true>() }
    }

    /// Like [`Revocable::revoke`], without waiting for readers.
    ///
    /// # Safety
    ///
    /// No reader may be left: no guard of [`Revocable::try_access`] and no reference of
    /// [`Revocable::access`] or [`Revocable::try_access_with_guard`].
    pub unsafe fn revoke_nosync(&self) -> bool {
        // SAFETY: no reader is left (the caller's promise).
        unsafe { self.revoke_internal::<false>() }
    }
}

impl<T> Drop for Revocable<T> {
    fn drop(&mut self) {
        if *self.available.get_mut() {
            // SAFETY: still available, so not dropped yet (type invariant); `&mut self` means no
            // reader exists.
            unsafe { ManuallyDrop::drop(self.data.get_mut()) };
        }
    }
}

/// Access to a [`Revocable`]'s data, valid for an RCU read-side critical section.
///
/// # Invariants
///
/// `data` points to the initialised data of a `Revocable` that cannot be dropped while `_rcu`
/// is held.
pub struct RevocableGuard<'a, T> {
    data: *const ManuallyDrop<T>,
    _rcu: rcu::Guard,
    _p: core::marker::PhantomData<&'a T>,
}

impl<T> Deref for RevocableGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: by the type invariant the data is valid while the guard lives.
        unsafe { &*self.data }
    }
}
