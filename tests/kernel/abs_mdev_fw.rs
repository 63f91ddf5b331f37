// SPDX-License-Identifier: GPL-2.0
//! Guest test of the mdev driver framework: `kernel::mdev::parent` (a parent that owns its
//! data, typed per-type data, static mdev attributes), `kernel::vfio::pci` (virtual config
//! space, region decoding, SET_IRQS validation and eventfds), `kernel::sync::Completion` and
//! `kernel::sync_ext` (work flushing, the one-slot job worker), with bad input for each.
//!
//! The mdev cases register a parent on edu and create/remove mdevs through sysfs, as user
//! space would. Every count the checks read lives in the parent's data, not in a global: the
//! point of the framework is that callbacks reach it.
use core::{
    fmt::Write,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering},
};
use kernel::{
    alloc::{flags::GFP_KERNEL, KVec},
    c_str, debugfs,
    delay::msleep,
    delay::read_poll_timeout,
    error::code::{EBADF, EFAULT, EINVAL, ENODEV, ENOENT, ENOSPC, ENOTTY, ETIMEDOUT},
    labtest::{Case, Failed, Suite},
    device::Core,
    labtest_ensure, mdev,
    mdev::parent::{AttributeGroup, Capacity, MdevAttribute, ModuleDriver, ModuleSlot, ParentDriver, Registration, Reserved, TypeInfo},
    new_work, pci,
    prelude::*,
    str::{CStr, CString},
    sync::{Arc, Completion},
    sync_ext::{Job, JobWorker, Ticket, WorkFlush},
    sysfs,
    vfio::{self, pci as vpci, uapi},
    workqueue::{self, impl_has_work, Work, WorkItem},
};

#[path = "common/kfile.rs"]
mod kfile;
use kfile::{file_opens, sysfs_read, sysfs_write};

module! {
    type: AbsMdevFw,
    name: "abs_mdev_fw",
    author: "pasid-mdev project",
    description: "Guest test: mdev parent data, vfio::pci helpers, completion and work flushing",
    license: "GPL",
}

const UUID: &str = "9c3b6a10-8f25-4d7e-9a61-0c2f3e4d5a01";

// ---- the mdev driver under test --------------------------------------------------------------

/// Per-parent data: what the callbacks count, and its own drop check.
struct Shared {
    name: CString,
    /// Units (types take 1 or 2), 3 in all.
    cap: Arc<Capacity>,
    probes: AtomicU32,
    removes: AtomicU32,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropped after the parent was unregistered: every probed mdev was removed by then.
        let ok = self.probes.load(Ordering::Relaxed) == self.removes.load(Ordering::Relaxed);
        DATA_DROPPED_AFTER_REMOVES.store(ok, Ordering::Release);
        DATA_DROPS.fetch_add(1, Ordering::AcqRel);
    }
}

static DATA_DROPS: AtomicU32 = AtomicU32::new(0);
static DATA_DROPPED_AFTER_REMOVES: AtomicBool = AtomicBool::new(false);

/// Per-type data.
struct Units(u32);

/// Per-mdev data.
struct MdevData {
    units: Reserved,
    first_uuid_byte: u8,
}

struct TestMdev;

#[vtable]
impl ParentDriver for TestMdev {
    type ParentData = Shared;
    type TypeData = Units;
    type Data = MdevData;
    const NAME: &'static CStr = c_str!("abs_mdev_fw_mdev");
    const DEVICE_API: &'static CStr = c_str!("vfio-pci");
    const TYPES: &'static [TypeInfo<Units>] = &[
        TypeInfo::new(c_str!("one"), c_str!("fw one"), Units(1)),
        TypeInfo::new(c_str!("two"), c_str!("fw two"), Units(2)),
    ];
    const ATTRIBUTES: Option<&'static AttributeGroup<Self>> = Some(&ATTRS);

    fn probe(parent: &Shared, mdev: &mdev::Device, ty: &Units) -> Result<MdevData> {
        let units = parent.cap.take(ty.0)?;
        parent.probes.fetch_add(1, Ordering::AcqRel);
        Ok(MdevData { units, first_uuid_byte: mdev.uuid()[0] })
    }

    fn remove(parent: &Shared, _mdev: &mdev::Device, _data: MdevData) {
        // The units return when `_data` drops.
        parent.removes.fetch_add(1, Ordering::AcqRel);
    }

    fn available(parent: &Shared, ty: &Units) -> u32 {
        parent.cap.available(ty.0)
    }

    fn description(parent: &Shared, ty: &Units, out: &mut mdev::SysfsBuf<'_>) -> Result {
        writeln!(out, "{} units on {}", ty.0, parent.name.to_str().map_err(|_| EINVAL)?).map_err(|_| EINVAL)
    }
}

/// `fw_info`: the mdev's units, its UUID's first byte and the parent's probe count.
struct Info;

impl MdevAttribute<TestMdev> for Info {
    fn show(parent: &Shared, _mdev: &mdev::Device, data: &MdevData, out: &mut sysfs::Buffer<'_>) -> Result {
        writeln!(out, "units {} uuid0 {:02x} probes {}", data.units.units(), data.first_uuid_byte, parent.probes.load(Ordering::Relaxed))
            .map_err(|_| EINVAL)
    }
}

kernel::mdev_attribute_group!(ATTRS, TestMdev, [("fw_info", Info)]);

static MDEV_DRIVER: ModuleDriver<TestMdev> = ModuleDriver::new();
/// Whether `mdev::Parent::new` refused the framework's driver (it must: no data around it).
static PLAIN_PARENT_REFUSED: AtomicBool = AtomicBool::new(false);
static PARENT_NAME: AtomicPtr<CString> = AtomicPtr::new(core::ptr::null_mut());

// ---- a register device on the framework's default ops ------------------------------------------

/// The hooks `RegDev` saw, in order: one decimal digit each (1 reset, 2 open, 3 close, 4 unmap).
static REG_HOOKS: AtomicU32 = AtomicU32::new(0);
/// The first check of `register_device_ops_check` that failed (0: none; u32::MAX: not run).
static REG_OPS_FAILED: AtomicU32 = AtomicU32::new(u32::MAX);

fn hook(n: u32) {
    let _ = REG_HOOKS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| Some(h * 10 + n));
}

#[pin_data]
struct RegDev {
    #[pin]
    st: kernel::sync::Mutex<vpci::DeviceState<u32>>,
}

impl vpci::RegisterDeviceOps for RegDev {
    const NAME: &'static CStr = c_str!("abs-mdev-fw-regs");
    const FACE: vpci::Face = vpci::Face { vendor: 0x1234, device: 0xed03, class: 0x08_80_00, revision: 2, bar0_size: 0x100 };
    type Regs = u32;

    fn state(&self) -> &kernel::sync::Mutex<vpci::DeviceState<u32>> {
        &self.st
    }
    fn read_reg(_dev: &vfio::Device<Self>, regs: &u32, offset: u64) -> u32 {
        *regs + offset as u32
    }
    fn write_reg(dev: &vfio::Device<Self>, _offset: u64, value: u32) {
        dev.st.lock().regs = value;
    }
    fn reset(dev: &vfio::Device<Self>) {
        dev.st.lock().regs = 0;
        hook(1);
    }
    fn open(_dev: &vfio::Device<Self>) -> Result {
        hook(2);
        Ok(())
    }
    fn close(_dev: &vfio::Device<Self>) {
        hook(3);
    }
    fn unmap(_dev: &vfio::Device<Self>, _iova: u64, _length: u64) {
        hook(4);
    }
}

/// The framework's `DeviceOps` for a `RegisterDeviceOps` device, without a user (the
/// `read`/`write` paths need user memory: every `mdev:*` test runs them through both samples).
/// Returns the first failing check's number, 0 if none.
fn register_device_ops_check(parent: &kernel::device::Device) -> u32 {
    use vfio::DeviceOps;
    let Ok(mut state) = vpci::DeviceState::<u32>::new(&<RegDev as vpci::RegisterDeviceOps>::FACE) else {
        return 1;
    };
    state.regs = 7;
    let Ok(d) = vfio::Device::new(parent, try_pin_init!(RegDev { st <- kernel::new_mutex!(state) })) else {
        return 1;
    };
    REG_HOOKS.store(0, Ordering::Release);
    // 2: the name is the driver's.
    if <RegDev as DeviceOps>::NAME.as_bytes() != b"abs-mdev-fw-regs" {
        return 2;
    }
    // 3: open calls the driver's hook, then rebuilds the face and registers.
    if RegDev::open_device(&d).is_err() || d.st.lock().regs != 0 || REG_HOOKS.load(Ordering::Acquire) != 2 {
        return 3;
    }
    let cfg = d.st.lock().pci.cfg.read32(0).unwrap_or(0);
    // 4: the face has the driver's identity.
    if cfg != 0xed03_1234 || d.st.lock().pci.region_size(vpci::BAR0_REGION_INDEX) != 0x100 {
        return 4;
    }
    // 5: VFIO_DEVICE_RESET is the driver's reset.
    d.st.lock().regs = 5;
    if RegDev::ioctl(&d, uapi::DEVICE_RESET, 0) != Ok(0) || d.st.lock().regs != 0 || REG_HOOKS.load(Ordering::Acquire) != 21 {
        return 5;
    }
    // 6: other commands go to the face (ENOTTY for an unknown one).
    if RegDev::ioctl(&d, 0x3b7f, 0) != Err(ENOTTY) {
        return 6;
    }
    // 7: dma_unmap is the driver's unmap.
    RegDev::dma_unmap(&d, 0x1000, 0x1000);
    if REG_HOOKS.load(Ordering::Acquire) != 214 {
        return 7;
    }
    // 8: close resets, then calls the driver's close; 9: a release request without an
    // eventfd signals nothing.
    RegDev::close_device(&d);
    if REG_HOOKS.load(Ordering::Acquire) != 21413 || d.st.lock().pci.irqs.is_set(vpci::REQ_IRQ_INDEX) {
        return 8;
    }
    RegDev::request(&d, 1);
    0
}

// ---- the PCI driver: one parent per edu ------------------------------------------------------

struct EduParent {
    _parent: Pin<KBox<Registration<TestMdev>>>,
}

kernel::pci_device_table!(EDU_IDS, (), [(pci::DeviceId::from_id(0x1234, 0x11e8), ())]);

impl pci::Driver for EduParent {
    type IdInfo = ();
    const ID_TABLE: pci::IdTable<()> = EDU_IDS.table();

    fn probe(dev: &pci::Device<Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        let drv = MDEV_DRIVER.get()?;
        let plain = KBox::pin_init(mdev::Parent::new(dev.as_ref(), &drv, &[TestMdev::TYPES[0].desc]), GFP_KERNEL);
        PLAIN_PARENT_REFUSED.store(plain.err() == Some(EINVAL), Ordering::Release);
        let name = CString::try_from_fmt(kernel::fmt!("{}", dev.as_ref().name()))?;
        let name2 = CString::try_from_fmt(kernel::fmt!("{}", dev.as_ref().name()))?;
        REG_OPS_FAILED.store(register_device_ops_check(dev.as_ref()), Ordering::Release);
        let shared = Shared { name, cap: Capacity::new(3)?, probes: AtomicU32::new(0), removes: AtomicU32::new(0) };
        let parent = Registration::new(dev.as_ref(), &drv, shared)?;
        let old = PARENT_NAME.swap(KBox::into_raw(KBox::new(name2, GFP_KERNEL)?), Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: from `KBox::into_raw` above, taken back once.
            drop(unsafe { KBox::from_raw(old) });
        }
        Ok(KBox::pin(EduParent { _parent: parent }, GFP_KERNEL)?)
    }
}

fn type_path(parent: &CStr, ty: &str, attr: &str) -> Result<CString> {
    CString::try_from_fmt(kernel::fmt!("/sys/class/mdev_bus/{}/mdev_supported_types/abs_mdev_fw-{}/{}", parent, ty, attr))
}

fn read_is(case: &Case<'_>, path: Result<CString>, want: &[u8]) -> Result<(), Failed> {
    let path = case.check("path", path)?;
    let got = case.check("read", sysfs_read(&path))?;
    labtest_ensure!(case, got[..] == *want, "{:?}: {:?}, want {:?}", &*path, core::str::from_utf8(&got), core::str::from_utf8(want));
    Ok(())
}

fn mdev_cases(suite: &mut Suite, parent: &CStr) {
    suite.run("parent_data_reaches_type_callbacks", |case| {
        read_is(case, type_path(parent, "one", "available_instances"), b"3\n")?;
        read_is(case, type_path(parent, "two", "available_instances"), b"1\n")?;
        let mut want = KVec::new();
        let text = case.check("fmt", CString::try_from_fmt(kernel::fmt!("2 units on {}\n", parent)))?;
        case.check("fmt", want.extend_from_slice(text.as_bytes(), GFP_KERNEL).map_err(Into::into))?;
        read_is(case, type_path(parent, "two", "description"), &want)
    });
    suite.run("probe_gets_parent_and_type_data", |case| {
        case.check("create", sysfs_write(&case.check("path", type_path(parent, "two", "create"))?, UUID.as_bytes()))?;
        read_is(case, type_path(parent, "one", "available_instances"), b"1\n")?;
        read_is(case, type_path(parent, "two", "available_instances"), b"0\n")
    });
    suite.run("static_attribute_reaches_mdev_data", |case| {
        let p = CString::try_from_fmt(kernel::fmt!("/sys/bus/mdev/devices/{}/fw_info", UUID));
        read_is(case, p, b"units 2 uuid0 10 probes 1\n")
    });
    suite.run("probe_refusal_leaves_no_mdev", |case| {
        let p = case.check("path", type_path(parent, "two", "create"))?;
        let r = sysfs_write(&p, b"9c3b6a10-8f25-4d7e-9a61-0c2f3e4d5a02");
        labtest_ensure!(case, r.is_err(), "a second two-unit mdev was created with one unit left");
        let gone = CString::try_from_fmt(kernel::fmt!("/sys/bus/mdev/devices/9c3b6a10-8f25-4d7e-9a61-0c2f3e4d5a02/fw_info"));
        labtest_ensure!(case, sysfs_read(&case.check("path", gone)?).is_err(), "the refused mdev has attributes");
        Ok(())
    });
    suite.run("plain_parent_refuses_framework_driver", |case| {
        labtest_ensure!(case, PLAIN_PARENT_REFUSED.load(Ordering::Acquire), "mdev::Parent::new accepted a parent::Via driver");
        Ok(())
    });
}

// ---- vfio::pci ----------------------------------------------------------------------------------

fn cfg16(c: &vpci::ConfigSpace, off: u64) -> u16 {
    let mut b = [0u8; 2];
    let _ = c.read(off, &mut b);
    u16::from_le_bytes(b)
}

fn config_cases(suite: &mut Suite) {
    suite.run("config_space_write_masks", |case| {
        let mut c = vpci::ConfigSpace::new(0x1234, 0xed02, 0x08_80_00, 1);
        case.check("write ids", c.write(0, &[0xff; 4]))?;
        labtest_ensure!(case, cfg16(&c, 0) == 0x1234 && cfg16(&c, 2) == 0xed02, "IDs writable: {:#x} {:#x}", cfg16(&c, 0), cfg16(&c, 2));
        case.check("write command", c.write(4, &[0xff, 0xff]))?;
        labtest_ensure!(case, cfg16(&c, 4) == 0x0406, "command {:#x}, want memory|master|intx-disable", cfg16(&c, 4));
        labtest_ensure!(case, c.memory_enabled(), "memory space not enabled");
        labtest_ensure!(case, case.check("class", c.read32(8))? == 0x0880_0001, "class/revision");
        Ok(())
    });
    suite.run("config_bar_sizing", |case| {
        let mut c = vpci::ConfigSpace::new(0x1234, 0xed02, 0, 0);
        case.check("bar", c.add_bar32(0, 0x1000))?;
        case.check("size probe", c.write(0x10, &[0xff; 4]))?;
        let v = case.check("read bar", c.read32(0x10))?;
        labtest_ensure!(case, v == 0xffff_f000, "BAR0 after all-ones {:#x}", v);
        labtest_ensure!(case, c.add_bar32(6, 0x1000) == Err(EINVAL), "BAR index 6 accepted");
        labtest_ensure!(case, c.add_bar32(1, 0x1800) == Err(EINVAL), "non-power-of-two size accepted");
        labtest_ensure!(case, c.add_bar32(1, 8) == Err(EINVAL), "8-byte BAR accepted");
        Ok(())
    });
    suite.run("config_msi_capability", |case| {
        let mut c = vpci::ConfigSpace::new(0x1234, 0xed02, 0, 0);
        labtest_ensure!(case, c.add_msi(0x3c) == Err(EINVAL), "MSI inside the header accepted");
        labtest_ensure!(case, c.add_msi(0x42) == Err(EINVAL), "unaligned MSI accepted");
        case.check("msi", c.add_msi(0x40))?;
        labtest_ensure!(case, c.add_msi(0x50) == Err(EINVAL), "second MSI capability accepted");
        let mut b = [0u8; 1];
        case.check("cap ptr", c.read(0x34, &mut b))?;
        labtest_ensure!(case, b[0] == 0x40 && cfg16(&c, 6) & 0x10 != 0, "capability list not linked");
        labtest_ensure!(case, cfg16(&c, 0x40) == 0x0005, "MSI header {:#x}", cfg16(&c, 0x40));
        labtest_ensure!(case, !c.msi_enabled(), "MSI enabled at reset");
        case.check("control", c.write(0x42, &[0xff, 0xff]))?;
        labtest_ensure!(case, cfg16(&c, 0x42) == 0x0081 && c.msi_enabled(), "control {:#x}", cfg16(&c, 0x42));
        case.check("address", c.write(0x44, &[0xff; 4]))?;
        labtest_ensure!(case, case.check("addr", c.read32(0x44))? == 0xffff_fffc, "MSI address low bits writable");
        Ok(())
    });
    suite.run("config_access_outside_is_refused", |case| {
        let mut c = vpci::ConfigSpace::new(0x1234, 0xed02, 0, 0);
        case.check("msi", c.add_msi(0xf0))?;
        let mut b = [0u8; 4];
        labtest_ensure!(case, c.read(0xfe, &mut b) == Err(EINVAL), "read across the end accepted");
        labtest_ensure!(case, c.write(0xfc, &[0xff; 8]) == Err(EINVAL), "write across the end accepted");
        labtest_ensure!(case, case.check("data", c.read32(0xfc))? == 0, "a refused write changed bytes");
        labtest_ensure!(case, c.write(u64::MAX, &[1]) == Err(EINVAL), "write at u64::MAX accepted");
        Ok(())
    });
    suite.run("region_access_decoding", |case| {
        let size = |i: u32| match i {
            vpci::BAR0_REGION_INDEX => 0x1000,
            vpci::CONFIG_REGION_INDEX => 256,
            _ => 0,
        };
        let bar = vpci::region_offset(vpci::BAR0_REGION_INDEX);
        let cfg = vpci::region_offset(vpci::CONFIG_REGION_INDEX);
        labtest_ensure!(case, cfg == 7 << 40, "config offset {:#x}", cfg);
        let ok = vpci::RegionAccess::decode(cfg + 0x40, 2, size);
        labtest_ensure!(case, ok == Ok(vpci::RegionAccess { index: 7, offset: 0x40, len: 2 }), "{:?}", ok);
        labtest_ensure!(case, vpci::RegionAccess::decode(bar + 0xffc, 4, size).is_ok(), "last BAR0 word refused");
        for (pos, len, what) in [
            (bar + 0x1000, 4, "past BAR0"),
            (bar + 0xffe, 4, "straddling the end"),
            (bar, 0, "empty"),
            (vpci::region_offset(2), 4, "absent region"),
            (vpci::region_offset(vpci::NUM_REGIONS), 4, "index past the regions"),
            (!3u64, 4, "huge offset"),
        ] {
            labtest_ensure!(case, vpci::RegionAccess::decode(pos, len, size) == Err(EINVAL), "{} accepted", what);
        }
        let whole = case.check("whole config", vpci::RegionAccess::decode(cfg, 256, size))?;
        labtest_ensure!(case, whole.aligned(&[1, 2, 4]) == Err(EINVAL), "256-byte register access accepted");
        for (pos, len, what) in [(bar + 2, 4, "misaligned"), (bar, 3, "3 bytes"), (bar, 8, "8 bytes")] {
            let a = case.check("decode", vpci::RegionAccess::decode(pos, len, size))?;
            labtest_ensure!(case, a.aligned(&[4]) == Err(EINVAL), "{} register access accepted", what);
        }
        Ok(())
    });
}

// ---- SET_IRQS --------------------------------------------------------------------------------

const DATA_NONE: u32 = 1;
const DATA_BOOL: u32 = 2;
const DATA_EVENTFD: u32 = 4;
const ACTION_MASK: u32 = 8;
const ACTION_TRIGGER: u32 = 32;

/// Parses a `VFIO_DEVICE_SET_IRQS` argument as the handler reads it from user memory: the
/// `vfio_irq_set` header, then the data after it.
fn parse_irq_set(b: &[u8], irq_count: impl Fn(u32) -> u32) -> Result<uapi::IrqSet> {
    let hdr: uapi::IrqSetArg = uapi::from_prefix(b, uapi::IRQ_SET_MINSZ)?;
    uapi::IrqSet::parse(&hdr, b.get(uapi::IRQ_SET_MINSZ..).unwrap_or(&[]), vpci::NUM_IRQS, irq_count)
}

/// A `vfio_irq_set` (argsz, flags, index, start, count) followed by `data`.
fn irq_set(flags: u32, index: u32, start: u32, count: u32, data: &[u8]) -> Result<KVec<u8>> {
    let mut v = KVec::new();
    let argsz = (uapi::IRQ_SET_MINSZ + data.len()) as u32;
    for w in [argsz, flags, index, start, count] {
        v.extend_from_slice(&w.to_ne_bytes(), GFP_KERNEL)?;
    }
    v.extend_from_slice(data, GFP_KERNEL)?;
    Ok(v)
}

fn irq_cases(suite: &mut Suite) {
    static SUPPORTED: [u32; 2] = [vpci::MSI_IRQ_INDEX, vpci::REQ_IRQ_INDEX];
    suite.run("set_irqs_bad_input_refused", |case| {
        let fds = vpci::IrqEventfds::new(&SUPPORTED);
        let parse = |b: &[u8]| parse_irq_set(b, |i| fds.count(i));
        let msi = vpci::MSI_IRQ_INDEX;
        let fd = (-1i32).to_ne_bytes();
        for (b, what) in [
            (irq_set(DATA_NONE | DATA_BOOL | ACTION_TRIGGER, msi, 0, 1, &[1]), "two data types"),
            (irq_set(DATA_NONE | ACTION_TRIGGER | ACTION_MASK, msi, 0, 1, &[]), "two actions"),
            (irq_set(DATA_NONE | ACTION_TRIGGER | 1 << 9, msi, 0, 1, &[]), "unknown flag"),
            (irq_set(DATA_NONE | ACTION_TRIGGER, vpci::NUM_IRQS, 0, 0, &[]), "index past the IRQs"),
            (irq_set(DATA_EVENTFD | ACTION_TRIGGER, msi, 0, 2, &[0xff; 8]), "two vectors of one"),
            (irq_set(DATA_EVENTFD | ACTION_TRIGGER, msi, 1, 1, &fd), "start past the vectors"),
            (irq_set(DATA_EVENTFD | ACTION_TRIGGER, msi, 0, 0, &[]), "eventfd with count 0"),
            (irq_set(DATA_NONE | ACTION_TRIGGER, vpci::INTX_IRQ_INDEX, 0, 1, &[]), "vector of an absent index"),
        ] {
            let b = case.check("build", b)?;
            labtest_ensure!(case, parse(&b).err() == Some(EINVAL), "{} accepted", what);
        }
        // argsz shorter than the data it announces.
        let mut b = case.check("build", irq_set(DATA_EVENTFD | ACTION_TRIGGER, msi, 0, 1, &fd))?;
        b[0] = 20;
        labtest_ensure!(case, parse(&b).err() == Some(EINVAL), "argsz without room for the eventfd accepted");
        Ok(())
    });
    suite.run("set_irqs_applies_to_eventfds", |case| {
        let mut fds = vpci::IrqEventfds::new(&SUPPORTED);
        let parse = |b: &[u8], f: &vpci::IrqEventfds| parse_irq_set(b, |i| f.count(i));
        let msi = vpci::MSI_IRQ_INDEX;
        labtest_ensure!(case, fds.count(msi) == 1 && fds.count(vpci::INTX_IRQ_INDEX) == 0, "vector counts");
        // An fd number no process has open.
        let bad = case.check("build", irq_set(DATA_EVENTFD | ACTION_TRIGGER, msi, 0, 1, &100_000i32.to_ne_bytes()))?;
        let set = case.check("parse", parse(&bad, &fds))?;
        labtest_ensure!(case, fds.apply(&set) == Err(EBADF), "a closed fd was accepted as eventfd");
        labtest_ensure!(case, !fds.is_set(msi) && !fds.signal(msi), "eventfd set after a refused request");
        let mask = case.check("build", irq_set(DATA_NONE | ACTION_MASK, msi, 0, 1, &[]))?;
        let set = case.check("parse", parse(&mask, &fds))?;
        labtest_ensure!(case, fds.apply(&set) == Err(EINVAL), "masking a non-maskable vector accepted");
        let off = case.check("build", irq_set(DATA_NONE | ACTION_TRIGGER, vpci::INTX_IRQ_INDEX, 0, 0, &[]))?;
        let set = case.check("parse", parse(&off, &fds))?;
        labtest_ensure!(case, fds.apply(&set).is_ok(), "disabling an absent index refused");
        let clear = case.check("build", irq_set(DATA_EVENTFD | ACTION_TRIGGER, msi, 0, 1, &(-1i32).to_ne_bytes()))?;
        let set = case.check("parse", parse(&clear, &fds))?;
        labtest_ensure!(case, fds.apply(&set).is_ok() && !fds.is_set(msi), "fd -1 did not clear");
        Ok(())
    });
}

// ---- completion and work flushing ----------------------------------------------------------------

#[pin_data]
struct Worker {
    #[pin]
    done: Completion,
    ran: AtomicBool,
    delay_ms: u32,
    #[pin]
    work: Work<Worker>,
}

impl_has_work! {
    impl HasWork<Worker> for Worker { self.work }
}

impl WorkItem for Worker {
    type Pointer = Arc<Worker>;

    fn run(this: Arc<Worker>) {
        msleep(this.delay_ms);
        this.ran.store(true, Ordering::Release);
        this.done.complete_all();
    }
}

fn worker(delay_ms: u32) -> Result<Arc<Worker>> {
    Arc::pin_init(
        pin_init!(Worker {
            done <- Completion::new(),
            ran: AtomicBool::new(false),
            delay_ms,
            work <- new_work!("abs_mdev_fw::Worker"),
        }),
        GFP_KERNEL,
    )
}

fn sync_cases(suite: &mut Suite) {
    suite.run("completion_times_out_until_completed", |case| {
        let w = case.check("alloc", worker(0))?;
        labtest_ensure!(case, !w.done.is_done(), "new completion is done");
        labtest_ensure!(case, !w.done.wait_for_completion_timeout(2), "wait on an uncompleted completion returned true");
        Ok(())
    });
    suite.run("completion_wakes_waiter", |case| {
        let w = case.check("alloc", worker(50))?;
        let _ = workqueue::system().enqueue(w.clone());
        // 1000 jiffies: far more than the 50 ms the work sleeps, at any HZ.
        labtest_ensure!(case, w.done.wait_for_completion_timeout(1000), "completion from a work item never came");
        labtest_ensure!(case, w.ran.load(Ordering::Acquire) && w.done.is_done(), "woken before the work ran");
        Ok(())
    });
    suite.run("completion_reinit_rearms_shared", |case| {
        // Shared (`Arc`), as an interrupt handler and a waiter share it.
        let w = case.check("alloc", worker(50))?;
        let done: &Completion = &w.done;
        done.complete_all();
        labtest_ensure!(case, done.is_done() && done.wait_for_completion_timeout(1), "complete_all did not complete");
        done.reinit();
        labtest_ensure!(case, !done.is_done(), "done after reinit");
        labtest_ensure!(case, !done.wait_for_completion_timeout(2), "a wait after reinit returned true before any completion");
        let _ = workqueue::system().enqueue(w.clone());
        labtest_ensure!(case, w.done.wait_for_completion_timeout(1000) && w.ran.load(Ordering::Acquire), "the re-armed completion missed the work's completion");
        w.work.flush();
        w.done.reinit();
        w.done.complete();
        labtest_ensure!(case, w.done.wait_for_completion_timeout(1) && !w.done.is_done(), "complete() did not let exactly one wait through");
        Ok(())
    });
    suite.run("work_flush_waits_for_the_run", |case| {
        let w = case.check("alloc", worker(100))?;
        let _ = workqueue::system().enqueue(w.clone());
        let waited = w.work.flush();
        labtest_ensure!(case, waited && w.ran.load(Ordering::Acquire), "flush returned before the work ran (waited {})", waited);
        labtest_ensure!(case, !w.work.flush(), "flush of an idle work waited");
        Ok(())
    });
}

/// What the test jobs did: a bit per job that ran to its end, a count of jobs dropped.
struct JobLog {
    ran: AtomicU32,
    dropped: AtomicU32,
}

/// A job that sleeps `delay_ms`, then sets its bit in the log.
struct TestJob {
    log: Arc<JobLog>,
    bit: u32,
    delay_ms: u32,
}

impl Job for TestJob {
    fn run(self, _t: &Ticket<'_>) {
        msleep(self.delay_ms);
        self.log.ran.fetch_or(self.bit, Ordering::AcqRel);
    }
}

impl Drop for TestJob {
    fn drop(&mut self) {
        self.log.dropped.fetch_add(1, Ordering::AcqRel);
    }
}

fn job_log() -> Result<Arc<JobLog>> {
    Ok(Arc::new(JobLog { ran: AtomicU32::new(0), dropped: AtomicU32::new(0) }, GFP_KERNEL)?)
}

fn job_cases(suite: &mut Suite) {
    suite.run("job_worker_cancel_waits_for_the_running_job", |case| {
        let (log, w) = (case.check("alloc", job_log())?, case.check("worker", JobWorker::new())?);
        w.submit(TestJob { log: log.clone(), bit: 1, delay_ms: 100 });
        msleep(20); // The job is running (sleeping) now.
        w.cancel();
        let (ran, dropped) = (log.ran.load(Ordering::Acquire), log.dropped.load(Ordering::Acquire));
        labtest_ensure!(case, ran == 1 && dropped == 1, "cancel returned with the job running (ran {:#x}, dropped {})", ran, dropped);
        Ok(())
    });
    suite.run("job_worker_drops_replaced_and_cancelled_jobs_unrun", |case| {
        let (log, w) = (case.check("alloc", job_log())?, case.check("worker", JobWorker::new())?);
        w.submit(TestJob { log: log.clone(), bit: 1, delay_ms: 100 });
        msleep(20); // Job 1 runs; 2 is pending, then replaced by 4, which a cancel drops.
        w.submit(TestJob { log: log.clone(), bit: 2, delay_ms: 0 });
        w.submit(TestJob { log: log.clone(), bit: 4, delay_ms: 0 });
        w.cancel();
        let (ran, dropped) = (log.ran.load(Ordering::Acquire), log.dropped.load(Ordering::Acquire));
        labtest_ensure!(case, ran == 1 && dropped == 3, "ran {:#x} (want 0x1), dropped {} (want 3)", ran, dropped);
        w.submit(TestJob { log: log.clone(), bit: 8, delay_ms: 0 });
        w.cancel(); // Either ran or dropped unrun: never left pending.
        let (ran, dropped) = (log.ran.load(Ordering::Acquire), log.dropped.load(Ordering::Acquire));
        labtest_ensure!(case, dropped == 4 && ran & !9 == 0, "after a later job: ran {:#x}, dropped {}", ran, dropped);
        Ok(())
    });
    suite.run("job_worker_runs_a_submitted_job", |case| {
        let (log, w) = (case.check("alloc", job_log())?, case.check("worker", JobWorker::new())?);
        w.submit(TestJob { log: log.clone(), bit: 16, delay_ms: 0 });
        let mut waited = 0;
        while log.ran.load(Ordering::Acquire) == 0 && waited < 1000 {
            msleep(10);
            waited += 10;
        }
        labtest_ensure!(case, log.ran.load(Ordering::Acquire) == 16, "submitted job never ran (ran {:#x})", log.ran.load(Ordering::Acquire));
        Ok(())
    });
}


// ---- capacity, register device, pin gate, polling -------------------------------------------

fn capacity_cases(suite: &mut Suite) {
    suite.run("capacity_reserves_and_gives_back", |case| {
        let cap = case.check("alloc", Capacity::new(3))?;
        let two = case.check("take 2", cap.take(2))?;
        labtest_ensure!(case, two.units() == 2 && cap.available(1) == 1 && cap.available(2) == 0, "after taking 2 of 3: {} / {}", cap.available(1), cap.available(2));
        labtest_ensure!(case, cap.take(2).err() == Some(ENOSPC), "took 2 with 1 free");
        labtest_ensure!(case, cap.available(1) == 1, "a refused take changed the count: {}", cap.available(1));
        let one = case.check("take last", cap.take(1))?;
        labtest_ensure!(case, cap.take(1).err() == Some(ENOSPC) && cap.available(1) == 0, "took past the capacity");
        drop(two);
        drop(one);
        labtest_ensure!(case, cap.available(1) == 3, "dropped reservations gave back {} of 3", cap.available(1));
        Ok(())
    });
    suite.run("capacity_bad_input", |case| {
        let cap = case.check("alloc", Capacity::new(2))?;
        labtest_ensure!(case, cap.take(0).err() == Some(EINVAL), "take(0) accepted");
        labtest_ensure!(case, cap.available(0) == 0, "available(0) = {}", cap.available(0));
        labtest_ensure!(case, cap.take(u32::MAX).err() == Some(ENOSPC) && cap.available(1) == 2, "take(u32::MAX) changed the count");
        let empty = case.check("alloc", Capacity::new(0))?;
        labtest_ensure!(case, empty.take(1).err() == Some(ENOSPC) && empty.available(1) == 0, "an empty capacity gave a unit");
        Ok(())
    });
}

// ---- module data: the slot parents reach it through, debugfs files that keep their directory ----

/// A debugfs file's content for the `DirFile` case.
struct Marker;

impl debugfs::Show for Marker {
    fn show(&self, m: &mut debugfs::SeqFile) -> Result {
        writeln!(m, "marker 1").map_err(|_| EINVAL)
    }
}

kernel::debugfs_show_fops!(MARKER_FOPS, Marker);

fn module_data_cases(suite: &mut Suite) {
    suite.run("module_slot_set_get_take", |case| {
        let slot = ModuleSlot::<Marker>::new();
        labtest_ensure!(case, slot.get().err() == Some(ENODEV), "empty slot gave a reference");
        let data = case.check("alloc", Arc::new(Marker, GFP_KERNEL).map_err(Error::from))?;
        // SAFETY: a local slot, empty, used by this thread only.
        unsafe { slot.set(data.clone()) };
        let got = case.check("get", slot.get())?;
        labtest_ensure!(case, Arc::ptr_eq(&got, &data), "get returned another object");
        // SAFETY: as above; no `get` runs any more.
        let taken = unsafe { slot.take() };
        labtest_ensure!(case, taken.as_ref().is_some_and(|t| Arc::ptr_eq(t, &data)), "take returned another object");
        labtest_ensure!(case, slot.get().err() == Some(ENODEV), "get after take gave a reference");
        // SAFETY: as above.
        labtest_ensure!(case, unsafe { slot.take() }.is_none(), "second take gave a reference");
        Ok(())
    });
    suite.run("debugfs_dir_file_keeps_its_directory", |case| {
        let path = c_str!("/sys/kernel/debug/abs_mdev_fw/marker");
        let dir = case.check("dir", debugfs::Dir::new(c_str!("abs_mdev_fw"), None))?;
        let dir = case.check("alloc", Arc::new(dir, GFP_KERNEL).map_err(Error::from))?;
        let data = case.check("alloc", Arc::new(Marker, GFP_KERNEL).map_err(Error::from))?;
        let file = case.check("file", debugfs::Dir::show_file_in(&dir, c_str!("marker"), data, &MARKER_FOPS))?;
        // The file's reference is now the directory's last one.
        drop(dir);
        // (Opened, not read: the kernel cannot `kernel_read` a `seq_file` without `read_iter`.)
        let kept = file_opens(path);
        labtest_ensure!(case, kept.is_ok(), "file gone with the creator's directory reference dropped: {:?}", kept.err());
        drop(file);
        let gone = file_opens(path).err();
        labtest_ensure!(case, gone == Some(ENOENT), "file still there after drop: {:?}", gone);
        Ok(())
    });
}

fn register_device_cases(suite: &mut Suite) {
    suite.run("register_device_routes_accesses", |case| {
        let d = case.check("new", vpci::RegisterDevice::new(0x1234, 0xed02, 0x08_80_00, 1, 0x1000))?;
        let (bar, cfg) = (vpci::region_offset(vpci::BAR0_REGION_INDEX), vpci::region_offset(vpci::CONFIG_REGION_INDEX));
        labtest_ensure!(case, d.region_size(0) == 0x1000 && d.region_size(7) == 256 && d.region_size(1) == 0, "region sizes");
        labtest_ensure!(case, d.route(bar + 0x80, 4) == Ok(vpci::Target::Register(0x80)), "register access: {:?}", d.route(bar + 0x80, 4));
        let c = d.route(cfg + 0x10, 4);
        labtest_ensure!(case, c == Ok(vpci::Target::Config(vpci::RegionAccess { index: 7, offset: 0x10, len: 4 })), "config access: {:?}", c);
        labtest_ensure!(case, matches!(d.route(cfg, 256), Ok(vpci::Target::Config(_))), "whole config read refused");
        labtest_ensure!(case, case.check("bar0", d.cfg.read32(0x10))? == 0 && !d.cfg.msi_enabled(), "BAR0/MSI at reset");
        labtest_ensure!(case, d.irqs.count(vpci::MSI_IRQ_INDEX) == 1 && d.irqs.count(vpci::REQ_IRQ_INDEX) == 1 && d.irqs.count(vpci::INTX_IRQ_INDEX) == 0, "IRQ vectors");
        for (pos, len, what) in [
            (bar + 2, 4, "misaligned register"),
            (bar, 2, "2-byte register"),
            (bar, 8, "8-byte register"),
            (bar + 0x1000, 4, "past BAR0"),
            (vpci::region_offset(1), 4, "absent BAR1"),
            (cfg + 0xfe, 4, "across the end of config"),
            (bar, 0, "empty"),
            (u64::MAX, 4, "huge offset"),
        ] {
            labtest_ensure!(case, d.route(pos, len) == Err(EINVAL), "{} accepted: {:?}", what, d.route(pos, len));
        }
        Ok(())
    });
    suite.run("register_device_bad_bar_refused", |case| {
        for size in [0, 8, 0x1800, u32::MAX] {
            labtest_ensure!(case, vpci::RegisterDevice::new(0x1234, 0xed02, 0, 0, size).err() == Some(EINVAL), "BAR0 of {:#x} bytes accepted", size);
        }
        Ok(())
    });
}

fn pin_gate_cases(suite: &mut Suite) {
    suite.run("page_span_bad_input", |case| {
        labtest_ensure!(case, vfio::page_span(0x1000, 0x1000) == Ok((0x1000, 1)), "{:?}", vfio::page_span(0x1000, 0x1000));
        labtest_ensure!(case, vfio::page_span(0x1ffc, 8) == Ok((0x1000, 2)), "straddling: {:?}", vfio::page_span(0x1ffc, 8));
        labtest_ensure!(case, vfio::page_span(0, 512 * 4096) == Ok((0, 512)), "512 pages: {:?}", vfio::page_span(0, 512 * 4096));
        labtest_ensure!(case, vfio::page_span(u64::MAX, 1) == Ok((!0xfff, 1)), "the last byte: {:?}", vfio::page_span(u64::MAX, 1));
        for (iova, len, what) in [(0x1000, 0, "empty"), (u64::MAX - 3, 8, "wrapping"), (0, 512 * 4096 + 1, "513 pages")] {
            labtest_ensure!(case, vfio::page_span(iova, len) == Err(EINVAL), "{} range accepted: {:?}", what, vfio::page_span(iova, len));
        }
        Ok(())
    });
    suite.run("pin_gate_fences_and_waits_for_scopes", |case| {
        let gate = case.check("alloc", Arc::pin_init(vfio::PinGate::new(), GFP_KERNEL))?;
        let (log, w) = (case.check("alloc", job_log())?, case.check("worker", JobWorker::new())?);
        labtest_ensure!(case, gate.scope().check(0x1000, 0x1000).is_ok(), "fenced before any unmap");
        w.submit(HoldScope { gate: gate.clone(), log: log.clone(), delay_ms: 100 });
        let started = read_poll_timeout(|| Ok(log.ran.load(Ordering::Acquire)), |r| r & 1 != 0, 5, 1000);
        labtest_ensure!(case, started.is_ok(), "the scope-holding job never started");
        gate.unmap(0x1000, 0x1000);
        let ran = log.ran.load(Ordering::Acquire);
        labtest_ensure!(case, ran & 2 != 0, "unmap returned while a scope was held (ran {:#x})", ran);
        let s = gate.scope();
        labtest_ensure!(case, s.check(0x1000, 1) == Err(EFAULT) && s.check(0xfff, 2) == Err(EFAULT), "the unmapped range is not fenced");
        labtest_ensure!(case, s.check(0x2000, 0x1000).is_ok() && s.check(0, 0x1000).is_ok(), "a neighbouring range is fenced");
        drop(s);
        gate.clear();
        labtest_ensure!(case, gate.scope().check(0x1000, 0x1000).is_ok(), "fenced after clear");
        // A reset's wait: no fence, but it waits for the scope too.
        log.ran.store(0, Ordering::Release);
        w.submit(HoldScope { gate: gate.clone(), log: log.clone(), delay_ms: 100 });
        let started = read_poll_timeout(|| Ok(log.ran.load(Ordering::Acquire)), |r| r & 1 != 0, 5, 1000);
        labtest_ensure!(case, started.is_ok(), "the second scope-holding job never started");
        gate.wait_idle();
        let ran = log.ran.load(Ordering::Acquire);
        labtest_ensure!(case, ran & 2 != 0, "wait_idle returned while a scope was held (ran {:#x})", ran);
        labtest_ensure!(case, gate.scope().check(0x1000, 0x1000).is_ok(), "wait_idle fenced something");
        w.cancel();
        Ok(())
    });
    suite.run("read_poll_timeout_results", |case| {
        let mut n = 0u32;
        let r = read_poll_timeout(|| { n += 1; Ok(n) }, |&v| v == 3, 1, 1000);
        labtest_ensure!(case, r == Ok(3), "poll until 3: {:?}", r);
        let r = read_poll_timeout(|| Ok(0u32), |&v| v == 1, 10, 50);
        labtest_ensure!(case, r == Err(ETIMEDOUT), "a never-true condition gave {:?}", r);
        let mut calls = 0;
        let r: Result<u32> = read_poll_timeout(|| { calls += 1; Err(EBADF) }, |_| true, 1, 1000);
        labtest_ensure!(case, r == Err(EBADF) && calls == 1, "an op error gave {:?} after {} calls", r, calls);
        Ok(())
    });
}

/// A job that sleeps `delay_ms`, then records its ticket: bit 1 cancelled, bit 2 not.
struct TicketJob {
    log: Arc<JobLog>,
    delay_ms: u32,
}

impl Job for TicketJob {
    fn run(self, t: &Ticket<'_>) {
        msleep(self.delay_ms);
        self.log.ran.fetch_or(if t.cancelled() { 1 } else { 2 }, Ordering::AcqRel);
    }
}

fn ticket_cases(suite: &mut Suite) {
    suite.run("job_worker_ticket_sees_cancel", |case| {
        let (log, w) = (case.check("alloc", job_log())?, case.check("worker", JobWorker::new())?);
        w.submit(TicketJob { log: log.clone(), delay_ms: 100 });
        msleep(20); // The job is running (sleeping) now.
        w.abort();
        let before = log.ran.load(Ordering::Acquire);
        w.cancel();
        let ran = log.ran.load(Ordering::Acquire);
        labtest_ensure!(case, before == 0 && ran == 1, "running job's ticket after abort: ran {:#x} (want 0x1; before cancel {:#x})", ran, before);
        w.submit(TicketJob { log: log.clone(), delay_ms: 0 });
        let r = read_poll_timeout(|| Ok(log.ran.load(Ordering::Acquire)), |r| r & 2 != 0, 5, 1000);
        labtest_ensure!(case, r == Ok(3), "a job submitted after the cancel saw it: {:?}", r);
        w.cancel();
        Ok(())
    });
}

/// A job that holds a `PinGate` scope for `delay_ms` (bit 1: holding; bit 2: about to release).
struct HoldScope {
    gate: Arc<vfio::PinGate>,
    log: Arc<JobLog>,
    delay_ms: u32,
}

impl Job for HoldScope {
    fn run(self, _t: &Ticket<'_>) {
        let scope = self.gate.scope();
        self.log.ran.fetch_or(1, Ordering::AcqRel);
        msleep(self.delay_ms);
        self.log.ran.fetch_or(2, Ordering::AcqRel);
        drop(scope);
    }
}

struct AbsMdevFw;

impl kernel::Module for AbsMdevFw {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("abs_mdev_fw");
        config_cases(&mut suite);
        irq_cases(&mut suite);
        sync_cases(&mut suite);
        job_cases(&mut suite);
        capacity_cases(&mut suite);
        module_data_cases(&mut suite);
        register_device_cases(&mut suite);
        pin_gate_cases(&mut suite);
        ticket_cases(&mut suite);
        let drv = mdev::DriverRegistration::new_arc(module);
        suite.run("mdev_driver_registered", |case| {
            labtest_ensure!(case, drv.is_ok(), "mdev_register_driver: {:?}", drv.as_ref().err());
            Ok(())
        });
        if let Ok(drv) = drv {
            // SAFETY: the slot is empty and only this thread sets or takes it.
            unsafe { MDEV_DRIVER.set(drv) };
            let reg = KBox::pin_init(pci::Registration::<EduParent>::new(c_str!("abs_mdev_fw"), module), GFP_KERNEL);
            let name = PARENT_NAME.swap(core::ptr::null_mut(), Ordering::AcqRel);
            suite.run("parent_registered_on_edu", |case| {
                labtest_ensure!(case, reg.is_ok() && !name.is_null(), "pci registration / parent: {:?}", reg.as_ref().err());
                Ok(())
            });
            suite.run("register_device_ops_default", |case| {
                let failed = REG_OPS_FAILED.load(Ordering::Acquire);
                labtest_ensure!(case, failed == 0, "check {} failed (hooks seen {}; u32::MAX: probe never ran it)", failed, REG_HOOKS.load(Ordering::Acquire));
                Ok(())
            });
            if !name.is_null() {
                // SAFETY: from `KBox::into_raw` in probe, taken back once.
                let name = unsafe { KBox::from_raw(name) };
                mdev_cases(&mut suite, &name);
            }
            // Unbinding edu drops the registration with an mdev left: remove first, then data.
            drop(reg);
            suite.run("unregister_removes_mdevs_before_data_drops", |case| {
                labtest_ensure!(case, DATA_DROPS.load(Ordering::Acquire) == 1, "parent data dropped {} times", DATA_DROPS.load(Ordering::Acquire));
                labtest_ensure!(case, DATA_DROPPED_AFTER_REMOVES.load(Ordering::Acquire), "parent data dropped before every mdev was removed");
                Ok(())
            });
            // SAFETY: the PCI driver is unregistered: no probe calls `get` any more.
            drop(unsafe { MDEV_DRIVER.take() });
        }
        suite.finish();
        Ok(AbsMdevFw)
    }
}
