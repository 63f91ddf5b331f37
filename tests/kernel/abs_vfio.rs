// SPDX-License-Identifier: GPL-2.0
//! Guest test of `kernel::vfio`, `kernel::mdev` and `kernel::eventfd`: the VFIO uAPI parsers
//! (argsz, flags, indices, capability chains, SET_IRQS data), eventfd error paths, and an mdev
//! parent on edu whose mdev driver creates and registers an emulated-IOMMU VFIO device. mdevs
//! are created and removed through sysfs (as user space would), and the test checks probe/remove,
//! the UUID, the parent, available_instances/description and that the VFIO device's data is
//! released.
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use kernel::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings, c_str,
    error::code::{EBADF, EINVAL},
    eventfd::EventFd,
    labtest::{Case, Failed, Suite},
    device::Core,
    labtest_ensure, mdev, pci,
    new_mutex,
    prelude::*,
    str::{CStr, CString},
    sync::Mutex,
    sysfs,
    sync::Arc,
    types::ARef,
    vfio::{self, uapi},
};

module! {
    type: AbsVfio,
    name: "abs_vfio",
    author: "pasid-mdev project",
    description: "Guest test: VFIO, mdev and eventfd abstractions",
    license: "GPL",
}

const UUID: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
/// The second mdev's: a removed mdev's UUID stays taken until its release, which
/// CONFIG_DEBUG_KOBJECT_RELEASE delays by seconds.
const UUID2: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002";
/// `UUID` as the guid_t the mdev core parses it into (first three fields little-endian).
const UUID_BYTES: [u8; 16] = [
    0xf2, 0xf4, 0xb8, 0x83, 0x9f, 0x50, 0x2f, 0x38, 0x3c, 0x1e, 0xe6, 0xbf, 0xe0, 0xfa, 0x10, 0x01,
];

static MDEV_PROBES: AtomicU32 = AtomicU32::new(0);
static OPENS: AtomicU32 = AtomicU32::new(0);
static CLOSES: AtomicU32 = AtomicU32::new(0);
static UNMAPS: AtomicU32 = AtomicU32::new(0);
const TEST_IOVA: u64 = 0x10_0000;
static MDEV_REMOVES: AtomicU32 = AtomicU32::new(0);
static VFIO_RELEASES: AtomicU32 = AtomicU32::new(0);
static AVAILABLE: AtomicU32 = AtomicU32::new(2);
static UUID_OK: AtomicU32 = AtomicU32::new(0);
static PARENT_OK: AtomicU32 = AtomicU32::new(0);
/// Probes in which `vfio::Device::new` took a reference on the mdev (its parent) (issue 11: the
/// driver core references a parent only while the child is registered).
static PARENT_REF_TAKEN: AtomicU32 = AtomicU32::new(0);

/// The reference count of `dev`'s kobject (racy read, for a test).
fn device_refcount(dev: &kernel::device::Device) -> i32 {
    // SAFETY: `dev` is valid; the counter is an `atomic_t`, read once.
    unsafe { core::ptr::read_volatile(&(*dev.as_raw_ptr()).kobj.kref.refcount.refs.counter) }
}

// ---- the VFIO device of each mdev ------------------------------------------------------------

#[pin_data]
struct MdevState {
    type_index: usize,
    /// Long-lived pins, dropped in `dma_unmap` / `close_device`.
    #[pin]
    pins: Mutex<KVec<vfio::OwnedPinnedPages<MdevState>>>,
    _release: ReleaseMarker,
}

/// Counts releases of the VFIO device data.
struct ReleaseMarker;

impl Drop for ReleaseMarker {
    fn drop(&mut self) {
        VFIO_RELEASES.fetch_add(1, Ordering::Relaxed);
    }
}

impl vfio::DeviceOps for MdevState {
    const NAME: &'static CStr = c_str!("abs-vfio-mdev");

    fn ioctl(_dev: &vfio::Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::DEVICE_GET_INFO => uapi::DeviceInfo { flags: uapi::DEVICE_FLAGS_PCI, num_regions: 9, num_irqs: 5 }
                .reply_to_user(arg),
            uapi::DEVICE_GET_REGION_INFO => {
                let req = uapi::RegionInfoRequest::from_user(arg, 9)?;
                let mut caps = uapi::CapChain::new();
                if req.index == 0 {
                    caps.add(uapi::CAP_SPARSE_MMAP, 1, &uapi::sparse_mmap_payload(&[(0, 0x1000)])?)?;
                }
                let size = if req.index == 0 { 0x1000 } else { 0 };
                uapi::RegionInfo { flags: uapi::REGION_READ, size, offset: u64::from(req.index) << 40, caps: Some(&caps) }
                    .reply_to_user(&req, arg)
            }
            uapi::DEVICE_GET_IRQ_INFO => {
                let req = uapi::IrqInfoRequest::from_user(arg, 5)?;
                let count = if req.index == 1 { 1 } else { 0 };
                req.reply_to_user(arg, uapi::IRQ_INFO_EVENTFD, count)
            }
            uapi::DEVICE_SET_IRQS => {
                let set = uapi::IrqSet::from_user(arg, 5, |i| if i == 1 { 1 } else { 0 })?;
                if let uapi::IrqSetData::Eventfd(fds) = &set.data {
                    for &fd in fds.iter() {
                        if fd >= 0 {
                            // Validate the fd; a real device would keep it to signal the IRQ.
                            kernel::eventfd::EventFd::from_fd(fd)?;
                        }
                    }
                }
                Ok(0)
            }
            uapi::DEVICE_RESET => Ok(0),
            _ => Err(ENOTTY),
        }
    }

    fn read(_dev: &vfio::Device<Self>, mut buf: kernel::uaccess::UserSliceWriter, offset: u64) -> Result<usize> {
        // A fake 256-byte config space: vendor/device of QEMU's edu, then a counting pattern.
        let off = usize::try_from(offset).map_err(|_| EINVAL)?;
        if off >= 256 {
            return Ok(0);
        }
        let n = buf.len().min(256 - off);
        let mut tmp = [0u8; 256];
        for (i, b) in tmp.iter_mut().enumerate() {
            *b = i as u8;
        }
        tmp[..4].copy_from_slice(&[0x34, 0x12, 0xe8, 0x11]);
        buf.write_slice(&tmp[off..off + n])?;
        Ok(n)
    }

    fn open_device(_dev: &vfio::Device<Self>) -> Result {
        OPENS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn close_device(dev: &vfio::Device<Self>) {
        CLOSES.fetch_add(1, Ordering::Relaxed);
        *dev.pins.lock() = KVec::new();
    }

    fn dma_unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        // Drop (unpin) every long-lived pin in the range, as the VFIO contract requires.
        let mut pins = dev.pins.lock();
        let before = pins.len();
        let mut kept = KVec::new();
        for p in core::mem::take(&mut *pins) {
            if !p.overlaps(iova, length) {
                // Cannot fail: `kept` is at most as long as the old vector... but allocation
                // may; on failure the pin is dropped (unpinned), which is safe.
                let _ = kept.push(p, GFP_KERNEL);
            }
        }
        let dropped = before - kept.len();
        *pins = kept;
        if iova == TEST_IOVA && length == 4096 && dropped == 1 {
            UNMAPS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct MdevData {
    _attr: sysfs::File,
    _reg: vfio::Registration<MdevState>,
    _dev: ARef<vfio::Device<MdevState>>,
}

/// An extra sysfs attribute on each mdev device: its type and name.
struct MdevAttr;

impl sysfs::AttributeOps for MdevAttr {
    fn show(dev: &kernel::device::Device, out: &mut sysfs::Buffer<'_>) -> Result {
        use core::fmt::Write;
        writeln!(out, "abs {}", dev.name()).map_err(|_| EINVAL)
    }
}

kernel::device_attribute!(MDEV_ATTR, MdevAttr, "abs_info", 0o444);

/// The VFIO device of the first mdev, for the callback cases (dropped before the mdev goes).
static FIRST_VFIO: AtomicPtr<ARef<vfio::Device<MdevState>>> = AtomicPtr::new(core::ptr::null_mut());

struct MdevDriver;

#[vtable]
impl mdev::Driver for MdevDriver {
    type Data = Pin<KBox<MdevData>>;
    const NAME: &'static CStr = c_str!("abs_vfio_mdev");
    const DEVICE_API: &'static CStr = c_str!("vfio-pci");

    fn probe(mdev: &mdev::Device) -> Result<Self::Data> {
        MDEV_PROBES.fetch_add(1, Ordering::Relaxed);
        if mdev.uuid() == UUID_BYTES {
            UUID_OK.fetch_add(1, Ordering::Relaxed);
        }
        if pci::Device::from_device(mdev.parent_device()).is_some_and(|p| p.device_id() == 0x11e8) {
            PARENT_OK.fetch_add(1, Ordering::Relaxed);
        }
        let ty = mdev.mdev_type().index();
        let refs = device_refcount(mdev.as_ref());
        let dev = vfio::Device::new(
            mdev.as_ref(),
            try_pin_init!(MdevState { type_index: ty, pins <- new_mutex!(KVec::new()), _release: ReleaseMarker }),
        )?;
        if device_refcount(mdev.as_ref()) == refs + 1 && core::ptr::eq(dev.parent(), mdev.as_ref()) {
            PARENT_REF_TAKEN.fetch_add(1, Ordering::Relaxed);
        }
        kernel::dev_info!(mdev, "abs_vfio: mdev of type {} -> VFIO device\n", dev.type_index);
        let reg = vfio::Registration::new(&dev)?;
        AVAILABLE.fetch_sub(1, Ordering::Relaxed);
        if FIRST_VFIO.load(Ordering::Acquire).is_null() && MDEV_PROBES.load(Ordering::Relaxed) == 1 {
            FIRST_VFIO.store(KBox::into_raw(KBox::new(dev.clone(), GFP_KERNEL)?), Ordering::Release);
        }
        let attr = sysfs::create_file(mdev.as_ref(), &MDEV_ATTR)?;
        Ok(KBox::pin(MdevData { _attr: attr, _reg: reg, _dev: dev }, GFP_KERNEL)?)
    }

    fn remove(_mdev: &mdev::Device, data: Self::Data) {
        MDEV_REMOVES.fetch_add(1, Ordering::Relaxed);
        AVAILABLE.fetch_add(1, Ordering::Relaxed);
        drop(data);
    }

    fn get_available(_ty: &mdev::Type) -> u32 {
        AVAILABLE.load(Ordering::Relaxed)
    }

    fn show_description(ty: &mdev::Type, out: &mut mdev::SysfsBuf<'_>) -> Result {
        use core::fmt::Write;
        writeln!(out, "abs test type {}", ty.index()).map_err(|_| EINVAL)
    }
}

// ---- the parent: a PCI driver on edu --------------------------------------------------------

static MDEV_DRV: AtomicPtr<Arc<mdev::DriverRegistration<MdevDriver>>> = AtomicPtr::new(core::ptr::null_mut());
static PARENT_NAME: AtomicPtr<CString> = AtomicPtr::new(core::ptr::null_mut());

const TYPES: [mdev::TypeDesc; 2] = [
    mdev::TypeDesc { sysfs_name: c_str!("small"), pretty_name: c_str!("abs small") },
    mdev::TypeDesc { sysfs_name: c_str!("large"), pretty_name: c_str!("abs large") },
];

#[pin_data]
struct EduParent {
    #[pin]
    parent: mdev::Parent<MdevDriver>,
}

kernel::pci_device_table!(EDU_IDS, (), [(pci::DeviceId::from_id(0x1234, 0x11e8), ())]);

impl pci::Driver for EduParent {
    type IdInfo = ();
    const ID_TABLE: pci::IdTable<()> = EDU_IDS.table();

    fn probe(dev: &pci::Device<Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        let drv = MDEV_DRV.load(Ordering::Acquire);
        if drv.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: `init` keeps the boxed `Arc` alive while the PCI driver is registered.
        let drv = unsafe { &*drv };
        let name = CString::try_from_fmt(kernel::fmt!("{}", dev.as_ref().name()))?;
        let this = KBox::pin_init(try_pin_init!(EduParent { parent <- mdev::Parent::new(dev.as_ref(), drv, &TYPES) }), GFP_KERNEL)?;
        let old = PARENT_NAME.swap(KBox::into_raw(KBox::new(name, GFP_KERNEL)?), Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: from `KBox::into_raw` above, taken back once.
            drop(unsafe { KBox::from_raw(old) });
        }
        Ok(this)
    }
}

// ---- sysfs access from the test, as user space would do it ----------------------------------

#[path = "common/kfile.rs"]
mod kfile;
use kfile::{sysfs_read, sysfs_write};

fn type_path(parent: &CStr, ty: &str, attr: &str) -> Result<CString> {
    CString::try_from_fmt(kernel::fmt!("/sys/class/mdev_bus/{}/mdev_supported_types/abs_vfio-{}/{}", parent, ty, attr))
}

// ---- uAPI parser cases ------------------------------------------------------------------------

fn bytes(words: &[u32]) -> KVec<u8> {
    let mut v = KVec::new();
    for w in words {
        for b in w.to_ne_bytes() {
            let _ = v.push(b, GFP_KERNEL);
        }
    }
    v
}

const SET_DATA_NONE: u32 = 1;
const SET_DATA_BOOL: u32 = 2;
const SET_DATA_EVENTFD: u32 = 4;
const SET_ACTION_MASK: u32 = 8;
const SET_ACTION_TRIGGER: u32 = 32;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The uAPI structure `T` whose first `minsz` bytes are `words` (the rest zero), as the
/// handlers read it from user memory; a default (all-zero) one if `words` is too short.
fn arg<T: kernel::types::FromBytes + Default>(words: &[u32], minsz: usize) -> T {
    uapi::from_prefix(&bytes(words), minsz).unwrap_or_default()
}

/// A `VFIO_DEVICE_SET_IRQS` argument: the header's 5 words, then the data.
fn irq_set(words: &[u32]) -> (uapi::IrqSetArg, KVec<u8>) {
    let all = bytes(words);
    let data = all.get(uapi::IRQ_SET_MINSZ..).unwrap_or(&[]);
    let mut v = KVec::new();
    let _ = v.extend_from_slice(data, GFP_KERNEL);
    (arg(words, uapi::IRQ_SET_MINSZ), v)
}

fn uapi_cases(suite: &mut Suite) {
    suite.run("uapi_ioctl_numbers_match_c", |case| {
        labtest_ensure!(case, uapi::DEVICE_GET_INFO == 0x3b6b, "GET_INFO {:#x}", uapi::DEVICE_GET_INFO);
        labtest_ensure!(case, uapi::DEVICE_SET_IRQS == 0x3b6e, "SET_IRQS {:#x}", uapi::DEVICE_SET_IRQS);
        labtest_ensure!(case, uapi::DEVICE_RESET == 0x3b6f, "RESET {:#x}", uapi::DEVICE_RESET);
        Ok(())
    });
    suite.run("uapi_device_info_argsz_checked", |case| {
        let minsz = uapi::DEVICE_INFO_MINSZ;
        labtest_ensure!(case, minsz == 16, "minsz {minsz} (offsetofend num_irqs is 16)");
        labtest_ensure!(case, uapi::DeviceInfo::parse(&arg(&[8, 0, 0, 0], minsz)) == Err(EINVAL), "argsz 8 accepted");
        labtest_ensure!(case, uapi::DeviceInfo::parse(&arg(&[15, 0, 0, 0], minsz)) == Err(EINVAL), "argsz 15 accepted");
        let argsz = case.check("parse", uapi::DeviceInfo::parse(&arg(&[16, 0, 0, 0], minsz)))?;
        let r = uapi::DeviceInfo { flags: uapi::DEVICE_FLAGS_PCI, num_regions: 9, num_irqs: 5 }.encode(argsz);
        labtest_ensure!(case, r.argsz == 24 && r.num_regions == 9 && r.num_irqs == 5, "reply {} {} {}", r.argsz, r.num_regions, r.num_irqs);
        Ok(())
    });
    suite.run("uapi_region_info_index_and_caps", |case| {
        let minsz = uapi::REGION_INFO_MINSZ;
        let bad = uapi::RegionInfoRequest::parse(&arg(&[32, 0, 9, 0, 0, 0, 0, 0], minsz), 9);
        labtest_ensure!(case, bad == Err(EINVAL), "index 9 of 9 accepted");
        let small = uapi::RegionInfoRequest::parse(&arg(&[16, 0, 0, 0, 0, 0, 0, 0], minsz), 9);
        labtest_ensure!(case, small == Err(EINVAL), "argsz 16 accepted");
        let mut caps = uapi::CapChain::new();
        let sparse = case.check("sparse", uapi::sparse_mmap_payload(&[(0, 0x1000), (0x2000, 0x1000)]))?;
        case.check("add", caps.add(uapi::CAP_SPARSE_MMAP, 1, &sparse))?;
        case.check("add", caps.add(uapi::CAP_TYPE, 1, &bytes(&[1, 2])))?;
        let chain_len = caps.as_bytes().len();
        labtest_ensure!(case, chain_len == 48 + 16, "chain length {chain_len}");
        let info = uapi::RegionInfo { flags: uapi::REGION_READ, size: 0x1000, offset: 0, caps: Some(&caps) };
        // argsz too small for the caps: fixed part only, argsz = needed, cap_offset 0.
        let req = case.check("parse", uapi::RegionInfoRequest::parse(&arg(&[32, 0, 2, 0, 0, 0, 0, 0], minsz), 9))?;
        let r = case.check("encode", info.encode(&req))?;
        labtest_ensure!(case, r.len() == 32, "reply length {}", r.len());
        labtest_ensure!(case, u32_at(&r, 0) == 32 + chain_len as u32, "argsz {}", u32_at(&r, 0));
        labtest_ensure!(case, u32_at(&r, 4) & uapi::REGION_CAPS != 0 && u32_at(&r, 12) == 0, "flags/cap_offset");
        // Big enough: the chain follows, linked by offsets from the struct start.
        let req = case.check("parse", uapi::RegionInfoRequest::parse(&arg(&[200, 0, 2, 0, 0, 0, 0, 0], minsz), 9))?;
        let r = case.check("encode", info.encode(&req))?;
        labtest_ensure!(case, r.len() == 32 + chain_len && u32_at(&r, 12) == 32, "cap_offset {}", u32_at(&r, 12));
        let first_next = u32_at(&r, 32 + 4);
        labtest_ensure!(case, first_next == 32 + 48, "first cap next {first_next}");
        labtest_ensure!(case, u32_at(&r, 80 + 4) == 0, "last cap next not 0");
        labtest_ensure!(case, u32_at(&r, 40) == 2, "sparse nr_areas {}", u32_at(&r, 40));
        Ok(())
    });
    suite.run("uapi_irq_info_index_checked", |case| {
        let minsz = uapi::IRQ_INFO_MINSZ;
        labtest_ensure!(case, uapi::IrqInfoRequest::parse(&arg(&[16, 0, 5, 0], minsz), 5) == Err(EINVAL), "index 5 of 5");
        labtest_ensure!(case, uapi::IrqInfoRequest::parse(&arg(&[12, 0, 1, 0], minsz), 5) == Err(EINVAL), "argsz 12 accepted");
        let req = case.check("parse", uapi::IrqInfoRequest::parse(&arg(&[16, 0, 1, 0], minsz), 5))?;
        let r = req.encode(uapi::IRQ_INFO_EVENTFD, 1);
        labtest_ensure!(case, r.flags == uapi::IRQ_INFO_EVENTFD && r.count == 1 && r.index == 1, "reply");
        Ok(())
    });
    suite.run("uapi_set_irqs_malformed_rejected", |case| {
        let count = |i: u32| if i == 1 { 1 } else { 0 };
        let parse = |w: &[u32]| {
            let (hdr, data) = irq_set(w);
            uapi::IrqSet::parse(&hdr, &data, 5, count)
        };
        // Two data types.
        labtest_ensure!(case, parse(&[24, SET_DATA_BOOL | SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, 0, 1, 0]).is_err(), "two data types");
        // No action.
        labtest_ensure!(case, parse(&[20, SET_DATA_NONE, 1, 0, 1]).is_err(), "no action");
        // Unknown flag bit.
        labtest_ensure!(case, parse(&[20, SET_DATA_NONE | SET_ACTION_TRIGGER | 0x100, 1, 0, 1]).is_err(), "unknown flag");
        // Index out of range, vectors out of range.
        labtest_ensure!(case, parse(&[20, SET_DATA_NONE | SET_ACTION_TRIGGER, 5, 0, 1]).is_err(), "index 5");
        labtest_ensure!(case, parse(&[24, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, 0, 2, 7, 7]).is_err(), "2 vectors of 1");
        labtest_ensure!(case, parse(&[24, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, u32::MAX, 2, 7]).is_err(), "start overflow");
        // argsz too small for the eventfd array.
        labtest_ensure!(case, parse(&[20, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, 0, 1, 7]).is_err(), "argsz without data");
        // Buffer shorter than argsz claims.
        labtest_ensure!(case, parse(&[24, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, 0, 1]).is_err(), "truncated data");
        Ok(())
    });
    suite.run("uapi_set_irqs_valid_parsed", |case| {
        let count = |i: u32| if i == 1 { 2 } else { 0 };
        let parse = |w: &[u32]| {
            let (hdr, data) = irq_set(w);
            uapi::IrqSet::parse(&hdr, &data, 5, count)
        };
        let s = case.check("parse", parse(&[28, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, 0, 2, 5, u32::MAX]))?;
        labtest_ensure!(case, s.action == uapi::IrqAction::Trigger && s.index == 1 && s.count == 2, "{s:?}");
        labtest_ensure!(case, matches!(&s.data, uapi::IrqSetData::Eventfd(v) if v[..] == [5, -1]), "data {:?}", s.data);
        let s = case.check("parse", parse(&[20, SET_DATA_NONE | SET_ACTION_TRIGGER, 1, 0, 0]))?;
        labtest_ensure!(case, s.count == 0 && s.data == uapi::IrqSetData::None, "disable-all {s:?}");
        let s = case.check("parse", parse(&[24, SET_DATA_BOOL | SET_ACTION_MASK, 1, 1, 1, 1]))?;
        labtest_ensure!(case, s.action == uapi::IrqAction::Mask && matches!(&s.data, uapi::IrqSetData::Bool(v) if v[..] == [true]), "{s:?}");
        Ok(())
    });
    suite.run("eventfd_bad_fds_rejected", |case| {
        let r = EventFd::from_fd(-1);
        labtest_ensure!(case, r.as_ref().err() == Some(&EBADF), "fd -1: {:?}", r.as_ref().err());
        let r = EventFd::from_fd(1 << 20);
        labtest_ensure!(case, r.as_ref().err() == Some(&EBADF), "huge fd: {:?}", r.as_ref().err());
        Ok(())
    });
}

fn mdev_cases(suite: &mut Suite, parent: &CStr) {
    suite.run("mdev_type_attributes", |case| {
        let p = case.check("path", type_path(parent, "small", "available_instances"))?;
        let avail = case.check("read available_instances", sysfs_read(&p))?;
        labtest_ensure!(case, &avail[..] == b"2\n", "available_instances {:?}", &avail[..]);
        let p = case.check("path", type_path(parent, "large", "description"))?;
        let d = case.check("read description", sysfs_read(&p))?;
        labtest_ensure!(case, &d[..] == b"abs test type 1\n", "description {:?}", &d[..]);
        let p = case.check("path", type_path(parent, "large", "name"))?;
        let d = case.check("read name", sysfs_read(&p))?;
        labtest_ensure!(case, &d[..] == b"abs large\n", "name {:?}", &d[..]);
        let p = case.check("path", type_path(parent, "large", "device_api"))?;
        let d = case.check("read device_api", sysfs_read(&p))?;
        labtest_ensure!(case, &d[..] == b"vfio-pci\n", "device_api {:?}", &d[..]);
        Ok(())
    });
    suite.run("mdev_create_probes_vfio_device", |case| {
        let p = case.check("path", type_path(parent, "large", "create"))?;
        case.check("create", sysfs_write(&p, UUID.as_bytes()))?;
        labtest_ensure!(case, MDEV_PROBES.load(Ordering::Relaxed) == 1, "probes {}", MDEV_PROBES.load(Ordering::Relaxed));
        labtest_ensure!(case, UUID_OK.load(Ordering::Relaxed) == 1, "mdev UUID differs");
        labtest_ensure!(case, PARENT_OK.load(Ordering::Relaxed) == 1, "mdev parent is not edu");
        labtest_ensure!(case, PARENT_REF_TAKEN.load(Ordering::Relaxed) == 1, "vfio::Device::new took no reference on its parent");
        let p = case.check("path", type_path(parent, "small", "available_instances"))?;
        let avail = case.check("read", sysfs_read(&p))?;
        labtest_ensure!(case, &avail[..] == b"1\n", "available_instances {:?}", &avail[..]);
        let dup = sysfs_write(&case.check("path", type_path(parent, "large", "create"))?, UUID.as_bytes());
        labtest_ensure!(case, dup.is_err(), "duplicate UUID accepted");
        let info = case.check("path", CString::try_from_fmt(kernel::fmt!("/sys/bus/mdev/devices/{}/abs_info", UUID)))?;
        let d = case.check("read abs_info", sysfs_read(&info))?;
        let mut want = KVec::new();
        case.check("fmt", want.extend_from_slice(b"abs ", GFP_KERNEL).map_err(Into::into))?;
        case.check("fmt", want.extend_from_slice(UUID.as_bytes(), GFP_KERNEL).map_err(Into::into))?;
        case.check("fmt", want.push(b'\n', GFP_KERNEL).map_err(Into::into))?;
        labtest_ensure!(case, d[..] == want[..], "mdev attribute {:?}", &d[..]);
        let vfio = case.check("path", CString::try_from_fmt(kernel::fmt!("/sys/bus/mdev/devices/{}/vfio-dev", UUID)))?;
        // SAFETY: NUL-terminated path.
        let f = unsafe { bindings::filp_open(vfio.as_char_ptr(), bindings::O_DIRECTORY as i32, 0) };
        labtest_ensure!(case, kernel::error::from_err_ptr(f).is_ok(), "no vfio-dev directory under the mdev");
        // SAFETY: opened above.
        unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
        Ok(())
    });
    let vdev = FIRST_VFIO.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !vdev.is_null() {
        // SAFETY: from `KBox::into_raw` in probe, taken back once.
        let vdev = unsafe { KBox::from_raw(vdev) };
        vfio_callback_cases(suite, &vdev);
        mediated_dma_case(suite, &vdev);
    }
    suite.run("mdev_remove_releases_vfio_device", |case| {
        let p = case.check("path", CString::try_from_fmt(kernel::fmt!("/sys/bus/mdev/devices/{}/remove", UUID)))?;
        case.check("remove", sysfs_write(&p, b"1"))?;
        labtest_ensure!(case, MDEV_REMOVES.load(Ordering::Relaxed) == 1, "removes {}", MDEV_REMOVES.load(Ordering::Relaxed));
        // The release comes with the last reference; CONFIG_DEBUG_KOBJECT_RELEASE delays each
        // kobject release by up to 4 s, and the VFIO device's comes after its children's
        // (its cdev's): allow 20 s.
        for _ in 0..200 {
            if VFIO_RELEASES.load(Ordering::Relaxed) != 0 {
                break;
            }
            kernel::delay::msleep(100);
        }
        labtest_ensure!(case, VFIO_RELEASES.load(Ordering::Relaxed) == 1, "VFIO data released {} times", VFIO_RELEASES.load(Ordering::Relaxed));
        Ok(())
    });
    suite.run("mdev_left_behind_removed_with_parent", |case| {
        let p = case.check("path", type_path(parent, "small", "create"))?;
        case.check("create", sysfs_write(&p, UUID2.as_bytes()))?;
        labtest_ensure!(case, MDEV_PROBES.load(Ordering::Relaxed) == 2, "probes {}", MDEV_PROBES.load(Ordering::Relaxed));
        Ok(())
    });
}

// ---- VFIO callbacks through the real C ops table, with user memory ---------------------------

/// Anonymous user memory in the current (insmod) process, unmapped on drop.
struct UserPage(usize);

impl UserPage {
    fn new() -> Result<Self> {
        // SAFETY: maps anonymous memory into the current process, which has an mm (insmod).
        let a = unsafe {
            bindings::vm_mmap(
                core::ptr::null_mut(),
                0,
                4096,
                (bindings::PROT_READ | bindings::PROT_WRITE) as _,
                (bindings::MAP_PRIVATE | bindings::MAP_ANONYMOUS) as _,
                0,
            )
        };
        if a as isize >= -4095 && (a as isize) < 0 {
            return Err(kernel::error::Error::from_errno(a as i32));
        }
        Ok(Self(a as usize))
    }

    fn put(&self, off: usize, data: &[u8]) -> Result {
        kernel::uaccess::UserSlice::new(self.0 + off, data.len()).writer().write_slice(data)
    }

    fn get(&self, off: usize, out: &mut [u8]) -> Result {
        kernel::uaccess::UserSlice::new(self.0 + off, out.len()).reader().read_slice(out)
    }
}

impl Drop for UserPage {
    fn drop(&mut self) {
        // SAFETY: mapped in `new`.
        unsafe { bindings::vm_munmap(self.0 as _, 4096) };
    }
}

fn call_ioctl(dev: &vfio::Device<MdevState>, cmd: u32, arg: usize) -> isize {
    // SAFETY: the device is registered; `ops` is our promoted ops table.
    unsafe {
        let ops = (*dev.as_raw()).ops;
        ((*ops).ioctl.unwrap())(dev.as_raw(), cmd, arg)
    }
}

fn call_read(dev: &vfio::Device<MdevState>, ubuf: usize, count: usize, pos: &mut i64) -> isize {
    // SAFETY: as above; `pos` is valid for the call.
    unsafe {
        let ops = (*dev.as_raw()).ops;
        ((*ops).read.unwrap())(dev.as_raw(), ubuf as *mut _, count, pos)
    }
}

fn vfio_callback_cases(suite: &mut Suite, dev: &vfio::Device<MdevState>) {
    suite.run("vfio_ioctl_get_info_through_ops", |case| {
        let u = case.check("vm_mmap", UserPage::new())?;
        case.check("put", u.put(0, &[0xaa; 32]))?;
        case.check("put", u.put(0, &bytes(&[16, 0, 0, 0])))?;
        let r = call_ioctl(dev, uapi::DEVICE_GET_INFO, u.0);
        labtest_ensure!(case, r == 0, "GET_INFO returned {r}");
        let mut out = [0u8; 24];
        case.check("get", u.get(0, &mut out))?;
        labtest_ensure!(case, u32_at(&out, 4) == uapi::DEVICE_FLAGS_PCI && u32_at(&out, 8) == 9 && u32_at(&out, 12) == 5, "info {:?}", &out[..16]);
        labtest_ensure!(case, out[16..] == [0xaa; 8], "wrote past argsz: {:?}", &out[16..]);
        Ok(())
    });
    suite.run("vfio_ioctl_malformed_arguments_rejected", |case| {
        let u = case.check("vm_mmap", UserPage::new())?;
        case.check("put", u.put(0, &bytes(&[8, 0, 0, 0])))?;
        let r = call_ioctl(dev, uapi::DEVICE_GET_INFO, u.0);
        labtest_ensure!(case, r == -(bindings::EINVAL as isize), "argsz 8: {r}");
        case.check("put", u.put(0, &bytes(&[32, 0, 9, 0, 0, 0, 0, 0])))?;
        let r = call_ioctl(dev, uapi::DEVICE_GET_REGION_INFO, u.0);
        labtest_ensure!(case, r == -(bindings::EINVAL as isize), "region index 9 of 9: {r}");
        case.check("put", u.put(0, &bytes(&[20, SET_DATA_BOOL | SET_DATA_NONE | SET_ACTION_TRIGGER, 1, 0, 1])))?;
        let r = call_ioctl(dev, uapi::DEVICE_SET_IRQS, u.0);
        labtest_ensure!(case, r == -(bindings::EINVAL as isize), "SET_IRQS two data types: {r}");
        case.check("put", u.put(0, &bytes(&[24, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, 1, 0, 1, 0])))?;
        let r = call_ioctl(dev, uapi::DEVICE_SET_IRQS, u.0);
        labtest_ensure!(case, r < 0, "SET_IRQS with a non-eventfd fd: {r}");
        let r = call_ioctl(dev, uapi::DEVICE_GET_INFO, 0x10);
        labtest_ensure!(case, r == -(bindings::EFAULT as isize), "unmapped user pointer: {r}");
        let r = call_ioctl(dev, 0x3b00, u.0);
        labtest_ensure!(case, r == -(bindings::ENOTTY as isize), "unknown ioctl: {r}");
        Ok(())
    });
    suite.run("vfio_ioctl_region_info_caps_to_user", |case| {
        let u = case.check("vm_mmap", UserPage::new())?;
        case.check("put", u.put(0, &bytes(&[32, 0, 0, 0, 0, 0, 0, 0])))?;
        let r = call_ioctl(dev, uapi::DEVICE_GET_REGION_INFO, u.0);
        labtest_ensure!(case, r == 0, "GET_REGION_INFO returned {r}");
        let mut out = [0u8; 64];
        case.check("get", u.get(0, &mut out))?;
        let needed = u32_at(&out, 0);
        labtest_ensure!(case, needed == 32 + 8 + 8 + 16 && u32_at(&out, 12) == 0, "argsz {needed} cap_offset {}", u32_at(&out, 12));
        case.check("put", u.put(0, &bytes(&[needed, 0, 0, 0, 0, 0, 0, 0])))?;
        let r = call_ioctl(dev, uapi::DEVICE_GET_REGION_INFO, u.0);
        labtest_ensure!(case, r == 0, "second GET_REGION_INFO returned {r}");
        case.check("get", u.get(0, &mut out))?;
        labtest_ensure!(case, u32_at(&out, 12) == 32 && u32_at(&out, 32) == u32::from(uapi::CAP_SPARSE_MMAP) | (1 << 16), "cap header {:?}", &out[32..40]);
        labtest_ensure!(case, u32_at(&out, 40) == 1, "nr_areas {}", u32_at(&out, 40));
        Ok(())
    });
    suite.run("vfio_read_through_ops_advances_pos", |case| {
        let u = case.check("vm_mmap", UserPage::new())?;
        let mut pos = 0i64;
        let r = call_read(dev, u.0, 8, &mut pos);
        labtest_ensure!(case, r == 8 && pos == 8, "read returned {r}, pos {pos}");
        let mut out = [0u8; 8];
        case.check("get", u.get(0, &mut out))?;
        labtest_ensure!(case, out == [0x34, 0x12, 0xe8, 0x11, 4, 5, 6, 7], "bytes {out:?}");
        let mut pos = 250i64;
        let r = call_read(dev, u.0, 16, &mut pos);
        labtest_ensure!(case, r == 6 && pos == 256, "read at the end returned {r}, pos {pos}");
        let r = call_read(dev, 0x10, 8, &mut 0i64);
        labtest_ensure!(case, r == -(bindings::EFAULT as isize), "read into an unmapped buffer: {r}");
        Ok(())
    });
}

// ---- mediated DMA: iommufd IOAS + emulated-IOMMU bind, as a VMM would do it ---------------

/// Calls a file's `unlocked_ioctl` with a user-memory argument.
fn file_ioctl(f: *mut bindings::file, cmd: u32, arg: usize) -> isize {
    // SAFETY: `f` is an open file of a driver with `unlocked_ioctl` (iommufd, vfio cdev).
    unsafe { ((*(*f).f_op).unlocked_ioctl.unwrap())(f, cmd, arg as _) }
}

fn open_file(path: &CStr) -> Result<*mut bindings::file> {
    // SAFETY: NUL-terminated path.
    kernel::error::from_err_ptr(unsafe { bindings::filp_open(path.as_char_ptr(), bindings::O_RDWR as i32, 0) })
}

const IOMMU_IOAS_ALLOC: u32 = kernel::ioctl::_IO(b';' as u32, 0x81);
const IOMMU_IOAS_MAP: u32 = kernel::ioctl::_IO(b';' as u32, 0x85);
const IOMMU_IOAS_UNMAP: u32 = kernel::ioctl::_IO(b';' as u32, 0x86);
const VFIO_DEVICE_BIND_IOMMUFD: u32 = kernel::ioctl::_IO(b';' as u32, 100 + 18);
const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u32 = kernel::ioctl::_IO(b';' as u32, 100 + 19);

fn words64(w32: &[u32], w64: &[u64]) -> KVec<u8> {
    let mut v = bytes(w32);
    for w in w64 {
        let _ = v.extend_from_slice(&w.to_ne_bytes(), GFP_KERNEL);
    }
    v
}

fn mediated_dma_case(suite: &mut Suite, dev: &ARef<vfio::Device<MdevState>>) {
    suite.run("vfio_iommufd_bind_pin_pages_dma_rw_unmap", |case| {
        let data = case.check("vm_mmap", UserPage::new())?;
        let args = case.check("vm_mmap", UserPage::new())?;
        let pattern: [u8; 32] = core::array::from_fn(|i| 0x40 + i as u8);
        case.check("put", data.put(0, &pattern))?;
        // iommufd with an IOAS mapping the user page at TEST_IOVA; installed as an fd because
        // VFIO_DEVICE_BIND_IOMMUFD takes a descriptor.
        let ictx = case.check("open /dev/iommu", open_file(c_str!("/dev/iommu")))?;
        // SAFETY: FFI calls; the fd takes over the file reference.
        let fd = unsafe { bindings::get_unused_fd_flags(bindings::O_CLOEXEC) };
        labtest_ensure!(case, fd >= 0, "no fd: {fd}");
        // SAFETY: `fd` is reserved above; `ictx` is an open file whose reference moves into it.
        unsafe { bindings::fd_install(fd as u32, ictx) };
        let res = (|| -> Result<(), Failed> {
            case.check("put", args.put(0, &bytes(&[12, 0, 0])))?;
            let r = file_ioctl(ictx, IOMMU_IOAS_ALLOC, args.0);
            labtest_ensure!(case, r == 0, "IOAS_ALLOC {r}");
            let mut out = [0u8; 12];
            case.check("get", args.get(0, &mut out))?;
            let ioas = u32_at(&out, 8);
            case.check("put", args.put(0, &words64(&[40, 1 | 2 | 4, ioas, 0], &[data.0 as u64, 4096, TEST_IOVA])))?;
            let r = file_ioctl(ictx, IOMMU_IOAS_MAP, args.0);
            labtest_ensure!(case, r == 0, "IOAS_MAP {r}");
            // Not open yet: the emulated IOMMU has no access, pinning must fail.
            labtest_ensure!(case, dev.pin_pages(TEST_IOVA, 1, kernel::iommu::Prot::READ).is_err(), "pinned while closed");
            let path = case.check("path", CString::try_from_fmt(kernel::fmt!("/dev/vfio/devices/{}", dev.device().name())))?;
            let vf = case.check("open vfio cdev", open_file(&path))?;
            let inner = (|| -> Result<(), Failed> {
                case.check("put", args.put(0, &bytes(&[16, 0, fd as u32, 0])))?;
                let r = file_ioctl(vf, VFIO_DEVICE_BIND_IOMMUFD, args.0);
                labtest_ensure!(case, r == 0, "BIND_IOMMUFD {r}");
                labtest_ensure!(case, OPENS.load(Ordering::Relaxed) == 1, "open_device ran {} times", OPENS.load(Ordering::Relaxed));
                case.check("put", args.put(0, &bytes(&[12, 0, ioas])))?;
                let r = file_ioctl(vf, VFIO_DEVICE_ATTACH_IOMMUFD_PT, args.0);
                labtest_ensure!(case, r == 0, "ATTACH_IOMMUFD_PT {r}");
                // Mediated DMA through the user's IOAS.
                let mut got = [0u8; 32];
                case.check("dma_read", dev.dma_read(TEST_IOVA, &mut got))?;
                labtest_ensure!(case, got == pattern, "dma_read {:?}", &got[..8]);
                case.check("dma_write", dev.dma_write(TEST_IOVA + 0x100, b"mediated"))?;
                let mut back = [0u8; 8];
                case.check("get", data.get(0x100, &mut back))?;
                labtest_ensure!(case, &back == b"mediated", "user page after dma_write {back:?}");
                labtest_ensure!(case, dev.dma_read(0x90_0000, &mut got).is_err(), "dma_read of an unmapped IOVA");
                {
                    let pins = case.check("pin_pages", dev.pin_pages(TEST_IOVA, 1, kernel::iommu::Prot::READ | kernel::iommu::Prot::WRITE))?;
                    labtest_ensure!(case, pins.len() == 1 && pins.phys(0).is_some(), "pins");
                }
                // A long-lived pin kept in the device state: IOAS_UNMAP must make the driver
                // drop it through dma_unmap.
                let owned = case.check("pin_pages_owned", dev.pin_pages_owned(TEST_IOVA, 1, kernel::iommu::Prot::READ))?;
                case.check("keep pin", dev.pins.lock().push(owned, GFP_KERNEL).map_err(Into::into))?;
                labtest_ensure!(case, dev.pin_pages(TEST_IOVA + 1, 1, kernel::iommu::Prot::READ).is_err(), "misaligned pin");
                labtest_ensure!(case, dev.pin_pages(0x90_0000, 1, kernel::iommu::Prot::READ).is_err(), "pin of an unmapped IOVA");
                // Unmapping the IOAS range calls dma_unmap.
                case.check("put", args.put(0, &words64(&[24, ioas], &[TEST_IOVA, 4096])))?;
                let r = file_ioctl(ictx, IOMMU_IOAS_UNMAP, args.0);
                labtest_ensure!(case, r == 0, "IOAS_UNMAP {r}");
                labtest_ensure!(case, UNMAPS.load(Ordering::Relaxed) == 1, "dma_unmap ran {} times", UNMAPS.load(Ordering::Relaxed));
                Ok(())
            })();
            // SAFETY: opened above; the last reference. A plain `filp_close` would defer the
            // release to task work (run when insmod returns to user space), but the mdev
            // removal below waits for the close: release synchronously (close_device, unbind).
            unsafe { bindings::__fput_sync(vf) };
            inner?;
            labtest_ensure!(case, CLOSES.load(Ordering::Relaxed) == 1, "close_device ran {} times", CLOSES.load(Ordering::Relaxed));
            Ok(())
        })();
        // SAFETY: installed above.
        unsafe { bindings::close_fd(fd as u32) };
        res
    });
}

struct AbsVfio;

fn check_final(case: &Case<'_>) -> Result<(), Failed> {
    labtest_ensure!(case, MDEV_REMOVES.load(Ordering::Relaxed) == 2, "removes {}", MDEV_REMOVES.load(Ordering::Relaxed));
    labtest_ensure!(case, VFIO_RELEASES.load(Ordering::Relaxed) == 2, "releases {}", VFIO_RELEASES.load(Ordering::Relaxed));
    Ok(())
}

impl kernel::Module for AbsVfio {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("abs_vfio");
        uapi_cases(&mut suite);
        let drv = mdev::DriverRegistration::<MdevDriver>::new_arc(module);
        suite.run("mdev_driver_registered", |case| {
            labtest_ensure!(case, drv.is_ok(), "mdev_register_driver: {:?}", drv.as_ref().err());
            let dup = mdev::DriverRegistration::<MdevDriver>::new_arc(module);
            labtest_ensure!(case, dup.is_err(), "a second mdev driver with the same name registered");
            Ok(())
        });
        if let Ok(drv) = drv {
            let boxed = KBox::new(drv, GFP_KERNEL)?;
            let raw = KBox::into_raw(boxed);
            MDEV_DRV.store(raw, Ordering::Release);
            let reg = KBox::pin_init(pci::Registration::<EduParent>::new(c_str!("abs_vfio"), module), GFP_KERNEL);
            let name = PARENT_NAME.swap(core::ptr::null_mut(), Ordering::AcqRel);
            suite.run("mdev_parent_registered_on_edu", |case| {
                labtest_ensure!(case, reg.is_ok() && !name.is_null(), "pci registration / parent: {:?}", reg.as_ref().err());
                Ok(())
            });
            if !name.is_null() {
                // SAFETY: from `KBox::into_raw` in probe, taken back once.
                let name = unsafe { KBox::from_raw(name) };
                mdev_cases(&mut suite, &name);
            }
            // Unbinding edu unregisters the parent, which removes the mdev left behind.
            drop(reg);
            suite.run("parent_unregister_removes_mdevs", check_final);
            MDEV_DRV.store(core::ptr::null_mut(), Ordering::Release);
            // SAFETY: from `KBox::into_raw` above; the PCI driver that used it is gone.
            drop(unsafe { KBox::from_raw(raw) });
        }
        suite.finish();
        Ok(AbsVfio)
    }
}
