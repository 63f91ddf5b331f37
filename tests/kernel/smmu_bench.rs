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
//! - `dma_map_page` / `dma_unmap_page` of 4 KiB for edu (its default DMA domain, strict on
//!   arm64: the unmap's invalidation is inside the figure).
//!
//! Each figure is the median over [`ROUNDS`] rounds after one untimed warm-up round, printed
//! as a `labtest-bench: smmu_bench:` line of `key=ns` pairs.
use kernel::{
    alloc::flags::GFP_KERNEL,
    devres::Devres,
    dma::{page_to_phys, Direction, PageMapping},
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

const ROUNDS: usize = 15;
const SZ_4K: usize = 4096;
const SZ_2M: u64 = 2 << 20;
/// IOVA of every mapping: 2 MiB-aligned (+ 4 KiB for the page runs).
const IOVA: u64 = 0x4000_0000;

/// Times `iommu_map` then `iommu_unmap` of `size` bytes at `iova` -> `pa`; (map ns, unmap ns)
/// medians.
fn time_map_unmap(case: &Case<'_>, dom: &Domain, iova: u64, pa: u64, size: usize) -> Result<(u64, u64), Failed> {
    let rw = Prot::READ | Prot::WRITE;
    let (mut map, mut unmap) = ([0u64; ROUNDS], [0u64; ROUNDS]);
    for i in 0..=ROUNDS {
        let t0 = Ktime::ktime_get();
        case.check("map", dom.map(iova, pa, size, rw, GFP_KERNEL))?;
        let m = since(t0);
        let t1 = Ktime::ktime_get();
        let n = dom.unmap(iova, size);
        let u = since(t1);
        labtest_ensure!(case, n == size, "unmapped {n} of {size} bytes");
        // Round 0 warms the page tables and caches: not counted.
        if i > 0 {
            map[i - 1] = m;
            unmap[i - 1] = u;
        }
    }
    Ok((median(&mut map), median(&mut unmap)))
}

fn cases(suite: &mut Suite, dev: &pci::Device<pci::Core>, _bar: &Devres<pci::Bar>) {
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

        let (mut dmap, mut dunmap) = ([0u64; ROUNDS], [0u64; ROUNDS]);
        for i in 0..=ROUNDS {
            let p = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
            let t0 = Ktime::ktime_get();
            let m = case.check("dma_map_page", PageMapping::new(d, p, 0, SZ_4K, Direction::ToDevice))?;
            let tm = since(t0);
            // Dropping unmaps, then frees the page: the unmap is timed alone below.
            let t1 = Ktime::ktime_get();
            drop(m);
            let tu = since(t1);
            if i > 0 {
                dmap[i - 1] = tm;
                dunmap[i - 1] = tu;
            }
        }
        pr_info!(
            "labtest-bench: smmu_bench: rounds={ROUNDS} iommu_map_4k_ns={m1} iommu_unmap_4k_ns={u1} iommu_map_16x4k_ns={m16} iommu_unmap_16x4k_ns={u16} iommu_map_512x4k_ns={m512} iommu_unmap_512x4k_ns={u512} iommu_map_2m_ns={m2m} iommu_unmap_2m_ns={u2m} dma_map_page_4k_ns={} dma_unmap_page_4k_free_ns={} (medians)\n",
            median(&mut dmap),
            median(&mut dunmap),
        );
        Ok(())
    });
}

edu_suite_module!(SmmuBench, driver: "smmu_bench", suite: "smmu_bench", cases: cases);
