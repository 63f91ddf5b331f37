// SPDX-License-Identifier: GPL-2.0
//! Benchmark (prints figures; asserts nothing about speed): the PASID allocator as compiled
//! into the kernel against the kernel's own peers measured in the same boot, with the same
//! range (`1..=2^20-1`) and the same number of IDs live:
//! - alloc+free pairs through the driver API ([`PasidSet::alloc`]/[`PasidSet::free`]: state
//!   lock, set lookup, range and quota checks, private data, per-set list, no subscriber) with
//!   N PASIDs live vs `ida_alloc_range`/`ida_free` with N IDs live (what 6.12's
//!   `iommu_alloc_global_pasid()` does);
//! - lookups through the driver API ([`PasidSet::find`]: the lockless `find_word`, ownership
//!   check included; the locked `find` is shown for reference) vs a bare `xa_load` on an
//!   XArray holding N entries, both over the same pseudo-random sequence of live IDs.
//!
//! Each figure is measured in `RUNS` short rounds (`PAIRS`, `FINDS` operations) after one
//! unmeasured warm-up round of each; ours and the peer alternate, and which of the two goes
//! first alternates from round to round. The ratio is of the minima (the rounds least disturbed
//! by the other tenants of the machine); the medians are printed too.
//!
//! Figures are printed after `labtest-bench:`; the guest runner copies them to its output.
use kernel::{
    alloc::flags::GFP_KERNEL,
    ida::Ida,
    ioasid::{self, Config, Ioasid, OwnerKind, PasidSet},
    labtest::{Case, Failed, Suite},
    prelude::*,
    time::Ktime,
    xarray::{AllocKind, XArray},
};

module! {
    type: IoasidBench,
    name: "ioasid_bench",
    author: "pasid-mdev project",
    description: "PASID allocator benchmark against IDA and xa_load",
    license: "GPL",
}

struct IoasidBench;

const PAIRS: u32 = 1_000;
const FINDS: u32 = 5_000;
const RUNS: usize = 15;
const MAX: u32 = (1 << 20) - 1;

fn ns_per(start: Ktime, n: u32) -> u64 {
    let ns = (Ktime::ktime_get() - start).to_ns();
    (ns.max(0) as u64) / u64::from(n.max(1))
}

/// A cheap pseudo-random sequence (xorshift) so lookups do not walk the tree in order.
fn next(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

fn instance(case: &Case<'_>) -> Result<KBox<Ioasid>, Failed> {
    let io = case.check("new_instance", ioasid::new_instance(&Config::new(20)))?;
    case.check("KBox::new", KBox::new(io, GFP_KERNEL).map_err(Into::into))
}

/// A set with the whole space as quota, holding `live` PASIDs (`1..=live`).
fn set_with_live<'a>(case: &Case<'_>, io: &'a Ioasid, live: u32) -> Result<PasidSet<'a>, Failed> {
    let set = case.check("PasidSet::new_in", PasidSet::new_in(io, OwnerKind::Other, 0, MAX))?;
    for _ in 0..live {
        case.check("prefill", set.alloc(1..=MAX, 0))?;
    }
    Ok(set)
}

/// `ours / peer` as `(integer part, hundredths)`.
fn ratio(ours: u64, peer: u64) -> (u64, u64) {
    (ours / peer.max(1), (ours * 100 / peer.max(1)) % 100)
}

fn min_med(v: &mut [u64; RUNS]) -> (u64, u64) {
    v.sort_unstable();
    (v[0], v[RUNS / 2])
}

/// Runs `RUNS` measured rounds of `a` and `b` (after a warm-up round of each), alternating
/// which goes first; returns the per-operation times of each round.
fn rounds(
    mut a: impl FnMut() -> Result<u64, Failed>,
    mut b: impl FnMut() -> Result<u64, Failed>,
) -> Result<([u64; RUNS], [u64; RUNS]), Failed> {
    a()?;
    b()?;
    let (mut ta, mut tb) = ([0u64; RUNS], [0u64; RUNS]);
    for run in 0..RUNS {
        if run % 2 == 0 {
            ta[run] = a()?;
            tb[run] = b()?;
        } else {
            tb[run] = b()?;
            ta[run] = a()?;
        }
    }
    Ok((ta, tb))
}

fn bench_alloc_free(case: &Case<'_>, live: u32) -> Result<(), Failed> {
    let io = instance(case)?;
    let set = set_with_live(case, &io, live)?;
    let ida = case.check("Ida::new", KBox::pin_init(Ida::new(), GFP_KERNEL))?;
    for _ in 0..live {
        case.check("ida prefill", ida.alloc(1..=MAX, GFP_KERNEL))?;
    }
    let (mut ours, mut peer) = rounds(
        || {
            let t = Ktime::ktime_get();
            for _ in 0..PAIRS {
                let p = case.check("alloc", set.alloc(1..=MAX, 0))?;
                case.check("free", set.free(p))?;
            }
            Ok(ns_per(t, PAIRS))
        },
        || {
            let t = Ktime::ktime_get();
            for _ in 0..PAIRS {
                let id = case.check("ida alloc", ida.alloc(1..=MAX, GFP_KERNEL))?;
                ida.free(id);
            }
            Ok(ns_per(t, PAIRS))
        },
    )?;
    let ((o, om), (p, pm)) = (min_med(&mut ours), min_med(&mut peer));
    let ((ri, rf), (mi, mf)) = (ratio(o, p), ratio(om, pm));
    pr_info!(
        "labtest-bench: alloc+free live={live}: ioasid {o} ns, ida {p} ns, ratio {ri}.{rf:02} (target <= 1.00; min of {RUNS}; medians {om} / {pm} ns = {mi}.{mf:02})\n"
    );
    Ok(())
}

fn bench_find(case: &Case<'_>, live: u32) -> Result<(), Failed> {
    let io = instance(case)?;
    let set = set_with_live(case, &io, live)?;
    let xa = case.check("XArray::new", KBox::pin_init(XArray::<KBox<u64>>::new(AllocKind::Alloc1), GFP_KERNEL))?;
    for _ in 0..live {
        let v = case.check("KBox::new", KBox::new(0, GFP_KERNEL).map_err(Into::into))?;
        case.check("xa alloc", xa.lock().alloc(1..=MAX, v, GFP_KERNEL))?;
    }
    let (mut ours, mut peer) = rounds(
        || {
            let mut x = 0x9e37_79b9u32;
            let t = Ktime::ktime_get();
            for _ in 0..FINDS {
                let p = 1 + next(&mut x) % live;
                case.check("find", set.find(p))?;
            }
            Ok(ns_per(t, FINDS))
        },
        || {
            let mut x = 0x9e37_79b9u32;
            let mut found = 0u32;
            let t = Ktime::ktime_get();
            for _ in 0..FINDS {
                found += u32::from(xa.contains(1 + next(&mut x) % live));
            }
            let ns = ns_per(t, FINDS);
            if found != FINDS {
                return Err(case.fail(format_args!("xa_load missed {} entries", FINDS - found)));
            }
            Ok(ns)
        },
    )?;
    // The locked lookup, for reference (not a target).
    let mut locked = [0u64; RUNS];
    for l in locked.iter_mut() {
        let mut x = 0x9e37_79b9u32;
        let t = Ktime::ktime_get();
        for _ in 0..FINDS {
            let p = 1 + next(&mut x) % live;
            io.find(set.id(), p).map_err(|e| case.fail(format_args!("find({p}): {e}")))?;
        }
        *l = ns_per(t, FINDS);
    }
    let ((o, om), (p, pm), (l, _)) = (min_med(&mut ours), min_med(&mut peer), min_med(&mut locked));
    let ((ri, rf), (mi, mf), (li, lf)) = (ratio(o, p), ratio(om, pm), ratio(l, p));
    pr_info!(
        "labtest-bench: find live={live}: ioasid {o} ns, xa_load {p} ns, ratio {ri}.{rf:02} (target <= 1.20; lockless PasidSet::find, min of {RUNS}; medians {om} / {pm} ns = {mi}.{mf:02}; locked find {l} ns = {li}.{lf:02})\n"
    );
    Ok(())
}

impl kernel::Module for IoasidBench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("ioasid_bench");
        let sizes = [("live_1", 1u32), ("live_1000", 1000), ("live_100000", 100_000)];
        for (name, live) in sizes {
            suite.run(name, |case| {
                bench_alloc_free(case, live)?;
                bench_find(case, live)
            });
        }
        suite.finish();
        Ok(IoasidBench)
    }
}
