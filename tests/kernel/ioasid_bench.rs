// SPDX-License-Identifier: GPL-2.0
//! Benchmark (prints figures; asserts nothing about speed): the PASID allocator as compiled
//! into the kernel against the kernel's own peers measured in the same boot:
//! - alloc+free pairs with N PASIDs live (sets and quotas on) vs `ida_alloc_range`/`ida_free`
//!   with N IDs live (what 6.12's `iommu_alloc_global_pasid()` does);
//! - `find` of a live PASID (with its ownership check; `PasidSet::find` is the lockless
//!   `find_word`, the locked `find` is shown for reference) vs a bare `xa_load` on an XArray
//!   holding N entries.
//!
//! Each figure is measured `RUNS` times in short rounds (`PAIRS`, `FINDS` operations),
//! alternating ours and the peer; the ratio is of the minima (the round least disturbed by the
//! other tenants of the machine), the first round is printed too.
//!
//! Figures are printed after `labtest-bench:`; the guest runner copies them to its output.
use kernel::{
    alloc::flags::GFP_KERNEL,
    ida::Ida,
    ioasid::{self, Config, Ioasid, OwnerKind, SetId},
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

fn ioasid_with_live(case: &Case<'_>, live: u32) -> Result<(KBox<Ioasid>, SetId), Failed> {
    let io = case.check("new_instance", ioasid::new_instance(&Config::new(20)))?;
    let io = case.check("KBox::new", KBox::new(io, GFP_KERNEL).map_err(Into::into))?;
    let set = io
        .create_set(ioasid::Owner::new(OwnerKind::Other, 0), MAX)
        .map_err(|e| case.fail(format_args!("create_set: {e}")))?;
    for _ in 0..live {
        io.alloc(set, 1, MAX, 0).map_err(|e| case.fail(format_args!("prefill: {e}")))?;
    }
    Ok((io, set))
}

fn ratio(ours: u64, peer: u64) -> (u64, u64) {
    (ours / peer.max(1), (ours * 100 / peer.max(1)) % 100)
}

fn bench_alloc_free(case: &Case<'_>, live: u32) -> Result<(), Failed> {
    let (io, set) = ioasid_with_live(case, live)?;
    let ida = case.check("Ida::new", KBox::pin_init(Ida::new(), GFP_KERNEL))?;
    for _ in 0..live {
        case.check("ida prefill", ida.alloc(1..=MAX, GFP_KERNEL))?;
    }
    let (mut ours, mut peer) = ([0u64; RUNS], [0u64; RUNS]);
    for run in 0..RUNS {
        let t = Ktime::ktime_get();
        for _ in 0..PAIRS {
            let p = io.alloc(set, 1, MAX, 0).map_err(|e| case.fail(format_args!("alloc: {e}")))?;
            io.free(set, p).map_err(|e| case.fail(format_args!("free: {e}")))?;
        }
        ours[run] = ns_per(t, PAIRS);

        let t = Ktime::ktime_get();
        for _ in 0..PAIRS {
            let id = case.check("ida alloc", ida.alloc(1..=MAX, GFP_KERNEL))?;
            ida.free(id);
        }
        peer[run] = ns_per(t, PAIRS);
    }
    let (o, p) = (ours.iter().min().copied().unwrap_or(0), peer.iter().min().copied().unwrap_or(0));
    let (ri, rf) = ratio(o, p);
    let (fi, ff) = ratio(ours[0], peer[0]);
    pr_info!(
        "labtest-bench: alloc+free live={live}: ioasid {o} ns, ida {p} ns, ratio {ri}.{rf:02} (target <= 1.00; min of {RUNS}; first run {} / {} ns = {fi}.{ff:02})\n",
        ours[0], peer[0]
    );
    Ok(())
}

fn bench_find(case: &Case<'_>, live: u32) -> Result<(), Failed> {
    let (io, set) = ioasid_with_live(case, live)?;
    let xa = case.check("XArray::new", KBox::pin_init(XArray::<KBox<u64>>::new(AllocKind::Alloc1), GFP_KERNEL))?;
    for _ in 0..live {
        let v = case.check("KBox::new", KBox::new(0, GFP_KERNEL).map_err(Into::into))?;
        case.check("xa alloc", xa.lock().alloc(1..=MAX, v, GFP_KERNEL))?;
    }
    let (mut ours, mut locked, mut peer) = ([0u64; RUNS], [0u64; RUNS], [0u64; RUNS]);
    for run in 0..RUNS {
        let mut x = 0x9e37_79b9u32;
        let t = Ktime::ktime_get();
        for _ in 0..FINDS {
            let p = 1 + next(&mut x) % live;
            io.find_word(set, p).map_err(|e| case.fail(format_args!("find_word({p}): {e}")))?;
        }
        ours[run] = ns_per(t, FINDS);

        let mut x = 0x9e37_79b9u32;
        let t = Ktime::ktime_get();
        for _ in 0..FINDS {
            let p = 1 + next(&mut x) % live;
            io.find(set, p).map_err(|e| case.fail(format_args!("find({p}): {e}")))?;
        }
        locked[run] = ns_per(t, FINDS);

        let mut x = 0x9e37_79b9u32;
        let mut found = 0u32;
        let t = Ktime::ktime_get();
        for _ in 0..FINDS {
            found += u32::from(xa.contains(1 + next(&mut x) % live));
        }
        peer[run] = ns_per(t, FINDS);
        if found != FINDS {
            return Err(case.fail(format_args!("xa_load missed {} entries", FINDS - found)));
        }
    }
    let min = |v: &[u64; RUNS]| v.iter().min().copied().unwrap_or(0);
    let (o, l, p) = (min(&ours), min(&locked), min(&peer));
    let (ri, rf) = ratio(o, p);
    let (li, lf) = ratio(l, p);
    let (fi, ff) = ratio(ours[0], peer[0]);
    pr_info!(
        "labtest-bench: find live={live}: ioasid {o} ns, xa_load {p} ns, ratio {ri}.{rf:02} (target <= 1.20; lockless find_word, min of {RUNS}; first run {} / {} ns = {fi}.{ff:02}; locked find {l} ns = {li}.{lf:02})\n",
        ours[0], peer[0]
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
