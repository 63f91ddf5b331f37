// SPDX-License-Identifier: GPL-2.0
//! Benchmark of the SMMUv3 driver under the IOMMU and DMA APIs, the same module on the C
//! `arm-smmu-v3` (flavour `c-smmu`) and on the Rust driver (flavour `release`): compare
//! figures from alternating boots of the two kernels (docs/rust-smmuv3.md, "Figures").
//!
//! - `iommu_map` / `iommu_unmap` of 4 KiB x 1, x 16 and x 512 (one call each; the IOVA and the
//!   physical address are 4 KiB- but not 2 MiB-aligned, so x 512 is 512 pages, not a block)
//!   and of one 2 MiB block, in a paging domain of edu attached to nothing (no DMA happens:
//!   the physical range is any RAM). Every unmap is strict: its TLBI and CMD_SYNC are inside
//!   the figure.
//! - `dma_map_page` / `dma_unmap_page` of 4 KiB (a page allocated per round, freed with the
//!   unmap) and of 64 KiB (one physically contiguous block, kept) for edu (its default DMA
//!   domain, strict on arm64: the unmap's invalidation is inside the figure).
//!
//! Each figure is the median over [`ROUNDS`] rounds after one untimed warm-up round, printed
//! as a `labtest-bench: smmu_bench:` line of `key=ns` pairs.
//!
//! Then the commands and CMD_SYNCs each of these unmaps (and maps) sends, counted from the
//! SMMU's command queue by `common/cmdq.rs`, independently of the driver (the same counter on
//! both); each count is repeated until two in a row agree. A `labtest-bench: smmu_bench:
//! commands` line of `<op>_cmds=` / `<op>_syncs=` pairs and a line naming the opcodes.
//! `tools/lab/compare-drivers.sh` boots both kernels alternately and prints the medians and
//! the Rust/C ratios of all these figures.
use core::fmt::Write;
use kernel::{
    alloc::flags::GFP_KERNEL,
    device::Core,
    dma::{page_to_phys, BlockMapping, DataDirection, PageMapping},
    dma_pages::ZeroedPages,
    iommu::{Domain, Prot},
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
    time::Ktime,
};

module! {
    type: SmmuBench,
    name: "smmu_bench",
    author: "pasid-mdev project",
    description: "Benchmark: iommu_map/unmap and dma_map/unmap_page through the SMMUv3 driver",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;
#[path = "common/timing.rs"]
mod timing;
use timing::{median, since};
#[path = "common/cmdq.rs"]
mod cmdq;
use cmdq::{Cmdq, CountError, Counts};

const ROUNDS: usize = 15;
const SZ_4K: usize = 4096;
const SZ_64K: usize = 64 << 10;
const SZ_2M: u64 = 2 << 20;
/// IOVA of every mapping: 2 MiB-aligned (+ 4 KiB for the page runs).
const IOVA: u64 = 0x4000_0000;

/// Times `map` (of what `prepare` made, untimed) then `unmap` of what `map` returned,
/// [`ROUNDS`] times after one untimed warm-up round (it warms the page tables and caches);
/// (map ns, unmap ns) medians.
fn time_pair<P, T>(
    mut prepare: impl FnMut() -> Result<P, Failed>,
    mut map: impl FnMut(P) -> Result<T, Failed>,
    mut unmap: impl FnMut(T) -> Result<(), Failed>,
) -> Result<(u64, u64), Failed> {
    let (mut m, mut u) = ([0u64; ROUNDS], [0u64; ROUNDS]);
    for i in 0..=ROUNDS {
        let p = prepare()?;
        let t0 = Ktime::ktime_get();
        let x = map(p)?;
        let tm = since(t0);
        let t1 = Ktime::ktime_get();
        unmap(x)?;
        let tu = since(t1);
        if i > 0 {
            m[i - 1] = tm;
            u[i - 1] = tu;
        }
    }
    Ok((median(&mut m), median(&mut u)))
}

/// Times `iommu_map` then `iommu_unmap` of `size` bytes at `iova` -> `pa`; (map ns, unmap ns)
/// medians.
fn time_map_unmap(case: &Case<'_>, dom: &Domain, iova: u64, pa: u64, size: usize) -> Result<(u64, u64), Failed> {
    time_pair(
        || Ok(()),
        |()| case.check("map", dom.map(iova, pa, size, Prot::READ | Prot::WRITE, GFP_KERNEL)),
        |()| {
            let n = dom.unmap(iova, size);
            labtest_ensure!(case, n == size, "unmapped {n} of {size} bytes");
            Ok(())
        },
    )
}

fn cases(suite: &mut Suite, dev: &pci::Device<Core>, _bar: &edu::Bar) {
    let d: &kernel::device::Device = dev.as_ref();
    suite.run("iommu_and_dma_api_timed", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        // Any RAM: the domain is attached to nothing, no DMA reaches it.
        let pa = page_to_phys(&page) & !(SZ_2M - 1);
        let page4k = SZ_4K as u64;
        let (m1, u1) = time_map_unmap(case, &dom, IOVA + page4k, pa + page4k, SZ_4K)?;
        let (m16, u16) = time_map_unmap(case, &dom, IOVA + page4k, pa + page4k, 16 * SZ_4K)?;
        let (m512, u512) = time_map_unmap(case, &dom, IOVA + page4k, pa + page4k, 512 * SZ_4K)?;
        let (m2m, u2m) = time_map_unmap(case, &dom, IOVA, pa, SZ_2M as usize)?;

        // Dropping a PageMapping unmaps, then frees the page (both timed); the 64 KiB block
        // is kept.
        let (dm4, du4) = time_pair(
            || case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into)),
            |p| case.check("dma_map_page", PageMapping::new(d, p, 0, SZ_4K, DataDirection::ToDevice)),
            |m| {
                drop(m);
                Ok(())
            },
        )?;
        let block = case.check("alloc 64 KiB", ZeroedPages::alloc(SZ_64K, SZ_64K, GFP_KERNEL))?;
        let (dm64, du64) = time_pair(
            || Ok(()),
            |()| case.check("dma_map_page 64 KiB", BlockMapping::new(d, &block, SZ_64K, DataDirection::ToDevice)),
            |m| {
                drop(m);
                Ok(())
            },
        )?;
        pr_info!(
            "labtest-bench: smmu_bench: driver={} rounds={ROUNDS} iommu_map_4k_ns={m1} iommu_unmap_4k_ns={u1} iommu_map_16x4k_ns={m16} iommu_unmap_16x4k_ns={u16} iommu_map_512x4k_ns={m512} iommu_unmap_512x4k_ns={u512} iommu_map_2m_ns={m2m} iommu_unmap_2m_ns={u2m} dma_map_page_4k_ns={} dma_unmap_page_4k_free_ns={} dma_map_page_64k_ns={} dma_unmap_page_64k_ns={} (medians)\n",
            driver_key(),
            dm4,
            du4,
            dm64,
            du64,
        );
        Ok(())
    });

    suite.run("commands_per_unmap_counted", |case| commands_per_unmap_counted(case, d));
}

/// Counts the commands and CMD_SYNCs of each unmap (and of the 2 MiB and 64 KiB maps) and
/// prints them.
#[inline(never)]
fn commands_per_unmap_counted(case: &Case<'_>, d: &kernel::device::Device) -> Result<(), Failed> {
    let q = Cmdq::open().map_err(|e| failed(case, e))?;
    let dom = case.check("new_paging", Domain::new_paging(d))?;
    let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
    let pa = page_to_phys(&page) & !(SZ_2M - 1);
    let page4k = SZ_4K as u64;
    let rw = Prot::READ | Prot::WRITE;
    // (key, what the line says, counts)
    let mut rows: KVec<(&str, Counts)> = KVec::new();
    for (key, iova, pa, size) in [
        ("iommu_unmap_4k", IOVA + page4k, pa + page4k, SZ_4K),
        ("iommu_unmap_16x4k", IOVA + page4k, pa + page4k, 16 * SZ_4K),
        ("iommu_unmap_512x4k", IOVA + page4k, pa + page4k, 512 * SZ_4K),
        ("iommu_unmap_2m", IOVA, pa, SZ_2M as usize),
    ] {
        let (c, _) = q
            .count_stable(|| {
                dom.map(iova, pa, size, rw, GFP_KERNEL).map_err(|e| CountError::Op("iommu_map", e))?;
                let (c, n) = q.count(|| dom.unmap(iova, size))?;
                if n != size {
                    return Err(CountError::Op("iommu_unmap (unmapped another size)", EINVAL));
                }
                Ok(c)
            })
            .map_err(|e| failed(case, e))?;
        case.check("rows", rows.push((key, c), GFP_KERNEL).map_err(Into::into))?;
    }
    let (c, _) = q
        .count_stable(|| {
            let (c, m) = q.count(|| dom.map(IOVA, pa, SZ_2M as usize, rw, GFP_KERNEL))?;
            m.map_err(|e| CountError::Op("iommu_map", e))?;
            dom.unmap(IOVA, SZ_2M as usize);
            Ok(c)
        })
        .map_err(|e| failed(case, e))?;
    case.check("rows", rows.push(("iommu_map_2m", c), GFP_KERNEL).map_err(Into::into))?;
    let (c, _) = q
        .count_stable(|| {
            let p = Page::alloc_page(GFP_KERNEL).map_err(|_| CountError::Op("alloc_page", ENOMEM))?;
            let m = PageMapping::new(d, p, 0, SZ_4K, DataDirection::ToDevice)
                .map_err(|e| CountError::Op("dma_map_page", e))?;
            Ok(q.count(|| drop(m))?.0)
        })
        .map_err(|e| failed(case, e))?;
    case.check("rows", rows.push(("dma_unmap_page_4k", c), GFP_KERNEL).map_err(Into::into))?;
    let block = case.check("alloc 64 KiB", ZeroedPages::alloc(SZ_64K, SZ_64K, GFP_KERNEL))?;
    for unmap in [false, true] {
        let (c, _) = q
            .count_stable(|| {
                let (c, m) = q.count(|| BlockMapping::new(d, &block, SZ_64K, DataDirection::ToDevice))?;
                let m = m.map_err(|e| CountError::Op("dma_map_page 64 KiB", e))?;
                let (cu, ()) = q.count(|| drop(m))?;
                Ok(if unmap { cu } else { c })
            })
            .map_err(|e| failed(case, e))?;
        let key = if unmap { "dma_unmap_page_64k" } else { "dma_map_page_64k" };
        case.check("rows", rows.push((key, c), GFP_KERNEL).map_err(Into::into))?;
    }
    let mut line = KVec::<u8>::new();
    let mut kinds = KVec::<u8>::new();
    for (key, c) in rows.iter() {
        let _ = write!(Buf(&mut line), " {key}_cmds={} {key}_syncs={}", c.commands(), c.syncs());
        let _ = write!(Buf(&mut kinds), "; {key}: {c}");
    }
    pr_info!(
        "labtest-bench: smmu_bench: commands driver={}{} (counted from the command queue)\n",
        driver_key(),
        core::str::from_utf8(&line).unwrap_or("?"),
    );
    pr_info!(
        "labtest-bench: smmu_bench: command kinds driver={}{}\n",
        driver_key(),
        core::str::from_utf8(&kinds).unwrap_or("?"),
    );
    Ok(())
}

/// `c` (C arm-smmu-v3) or `rust`: the `driver=` of the figure lines, which
/// `tools/lab/compare-drivers.sh` groups by.
fn driver_key() -> &'static str {
    if cmdq::C_DRIVER {
        "c"
    } else {
        "rust"
    }
}

fn failed(case: &Case<'_>, e: CountError) -> Failed {
    case.fail(format_args!("{e}"))
}

/// `core::fmt::Write` into a `KVec<u8>` (what does not fit is dropped).
struct Buf<'a>(&'a mut KVec<u8>);

impl core::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

edu_suite_module!(SmmuBench, driver: "smmu_bench", suite: "smmu_bench", cases: cases);
