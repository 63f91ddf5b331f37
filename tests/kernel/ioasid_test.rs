// SPDX-License-Identifier: GPL-2.0
//! Guest tests of the PASID allocator as compiled into the kernel (`kernel::ioasid`): the same
//! behaviour the host tests check, on the kernel's storage (the PASID table and lookup table
//! over `kvmalloc`, sets in an XArray) and mutexes, plus concurrency from several kernel
//! workers.
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    alloc::flags::GFP_KERNEL,
    error::code::{EACCES, EINVAL, ENOENT, ENOSPC},
    ioasid::{self, Config, Ioasid, Notifier, OwnerKind, PasidSet, SetId},
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    new_condvar, new_mutex,
    workqueue,
};

module! {
    type: IoasidTest,
    name: "ioasid_test",
    author: "pasid-mdev project",
    description: "Guest tests of kernel::ioasid",
    license: "GPL",
}

struct IoasidTest;

/// `EDQUOT` (6.12's `error::code` does not name it).
fn edquot() -> Error {
    Error::from_errno(-(kernel::bindings::EDQUOT as i32))
}

fn instance(case: &Case<'_>, bits: u32) -> Result<KBox<Ioasid>, Failed> {
    let inst = case.check("new_instance", ioasid::new_instance(&Config::new(bits)))?;
    case.check("KBox::new", KBox::new(inst, GFP_KERNEL).map_err(Into::into))
}

fn set<'a>(case: &Case<'_>, io: &'a Ioasid, quota: u32) -> Result<PasidSet<'a>, Failed> {
    case.check("PasidSet::new_in", PasidSet::new_in(io, OwnerKind::Mdev, 1, quota))
}

fn basic_cases(suite: &mut Suite) {
    suite.run("alloc_find_free", |case| {
        let io = instance(case, 8)?;
        let s = set(case, &io, 16)?;
        let p = case.check("alloc", s.alloc(1..=255, 0xabc))?;
        labtest_ensure!(case, p == 1, "first PASID is {p}, expected 1 (0 is the RID's)");
        let d = case.check("find", s.find(p))?;
        labtest_ensure!(case, d == 0xabc, "find returned {d:#x}");
        let old = case.check("set_data", s.set_data(p, 7))?;
        labtest_ensure!(case, old == 0xabc && s.find(p) == Ok(7), "set_data did not replace");
        case.check("free", s.free(p))?;
        labtest_ensure!(case, s.find(p) == Err(ENOENT), "freed PASID still found");
        Ok(())
    });
    suite.run("errors_have_their_errno", |case| {
        let io = instance(case, 4)?; // PASIDs 1..=15
        let a = set(case, &io, 2)?;
        let b = set(case, &io, 15)?;
        let p = case.check("alloc", a.alloc(1..=15, 0))?;
        labtest_ensure!(case, b.find(p) == Err(EACCES), "other set's find: {:?}", b.find(p));
        labtest_ensure!(case, b.free(p) == Err(EACCES), "other set's free allowed");
        case.check("alloc", a.alloc(1..=15, 0))?;
        let r = a.alloc(1..=15, 0);
        labtest_ensure!(case, r == Err(edquot()), "over quota: {r:?}");
        #[allow(clippy::reversed_empty_ranges)]
        let r = b.alloc(9..=3, 0);
        labtest_ensure!(case, r == Err(EINVAL), "inverted range: {r:?}");
        let r = b.alloc(1..=16, 0);
        labtest_ensure!(case, r == Err(EINVAL), "range beyond 4 bits: {r:?}");
        let r = PasidSet::new_in(&io, OwnerKind::Vm, 3, 16).map(|_| ());
        labtest_ensure!(case, r == Err(EINVAL), "quota beyond the space: {r:?}");
        for _ in 0..13 {
            case.check("alloc", b.alloc(1..=15, 0))?;
        }
        let r = b.alloc(1..=15, 0);
        labtest_ensure!(case, r == Err(ENOSPC), "exhausted space: {r:?}");
        labtest_ensure!(case, b.find(0) == Err(ENOENT), "RID PASID 0 found");
        Ok(())
    });
    suite.run("free_while_referenced_then_last_put_notifies", |case| {
        let io = instance(case, 8)?;
        let s = set(case, &io, 4)?;
        let released = case.check("Arc::new", Arc::new(AtomicU32::new(0), GFP_KERNEL).map_err(Into::into))?;
        let seen = released.clone();
        let n = case.check(
            "Arc::new",
            Arc::new(move |_s: SetId, pasid: u32, _d: &usize| {
                seen.fetch_add(pasid, Ordering::SeqCst);
            }, GFP_KERNEL).map_err(Into::into),
        )?;
        let sub = case.check("subscribe", s.subscribe(Notifier(n)))?;
        let p = case.check("alloc", s.alloc(1..=255, 0))?;
        labtest_ensure!(case, s.get(p) == Ok(1), "first get did not return 1 reference");
        case.check("free", s.free(p))?;
        labtest_ensure!(case, s.find(p) == Err(ENOENT), "freed but referenced PASID findable");
        labtest_ensure!(case, released.load(Ordering::SeqCst) == 0, "released while referenced");
        let q = case.check("alloc", s.alloc(1..=255, 0))?;
        labtest_ensure!(case, q != p, "referenced PASID {p} handed out again");
        case.check("put", s.put(p))?;
        labtest_ensure!(case, released.load(Ordering::SeqCst) == p, "no release notification");
        labtest_ensure!(case, s.put(p) == Err(ENOENT), "put after release accepted");
        labtest_ensure!(case, s.put(q) == Err(EINVAL), "put without get accepted");
        case.check("unsubscribe", s.unsubscribe(sub))?;
        Ok(())
    });
    suite.run("set_teardown_releases_everything", |case| {
        let io = instance(case, 8)?;
        let count = case.check("Arc::new", Arc::new(AtomicU32::new(0), GFP_KERNEL).map_err(Into::into))?;
        let seen = count.clone();
        let n = case.check(
            "Arc::new",
            Arc::new(move |_s: SetId, _p: u32, _d: &usize| {
                seen.fetch_add(1, Ordering::SeqCst);
            }, GFP_KERNEL).map_err(Into::into),
        )?;
        let sub = case.check("subscribe", io.subscribe(Notifier(n), None).map_err(|r| Error::from_errno(r.error.to_errno())))?;
        {
            let s = set(case, &io, 64)?;
            for _ in 0..50 {
                case.check("alloc", s.alloc(1..=255, 0))?;
            }
        } // dropped: destroyed
        labtest_ensure!(case, count.load(Ordering::SeqCst) == 50, "{} releases", count.load(Ordering::SeqCst));
        let live = io.with_core(|c| c.live());
        labtest_ensure!(case, live == 0, "{live} PASIDs live after teardown");
        let _ = io.unsubscribe(sub);
        Ok(())
    });
    suite.run("lockless_find_matches_locked_find", |case| {
        let io = instance(case, 8)?;
        let a = set(case, &io, 64)?;
        let b = set(case, &io, 64)?;
        let (ai, bi) = (a.id(), b.id());
        let p = case.check("alloc", a.alloc(1..=255, 0x1234))?;
        for (s, q) in [(ai, p), (bi, p), (ai, p + 1), (ai, 0), (ai, 255)] {
            let (w, f) = (io.find_word(s, q), io.find(s, q));
            labtest_ensure!(case, w == f, "find_word({s}, {q}) {w:?} but find {f:?}");
        }
        labtest_ensure!(case, a.find(p) == Ok(0x1234), "lockless find: {:?}", a.find(p));
        labtest_ensure!(case, b.find(p) == Err(EACCES), "other set: {:?}", b.find(p));
        case.check("set_data", a.set_data(p, 0x5678))?;
        labtest_ensure!(case, a.find(p) == Ok(0x5678), "after set_data: {:?}", a.find(p));
        labtest_ensure!(case, a.get(p) == Ok(1), "get");
        case.check("free", a.free(p))?;
        labtest_ensure!(case, a.find(p) == Err(ENOENT), "freed, referenced: {:?}", a.find(p));
        labtest_ensure!(case, b.find(p) == Err(EACCES), "freed, other set: {:?}", b.find(p));
        case.check("put", a.put(p))?;
        labtest_ensure!(case, a.find(p) == Err(ENOENT), "released: {:?}", a.find(p));
        // The slot is reused at once by another set's PASID: the old lookup key must not match.
        let q = case.check("alloc", b.alloc(1..=255, 0x9abc))?;
        labtest_ensure!(case, q == p, "expected {p} again, got {q}");
        labtest_ensure!(case, a.find(p) == Err(EACCES) && b.find(q) == Ok(0x9abc), "after reuse");
        Ok(())
    });
    suite.run("blocks_allocated_reused_and_freed", |case| {
        // 1000 PASIDs span four blocks of the PASID table and of the lookup table; they are
        // reused over three rounds (with other data each time) and freed with the instance
        // (kmemleak and KASAN watch this in the debug flavour).
        let io = instance(case, 12)?;
        let s = set(case, &io, 2000)?;
        for round in 0..3usize {
            let mut v = KVec::new();
            for i in 0..1000usize {
                let p = case.check("alloc", s.alloc(1..=4095, round * 10_000 + i))?;
                case.check("push", v.push(p, GFP_KERNEL).map_err(Into::into))?;
            }
            for (i, &p) in v.iter().enumerate() {
                labtest_ensure!(case, s.find(p) == Ok(round * 10_000 + i), "find {p}");
            }
            for &p in v.iter() {
                case.check("free", s.free(p))?;
            }
        }
        labtest_ensure!(case, io.with_core(|c| c.live()) == 0, "live after frees");
        Ok(())
    });
    suite.run("system_allocator_is_one_instance", |case| {
        let a = case.check("system", ioasid::system())?;
        let b = case.check("system", ioasid::system())?;
        labtest_ensure!(case, core::ptr::eq(a, b), "two system instances");
        let s = case.check("PasidSet::new", PasidSet::new(OwnerKind::Other, 9, 4))?;
        let p = case.check("alloc", s.alloc(1..=(1 << 20) - 1, 5))?;
        labtest_ensure!(case, p >= 1, "system PASID {p}");
        Ok(())
    });
}

/// Shared state of the concurrency case: the allocator instance and the set the workers use.
#[pin_data]
struct Stress {
    io: Ioasid,
    set: SetId,
    #[pin]
    done: Mutex<u32>,
    #[pin]
    cv: CondVar,
    errors: AtomicU32,
}

const WORKERS: u32 = 4;
const ROUNDS: u32 = 2000;

fn concurrency_case(suite: &mut Suite) {
    suite.run("concurrent_alloc_free_from_workers", |case| {
        let io = case.check("new_instance", ioasid::new_instance(&Config::new(12)))?;
        let set = io
            .create_set(ioasid::Owner::new(OwnerKind::Other, 2), 4095)
            .map_err(|e| case.fail(format_args!("create_set: {e}")))?;
        let st = case.check(
            "Arc::pin_init",
            Arc::pin_init(
                pin_init!(Stress {
                    io,
                    set,
                    done <- new_mutex!(0),
                    cv <- new_condvar!(),
                    errors: AtomicU32::new(0),
                }),
                GFP_KERNEL,
            ),
        )?;
        for w in 0..WORKERS {
            let st = st.clone();
            let r = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
                for i in 0..ROUNDS {
                    let tag = (w << 16 | i) as usize;
                    match st.io.alloc(st.set, 1, 4095, tag) {
                        // Our data must still be ours: nobody else may hold this PASID.
                        Ok(p) => {
                            if st.io.find(st.set, p) != Ok(tag)
                                || st.io.find_word(st.set, p) != Ok(tag)
                                || st.io.free(st.set, p).is_err()
                            {
                                st.errors.fetch_add(1, Ordering::SeqCst);
                            }
                            // A lockless lookup of someone else's PASID never returns our tag
                            // or a tag of another PASID (tags carry the worker, not the PASID,
                            // so just check it is not ours).
                            let other = 1 + (p + 1) % 4095;
                            if let Ok(t) = st.io.find_word(st.set, other) {
                                if t == tag {
                                    st.errors.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        Err(_) => {
                            st.errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                *st.done.lock() += 1;
                st.cv.notify_all();
            });
            case.check("try_spawn", r.map_err(Into::into))?;
        }
        let mut done = st.done.lock();
        while *done < WORKERS {
            st.cv.wait(&mut done);
        }
        drop(done);
        let errors = st.errors.load(Ordering::SeqCst);
        labtest_ensure!(case, errors == 0, "{errors} errors in {} operations", WORKERS * ROUNDS);
        let info = st.io.set_info(st.set).map_err(|e| case.fail(format_args!("set_info: {e}")))?;
        labtest_ensure!(case, info.usage == 0, "usage {} after all frees", info.usage);
        // Every PASID was freed by its worker: destroying the set must succeed with nothing
        // left to free.
        let t = st.io.destroy_set(st.set).map_err(|e| case.fail(format_args!("destroy_set: {e}")))?;
        labtest_ensure!(case, t.freed == 0 && t.deferred == 0, "destroy_set freed {} ({} deferred) after all frees", t.freed, t.deferred);
        Ok(())
    });
}

impl kernel::Module for IoasidTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("ioasid");
        basic_cases(&mut suite);
        concurrency_case(&mut suite);
        suite.finish();
        Ok(IoasidTest)
    }
}
