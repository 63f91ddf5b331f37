// SPDX-License-Identifier: GPL-2.0

//! Device-managed resources: data that is revoked (dropped) when its device is unbound.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h) (`devm_add_action`).
//!
//! A [`Devres<T>`] owns `T` and registers a devres action on a bound device. When the device is
//! unbound from its driver, the action revokes `T` (dropping it, e.g. unmapping a BAR or freeing
//! an IRQ), so a resource that belongs to a bound device can never be used after unbind, even if
//! the `Devres` object itself lives longer. Dropping the `Devres` earlier releases `T` at once.
//! Whichever of the two revokes first, the other waits until `T` is released: unbind waits for a
//! drop that is releasing it (so the device is never unbound, and its driver's module never
//! unloaded, while `T` is still being released), and a drop waits for an unbind that is (so a
//! `Devres` that was dropped never leaves its `T` behind, e.g. an IRQ still requested after the
//! handler it calls was freed).
//!
//! Follows upstream's `rust/kernel/devres.rs` (v6.16): `new(&Device<Bound>, ..)`,
//! [`Devres::access`] with a `&Device<Bound>` (no RCU read-side section, so the caller may
//! sleep), [`Devres::try_access`] elsewhere, and a [`Completion`] the devres action waits on
//! when `Drop` revoked first, and one `Drop` waits on when the action revoked first. Differences: the action stays registered after an early drop (6.12
//! has no `devm_remove_action_nowarn`; the action then only drops its reference), and `access`
//! also refuses a `Devres` whose data was revoked already (one acquire load), so one kept past
//! its binding and presented with the device of a later binding gives `ENXIO`, not freed data.

use crate::{
    alloc::Flags,
    bindings,
    device::{Bound, Device},
    error::{
        code::{EINVAL, ENXIO},
        to_result, Result,
    },
    init::InPlaceInit,
    pin_init,
    revocable::{Revocable, RevocableGuard},
    sync::{rcu, Arc, Completion},
    types::ARef,
};
use core::ffi::c_void;

#[macros::pin_data]
struct DevresInner<T> {
    dev: ARef<Device>,
    data: Revocable<T>,
    /// Completed by `Devres::drop` once it has revoked (dropped) the data.
    #[pin]
    revoked: Completion,
    /// Completed by the devres action once the data is gone, whoever revoked it.
    #[pin]
    released: Completion,
}

/// Data bound to the lifetime of a device's driver binding.
///
/// # Invariants
///
/// One reference of the `Arc` is owned by a devres action registered on `dev` while it was
/// bound; the action revokes the data and drops that reference, exactly once, at unbind.
///
/// # Examples
///
/// ```ignore
/// fn probe(pdev: &pci::Device<Core>) -> Result {
///     let res = Devres::new(pdev.as_ref(), 42u32, GFP_KERNEL)?;
///     assert_eq!(*res.access(pdev.as_ref())?, 42);
///     // Where no bound device is at hand (an IRQ handler, a work item):
///     assert_eq!(res.try_access().map(|v| *v), Some(42));
///     Ok(())
/// }
/// ```
pub struct Devres<T: Send + 'static>(Arc<DevresInner<T>>);

impl<T: Send + 'static> Devres<T> {
    /// Binds `data` to `dev`'s current driver binding. On error `data` is dropped.
    pub fn new(dev: &Device<Bound>, data: T, flags: Flags) -> Result<Self> {
        let init = pin_init!(DevresInner {
            dev: ARef::from(dev),
            data: Revocable::new(data),
            revoked <- Completion::new(),
            released <- Completion::new(),
        });
        let inner = Arc::pin_init(init, flags)?;
        let action_ref = inner.clone().into_raw();
        // SAFETY: `dev` is a valid, bound device; `callback` is a function of the kernel image
        // (it outlives any devres action); `action_ref` is an owned `Arc` reference that the
        // action takes back.
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
        if !inner.data.revoke() {
            // `Devres::drop` revoked first and may still be dropping the data: unbind must not
            // go on (disable the device, release its regions, let the module go) before that
            // is done.
            inner.revoked.wait_for_completion();
        }
        inner.released.complete_all();
    }

    /// The data, for a caller that proves with `dev` that the device is bound: no RCU
    /// read-side section, so the caller may sleep while it holds the reference.
    ///
    /// `EINVAL` (with a message) when `dev` is not the device the data was bound to; `ENXIO`
    /// when the data is gone already (a `Devres` kept past the binding it was made in).
    pub fn access<'a>(&'a self, dev: &'a Device<Bound>) -> Result<&'a T> {
        if self.0.dev.as_raw() != dev.as_raw() {
            crate::dev_err!(
                dev,
                "Devres::access: resource of {} accessed with another device\n",
                self.0.dev.name()
            );
            return Err(EINVAL);
        }
        if !self.0.data.is_available() {
            return Err(ENXIO);
        }
        // SAFETY: the data is available and belongs to `dev`'s binding: it was not revoked yet
        // (checked just above), the devres action that revokes it runs only at unbind, which
        // cannot happen while `dev` is a `&Device<Bound>` (for `'a`), and `Drop` cannot run
        // while `self` is borrowed.
        Ok(unsafe { self.0.data.access() })
    }

    /// Accesses the data unless the device was unbound. Do not sleep while holding the guard
    /// (it is an RCU read-side critical section).
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        self.0.data.try_access()
    }

    /// Runs `f` on the data unless the device was unbound (`f` must not sleep).
    pub fn try_access_with<R, F: FnOnce(&T) -> R>(&self, f: F) -> Option<R> {
        self.try_access().map(|t| f(&t))
    }

    /// Accesses the data within an RCU critical section the caller already holds.
    pub fn try_access_with_guard<'a>(&'a self, guard: &'a rcu::Guard) -> Option<&'a T> {
        self.0.data.try_access_with_guard(guard)
    }
}

impl<T: Send + 'static> Drop for Devres<T> {
    fn drop(&mut self) {
        // SAFETY: every access borrows `self` (guards and `access` references alike), so none
        // is left while `drop` runs: no grace period to wait for.
        if unsafe { self.0.data.revoke_nosync() } {
            // The devres action keeps its reference until unbind; if it is running right now it
            // waits for this.
            self.0.revoked.complete_all();
        } else if !self.0.released.is_done() {
            // The devres action revoked first and may still be dropping the data: wait, so
            // that nothing the data uses (a handler the `Devres` was dropped before, as in
            // `irq::Registration`) is freed before it is gone. Not when it is done already,
            // so a drop after unbind never sleeps.
            self.0.released.wait_for_completion();
        }
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
    dev: &Device<Bound>,
    action: unsafe extern "C" fn(*mut c_void),
    data: *mut c_void,
) -> Result {
    // SAFETY: `dev` is valid; the rest is the caller's contract.
    to_result(unsafe { bindings::devm_add_action_or_reset(dev.as_raw(), Some(action), data) })
}
