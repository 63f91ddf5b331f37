// SPDX-License-Identifier: GPL-2.0
//! Multi-threaded stress test over `std::sync::Mutex` locks.
//!
//! Threads allocate, free, get/put, look up and replace data on PASIDs of shared sets, and
//! create and tear down private sets, while a notifier keeps an ownership table: allocation
//! claims a PASID (it must be unowned: never owned twice), the free notification gives it back
//! (it must be owned by the notified set: notified once, before reuse). At the end the
//! accounting must match and everything must be released.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

use ioasid::{Config, Error, Ioasid, Owner, OwnerKind, Pasid, PasidState, SetId};
use support::*;

const BITS: u32 = 8;
const RESERVED: [std::ops::RangeInclusive<Pasid>; 1] = [100..=109];
const THREADS: usize = 4;
const OPS: usize = 50_000;
const SHARED_SETS: usize = 3;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Shared {
    a: Ioasid<Mt>,
    /// `owner[p]` = `set.to_raw() + 1` while `p` is allocated, 0 otherwise.
    owner: Vec<AtomicU64>,
    sets: Vec<SetId>,
    /// PASIDs whose allocation reference is held, per shared set. A thread that removes a
    /// PASID from a list owns its allocation reference and must free it.
    lists: Vec<Mutex<Vec<Pasid>>>,
    allocs: AtomicUsize,
    notes: AtomicUsize,
    extra_notes: AtomicUsize,
    /// `put`s that found the PASID freed by another thread meanwhile (statistics).
    late_puts: AtomicUsize,
    errors: Mutex<Vec<String>>,
    allocator: Option<TestAllocator>,
}

impl Shared {
    fn fail(&self, msg: String) {
        self.errors.lock().unwrap().push(msg);
    }

    fn claim(&self, set: SetId, p: Pasid) {
        if let Err(prev) =
            self.owner[p as usize].compare_exchange(0, set.to_raw() + 1, SeqCst, SeqCst)
        {
            self.fail(format!(
                "PASID {p} allocated to {set} while owned by {}",
                prev - 1
            ));
        }
        self.allocs.fetch_add(1, SeqCst);
    }
}

fn data_for(p: Pasid, r: &mut Rng) -> u64 {
    ((p as u64) << 32) | (r.next() & 0xffff_ffff)
}

fn worker(sh: Arc<Shared>, seed: u64) {
    let a = &sh.a;
    let mut r = Rng(seed);
    let range_max = a.with_core(|c| c.max_pasid());
    for _ in 0..OPS {
        let si = r.below(SHARED_SETS);
        let set = sh.sets[si];
        match r.below(10) {
            // alloc
            0..=2 => {
                let min = if r.below(4) == 0 {
                    r.below(200) as u32
                } else {
                    0
                };
                // The data is fixed up with set_data once the PASID is known.
                match a.alloc(set, min, range_max, 0) {
                    Ok(p) => {
                        sh.claim(set, p);
                        let d = data_for(p, &mut r);
                        // Another thread may have got it already (stale list entry, same PASID
                        // reused), so the old data is not necessarily 0.
                        if a.set_data(set, p, d).is_err() {
                            sh.fail(format!("set_data after alloc of {p}"));
                        }
                        sh.lists[si].lock().unwrap().push(p);
                    }
                    Err(Error::QuotaExceeded | Error::NoSpace) => {}
                    Err(e) => sh.fail(format!("alloc: {e:?}")),
                }
            }
            // free
            3..=4 => {
                let p = {
                    let mut l = sh.lists[si].lock().unwrap();
                    if l.is_empty() {
                        continue;
                    }
                    let i = r.below(l.len());
                    l.swap_remove(i)
                };
                if let Err(e) = a.free(set, p) {
                    sh.fail(format!("free of owned {p}: {e:?}"));
                }
            }
            // get, use, put
            5..=7 => {
                let p = {
                    let l = sh.lists[si].lock().unwrap();
                    if l.is_empty() {
                        continue;
                    }
                    l[r.below(l.len())]
                };
                match a.get(set, p) {
                    Ok(_) => {
                        // Referenced: cannot be released, so not reused by another set.
                        let other = sh.sets[(si + 1) % SHARED_SETS];
                        if a.find(other, p) != Err(Error::NotOwner)
                            || a.find_word(other, p) != Err(Error::NotOwner)
                        {
                            sh.fail(format!("{p} visible to another set"));
                        }
                        match a.find_word(set, p) {
                            Ok(w) if w as u64 >> 32 == p as u64 || w == 0 => {}
                            Ok(w) => sh.fail(format!("{p} has word {w:#x}")),
                            Err(Error::PasidNotFound) => {} // freed meanwhile
                            Err(e) => sh.fail(format!("find_word {p}: {e:?}")),
                        }
                        match a.find(set, p) {
                            // 0: reused and not yet given its data by the allocating thread.
                            Ok(d) if d >> 32 == p as u64 || d == 0 => {}
                            Ok(d) => sh.fail(format!("{p} has data {d:#x}")),
                            Err(Error::PasidNotFound) => {} // freed meanwhile
                            Err(e) => sh.fail(format!("find {p}: {e:?}")),
                        }
                        match a.set_data(set, p, data_for(p, &mut r)) {
                            Ok(_) | Err(Error::PasidNotFound) => {}
                            Err(e) => sh.fail(format!("set_data {p}: {e:?}")),
                        }
                        thread::yield_now();
                        if a.pasid_info(p).map(|i| i.state) == Some(PasidState::Freed) {
                            sh.late_puts.fetch_add(1, SeqCst);
                        }
                        if let Err(e) = a.put(set, p) {
                            sh.fail(format!("put {p}: {e:?}"));
                        }
                    }
                    // Freed, released or reused since we looked at the list.
                    Err(Error::PasidNotFound | Error::NotOwner) => {}
                    Err(e) => sh.fail(format!("get {p}: {e:?}")),
                }
            }
            // a private set, torn down with references held
            8 => {
                let Ok(t) = a.create_set(Owner::new(OwnerKind::Mdev, seed), 6) else {
                    sh.fail("create_set".into());
                    continue;
                };
                let mut mine = vec![];
                for _ in 0..r.below(7) {
                    match a.alloc(t, 1, range_max, 0) {
                        Ok(p) => {
                            sh.claim(t, p);
                            let d = data_for(p, &mut r);
                            let _ = a.set_data(t, p, d);
                            mine.push(p);
                        }
                        Err(Error::NoSpace) => {}
                        Err(e) => sh.fail(format!("alloc private: {e:?}")),
                    }
                }
                let held: Vec<Pasid> = mine.iter().copied().filter(|_| r.below(2) == 0).collect();
                for &p in &held {
                    if a.get(t, p).is_err() {
                        sh.fail(format!("get private {p}"));
                    }
                }
                match a.destroy_set(t) {
                    Ok(rep)
                        if rep.freed as usize == mine.len()
                            && rep.deferred as usize == held.len() => {}
                    other => sh.fail(format!("destroy_set: {other:?} for {mine:?} held {held:?}")),
                }
                for &p in &held {
                    if a.pasid_info(p).map(|i| i.state) != Some(PasidState::Freed) {
                        sh.fail(format!("{p} not freed after teardown"));
                    }
                    if a.put(t, p).is_err() {
                        sh.fail(format!("put private {p}"));
                    }
                }
                if a.set_info(t) != Err(Error::SetNotFound) {
                    sh.fail("private set survived".into());
                }
            }
            // subscribe / unsubscribe a second notifier
            _ => {
                let sh2 = Arc::downgrade(&sh);
                let id = a
                    .subscribe(
                        Box::new(move |_, _, _: &u64| {
                            if let Some(s) = sh2.upgrade() {
                                s.extra_notes.fetch_add(1, SeqCst);
                            }
                        }),
                        Some(set),
                    )
                    .ok()
                    .unwrap();
                thread::yield_now();
                if a.unsubscribe(id).is_err() {
                    sh.fail("unsubscribe".into());
                }
            }
        }
    }
}

fn stress(with_allocator: bool) {
    let config = Config::new(BITS).with_reserved(&RESERVED);
    let a = new_mt(&config).unwrap();
    let allocator = with_allocator.then(|| {
        let al = TestAllocator::new();
        al.state().skip = vec![0..=0, RESERVED[0].clone()];
        al
    });
    if let Some(al) = &allocator {
        a.register_allocator(al.clone()).unwrap();
    }
    let sets: Vec<SetId> = (0..SHARED_SETS)
        .map(|i| {
            a.create_set(Owner::new(OwnerKind::Vm, i as u64), 60)
                .unwrap()
        })
        .collect();
    let n = 1usize << BITS;
    let sh = Arc::new(Shared {
        a,
        owner: (0..n).map(|_| AtomicU64::new(0)).collect(),
        sets,
        lists: (0..SHARED_SETS).map(|_| Mutex::new(vec![])).collect(),
        allocs: AtomicUsize::new(0),
        notes: AtomicUsize::new(0),
        extra_notes: AtomicUsize::new(0),
        late_puts: AtomicUsize::new(0),
        errors: Mutex::new(vec![]),
        allocator,
    });
    let in_notifier = Arc::new(AtomicBool::new(false));
    {
        let w = Arc::downgrade(&sh);
        let flag = in_notifier.clone();
        sh.a.subscribe(
            Box::new(move |set: SetId, p: Pasid, data: &u64| {
                let Some(sh) = w.upgrade() else { return };
                // Notifications are serialised by the notifier lock.
                if flag.swap(true, SeqCst) {
                    sh.fail("notifiers ran concurrently".into());
                }
                if *data >> 32 != p as u64 {
                    sh.fail(format!("{p} notified with data {data:#x}"));
                }
                match sh.a.pasid_info(p) {
                    Some(i) if i.state == PasidState::Releasing && i.set == set => {}
                    other => sh.fail(format!("{p} in notifier: {other:?}")),
                }
                if let Some(al) = &sh.allocator {
                    if !al.state().used.contains(&p) {
                        sh.fail(format!(
                            "{p} given back to the allocator before notification"
                        ));
                    }
                }
                if let Err(prev) =
                    sh.owner[p as usize].compare_exchange(set.to_raw() + 1, 0, SeqCst, SeqCst)
                {
                    sh.fail(format!("{p} of {set} notified while owner is {prev:#x}"));
                }
                sh.notes.fetch_add(1, SeqCst);
                flag.store(false, SeqCst);
            }),
            None,
        )
        .ok()
        .unwrap();
    }

    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let sh = sh.clone();
            thread::spawn(move || {
                worker(
                    sh,
                    0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1234_5678_9abc),
                )
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    let errors = sh.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );

    // Accounting: every listed PASID is active, owned by its set, in one list only, and the
    // set's usage is exactly its list.
    let mut seen = std::collections::HashSet::new();
    for (si, &set) in sh.sets.iter().enumerate() {
        let l = sh.lists[si].lock().unwrap();
        let info = sh.a.set_info(set).unwrap();
        assert_eq!(
            (info.usage as usize, info.active as usize),
            (l.len(), l.len())
        );
        assert!(l.len() <= info.quota as usize);
        for &p in l.iter() {
            assert!(seen.insert(p), "PASID {p} listed twice");
            assert_eq!(sh.owner[p as usize].load(SeqCst), set.to_raw() + 1);
            let i = sh.a.pasid_info(p).unwrap();
            assert_eq!((i.set, i.state, i.refs), (set, PasidState::Active, 0));
            assert!(!sh.a.with_core(|c| c.is_reserved(p)));
        }
    }
    assert_eq!(sh.a.with_core(|c| c.live()) as usize, seen.len());
    let allocs_before = sh.allocs.load(SeqCst);
    eprintln!(
        "allocator {}: {} allocations, {} late puts, {} filtered notifications, {} live at end",
        if with_allocator { "custom" } else { "default" },
        allocs_before,
        sh.late_puts.load(SeqCst),
        sh.extra_notes.load(SeqCst),
        seen.len()
    );
    assert!(
        allocs_before > 1000,
        "too little work: {allocs_before} allocations"
    );

    // Tear everything down: every PASID is released and notified exactly once.
    for &set in &sh.sets {
        let rep = sh.a.destroy_set(set).unwrap();
        assert_eq!(rep.deferred, 0);
    }
    assert_eq!(sh.a.with_core(|c| (c.live(), c.nr_sets())), (0, 0));
    assert!(sh.owner.iter().all(|o| o.load(SeqCst) == 0));
    assert_eq!(sh.notes.load(SeqCst), sh.allocs.load(SeqCst));
    if let Some(al) = &sh.allocator {
        let st = al.state();
        assert!(st.used.is_empty());
        assert_eq!(st.freed.len(), sh.allocs.load(SeqCst));
    }
    let errors = sh.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn stress_default_allocator() {
    stress(false);
}

#[test]
fn stress_custom_allocator() {
    stress(true);
}

/// No subscribers, so `free` and `put` take the one-critical-section path that erases the
/// PASID at once, while reader threads hammer the lockless `find_word`: a PASID is never
/// handed out twice, an owned PASID always finds its own data, and a lockless lookup never
/// returns the data of another PASID or another set.
#[test]
fn stress_unnotified_with_lockless_readers() {
    const WRITERS: usize = 3;
    const READERS: usize = 2;
    let a = Arc::new(new_mt(&Config::new(BITS).with_reserved(&RESERVED)).unwrap());
    let sets: Arc<Vec<SetId>> = Arc::new(
        (0..WRITERS)
            .map(|i| {
                a.create_set(Owner::new(OwnerKind::Mdev, i as u64), 40)
                    .unwrap()
            })
            .collect(),
    );
    let owner: Arc<Vec<AtomicU64>> =
        Arc::new((0..1usize << BITS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let errors: Arc<Mutex<Vec<String>>> = Default::default();
    let lookups = Arc::new(AtomicUsize::new(0));
    // Data: PASID in the high half, writer index + 1 in the low half.
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let (a, sets, stop, errors, lookups) = (
                a.clone(),
                sets.clone(),
                stop.clone(),
                errors.clone(),
                lookups.clone(),
            );
            thread::spawn(move || {
                let mut r = Rng(0x1234_5678 + i as u64);
                while !stop.load(SeqCst) {
                    let p = r.below(1 << BITS) as Pasid;
                    let si = r.below(WRITERS);
                    match a.find_word(sets[si], p) {
                        // 0: allocated, its data not set yet.
                        Ok(w) if w == 0 || w as u64 == (p as u64) << 32 | (si as u64 + 1) => {}
                        Ok(w) => errors
                            .lock()
                            .unwrap()
                            .push(format!("{p} of set {si}: word {w:#x}")),
                        Err(Error::PasidNotFound | Error::NotOwner) => {}
                        Err(e) => errors.lock().unwrap().push(format!("find_word {p}: {e:?}")),
                    }
                    lookups.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (a, sets, owner, errors) = (a.clone(), sets.clone(), owner.clone(), errors.clone());
            thread::spawn(move || {
                let mut r = Rng(0xdead_beef + i as u64);
                let set = sets[i];
                let tag = |p: Pasid| (p as u64) << 32 | (i as u64 + 1);
                let mut mine: Vec<Pasid> = vec![];
                for _ in 0..OPS / 2 {
                    if mine.is_empty() || (r.below(2) == 0 && mine.len() < 40) {
                        let p = match a.alloc(set, 0, (1 << BITS) - 1, 0) {
                            Ok(p) => p,
                            Err(Error::NoSpace) => continue,
                            Err(e) => {
                                errors.lock().unwrap().push(format!("alloc: {e:?}"));
                                continue;
                            }
                        };
                        if owner[p as usize].swap(i as u64 + 1, SeqCst) != 0 {
                            errors.lock().unwrap().push(format!("{p} handed out twice"));
                        }
                        a.set_data(set, p, tag(p)).unwrap();
                        mine.push(p);
                    } else {
                        let p = mine.swap_remove(r.below(mine.len()));
                        if a.find_word(set, p) != Ok(tag(p) as usize) {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("own {p}: {:?}", a.find_word(set, p)));
                        }
                        // Sometimes free while referenced, the last put releasing it.
                        let held = r.below(3) == 0 && a.get(set, p).is_ok();
                        owner[p as usize].store(0, SeqCst);
                        a.free(set, p).unwrap();
                        // Only this thread allocates for `set`; another writer may have got
                        // `p` already (`NotOwner`).
                        if !held
                            && !matches!(
                                a.find_word(set, p),
                                Err(Error::PasidNotFound | Error::NotOwner)
                            )
                        {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("{p} findable after free"));
                        }
                        if held {
                            // Referenced: not released, so nobody else can have it.
                            if a.find_word(set, p) != Err(Error::PasidNotFound) {
                                errors.lock().unwrap().push(format!("freed {p} findable"));
                            }
                            a.put(set, p).unwrap();
                        }
                    }
                }
                for p in mine {
                    owner[p as usize].store(0, SeqCst);
                    a.free(set, p).unwrap();
                }
            })
        })
        .collect();
    for h in writers {
        h.join().unwrap();
    }
    stop.store(true, SeqCst);
    for h in readers {
        h.join().unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert!(lookups.load(SeqCst) > 1000, "readers barely ran");
    for &s in sets.iter() {
        assert_eq!(a.set_info(s).unwrap().usage, 0);
        a.destroy_set(s).unwrap();
    }
    assert_eq!(a.with_core(|c| (c.live(), c.nr_sets())), (0, 0));
}

/// Host micro-benchmark of the hot paths (prints figures, asserts nothing; run with
/// `cargo test --release -p ioasid --test stress -- --ignored --nocapture host_bench`). The
/// guest benchmark (`tests/kernel/ioasid_bench.rs`) is the one that counts.
#[test]
#[ignore]
fn host_bench() {
    use std::time::Instant;
    for live in [1u32, 1000, 100_000] {
        let a = new_mt(&Config::new(20)).unwrap();
        let s = a
            .create_set(Owner::new(OwnerKind::Other, 0), (1 << 20) - 1)
            .unwrap();
        for _ in 0..live {
            a.alloc(s, 1, (1 << 20) - 1, 0).unwrap();
        }
        let n = 1_000_000u32;
        let t = Instant::now();
        for _ in 0..n {
            let p = a.alloc(s, 1, (1 << 20) - 1, 0).unwrap();
            a.free(s, p).unwrap();
        }
        let af = t.elapsed().as_nanos() / u128::from(n);
        let mut x = 0x9e37_79b9u32;
        let t = Instant::now();
        let mut sum = 0usize;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            sum = sum.wrapping_add(a.find_word(s, 1 + x % live).unwrap());
        }
        let f = t.elapsed().as_nanos() / u128::from(n);
        println!("host live={live}: alloc+free {af} ns, find {f} ns ({sum})");
    }
}
