// SPDX-License-Identifier: GPL-2.0
//! Guest test of the command counter (`common/cmdq.rs`) and of what the SMMUv3 driver sends:
//! the counter reads the SMMU's command queue itself, so the same module checks the C
//! `arm-smmu-v3` and the project's Rust driver against what each is documented to send.
//!
//! - `finds_the_command_queue`: the SMMU from the device tree, its queue in RAM, PROD/CONS sane.
//! - `iommu_map_sends_no_command`: neither driver invalidates anything on map (an SMMU never
//!   caches an invalid entry).
//! - `iommu_unmap_4k_per_driver`: one strict `iommu_unmap` of a lone 4 KiB page sends exactly
//!   [`unmap_4k_expected`], 300 times in a row (on the Rust driver's 256-entry queue some of
//!   the windows cross the ring's end: counted across it).
//! - `counter_sees_other_commands`: commands issued by someone else inside the window are seen
//!   and [`Cmdq::count_stable`] measures again until two windows agree; endless interference
//!   is reported, not averaged away.
//! - `counter_refuses_a_lapped_span`: the PROD arithmetic across the ring's end and its refusal
//!   of spans longer than the queue.
use kernel::{
    alloc::flags::GFP_KERNEL,
    device::Core,
    dma::page_to_phys,
    iommu::{Domain, Prot},
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
};

module! {
    type: SmmuCmdq,
    name: "smmu_cmdq",
    author: "pasid-mdev project",
    description: "Guest test: SMMUv3 commands counted from the command queue, per driver",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;
#[path = "common/cmdq.rs"]
mod cmdq;
use cmdq::{op, span, Cmdq, CountError, Counts};

const SZ_4K: usize = 4096;
/// IOVAs of the test mappings (in a domain attached to nothing: no DMA reaches them).
const IOVA: u64 = 0x4000_1000;
const IOVA2: u64 = 0x4010_0000;

/// What one strict `iommu_unmap` of a lone 4 KiB page sends on the C `arm-smmu-v3` (6.12):
/// `arm_smmu_iotlb_sync` -> `arm_smmu_tlb_inv_range_domain`: one `TLBI_NH_VA` for the page (a
/// range command of one page with RIL, which QEMU has; not `TLBI_EL2_VA`: QEMU's SMMU has no
/// `IDR0.HYP`), submitted as a batch that ends in a CMD_SYNC (`arm_smmu_cmdq_batch_submit`);
/// no `ATC_INV` (no ATS master).
const C_UNMAP_4K: &[(u8, u32)] = &[(op::TLBI_NH_VA, 1), (op::CMD_SYNC, 1)];
/// The same on the Rust driver: `S1Domain::unmap` issues the gathered leaf TLBI and one
/// CMD_SYNC (docs/rust-smmuv3.md, "Decision 3" and "Figures").
const RUST_UNMAP_4K: &[(u8, u32)] = &[(op::CMD_SYNC, 1), (op::TLBI_NH_VA, 1)];

/// The documented commands of a 4 KiB unmap for the driver this kernel has.
fn unmap_4k_expected() -> &'static [(u8, u32)] {
    if cmdq::C_DRIVER {
        C_UNMAP_4K
    } else {
        RUST_UNMAP_4K
    }
}

/// `case.fail` with a counter error.
fn failed(case: &Case<'_>, e: CountError) -> Failed {
    case.fail(format_args!("{e}"))
}

/// `iommu_map` of 4 KiB, outside any counting window.
fn map(dom: &Domain, iova: u64, pa: u64) -> Result<(), CountError> {
    dom.map(iova, pa, SZ_4K, Prot::READ | Prot::WRITE, GFP_KERNEL)
        .map_err(|e| CountError::Op("iommu_map of 4 KiB", e))
}

/// `iommu_unmap` of 4 KiB; `EINVAL` if it unmapped anything else.
fn unmap(dom: &Domain, iova: u64) -> Result<(), CountError> {
    match dom.unmap(iova, SZ_4K) {
        SZ_4K => Ok(()),
        _ => Err(CountError::Op("iommu_unmap of 4 KiB (unmapped another size)", EINVAL)),
    }
}

/// Maps `iova` -> `pa` (4 KiB) outside the window, then counts `iommu_unmap` of it.
fn count_unmap(q: &Cmdq, dom: &Domain, iova: u64, pa: u64) -> Result<Counts, CountError> {
    map(dom, iova, pa)?;
    let (c, r) = q.count(|| unmap(dom, iova))?;
    r.map(|()| c)
}

fn cases(suite: &mut Suite, dev: &pci::Device<Core>, _bar: &edu::Bar) {
    let d: &kernel::device::Device = dev.as_ref();
    let mut q: Option<Cmdq> = None;
    suite.run("finds_the_command_queue", |case| {
        let c = Cmdq::open().map_err(|e| failed(case, e))?;
        let p = c.prod().map_err(|e| failed(case, e))?;
        let (regs, queue) = c.where_();
        pr_info!(
            "driver {}: SMMU registers at {regs:#x}, command queue of {} entries at {queue:#x}, PROD {p:#x}\n",
            cmdq::DRIVER,
            c.size()
        );
        labtest_ensure!(case, c.size() >= 2, "a queue of {} entries", c.size());
        q = Some(c);
        Ok(())
    });
    let Some(q) = q else { return };
    let dom = match Domain::new_paging(d) {
        Ok(dom) => dom,
        Err(e) => {
            suite.run("paging_domain", |case| Err(case.fail(format_args!("new_paging: {e:?}"))));
            return;
        }
    };
    let page = match Page::alloc_page(GFP_KERNEL) {
        Ok(p) => p,
        Err(_) => {
            suite.run("alloc_page", |case| Err(case.fail(format_args!("no page"))));
            return;
        }
    };
    // Any RAM: the domain is attached to nothing.
    let pa = page_to_phys(&page);

    suite.run("iommu_map_sends_no_command", |case| iommu_map_sends_no_command(case, &q, &dom, pa));

    suite.run("iommu_unmap_4k_per_driver", |case| iommu_unmap_4k_per_driver(case, &q, &dom, pa));

    suite.run("counter_sees_other_commands", |case| counter_sees_other_commands(case, &q, &dom, pa));

    suite.run("counter_refuses_a_lapped_span", counter_refuses_a_lapped_span);
}

#[inline(never)]
fn iommu_map_sends_no_command(case: &Case<'_>, q: &Cmdq, dom: &Domain, pa: u64) -> Result<(), Failed> {
    let (c, r) = q.count(|| map(dom, IOVA, pa)).map_err(|e| failed(case, e))?;
    r.and_then(|()| unmap(dom, IOVA)).map_err(|e| failed(case, e))?;
    labtest_ensure!(case, c.is(&[]), "{}: iommu_map of 4 KiB sent {c}, want none", cmdq::DRIVER);
    Ok(())
}

#[inline(never)]
fn iommu_unmap_4k_per_driver(case: &Case<'_>, q: &Cmdq, dom: &Domain, pa: u64) -> Result<(), Failed> {
    let want = unmap_4k_expected();
    let (mut crossed, mut retried) = (0u32, 0u32);
    for round in 0..300 {
        let p0 = q.prod().map_err(|e| failed(case, e))?;
        let (c, tries) = q
            .count_stable(|| count_unmap(q, dom, IOVA, pa))
            .map_err(|e| failed(case, e))?;
        let p1 = q.prod().map_err(|e| failed(case, e))?;
        crossed += u32::from(q.crosses_end(p0, p1));
        retried += u32::from(tries > 2);
        labtest_ensure!(
            case,
            c.is(want),
            "{}: round {round}: iommu_unmap of one 4 KiB page sent {c}, documented: {}",
            cmdq::DRIVER,
            Counts::of(want)
        );
    }
    pr_info!(
        "{}: iommu_unmap of 4 KiB sent {} in 300 of 300 rounds; {crossed} rounds across the queue's end, {retried} measured more than twice\n",
        cmdq::DRIVER,
        Counts::of(want)
    );
    Ok(())
}

#[inline(never)]
fn counter_sees_other_commands(case: &Case<'_>, q: &Cmdq, dom: &Domain, pa: u64) -> Result<(), Failed> {
    // Someone else's command in the first window: an unmap of another mapping issued
    // inside it. The counter sees both unmaps, and count_stable measures until two clean
    // windows agree.
    let mut first: Option<Counts> = None;
    let (c, tries) = q
        .count_stable(|| {
            let dirty = first.is_none();
            if dirty {
                map(dom, IOVA2, pa)?;
            }
            map(dom, IOVA, pa)?;
            let (c, r) = q.count(|| {
                let r = unmap(dom, IOVA);
                if dirty { r.and_then(|()| unmap(dom, IOVA2)) } else { r }
            })?;
            r?;
            first.get_or_insert(c);
            Ok(c)
        })
        .map_err(|e| failed(case, e))?;
    let want = unmap_4k_expected();
    let dirty = first.unwrap_or_default();
    let mut twice = Counts::of(want);
    twice.add_ops(want);
    labtest_ensure!(case, dirty == twice, "the window with another unmap in it counted {dirty}, want {twice}");
    labtest_ensure!(
        case,
        c.is(want) && tries == 3,
        "count_stable gave {c} after {tries} measurements, want {} after 3",
        Counts::of(want)
    );

    // Interference in every window (each one unmaps one more page than the last): the
    // counter must give up with a message, not return a number.
    let mut k = 0u64;
    let r = q.count_stable(|| {
        k += 1;
        let iovas = (0..k).map(|i| IOVA2 + i * SZ_4K as u64);
        for iova in iovas.clone() {
            map(dom, iova, pa)?;
        }
        let (c, r) = q.count(|| iovas.clone().try_for_each(|iova| unmap(dom, iova)))?;
        r.map(|()| c)
    });
    match r {
        Err(e @ CountError::Unstable { .. }) => {
            pr_info!("endless interference reported as: {e}\n");
            Ok(())
        }
        Err(e) => Err(failed(case, e)),
        Ok((c, n)) => Err(case.fail(format_args!("windows that all differ gave {c} after {n} measurements"))),
    }
}

#[inline(never)]
fn counter_refuses_a_lapped_span(case: &Case<'_>) -> Result<(), Failed> {
    // A queue of 2^8 entries: PROD = index (bits 7:0) + wrap bit (bit 8).
    let ok = |p0, p1| span(p0, p1, 8).ok();
    labtest_ensure!(case, ok(0x10, 0x30) == Some(0x20), "plain span");
    labtest_ensure!(case, ok(0xf0, 0x110) == Some(0x20), "across the ring's end (wrap bit 0 -> 1)");
    labtest_ensure!(case, ok(0x1f0, 0x010) == Some(0x20), "across the ring's end (wrap bit 1 -> 0)");
    labtest_ensure!(case, ok(0x10, 0x110) == Some(0x100), "exactly one queue length");
    labtest_ensure!(case, ok(0x8000_0010, 0x30) == Some(0x20), "bits above the wrap bit are ignored");
    match span(0x10, 0x1f0, 8) {
        Err(e @ CountError::Lapped { span: 0x1e0, size: 0x100, .. }) => {
            pr_info!("a lapped span is refused as: {e}\n");
        }
        Err(e) => return Err(failed(case, e)),
        Ok(n) => return Err(case.fail(format_args!("480 entries in a 256-entry queue counted as {n}"))),
    }
    Ok(())
}

edu_suite_module!(SmmuCmdq, driver: "smmu_cmdq", suite: "smmu_cmdq", cases: cases);
