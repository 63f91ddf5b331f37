// SPDX-License-Identifier: GPL-2.0
//! Lab smoke module: proves that a project module builds through the `rust/` overlay, uses a
//! binding that Linux 6.12 does not have upstream (`kernel::xarray`) and reports results to the
//! guest runner through `kernel::labtest`.
use kernel::{
    alloc::flags::GFP_KERNEL,
    error::code::{EBUSY, EINVAL},
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    prelude::*,
    xarray::{AllocKind, XArray},
};

module! {
    type: LabSmoke,
    name: "lab_smoke",
    author: "pasid-mdev project",
    description: "Lab smoke test: overlay bindings and test reporting",
    license: "GPL",
}

struct LabSmoke;

type Xa = Pin<KBox<XArray<KBox<u64>>>>;

fn new_xa(case: &Case<'_>, kind: AllocKind) -> Result<Xa, Failed> {
    case.check("XArray::new", KBox::pin_init(XArray::new(kind), GFP_KERNEL))
}

/// Boxes `v` (a sleeping allocation, so before the lock is taken) and allocates an index for it.
fn alloc_in(xa: &Xa, range: core::ops::RangeInclusive<u32>, v: u64) -> Result<u32> {
    let entry = KBox::new(v, GFP_KERNEL)?;
    xa.lock().alloc(range, entry, GFP_KERNEL)
}

fn store_at(xa: &Xa, index: u32, v: u64) -> Result<Option<KBox<u64>>> {
    let entry = KBox::new(v, GFP_KERNEL)?;
    xa.lock().store(index, entry, GFP_KERNEL)
}

fn xarray_cases(suite: &mut Suite) {
    suite.run("xarray_alloc_lowest_free_in_range", |case| {
        let xa = new_xa(case, AllocKind::Alloc)?;
        for want in 5..8u32 {
            let got = case.check("alloc", alloc_in(&xa, 5..=100, want.into()))?;
            labtest_ensure!(case, got == want, "alloc returned {got}, expected {want}");
        }
        drop(xa.lock().remove(6));
        let got = case.check("alloc", alloc_in(&xa, 5..=100, 60))?;
        labtest_ensure!(case, got == 6, "freed index 6 not reused (got {got})");
        labtest_ensure!(case, xa.lock().get(6).copied() == Some(60), "get(6) wrong");
        Ok(())
    });
    suite.run("xarray_alloc1_skips_zero", |case| {
        let xa = new_xa(case, AllocKind::Alloc1)?;
        let got = case.check("alloc", alloc_in(&xa, 0..=3, 1))?;
        labtest_ensure!(case, got == 1, "ALLOC1 array handed out {got}");
        Ok(())
    });
    suite.run("xarray_full_range_is_ebusy", |case| {
        let xa = new_xa(case, AllocKind::Alloc)?;
        for _ in 0..2 {
            case.check("alloc", alloc_in(&xa, 10..=11, 0))?;
        }
        let r = alloc_in(&xa, 10..=11, 0);
        labtest_ensure!(case, r == Err(EBUSY), "third alloc in a 2-slot range: {r:?}");
        #[allow(clippy::reversed_empty_ranges)]
        let r = alloc_in(&xa, 11..=10, 0);
        labtest_ensure!(case, r == Err(EINVAL), "empty range: {r:?}");
        Ok(())
    });
    suite.run("xarray_store_replace_and_find", |case| {
        let xa = new_xa(case, AllocKind::Alloc)?;
        let old = case.check("store", store_at(&xa, 40, 1))?;
        labtest_ensure!(case, old.is_none(), "empty slot returned an old entry");
        let old = case.check("store", store_at(&xa, 40, 2))?;
        labtest_ensure!(case, old.as_deref() == Some(&1), "replace returned {old:?}");
        let mut g = xa.lock();
        let found = g.find_from(3).map(|(i, v)| (i, *v));
        labtest_ensure!(case, found == Some((40, 2)), "find_from(3) = {found:?}");
        labtest_ensure!(case, g.find_from(41).is_none(), "find_from past the last entry");
        labtest_ensure!(case, g.remove(40).as_deref() == Some(&2), "remove(40)");
        labtest_ensure!(case, g.remove(40).is_none(), "second remove(40) found something");
        Ok(())
    });
    suite.run("xarray_drop_frees_entries", |case| {
        // Leaves entries behind on purpose: dropping the array must free them (kmemleak checks
        // this on the debug kernel).
        let xa = new_xa(case, AllocKind::Alloc)?;
        for i in 0..64 {
            case.check("alloc", alloc_in(&xa, 0..=u32::MAX, i))?;
        }
        Ok(())
    });
}

impl kernel::Module for LabSmoke {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("lab_smoke");
        xarray_cases(&mut suite);
        suite.finish();
        Ok(LabSmoke)
    }
}
