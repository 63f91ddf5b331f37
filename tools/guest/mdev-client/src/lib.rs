// SPDX-License-Identifier: GPL-2.0
//! A user-space driver for the `edu_mdev` sample (register file in `docs/sample-mdev.md`):
//! creates mdevs through sysfs, opens them through the classic VFIO group/container path (type1
//! IOMMU), maps its own buffers, and runs copies through the virtual engine, waiting on the
//! completion eventfd.
//!
//! No libc crate: the few calls std lacks (ioctl, mmap, eventfd, poll) are declared here.

pub mod vm;

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

extern "C" {
    fn ioctl(fd: i32, req: u64, ...) -> i32;
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64)
        -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
    fn eventfd(initval: u32, flags: i32) -> i32;
    fn poll(fds: *mut PollFd, nfds: u64, timeout: i32) -> i32;
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const fn vfio_io(nr: u64) -> u64 {
    (0x3b << 8) | (100 + nr)
}
pub const VFIO_GET_API_VERSION: u64 = vfio_io(0);
pub const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
pub const VFIO_SET_IOMMU: u64 = vfio_io(2);
pub const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
pub const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
pub const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = vfio_io(9);
pub const VFIO_DEVICE_SET_IRQS: u64 = vfio_io(10);
pub const VFIO_DEVICE_RESET: u64 = vfio_io(11);
pub const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
pub const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);
const VFIO_TYPE1V2_IOMMU: u64 = 3;
pub const BAR0_INDEX: u32 = 0;
pub const CONFIG_INDEX: u32 = 7;
pub const MSI_INDEX: u32 = 1;
pub const REQ_INDEX: u32 = 4;

/// The copy engine's register file and `ERROR` codes (`docs/sample-mdev.md`, "BAR0: the copy
/// engine"), as the sample defines them: one definition, like a uAPI header shared by the
/// kernel and its users.
pub use copy_engine::{regfile::regs, CopyError};

/// What a `STATUS` value says about the last command: `None` while it has not ended (`DONE`
/// clear), else `Ok(())` or `Err(ERROR code)`.
pub fn status_outcome(status: u32) -> Option<Result<(), u32>> {
    if status & regs::STATUS_DONE == 0 {
        return None;
    }
    let code = (status >> regs::ERROR_SHIFT) & 0xff;
    Some(if code == 0 { Ok(()) } else { Err(code) })
}

/// The calling thread's `errno` after a failed call.
pub fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// An ioctl whose argument is `words` (a VFIO/iommufd argument structure as 32-bit words):
/// `Ok(return value)` or `Err(errno)`. For tests of malformed arguments.
pub fn ioctl_words(fd: RawFd, req: u64, words: &mut [u32]) -> Result<i32, i32> {
    // SAFETY: `words` is live and writable; the kernel reads and writes at most the `argsz`/
    // `size` the words announce, and a test that announces more than `words.len() * 4` bytes
    // gets EFAULT or an error before any access past it.
    let r = unsafe { ioctl(fd, req, words.as_mut_ptr()) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// An ioctl whose argument is a plain integer or an address the caller does not own (for
/// EFAULT tests): `Ok(return value)` or `Err(errno)`.
pub fn ioctl_value(fd: RawFd, req: u64, arg: u64) -> Result<i32, i32> {
    // SAFETY: the kernel treats `arg` as an integer or a user address it validates itself; no
    // memory of this process is handed out.
    let r = unsafe { ioctl(fd, req, arg) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// A new eventfd (non-blocking off, close-on-exec).
pub fn new_eventfd() -> Result<File, String> {
    // SAFETY: no pointers.
    let fd = unsafe { eventfd(0, 0x80000) };
    if fd < 0 {
        return Err(errno("eventfd"));
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Waits until eventfd `e` was signalled (and consumes the count).
pub fn wait_eventfd(e: &File, timeout_ms: i32) -> Result<(), String> {
    let mut p = PollFd {
        fd: e.as_raw_fd(),
        events: 1,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        return Err(errno("poll"));
    }
    if r == 0 {
        return Err(format!("eventfd not signalled within {timeout_ms} ms"));
    }
    let mut b = [0u8; 8];
    std::io::Read::read_exact(&mut &*e, &mut b).map_err(|e| format!("eventfd read: {e}"))
}

fn errno(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

fn ioctl_ptr<T>(fd: RawFd, req: u64, arg: &mut T) -> Result<i32, String> {
    // SAFETY: `arg` is a live, correctly laid out VFIO argument for `req`.
    let r = unsafe { ioctl(fd, req, arg as *mut T) };
    if r < 0 {
        Err(errno(&format!("ioctl {req:#x}")))
    } else {
        Ok(r)
    }
}

/// PCI device IDs of the sample's parents: QEMU's edu (mediated mode) and the lab QEMU's
/// edu-pasid (PASID mode on an SMMUv3 with SubstreamIDs, `docs/pasid-device.md`).
pub const EDU: &str = "0x11e8";
pub const EDU_PASID: &str = "0x11e9";

/// The lab platform the guest was booted on (`lab.platform=` on the kernel command line,
/// `tools/lab/run.sh --platform`); `edu` if none.
pub fn platform() -> String {
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .find_map(|a| a.strip_prefix("lab.platform="))
        .unwrap_or("edu")
        .to_string()
}

/// The platform has edu-pasid behind an SMMUv3 with SubstreamIDs (`pasid`, `pasid-noits`).
pub fn pasid_platform() -> bool {
    platform().starts_with("pasid")
}

/// The device the mdev tests use on this platform: edu-pasid (PASID mode) where there is one,
/// else edu (mediated mode). `LAB_MDEV_PARENT=edu|edu-pasid` overrides.
pub fn platform_parent_device() -> &'static str {
    match std::env::var("LAB_MDEV_PARENT").as_deref() {
        Ok("edu") => EDU,
        Ok("edu-pasid") => EDU_PASID,
        _ if pasid_platform() => EDU_PASID,
        _ => EDU,
    }
}

/// The `mode` attribute the mdevs of [`find_parent`] must show.
pub fn expected_mode() -> &'static str {
    if platform_parent_device() == EDU_PASID {
        "pasid"
    } else {
        "mediated"
    }
}

/// The parent a VM's mdev comes from: always edu (mediated mode). A VM programs the engine with
/// guest-physical addresses, and the lab VM's RAM starts at 1 GiB, beyond the 28 bits edu and
/// edu-pasid put on the bus: in PASID mode those addresses reach the device unchanged (the
/// sample refuses them, `ERROR` 4), in mediated mode the parent maps each page below 2^28 for
/// itself.
pub fn find_vm_parent() -> Result<PathBuf, String> {
    find_parent_of(EDU)
}

/// The sample's mdev parent for this platform ([`platform_parent_device`]).
pub fn find_parent() -> Result<PathBuf, String> {
    find_parent_of(platform_parent_device())
}

/// The sample's mdev parent on the PCI device with device ID `device` ([`EDU`], [`EDU_PASID`]).
pub fn find_parent_of(device: &str) -> Result<PathBuf, String> {
    let dir = std::fs::read_dir("/sys/class/mdev_bus")
        .map_err(|e| format!("/sys/class/mdev_bus: {e}"))?;
    for d in dir.flatten() {
        let p = d.path();
        let id = std::fs::read_to_string(p.join("device")).unwrap_or_default();
        if p.join("mdev_supported_types/edu-small").exists() && id.trim() == device {
            return Ok(p);
        }
    }
    Err(format!(
        "no edu_mdev parent on a {device} device (is edu_mdev.ko loaded?)"
    ))
}

/// The PCI address (`0000:00:01.0`) of a parent found by [`find_parent`]: its name in sysfs
/// and in debugfs `edu_mdev/`.
pub fn parent_bdf(parent: &Path) -> Result<String, String> {
    parent
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{}: no parent name", parent.display()))
}

/// Unbinds (`action` "unbind") or binds ("bind") the edu at `bdf` from or to `edu_mdev`'s
/// PCI driver.
pub fn edu_driver(action: &str, bdf: &str) -> Result<(), String> {
    std::fs::write(format!("/sys/bus/pci/drivers/edu/{action}"), bdf)
        .map_err(|e| format!("{action} {bdf}: {e}"))
}

/// Loads the mdev sample module ([`mdev_module`]) unless it is loaded.
pub fn ensure_module() -> Result<(), String> {
    // `/sys/module/NAME` is gone when `rmmod` returns (the module core waits for its kobject's
    // release); the PCI driver's directory is not: with `CONFIG_DEBUG_KOBJECT_RELEASE` the
    // driver core drops it seconds after the unload (testing it skipped the insmod after an
    // rmmod), and a new `edu` driver cannot register its directory before then.
    let module = mdev_module();
    if Path::new(&format!("/sys/module/{module}")).exists() {
        return Ok(());
    }
    let old_driver = Path::new("/sys/bus/pci/drivers/edu");
    let t0 = std::time::Instant::now();
    while old_driver.exists() {
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            return Err(format!(
                "{} still there 20 s after {module} was unloaded",
                old_driver.display()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = std::process::Command::new("insmod")
        .arg(format!("/lib/labtest/{module}.ko"))
        .output()
        .map_err(|e| format!("insmod: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "insmod {module}.ko: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

/// The sample module the mdev tests drive: `lab.mdev_module=NAME` on the kernel command line
/// (`run.sh test --append lab.mdev_module=edu_mdev_min`), else `edu_mdev`. Both samples bind
/// edu with a PCI driver named `edu`, so one run loads only one of them.
pub fn mdev_module() -> String {
    std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .find_map(|a| a.strip_prefix("lab.mdev_module=").map(str::to_string))
        })
        .unwrap_or_else(|| "edu_mdev".to_string())
}

pub fn type_attr(parent: &Path, ty: &str, attr: &str) -> Result<String, String> {
    let p = parent.join("mdev_supported_types").join(ty).join(attr);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

pub fn available(parent: &Path, ty: &str) -> Result<u32, String> {
    type_attr(parent, ty, "available_instances")?
        .parse()
        .map_err(|e| format!("available_instances: {e}"))
}

/// Writes `data` to an existing sysfs file (no `O_CREAT`: a missing file is `ENOENT`, not the
/// `EACCES` of a refused creation).
fn sysfs_write(path: &Path, data: &str) -> io::Result<()> {
    use std::io::Write;
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(data.as_bytes())
}

/// Writes `uuid` to the type's `create` file.
pub fn create_mdev(parent: &Path, ty: &str, uuid: &str) -> io::Result<()> {
    sysfs_write(
        &parent.join("mdev_supported_types").join(ty).join("create"),
        uuid,
    )
}

pub fn mdev_path(uuid: &str) -> PathBuf {
    Path::new("/sys/bus/mdev/devices").join(uuid)
}

pub fn remove_mdev(uuid: &str) -> io::Result<()> {
    sysfs_write(&mdev_path(uuid).join("remove"), "1")
}

pub fn mdev_attr(uuid: &str, attr: &str) -> Result<String, String> {
    let p = mdev_path(uuid).join(attr);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// A test UUID: `n` in the last field.
pub fn uuid(n: u32) -> String {
    format!("5a3e0c1d-7b2f-4e8a-9c6d-{n:012x}")
}

/// Anonymous, page-aligned user memory.
pub struct Buffer {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Buffer {
    pub fn new(len: usize) -> Result<Self, String> {
        // SAFETY: anonymous private mapping, no fd.
        let p = unsafe { mmap(std::ptr::null_mut(), len, 3, 0x22, -1, 0) };
        if p as isize == -1 {
            return Err(errno("mmap"));
        }
        Ok(Self { ptr: p.cast(), len })
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes mapped read/write, owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: mapped in `new`.
        unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// A VFIO container with a type1 IOMMU and one mdev's group in it.
pub struct Container {
    pub container: File,
    pub group: File,
}

#[repr(C)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

#[repr(C)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

impl Container {
    /// Opens the group of mdev `uuid` and puts it into a new type1 container.
    pub fn open(uuid: &str) -> Result<Self, String> {
        let link = std::fs::read_link(mdev_path(uuid).join("iommu_group"))
            .map_err(|e| format!("iommu_group: {e}"))?;
        let group_no = link
            .file_name()
            .and_then(|s| s.to_str())
            .ok_or("bad iommu_group link")?
            .to_string();
        let rw = |p: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("{p}: {e}"))
        };
        let container = rw("/dev/vfio/vfio")?;
        let group = rw(&format!("/dev/vfio/{group_no}"))?;
        // SAFETY: argument-less ioctls.
        let v = unsafe { ioctl(container.as_raw_fd(), VFIO_GET_API_VERSION) };
        if v != 0 {
            return Err(format!("VFIO API version {v}"));
        }
        // SAFETY: as above, integer argument.
        if unsafe {
            ioctl(
                container.as_raw_fd(),
                VFIO_CHECK_EXTENSION,
                VFIO_TYPE1V2_IOMMU,
            )
        } != 1
        {
            return Err("no type1v2 IOMMU".into());
        }
        let mut status = [8u32, 0];
        ioctl_ptr(group.as_raw_fd(), VFIO_GROUP_GET_STATUS, &mut status)?;
        if status[1] & 1 == 0 {
            return Err("group not viable".into());
        }
        let mut cfd = container.as_raw_fd();
        ioctl_ptr(group.as_raw_fd(), VFIO_GROUP_SET_CONTAINER, &mut cfd)?;
        // SAFETY: integer argument.
        if unsafe { ioctl(container.as_raw_fd(), VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU) } < 0 {
            return Err(errno("VFIO_SET_IOMMU"));
        }
        Ok(Self { container, group })
    }

    /// Maps `buf` at `iova` (read/write).
    pub fn map(&self, buf: &Buffer, iova: u64) -> Result<(), String> {
        self.map_raw(buf.ptr as u64, iova, buf.len as u64, 3)
    }

    pub fn map_raw(&self, vaddr: u64, iova: u64, size: u64, flags: u32) -> Result<(), String> {
        let mut m = DmaMap {
            argsz: 32,
            flags,
            vaddr,
            iova,
            size,
        };
        ioctl_ptr(self.container.as_raw_fd(), VFIO_IOMMU_MAP_DMA, &mut m).map(drop)
    }

    pub fn unmap(&self, iova: u64, size: u64) -> Result<(), String> {
        let mut m = DmaUnmap {
            argsz: 24,
            flags: 0,
            iova,
            size,
        };
        ioctl_ptr(self.container.as_raw_fd(), VFIO_IOMMU_UNMAP_DMA, &mut m)?;
        if m.size != size {
            return Err(format!(
                "VFIO_IOMMU_UNMAP_DMA unmapped {:#x} of {size:#x} bytes",
                m.size
            ));
        }
        Ok(())
    }

    /// The device fd of mdev `uuid`.
    pub fn device(&self, uuid: &str) -> Result<Device, String> {
        let name = std::ffi::CString::new(uuid).map_err(|e| e.to_string())?;
        // SAFETY: NUL-terminated name.
        let fd = unsafe {
            ioctl(
                self.group.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr(),
            )
        };
        if fd < 0 {
            return Err(errno("VFIO_GROUP_GET_DEVICE_FD"));
        }
        // SAFETY: a new fd we own.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut d = Device {
            file,
            bar0: 0,
            config: 0,
            eventfd: None,
        };
        d.bar0 = d.region_info(BAR0_INDEX)?.offset;
        d.config = d.region_info(CONFIG_INDEX)?.offset;
        Ok(d)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RegionInfo {
    pub flags: u32,
    pub size: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct IrqInfo {
    pub flags: u32,
    pub count: u32,
}

/// An open mdev VFIO device.
pub struct Device {
    pub file: File,
    pub bar0: u64,
    pub config: u64,
    pub eventfd: Option<File>,
}

impl Device {
    /// A device fd that is ready for device ioctls (group fd, or bound and attached cdev).
    pub fn from_file(file: File) -> Result<Self, String> {
        let mut d = Device {
            file,
            bar0: 0,
            config: 0,
            eventfd: None,
        };
        d.bar0 = d.region_info(BAR0_INDEX)?.offset;
        d.config = d.region_info(CONFIG_INDEX)?.offset;
        Ok(d)
    }

    /// `VFIO_DEVICE_GET_INFO`: (flags, regions, irqs).
    pub fn info(&self) -> Result<(u32, u32, u32), String> {
        let mut b = [16u32, 0, 0, 0, 0, 0];
        ioctl_ptr(self.file.as_raw_fd(), VFIO_DEVICE_GET_INFO, &mut b)?;
        Ok((b[1], b[2], b[3]))
    }

    pub fn region_info(&self, index: u32) -> Result<RegionInfo, String> {
        let mut b = [0u32; 8];
        b[0] = 32;
        b[2] = index;
        ioctl_ptr(self.file.as_raw_fd(), VFIO_DEVICE_GET_REGION_INFO, &mut b)?;
        Ok(RegionInfo {
            flags: b[1],
            size: u64::from(b[4]) | (u64::from(b[5]) << 32),
            offset: u64::from(b[6]) | (u64::from(b[7]) << 32),
        })
    }

    pub fn irq_info(&self, index: u32) -> Result<IrqInfo, String> {
        let mut b = [16u32, 0, index, 0];
        ioctl_ptr(self.file.as_raw_fd(), VFIO_DEVICE_GET_IRQ_INFO, &mut b)?;
        Ok(IrqInfo {
            flags: b[1],
            count: b[3],
        })
    }

    /// Connects a new eventfd to IRQ `index` (MSI: completions; REQ: release requests).
    pub fn set_irq_eventfd(&mut self, index: u32) -> Result<File, String> {
        let efd = new_eventfd()?;
        let fd = efd.as_raw_fd();
        // argsz, flags (DATA_EVENTFD | ACTION_TRIGGER), index, start, count, fd
        let mut b = [24u32, 4 | 32, index, 0, 1, fd as u32];
        ioctl_ptr(self.file.as_raw_fd(), VFIO_DEVICE_SET_IRQS, &mut b)?;
        Ok(efd)
    }

    /// Sets the MSI eventfd this device waits on.
    pub fn enable_msi(&mut self) -> Result<(), String> {
        self.eventfd = Some(self.set_irq_eventfd(MSI_INDEX)?);
        Ok(())
    }

    pub fn read32(&self, off: u64) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.file
            .read_exact_at(&mut b, self.bar0 + off)
            .map_err(|e| format!("read BAR0 {off:#x}: {e}"))?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn write32(&self, off: u64, v: u32) -> Result<(), String> {
        self.file
            .write_all_at(&v.to_le_bytes(), self.bar0 + off)
            .map_err(|e| format!("write BAR0 {off:#x}: {e}"))
    }

    pub fn config_read32(&self, off: u64) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.file
            .read_exact_at(&mut b, self.config + off)
            .map_err(|e| format!("config read {off:#x}: {e}"))?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn config_write32(&self, off: u64, v: u32) -> Result<(), String> {
        self.file
            .write_all_at(&v.to_le_bytes(), self.config + off)
            .map_err(|e| format!("config write {off:#x}: {e}"))
    }

    pub fn reset(&self) -> Result<(), String> {
        // SAFETY: argument-less ioctl.
        if unsafe { ioctl(self.file.as_raw_fd(), VFIO_DEVICE_RESET) } < 0 {
            return Err(errno("VFIO_DEVICE_RESET"));
        }
        Ok(())
    }

    /// Starts a copy (with a completion interrupt if the MSI eventfd is set).
    pub fn start_copy(&self, src: u64, dst: u64, len: u32) -> Result<(), String> {
        self.write32(regs::SRC_LO, src as u32)?;
        self.write32(regs::SRC_HI, (src >> 32) as u32)?;
        self.write32(regs::DST_LO, dst as u32)?;
        self.write32(regs::DST_HI, (dst >> 32) as u32)?;
        self.write32(regs::LEN, len)?;
        let irq = if self.eventfd.is_some() {
            regs::CMD_IRQ
        } else {
            0
        };
        self.write32(regs::CMD, regs::CMD_START | irq)
    }

    /// Waits for the completion interrupt (if set up) and then for `DONE`; returns `STATUS`.
    ///
    /// The driver sets `STATUS` before it signals the interrupt, so an interrupt must find
    /// the engine idle with `DONE` set, and must have been signalled once: anything else is a
    /// spurious or duplicated interrupt, an error here rather than a wait that happens to end
    /// well.
    pub fn wait(&self, timeout_ms: i32) -> Result<u32, String> {
        if let Some(e) = &self.eventfd {
            let mut p = PollFd {
                fd: e.as_raw_fd(),
                events: 1,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { poll(&mut p, 1, timeout_ms) };
            if r < 0 {
                return Err(errno("poll"));
            }
            if r == 0 {
                return Err(format!(
                    "no completion interrupt within {timeout_ms} ms (STATUS {:#x})",
                    self.read32(regs::STATUS)?
                ));
            }
            let mut b = [0u8; 8];
            std::io::Read::read_exact(&mut &*e, &mut b)
                .map_err(|e| format!("eventfd read: {e}"))?;
            let count = u64::from_ne_bytes(b);
            let s = self.read32(regs::STATUS)?;
            check_interrupt(count, s)?;
            return Ok(s);
        }
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
        loop {
            let s = self.read32(regs::STATUS)?;
            if s & regs::STATUS_BUSY == 0 {
                return Ok(s);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("still busy after {timeout_ms} ms"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Runs a copy to completion; `Ok(Err(code))` when the engine reported an error.
    pub fn copy(&self, src: u64, dst: u64, len: u32) -> Result<Result<(), u32>, String> {
        self.start_copy(src, dst, len)?;
        let s = self.wait(30_000)?;
        status_outcome(s).ok_or_else(|| format!("STATUS {s:#x} without DONE"))
    }
}

/// Checks what a completion interrupt found: signalled `count` times (the eventfd counter),
/// `status` read right after.
fn check_interrupt(count: u64, status: u32) -> Result<(), String> {
    if count != 1 {
        return Err(format!(
            "completion interrupt signalled {count} times for one copy (STATUS {status:#x})"
        ));
    }
    if status & regs::STATUS_BUSY != 0 || status & regs::STATUS_DONE == 0 {
        return Err(format!(
            "spurious completion interrupt: STATUS {status:#x} (busy or not done)"
        ));
    }
    Ok(())
}

/// An I/O address space the device's DMA goes through: a type1 container or an iommufd IOAS.
pub trait IoSpace: Send {
    /// Maps `size` bytes of user memory at `vaddr` to `iova` (read/write).
    fn map_raw(&self, vaddr: u64, iova: u64, size: u64) -> Result<(), String>;
    fn unmap(&self, iova: u64, size: u64) -> Result<(), String>;
    fn map(&self, buf: &Buffer, iova: u64) -> Result<(), String> {
        self.map_raw(buf.ptr as u64, iova, buf.len as u64)
    }
}

impl IoSpace for Container {
    fn map_raw(&self, vaddr: u64, iova: u64, size: u64) -> Result<(), String> {
        Container::map_raw(self, vaddr, iova, size, 3)
    }
    fn unmap(&self, iova: u64, size: u64) -> Result<(), String> {
        Container::unmap(self, iova, size)
    }
}

const fn iommufd_io(nr: u64) -> u64 {
    (0x3b << 8) | nr
}
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = vfio_io(18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = vfio_io(19);
pub const IOMMU_IOAS_ALLOC: u64 = iommufd_io(0x81);
pub const IOMMU_IOAS_MAP: u64 = iommufd_io(0x85);
pub const IOMMU_IOAS_UNMAP: u64 = iommufd_io(0x86);
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: u64 = vfio_io(20);

/// `/dev/vfio/devices/vfioN`: the VFIO cdev of mdev `uuid`.
pub fn cdev_path(uuid: &str) -> Result<String, String> {
    let dir = mdev_path(uuid).join("vfio-dev");
    let cdev = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vfio"))
        .ok_or("no vfio cdev")?;
    Ok(format!("/dev/vfio/devices/{cdev}"))
}

/// The iommufd path: `/dev/iommu`, an IOAS, and the mdev's VFIO cdev bound to it.
pub struct Iommufd {
    pub iommufd: File,
    pub ioas: u32,
}

#[repr(C)]
struct IoasMap {
    size: u32,
    flags: u32,
    ioas_id: u32,
    reserved: u32,
    user_va: u64,
    length: u64,
    iova: u64,
}

#[repr(C)]
struct IoasUnmap {
    size: u32,
    ioas_id: u32,
    iova: u64,
    length: u64,
}

impl Iommufd {
    /// Opens `/dev/iommu`, allocates an IOAS, opens the cdev of mdev `uuid`, binds and attaches it.
    pub fn open(uuid: &str) -> Result<(Self, Device), String> {
        let rw = |p: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("{p}: {e}"))
        };
        let iommufd = rw("/dev/iommu")?;
        let mut alloc = [12u32, 0, 0];
        ioctl_ptr(iommufd.as_raw_fd(), IOMMU_IOAS_ALLOC, &mut alloc)?;
        let ioas = alloc[2];
        let file = rw(&cdev_path(uuid)?)?;
        let mut bind = [16u32, 0, iommufd.as_raw_fd() as u32, 0];
        ioctl_ptr(file.as_raw_fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind)?;
        let mut attach = [12u32, 0, ioas];
        ioctl_ptr(file.as_raw_fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach)?;
        Ok((Self { iommufd, ioas }, Device::from_file(file)?))
    }
}

impl IoSpace for Iommufd {
    fn map_raw(&self, vaddr: u64, iova: u64, size: u64) -> Result<(), String> {
        // FIXED_IOVA | WRITEABLE | READABLE
        let mut m = IoasMap {
            size: 40,
            flags: 7,
            ioas_id: self.ioas,
            reserved: 0,
            user_va: vaddr,
            length: size,
            iova,
        };
        ioctl_ptr(self.iommufd.as_raw_fd(), IOMMU_IOAS_MAP, &mut m).map(drop)
    }
    fn unmap(&self, iova: u64, size: u64) -> Result<(), String> {
        let mut m = IoasUnmap {
            size: 24,
            ioas_id: self.ioas,
            iova,
            length: size,
        };
        ioctl_ptr(self.iommufd.as_raw_fd(), IOMMU_IOAS_UNMAP, &mut m).map(drop)
    }
}

// SAFETY: `Buffer` owns its mapping; moving it to another thread moves that ownership.
unsafe impl Send for Buffer {}

/// One mdev opened end to end: its device, its I/O address space and two mapped buffers
/// (source at `SRC_IOVA`, destination at `DST_IOVA`).
pub struct Session {
    pub uuid: String,
    /// Declared before `space`: the device closes before its address space goes.
    pub dev: Device,
    pub space: Box<dyn IoSpace>,
    pub src: Buffer,
    pub dst: Buffer,
}

pub const SRC_IOVA: u64 = 0x10_0000;
pub const DST_IOVA: u64 = 0x20_0000;
pub const BUF_LEN: usize = 64 * 1024;

impl Session {
    /// Opens mdev `uuid` through a type1 container, maps the buffers and connects the
    /// completion eventfd.
    pub fn open(uuid: &str) -> Result<Self, String> {
        let container = Container::open(uuid)?;
        let dev = container.device(uuid)?;
        Self::setup(uuid, dev, Box::new(container))
    }

    /// The same through the iommufd/cdev path.
    pub fn open_iommufd(uuid: &str) -> Result<Self, String> {
        let (space, dev) = Iommufd::open(uuid)?;
        Self::setup(uuid, dev, Box::new(space))
    }

    /// A session over a device and address space opened by hand (tests of the set-up ioctls).
    pub fn setup(uuid: &str, mut dev: Device, space: Box<dyn IoSpace>) -> Result<Self, String> {
        let src = Buffer::new(BUF_LEN)?;
        let dst = Buffer::new(BUF_LEN)?;
        space.map(&src, SRC_IOVA)?;
        space.map(&dst, DST_IOVA)?;
        dev.enable_msi()?;
        Ok(Self {
            uuid: uuid.to_string(),
            dev,
            space,
            src,
            dst,
        })
    }

    /// Fills the source with a pattern seeded by `seed`, clears the destination, copies `len`
    /// bytes from `src_off` to `dst_off` and checks the bytes.
    pub fn copy_checked(
        &mut self,
        seed: u8,
        src_off: usize,
        dst_off: usize,
        len: usize,
    ) -> Result<(), String> {
        for (i, b) in self.src.bytes().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        self.dst.bytes().fill(0);
        match self.dev.copy(
            SRC_IOVA + src_off as u64,
            DST_IOVA + dst_off as u64,
            len as u32,
        )? {
            Ok(()) => {}
            Err(code) => return Err(format!("engine error {code}")),
        }
        let want = self.src.bytes()[src_off..src_off + len].to_vec();
        let got = &self.dst.bytes()[dst_off..dst_off + len];
        if let Some(i) = (0..len).find(|&i| got[i] != want[i]) {
            return Err(format!("byte {i} differs: {:#x} != {:#x}", got[i], want[i]));
        }
        let dst = self.dst.bytes();
        if dst[..dst_off]
            .iter()
            .chain(&dst[dst_off + len..])
            .any(|&b| b != 0)
        {
            return Err("bytes outside the destination range were written".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{check_interrupt, regs};

    #[test]
    fn only_one_interrupt_on_a_finished_copy_is_accepted() {
        assert!(check_interrupt(1, regs::STATUS_DONE).is_ok());
        assert!(
            check_interrupt(1, regs::STATUS_DONE | 4 << 8).is_ok(),
            "an error ends a copy too"
        );
        let busy = check_interrupt(1, regs::STATUS_BUSY).unwrap_err();
        assert!(busy.contains("spurious"), "{busy}");
        assert!(check_interrupt(1, 0).is_err(), "neither busy nor done");
        let twice = check_interrupt(2, regs::STATUS_DONE).unwrap_err();
        assert!(twice.contains("2 times"), "{twice}");
    }
}
