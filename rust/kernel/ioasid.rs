// SPDX-License-Identifier: GPL-2.0

//! The system-wide I/O ASID (PASID) allocator.
//!
//! The allocator itself is the portable `ioasid` core (`ioasid/` in the project, compiled here
//! from the very same files, see `docs/portable-code.md`). This module plugs in the kernel's
//! pieces and owns the one instance every driver shares:
//!
//! - storage: the PASIDs in a [`PasidTable`] (the portable direct-mapped table over
//!   `kvmalloc`) and, for lockless `find`, a [`LookupTable`] (owner and data word per PASID);
//!   sets and subscriptions in [`XArrayMap`]s (allocating XArrays, `GFP_KERNEL`);
//! - locks: two [`Mutex`]es (the state lock and the notifier lock; notifiers may sleep);
//! - private data: an opaque `usize` cookie per PASID (what C callers keep in `void *`);
//! - notifiers and custom allocators: `Arc<dyn ...>` handles.
//!
//! Drivers use [`PasidSet`]: a set with a quota, destroyed (and all its PASIDs released and
//! reported) when the handle is dropped. Errors come back as kernel [`Error`]s after a
//! `pr_err` line naming the problem.
//!
//! # Examples
//!
//! ```
//! use kernel::ioasid::{OwnerKind, PasidSet};
//!
//! let set = PasidSet::new(OwnerKind::Mdev, 0x1234, 8)?;
//! let pasid = set.alloc(1..=100, 42)?;
//! assert_eq!(set.find(pasid)?, 42);
//! set.free(pasid)?;
//! # Ok::<(), kernel::error::Error>(())
//! ```

// The portable allocator core (`ioasid/src/ioasid/` in the project), compiled from the same
// files as the host tests; its own module documentation describes it.
#[path = "portable/ioasid/mod.rs"]
pub mod portable;

pub use portable::{
    Config, Error as IoasidError, FreeNotifier, Owner, OwnerKind, Pasid, PasidAllocator,
    PasidInfo, PasidState, SetId, SetInfo, SubscriptionId, Teardown, MAX_PASID_BITS, RID_PASID,
};

use crate::{
    alloc::{
        allocator::KVmalloc,
        flags::{GFP_KERNEL, __GFP_ZERO},
        Allocator,
    },
    error::{Error, Result},
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    xarray::{AllocKind, XArrayMap},
};
use core::{
    ops::RangeInclusive,
    sync::atomic::{AtomicPtr, Ordering},
};

/// Width of the system PASID space (the PCIe maximum).
pub const SYSTEM_PASID_BITS: u32 = 20;

/// [`portable::IdStore`] over an [`XArrayMap`].
pub struct XaStore<T: 'static>(XArrayMap<T>);

impl<T: 'static> XaStore<T> {
    fn new() -> Result<Self> {
        Ok(Self(XArrayMap::new(AllocKind::Alloc, GFP_KERNEL)?))
    }
}

fn store_error(e: Error) -> portable::StoreError {
    if e == crate::error::code::EBUSY {
        portable::StoreError::Full
    } else {
        portable::StoreError::NoMemory
    }
}

/// [`portable::BlockMemory`] from `kvmalloc` (zeroed, `GFP_KERNEL`): the PASID table's top
/// array and blocks.
pub struct KernelMemory;

// SAFETY: `KVmalloc::alloc` with `__GFP_ZERO` returns zeroed memory of the layout (or fails),
// usable from any thread until `KVmalloc::free`.
unsafe impl portable::BlockMemory for KernelMemory {
    fn alloc_zeroed(&self, layout: core::alloc::Layout) -> Option<core::ptr::NonNull<u8>> {
        KVmalloc::alloc(layout, GFP_KERNEL | __GFP_ZERO).ok().map(|p| p.cast())
    }
    unsafe fn free(&self, ptr: core::ptr::NonNull<u8>, layout: core::alloc::Layout) {
        // SAFETY: `ptr` came from `KVmalloc::alloc(layout, ..)` (caller).
        unsafe { KVmalloc::free(ptr, layout) }
    }
}

/// The PASID table: a [`portable::DenseStore`] over `kvmalloc`.
pub type PasidTable = portable::DenseStore<portable::PasidEntry<usize>, KernelMemory>;

/// The lockless lookup table of `find`: a [`portable::HotTable`] over `kvmalloc`.
pub type LookupTable = portable::HotTable<KernelMemory>;

impl<T: 'static> portable::IdStore<T> for XaStore<T> {
    fn alloc(&mut self, min: u32, max: u32, value: T) -> Result<u32, portable::StoreError> {
        self.0.alloc(min..=max, value, GFP_KERNEL).map_err(store_error)
    }
    fn insert(&mut self, id: u32, value: T) -> Result<(), portable::StoreError> {
        self.0.insert(id, value, GFP_KERNEL).map_err(|e| match store_error(e) {
            portable::StoreError::Full => portable::StoreError::Occupied,
            other => other,
        })
    }
    fn get(&self, id: u32) -> Option<&T> {
        self.0.get(id)
    }
    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.0.get_mut(id)
    }
    fn remove(&mut self, id: u32) -> Option<T> {
        self.0.remove(id)
    }
    fn next(&self, from: u32) -> Option<(u32, &T)> {
        self.0.next(from)
    }
}

/// [`portable::Lock`] over a kernel [`Mutex`].
pub struct MutexLock<T>(Pin<KBox<Mutex<T>>>);

impl<T> portable::Lock for MutexLock<T> {
    type Target = T;
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.lock();
        f(&mut guard)
    }
}

/// A free notifier registered with the system allocator.
#[derive(Clone)]
pub struct Notifier(pub Arc<dyn FreeNotifier<usize> + Send + Sync>);

impl FreeNotifier<usize> for Notifier {
    fn released(&self, set: SetId, pasid: Pasid, data: &usize) {
        self.0.released(set, pasid, data)
    }
}

/// A custom PASID allocator registered with the system allocator.
#[derive(Clone)]
pub struct CustomAllocator(pub Arc<dyn PasidAllocator + Send + Sync>);

impl PasidAllocator for CustomAllocator {
    fn alloc(&self, min: Pasid, max: Pasid) -> Result<Pasid, IoasidError> {
        self.0.alloc(min, max)
    }
    fn free(&self, pasid: Pasid) {
        self.0.free(pasid)
    }
}

/// The kernel's choice of types for the portable allocator.
pub enum Kernel {}

impl portable::Backend for Kernel {
    type Data = usize;
    type PasidStore = PasidTable;
    type SetStore = XaStore<portable::SetEntry>;
    type Allocator = CustomAllocator;
    fn data_word(data: &usize) -> usize {
        *data
    }
}

impl portable::Platform for Kernel {
    type Notifier = Notifier;
    type NotifierStore = XaStore<portable::Subscription<Notifier>>;
    type Lookup = LookupTable;
    type StateLock = MutexLock<portable::IoasidCore<Kernel, LookupTable>>;
    type NotifierLock = MutexLock<portable::Notifiers<Kernel>>;
}

/// A PASID allocator instance with the kernel's types.
pub type Ioasid = portable::Ioasid<Kernel>;

/// Creates an allocator instance over `config` (tests and benchmarks make private ones; drivers
/// use [`system`]).
pub fn new_instance(config: &Config<'_>) -> Result<Ioasid> {
    let table = PasidTable::new(config.pasid_bits, KernelMemory)
        .map_err(|_| crate::error::code::ENOMEM)?;
    let lookup = LookupTable::new(config.pasid_bits, config.max_sets, KernelMemory)
        .map_err(|_| crate::error::code::ENOMEM)?;
    let core = portable::IoasidCore::with_lookup(config, table, XaStore::new()?, lookup)
        .map_err(|e| to_error(e, "creating the allocator"))?;
    let state = MutexLock(KBox::pin_init(new_mutex!(core, "ioasid::state"), GFP_KERNEL)?);
    let notifiers = portable::Notifiers::new(XaStore::new()?);
    let notifiers =
        MutexLock(KBox::pin_init(new_mutex!(notifiers, "ioasid::notifiers"), GFP_KERNEL)?);
    Ok(portable::Ioasid::new(state, notifiers))
}

/// Converts an allocator error into a kernel error, logging what failed.
pub fn to_error(e: IoasidError, what: &str) -> Error {
    pr_err!("{} failed: {} ({})\n", what, e, e.to_errno());
    Error::from_errno(e.to_errno())
}

static SYSTEM: AtomicPtr<Ioasid> = AtomicPtr::new(core::ptr::null_mut());

/// The system-wide allocator: a 20-bit PASID space with PASID 0 reserved for the requester ID.
///
/// Created on first use and never freed (it lives as long as the kernel, like the C
/// allocator's static XArray); creation races are resolved by a compare-and-swap and the loser
/// frees its copy.
pub fn system() -> Result<&'static Ioasid> {
    let p = SYSTEM.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a non-null `SYSTEM` points to a leaked, never freed `Ioasid`.
        return Ok(unsafe { &*p });
    }
    let fresh = KBox::new(new_instance(&Config::new(SYSTEM_PASID_BITS))?, GFP_KERNEL)?;
    let fresh = KBox::into_raw(fresh);
    match SYSTEM.compare_exchange(core::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {
            // SAFETY: `fresh` was just leaked from a `KBox` and is now the shared instance.
            let io = unsafe { &*fresh };
            publish_debugfs(io);
            Ok(io)
        }
        Err(winner) => {
            // SAFETY: `fresh` came from `KBox::into_raw` and was never shared.
            drop(unsafe { KBox::from_raw(fresh) });
            // SAFETY: as above, `winner` is the leaked shared instance.
            Ok(unsafe { &*winner })
        }
    }
}

/// The debugfs view of the system allocator: `ioasid/pasids` (see the portable core's `dump`
/// for the format).
#[cfg(CONFIG_DEBUG_FS)]
struct SystemView(&'static Ioasid);

#[cfg(CONFIG_DEBUG_FS)]
impl crate::debugfs::Show for SystemView {
    fn show(&self, m: &mut crate::debugfs::SeqFile) -> Result {
        self.0.dump(m).map_err(|_| crate::error::code::EINVAL)
    }
}

/// The `ioasid` debugfs directory; like the system instance it is never removed. Kept in a
/// static so the pointer stays reachable for kmemleak; `#[used]` because nothing reads it, and
/// the compiler would otherwise drop the static and the store with it.
#[cfg(CONFIG_DEBUG_FS)]
#[used]
static DEBUGFS_DIR: AtomicPtr<crate::debugfs::Dir> = AtomicPtr::new(core::ptr::null_mut());

/// Creates `/sys/kernel/debug/ioasid/pasids` for the system instance. A failure only costs the
/// view, so it is logged, not returned.
fn publish_debugfs(io: &'static Ioasid) {
    #[cfg(CONFIG_DEBUG_FS)]
    {
        let publish = || -> Result {
            let dir = KBox::new(crate::debugfs::Dir::new(crate::c_str!("ioasid"), None)?, GFP_KERNEL)?;
            let dir: &'static crate::debugfs::Dir = KBox::leak(dir);
            DEBUGFS_DIR.store(core::ptr::from_ref(dir).cast_mut(), Ordering::Release);
            let view = Arc::new(SystemView(io), GFP_KERNEL)?;
            // The file lives as long as the directory, i.e. forever.
            crate::debugfs_show_fops!(VIEW_FOPS, SystemView);
            core::mem::forget(dir.show_file(crate::c_str!("pasids"), view, &VIEW_FOPS)?);
            Ok(())
        };
        if let Err(e) = publish() {
            pr_warn!("ioasid: no debugfs view of the PASID space: {:?}\n", e);
        }
    }
    #[cfg(not(CONFIG_DEBUG_FS))]
    let _ = io;
}

/// A set of PASIDs with a quota, owned by a driver object (an mdev parent, a VM).
///
/// Dropping it destroys the set: PASIDs without outstanding references are released at once
/// (subscribers are told), the others when their last reference goes.
pub struct PasidSet<'a> {
    ioasid: &'a Ioasid,
    id: SetId,
}

impl PasidSet<'static> {
    /// Creates a set in the system allocator.
    pub fn new(kind: OwnerKind, token: u64, quota: u32) -> Result<Self> {
        Self::new_in(system()?, kind, token, quota)
    }
}

impl<'a> PasidSet<'a> {
    /// Creates a set in `ioasid`.
    pub fn new_in(ioasid: &'a Ioasid, kind: OwnerKind, token: u64, quota: u32) -> Result<Self> {
        let id = ioasid
            .create_set(Owner::new(kind, token), quota)
            .map_err(|e| to_error(e, "ioasid: creating a set"))?;
        Ok(Self { ioasid, id })
    }

    /// The set's ID (for logs and debugfs).
    pub fn id(&self) -> SetId {
        self.id
    }

    /// Allocates the lowest free PASID in `range` with private data `data`.
    pub fn alloc(&self, range: RangeInclusive<Pasid>, data: usize) -> Result<Pasid> {
        self.ioasid
            .alloc(self.id, *range.start(), *range.end(), data)
            .map_err(|e| to_error(e, "ioasid: allocating a PASID"))
    }

    /// Drops the allocation reference of `pasid`.
    pub fn free(&self, pasid: Pasid) -> Result {
        self.ioasid.free(self.id, pasid).map_err(|e| to_error(e, "ioasid: freeing a PASID"))
    }

    /// Takes a reference on `pasid`; returns the new count.
    pub fn get(&self, pasid: Pasid) -> Result<u32> {
        self.ioasid.get(self.id, pasid).map_err(|e| to_error(e, "ioasid: get"))
    }

    /// Drops a reference taken with [`get`](Self::get).
    pub fn put(&self, pasid: Pasid) -> Result {
        self.ioasid.put(self.id, pasid).map_err(|e| to_error(e, "ioasid: put"))
    }

    /// The private data of `pasid` (only for PASIDs of this set): a lockless lookup
    /// ([`Ioasid::find_word`](portable::Ioasid::find_word) in the [`LookupTable`]).
    #[inline]
    pub fn find(&self, pasid: Pasid) -> Result<usize> {
        self.ioasid.find_word(self.id, pasid).map_err(|e| to_error(e, "ioasid: find"))
    }

    /// Replaces the private data of `pasid`; returns the old data.
    pub fn set_data(&self, pasid: Pasid, data: usize) -> Result<usize> {
        self.ioasid.set_data(self.id, pasid, data).map_err(|e| to_error(e, "ioasid: set_data"))
    }

    /// Subscribes `notifier` to the releases of this set's PASIDs.
    pub fn subscribe(&self, notifier: Notifier) -> Result<SubscriptionId> {
        self.ioasid
            .subscribe(notifier, Some(self.id))
            .map_err(|r| to_error(r.error, "ioasid: subscribe"))
    }

    /// Removes a subscription made with [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&self, id: SubscriptionId) -> Result {
        self.ioasid
            .unsubscribe(id)
            .map(drop)
            .map_err(|e| to_error(e, "ioasid: unsubscribe"))
    }

    /// Usage and quota of the set.
    pub fn info(&self) -> Result<SetInfo> {
        self.ioasid.set_info(self.id).map_err(|e| to_error(e, "ioasid: set_info"))
    }
}

impl Drop for PasidSet<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.ioasid.destroy_set(self.id) {
            to_error(e, "ioasid: destroying a set");
        }
    }
}
