// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts: signalling user space through an eventfd it passed in (e.g. VFIO
//! `SET_IRQS` with `VFIO_IRQ_SET_DATA_EVENTFD`).
//!
//! C header: [`include/linux/eventfd.h`](srctree/include/linux/eventfd.h)

use crate::{
    bindings,
    error::{from_err_ptr, Result},
};
use core::ptr::NonNull;

/// A reference to an eventfd context, dropped with `eventfd_ctx_put`.
///
/// # Invariants
///
/// `ctx` is a context reference obtained from `eventfd_ctx_fdget`, put exactly once, in `drop`.
///
/// # Examples
///
/// ```ignore
/// let trigger = EventFd::from_fd(fd)?;   // EBADF for a bad fd, EINVAL if not an eventfd
/// trigger.signal();
/// ```
pub struct EventFd {
    ctx: NonNull<bindings::eventfd_ctx>,
}

// SAFETY: eventfd contexts are reference counted and may be signalled and put from any thread.
unsafe impl Send for EventFd {}
// SAFETY: `signal` is safe to call concurrently (the context has its own lock).
unsafe impl Sync for EventFd {}

impl EventFd {
    /// Takes a reference to the eventfd context behind file descriptor `fd` of the current
    /// process. `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd.
    pub fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: FFI call; it validates `fd`.
        let p = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: a successful `eventfd_ctx_fdget` returns a referenced, non-null context.
        NonNull::new(p).map(|ctx| Self { ctx }).ok_or(crate::error::code::EINVAL)
    }

    /// Adds 1 to the counter and wakes waiters (`eventfd_signal`). Callable from any context,
    /// including hard IRQ.
    pub fn signal(&self) {
        // SAFETY: valid context (type invariant).
        unsafe { bindings::eventfd_signal_mask(self.ctx.as_ptr(), 0) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::eventfd_ctx_put(self.ctx.as_ptr()) };
    }
}
