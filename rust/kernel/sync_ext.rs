// SPDX-License-Identifier: GPL-2.0

//! Synchronisation primitives drivers otherwise build by hand: safe flushing of a work item
//! and a one-slot job worker. (The completion is [`crate::sync::Completion`], where upstream
//! has it.)
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)
//!
//! [`WorkFlush`] is not upstream yet: a `flush_work` on a
//! `Work` the caller borrows, which is what makes it safe (the `work_struct` is initialised and
//! cannot be freed while borrowed). [`JobWorker`] is not upstream either: the "guest started an
//! operation, run it off the register-write path, cancel it at reset" worker every device model
//! otherwise writes as a struct, a `HasWork` impl and a `WorkItem` impl.

use core::sync::atomic::{AtomicU64, Ordering};
use crate::{
    bindings,
    new_mutex, new_work, pin_init,
    prelude::*,
    sync::{Arc, Mutex},
    workqueue::{self, impl_has_work, Work, WorkItem},
};

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
