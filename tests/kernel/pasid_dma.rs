// SPDX-License-Identifier: GPL-2.0
//! Guest test of PASID-tagged DMA on the lab's PASID platform (`run.sh --platform pasid`):
//! `kernel::auxdomain` over 6.12's IOMMU API on `edu-pasid` (docs/pasid-device.md) behind the
//! lab QEMU's SMMUv3 with SubstreamIDs. Two aux domains at two PASIDs map the same IOVA to
//! different pages: a DMA tagged with each PASID lands in its own domain's page only, a PASID
//! with no domain and an IOVA only the other domain maps fault, and after detach the PASID
//! faults (no stale translation). edu-pasid's PASID-tagged interrupt message (0xa8..0xb4)
//! carries the parent's MSI through an aux domain: it raises the interrupt only from the PASID
//! whose domain bound the doorbell (`AuxDomain::msi_activate`), and no longer after
//! `msi_deactivate`. On the stock platform there is no edu-pasid: only the driver registration
//! runs.
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    alloc::flags::GFP_KERNEL,
    auxdomain::{AuxDevice, AuxDomain, MsiSource, MsiWindow, Prot},
    c_str,
    delay::msleep,
    device::Core,
    dma::{page_to_phys, CoherentAllocation},
    error::code::{EBUSY, EINVAL},
    iommu::Domain as IommuDomain,
    irq,
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
};

module! {
    type: PasidDmaTest,
    name: "pasid_dma",
    author: "pasid-mdev project",
    description: "Guest test: PASID-tagged DMA through aux domains on edu-pasid",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;

/// Concurrent attaches, detaches and re-attaches at PASIDs of the device.
#[path = "pasid_dma/race.rs"]
mod race;

const IOVA: u64 = 0x10_0000;
use edu::{DMA_PASID, DMA_PASID_EN, DMA_RESULT, IMS_ADDR_HI, IMS_ADDR_LO, IMS_CTRL, IMS_DATA};
use edu::{IMS_CTRL_EN, IMS_CTRL_FAULT, IMS_CTRL_SENT};
const LEN: u64 = 64;

/// edu-pasid copies `LEN` bytes of its buffer to `iova`, tagged with `pasid` (None: untagged);
/// returns its DMA result register.
fn pasid_dma(case: &Case<'_>, bar: &edu::Bar, pasid: Option<u32>, iova: u64) -> Result<u32, Failed> {
    let tag = pasid.map_or(0, |p| p | DMA_PASID_EN);
    bar.write32(tag, DMA_PASID);
    edu::dma(case, bar, edu::DMA_BUF, iova, LEN, edu::DMA_START | edu::DMA_TO_RAM)?;
    Ok(bar.read32(DMA_RESULT))
}

/// Counts the interrupts of edu-pasid's MSI vector (whether the PCI MSI or the interrupt
/// message raised it: the case reads edu's interrupt status to tell).
struct Count(AtomicU32);

impl irq::Handler for Count {
    fn handle(&self) -> irq::IrqReturn {
        self.0.fetch_add(1, Ordering::Release);
        irq::IrqReturn::Handled
    }
}

/// [`pasid_dma`] asking for the completion interrupt; returns the DMA result, the interrupt
/// message's SENT/FAULT bits and how many interrupts arrived within 300 ms.
fn pasid_dma_irq(
    case: &Case<'_>,
    bar: &edu::Bar,
    count: &AtomicU32,
    pasid: u32,
) -> Result<(u32, u32, u32), Failed> {
    let before = count.load(Ordering::Acquire);
    bar.write32(pasid | DMA_PASID_EN, DMA_PASID);
    let cmd = edu::DMA_START | edu::DMA_TO_RAM | edu::DMA_IRQ;
    edu::dma(case, bar, edu::DMA_BUF, IOVA, LEN, cmd)?;
    let r = bar.read32(DMA_RESULT);
    let ims = bar.read32(IMS_CTRL);
    // The message is written when the DMA ends; the interrupt follows through the ITS. A
    // missing one gets the whole window.
    for _ in 0..30 {
        if count.load(Ordering::Acquire) != before {
            break;
        }
        msleep(10);
    }
    let irqs = count.load(Ordering::Acquire) - before;
    Ok((r, ims & (IMS_CTRL_SENT | IMS_CTRL_FAULT), irqs))
}

fn read_page(case: &Case<'_>, page: &Page) -> Result<[u8; LEN as usize], Failed> {
    let mut back = [0u8; LEN as usize];
    // SAFETY: `LEN` writable bytes, inside the page.
    case.check("read_raw", unsafe { page.read_raw(back.as_mut_ptr(), 0, back.len()) })?;
    Ok(back)
}

fn zero_page(case: &Case<'_>, page: &Page) -> Result<(), Failed> {
    let zero = [0u8; LEN as usize];
    // SAFETY: `LEN` readable bytes; the page has `LEN` bytes at 0.
    case.check("write_raw", unsafe { page.write_raw(zero.as_ptr(), 0, zero.len()) })
}

/// Fills edu-pasid's buffer with a pattern (byte i = i ^ `salt`) through the DMA API
/// (untagged, default domain) and returns the pattern.
fn load_pattern(
    case: &Case<'_>,
    d: &kernel::device::Device<kernel::device::Bound>,
    bar: &edu::Bar,
    salt: u8,
) -> Result<[u8; LEN as usize], Failed> {
    let src = case.check("alloc", CoherentAllocation::<u8>::alloc_coherent(d, 4096, GFP_KERNEL))?;
    let pattern: [u8; LEN as usize] = core::array::from_fn(|i| (i as u8) ^ salt);
    case.check("write_bytes", src.write_bytes(0, &pattern))?;
    bar.write32(0, DMA_PASID);
    edu::dma(case, bar, src.dma_handle(), edu::DMA_BUF, LEN, edu::DMA_START)?;
    Ok(pattern)
}

fn cases(suite: &mut Suite, pdev: &pci::Device<Core>, bar: &edu::Bar) {
    let d: &kernel::device::Device<kernel::device::Bound> = pdev.as_ref();
    let rw = Prot::READ | Prot::WRITE;
    suite.run("pasids_enabled", |case| {
        let adev = case.check("enable", AuxDevice::enable(pdev, 1, (1 << 20) - 1))?;
        let range = adev.pasid_range();
        labtest_ensure!(case, range == Some((1, (1 << 20) - 1)), "PASID range {range:?}");
        Ok(())
    });
    suite.run("pasid_outside_driver_range_refused", |case| {
        // The driver's range is checked by the one `AuxDomain` (the same code as on the host
        // model): PASIDs the IOMMU would take but the driver excluded never reach it.
        let narrow = case.check("enable 8..=15", AuxDevice::enable(pdev, 8, 15))?;
        let mut dom = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        for p in [0, 7, 16] {
            let r = dom.attach(&narrow, p);
            labtest_ensure!(case, r == Err(EINVAL) && dom.attachments() == 0, "attach at {p}: {r:?}");
        }
        case.check("attach at 8", dom.attach(&narrow, 8))?;
        case.check("detach at 8", dom.detach(&narrow, 8))?;
        Ok(())
    });
    suite.run("pasid_dma_through_its_aux_domain_only", |case| {
        let pattern = load_pattern(case, d, bar, 0x5a)?;

        let adev = case.check("enable", AuxDevice::enable(pdev, 1, (1 << 20) - 1))?;
        let page_a = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        let page_b = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        zero_page(case, &page_a)?;
        zero_page(case, &page_b)?;
        let mut a = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        let mut b = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        case.check("map A", a.map(IOVA, page_to_phys(&page_a), 4096, rw))?;
        case.check("map B", b.map(IOVA, page_to_phys(&page_b), 4096, rw))?;
        // Only B maps the next page.
        case.check("map B+1", b.map(IOVA + 4096, page_to_phys(&page_b), 4096, rw))?;
        case.check("attach A at 5", a.attach(&adev, 5))?;
        case.check("attach B at 6", b.attach(&adev, 6))?;

        let r = pasid_dma(case, bar, Some(5), IOVA)?;
        let (got_a, got_b) = (read_page(case, &page_a)?, read_page(case, &page_b)?);
        labtest_ensure!(case, r == 0 && got_a == pattern && got_b == [0; LEN as usize],
            "PASID 5: result {r}, A {:?}, B {:?}", &got_a[..4], &got_b[..4]);
        zero_page(case, &page_a)?;
        let r = pasid_dma(case, bar, Some(6), IOVA)?;
        let (got_a, got_b) = (read_page(case, &page_a)?, read_page(case, &page_b)?);
        labtest_ensure!(case, r == 0 && got_b == pattern && got_a == [0; LEN as usize],
            "PASID 6: result {r}, A {:?}, B {:?}", &got_a[..4], &got_b[..4]);
        zero_page(case, &page_b)?;

        // PASID 5 at an IOVA only B maps, and PASID 7 (no domain): faults, nothing written.
        for (pasid, iova) in [(5, IOVA + 4096), (7, IOVA)] {
            let r = pasid_dma(case, bar, Some(pasid), iova)?;
            let (got_a, got_b) = (read_page(case, &page_a)?, read_page(case, &page_b)?);
            labtest_ensure!(case, r == 1 && got_a == [0; LEN as usize] && got_b == [0; LEN as usize],
                "PASID {pasid} at {iova:#x}: result {r}");
        }
        // Detach B: PASID 6 faults from now on (no stale CD or TLB entry).
        case.check("detach B", b.detach(&adev, 6))?;
        let r = pasid_dma(case, bar, Some(6), IOVA)?;
        let got_b = read_page(case, &page_b)?;
        labtest_ensure!(case, r == 1 && got_b == [0; LEN as usize], "PASID 6 after detach: result {r}");
        // A is untouched by B's detach.
        let r = pasid_dma(case, bar, Some(5), IOVA)?;
        let got_a = read_page(case, &page_a)?;
        labtest_ensure!(case, r == 0 && got_a == pattern, "PASID 5 after B's detach: result {r}");
        bar.write32(0, DMA_PASID);
        // Dropping A detaches it.
        drop(a);
        Ok(())
    });
    suite.run("stale_translation_oracle_pasid", |case| {
        // QEMU keeps stale IOTLB and CD-cache entries until the matching TLBI / CFGI_CD: with
        // one invalidation missing from the IOMMU driver a DMA below reaches the old page.
        let pattern = load_pattern(case, d, bar, 0x3c)?;

        let adev = case.check("enable", AuxDevice::enable(pdev, 1, (1 << 20) - 1))?;
        let pages = [(); 3].map(|()| Page::alloc_page(GFP_KERNEL));
        let [Ok(p0), Ok(p1), Ok(p2)] = pages else {
            return Err(case.fail(format_args!("alloc_page failed")));
        };
        for p in [&p0, &p1, &p2] {
            zero_page(case, p)?;
        }
        let expect = |case: &Case<'_>, what: &str, want: [bool; 3]| -> Result<(), Failed> {
            for (i, p) in [&p0, &p1, &p2].into_iter().enumerate() {
                let got = read_page(case, p)?;
                let hit = got == pattern;
                labtest_ensure!(case, hit == want[i] && (hit || got == [0; LEN as usize]),
                    "{what}: page {i} {} ({:?})", if hit { "written" } else { "not written" }, &got[..4]);
                zero_page(case, p)?;
            }
            Ok(())
        };
        // 1. Remap inside the domain attached at PASID 9 (the TLBI of the unmap).
        let mut a = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        case.check("map A", a.map(IOVA, page_to_phys(&p0), 4096, rw))?;
        case.check("attach A at 9", a.attach(&adev, 9))?;
        let r = pasid_dma(case, bar, Some(9), IOVA)?;
        labtest_ensure!(case, r == 0, "first DMA at PASID 9: result {r}");
        expect(case, "first DMA", [true, false, false])?;
        let n = case.check("unmap A", a.unmap(IOVA, 4096))?;
        labtest_ensure!(case, n == 4096, "unmapped {n}");
        case.check("remap A", a.map(IOVA, page_to_phys(&p1), 4096, rw))?;
        let r = pasid_dma(case, bar, Some(9), IOVA)?;
        labtest_ensure!(case, r == 0, "DMA after the remap: result {r}");
        expect(case, "DMA after the remap (stale IOTLB entry if page 0)", [false, true, false])?;
        // 2. Detach, then another domain at the same PASID (the CFGI_CD of the CD writes).
        case.check("detach A", a.detach(&adev, 9))?;
        let mut b = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        case.check("map B", b.map(IOVA, page_to_phys(&p2), 4096, rw))?;
        case.check("attach B at 9", b.attach(&adev, 9))?;
        let r = pasid_dma(case, bar, Some(9), IOVA)?;
        labtest_ensure!(case, r == 0, "DMA after the re-attach: result {r}");
        expect(case, "DMA after the re-attach (stale CD if page 1)", [false, false, true])?;
        case.check("detach B", b.detach(&adev, 9))?;
        bar.write32(0, DMA_PASID);
        Ok(())
    });
    suite.run("pasid_tagged_interrupt_through_its_aux_domain_only", |case| {
        // The parent's MSI vector 0; its message (the ITS doorbell behind the kernel's IOVA,
        // and the data) is what edu-pasid's interrupt message writes, tagged with the DMA's
        // PASID, so it translates through the aux domain attached there.
        load_pattern(case, d, bar, 0x77)?;
        let n = case.check("alloc_irq_vectors", pdev.alloc_irq_vectors(1, 1, pci::IrqTypes::MSI))?;
        labtest_ensure!(case, n == 1, "{n} vectors");
        let init = case.check("request_irq", pdev.request_irq(0, c_str!("pasid_dma"), Count(AtomicU32::new(0))))?;
        let reg = case.check("request_irq", KBox::pin_init(init, GFP_KERNEL))?;
        let count = &reg.handler().0;

        let adev = case.check("enable", AuxDevice::enable(pdev, 1, (1 << 20) - 1))?;
        let (doorbell, data) = case.check("msi_doorbell", adev.msi_doorbell(0))?;
        let page_a = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        let page_b = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        let mut a = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        let mut b = case.check("new", AuxDomain::new(d, MsiWindow::default()))?;
        // Both map the DMA's IOVA, so each DMA succeeds: only the message differs.
        case.check("map A", a.map(IOVA, page_to_phys(&page_a), 4096, rw))?;
        case.check("map B", b.map(IOVA, page_to_phys(&page_b), 4096, rw))?;
        case.check("attach A at 21", a.attach(&adev, 21))?;
        case.check("attach B at 22", b.attach(&adev, 22))?;
        let src = MsiSource::Queue { pasid: 21, queue: 0 };
        let addr = case.check("msi_activate", a.msi_activate(&adev, src, doorbell))?;
        labtest_ensure!(case, b.iova_to_phys(addr).is_none(), "B maps the doorbell IOVA {addr:#x}");
        bar.write32(addr as u32, IMS_ADDR_LO);
        bar.write32((addr >> 32) as u32, IMS_ADDR_HI);
        bar.write32(data, IMS_DATA);
        bar.write32(IMS_CTRL_EN, IMS_CTRL);
        let res = (|| {
            let irq_status = |_: &Case<'_>| -> Result<u32, Failed> { Ok(bar.read32(edu::IRQ_STATUS)) };
            // A: the message reaches the ITS through A's doorbell binding: one interrupt, and
            // it is the message (edu's PCI interrupt status stays clear).
            let got = pasid_dma_irq(case, bar, count, 21)?;
            let st = irq_status(case)?;
            labtest_ensure!(case, got == (0, IMS_CTRL_SENT, 1) && st == 0,
                "PASID 21 (doorbell bound) with message {addr:#x}/{data:#x} -> {doorbell:#x}: (result, IMS, interrupts) {got:?}, irq status {st:#x}");
            // B: the DMA lands, the message faults in B's domain (the IOMMU driver logs the
            // event with SubstreamID 22 at the doorbell IOVA): no interrupt.
            let got = pasid_dma_irq(case, bar, count, 22)?;
            labtest_ensure!(case, got == (0, IMS_CTRL_FAULT, 0),
                "PASID 22 (no doorbell in its domain): (result, IMS, interrupts) {got:?}");
            // After msi_deactivate, A's message faults too.
            case.check("msi_deactivate", a.msi_deactivate(&adev, src))?;
            labtest_ensure!(case, a.iova_to_phys(addr).is_none(), "doorbell still mapped at {addr:#x}");
            let got = pasid_dma_irq(case, bar, count, 21)?;
            labtest_ensure!(case, got == (0, IMS_CTRL_FAULT, 0),
                "PASID 21 after msi_deactivate: (result, IMS, interrupts) {got:?}");
            kernel::pr_info!("pasid_dma: tagged message {:#x}/{:#x} (doorbell {:#x}): PASID 21 raised it, PASID 22 and PASID 21 after msi_deactivate faulted\n", addr, data, doorbell);
            Ok(())
        })();
        // Back to the PCI MSI and untagged DMA for the cases after this one.
        bar.write32(0, IMS_CTRL);
        bar.write32(0, DMA_PASID);
        drop(reg);
        res
    });
    suite.run("pasid_bad_input_errno_no_warn", |case| {
        // Through the IOMMU API, not the aux-domain layer (which refuses most of it first): an
        // errno, no WARN (run.sh fails the run on any WARN), the first attach untouched.
        let _adev = case.check("enable", AuxDevice::enable(pdev, 1, (1 << 20) - 1))?;
        let one = case.check("new_paging", IommuDomain::new_paging(d))?;
        let two = case.check("new_paging", IommuDomain::new_paging(d))?;
        let r = one.attach_device_pasid(d, 1 << 20).err();
        labtest_ensure!(case, r == Some(EINVAL), "PASID beyond the device's 20 bits: {r:?}");
        let r = one.attach_device_pasid(d, 0).err();
        labtest_ensure!(case, r == Some(EINVAL), "PASID 0: {r:?}");
        let att = case.check("attach at 11", one.attach_device_pasid(d, 11))?;
        let r = two.attach_device_pasid(d, 11).err();
        labtest_ensure!(case, r == Some(EBUSY), "second domain at PASID 11: {r:?}");
        let r = one.attach_device_pasid(d, 11).err();
        labtest_ensure!(case, r == Some(EBUSY), "same domain again at PASID 11: {r:?}");
        drop(att);
        let att = case.check("re-attach at 11", two.attach_device_pasid(d, 11))?;
        drop(att);
        Ok(())
    });
    race::cases(suite, pdev, bar);
}

edu_suite_module!(PasidDmaTest, driver: "pasid_dma", suite: "pasid_dma", cases: cases, pasid_device: true);
