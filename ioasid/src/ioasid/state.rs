// SPDX-License-Identifier: GPL-2.0
//! The allocator state ([`IoasidCore`]): `&mut self` operations, to be run under the state lock.

use core::fmt;

use super::config::Space;
use super::{Config, Error, IdStore, Lookup, NoLookup, PasidAllocator, Rejected, StoreError};

/// A PASID (PCIe Process Address Space ID, Arm SubstreamID).
pub type Pasid = u32;

/// End-of-list marker of the intrusive lists (never a valid PASID: the space is 20 bits).
const NIL: Pasid = u32::MAX;

/// Names a set. It carries a generation, so an ID kept after its set was torn down never
/// names a later set that reuses the index ([`Error::SetNotFound`] instead). The generation is
/// 32 bits: it would only repeat after 2^32 set creations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId {
    index: u32,
    generation: u32,
}

impl SetId {
    /// The index of the set in the set store (`1..=max_sets`).
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The generation number that tells apart sets that had the same index.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// The ID as one integer (generation in the high half), e.g. for a uAPI handle.
    pub const fn to_raw(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// The inverse of [`to_raw`](SetId::to_raw). Any value is accepted: one that names no set
    /// makes operations fail with [`Error::SetNotFound`] or [`Error::NotOwner`].
    pub const fn from_raw(raw: u64) -> SetId {
        SetId {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

impl fmt::Display for SetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

/// What kind of owner a set belongs to (shown in debugfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A virtual machine (guest PASIDs).
    Vm,
    /// A mediated-device parent.
    Mdev,
    /// A process using shared virtual addressing.
    Sva,
    /// Anything else.
    Other,
}

impl OwnerKind {
    /// Short lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Vm => "vm",
            OwnerKind::Mdev => "mdev",
            OwnerKind::Sva => "sva",
            OwnerKind::Other => "other",
        }
    }
}

/// The owner of a set: a kind and an opaque token (a VM ID, a device address, an `mm` cookie).
/// The allocator only displays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The kind of owner.
    pub kind: OwnerKind,
    /// An opaque value that identifies the owner to humans.
    pub token: u64,
}

impl Owner {
    /// An owner of `kind` identified by `token`.
    pub const fn new(kind: OwnerKind, token: u64) -> Owner {
        Owner { kind, token }
    }
}

/// Life-cycle state of an allocated PASID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasidState {
    /// Allocated: findable, `get`/`free`/`set_data` work.
    Active,
    /// `free`d while references taken with `get` remain: not findable, `get` fails, only `put`
    /// works; the PASID stays reserved (and counted in its set's usage) until the last `put`.
    Freed,
    /// The last reference is gone; free notifiers are running. Nothing works on it and the PASID
    /// cannot be allocated again until the release completes.
    Releasing,
}

impl PasidState {
    /// Short lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PasidState::Active => "active",
            PasidState::Freed => "freed",
            PasidState::Releasing => "releasing",
        }
    }
}

/// The stored record of one PASID (opaque; public only so that platforms can name
/// `IdStore<PasidEntry<D>>`). State-lock only: lockless lookups read the core's
/// [`Lookup`] table instead.
#[derive(Debug)]
pub struct PasidEntry<D> {
    set: SetId,
    state: PasidState,
    /// References taken with `get` (the allocation reference is `state == Active`).
    refs: u32,
    /// Handed out by the custom allocator.
    custom: bool,
    /// `Releasing`: the next PASID of the release chain.
    next: Pasid,
    /// `None` only while `Releasing` with the data moved into a [`Release`].
    data: Option<D>,
}

/// The stored record of one set (opaque; public only so that platforms can name
/// `IdStore<SetEntry>`).
#[derive(Debug)]
pub struct SetEntry {
    generation: u32,
    owner: Owner,
    quota: u32,
    /// PASIDs of the set in the store, in any state.
    usage: u32,
    /// PASIDs of the set in the `Active` state.
    active: u32,
    /// Lowest and highest PASID the set ever held (`lo > hi`: none): what
    /// [`destroy_set`](IoasidCore::destroy_set) scans.
    lo: Pasid,
    hi: Pasid,
    /// Torn down; the entry stays until `usage` drops to 0.
    dying: bool,
}

/// A snapshot of a set's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetInfo {
    /// The owner given at creation.
    pub owner: Owner,
    /// Most PASIDs the set may hold.
    pub quota: u32,
    /// PASIDs charged to the set: active, freed but still referenced, and releasing.
    pub usage: u32,
    /// PASIDs of the set in the [`PasidState::Active`] state.
    pub active: u32,
    /// The set was torn down and waits for its last PASIDs to be released.
    pub dying: bool,
}

/// A snapshot of a PASID's bookkeeping (not access-checked: for diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasidInfo {
    /// The owning set.
    pub set: SetId,
    /// Life-cycle state.
    pub state: PasidState,
    /// References taken with `get` and not yet dropped with `put`.
    pub refs: u32,
    /// Handed out by a custom allocator (one that may since have been unregistered).
    pub custom: bool,
}

/// What [`IoasidCore::destroy_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Teardown {
    /// PASIDs of the set whose allocation reference was dropped (all its active PASIDs).
    pub freed: u32,
    /// Of these, PASIDs still referenced through `get`: released by their last `put`.
    pub deferred: u32,
}

/// PASIDs whose last reference is gone and that wait for their free notifications, linked
/// through their entries (no allocation). Obtain them one by one with
/// [`IoasidCore::next_release`].
///
/// Dropping a non-empty chain leaks its PASIDs: they stay in the `Releasing` state forever.
#[must_use = "released PASIDs stay reserved until the chain is processed"]
#[derive(Debug, PartialEq, Eq)]
pub struct ReleaseChain {
    head: Pasid,
    len: u32,
}

impl ReleaseChain {
    /// A chain with no PASID.
    pub const fn new() -> ReleaseChain {
        ReleaseChain { head: NIL, len: 0 }
    }

    /// Whether the chain holds no PASID.
    pub const fn is_empty(&self) -> bool {
        self.head == NIL
    }

    /// Number of PASIDs in the chain.
    pub const fn len(&self) -> u32 {
        self.len
    }
}

impl Default for ReleaseChain {
    fn default() -> Self {
        ReleaseChain::new()
    }
}

/// One released PASID, taken from a [`ReleaseChain`]: notify the subscribers with it, then
/// hand it to [`IoasidCore::complete_release`], which frees the PASID for reuse and gives the
/// data back.
#[must_use = "the PASID stays reserved until the release is completed"]
#[derive(Debug)]
pub struct Release<D> {
    set: SetId,
    pasid: Pasid,
    data: D,
}

impl<D> Release<D> {
    /// The set the PASID belonged to.
    pub fn set(&self) -> SetId {
        self.set
    }

    /// The released PASID.
    pub fn pasid(&self) -> Pasid {
        self.pasid
    }

    /// Its private data.
    pub fn data(&self) -> &D {
        &self.data
    }
}

/// The types a platform plugs into [`IoasidCore`].
pub trait Backend {
    /// Private data stored with each PASID (a pointer, a cookie, an `Arc`, ...).
    type Data;
    /// Storage of PASID records, indexed by PASID.
    type PasidStore: IdStore<PasidEntry<Self::Data>>;
    /// Storage of set records, indexed by set index.
    type SetStore: IdStore<SetEntry>;
    /// Handle to a custom allocator ([`NoAllocator`](super::NoAllocator) if there is none).
    type Allocator: PasidAllocator;

    /// The word that lockless lookups ([`Ioasid::find_word`](super::Ioasid::find_word)) return
    /// for `data`: the data itself for word-sized data (the kernel's `usize` cookie), or any
    /// word that identifies it. The default (0 for all data) suits platforms that do not use
    /// lockless lookups.
    fn data_word(data: &Self::Data) -> usize {
        let _ = data;
        0
    }
}

/// The PASID allocator state. Every method takes `&self`/`&mut self`: the caller serialises
/// calls (wrap it in a lock, as [`Ioasid`](super::Ioasid) does). Cost: every operation does
/// O(1) store operations (O(1) for a [`DenseStore`](super::DenseStore), O(log n) for an
/// XArray or a B-tree) except [`destroy_set`](IoasidCore::destroy_set) (a scan of the live
/// PASIDs within the set's PASID bounds) and [`dump`](IoasidCore::dump).
///
/// Operations that drop the last reference of PASIDs do not erase them: they move them to the
/// [`PasidState::Releasing`] state and return a [`ReleaseChain`]. The caller takes each
/// [`Release`] from it with [`next_release`](IoasidCore::next_release), delivers the free
/// notifications (with the lock dropped, if it likes), and completes the release with
/// [`complete_release`](IoasidCore::complete_release), which erases the PASID (calling the
/// custom allocator's `free` if it came from there) and hands the private data back.
///
/// `L` is the lockless lookup table kept in step with the PASIDs ([`Lookup`]; [`NoLookup`]
/// for none, the default).
pub struct IoasidCore<B: Backend, L: Lookup = NoLookup> {
    space: Space,
    lookup: L,
    max_sets: u32,
    pasids: B::PasidStore,
    sets: B::SetStore,
    allocator: Option<B::Allocator>,
    /// Entries in `pasids`.
    live: u32,
    /// Entries in `pasids` with `custom` set.
    custom_live: u32,
    /// Entries in `sets`.
    nr_sets: u32,
    next_generation: u32,
    subscribers: usize,
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NoMemory => Error::NoMemory,
        StoreError::Full => Error::NoSpace,
        StoreError::Occupied => Error::AllocatorFault,
    }
}

impl<B: Backend> IoasidCore<B, NoLookup> {
    /// Sets up the PASID space described by `config` over two empty stores, without a lookup
    /// table.
    ///
    /// Errors: [`Error::InvalidWidth`], [`Error::InvalidReserved`], [`Error::InvalidSetLimit`]
    /// (0, or more than [`MAX_KEY_SET_INDEX`](super::MAX_KEY_SET_INDEX) sets);
    /// [`Error::SpaceInUse`] if a store is not empty.
    pub fn new(
        config: &Config<'_>,
        pasids: B::PasidStore,
        sets: B::SetStore,
    ) -> Result<Self, Error> {
        Self::with_lookup(config, pasids, sets, NoLookup)
    }
}

impl<B: Backend, L: Lookup> IoasidCore<B, L> {
    /// Sets up the PASID space described by `config` over two empty stores and an empty
    /// lookup table.
    ///
    /// Errors: as [`new`](IoasidCore::new).
    pub fn with_lookup(
        config: &Config<'_>,
        pasids: B::PasidStore,
        sets: B::SetStore,
        lookup: L,
    ) -> Result<Self, Error> {
        let space = Space::new(config)?;
        if config.max_sets > super::MAX_KEY_SET_INDEX {
            return Err(Error::InvalidSetLimit);
        }
        if pasids.next(0).is_some() || sets.next(0).is_some() {
            return Err(Error::SpaceInUse);
        }
        Ok(IoasidCore {
            space,
            lookup,
            max_sets: config.max_sets,
            pasids,
            sets,
            allocator: None,
            live: 0,
            custom_live: 0,
            nr_sets: 0,
            next_generation: 0,
            subscribers: 0,
        })
    }

    /// Width of the PASID space in bits.
    pub fn pasid_bits(&self) -> u32 {
        self.space.bits()
    }

    /// The largest PASID of the space.
    pub fn max_pasid(&self) -> Pasid {
        self.space.max()
    }

    /// Number of PASIDs that can ever be allocated (the space minus reserved PASIDs).
    pub fn capacity(&self) -> u32 {
        self.space.capacity()
    }

    /// Whether `pasid` is reserved (0 or in a configured reserved range).
    pub fn is_reserved(&self, pasid: Pasid) -> bool {
        self.space.is_reserved(pasid)
    }

    /// Number of PASIDs in the store, in any state.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Number of sets, including torn-down sets waiting for their last PASIDs.
    pub fn nr_sets(&self) -> u32 {
        self.nr_sets
    }

    fn live_set_mut(&mut self, set: SetId) -> Result<&mut SetEntry, Error> {
        match self.sets.get_mut(set.index) {
            Some(s) if s.generation == set.generation && !s.dying => Ok(s),
            _ => Err(Error::SetNotFound),
        }
    }

    fn check_quota(&self, quota: u32) -> Result<(), Error> {
        if quota == 0 || quota > self.space.capacity() {
            Err(Error::InvalidQuota)
        } else {
            Ok(())
        }
    }

    /// Creates a set for `owner` that may hold up to `quota` PASIDs.
    ///
    /// Errors: [`Error::InvalidQuota`] (0 or more than [`capacity`](IoasidCore::capacity)),
    /// [`Error::NoSetSpace`] (`max_sets` sets exist), [`Error::NoMemory`].
    pub fn create_set(&mut self, owner: Owner, quota: u32) -> Result<SetId, Error> {
        self.check_quota(quota)?;
        let generation = self.next_generation;
        let entry = SetEntry {
            generation,
            owner,
            quota,
            usage: 0,
            active: 0,
            lo: NIL,
            hi: 0,
            dying: false,
        };
        let index = self
            .sets
            .alloc(1, self.max_sets, entry)
            .map_err(|e| match e {
                StoreError::NoMemory => Error::NoMemory,
                StoreError::Full | StoreError::Occupied => Error::NoSetSpace,
            })?;
        let id = SetId { index, generation };
        if self.lookup.set_created(id).is_err() {
            let _ = self.sets.remove(index);
            return Err(Error::NoMemory);
        }
        self.next_generation = generation.wrapping_add(1);
        self.nr_sets = self.nr_sets.saturating_add(1);
        Ok(id)
    }

    /// Changes the quota of `set`. A quota below the current usage is accepted: allocations
    /// fail with [`Error::QuotaExceeded`] until the usage drops below it.
    ///
    /// Errors: [`Error::InvalidQuota`], [`Error::SetNotFound`].
    pub fn set_quota(&mut self, set: SetId, quota: u32) -> Result<(), Error> {
        self.check_quota(quota)?;
        self.live_set_mut(set)?.quota = quota;
        Ok(())
    }

    /// The accounting of `set`, also while it is torn down but not yet empty.
    ///
    /// Errors: [`Error::SetNotFound`].
    pub fn set_info(&self, set: SetId) -> Result<SetInfo, Error> {
        match self.sets.get(set.index) {
            Some(s) if s.generation == set.generation => Ok(SetInfo {
                owner: s.owner,
                quota: s.quota,
                usage: s.usage,
                active: s.active,
                dying: s.dying,
            }),
            _ => Err(Error::SetNotFound),
        }
    }

    /// Allocates the lowest free, non-reserved PASID in `min..=max` for `set` and stores
    /// `data` with it; with a custom allocator registered, that allocator picks the PASID.
    /// The PASID starts [`Active`](PasidState::Active) with only its allocation reference.
    ///
    /// Errors, checked in this order: [`Error::SetNotFound`]; [`Error::InvalidRange`]
    /// (`min > max` or `max > max_pasid`); [`Error::QuotaExceeded`]; [`Error::NoSpace`];
    /// [`Error::NoMemory`]; with a custom allocator, whatever it returns, and
    /// [`Error::AllocatorFault`]. `data` comes back with the error.
    pub fn alloc(
        &mut self,
        set: SetId,
        min: Pasid,
        max: Pasid,
        data: B::Data,
    ) -> Result<Pasid, Rejected<B::Data>> {
        let custom = self.allocator.is_some();
        // One set lookup; `sets` and `pasids` are disjoint fields.
        let s = match self.sets.get_mut(set.index) {
            Some(s) if s.generation == set.generation && !s.dying => s,
            _ => return Err(Rejected::new(Error::SetNotFound, data)),
        };
        if min > max || max > self.space.max() {
            return Err(Rejected::new(Error::InvalidRange, data));
        }
        if s.usage >= s.quota {
            return Err(Rejected::new(Error::QuotaExceeded, data));
        }
        // The data goes in once the entry is stored, so a failed store cannot lose it.
        let word = B::data_word(&data);
        let entry = || PasidEntry {
            set,
            state: PasidState::Active,
            refs: 0,
            custom,
            next: NIL,
            data: None,
        };
        let stored = match &self.allocator {
            Some(a) => Self::alloc_custom(&self.space, &mut self.pasids, a, min, max, entry()),
            None => Self::alloc_default(&self.space, &mut self.pasids, min, max, entry),
        };
        let pasid = match stored {
            Ok(p) => p,
            Err(e) => return Err(Rejected::new(e, data)),
        };
        if let Err(e) = self.lookup.publish(pasid, set, word) {
            // Roll back: the PASID was never visible.
            drop(self.pasids.remove(pasid));
            if let (true, Some(a)) = (custom, &self.allocator) {
                a.free(pasid);
            }
            let _ = e;
            return Err(Rejected::new(Error::NoMemory, data));
        }
        match self.pasids.get_mut(pasid) {
            Some(e) => e.data = Some(data),
            // Unreachable with a working store.
            None => return Err(Rejected::new(Error::NoMemory, data)),
        }
        s.lo = s.lo.min(pasid);
        s.hi = s.hi.max(pasid);
        s.usage = s.usage.saturating_add(1);
        s.active = s.active.saturating_add(1);
        self.live = self.live.saturating_add(1);
        if custom {
            self.custom_live = self.custom_live.saturating_add(1);
        }
        Ok(pasid)
    }

    fn alloc_default(
        space: &Space,
        pasids: &mut B::PasidStore,
        min: Pasid,
        max: Pasid,
        entry: impl Fn() -> PasidEntry<B::Data>,
    ) -> Result<Pasid, Error> {
        space
            .for_each_free_range(min, max, |lo, hi| match pasids.alloc(lo, hi, entry()) {
                Ok(pasid) => Some(Ok(pasid)),
                Err(StoreError::Full) => None,
                Err(e) => Some(Err(store_error(e))),
            })
            .unwrap_or(Err(Error::NoSpace))
    }

    fn alloc_custom(
        space: &Space,
        pasids: &mut B::PasidStore,
        allocator: &B::Allocator,
        min: Pasid,
        max: Pasid,
        entry: PasidEntry<B::Data>,
    ) -> Result<Pasid, Error> {
        let pasid = allocator.alloc(min, max)?;
        if pasid < min || pasid > max || space.is_reserved(pasid) {
            allocator.free(pasid);
            return Err(Error::AllocatorFault);
        }
        match pasids.insert(pasid, entry) {
            Ok(()) => Ok(pasid),
            // Live already: the PASID is someone else's, keep it.
            Err(StoreError::Occupied) => Err(Error::AllocatorFault),
            Err(e) => {
                allocator.free(pasid);
                Err(store_error(e))
            }
        }
    }

    /// The entry of `pasid` if it is visible to `set`: not found if absent or releasing, not
    /// owned if it belongs to another set.
    fn entry_mut(&mut self, set: SetId, pasid: Pasid) -> Result<&mut PasidEntry<B::Data>, Error> {
        match self.pasids.get_mut(pasid) {
            None => Err(Error::PasidNotFound),
            Some(e) if e.state == PasidState::Releasing => Err(Error::PasidNotFound),
            Some(e) if e.set != set => Err(Error::NotOwner),
            Some(e) => Ok(e),
        }
    }

    fn entry(&self, set: SetId, pasid: Pasid) -> Result<&PasidEntry<B::Data>, Error> {
        match self.pasids.get(pasid) {
            None => Err(Error::PasidNotFound),
            Some(e) if e.state == PasidState::Releasing => Err(Error::PasidNotFound),
            Some(e) if e.set != set => Err(Error::NotOwner),
            Some(e) => Ok(e),
        }
    }

    /// The private data of `pasid`, if `set` owns it and it is active.
    ///
    /// Errors: [`Error::PasidNotFound`] (not allocated, freed, releasing),
    /// [`Error::NotOwner`].
    pub fn find(&self, set: SetId, pasid: Pasid) -> Result<&B::Data, Error> {
        let e = self.entry(set, pasid)?;
        match (&e.state, &e.data) {
            (PasidState::Active, Some(d)) => Ok(d),
            _ => Err(Error::PasidNotFound),
        }
    }

    /// Replaces the private data of an active PASID of `set` and returns the old data.
    ///
    /// Errors: as [`find`](IoasidCore::find); `data` comes back with the error.
    pub fn set_data(
        &mut self,
        set: SetId,
        pasid: Pasid,
        data: B::Data,
    ) -> Result<B::Data, Rejected<B::Data>> {
        let e = match self.entry_mut(set, pasid) {
            Ok(e) => e,
            Err(err) => return Err(Rejected::new(err, data)),
        };
        let word = B::data_word(&data);
        let old = match (&e.state, &mut e.data) {
            (PasidState::Active, Some(d)) => core::mem::replace(d, data),
            _ => return Err(Rejected::new(Error::PasidNotFound, data)),
        };
        self.lookup.set_word(pasid, word);
        Ok(old)
    }

    /// Takes a reference on an active PASID of `set`; returns the number of `get` references
    /// now held.
    ///
    /// Errors: as [`find`](IoasidCore::find); [`Error::RefOverflow`].
    pub fn get(&mut self, set: SetId, pasid: Pasid) -> Result<u32, Error> {
        let e = self.entry_mut(set, pasid)?;
        if e.state != PasidState::Active {
            return Err(Error::PasidNotFound);
        }
        e.refs = e.refs.checked_add(1).ok_or(Error::RefOverflow)?;
        Ok(e.refs)
    }

    /// Drops a reference taken with [`get`](IoasidCore::get). Works on active and on freed
    /// PASIDs; dropping the last reference of a freed PASID releases it.
    ///
    /// Errors: [`Error::PasidNotFound`] (not allocated or releasing), [`Error::NotOwner`],
    /// [`Error::UnbalancedPut`] (no `get` reference held).
    pub fn put(&mut self, set: SetId, pasid: Pasid) -> Result<ReleaseChain, Error> {
        let e = self.entry_mut(set, pasid)?;
        if e.refs == 0 {
            return Err(Error::UnbalancedPut);
        }
        e.refs -= 1;
        let mut chain = ReleaseChain::new();
        if e.refs == 0 && e.state == PasidState::Freed {
            Self::start_release(e, pasid, &mut chain);
            self.lookup.clear(pasid);
        }
        Ok(chain)
    }

    /// Drops the allocation reference of an active PASID of `set`. It stops being findable at
    /// once; it is released now if no `get` reference is held, else by the last `put`
    /// ([`PasidState::Freed`] meanwhile). Either way it stays charged to the set until
    /// released.
    ///
    /// Errors: as [`find`](IoasidCore::find) (a second `free` fails with
    /// [`Error::PasidNotFound`]).
    pub fn free(&mut self, set: SetId, pasid: Pasid) -> Result<ReleaseChain, Error> {
        let e = self.entry_mut(set, pasid)?;
        if e.state != PasidState::Active {
            return Err(Error::PasidNotFound);
        }
        let mut chain = ReleaseChain::new();
        if e.refs == 0 {
            Self::start_release(e, pasid, &mut chain);
            self.lookup.clear(pasid);
        } else {
            e.state = PasidState::Freed;
            self.lookup.freed(pasid, set);
        }
        self.deactivate(set);
        Ok(chain)
    }

    /// One active PASID of `set` less.
    fn deactivate(&mut self, set: SetId) {
        if let Some(s) = self.sets.get_mut(set.index) {
            if s.generation == set.generation {
                s.active = s.active.saturating_sub(1);
            }
        }
    }

    /// Moves `e` (of `pasid`) to `Releasing` at the head of `chain`; the caller clears it in
    /// the lookup table.
    fn start_release(e: &mut PasidEntry<B::Data>, pasid: Pasid, chain: &mut ReleaseChain) {
        e.state = PasidState::Releasing;
        e.next = chain.head;
        chain.head = pasid;
        chain.len = chain.len.saturating_add(1);
    }

    /// [`free`](IoasidCore::free) for a caller with nobody to notify
    /// ([`subscribers`](IoasidCore::subscribers) is 0): if that releases the PASID, the release
    /// is completed at once, as [`next_release`](IoasidCore::next_release) and
    /// [`complete_release`](IoasidCore::complete_release) would, and the private data is
    /// returned (`None`: the PASID is still referenced and was only marked freed). One lookup
    /// of the entry and of its set, and the erase.
    ///
    /// Errors: as [`free`](IoasidCore::free).
    pub fn free_unnotified(&mut self, set: SetId, pasid: Pasid) -> Result<Option<B::Data>, Error> {
        let e = self.entry_mut(set, pasid)?;
        if e.state != PasidState::Active {
            return Err(Error::PasidNotFound);
        }
        if e.refs != 0 {
            e.state = PasidState::Freed;
            self.lookup.freed(pasid, set);
            self.deactivate(set);
            return Ok(None);
        }
        e.state = PasidState::Releasing;
        let custom = e.custom;
        // Not findable from here on, also by lockless readers.
        self.lookup.clear(pasid);
        let data = self.pasids.remove(pasid).and_then(|e| e.data);
        self.live = self.live.saturating_sub(1);
        if custom {
            self.custom_live = self.custom_live.saturating_sub(1);
            if let Some(a) = &self.allocator {
                a.free(pasid);
            }
        }
        let mut drained = false;
        if let Some(s) = self.sets.get_mut(set.index) {
            if s.generation == set.generation {
                s.active = s.active.saturating_sub(1);
                s.usage = s.usage.saturating_sub(1);
                drained = s.dying && s.usage == 0;
            }
        }
        if drained && self.sets.remove(set.index).is_some() {
            self.nr_sets = self.nr_sets.saturating_sub(1);
        }
        Ok(data)
    }

    /// [`put`](IoasidCore::put) for a caller with nobody to notify: if that releases the PASID,
    /// the release is completed at once and the private data returned.
    ///
    /// Errors: as [`put`](IoasidCore::put).
    pub fn put_unnotified(&mut self, set: SetId, pasid: Pasid) -> Result<Option<B::Data>, Error> {
        let mut chain = self.put(set, pasid)?;
        Ok(self.release_unnotified(&mut chain))
    }

    /// Completes the release of the (at most one) PASID of `chain` without notifications.
    fn release_unnotified(&mut self, chain: &mut ReleaseChain) -> Option<B::Data> {
        let r = self.next_release(chain)?;
        Some(self.complete_release(r))
    }

    /// Tears down `set`: frees every active PASID of the set as [`free`](IoasidCore::free)
    /// would. The set stops accepting operations at once (except `put` on its freed PASIDs and
    /// [`set_info`](IoasidCore::set_info)) and disappears when its last PASID is released.
    ///
    /// Cost: a scan of the live PASIDs between the lowest and the highest PASID the set ever
    /// held (sets keep no list of their PASIDs, so that `alloc` and `free` touch nothing but
    /// the PASID's own record and the set's counters).
    ///
    /// Errors: [`Error::SetNotFound`] (also for a second teardown).
    pub fn destroy_set(&mut self, set: SetId) -> Result<(Teardown, ReleaseChain), Error> {
        let (lo, hi, mut active) = {
            let s = self.live_set_mut(set)?;
            s.dying = true;
            let r = (s.lo, s.hi, s.active);
            s.active = 0;
            r
        };
        let mut chain = ReleaseChain::new();
        let mut report = Teardown::default();
        let mut from = lo;
        while active != 0 && from <= hi {
            let Some((cur, _)) = self.pasids.next(from) else {
                break;
            };
            if cur > hi {
                break;
            }
            from = match cur.checked_add(1) {
                Some(f) => f,
                None => hi.saturating_add(1),
            };
            let Some(e) = self.pasids.get_mut(cur) else {
                continue;
            };
            if e.set == set && e.state == PasidState::Active {
                active -= 1;
                report.freed += 1;
                if e.refs == 0 {
                    Self::start_release(e, cur, &mut chain);
                    self.lookup.clear(cur);
                } else {
                    e.state = PasidState::Freed;
                    self.lookup.freed(cur, set);
                    report.deferred += 1;
                }
            }
        }
        self.remove_set_if_drained(set);
        Ok((report, chain))
    }

    fn remove_set_if_drained(&mut self, set: SetId) {
        let drained = matches!(self.sets.get(set.index),
            Some(s) if s.generation == set.generation && s.dying && s.usage == 0);
        if drained && self.sets.remove(set.index).is_some() {
            self.nr_sets = self.nr_sets.saturating_sub(1);
        }
    }

    /// Takes the next PASID of `chain`, moving its data out (the PASID stays reserved in the
    /// [`Releasing`](PasidState::Releasing) state).
    pub fn next_release(&mut self, chain: &mut ReleaseChain) -> Option<Release<B::Data>> {
        while chain.head != NIL {
            let pasid = chain.head;
            let Some(e) = self.pasids.get_mut(pasid) else {
                *chain = ReleaseChain::new();
                return None;
            };
            if e.state != PasidState::Releasing {
                // Not a chain of this allocator: stop rather than corrupt state.
                *chain = ReleaseChain::new();
                return None;
            }
            chain.head = e.next;
            chain.len = chain.len.saturating_sub(1);
            e.next = NIL;
            if let Some(data) = e.data.take() {
                return Some(Release {
                    set: e.set,
                    pasid,
                    data,
                });
            }
        }
        None
    }

    /// Finishes a release taken with [`next_release`](IoasidCore::next_release): erases the
    /// PASID (it can be allocated again from now on), gives it back to the custom allocator if
    /// it came from the one still registered, uncharges its set (removing a torn-down set
    /// that became empty), and returns the private data for the caller to drop.
    pub fn complete_release(&mut self, release: Release<B::Data>) -> B::Data {
        let matches = matches!(self.pasids.get(release.pasid),
            Some(e) if e.state == PasidState::Releasing && e.set == release.set && e.data.is_none());
        if matches {
            if let Some(e) = self.pasids.remove(release.pasid) {
                self.live = self.live.saturating_sub(1);
                if e.custom {
                    self.custom_live = self.custom_live.saturating_sub(1);
                    if let Some(a) = &self.allocator {
                        a.free(release.pasid);
                    }
                }
                if let Some(s) = self.sets.get_mut(release.set.index) {
                    if s.generation == release.set.generation {
                        s.usage = s.usage.saturating_sub(1);
                    }
                }
                self.remove_set_if_drained(release.set);
            }
        }
        release.data
    }

    /// Makes `allocator` hand out all further PASIDs. Only possible while no PASID is live (the
    /// two allocators' PASIDs could collide otherwise).
    ///
    /// Errors: [`Error::AllocatorRegistered`], [`Error::SpaceInUse`]; the allocator comes back.
    pub fn register_allocator(
        &mut self,
        allocator: B::Allocator,
    ) -> Result<(), Rejected<B::Allocator>> {
        if self.allocator.is_some() {
            return Err(Rejected::new(Error::AllocatorRegistered, allocator));
        }
        if self.live != 0 {
            return Err(Rejected::new(Error::SpaceInUse, allocator));
        }
        self.allocator = Some(allocator);
        Ok(())
    }

    /// Unregisters the custom allocator and falls back to the default allocator at once.
    /// Returns the allocator and the number of PASIDs it handed out that are still live: they
    /// stay valid and owned by their sets, are never given back to the allocator (it is gone),
    /// and return to the default pool when released. The default allocator never hands out a
    /// live PASID, so they cannot collide. A new custom allocator can only be registered once
    /// they are all released.
    ///
    /// Errors: [`Error::NoAllocator`].
    pub fn unregister_allocator(&mut self) -> Result<(B::Allocator, u32), Error> {
        let a = self.allocator.take().ok_or(Error::NoAllocator)?;
        Ok((a, self.custom_live))
    }

    /// Whether a custom allocator is registered.
    pub fn has_allocator(&self) -> bool {
        self.allocator.is_some()
    }

    /// Number of live PASIDs that a custom allocator handed out (registered or not).
    pub fn custom_live(&self) -> u32 {
        self.custom_live
    }

    /// Bookkeeping of `pasid` in any state, without an ownership check (diagnostics).
    pub fn pasid_info(&self, pasid: Pasid) -> Option<PasidInfo> {
        self.pasids.get(pasid).map(|e| PasidInfo {
            set: e.set,
            state: e.state,
            refs: e.refs,
            custom: e.custom,
        })
    }

    /// Counts a free notifier subscription (see [`subscribers`](IoasidCore::subscribers)).
    pub fn add_subscriber(&mut self) {
        self.subscribers = self.subscribers.saturating_add(1);
    }

    /// Uncounts a free notifier subscription.
    pub fn remove_subscriber(&mut self) {
        self.subscribers = self.subscribers.saturating_sub(1);
    }

    /// Number of free notifier subscriptions, as counted by the lock wrapper: when 0, releases
    /// may be completed without dropping the state lock.
    pub fn subscribers(&self) -> usize {
        self.subscribers
    }

    pub(super) fn space(&self) -> &Space {
        &self.space
    }

    pub(super) fn lookup(&self) -> &L {
        &self.lookup
    }

    pub(super) fn pasid_store(&self) -> &B::PasidStore {
        &self.pasids
    }

    pub(super) fn set_store(&self) -> &B::SetStore {
        &self.sets
    }
}

impl SetEntry {
    pub(super) fn generation(&self) -> u32 {
        self.generation
    }

    pub(super) fn info(&self) -> SetInfo {
        SetInfo {
            owner: self.owner,
            quota: self.quota,
            usage: self.usage,
            active: self.active,
            dying: self.dying,
        }
    }
}

impl<D> PasidEntry<D> {
    pub(super) fn info(&self) -> PasidInfo {
        PasidInfo {
            set: self.set,
            state: self.state,
            refs: self.refs,
            custom: self.custom,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Internal cases the public API cannot reach cheaply.
    use super::*;
    use std::collections::BTreeMap;

    struct Map<T>(BTreeMap<u32, T>);

    impl<T> IdStore<T> for Map<T> {
        fn alloc(&mut self, min: u32, max: u32, value: T) -> Result<u32, StoreError> {
            let id = (min..=max)
                .find(|i| !self.0.contains_key(i))
                .ok_or(StoreError::Full)?;
            self.0.insert(id, value);
            Ok(id)
        }
        fn insert(&mut self, id: u32, value: T) -> Result<(), StoreError> {
            if self.0.contains_key(&id) {
                return Err(StoreError::Occupied);
            }
            self.0.insert(id, value);
            Ok(())
        }
        fn get(&self, id: u32) -> Option<&T> {
            self.0.get(&id)
        }
        fn get_mut(&mut self, id: u32) -> Option<&mut T> {
            self.0.get_mut(&id)
        }
        fn remove(&mut self, id: u32) -> Option<T> {
            self.0.remove(&id)
        }
        fn next(&self, from: u32) -> Option<(u32, &T)> {
            self.0.range(from..).next().map(|(k, v)| (*k, v))
        }
    }

    struct B;
    impl Backend for B {
        type Data = u8;
        type PasidStore = Map<PasidEntry<u8>>;
        type SetStore = Map<SetEntry>;
        type Allocator = super::super::NoAllocator;
    }

    fn core() -> IoasidCore<B> {
        IoasidCore::new(&Config::new(4), Map(BTreeMap::new()), Map(BTreeMap::new())).unwrap()
    }

    #[test]
    fn refcount_overflow() {
        let mut c = core();
        let s = c
            .create_set(Owner::new(super::OwnerKind::Vm, 0), 2)
            .unwrap();
        let p = c.alloc(s, 1, 15, 0).unwrap();
        c.pasids.get_mut(p).unwrap().refs = u32::MAX - 1;
        assert_eq!(c.get(s, p), Ok(u32::MAX));
        assert_eq!(c.get(s, p), Err(Error::RefOverflow));
        assert_eq!(Error::RefOverflow.to_errno(), -75);
        assert_eq!(c.pasid_info(p).unwrap().refs, u32::MAX);
        assert!(c.put(s, p).unwrap().is_empty());
    }

    #[test]
    fn non_empty_stores_are_refused() {
        let mut c = core();
        let s = c
            .create_set(Owner::new(super::OwnerKind::Vm, 0), 2)
            .unwrap();
        c.alloc(s, 1, 15, 0).unwrap();
        let IoasidCore { pasids, sets, .. } = c;
        let r = IoasidCore::<B>::new(&Config::new(4), pasids, Map(BTreeMap::new()));
        assert_eq!(r.err(), Some(Error::SpaceInUse));
        let r = IoasidCore::<B>::new(&Config::new(4), Map(BTreeMap::new()), sets);
        assert_eq!(r.err(), Some(Error::SpaceInUse));
    }

    #[test]
    fn destroy_scans_only_its_sets_pasids() {
        let mut c = core();
        let owner = Owner::new(super::OwnerKind::Vm, 0);
        let (a, b) = (
            c.create_set(owner, 8).unwrap(),
            c.create_set(owner, 8).unwrap(),
        );
        // Interleaved: a 1, b 2, a 3, b 4, a 5; then a frees 3 and b takes it.
        for (set, want) in [(a, 1), (b, 2), (a, 3), (b, 4), (a, 5)] {
            assert_eq!(c.alloc(set, 1, 15, 0).unwrap(), want);
        }
        let mut chain = c.free(a, 3).unwrap();
        let r = c.next_release(&mut chain).unwrap();
        c.complete_release(r);
        assert_eq!(c.alloc(b, 1, 15, 0).unwrap(), 3);
        let set = c.sets.get(a.index).unwrap();
        assert_eq!((set.lo, set.hi, set.active), (1, 5, 2));
        let (report, mut chain) = c.destroy_set(a).unwrap();
        assert_eq!(
            report,
            Teardown {
                freed: 2,
                deferred: 0
            }
        );
        let mut released = std::vec::Vec::new();
        while let Some(r) = c.next_release(&mut chain) {
            released.push(r.pasid());
            c.complete_release(r);
        }
        released.sort_unstable();
        assert_eq!(released, [1, 5]);
        for p in [2, 3, 4] {
            assert_eq!(c.pasid_info(p).unwrap().set, b);
        }
        assert_eq!(c.set_info(a), Err(Error::SetNotFound));
    }
}
