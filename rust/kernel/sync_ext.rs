// SPDX-License-Identifier: GPL-2.0

//! Synchronisation primitives drivers otherwise build by hand: a completion, safe flushing
//! of a work item and a one-slot job worker.
//!
//! C header: [`include/linux/completion.h`](srctree/include/linux/completion.h),
//! [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)
//!
//! [`Completion`] follows upstream's `kernel::sync::Completion` (v6.16,
//! `rust/kernel/sync/completion.rs`): same constructor and method names, so moving to a newer
//! kernel changes only the `use` line; [`Completion::complete`] and [`Completion::reinit`] (a
//! re-armable completion, safe under shared access) are additions upstream does not have yet.
//! [`WorkFlush`] is not upstream yet: a `flush_work` on a
//! `Work` the caller borrows, which is what makes it safe (the `work_struct` is initialised and
//! cannot be freed while borrowed). [`JobWorker`] is not upstream either: the "guest started an
//! operation, run it off the register-write path, cancel it at reset" worker every device model
//! otherwise writes as a struct, a `HasWork` impl and a `WorkItem` impl.

use core::sync::atomic::{AtomicU64, Ordering};
use crate::{
    bindings,
    init::PinInit,
    new_mutex, new_work, pin_init,
    prelude::*,
    sync::{Arc, Mutex},
    types::Opaque,
    workqueue::{self, impl_has_work, Work, WorkItem},
};

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

/// Flushing a work item the caller holds a borrow of.
pub trait WorkFlush {
    /// Waits until the last queueing of this work item finished running (`flush_work`); true if
    /// it had to wait. Must not be called from the work item itself (it would wait for itself;
    /// lockdep reports it).
    fn flush(&self) -> bool;
    /// Cancels a pending run and waits for a running one (`cancel_work_sync`); true if it was
    /// pending.
    fn cancel_sync(&self) -> bool;
}

impl<T: ?Sized, const ID: u64> WorkFlush for Work<T, ID> {
    fn flush(&self) -> bool {
        // SAFETY: `self` is a live, initialised `Work` (every constructor runs `init_work`), and
        // the borrow keeps it from being freed while `flush_work` uses it.
        unsafe { bindings::flush_work(Work::raw_get(self)) }
    }

    fn cancel_sync(&self) -> bool {
        // SAFETY: as in `flush`.
        unsafe { bindings::cancel_work_sync(Work::raw_get(self)) }
    }
}

/// A job a [`JobWorker`] runs, in process context on the system long workqueue (it may sleep).
pub trait Job: Send + Sized + 'static {
    /// Does the job; consumes it, so what it holds (device references) is released after.
    /// `ticket` says whether the worker was aborted since the job was submitted (a reset: stop,
    /// and report nothing).
    fn run(self, ticket: &Ticket<'_>);
}

/// A running job's view of its worker's cancellations ([`JobWorker::abort`]).
pub struct Ticket<'a> {
    gen: &'a AtomicU64,
    mine: u64,
}

impl Ticket<'_> {
    /// Whether the worker was aborted since the job was submitted. Read under the lock the
    /// driver calls [`JobWorker::abort`] under, the answer holds until that lock is dropped.
    pub fn cancelled(&self) -> bool {
        self.gen.load(Ordering::Acquire) != self.mine
    }
}

/// One work item with one pending job: [`JobWorker::submit`] queues a job,
/// [`JobWorker::cancel`] drops the pending one and waits for the running one.
///
/// A device model's "start" register needs exactly this: jobs run one at a time, in order, off
/// the write path, and a reset must know that no job runs any more when it returns.
///
/// # Examples
///
/// ```ignore
/// struct Copy { /* what the copy needs, with references keeping it alive */ }
/// impl Job for Copy { fn run(self, t: &Ticket<'_>) { /* ...; stop if t.cancelled() */ } }
/// let worker: Arc<JobWorker<Copy>> = JobWorker::new()?;
/// worker.submit(Copy { /* ... */ });
/// worker.cancel(); // at reset: nothing runs after this returns
/// ```
#[macros::pin_data]
pub struct JobWorker<J: Job> {
    #[pin]
    pending: Mutex<Option<(J, u64)>>,
    /// Bumped by every abort: a job submitted at an older value is cancelled.
    gen: AtomicU64,
    #[pin]
    work: Work<JobWorker<J>>,
}

impl_has_work! { impl{J: Job} HasWork<JobWorker<J>> for JobWorker<J> { self.work } }

impl<J: Job> WorkItem for JobWorker<J> {
    type Pointer = Arc<JobWorker<J>>;

    fn run(this: Arc<JobWorker<J>>) {
        // Taken before running, so the lock is not held by the job (it may sleep, and a
        // `submit` from another thread must not wait for it).
        let job = this.pending.lock().take();
        if let Some((job, mine)) = job {
            job.run(&Ticket { gen: &this.gen, mine });
        }
    }
}

impl<J: Job> JobWorker<J> {
    /// An idle worker.
    pub fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                pending <- new_mutex!(None, "JobWorker::pending"),
                gen: AtomicU64::new(0),
                work <- new_work!("JobWorker::work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues `job`, replacing a job still pending (which is dropped, not run): only the
    /// newest start counts, as when a guest rewrites a start register.
    pub fn submit(self: &Arc<Self>, job: J) {
        let old = self.pending.lock().replace((job, self.gen.load(Ordering::Acquire)));
        // Dropped outside the lock: it may hold the last reference to a device.
        drop(old);
        // Already queued (`Err`) is fine: that run takes the new job.
        let _ = workqueue::system_long().enqueue(self.clone());
    }

    /// Marks the running job cancelled (its [`Ticket`] says so from now on) without waiting:
    /// a device model calls it under the lock its job reports under, so a job either reported
    /// before the reset or sees it; then [`JobWorker::cancel`] outside that lock.
    pub fn abort(&self) {
        self.gen.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops the pending job and waits until a running one returned: no job runs after this.
    /// Does not [`JobWorker::abort`]: the running job finishes as it sees its ticket. Must not
    /// be called from a job (it would wait for itself; lockdep reports it).
    pub fn cancel(&self) {
        let old = self.pending.lock().take();
        drop(old);
        self.work.flush();
    }
}
