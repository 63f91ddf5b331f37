// SPDX-License-Identifier: GPL-2.0
//! Guest test of `kernel::auxdomain` (the portable aux-domain policy over 6.12's IOMMU API) on
//! QEMU's edu behind the SMMUv3: PASID enabling must be refused (edu has no PASID capability,
//! QEMU's SMMUv3 no SubstreamIDs) rather than pretend; everything that does not need PASIDs is
//! exercised for real: the MSI window as a reserved region, maps refused in it, the checks that
//! keep user input away from io-pgtable WARNs, the requester-ID attachment with an edu DMA
//! through the domain, doorbell bindings (refcounts, routing, affinity, teardown of forgotten
//! ones) and the coherency switch.
use kernel::{
    alloc::flags::GFP_KERNEL,
    auxdomain::{AuxDevice, AuxDomain, MsiSource, MsiWindow, Prot, ReservedKind},
    device::Core,
    dma::{page_to_phys, CoherentAllocation},
    error::code::{EADDRINUSE, EBUSY, EEXIST, EINVAL, ENOENT, EOPNOTSUPP, ERANGE},
    labtest::Suite,
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
};

module! {
    type: AuxdomainTest,
    name: "auxdomain_test",
    author: "pasid-mdev project",
    description: "Guest test: auxiliary domains over the IOMMU API on edu",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;

const IOVA: u64 = 0x10_0000;
/// Doorbell addresses (GITS_TRANSLATER of the virt board's ITS, and a second page); only
/// mapped, never written.
const DOORBELL_A: u64 = 0x0809_0040;
const DOORBELL_B: u64 = 0x080a_0040;




fn err_of<T>(r: &Result<T>) -> Option<Error> {
    r.as_ref().err().copied()
}



fn cases(suite: &mut Suite, pdev: &pci::Device<Core>, bar: &edu::Bar) {
    let d: &kernel::device::Device<kernel::device::Bound> = pdev.as_ref();
    let rw = Prot::READ | Prot::WRITE;
    suite.run("pasid_enable_refused_on_qemu", |case| {
        let r = AuxDevice::enable(pdev, 1, (1 << 20) - 1);
        labtest_ensure!(case, err_of(&r) == Some(EOPNOTSUPP), "enable: {:?}", err_of(&r));
        // A device without PASIDs still takes a requester-ID domain, never a PASID one.
        let adev = AuxDevice::requester_id_only(pdev);
        labtest_ensure!(case, adev.pasid_range().is_none(), "range {:?}", adev.pasid_range());
        let mut dom = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        let r = dom.attach(&adev, 1);
        labtest_ensure!(case, err_of(&r) == Some(EOPNOTSUPP), "PASID attach: {:?}", err_of(&r));
        labtest_ensure!(case, dom.attachments() == 0, "attachments {}", dom.attachments());
        Ok(())
    });
    suite.run("window_is_reserved_and_bad_ranges_are_refused", |case| {
        let w = MsiWindow::default();
        let mut dom = case.check("new", AuxDomain::new(d, w))?;
        let [r] = dom.reserved_regions();
        labtest_ensure!(case, r.kind == ReservedKind::SwMsi && r.start == w.base && r.length == w.size, "{r:?}");
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        let phys = page_to_phys(&page);
        let g = dom.granule();
        labtest_ensure!(case, g == 4096, "granule {g:#x}");
        for (iova, size, want) in [
            (w.base, g, EADDRINUSE),
            (w.base - g, 2 * g, EADDRINUSE),
            (IOVA + 1, g, EINVAL),
            (IOVA, 0, EINVAL),
            (IOVA, g + 1, EINVAL),
            (1u64 << 48, g, ERANGE),
            (u64::MAX - g + 1, g, ERANGE),
        ] {
            let r = dom.map(iova, phys, size, rw);
            labtest_ensure!(case, r == Err(want), "map {iova:#x}+{size:#x}: {r:?}, want {want:?}");
        }
        case.check("map", dom.map(IOVA, phys, g, rw))?;
        labtest_ensure!(case, dom.iova_to_phys(IOVA + 8) == Some(phys + 8), "translation");
        // Over an existing mapping: EEXIST from the policy's check, not an io-pgtable WARN.
        let r = dom.map(IOVA, phys, g, rw);
        labtest_ensure!(case, r == Err(EEXIST), "map over a mapping: {r:?}");
        let r = dom.map(IOVA - g, phys, 2 * g, rw);
        labtest_ensure!(case, r == Err(EEXIST), "map straddling a mapping: {r:?}");
        // Unmaps of holes unmap nothing (no WARN); partial ranges unmap what is mapped.
        let n = case.check("unmap hole", dom.unmap(IOVA + 16 * g, 4 * g))?;
        labtest_ensure!(case, n == 0, "hole unmapped {n}");
        let r = dom.unmap(w.base, g);
        labtest_ensure!(case, r == Err(EADDRINUSE), "unmap in window: {r:?}");
        let n = case.check("unmap", dom.unmap(IOVA - 4 * g, 8 * g))?;
        labtest_ensure!(case, n == g, "unmapped {n}");
        labtest_ensure!(case, dom.iova_to_phys(IOVA).is_none(), "still mapped");
        Ok(())
    });
    suite.run("rid_domain_dma_and_attach_rules", |case| {
        // Fill edu's buffer through the DMA API (default domain) first.
        let src = case.check("alloc", CoherentAllocation::<u8>::alloc_coherent(d, 4096, GFP_KERNEL))?;
        let pattern: [u8; 64] = core::array::from_fn(|i| (i as u8) ^ 0xa5);
        case.check("write_bytes", src.write_bytes(0, &pattern))?;
        edu::dma(case, bar, src.dma_handle(), edu::DMA_BUF, 64, edu::DMA_START)?;

        let adev = AuxDevice::requester_id_only(pdev);
        let mut dom = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        case.check("map", dom.map(IOVA, page_to_phys(&page), 4096, rw))?;
        case.check("attach_rid", dom.attach_rid(&adev))?;
        let r = dom.attach_rid(&adev);
        labtest_ensure!(case, r == Err(EEXIST), "second attach_rid: {r:?}");
        let mut other = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        let r = other.attach_rid(&adev);
        labtest_ensure!(case, r == Err(EBUSY), "another domain at the same RID: {r:?}");
        labtest_ensure!(case, other.attachments() == 0, "failed attach recorded");
        edu::dma(case, bar, edu::DMA_BUF, IOVA, 64, edu::DMA_START | edu::DMA_TO_RAM)?;
        let mut back = [0u8; 64];
        // SAFETY: 64 writable bytes, inside the page.
        case.check("read_raw", unsafe { page.read_raw(back.as_mut_ptr(), 0, 64) })?;
        labtest_ensure!(case, back == pattern, "DMA through the aux domain gave {:?}", &back[..8]);
        case.check("detach_rid", dom.detach_rid(&adev))?;
        let r = dom.detach_rid(&adev);
        labtest_ensure!(case, r == Err(ENOENT), "second detach: {r:?}");
        // Back on the DMA domain: the DMA API works again.
        edu::dma(case, bar, edu::DMA_BUF, src.dma_handle() + 1024, 64, edu::DMA_START | edu::DMA_TO_RAM)?;
        let mut back2 = [0u8; 64];
        case.check("read_bytes", src.read_bytes(1024, &mut back2))?;
        labtest_ensure!(case, back2 == pattern, "DMA after detach gave {:?}", &back2[..8]);
        // The other domain can now take the RID; dropping it detaches.
        case.check("attach other", other.attach_rid(&adev))?;
        drop(other);
        case.check("re-attach", dom.attach_rid(&adev))?;
        case.check("detach", dom.detach_rid(&adev))?;
        Ok(())
    });
    suite.run("doorbells_refcounted_routed_and_torn_down", |case| {
        let adev = AuxDevice::requester_id_only(pdev);
        let w = MsiWindow::default();
        let mut dom = case.check("new", AuxDomain::new(d, w))?;
        let v0 = MsiSource::Rid { vector: 0 };
        let v1 = MsiSource::Rid { vector: 1 };
        let r = dom.msi_activate(&adev, v0, DOORBELL_A);
        labtest_ensure!(case, r == Err(EINVAL), "activate without a RID attachment: {r:?}");
        case.check("attach_rid", dom.attach_rid(&adev))?;
        let a0 = case.check("activate v0", dom.msi_activate(&adev, v0, DOORBELL_A))?;
        labtest_ensure!(case, a0 >= w.base && a0 < w.base + w.size, "address {a0:#x} outside the window");
        labtest_ensure!(case, a0 & 0xfff == DOORBELL_A & 0xfff, "offset lost: {a0:#x}");
        labtest_ensure!(case, dom.iova_to_phys(a0) == Some(DOORBELL_A), "doorbell not mapped at {a0:#x}");
        let a1 = case.check("activate v1", dom.msi_activate(&adev, v1, DOORBELL_A))?;
        labtest_ensure!(case, a1 == a0 && dom.doorbell_refs(DOORBELL_A) == 2, "shared binding: {a1:#x}, refs {}", dom.doorbell_refs(DOORBELL_A));
        let r = dom.msi_activate(&adev, v0, DOORBELL_A);
        labtest_ensure!(case, r == Err(EEXIST), "double activate: {r:?}");
        let q = MsiSource::Queue { pasid: 1, queue: 0 };
        let r = dom.msi_activate(&adev, q, DOORBELL_A);
        labtest_ensure!(case, r == Err(EINVAL), "queue message without a PASID attachment: {r:?}");
        // Affinity: the new doorbell is bound before the old reference goes.
        let b0 = case.check("affinity", dom.msi_set_affinity(&adev, v0, DOORBELL_B))?;
        labtest_ensure!(case, b0 != a0 && dom.iova_to_phys(b0) == Some(DOORBELL_B), "moved to {b0:#x}");
        labtest_ensure!(case, dom.doorbell_refs(DOORBELL_A) == 1 && dom.doorbell_refs(DOORBELL_B) == 1, "refs after affinity");
        case.check("deactivate v1", dom.msi_deactivate(&adev, v1))?;
        labtest_ensure!(case, dom.doorbell_refs(DOORBELL_A) == 0 && dom.iova_to_phys(a0).is_none(), "last put did not unmap {a0:#x}");
        let r = dom.msi_deactivate(&adev, v1);
        labtest_ensure!(case, r == Err(ENOENT), "double deactivate: {r:?}");
        // A user-chosen IOVA must keep the doorbell's page offset and stay off mappings.
        let r = dom.msi_activate_at(&adev, v1, DOORBELL_A, IOVA);
        labtest_ensure!(case, r == Err(EINVAL), "offset mismatch: {r:?}");
        // v0 is left active: dropping the domain detaches and unbinds it (kmemleak checks).
        labtest_ensure!(case, dom.active_vectors() == 1, "vectors {}", dom.active_vectors());
        drop(dom);
        Ok(())
    });
    suite.run("coherency_switch_rules", |case| {
        let mut dom = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        case.check("map", dom.map(IOVA, page_to_phys(&page), 4096, rw))?;
        let r = dom.enforce_cache_coherency();
        labtest_ensure!(case, r == Err(EBUSY), "enforce after the first map: {r:?}");
        let mut fresh = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        // 6.12's arm-smmu-v3 has no enforce_cache_coherency operation: refused, not faked.
        let r = fresh.enforce_cache_coherency();
        labtest_ensure!(case, r == Err(EINVAL), "enforce on arm-smmu-v3 6.12: {r:?}");
        // Refused means unchanged: the domain still maps without IOMMU_CACHE being forced.
        case.check("map fresh", fresh.map(IOVA, page_to_phys(&page), 4096, rw))?;
        case.check("unmap", dom.unmap(IOVA, 4096).map(|_| ()))?;
        case.check("unmap fresh", fresh.unmap(IOVA, 4096).map(|_| ()))?;
        Ok(())
    });
    suite.run("window_must_fit", |case| {
        for w in [
            MsiWindow { base: 0x800_0800, size: 0x1000 },
            MsiWindow { base: 0x800_0000, size: 0 },
            MsiWindow { base: 1 << 48, size: 0x1000 },
        ] {
            let r = AuxDomain::new(d, w);
            labtest_ensure!(case, err_of(&r) == Some(EINVAL), "window {w:?}: {:?}", err_of(&r));
        }
        Ok(())
    });
}

edu_suite_module!(AuxdomainTest, driver: "auxdomain_test", suite: "auxdomain", cases: cases);
