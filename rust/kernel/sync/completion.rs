// SPDX-License-Identifier: GPL-2.0

//! Completion: a one-shot event threads can wait for.
//!
//! C header: [`include/linux/completion.h`](srctree/include/linux/completion.h)
//!
//! Follows upstream's `kernel::sync::completion` (v6.16, `rust/kernel/sync/completion.rs`): same
//! path, constructor and method names. [`Completion::complete`] and [`Completion::reinit`] (a
//! re-armable completion, safe under shared access) are additions upstream does not have yet.

use crate::{bindings, init::PinInit, pin_init, types::Opaque};

/// A one-shot event threads can wait for (`struct completion`), instead of an `AtomicBool` +
/// `Mutex` + `CondVar` triple: "the engine finished", "the last user left".
///
/// # Invariants
///
/// `inner` is an initialised `struct completion` (pinned: its wait queue is self-referential).
///
/// # Examples
///
/// ```ignore
/// let done = KBox::pin_init(Completion::new(), GFP_KERNEL)?;
/// // elsewhere: done.complete_all();
/// done.wait_for_completion();
/// ```
#[macros::pin_data]
pub struct Completion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: `struct completion` is designed to be signalled and waited on from any thread.
unsafe impl Send for Completion {}
// SAFETY: as above; every operation takes the completion's own lock.
unsafe impl Sync for Completion {}

impl Completion {
    /// A new, not yet completed completion.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- Opaque::ffi_init(|slot: *mut bindings::completion| {
                // SAFETY: `slot` is valid for writes and pinned (`ffi_init`'s contract).
                unsafe { bindings::init_completion(slot) }
            }),
        })
    }

    /// Wakes every waiter, now and later (until [`Completion::reinit`]).
    pub fn complete_all(&self) {
        // SAFETY: initialised (type invariant).
        unsafe { bindings::complete_all(self.inner.get()) };
    }

    /// Sleeps (uninterruptibly) until the completion is completed.
    pub fn wait_for_completion(&self) {
        // SAFETY: initialised (type invariant).
        unsafe { bindings::wait_for_completion(self.inner.get()) };
    }

    /// Waits at most `jiffies`; true if completed (`wait_for_completion_timeout`).
    pub fn wait_for_completion_timeout(&self, jiffies: usize) -> bool {
        // SAFETY: initialised (type invariant).
        unsafe { bindings::wait_for_completion_timeout(self.inner.get(), jiffies as _) != 0 }
    }

    /// Whether it was completed (`completion_done`).
    pub fn is_done(&self) -> bool {
        // SAFETY: initialised (type invariant).
        unsafe { bindings::completion_done(self.inner.get()) }
    }

    /// Wakes one waiter, or lets the next wait return at once (`complete`).
    pub fn complete(&self) {
        // SAFETY: initialised (type invariant).
        unsafe { bindings::complete(self.inner.get()) };
    }

    /// Makes it "not completed" again (`reinit_completion`), to wait for the next event: a
    /// device whose interrupt handler completes it re-arms it before starting the hardware.
    ///
    /// Safe on a shared reference, unlike C's `reinit_completion` (a plain store): it takes the
    /// completion's wait-queue lock, which `complete`/`complete_all` take, so it never races
    /// with an interrupt handler completing it. A waiter already sleeping keeps sleeping until
    /// the next completion (or its timeout). An event that arrives before the re-arm is lost on
    /// purpose, so re-arm before starting what completes it, then check the hardware's own
    /// state after each wake (as a driver does anyway).
    pub fn reinit(&self) {
        // SAFETY: initialised (type invariant); the helper writes `done` under `wait.lock`.
        unsafe { bindings::reinit_completion_locked(self.inner.get()) };
    }
}
