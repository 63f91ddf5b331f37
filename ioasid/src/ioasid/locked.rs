// SPDX-License-Identifier: GPL-2.0
//! [`Ioasid`]: the allocator behind its locks, with free notifications.

use core::fmt;

use super::store::for_each;
use super::{
    Backend, Error, FreeNotifier, IdStore, IoasidCore, Lock, Lookup, LookupReader, Owner, Pasid,
    PasidInfo, Rejected, Release, ReleaseChain, SetId, SetInfo, StoreError, Teardown,
};

/// The types a platform plugs into [`Ioasid`], on top of those of [`Backend`].
pub trait Platform: Backend + Sized {
    /// Handle to a free notifier (e.g. `Arc<dyn FreeNotifier<D>>` wrapper, `&'static`
    /// notifier, boxed closure).
    type Notifier: FreeNotifier<Self::Data>;
    /// Storage of the subscriptions, indexed by [`SubscriptionId`].
    type NotifierStore: IdStore<Subscription<Self::Notifier>>;
    /// The lockless lookup table of [`Ioasid::find_word`] ([`HotTable`](super::HotTable), or
    /// [`NoLookup`](super::NoLookup) to take the state lock instead).
    type Lookup: Lookup;
    /// The state lock: short critical sections, no sleeping inside except in a custom
    /// allocator hook (so a spinlock unless that hook sleeps).
    type StateLock: Lock<Target = IoasidCore<Self, Self::Lookup>>;
    /// The notifier lock: held while notifiers run (a mutex if they may sleep).
    type NotifierLock: Lock<Target = Notifiers<Self>>;
}

/// The core type of a platform.
type Core<P> = IoasidCore<P, <P as Platform>::Lookup>;

/// A stored subscription (opaque; public only so that platforms can name its store).
pub struct Subscription<N> {
    notifier: Option<N>,
    filter: Option<SetId>,
}

/// Names a subscription, for [`Ioasid::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub u32);

/// The free notifier subscriptions, protected by the notifier lock.
pub struct Notifiers<P: Platform> {
    store: P::NotifierStore,
}

impl<P: Platform> Notifiers<P> {
    /// Subscriptions kept in `store`, which must be empty.
    pub fn new(store: P::NotifierStore) -> Self {
        Notifiers { store }
    }

    fn notify(&self, r: &Release<P::Data>) {
        let _ = for_each(&self.store, |_, sub| -> Result<(), ()> {
            // Not `Option::is_none_or` (Rust 1.82): the kernel's MSRV is 1.78.
            if !matches!(sub.filter, Some(f) if f != r.set()) {
                if let Some(n) = &sub.notifier {
                    n.released(r.set(), r.pasid(), r.data());
                }
            }
            Ok(())
        });
    }
}

/// The PASID allocator for concurrent use: [`IoasidCore`] behind the state lock plus the free
/// notifier subscriptions behind the notifier lock. All methods take `&self`.
///
/// # Concurrency contract
///
/// * Every operation runs its state changes in one critical section of the state lock, so
///   each is atomic with respect to the others. Lookups ([`find`](Ioasid::find),
///   [`with_data`](Ioasid::with_data)) take the state lock too: they can never see a PASID
///   that a concurrent `free` has freed, nor data that was dropped. What they return is a
///   snapshot: the PASID may be freed right after. To use the PASID beyond the call, hold a
///   reference ([`get`](Ioasid::get) ... [`put`](Ioasid::put)): a referenced PASID is never
///   released, so never reused, even when freed meanwhile.
/// * The custom allocator hook runs under the state lock.
/// * Free notifiers run without the state lock and under the notifier lock, while the PASID is
///   [`Releasing`](super::PasidState::Releasing): the PASID can be allocated again only after
///   all of them returned. The operation that released the PASID (`free`, `put`,
///   `destroy_set`) delivers the notifications itself before it returns.
/// * Private data is dropped outside the state lock.
/// * [`unsubscribe`](Ioasid::unsubscribe) waits for running notifications; once it returns,
///   the notifier is not called again.
pub struct Ioasid<P: Platform> {
    state: P::StateLock,
    notifiers: P::NotifierLock,
    /// Reads the lookup table inside `state` without the lock; valid as long as `state` is.
    reader: <P::Lookup as Lookup>::Reader,
}

impl<P: Platform> Ioasid<P> {
    /// The allocator over a locked [`IoasidCore`] and locked (empty) [`Notifiers`].
    pub fn new(state: P::StateLock, notifiers: P::NotifierLock) -> Self {
        // SAFETY: the reader is a field next to `state`, which owns the lookup table for good
        // (the core never replaces it), and is dropped with it.
        let reader = state.with(|c| unsafe { c.lookup().reader() });
        Ioasid {
            state,
            notifiers,
            reader,
        }
    }

    /// Read-only access to the state, under the state lock (for queries not wrapped here).
    pub fn with_core<R>(&self, f: impl FnOnce(&Core<P>) -> R) -> R {
        self.state.with(|c| f(c))
    }

    /// See [`IoasidCore::create_set`].
    pub fn create_set(&self, owner: Owner, quota: u32) -> Result<SetId, Error> {
        self.state.with(|c| c.create_set(owner, quota))
    }

    /// See [`IoasidCore::set_quota`].
    pub fn set_quota(&self, set: SetId, quota: u32) -> Result<(), Error> {
        self.state.with(|c| c.set_quota(set, quota))
    }

    /// See [`IoasidCore::set_info`].
    pub fn set_info(&self, set: SetId) -> Result<SetInfo, Error> {
        self.state.with(|c| c.set_info(set))
    }

    /// See [`IoasidCore::pasid_info`].
    pub fn pasid_info(&self, pasid: Pasid) -> Option<PasidInfo> {
        self.state.with(|c| c.pasid_info(pasid))
    }

    /// Tears down `set` ([`IoasidCore::destroy_set`]) and delivers the free notifications of
    /// the PASIDs that released before returning (one per PASID whose last reference was the
    /// allocation reference; the others are notified by their last `put`).
    pub fn destroy_set(&self, set: SetId) -> Result<Teardown, Error> {
        let (report, chain, first, dropped) = self.state.with(|c| {
            let (report, mut chain) = c.destroy_set(set)?;
            let (first, dropped) = advance(c, &mut chain, None);
            Ok::<_, Error>((report, chain, first, dropped))
        })?;
        drop(dropped);
        self.drain(chain, first);
        Ok(report)
    }

    /// Allocates a PASID for `set` ([`IoasidCore::alloc`]). On failure `data` is dropped
    /// (outside the lock).
    pub fn alloc(&self, set: SetId, min: Pasid, max: Pasid, data: P::Data) -> Result<Pasid, Error> {
        self.state
            .with(|c| c.alloc(set, min, max, data))
            .map_err(Error::from)
    }

    /// Frees `pasid` of `set` ([`IoasidCore::free`]); if that released it, the free
    /// notifications are delivered before returning.
    pub fn free(&self, set: SetId, pasid: Pasid) -> Result<(), Error> {
        self.release_op(|c| c.free_unnotified(set, pasid), |c| c.free(set, pasid))
    }

    /// See [`IoasidCore::get`].
    pub fn get(&self, set: SetId, pasid: Pasid) -> Result<u32, Error> {
        self.state.with(|c| c.get(set, pasid))
    }

    /// Drops a reference ([`IoasidCore::put`]); if that released the PASID, the free
    /// notifications are delivered before returning.
    pub fn put(&self, set: SetId, pasid: Pasid) -> Result<(), Error> {
        self.release_op(|c| c.put_unnotified(set, pasid), |c| c.put(set, pasid))
    }

    /// A copy of the private data of `pasid` ([`IoasidCore::find`]).
    pub fn find(&self, set: SetId, pasid: Pasid) -> Result<P::Data, Error>
    where
        P::Data: Clone,
    {
        self.state.with(|c| c.find(set, pasid).cloned())
    }

    /// The [`data_word`](Backend::data_word) of the private data of `pasid`, looked up without
    /// the state lock in the platform's [`Lookup`] table: the same checks and errors as
    /// [`find`](Ioasid::find), the result it would have given at some instant during the call
    /// (a snapshot just the same). It never returns the word of a PASID that was released
    /// before the call started, nor of another set's PASID. When the table cannot decide (no
    /// table, or a block too busy with allocations), it takes the state lock.
    #[inline]
    pub fn find_word(&self, set: SetId, pasid: Pasid) -> Result<usize, Error> {
        match self.reader.find(set, pasid) {
            Some(r) => r,
            None => self.state.with(|c| c.find(set, pasid).map(P::data_word)),
        }
    }

    /// Runs `f` on the private data of `pasid` under the state lock ([`IoasidCore::find`]).
    /// `f` must not call into the allocator.
    pub fn with_data<R>(
        &self,
        set: SetId,
        pasid: Pasid,
        f: impl FnOnce(&P::Data) -> R,
    ) -> Result<R, Error> {
        self.state.with(|c| c.find(set, pasid).map(f))
    }

    /// Replaces the private data ([`IoasidCore::set_data`]) and returns the old data, to be
    /// dropped by the caller outside the lock. On failure `data` is dropped.
    pub fn set_data(&self, set: SetId, pasid: Pasid, data: P::Data) -> Result<P::Data, Error> {
        self.state
            .with(|c| c.set_data(set, pasid, data))
            .map_err(Error::from)
    }

    /// See [`IoasidCore::register_allocator`].
    pub fn register_allocator(
        &self,
        allocator: P::Allocator,
    ) -> Result<(), Rejected<P::Allocator>> {
        self.state.with(|c| c.register_allocator(allocator))
    }

    /// See [`IoasidCore::unregister_allocator`].
    pub fn unregister_allocator(&self) -> Result<(P::Allocator, u32), Error> {
        self.state.with(|c| c.unregister_allocator())
    }

    /// Subscribes `notifier` to releases of PASIDs of `filter` (of every set if `None`). It is
    /// told of every PASID that starts releasing after this returns.
    ///
    /// Errors: [`Error::NoMemory`], [`Error::NoSpace`] (2^32 subscriptions); the notifier comes
    /// back.
    pub fn subscribe(
        &self,
        notifier: P::Notifier,
        filter: Option<SetId>,
    ) -> Result<SubscriptionId, Rejected<P::Notifier>> {
        self.notifiers.with(|n| {
            let sub = Subscription {
                notifier: None,
                filter,
            };
            let id = match n.store.alloc(0, u32::MAX, sub) {
                Ok(id) => id,
                Err(StoreError::NoMemory) => return Err(Rejected::new(Error::NoMemory, notifier)),
                Err(_) => return Err(Rejected::new(Error::NoSpace, notifier)),
            };
            match n.store.get_mut(id) {
                Some(s) => s.notifier = Some(notifier),
                None => return Err(Rejected::new(Error::NoMemory, notifier)),
            }
            // Counted while the notifier lock is still held, so no release can be notified
            // between the insertion and the count.
            self.state.with(|c| c.add_subscriber());
            Ok(SubscriptionId(id))
        })
    }

    /// Removes a subscription and returns its notifier. Waits for running notifications.
    ///
    /// Errors: [`Error::SubscriptionNotFound`].
    pub fn unsubscribe(&self, id: SubscriptionId) -> Result<P::Notifier, Error> {
        let notifier = self
            .notifiers
            .with(|n| n.store.remove(id.0))
            .and_then(|s| s.notifier)
            .ok_or(Error::SubscriptionNotFound)?;
        self.state.with(|c| c.remove_subscriber());
        Ok(notifier)
    }

    /// Writes the debugfs view ([`IoasidCore::dump`]) under the state lock.
    pub fn dump<W: fmt::Write + ?Sized>(&self, w: &mut W) -> fmt::Result {
        self.state.with(|c| c.dump(w))
    }

    /// Runs `fast` (no subscribers: releases are completed at once, one critical section, the
    /// notifier lock untouched) or `op` (releases are notified) under the state lock.
    fn release_op(
        &self,
        fast: impl FnOnce(&mut Core<P>) -> Result<Option<P::Data>, Error>,
        op: impl FnOnce(&mut Core<P>) -> Result<ReleaseChain, Error>,
    ) -> Result<(), Error> {
        /// What the critical section leaves to do; the common case (no subscribers) carries
        /// only the data to drop, so that nothing else is moved around.
        enum Then<D> {
            Drop(Option<D>),
            Drain(ReleaseChain, Option<Release<D>>, Option<D>),
        }
        let then = self.state.with(|c| {
            if c.subscribers() == 0 {
                return fast(c).map(Then::Drop);
            }
            let mut chain = op(c)?;
            let (first, dropped) = advance(c, &mut chain, None);
            Ok::<_, Error>(Then::Drain(chain, first, dropped))
        })?;
        match then {
            Then::Drop(dropped) => drop(dropped),
            Then::Drain(chain, first, dropped) => {
                drop(dropped);
                self.drain(chain, first);
            }
        }
        Ok(())
    }

    /// Notifies `pending` (if any), completes it, and does the same for the rest of `chain`.
    fn drain(&self, mut chain: ReleaseChain, mut pending: Option<Release<P::Data>>) {
        while pending.is_some() || !chain.is_empty() {
            if let Some(r) = &pending {
                self.notifiers.with(|n| n.notify(r));
            }
            let (next, dropped) = self.state.with(|c| advance(c, &mut chain, pending.take()));
            drop(dropped);
            pending = next;
        }
    }
}

/// Under the state lock: completes `done` (notified already), then takes the next release of
/// `chain`. With no subscribers and nothing completed yet, that release is completed at once.
/// Returns the release to notify and the data to drop after unlocking (at most one of each, so
/// that nothing is dropped under the lock and nothing needs allocating).
fn advance<P: Platform>(
    c: &mut Core<P>,
    chain: &mut ReleaseChain,
    done: Option<Release<P::Data>>,
) -> (Option<Release<P::Data>>, Option<P::Data>) {
    let dropped = done.map(|r| c.complete_release(r));
    let next = c.next_release(chain);
    match (next, dropped) {
        (Some(r), None) if c.subscribers() == 0 => (None, Some(c.complete_release(r))),
        (next, dropped) => (next, dropped),
    }
}
