// SPDX-License-Identifier: GPL-2.0

//! RCU read-side critical sections.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use crate::bindings;
use core::marker::PhantomData;

/// An RCU read-side critical section; it ends when the guard is dropped.
///
/// The guard is neither `Send` nor `Sync`: the critical section must end on the CPU context that
/// began it. Code holding a guard must not sleep.
///
/// # Invariants
///
/// The guard owns one `rcu_read_lock()` that is released exactly once, in `drop`.
///
/// # Examples
///
/// ```
/// let g = kernel::sync::rcu::read_lock();
/// // ... read RCU-protected data ...
/// drop(g);
/// ```
#[must_use = "the critical section ends when the guard is dropped"]
pub struct Guard(PhantomData<*mut ()>);

impl Guard {
    /// Begins an RCU read-side critical section.
    pub fn new() -> Self {
        // SAFETY: `rcu_read_lock` may be called from any context; the matching unlock is in
        // `drop`.
        unsafe { bindings::rcu_read_lock() };
        // INVARIANT: the lock was just taken.
        Self(PhantomData)
    }
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this guard owns one read lock.
        unsafe { bindings::rcu_read_unlock() };
    }
}

/// Begins an RCU read-side critical section (see [`Guard`]).
pub fn read_lock() -> Guard {
    Guard::new()
}

/// Waits until every RCU read-side critical section that began before the call has ended.
///
/// Sleeps: call only from process context, never while holding a [`Guard`].
pub fn synchronize_rcu() {
    // SAFETY: `synchronize_rcu` has no preconditions beyond a sleepable context, which the
    // caller provides.
    unsafe { bindings::synchronize_rcu() };
}
