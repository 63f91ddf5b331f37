// SPDX-License-Identifier: GPL-2.0
//! Benchmark (prints figures; asserts nothing about speed): the PASID allocator as compiled
//! into the kernel against the kernel's own peers measured in the same boot:
//! - alloc+free pairs with N PASIDs live (sets and quotas on) vs `ida_alloc_range`/`ida_free`
//!   with N IDs live (what 6.12's `iommu_alloc_global_pasid()` does);
//! - `find` of a live PASID vs a bare `xa_load` on an XArray holding N entries.
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

const PAIRS: u32 = 20_000;
const FINDS: u32 = 50_000;
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

fn bench_alloc_free(case: &Case<'_>, live: u32) -> Result<(), Failed> {
    let (io, set) = ioasid_with_live(case, live)?;
    let t = Ktime::ktime_get();
    for _ in 0..PAIRS {
        let p = io.alloc(set, 1, MAX, 0).map_err(|e| case.fail(format_args!("alloc: {e}")))?;
        io.free(set, p).map_err(|e| case.fail(format_args!("free: {e}")))?;
    }
    let ours = ns_per(t, PAIRS);

    let ida = case.check("Ida::new", KBox::pin_init(Ida::new(), GFP_KERNEL))?;
    for _ in 0..live {
        case.check("ida prefill", ida.alloc(1..=MAX, GFP_KERNEL))?;
    }
    let t = Ktime::ktime_get();
    for _ in 0..PAIRS {
        let id = case.check("ida alloc", ida.alloc(1..=MAX, GFP_KERNEL))?;
        ida.free(id);
    }
    let peer = ns_per(t, PAIRS);
    pr_info!(
        "labtest-bench: alloc+free live={live}: ioasid {ours} ns, ida {peer} ns, ratio {}.{:02} (target <= 1.00)\n",
        ours / peer.max(1),
        (ours * 100 / peer.max(1)) % 100
    );
    Ok(())
}

fn bench_find(case: &Case<'_>, live: u32) -> Result<(), Failed> {
    let (io, set) = ioasid_with_live(case, live)?;
    let mut x = 0x9e37_79b9u32;
    let t = Ktime::ktime_get();
    for _ in 0..FINDS {
        let p = 1 + next(&mut x) % live;
        io.find(set, p).map_err(|e| case.fail(format_args!("find({p}): {e}")))?;
    }
    let ours = ns_per(t, FINDS);

    let xa = case.check("XArray::new", KBox::pin_init(XArray::<KBox<u64>>::new(AllocKind::Alloc1), GFP_KERNEL))?;
    for _ in 0..live {
        let v = case.check("KBox::new", KBox::new(0, GFP_KERNEL).map_err(Into::into))?;
        case.check("xa alloc", xa.lock().alloc(1..=MAX, v, GFP_KERNEL))?;
    }
    let mut x = 0x9e37_79b9u32;
    let mut found = 0u32;
    let t = Ktime::ktime_get();
    for _ in 0..FINDS {
        found += u32::from(xa.contains(1 + next(&mut x) % live));
    }
    let peer = ns_per(t, FINDS);
    if found != FINDS {
        return Err(case.fail(format_args!("xa_load missed {} entries", FINDS - found)));
    }
    pr_info!(
        "labtest-bench: find live={live}: ioasid {ours} ns, xa_load {peer} ns, ratio {}.{:02} (target <= 1.20)\n",
        ours / peer.max(1),
        (ours * 100 / peer.max(1)) % 100
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
