// SPDX-License-Identifier: GPL-2.0
//! Guest test of `kernel::iommu` on QEMU's edu device behind the SMMUv3: reserved regions, a
//! paging domain with map/unmap/iova_to_phys and an MSI cookie, RID attach (double attach
//! refused), an edu DMA translated by our own domain, detach back to the DMA domain, and a PASID
//! attach that must fail on edu (no PASID) instead of 6.12's silent success.
use kernel::{
    alloc::flags::GFP_KERNEL,
    dev_info,
    device::Core,
    dma::{page_to_phys, CoherentAllocation},
    error::code::{EBUSY, EEXIST, EOPNOTSUPP},
    iommu::{self, Capability, Domain, Prot, ResvType},
    labtest::Suite,
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
};

module! {
    type: AbsIommu,
    name: "abs_iommu",
    author: "pasid-mdev project",
    description: "Guest test: IOMMU consumer abstractions on edu",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;

const TEST_IOVA: u64 = 0x10_0000;






fn cases(suite: &mut Suite, dev: &pci::Device<Core>, bar: &edu::Bar) {
    let d: &kernel::device::Device<kernel::device::Bound> = dev.as_ref();
    suite.run("capabilities_and_max_pasids", |case| {
        labtest_ensure!(case, iommu::max_pasids(d) == 0, "edu max_pasids {}", iommu::max_pasids(d));
        dev_info!(
            d,
            "abs_iommu: cache coherency cap {}, noexec cap {}\n",
            iommu::device_iommu_capable(d, Capability::CacheCoherency),
            iommu::device_iommu_capable(d, Capability::NoExec)
        );
        Ok(())
    });
    suite.run("reserved_regions_include_sw_msi", |case| {
        let regions = case.check("reserved_regions", iommu::reserved_regions(d))?;
        let sw = regions.iter().find(|r| r.kind == ResvType::SwMsi);
        labtest_ensure!(case, sw.is_some(), "no SW_MSI region among {} regions", regions.len());
        if let Some(r) = sw {
            labtest_ensure!(case, r.start == 0x800_0000 && r.length == 0x10_0000, "SW_MSI {:#x}+{:#x}", r.start, r.length);
        }
        Ok(())
    });
    suite.run("domain_map_unmap_iova_to_phys", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        let phys = page_to_phys(&page);
        labtest_ensure!(case, dom.iova_to_phys(TEST_IOVA).is_none(), "unmapped IOVA translates");
        case.check("map", dom.map(TEST_IOVA, phys, 4096, Prot::READ | Prot::WRITE, GFP_KERNEL))?;
        let t = dom.iova_to_phys(TEST_IOVA + 0x10);
        labtest_ensure!(case, t == Some(phys + 0x10), "iova_to_phys {t:?} vs {phys:#x}");
        labtest_ensure!(case, dom.map(TEST_IOVA + 0x20_0001, phys, 4096, Prot::READ, GFP_KERNEL).is_err(), "misaligned map accepted");
        labtest_ensure!(case, dom.map(u64::MAX - 0xfff, phys, 0x2000, Prot::READ, GFP_KERNEL).is_err(), "wrapping map accepted");
        let n = dom.unmap(TEST_IOVA, 4096);
        labtest_ensure!(case, n == 4096, "unmapped {n}");
        labtest_ensure!(case, dom.iova_to_phys(TEST_IOVA).is_none(), "still mapped after unmap");
        Ok(())
    });
    suite.run("msi_cookie_once", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        case.check("get_msi_cookie", dom.get_msi_cookie(0x800_0000))?;
        let again = dom.get_msi_cookie(0x800_0000);
        labtest_ensure!(case, again == Err(EEXIST), "second cookie: {again:?}");
        Ok(())
    });
    suite.run("attach_dma_through_own_domain_and_double_attach", |case| {
        // Fill edu's buffer through the DMA API (default domain) first.
        let src = case.check("alloc", CoherentAllocation::<u8>::alloc_coherent(d, 4096, GFP_KERNEL))?;
        let pattern: [u8; 64] = core::array::from_fn(|i| (i as u8) ^ 0x3c);
        case.check("write_bytes", src.write_bytes(0, &pattern))?;
        edu::dma(case, bar, src.dma_handle(), edu::DMA_BUF, 64, edu::DMA_START)?;

        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        case.check("map", dom.map(TEST_IOVA, page_to_phys(&page), 4096, Prot::READ | Prot::WRITE, GFP_KERNEL))?;
        let att = case.check("attach_device", dom.attach_device(d))?;
        let again = dom.attach_device(d);
        labtest_ensure!(case, again.as_ref().err() == Some(&EBUSY), "double attach: {:?}", again.as_ref().err());
        let other = case.check("new_paging", Domain::new_paging(d))?;
        let r = other.attach_device(d);
        labtest_ensure!(case, r.as_ref().err() == Some(&EBUSY), "attach over an attached domain: {:?}", r.as_ref().err());
        edu::dma(case, bar, edu::DMA_BUF, TEST_IOVA, 64, edu::DMA_START | edu::DMA_TO_RAM)?;
        let mut back = [0u8; 64];
        // SAFETY: 64 writable bytes, inside the page.
        case.check("read_raw", unsafe { page.read_raw(back.as_mut_ptr(), 0, 64) })?;
        labtest_ensure!(case, back == pattern, "DMA through our domain gave {:?}", &back[..8]);
        drop(att);
        // Back on the DMA domain: the DMA API works again.
        edu::dma(case, bar, edu::DMA_BUF, src.dma_handle() + 1024, 64, edu::DMA_START | edu::DMA_TO_RAM)?;
        let mut back2 = [0u8; 64];
        case.check("read_bytes", src.read_bytes(1024, &mut back2))?;
        labtest_ensure!(case, back2 == pattern, "DMA after detach gave {:?}", &back2[..8]);
        // The domain can be attached again after the detach.
        let att2 = case.check("re-attach", dom.attach_device(d))?;
        drop(att2);
        let n = dom.unmap(TEST_IOVA, 4096);
        labtest_ensure!(case, n == 4096, "unmapped {n}");
        Ok(())
    });
    suite.run("pasid_attach_refused_without_pasid_support", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let r = dom.attach_device_pasid(d, 1);
        labtest_ensure!(case, r.as_ref().err() == Some(&EOPNOTSUPP), "PASID attach on edu: {:?}", r.as_ref().err());
        Ok(())
    });
}

edu_suite_module!(AbsIommu, driver: "abs_iommu", suite: "abs_iommu", cases: cases);
