// SPDX-License-Identifier: GPL-2.0
//! Guest test of the Rust SMMUv3 driver (`drivers/smmuv3/linux/`, flavours `release`, `debug`)
//! through the IOMMU API on edu: the stale-translation oracle (remap an IOVA to another page and
//! DMA: QEMU keeps stale IOTLB entries, so a missing TLBI sends the DMA to the old page), bad
//! input answered with an errno and no WARN (overlapping map, map beyond the input address
//! size, unmap of nothing), and a DMA to an unmapped IOVA that must fault (reported by the
//! driver's event-queue handler, naming the device, StreamID and IOVA) without touching memory.
//!
//! The C driver is not tested here: io-pgtable-arm WARNs on an overlapping map by design.
use kernel::{
    alloc::flags::{__GFP_ZERO, GFP_KERNEL},
    device::Core,
    dma::{page_to_phys, CoherentAllocation},
    error::code::EEXIST,
    iommu::{Domain, Prot},
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
};

module! {
    type: SmmuRustApi,
    name: "smmu_rust_api",
    author: "pasid-mdev project",
    description: "Guest test: the Rust SMMUv3 driver through the IOMMU API",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;

const IOVA: u64 = 0x20_0000;
const LEN: usize = 64;

/// Reads the first `LEN` bytes of `page`.
fn head(case: &Case<'_>, page: &Page) -> Result<[u8; LEN], Failed> {
    let mut b = [0u8; LEN];
    // SAFETY: `LEN` writable bytes, inside the page.
    case.check("read_raw", unsafe { page.read_raw(b.as_mut_ptr(), 0, LEN) })?;
    Ok(b)
}

/// A zeroed page.
fn zeroed_page(case: &Case<'_>) -> Result<Page, Failed> {
    case.check(
        "alloc_page",
        Page::alloc_page(GFP_KERNEL | __GFP_ZERO).map_err(Into::into),
    )
}

/// edu writes the first `LEN` bytes of its buffer to `iova`.
fn dma_to(case: &Case<'_>, bar: &edu::Bar, iova: u64) -> Result<(), Failed> {
    edu::dma(
        case,
        bar,
        edu::DMA_BUF,
        iova,
        LEN as u64,
        edu::DMA_START | edu::DMA_TO_RAM,
    )
}

/// Fills edu's DMA buffer with `pattern` through the DMA API (the device's default domain).
fn load_edu(
    case: &Case<'_>,
    dev: &kernel::device::Device,
    bar: &edu::Bar,
    pattern: &[u8; LEN],
) -> Result<(), Failed> {
    let src = case.check(
        "alloc",
        CoherentAllocation::<u8>::alloc(dev, 4096, GFP_KERNEL),
    )?;
    case.check("write_bytes", src.write_bytes(0, pattern))?;
    edu::dma(
        case,
        bar,
        src.dma_handle(),
        edu::DMA_BUF,
        LEN as u64,
        edu::DMA_START,
    )
}

fn cases(suite: &mut Suite, dev: &pci::Device<Core>, bar: &edu::Bar) {
    let d: &kernel::device::Device = dev.as_ref();
    let rw = Prot::READ | Prot::WRITE;
    suite.run("stale_translation_oracle_remap", |case| {
        let pattern: [u8; LEN] = core::array::from_fn(|i| (i as u8) ^ 0xa5);
        load_edu(case, d, bar, &pattern)?;
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        let b = zeroed_page(case)?;
        case.check(
            "map A",
            dom.map(IOVA, page_to_phys(&a), 4096, rw, GFP_KERNEL),
        )?;
        let att = case.check("attach_device", dom.attach_device(d))?;
        dma_to(case, bar, IOVA)?;
        labtest_ensure!(case, head(case, &a)? == pattern, "first DMA missed page A");
        // SAFETY: `LEN` readable bytes from a zeroed array, inside the page.
        case.check("zero A", unsafe {
            a.write_raw([0u8; LEN].as_ptr(), 0, LEN)
        })?;
        let n = dom.unmap(IOVA, 4096);
        labtest_ensure!(case, n == 4096, "unmapped {n}");
        case.check(
            "map B",
            dom.map(IOVA, page_to_phys(&b), 4096, rw, GFP_KERNEL),
        )?;
        dma_to(case, bar, IOVA)?;
        let (ha, hb) = (head(case, &a)?, head(case, &b)?);
        labtest_ensure!(
            case,
            ha == [0u8; LEN],
            "stale translation: the DMA after the remap reached the old page"
        );
        labtest_ensure!(
            case,
            hb == pattern,
            "the DMA after the remap missed the new page: {:?}",
            &hb[..8]
        );
        drop(att);
        Ok(())
    });
    suite.run("bad_input_gets_errno_not_warn", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        let pa = page_to_phys(&a);
        case.check("map", dom.map(IOVA, pa, 4096, rw, GFP_KERNEL))?;
        let r = dom.map(IOVA, pa, 4096, rw, GFP_KERNEL);
        labtest_ensure!(case, r == Err(EEXIST), "overlapping map: {r:?}");
        let r = dom.map(IOVA - 0x1000, pa, 0x2000, rw, GFP_KERNEL);
        labtest_ensure!(case, r.is_err(), "map straddling a mapping accepted");
        labtest_ensure!(
            case,
            dom.iova_to_phys(IOVA - 0x1000).is_none(),
            "failed map left a translation"
        );
        let r = dom.map(1 << 48, pa, 4096, rw, GFP_KERNEL);
        labtest_ensure!(
            case,
            r.is_err(),
            "map beyond the 48-bit input size accepted"
        );
        let n = dom.unmap(IOVA + 0x10_0000, 4096);
        labtest_ensure!(case, n == 0, "unmap of nothing returned {n}");
        labtest_ensure!(case, dom.iova_to_phys(IOVA) == Some(pa), "mapping lost");
        Ok(())
    });
    suite.run("dma_to_unmapped_iova_faults_and_writes_nothing", |case| {
        let pattern: [u8; LEN] = core::array::from_fn(|i| (i as u8) ^ 0x5a);
        load_edu(case, d, bar, &pattern)?;
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        case.check("map", dom.map(IOVA, page_to_phys(&a), 4096, rw, GFP_KERNEL))?;
        let att = case.check("attach_device", dom.attach_device(d))?;
        // One page above the mapping: F_TRANSLATION, reported by the driver.
        dma_to(case, bar, IOVA + 0x1000)?;
        labtest_ensure!(
            case,
            head(case, &a)? == [0u8; LEN],
            "faulting DMA wrote the neighbouring page"
        );
        // The device still works through the mapping afterwards.
        dma_to(case, bar, IOVA)?;
        labtest_ensure!(
            case,
            head(case, &a)? == pattern,
            "DMA after the fault missed"
        );
        drop(att);
        Ok(())
    });
}

edu_suite_module!(SmmuRustApi, driver: "smmu_rust_api", suite: "smmu_rust_api", cases: cases);
