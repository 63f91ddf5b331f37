// SPDX-License-Identifier: GPL-2.0
//! Guest test of the `kernel::pci`, `kernel::irq`, `kernel::dma`, `kernel::devres` and device
//! printing abstractions on QEMU's edu device (1234:11e8): binds a Rust PCI driver to edu, reads
//! the ID register through the BAR, checks bounds-checked accessors reject bad offsets, does edu
//! DMA through a coherent buffer and a streaming page mapping, takes edu's MSI, then unbinds and
//! checks that device-bound resources were revoked. Also: a threaded IRQ handler and a sysfs
//! attribute implemented in Rust on the edu device; `Devres::access` refusing another device
//! (the PCIe host bridge, probed by a second driver while edu is bound), and unbind waiting
//! for a `Devres` drop that is still releasing its data.
use core::{
    fmt::Write,
    sync::atomic::{AtomicPtr, AtomicU32, Ordering},
};
use core::sync::atomic::AtomicBool;
use kernel::{
    alloc::flags::GFP_KERNEL,
    c_str,
    device::{Core, Device},
    delay::msleep,
    dev_info,
    devres::Devres,
    dma::{CoherentAllocation, DataDirection, PageMapping},
    error::code::{EINVAL, ENODEV},
    irq,
    labtest::Suite,
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
    str::CString,
    sync::Arc,
    sysfs, workqueue,
};

module! {
    type: AbsPci,
    name: "abs_pci",
    author: "pasid-mdev project",
    description: "Guest test: PCI, IRQ, DMA and devres abstractions on edu",
    license: "GPL",
}

#[path = "common/edu.rs"]
mod edu;
#[path = "common/kfile.rs"]
mod kfile;
use kfile::{sysfs_read, sysfs_write};


static PROBES: AtomicU32 = AtomicU32::new(0);
static REMOVES: AtomicU32 = AtomicU32::new(0);
static DROPS: AtomicU32 = AtomicU32::new(0);
/// `EduIrq` handlers dropped: a failed request must drop its handler exactly once.
static IRQ_HANDLER_DROPS: AtomicU32 = AtomicU32::new(0);

struct EduIrq {
    bar: Arc<Devres<edu::Bar>>,
    count: AtomicU32,
    last_status: AtomicU32,
}

impl irq::Handler for EduIrq {
    fn handle(&self) -> irq::IrqReturn {
        let Some(bar) = self.bar.try_access() else {
            return irq::IrqReturn::None;
        };
        let status = bar.read32(edu::IRQ_STATUS);
        if status == 0 {
            return irq::IrqReturn::None;
        }
        bar.write32(status, edu::IRQ_ACK);
        self.last_status.store(status, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
        irq::IrqReturn::Handled
    }
}

impl Drop for EduIrq {
    fn drop(&mut self) {
        IRQ_HANDLER_DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Threaded handler: the hard part only wakes the thread, which acks in process context.
struct EduThreaded {
    bar: Arc<Devres<edu::Bar>>,
    hard: AtomicU32,
    thread: AtomicU32,
}

impl irq::ThreadedHandler for EduThreaded {
    fn handle(&self) -> irq::ThreadedIrqReturn {
        self.hard.fetch_add(1, Ordering::Relaxed);
        irq::ThreadedIrqReturn::WakeThread
    }

    fn handle_threaded(&self) -> irq::IrqReturn {
        let Some(bar) = self.bar.try_access() else {
            return irq::IrqReturn::None;
        };
        let status = bar.read32(edu::IRQ_STATUS);
        bar.write32(status, edu::IRQ_ACK);
        drop(bar);
        self.thread.fetch_add(1, Ordering::Release);
        irq::IrqReturn::Handled
    }
}

struct EduDriver {
    _bar: Arc<Devres<edu::Bar>>,
    _irq: Option<Pin<KBox<irq::Registration<EduThreaded>>>>,
    _attr: Option<sysfs::File>,
}

/// A sysfs attribute on the edu device: shows its IDs and a stored value, accepts a number.
struct EduAttr;
static ATTR_VALUE: AtomicU32 = AtomicU32::new(7);

impl sysfs::AttributeOps for EduAttr {
    fn show(dev: &Device, out: &mut sysfs::Buffer<'_>) -> Result {
        let p = pci::Device::from_device(dev).ok_or(EINVAL)?;
        writeln!(out, "{:04x}:{:04x} {}", p.vendor_id(), p.device_id(), ATTR_VALUE.load(Ordering::Relaxed))
            .map_err(|_| EINVAL)
    }

    fn store(_dev: &Device, input: &[u8]) -> Result {
        let s = core::str::from_utf8(input).map_err(|_| EINVAL)?.trim();
        let v = s.parse::<u32>().map_err(|_| EINVAL)?;
        ATTR_VALUE.store(v, Ordering::Relaxed);
        Ok(())
    }
}

kernel::device_attribute!(EDU_ATTR, EduAttr, "abs_edu", 0o644);

fn sysfs_case(suite: &mut Suite, dev: &pci::Device<Core>) -> Option<sysfs::File> {
    let mut kept = None;
    suite.run("sysfs_attribute_show_store_remove", |case| {
        let path = case.check("path", CString::try_from_fmt(kernel::fmt!("/sys/bus/pci/devices/{}/abs_edu", dev.as_ref().name())))?;
        let file = case.check("create_file", sysfs::create_file(dev.as_ref(), &EDU_ATTR))?;
        let shown = case.check("read", sysfs_read(&path))?;
        labtest_ensure!(case, &shown[..] == b"1234:11e8 7\n", "show gave {:?}", &shown[..]);
        case.check("write", sysfs_write(&path, b"42\n"))?;
        let shown = case.check("read", sysfs_read(&path))?;
        labtest_ensure!(case, &shown[..] == b"1234:11e8 42\n", "after store {:?}", &shown[..]);
        labtest_ensure!(case, sysfs_write(&path, b"nope").is_err(), "bad input accepted");
        drop(file);
        labtest_ensure!(case, sysfs_read(&path).is_err(), "attribute still there after drop");
        // Keep one on the device: it must be removable at unbind (driver data drop).
        kept = Some(case.check("create_file", sysfs::create_file(dev.as_ref(), &EDU_ATTR))?);
        Ok(())
    });
    kept
}

impl Drop for EduDriver {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

/// QEMU's edu revision ID.
const EDU_REVISION: u8 = 0x10;

kernel::pci_device_table!(EDU_IDS, u32, [(pci::DeviceId::from_id(0x1234, 0x11e8), 0x11e8)]);



fn probe_cases(suite: &mut Suite, dev: &pci::Device<Core>, info: u32, bar: &Arc<Devres<edu::Bar>>) {
    suite.run("probe_matched_id_table_entry", |case| {
        labtest_ensure!(case, info == 0x11e8, "IdInfo {info:#x}");
        labtest_ensure!(case, dev.vendor_id() == 0x1234 && dev.device_id() == 0x11e8, "ids");
        dev_info!(dev, "abs_pci: probing edu rev {:#x}\n", dev.revision());
        Ok(())
    });
    suite.run("bar_reads_edu_id", |case| {
        // Build-time checked: `edu::ID` is a constant below `edu::REGS_SIZE`.
        let id = case.check("access", bar.access(dev.as_ref()))?.read32(edu::ID);
        labtest_ensure!(case, id == 0x010000ed, "edu ID register {id:#x}");
        Ok(())
    });
    suite.run("bar_liveness_write_read", |case| {
        let b = case.check("access", bar.access(dev.as_ref()))?;
        b.write32(0x5a5a_0f0f, edu::LIVENESS);
        let v = b.read32(edu::LIVENESS);
        labtest_ensure!(case, v == !0x5a5a_0f0fu32, "liveness returned {v:#x}");
        Ok(())
    });
    suite.run("bar_bad_offsets_rejected", |case| {
        let b = case.check("access", bar.access(dev.as_ref()))?;
        let len = b.maxsize();
        labtest_ensure!(case, len == 1 << 20, "BAR0 length {len:#x}");
        labtest_ensure!(case, b.try_read32(len) == Err(EINVAL), "try_read32 at the end");
        labtest_ensure!(case, b.try_read32(len - 2) == Err(EINVAL), "try_read32 straddling the end");
        labtest_ensure!(case, b.try_read32(2) == Err(EINVAL), "misaligned try_read32");
        labtest_ensure!(case, b.try_read64(usize::MAX - 3) == Err(EINVAL), "overflowing offset");
        labtest_ensure!(case, b.try_write8(0, len) == Err(EINVAL), "try_write8 past the end");
        labtest_ensure!(case, b.try_write16(0, 0x101) == Err(EINVAL), "misaligned try_write16");
        // The run-time checked accessors reach the whole BAR, past the build-time `SIZE`
        // (edu answers all-ones outside its registers).
        let id = b.try_read32(edu::ID);
        labtest_ensure!(case, id == Ok(edu::ID_VALUE), "try_read32(ID) {id:?}");
        let far = b.try_read32(len - 4);
        labtest_ensure!(case, far == Ok(u32::MAX), "try_read32 at the BAR's last word {far:?}");
        Ok(())
    });
    suite.run("config_space_reads", |case| {
        let vid = case.check("config_read16", dev.config_read16(0))?;
        let did = case.check("config_read16", dev.config_read16(2))?;
        let both = case.check("config_read32", dev.config_read32(0))?;
        labtest_ensure!(case, vid == 0x1234 && did == 0x11e8, "config ids {vid:#x}:{did:#x}");
        labtest_ensure!(case, both == 0x11e8_1234, "config dword {both:#x}");
        // Against QEMU's edu revision (hw/misc/edu.c: 0x10), not against the value the PCI
        // core read from the same register at enumeration only.
        let rev = case.check("config_read8", dev.config_read8(8))?;
        labtest_ensure!(case, rev == EDU_REVISION, "config revision {rev:#x}, want {EDU_REVISION:#x}");
        labtest_ensure!(case, dev.revision() == EDU_REVISION, "pci_dev revision {:#x}", dev.revision());
        labtest_ensure!(case, dev.cfg_size() == 256, "edu cfg_size {}", dev.cfg_size());
        labtest_ensure!(case, dev.config_read32(0x100) == Err(EINVAL), "offset past config space");
        labtest_ensure!(case, dev.config_read16(0xff) == Err(EINVAL), "straddling the end");
        labtest_ensure!(case, dev.config_read32(2) == Err(EINVAL), "misaligned");
        labtest_ensure!(case, dev.config_write32(0x100, 0) == Err(EINVAL), "write past config space");
        // Round trip through a harmless register (the interrupt line, 0x3c).
        let line = case.check("config_read8", dev.config_read8(0x3c))?;
        case.check("config_write8", dev.config_write8(0x3c, 0x5a))?;
        let back = case.check("config_read8", dev.config_read8(0x3c))?;
        case.check("config_write8", dev.config_write8(0x3c, line))?;
        labtest_ensure!(case, back == 0x5a, "interrupt line wrote 0x5a, read {back:#x}");
        labtest_ensure!(case, dev.find_capability(0x05).is_some(), "MSI capability not found");
        Ok(())
    });
    suite.run("pasid_absent_on_edu", |case| {
        let m = dev.max_pasids();
        labtest_ensure!(case, m.is_err(), "edu reports PASID support: {m:?}");
        let e = dev.enable_pasid(0);
        labtest_ensure!(case, e.is_err(), "enable_pasid on edu succeeded");
        Ok(())
    });
    suite.run("dma_coherent_roundtrip_through_edu", |case| {
        let bar = case.check("access", bar.access(dev.as_ref()))?;
        let buf = case.check("alloc", CoherentAllocation::<u8>::alloc_coherent(dev.as_ref(), 4096, GFP_KERNEL))?;
        labtest_ensure!(case, buf.read(4096) == Err(EINVAL), "read past the end");
        labtest_ensure!(case, buf.write(4096, 0) == Err(EINVAL), "write past the end");
        let mut pattern = [0u8; 256];
        for (i, b) in pattern.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7) ^ 0xa5;
        }
        case.check("write_bytes", buf.write_bytes(0, &pattern))?;
        labtest_ensure!(case, buf.write_bytes(4000, &pattern) == Err(EINVAL), "write_bytes overrun");
        let h = buf.dma_handle();
        edu::dma(case, bar, h, edu::DMA_BUF, 256, edu::DMA_START)?;
        edu::dma(case, bar, edu::DMA_BUF, h + 2048, 256, edu::DMA_START | edu::DMA_TO_RAM)?;
        let mut back = [0u8; 256];
        case.check("read_bytes", buf.read_bytes(2048, &mut back))?;
        labtest_ensure!(case, back == pattern, "edu round trip differs: {:?}", &back[..8]);
        Ok(())
    });
    suite.run("dma_streaming_page_from_device", |case| {
        let bar = case.check("access", bar.access(dev.as_ref()))?;
        // Fill edu's buffer from a coherent source, then let edu write into a streaming page.
        let src = case.check("alloc", CoherentAllocation::<u32>::alloc_coherent(dev.as_ref(), 64, GFP_KERNEL))?;
        for i in 0..64 {
            case.check("write", src.write(i, 0x1000_0000 + i as u32))?;
        }
        edu::dma(case, bar, src.dma_handle(), edu::DMA_BUF + 0x800, 256, edu::DMA_START)?;
        let page = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
        let bad = PageMapping::new(dev.as_ref(), case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?, 4000, 200, DataDirection::FromDevice);
        labtest_ensure!(case, bad.is_err(), "mapping past the page end accepted");
        let mut m = case.check("map", PageMapping::new(dev.as_ref(), page, 0, 256, DataDirection::FromDevice))?;
        edu::dma(case, bar, edu::DMA_BUF + 0x800, m.dma_addr(), 256, edu::DMA_START | edu::DMA_TO_RAM)?;
        let mut back = [0u8; 256];
        // SAFETY: `back` is 256 writable bytes, within the page.
        let r = m.with_cpu(|p, off, len| unsafe { p.read_raw(back.as_mut_ptr(), off, len) });
        case.check("read_raw", r)?;
        for i in 0..64 {
            let w = u32::from_ne_bytes([back[4 * i], back[4 * i + 1], back[4 * i + 2], back[4 * i + 3]]);
            labtest_ensure!(case, w == 0x1000_0000 + i as u32, "word {i} = {w:#x}");
        }
        Ok(())
    });
}

/// Whether a handler's `count` reaches `n` within 1 s.
fn reached(count: &AtomicU32, n: u32) -> bool {
    for _ in 0..200 {
        if count.load(Ordering::Acquire) >= n {
            return true;
        }
        msleep(5);
    }
    false
}

fn irq_case(suite: &mut Suite, dev: &pci::Device<Core>, bar: &Arc<Devres<edu::Bar>>) -> Option<Pin<KBox<irq::Registration<EduThreaded>>>> {
    let mut kept = None;
    suite.run("msi_irq_raise_and_ack", |case| {
        let n = case.check("alloc_irq_vectors", dev.alloc_irq_vectors(1, 1, pci::IrqTypes::MSI))?;
        labtest_ensure!(case, n == 1, "{n} vectors");
        labtest_ensure!(case, dev.irq_vector(1).is_err(), "vector 1 of 1 exists");
        let h = EduIrq { bar: bar.clone(), count: AtomicU32::new(0), last_status: AtomicU32::new(0) };
        let init = case.check("request_irq", dev.request_irq(0, c_str!("abs_pci"), h))?;
        let reg = case.check("request_irq", KBox::pin_init(init, GFP_KERNEL))?;
        labtest_ensure!(case, reg.is_active(), "registration inactive");
        for round in 1..=3u32 {
            case.check("access", bar.access(dev.as_ref()))?.write32(0x100 * round, edu::IRQ_RAISE);
            labtest_ensure!(case, reached(&reg.handler().count, round), "MSI {round} not taken within 1 s");
            let st = reg.handler().last_status.load(Ordering::Relaxed);
            labtest_ensure!(case, st == 0x100 * round, "irq status {st:#x}");
        }
        dev_info!(dev, "abs_pci: took {} MSIs on irq {}\n", reg.handler().count.load(Ordering::Relaxed), reg.irq());
        let h = EduIrq { bar: bar.clone(), count: AtomicU32::new(0), last_status: AtomicU32::new(0) };
        let init = case.check("request_irq", dev.request_irq(0, c_str!("abs_pci2"), h))?;
        let drops = IRQ_HANDLER_DROPS.load(Ordering::Relaxed);
        let again = KBox::pin_init(init, GFP_KERNEL);
        labtest_ensure!(case, again.is_err(), "second non-shared request of the same vector succeeded");
        // The failed request dropped its own handler once, and nothing of the first one: that
        // registration still takes the vector.
        let dropped = IRQ_HANDLER_DROPS.load(Ordering::Relaxed) - drops;
        labtest_ensure!(case, dropped == 1, "failed request dropped {dropped} handlers, not 1");
        labtest_ensure!(case, reg.is_active(), "failed request freed the first registration");
        case.check("access", bar.access(dev.as_ref()))?.write32(0x400, edu::IRQ_RAISE);
        labtest_ensure!(case, reached(&reg.handler().count, 4), "MSI after the failed request not taken within 1 s");
        drop(reg);
        let dropped = IRQ_HANDLER_DROPS.load(Ordering::Relaxed) - drops;
        labtest_ensure!(case, dropped == 2, "{dropped} handlers dropped after the registration, not 2");
        Ok(())
    });
    suite.run("threaded_irq_handler_runs", |case| {
        let h = EduThreaded { bar: bar.clone(), hard: AtomicU32::new(0), thread: AtomicU32::new(0) };
        let init = case.check("request_threaded_irq", dev.request_threaded_irq(0, irq::Flags::ONESHOT, c_str!("abs_pci_t"), h))?;
        let reg = case.check("request_threaded_irq", KBox::pin_init(init, GFP_KERNEL))?;
        case.check("access", bar.access(dev.as_ref()))?.write32(0x4242, edu::IRQ_RAISE);
        let seen = reached(&reg.handler().thread, 1);
        labtest_ensure!(case, seen, "thread handler did not run (hard part ran {} times)", reg.handler().hard.load(Ordering::Relaxed));
        kept = Some(reg);
        Ok(())
    });
    kept
}

impl pci::Driver for EduDriver {
    type IdInfo = u32;
    const ID_TABLE: pci::IdTable<u32> = EDU_IDS.table();

    fn probe(dev: &pci::Device<Core>, info: &u32) -> Result<Pin<KBox<Self>>> {
        PROBES.fetch_add(1, Ordering::Relaxed);
        dev.enable_device()?;
        dev.set_master()?;
        dev.dma_set_mask(28)?;
        let bar = Arc::new(dev.iomap_region_sized::<{ edu::REGS_SIZE }>(0, c_str!("abs_pci"))?, GFP_KERNEL)?;
        let mut irq = None;
        let mut attr = None;
        edu::with_suite(|s| {
            probe_cases(s, dev, *info, &bar);
            irq = irq_case(s, dev, &bar);
            attr = sysfs_case(s, dev);
        });
        // Keep a second BAR mapping past unbind to check it gets revoked. BAR0 is requested
        // already, so a second request must fail: check that too.
        let second = dev.iomap_region(0, c_str!("abs_pci2"));
        // A BAR smaller than the size asked for is refused before anything is requested.
        let too_big = dev.iomap_region_sized::<{ 2 << 20 }>(0, c_str!("abs_pci3"));
        edu::with_suite(|s| {
            s.run("bar_double_request_fails", |case| {
                labtest_ensure!(case, second.is_err(), "BAR0 requested twice");
                labtest_ensure!(case, too_big.as_ref().err() == Some(&EINVAL), "2 MiB of a 1 MiB BAR: {:?}", too_big.as_ref().err());
                Ok(())
            })
        });
        // Released by a work item while edu is unbound (`init`).
        let slow = SlowDrop { started: &SLOW_STARTED, done: &SLOW_DONE };
        let slow = KBox::new(Devres::new(dev.as_ref(), slow, GFP_KERNEL)?, GFP_KERNEL)?;
        SLOW.store(KBox::into_raw(slow), Ordering::Release);
        // Released by the unbind, while a work item drops its `Devres` (`init`).
        let late = SlowDrop { started: &LATE_STARTED, done: &LATE_DONE };
        let late = KBox::new(Devres::new(dev.as_ref(), late, GFP_KERNEL)?, GFP_KERNEL)?;
        LATE.store(KBox::into_raw(late), Ordering::Release);
        // Keep a clone of the shared BAR (the Devres) past unbind.
        let kept = KBox::new(Arc::clone(&bar), GFP_KERNEL)?;
        let raw = KBox::into_raw(kept);
        KEPT_ARC.store(raw, Ordering::Release);
        Ok(KBox::pin(EduDriver { _bar: bar, _irq: irq, _attr: attr }, GFP_KERNEL)?)
    }

    fn remove(_this: Pin<&Self>, dev: &pci::Device<Core>) {
        REMOVES.fetch_add(1, Ordering::Relaxed);
        dev_info!(dev, "abs_pci: remove\n");
    }
}

/// A BAR reference kept past unbind, to check it was revoked.
static KEPT_ARC: AtomicPtr<Arc<Devres<edu::Bar>>> = AtomicPtr::new(core::ptr::null_mut());

/// Device data whose release takes time (a device that must be quiesced): set when its drop
/// begins and when it ends.
struct SlowDrop {
    started: &'static AtomicBool,
    done: &'static AtomicBool,
}
static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
static SLOW_DONE: AtomicBool = AtomicBool::new(false);
static LATE_STARTED: AtomicBool = AtomicBool::new(false);
static LATE_DONE: AtomicBool = AtomicBool::new(false);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.started.store(true, Ordering::Release);
        msleep(300);
        self.done.store(true, Ordering::Release);
    }
}

/// A `Devres<SlowDrop>` made in probe, dropped by a work item racing the unbind.
static SLOW: AtomicPtr<Devres<SlowDrop>> = AtomicPtr::new(core::ptr::null_mut());
/// A `Devres<SlowDrop>` made in probe, released by the unbind while a work item drops it.
static LATE: AtomicPtr<Devres<SlowDrop>> = AtomicPtr::new(core::ptr::null_mut());
/// What that work item saw: 0 not run, 1 the data was released when its drop returned, 2 not
/// (or the unbind never started releasing it).
static LATE_SEEN: AtomicU32 = AtomicU32::new(0);

/// What [`OtherDriver`]'s probe saw when it presented its own device to edu's `Devres`:
/// 0 not run, 1 refused with `EINVAL`, 2 anything else.
static OTHER_ACCESS: AtomicU32 = AtomicU32::new(0);

/// A second driver, for the PCIe host bridge (QEMU's 1b36:0008, always present): its probe
/// gives a `&Device<Bound>` that is not edu, while edu is still bound. It binds nothing
/// (returns `ENODEV`).
struct OtherDriver;

kernel::pci_device_table!(HOST_BRIDGE_IDS, (), [(pci::DeviceId::from_id(0x1b36, 0x0008), ())]);

impl pci::Driver for OtherDriver {
    type IdInfo = ();
    const ID_TABLE: pci::IdTable<()> = HOST_BRIDGE_IDS.table();

    fn probe(dev: &pci::Device<Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        let kept = KEPT_ARC.load(Ordering::Acquire);
        if !kept.is_null() {
            // SAFETY: edu's probe stored it from `KBox::into_raw`; it is taken back only after
            // this driver is unregistered (`init`).
            let kept = unsafe { &*kept };
            let outcome = match kept.access(dev.as_ref()) {
                Err(e) if e == EINVAL => 1,
                _ => 2,
            };
            OTHER_ACCESS.store(outcome, Ordering::Release);
        }
        Err(ENODEV)
    }
}

struct AbsPci;

impl kernel::Module for AbsPci {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("abs_pci");
        let reg = edu::with_registration(&mut suite, || KBox::pin_init(pci::Registration::<EduDriver>::new(c_str!("abs_pci"), module), GFP_KERNEL));
        suite.run("duplicate_driver_registration_fails_cleanly", |case| {
            // Same driver name: the driver core refuses it; the failed registration must not
            // be unregistered (that would crash or WARN).
            let dup = KBox::pin_init(pci::Registration::<EduDriver>::new(c_str!("abs_pci"), module), GFP_KERNEL);
            labtest_ensure!(case, dup.is_err(), "second driver with the same name registered");
            Ok(())
        });
        suite.run("driver_registered_and_probed", |case| {
            labtest_ensure!(case, reg.is_ok(), "registration: {:?}", reg.as_ref().err());
            labtest_ensure!(case, PROBES.load(Ordering::Relaxed) == 1, "probes {}", PROBES.load(Ordering::Relaxed));
            Ok(())
        });
        let other = KBox::pin_init(pci::Registration::<OtherDriver>::new(c_str!("abs_pci_other"), module), GFP_KERNEL);
        suite.run("devres_access_refuses_another_device", |case| {
            labtest_ensure!(case, other.is_ok(), "second driver: {:?}", other.as_ref().err());
            let seen = OTHER_ACCESS.load(Ordering::Acquire);
            labtest_ensure!(case, seen == 1, "the host bridge's probe got {seen} (1: EINVAL, 0: not probed, 2: access granted)");
            Ok(())
        });
        drop(other);
        // A work item drops the `Devres<SlowDrop>` (its drop sleeps 300 ms) while this thread
        // unbinds edu: the devres action finds the data revoked already and must wait until
        // the drop is over, or unbind would finish with the device's data still being released.
        let slow = SLOW.swap(core::ptr::null_mut(), Ordering::AcqRel);
        let spawned = if slow.is_null() {
            false
        } else {
            // SAFETY: from `KBox::into_raw` in probe, taken back once.
            let slow = unsafe { KBox::from_raw(slow) };
            workqueue::system().try_spawn(GFP_KERNEL, move || drop(slow)).is_ok()
        };
        let mut started = false;
        for _ in 0..2000 {
            if !spawned || SLOW_STARTED.load(Ordering::Acquire) {
                started = spawned;
                break;
            }
            msleep(1);
        }
        // The other order: the unbind releases the `Devres<SlowDrop>` of `LATE` (its drop sleeps
        // 300 ms) and a work item drops that `Devres` meanwhile: the drop must wait until the
        // data is released (or whatever the data uses, freed after the `Devres`, is freed under
        // it: `irq::Registration` frees its handler after its `Devres<FreeIrq>`).
        let late = LATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
        let late_spawned = if late.is_null() {
            false
        } else {
            // SAFETY: from `KBox::into_raw` in probe, taken back once.
            let late = unsafe { KBox::from_raw(late) };
            let dropper = move || {
                let mut waited = 0;
                while !LATE_STARTED.load(Ordering::Acquire) && waited < 3000 {
                    msleep(1);
                    waited += 1;
                }
                let started = LATE_STARTED.load(Ordering::Acquire);
                drop(late);
                let released = started && LATE_DONE.load(Ordering::Acquire);
                LATE_SEEN.store(if released { 1 } else { 2 }, Ordering::Release);
            };
            workqueue::system().try_spawn(GFP_KERNEL, dropper).is_ok()
        };
        drop(reg);
        let done_at_unbind = SLOW_DONE.load(Ordering::Acquire);
        let mut late_seen = 0;
        for _ in 0..5000 {
            late_seen = LATE_SEEN.load(Ordering::Acquire);
            if !late_spawned || late_seen != 0 {
                break;
            }
            msleep(1);
        }
        suite.run("devres_unbind_waits_for_a_concurrent_drop", |case| {
            labtest_ensure!(case, spawned && started, "the drop did not start (spawned {spawned})");
            labtest_ensure!(case, done_at_unbind, "unbind returned while the Devres drop was still releasing the data");
            Ok(())
        });
        suite.run("devres_drop_waits_for_a_concurrent_unbind", |case| {
            labtest_ensure!(case, late_spawned, "the dropping work item was not spawned");
            labtest_ensure!(case, late_seen == 1, "the Devres drop returned while the unbind was still releasing its data (seen {late_seen}: 0 never ran, 2 returned early or the release never started)");
            Ok(())
        });
        suite.run("unbind_runs_remove_and_drops_data", |case| {
            labtest_ensure!(case, REMOVES.load(Ordering::Relaxed) == 1, "removes {}", REMOVES.load(Ordering::Relaxed));
            labtest_ensure!(case, DROPS.load(Ordering::Relaxed) == 1, "drops {}", DROPS.load(Ordering::Relaxed));
            Ok(())
        });
        suite.run("bar_revoked_after_unbind", |case| {
            let raw = KEPT_ARC.swap(core::ptr::null_mut(), Ordering::AcqRel);
            labtest_ensure!(case, !raw.is_null(), "no BAR kept");
            // SAFETY: `raw` came from `KBox::into_raw` in probe and is taken back once.
            let kept = unsafe { KBox::from_raw(raw) };
            labtest_ensure!(case, kept.try_access().is_none(), "BAR still available after unbind");
            Ok(())
        });
        suite.finish();
        Ok(AbsPci)
    }
}
