// SPDX-License-Identifier: GPL-2.0
//! Host implementations of the ioasid traits: a BTreeMap store, heap memory for the PASID table
//! (`DenseStore`, as in the kernel), RefCell and Mutex locks, a custom allocator, and two
//! platforms (single-threaded and threaded).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::alloc::Layout;
use std::ptr::NonNull;

use ioasid::{
    Backend, BlockMemory, Config, DenseStore, Error, HotTable, IdStore, Ioasid, IoasidCore, Lock,
    Notifiers, Pasid, PasidAllocator, PasidEntry, Platform, SetEntry, SetId, StoreError,
    Subscription,
};

/// `IdStore` over a `BTreeMap`, with an "out of memory" switch shared with the test.
pub struct BTreeStore<T> {
    pub map: BTreeMap<u32, T>,
    pub oom: Arc<AtomicBool>,
}

impl<T> BTreeStore<T> {
    pub fn new() -> Self {
        BTreeStore {
            map: BTreeMap::new(),
            oom: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn with_oom(oom: Arc<AtomicBool>) -> Self {
        BTreeStore {
            map: BTreeMap::new(),
            oom,
        }
    }
}

impl<T> IdStore<T> for BTreeStore<T> {
    fn alloc(&mut self, min: u32, max: u32, value: T) -> Result<u32, StoreError> {
        assert!(min <= max, "store called with an empty range");
        if self.oom.load(Ordering::SeqCst) {
            return Err(StoreError::NoMemory);
        }
        // Lowest gap in min..=max.
        let mut candidate = min as u64;
        for &k in self.map.range(min..=max).map(|(k, _)| k) {
            if k as u64 != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate > max as u64 {
            return Err(StoreError::Full);
        }
        let id = candidate as u32;
        self.map.insert(id, value);
        Ok(id)
    }

    fn insert(&mut self, id: u32, value: T) -> Result<(), StoreError> {
        if self.oom.load(Ordering::SeqCst) {
            return Err(StoreError::NoMemory);
        }
        if self.map.contains_key(&id) {
            return Err(StoreError::Occupied);
        }
        self.map.insert(id, value);
        Ok(())
    }

    fn get(&self, id: u32) -> Option<&T> {
        self.map.get(&id)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.map.get_mut(&id)
    }

    fn remove(&mut self, id: u32) -> Option<T> {
        self.map.remove(&id)
    }

    fn next(&self, from: u32) -> Option<(u32, &T)> {
        self.map.range(from..).next().map(|(k, v)| (*k, v))
    }
}

/// `BlockMemory` from the std heap, with an "out of memory" switch shared with the test: the
/// host stand-in for the kernel's `kvmalloc` under the PASID table (`DenseStore`).
#[derive(Clone, Default)]
pub struct HeapMemory {
    pub oom: Arc<AtomicBool>,
}

// SAFETY: `std::alloc::alloc_zeroed` returns zeroed memory of the layout, or null.
unsafe impl BlockMemory for HeapMemory {
    fn alloc_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
        if self.oom.load(Ordering::SeqCst) {
            return None;
        }
        // SAFETY: the store never asks for zero-sized layouts.
        NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: `ptr` came from `alloc_zeroed(layout)` (caller).
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}

/// The PASID table of the host platforms.
pub type Table<D> = DenseStore<PasidEntry<D>, HeapMemory>;

/// An empty table for `config`'s width, allocating from `mem`.
pub fn table<D>(config: &Config<'_>, mem: HeapMemory) -> Table<D> {
    DenseStore::new(config.pasid_bits, mem).expect("host memory")
}

/// The lockless lookup table of the host platforms.
pub type Hot = HotTable<HeapMemory>;

/// An empty lookup table for `config`'s width, allocating from `mem`.
pub fn hot(config: &Config<'_>, mem: HeapMemory) -> Hot {
    HotTable::new(config.pasid_bits, config.max_sets, mem).expect("host memory")
}

/// Data that lockless lookups report as a word.
pub trait Word {
    fn word(&self) -> usize;
}

impl Word for u64 {
    fn word(&self) -> usize {
        *self as usize
    }
}

thread_local! {
    /// How many tracked `RefLock`s this thread holds (the state lock of `St` platforms).
    pub static STATE_HELD: Cell<u32> = const { Cell::new(0) };
}

/// Single-threaded lock: a `RefCell`, so that taking it recursively panics (a test failure)
/// instead of deadlocking. `tracked` locks count themselves in `STATE_HELD`.
pub struct RefLock<T> {
    cell: RefCell<T>,
    tracked: bool,
}

impl<T> RefLock<T> {
    pub fn new(value: T, tracked: bool) -> Self {
        RefLock {
            cell: RefCell::new(value),
            tracked,
        }
    }
}

impl<T> Lock for RefLock<T> {
    type Target = T;
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.cell.try_borrow_mut().expect("lock taken recursively");
        if self.tracked {
            STATE_HELD.with(|h| h.set(h.get() + 1));
        }
        let r = f(&mut guard);
        if self.tracked {
            STATE_HELD.with(|h| h.set(h.get() - 1));
        }
        r
    }
}

/// `std::sync::Mutex` lock for the threaded platform.
pub struct MutexLock<T>(pub Mutex<T>);

impl<T> Lock for MutexLock<T> {
    type Target = T;
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

/// How the test allocator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Return this PASID whatever the request.
    Fixed(Pasid),
    /// Fail with this error.
    Fail(Error),
}

#[derive(Debug)]
pub struct AllocatorState {
    /// PASIDs handed out and not given back.
    pub used: BTreeSet<Pasid>,
    /// Every `free` call, in order.
    pub freed: Vec<Pasid>,
    pub fault: Fault,
    /// Shared event log (also written by test notifiers) to check ordering.
    pub log: Vec<String>,
    /// PASIDs the allocator itself never hands out (a platform that knows the reservations).
    pub skip: Vec<std::ops::RangeInclusive<Pasid>>,
}

/// Custom allocator handing out the *highest* free PASID of the request (so that its PASIDs
/// differ from the default allocator's).
#[derive(Clone, Debug)]
pub struct TestAllocator(pub Arc<Mutex<AllocatorState>>);

impl TestAllocator {
    pub fn new() -> Self {
        TestAllocator(Arc::new(Mutex::new(AllocatorState {
            used: BTreeSet::new(),
            freed: Vec::new(),
            fault: Fault::None,
            log: Vec::new(),
            skip: Vec::new(),
        })))
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, AllocatorState> {
        self.0.lock().unwrap()
    }
}

impl PasidAllocator for TestAllocator {
    fn alloc(&self, min: Pasid, max: Pasid) -> Result<Pasid, Error> {
        let mut s = self.0.lock().unwrap();
        match s.fault {
            Fault::Fixed(p) => {
                s.used.insert(p);
                return Ok(p);
            }
            Fault::Fail(e) => return Err(e),
            Fault::None => {}
        }
        let p = (min..=max)
            .rev()
            .find(|p| !s.used.contains(p) && !s.skip.iter().any(|r| r.contains(p)))
            .ok_or(Error::NoSpace)?;
        s.used.insert(p);
        s.log.push(format!("alloc {p}"));
        Ok(p)
    }

    fn free(&self, pasid: Pasid) {
        let mut s = self.0.lock().unwrap();
        s.used.remove(&pasid);
        s.freed.push(pasid);
        s.log.push(format!("free {pasid}"));
    }
}

/// Single-threaded platform with private data `D`.
pub struct St<D>(PhantomData<D>);

pub type StNotifier<D> = Box<dyn Fn(SetId, Pasid, &D)>;

impl<D: Word + 'static> Backend for St<D> {
    type Data = D;
    type PasidStore = Table<D>;
    type SetStore = BTreeStore<SetEntry>;
    type Allocator = TestAllocator;
    fn data_word(data: &D) -> usize {
        data.word()
    }
}

impl<D: Word + 'static> Platform for St<D> {
    type Notifier = StNotifier<D>;
    type NotifierStore = BTreeStore<Subscription<StNotifier<D>>>;
    type Lookup = Hot;
    type StateLock = RefLock<IoasidCore<St<D>, Hot>>;
    type NotifierLock = RefLock<Notifiers<St<D>>>;
}

/// Out-of-memory switches of the three stores of an `St` allocator.
#[derive(Clone, Default)]
pub struct Oom {
    pub pasids: Arc<AtomicBool>,
    /// The lockless lookup table's memory.
    pub lookup: Arc<AtomicBool>,
    pub sets: Arc<AtomicBool>,
    pub notifiers: Arc<AtomicBool>,
}

impl Oom {
    pub fn set(flag: &Arc<AtomicBool>, on: bool) {
        flag.store(on, Ordering::SeqCst);
    }
}

pub fn core_st<D: Word + 'static>(config: &Config<'_>) -> Result<IoasidCore<St<D>>, Error> {
    IoasidCore::new(
        config,
        table(config, HeapMemory::default()),
        BTreeStore::new(),
    )
}

pub fn new_st<D: Word + 'static>(config: &Config<'_>) -> Result<Ioasid<St<D>>, Error> {
    new_st_oom(config, &Oom::default())
}

pub fn new_st_oom<D: Word + 'static>(
    config: &Config<'_>,
    oom: &Oom,
) -> Result<Ioasid<St<D>>, Error> {
    let core = IoasidCore::with_lookup(
        config,
        table(
            config,
            HeapMemory {
                oom: oom.pasids.clone(),
            },
        ),
        BTreeStore::with_oom(oom.sets.clone()),
        hot(
            config,
            HeapMemory {
                oom: oom.lookup.clone(),
            },
        ),
    )?;
    Ok(Ioasid::new(
        RefLock::new(core, true),
        RefLock::new(
            Notifiers::new(BTreeStore::with_oom(oom.notifiers.clone())),
            false,
        ),
    ))
}

/// Threaded platform (u64 data).
pub struct Mt;

pub type MtNotifier = Box<dyn Fn(SetId, Pasid, &u64) + Send + Sync>;

impl Backend for Mt {
    type Data = u64;
    type PasidStore = Table<u64>;
    type SetStore = BTreeStore<SetEntry>;
    type Allocator = TestAllocator;
    fn data_word(data: &u64) -> usize {
        *data as usize
    }
}

impl Platform for Mt {
    type Notifier = MtNotifier;
    type NotifierStore = BTreeStore<Subscription<MtNotifier>>;
    type Lookup = Hot;
    type StateLock = MutexLock<IoasidCore<Mt, Hot>>;
    type NotifierLock = MutexLock<Notifiers<Mt>>;
}

pub fn new_mt(config: &Config<'_>) -> Result<Ioasid<Mt>, Error> {
    let mem = HeapMemory::default();
    let core = IoasidCore::with_lookup(
        config,
        table(config, mem.clone()),
        BTreeStore::new(),
        hot(config, mem),
    )?;
    Ok(Ioasid::new(
        MutexLock(Mutex::new(core)),
        MutexLock(Mutex::new(Notifiers::new(BTreeStore::new()))),
    ))
}

/// Every notification `(set, pasid, data)` seen, in order.
pub type NoteLog<D> = std::rc::Rc<RefCell<Vec<(SetId, Pasid, D)>>>;

/// A notifier that appends to `log`.
pub fn recorder<D: Clone + 'static>(log: &NoteLog<D>) -> StNotifier<D> {
    let log = log.clone();
    Box::new(move |set, pasid, data: &D| log.borrow_mut().push((set, pasid, data.clone())))
}
