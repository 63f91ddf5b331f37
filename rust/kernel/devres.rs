// SPDX-License-Identifier: GPL-2.0

//! Device-managed resources: data that is revoked (dropped) when its device is unbound.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h) (`devm_add_action`).
//!
//! A [`Devres<T>`] owns `T` and registers a devres action on a device. When the device is
//! unbound from its driver, the action revokes `T` (dropping it, e.g. unmapping a BAR or freeing
//! an IRQ), so a resource that belongs to a bound device can never be used after unbind, even if
//! the `Devres` object itself lives longer. Dropping the `Devres` earlier releases `T` at once.
//!
//! Modelled on upstream Rust-for-Linux `rust/kernel/devres.rs` (6.13).

use crate::{
    alloc::Flags,
    bindings,
    device::Device,
    error::{code::ENXIO, to_result, Result},
    revocable::{Revocable, RevocableGuard},
    sync::Arc,
};
use core::ffi::c_void;

struct DevresInner<T> {
    data: Revocable<T>,
}

/// Data bound to the lifetime of a device's driver binding.
///
/// # Invariants
///
/// One reference of the `Arc` is owned by a devres action registered on the device; the action
/// revokes the data and drops that reference, exactly once (at unbind or device release).
///
/// # Examples
///
/// ```ignore
/// let res = Devres::new(dev, 42u32, GFP_KERNEL)?;
/// assert_eq!(*res.try_access().unwrap(), 42);
/// ```
pub struct Devres<T: Send + 'static>(Arc<DevresInner<T>>);

impl<T: Send + 'static> Devres<T> {
    /// Binds `data` to `dev`'s current driver binding. On error `data` is dropped.
    ///
    /// `dev` must be bound to a driver (or being probed): devres actions run at unbind.
    pub fn new(dev: &Device, data: T, flags: Flags) -> Result<Self> {
        let inner = Arc::new(DevresInner { data: Revocable::new(data) }, flags)?;
        let action_ref = inner.clone().into_raw();
        // SAFETY: `dev` is a valid device; `callback` is a function of the kernel image (it
        // outlives any devres action); `action_ref` is an owned `Arc` reference that the action
        // takes back.
        let ret = unsafe {
            bindings::devm_add_action(
                dev.as_raw(),
                Some(Self::callback),
                action_ref.cast_mut().cast::<c_void>(),
            )
        };
        if let Err(e) = to_result(ret) {
            // SAFETY: the action was not registered, so this reference is still ours.
            drop(unsafe { Arc::from_raw(action_ref) });
            return Err(e);
        }
        // INVARIANT: the action owns `action_ref`.
        Ok(Self(inner))
    }

    /// # Safety
    ///
    /// Called only by the C side, with the arguments its callback contract guarantees.
    unsafe extern "C" fn callback(ptr: *mut c_void) {
        // SAFETY: `ptr` is the `Arc` reference handed to `devm_add_action` in `new`, given back
        // exactly once (type invariant).
        let inner = unsafe { Arc::from_raw(ptr.cast_const().cast::<DevresInner<T>>()) };
        inner.data.revoke();
    }

    /// Accesses the data unless the device was unbound. Do not sleep while holding the guard
    /// (it is an RCU read-side critical section).
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        self.0.data.try_access()
    }

    /// Like [`Self::try_access`], with `ENXIO` when the device is gone.
    pub fn access(&self) -> Result<RevocableGuard<'_, T>> {
        self.try_access().ok_or(ENXIO)
    }

    /// Whether the data is still available (the device is still bound).
    pub fn is_available(&self) -> bool {
        self.0.data.is_available()
    }
}

impl<T: Send + 'static> Drop for Devres<T> {
    fn drop(&mut self) {
        // Release the resource now; the devres action keeps its reference until unbind, where
        // its revoke is a no-op.
        self.0.data.revoke();
    }
}

/// Registers `action(data)` to run when `dev` is unbound; if registration fails the action runs
/// at once and the error is returned (`devm_add_action_or_reset`).
///
/// # Safety
///
/// `action` must be safe to call with `data` once, from the devres release path of `dev`, and
/// must remain valid code until then (a function of the kernel image, or of a module that
/// unbinds `dev` before it is unloaded).
pub(crate) unsafe fn add_action_or_reset(
    dev: &Device,
    action: unsafe extern "C" fn(*mut c_void),
    data: *mut c_void,
) -> Result {
    // SAFETY: `dev` is valid; the rest is the caller's contract.
    to_result(unsafe { bindings::devm_add_action_or_reset(dev.as_raw(), Some(action), data) })
}
