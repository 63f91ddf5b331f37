// SPDX-License-Identifier: GPL-2.0
//! Property test: random operation sequences against an independent reference model.
//!
//! The model is deliberately naive (maps and linear scans, no intrusive lists, no two-phase
//! release) and written from the documented semantics. Every result and errno is compared, the
//! whole observable state (set accounting, every PASID's state and refcount, the custom
//! allocator's view) is compared after every operation, and free notifications must match the
//! model's releases exactly (each released PASID once, during the operation that released it,
//! so before any later allocation can reuse it). Notifiers also check, while they run, that the
//! PASID is still reserved in the releasing state.

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use ioasid::{
    Config, Error, Ioasid, Owner, OwnerKind, Pasid, PasidState, SetId, SubscriptionId, Teardown,
};
use proptest::prelude::*;
use support::*;

const BITS: u32 = 4;
const MAX: Pasid = (1 << BITS) - 1;
const RESERVED: [std::ops::RangeInclusive<Pasid>; 1] = [6..=7];
const MAX_SETS: u32 = 3;
/// PASIDs 0..=15 minus 0, 6, 7.
const CAPACITY: u32 = 13;

#[derive(Debug, Clone)]
enum Op {
    CreateSet {
        quota: u32,
    },
    DestroySet {
        s: usize,
    },
    SetQuota {
        s: usize,
        quota: u32,
    },
    Alloc {
        s: usize,
        min: u32,
        max: u32,
        data: u64,
    },
    Free(Pick),
    Get(Pick),
    Put(Pick),
    SetData(Pick, u64),
    Find(Pick),
    Register,
    Unregister,
    SubscribeAll(bool),
    SubscribeSet {
        s: usize,
        on: bool,
    },
}

/// Which (set, PASID) a PASID operation targets: mostly a live PASID with its owner, sometimes
/// a live PASID with any set, sometimes anything.
#[derive(Debug, Clone, Copy)]
struct Pick {
    s: usize,
    p: u32,
    mode: u8,
}

fn pick() -> impl Strategy<Value = Pick> {
    (0usize..6, 0u32..=17, 0u8..10).prop_map(|(s, p, mode)| Pick { s, p, mode })
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..6;
    prop_oneof![
        2 => (0u32..=15).prop_map(|quota| Op::CreateSet { quota }),
        1 => s.clone().prop_map(|s| Op::DestroySet { s }),
        1 => (s.clone(), 0u32..=15).prop_map(|(s, quota)| Op::SetQuota { s, quota }),
        8 => (s.clone(), 0u32..=17, 0u32..=17, any::<u64>())
            .prop_map(|(s, min, max, data)| Op::Alloc { s, min, max, data }),
        4 => pick().prop_map(Op::Free),
        3 => pick().prop_map(Op::Get),
        3 => pick().prop_map(Op::Put),
        1 => (pick(), any::<u64>()).prop_map(|(t, data)| Op::SetData(t, data)),
        2 => pick().prop_map(Op::Find),
        1 => Just(Op::Register),
        1 => Just(Op::Unregister),
        1 => any::<bool>().prop_map(Op::SubscribeAll),
        1 => (s, any::<bool>()).prop_map(|(s, on)| Op::SubscribeSet { s, on }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Reference model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MSetState {
    Live,
    Dying,
    Gone,
}

#[derive(Debug, Clone)]
struct MSet {
    id: SetId,
    quota: u32,
    state: MSetState,
}

#[derive(Debug, Clone)]
struct MPasid {
    set: SetId,
    refs: u32,
    freed: bool,
    data: u64,
    custom: bool,
}

type Note = (SetId, Pasid, u64);

#[derive(Debug, Default)]
struct Model {
    sets: Vec<MSet>,
    generation: u32,
    pasids: BTreeMap<Pasid, MPasid>,
    /// `Some(used)` while a custom allocator is registered: the PASIDs it has handed out.
    custom: Option<BTreeSet<Pasid>>,
    /// Releases of the current operation.
    released: Vec<Note>,
}

impl Model {
    fn set_id(&self, s: usize) -> SetId {
        self.sets
            .get(s)
            .map(|m| m.id)
            .unwrap_or(SetId::from_raw(0xdead_0000_0007))
    }

    fn resolve(&self, t: Pick) -> (SetId, Pasid) {
        let live: Vec<(&Pasid, &MPasid)> = self.pasids.iter().collect();
        if live.is_empty() || t.mode >= 8 {
            return (self.set_id(t.s), t.p);
        }
        let (p, e) = live[t.p as usize % live.len()];
        if t.mode < 6 {
            (e.set, *p)
        } else {
            (self.set_id(t.s), *p)
        }
    }

    fn set_mut(&mut self, id: SetId) -> Option<&mut MSet> {
        self.sets.iter_mut().find(|m| m.id == id)
    }

    fn live_set(&mut self, id: SetId) -> Result<&mut MSet, Error> {
        match self.set_mut(id) {
            Some(m) if m.state == MSetState::Live => Ok(m),
            _ => Err(Error::SetNotFound),
        }
    }

    fn usage(&self, id: SetId) -> u32 {
        self.pasids.values().filter(|e| e.set == id).count() as u32
    }

    fn active(&self, id: SetId) -> u32 {
        self.pasids
            .values()
            .filter(|e| e.set == id && !e.freed)
            .count() as u32
    }

    fn reserved(p: Pasid) -> bool {
        p == 0 || RESERVED.iter().any(|r| r.contains(&p))
    }

    fn release(&mut self, p: Pasid) {
        let e = self.pasids.remove(&p).unwrap();
        self.released.push((e.set, p, e.data));
        if e.custom {
            if let Some(used) = &mut self.custom {
                used.remove(&p);
            }
        }
        let usage = self.usage(e.set);
        if let Some(m) = self.set_mut(e.set) {
            if m.state == MSetState::Dying && usage == 0 {
                m.state = MSetState::Gone;
            }
        }
    }

    fn create_set(&mut self, quota: u32) -> Result<SetId, Error> {
        if quota == 0 || quota > CAPACITY {
            return Err(Error::InvalidQuota);
        }
        let used: BTreeSet<u32> = self
            .sets
            .iter()
            .filter(|m| m.state != MSetState::Gone)
            .map(|m| m.id.index())
            .collect();
        let index = (1..=MAX_SETS)
            .find(|i| !used.contains(i))
            .ok_or(Error::NoSetSpace)?;
        let id = SetId::from_raw(((self.generation as u64) << 32) | index as u64);
        self.generation += 1;
        self.sets.push(MSet {
            id,
            quota,
            state: MSetState::Live,
        });
        Ok(id)
    }

    fn destroy_set(&mut self, id: SetId) -> Result<Teardown, Error> {
        self.live_set(id)?.state = MSetState::Dying;
        let mut report = Teardown::default();
        let mine: Vec<Pasid> = self
            .pasids
            .iter()
            .filter(|(_, e)| e.set == id && !e.freed)
            .map(|(p, _)| *p)
            .collect();
        for p in mine {
            report.freed += 1;
            let e = self.pasids.get_mut(&p).unwrap();
            e.freed = true;
            if e.refs == 0 {
                self.release(p);
            } else {
                report.deferred += 1;
            }
        }
        if self.usage(id) == 0 {
            self.set_mut(id).unwrap().state = MSetState::Gone;
        }
        Ok(report)
    }

    fn set_quota(&mut self, id: SetId, quota: u32) -> Result<(), Error> {
        if quota == 0 || quota > CAPACITY {
            return Err(Error::InvalidQuota);
        }
        self.live_set(id)?.quota = quota;
        Ok(())
    }

    fn alloc(&mut self, id: SetId, min: u32, max: u32, data: u64) -> Result<Pasid, Error> {
        let quota = self.live_set(id)?.quota;
        if min > max || max > MAX {
            return Err(Error::InvalidRange);
        }
        if self.usage(id) >= quota {
            return Err(Error::QuotaExceeded);
        }
        let custom = self.custom.is_some();
        let p = match &mut self.custom {
            None => (min..=max)
                .find(|p| !Self::reserved(*p) && !self.pasids.contains_key(p))
                .ok_or(Error::NoSpace)?,
            Some(used) => {
                // The test allocator: highest PASID it has not handed out.
                let p = (min..=max)
                    .rev()
                    .find(|p| !used.contains(p))
                    .ok_or(Error::NoSpace)?;
                if Self::reserved(p) {
                    return Err(Error::AllocatorFault); // and handed back at once
                }
                assert!(
                    !self.pasids.contains_key(&p),
                    "model: allocator gave a live PASID"
                );
                used.insert(p);
                p
            }
        };
        self.pasids.insert(
            p,
            MPasid {
                set: id,
                refs: 0,
                freed: false,
                data,
                custom,
            },
        );
        Ok(p)
    }

    /// The entry as `set` may see it (the lookup rules shared by all PASID operations).
    fn visible(&mut self, id: SetId, p: Pasid) -> Result<&mut MPasid, Error> {
        match self.pasids.get_mut(&p) {
            None => Err(Error::PasidNotFound),
            Some(e) if e.set != id => Err(Error::NotOwner),
            Some(e) => Ok(e),
        }
    }

    fn active_entry(&mut self, id: SetId, p: Pasid) -> Result<&mut MPasid, Error> {
        let e = self.visible(id, p)?;
        if e.freed {
            Err(Error::PasidNotFound)
        } else {
            Ok(e)
        }
    }

    fn free(&mut self, id: SetId, p: Pasid) -> Result<(), Error> {
        let e = self.active_entry(id, p)?;
        e.freed = true;
        if e.refs == 0 {
            self.release(p);
        }
        Ok(())
    }

    fn get(&mut self, id: SetId, p: Pasid) -> Result<u32, Error> {
        let e = self.active_entry(id, p)?;
        e.refs += 1;
        Ok(e.refs)
    }

    fn put(&mut self, id: SetId, p: Pasid) -> Result<(), Error> {
        let e = self.visible(id, p)?;
        if e.refs == 0 {
            return Err(Error::UnbalancedPut);
        }
        e.refs -= 1;
        if e.refs == 0 && e.freed {
            self.release(p);
        }
        Ok(())
    }

    fn set_data(&mut self, id: SetId, p: Pasid, data: u64) -> Result<u64, Error> {
        let e = self.active_entry(id, p)?;
        Ok(std::mem::replace(&mut e.data, data))
    }

    fn find(&mut self, id: SetId, p: Pasid) -> Result<u64, Error> {
        Ok(self.active_entry(id, p)?.data)
    }

    fn register(&mut self) -> Result<(), Error> {
        if self.custom.is_some() {
            return Err(Error::AllocatorRegistered);
        }
        if !self.pasids.is_empty() {
            return Err(Error::SpaceInUse);
        }
        self.custom = Some(BTreeSet::new());
        Ok(())
    }

    fn unregister(&mut self) -> Result<u32, Error> {
        self.custom.take().ok_or(Error::NoAllocator)?;
        Ok(self.pasids.values().filter(|e| e.custom).count() as u32)
    }
}

// ---------------------------------------------------------------------------------------------
// The system under test

type A = Ioasid<St<u64>>;

struct Sut {
    a: Rc<A>,
    allocator: Option<TestAllocator>,
    all: NoteLog<u64>,
    all_sub: Option<SubscriptionId>,
    filtered: NoteLog<u64>,
    filtered_sub: Option<(SubscriptionId, SetId)>,
    /// Problems seen inside notifiers.
    violations: Rc<RefCell<Vec<String>>>,
}

/// A recorder that also checks, while it runs, that the PASID is reserved and releasing and
/// that a custom allocator has not got it back yet.
fn checking_recorder(
    a: &Rc<A>,
    log: &NoteLog<u64>,
    allocator: Rc<RefCell<Option<TestAllocator>>>,
    violations: &Rc<RefCell<Vec<String>>>,
) -> StNotifier<u64> {
    let weak: Weak<A> = Rc::downgrade(a);
    let log = log.clone();
    let violations = violations.clone();
    Box::new(move |set, pasid, data: &u64| {
        let a = weak.upgrade().unwrap();
        match a.pasid_info(pasid) {
            Some(i) if i.state == PasidState::Releasing && i.set == set => {
                if i.custom {
                    if let Some(al) = &*allocator.borrow() {
                        if !al.state().used.contains(&pasid) && a.with_core(|c| c.has_allocator()) {
                            violations
                                .borrow_mut()
                                .push(format!("{pasid} given back before notification"));
                        }
                    }
                }
            }
            other => violations
                .borrow_mut()
                .push(format!("{pasid} not releasing in notifier: {other:?}")),
        }
        if a.find(set, pasid) != Err(Error::PasidNotFound)
            || a.find_word(set, pasid) != Err(Error::PasidNotFound)
        {
            violations
                .borrow_mut()
                .push(format!("{pasid} findable in notifier"));
        }
        log.borrow_mut().push((set, pasid, *data));
    })
}

fn run(ops: Vec<Op>, cov: &mut BTreeSet<String>) -> Result<(), TestCaseError> {
    let config = Config::new(BITS)
        .with_reserved(&RESERVED)
        .with_max_sets(MAX_SETS);
    let a: Rc<A> = Rc::new(new_st(&config).unwrap());
    let current_alloc: Rc<RefCell<Option<TestAllocator>>> = Default::default();
    let mut sut = Sut {
        a,
        allocator: None,
        all: Default::default(),
        all_sub: None,
        filtered: Default::default(),
        filtered_sub: None,
        violations: Default::default(),
    };
    let mut m = Model::default();

    for (step, op) in ops.into_iter().enumerate() {
        m.released.clear();
        let a = &sut.a;
        let ctx = format!("step {step}: {op:?}");
        let kind = format!("{op:?}");
        let kind = kind.split([' ', '(']).next().unwrap_or("").to_string();
        let mut outcome = String::from("-");
        match op {
            Op::CreateSet { quota } => {
                let owner = Owner::new(OwnerKind::Vm, step as u64);
                let (got, want) = (a.create_set(owner, quota), m.create_set(quota));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::DestroySet { s } => {
                let id = m.set_id(s);
                let (got, want) = (a.destroy_set(id), m.destroy_set(id));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::SetQuota { s, quota } => {
                let id = m.set_id(s);
                let (got, want) = (a.set_quota(id, quota), m.set_quota(id, quota));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Alloc { s, min, max, data } => {
                let id = m.set_id(s);
                let (got, want) = (a.alloc(id, min, max, data), m.alloc(id, min, max, data));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Free(t) => {
                let (id, p) = m.resolve(t);
                let (got, want) = (a.free(id, p), m.free(id, p));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Get(t) => {
                let (id, p) = m.resolve(t);
                let (got, want) = (a.get(id, p), m.get(id, p));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Put(t) => {
                let (id, p) = m.resolve(t);
                let (got, want) = (a.put(id, p), m.put(id, p));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::SetData(t, data) => {
                let (id, p) = m.resolve(t);
                let (got, want) = (a.set_data(id, p, data), m.set_data(id, p, data));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Find(t) => {
                let (id, p) = m.resolve(t);
                let (got, want) = (a.find(id, p), m.find(id, p));
                outcome = format!("{:?}", got.as_ref().map(|_| ()));
                prop_assert_eq!(got, want, "{}", ctx);
                // The lockless lookup agrees with the locked one.
                let word = a.find_word(id, p);
                prop_assert_eq!(word, want.map(|d| d as usize), "{}: find_word", ctx);
            }
            Op::Register => {
                let al = TestAllocator::new();
                let got = a.register_allocator(al.clone()).map_err(|r| r.error);
                let want = m.register();
                outcome = format!("{got:?}");
                prop_assert_eq!(got, want, "{}", ctx);
                if got.is_ok() {
                    sut.allocator = Some(al.clone());
                    *current_alloc.borrow_mut() = Some(al);
                }
            }
            Op::Unregister => {
                let got = a.unregister_allocator().map(|(_, n)| n);
                outcome = format!("{:?}", got.map(|_| ()));
                prop_assert_eq!(got, m.unregister(), "{}", ctx);
                if got.is_ok() {
                    sut.allocator = None;
                    *current_alloc.borrow_mut() = None;
                }
            }
            Op::SubscribeAll(on) => match (on, sut.all_sub) {
                (true, None) => {
                    let n = checking_recorder(a, &sut.all, current_alloc.clone(), &sut.violations);
                    sut.all_sub = Some(a.subscribe(n, None).ok().unwrap());
                }
                (false, Some(id)) => {
                    prop_assert!(a.unsubscribe(id).is_ok());
                    prop_assert_eq!(a.unsubscribe(id).err(), Some(Error::SubscriptionNotFound));
                    sut.all_sub = None;
                }
                _ => {}
            },
            Op::SubscribeSet { s, on } => match (on, sut.filtered_sub) {
                (true, None) => {
                    let id = m.set_id(s);
                    let n =
                        checking_recorder(a, &sut.filtered, current_alloc.clone(), &sut.violations);
                    sut.filtered_sub = Some((a.subscribe(n, Some(id)).ok().unwrap(), id));
                }
                (false, Some((sub, _))) => {
                    prop_assert!(a.unsubscribe(sub).is_ok());
                    sut.filtered_sub = None;
                }
                _ => {}
            },
        }

        if !m.released.is_empty() {
            outcome.push_str(" released");
        }
        if m.released.iter().any(|n| {
            m.sets
                .iter()
                .any(|s| s.id == n.0 && s.state == MSetState::Gone)
        }) {
            outcome.push_str(" set-gone");
        }
        cov.insert(format!("{kind} {outcome}"));

        // Notifications: exactly the model's releases of this operation, once each.
        let mut want_all: Vec<Note> = if sut.all_sub.is_some() {
            m.released.clone()
        } else {
            vec![]
        };
        let mut want_filtered: Vec<Note> = match sut.filtered_sub {
            Some((_, id)) => m.released.iter().filter(|n| n.0 == id).cloned().collect(),
            None => vec![],
        };
        let mut got_all = std::mem::take(&mut *sut.all.borrow_mut());
        let mut got_filtered = std::mem::take(&mut *sut.filtered.borrow_mut());
        for v in [
            &mut want_all,
            &mut want_filtered,
            &mut got_all,
            &mut got_filtered,
        ] {
            v.sort();
        }
        prop_assert_eq!(got_all, want_all, "{}: notifications", ctx);
        prop_assert_eq!(
            got_filtered,
            want_filtered,
            "{}: filtered notifications",
            ctx
        );
        let violations = std::mem::take(&mut *sut.violations.borrow_mut());
        prop_assert!(violations.is_empty(), "{}: {:?}", ctx, violations);

        // Whole observable state.
        for ms in &m.sets {
            let got = a.set_info(ms.id);
            match ms.state {
                MSetState::Gone => prop_assert_eq!(got, Err(Error::SetNotFound), "{}", ctx),
                st => {
                    let i = got.unwrap();
                    prop_assert_eq!(
                        (i.quota, i.usage, i.active, i.dying),
                        (
                            ms.quota,
                            m.usage(ms.id),
                            m.active(ms.id),
                            st == MSetState::Dying
                        ),
                        "{}: set {}",
                        ctx,
                        ms.id
                    );
                }
            }
        }
        for p in 0..=MAX + 2 {
            let got = a.pasid_info(p).map(|i| (i.set, i.state, i.refs, i.custom));
            let want = m.pasids.get(&p).map(|e| {
                let st = if e.freed {
                    PasidState::Freed
                } else {
                    PasidState::Active
                };
                (e.set, st, e.refs, e.custom)
            });
            prop_assert_eq!(got, want, "{}: PASID {}", ctx, p);
            // Lockless lookups by every set match the model.
            let ids: Vec<SetId> = m.sets.iter().map(|ms| ms.id).collect();
            for id in ids {
                let want = m.find(id, p).map(|d| d as usize);
                prop_assert_eq!(
                    a.find_word(id, p),
                    want,
                    "{}: find_word({}, {})",
                    ctx,
                    id,
                    p
                );
            }
        }
        let live_sets = m.sets.iter().filter(|s| s.state != MSetState::Gone).count() as u32;
        prop_assert_eq!(
            a.with_core(|c| (c.live(), c.nr_sets(), c.has_allocator())),
            (m.pasids.len() as u32, live_sets, m.custom.is_some()),
            "{}",
            ctx
        );
        if let (Some(al), Some(used)) = (&sut.allocator, &m.custom) {
            prop_assert_eq!(&al.state().used, used, "{}: allocator view", ctx);
        }
        let mut out = String::new();
        prop_assert!(a.dump(&mut out).is_ok());
        prop_assert_eq!(
            out.lines().filter(|l| l.starts_with("  0x")).count(),
            m.pasids.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops, &mut BTreeSet::new())?;
    }
}

/// The generator reaches every interesting outcome (so the comparisons above are exercised,
/// not vacuous).
#[test]
fn generator_covers_every_outcome() {
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases: 1000,
            ..RunnerConfig::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let cov = RefCell::new(BTreeSet::new());
    runner
        .run(&proptest::collection::vec(op(), 1..80), |ops| {
            run(ops, &mut cov.borrow_mut())
        })
        .unwrap();
    let cov = cov.into_inner();
    for want in [
        "CreateSet Ok(())",
        "CreateSet Err(InvalidQuota)",
        "CreateSet Err(NoSetSpace)",
        "DestroySet Ok(()) released",
        "DestroySet Ok(()) released set-gone",
        "DestroySet Err(SetNotFound)",
        "SetQuota Ok(())",
        "SetQuota Err(InvalidQuota)",
        "Alloc Ok(())",
        "Alloc Err(SetNotFound)",
        "Alloc Err(InvalidRange)",
        "Alloc Err(QuotaExceeded)",
        "Alloc Err(NoSpace)",
        "Alloc Err(AllocatorFault)",
        "Free Ok(()) released",
        "Free Ok(())",
        "Free Err(NotOwner)",
        "Free Err(PasidNotFound)",
        "Get Ok(())",
        "Get Err(PasidNotFound)",
        "Put Ok(())",
        "Put Ok(()) released",
        "Put Ok(()) released set-gone",
        "Put Err(UnbalancedPut)",
        "Put Err(NotOwner)",
        "SetData Ok(())",
        "Find Ok(())",
        "Find Err(NotOwner)",
        "Register Ok(())",
        "Register Err(SpaceInUse)",
        "Register Err(AllocatorRegistered)",
        "Unregister Ok(())",
        "Unregister Err(NoAllocator)",
    ] {
        assert!(cov.contains(want), "never reached: {want}\n{cov:#?}");
    }
}

const RAW0_1: Pick = Pick {
    s: 0,
    p: 1,
    mode: 9,
};

/// A fixed sequence through the harness, so that a broken harness cannot pass vacuously.
#[test]
fn harness_sees_releases() {
    let ops = vec![
        Op::SubscribeAll(true),
        Op::CreateSet { quota: 3 },
        Op::Alloc {
            s: 0,
            min: 0,
            max: 15,
            data: 1,
        },
        Op::Get(RAW0_1),
        Op::Free(RAW0_1),
        Op::Put(RAW0_1),
        Op::Register,
        Op::Alloc {
            s: 0,
            min: 0,
            max: 7,
            data: 2,
        },
        Op::Alloc {
            s: 0,
            min: 0,
            max: 5,
            data: 2,
        },
        Op::DestroySet { s: 0 },
        Op::Unregister,
    ];
    let mut cov = BTreeSet::new();
    run(ops, &mut cov).unwrap();
    assert!(cov.contains("Put Ok(()) released"), "{cov:?}");
    assert!(cov.contains("Alloc Err(AllocatorFault)"), "{cov:?}");
}
