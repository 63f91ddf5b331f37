// SPDX-License-Identifier: GPL-2.0
//! Fault-injection sweep over the sample's user-facing operations (issue 11), in the manner of
//! the iommufd selftests' `iommufd_fail_nth.c`: for N = 1, 2, ... the Nth fault-injection site
//! the operation reaches fails (a slab or page allocation, `ENOMEM`, or a user copy, `EFAULT`),
//! until the operation completes without reaching the Nth. Every failure must give a clean
//! errno (or be tolerated), leave no half-made state (no mdev left behind, slots given back, the
//! device usable again), and the kernel must log no oops/WARN/BUG (the judge) and leak nothing
//! (`kmemleak:clean` at the end of the run scans after this test).
//!
//! Two ways to aim the fault:
//! - `/proc/thread-self/fail-nth` (per task): mdev create and remove (sysfs writes, the mdev
//!   core and the sample's probe/remove run in the writer's task), open through both VFIO paths
//!   (type1 group/container and iommufd cdev, DMA maps included), `SET_IRQS`, and the user's
//!   side of a copy (register writes, the completion wait, the `STATUS` read).
//! - The copy's pieces run in the engine worker (a kworker no fail-nth can name): there the
//!   debugfs attributes' global mode fails the Nth allocation made with the sample's code on the
//!   stack (`require-start`/`require-end` = the module's text, `interval` N, `times` 1). The
//!   attribute's counter is not readable, so before each measured copy a run of cheap copies
//!   (source mapped, destination not: the worker pins the source, then fails) is repeated until
//!   one of them takes the failure, which leaves the counter at a multiple of N.
//!
//! Needs `CONFIG_FAULT_INJECTION` with `FAILSLAB`, `FAIL_PAGE_ALLOC`, `FAULT_INJECTION_USERCOPY`,
//! `FAULT_INJECTION_DEBUG_FS` and `FAULT_INJECTION_STACKTRACE_FILTER` (the debug flavour's
//! `debug.config`); skipped, saying so, on kernels without them (release).

use super::{ensure, parent, Mdev};
use mdev_client::*;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DEBUGFS: &str = "/sys/kernel/debug";
/// The fault attributes fail-nth and the worker phase use.
const ATTRS: [&str; 3] = ["failslab", "fail_page_alloc", "fail_usercopy"];
/// Bound on N per operation (the iommufd selftest uses 400 for its larger operations).
const MAX_N: u32 = 400;
/// Errnos an injected fault may produce.
const ENOMEM: i32 = 12;
const EFAULT: i32 = 14;
const CLEAN_ERRNOS: [i32; 2] = [ENOMEM, EFAULT];
/// A destination no session maps: a copy to it fails in the worker's page check.
const HOLE_IOVA: u64 = 0x40_0000;
/// UUIDs of the sweep: `BASE + op * 0x1000 + N`.
const UUID_BASE: u32 = 0xfa_0000;

/// The calling thread's `/proc/thread-self/fail-nth`.
struct FailNth(File);

impl FailNth {
    fn open() -> std::io::Result<Self> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/proc/thread-self/fail-nth")
            .map(Self)
    }

    /// The Nth fault site this thread reaches from now on fails. No heap allocation between
    /// this and [`FailNth::disarm`]: user-space allocations would be counted (and could fail).
    fn arm(&self, n: u32) -> Result<(), String> {
        let mut buf = [0u8; 10];
        let mut i = buf.len();
        let mut v = n;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.0
            .write_at(&buf[i..], 0)
            .map(drop)
            .map_err(|e| format!("arming fail-nth {n}: {e}"))
    }

    /// Disarms; true if the fault was injected (the counter had run down to 0). Like the
    /// selftest: the read and the reset are user copies themselves, so an `EFAULT` from them
    /// means the fault was still pending and they took it.
    fn disarm(&self) -> Result<bool, String> {
        let mut buf = [0u8; 16];
        let injected = match self.0.read_at(&mut buf, 0) {
            Ok(n) => n >= 1 && buf[0] == b'0',
            Err(e) if e.raw_os_error() == Some(EFAULT) => false,
            Err(e) => return Err(format!("reading fail-nth: {e}")),
        };
        for _ in 0..3 {
            match self.0.write_at(b"0", 0) {
                Ok(_) => return Ok(injected),
                Err(e) if e.raw_os_error() == Some(EFAULT) => continue,
                Err(e) => return Err(format!("resetting fail-nth: {e}")),
            }
        }
        Err("fail-nth stays armed".into())
    }
}

/// debugfs fault-attribute settings, restored when dropped.
#[derive(Default)]
struct Knobs {
    saved: Vec<(PathBuf, String)>,
}

impl Knobs {
    fn set(&mut self, rel: &str, val: &str) -> Result<(), String> {
        let p = Path::new(DEBUGFS).join(rel);
        let old = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        write_knob(&p, val)?;
        self.saved.push((p, old.trim().to_string()));
        Ok(())
    }
}

fn write_knob(p: &Path, val: &str) -> Result<(), String> {
    std::fs::write(p, val).map_err(|e| format!("{} = {val}: {e}", p.display()))
}

fn read_knob(rel: &str) -> Result<String, String> {
    let p = Path::new(DEBUGFS).join(rel);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

impl Drop for Knobs {
    fn drop(&mut self) {
        for (p, v) in self.saved.iter().rev() {
            let _ = std::fs::write(p, v);
        }
    }
}

/// What is missing for the sweep on this kernel, if anything.
fn missing_support() -> Option<String> {
    let need = [
        "/proc/thread-self/fail-nth",
        "/sys/kernel/debug/failslab/ignore-gfp-wait",
        "/sys/kernel/debug/fail_page_alloc/min-order",
        "/sys/kernel/debug/fail_usercopy/times",
        "/sys/kernel/debug/failslab/require-start",
    ];
    let missing: Vec<&str> = need
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no fault injection in this kernel (missing {}): CONFIG_FAULT_INJECTION and friends are in the debug flavour only",
            missing.join(", ")
        )
    })
}

/// How an operation under fault ended: `Err((step, errno))` at the first failing step.
type OpResult = Result<(), (&'static str, i32)>;

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// Per operation: the errnos seen, by step.
#[derive(Default)]
struct Tally(BTreeMap<String, u32>);

impl Tally {
    fn add(&mut self, what: String) {
        *self.0.entry(what).or_default() += 1;
    }
    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `op` with fail-nth = 1, 2, ... on a fresh `setup` each time, `check`ing what each run
/// left behind, until `op` completes without reaching the Nth fault site; it must then have
/// succeeded. Returns the N reached.
fn sweep<S>(
    nth: &FailNth,
    name: &str,
    mut setup: impl FnMut(u32) -> Result<S, String>,
    mut op: impl FnMut(&mut S) -> OpResult,
    mut check: impl FnMut(S, OpResult) -> Result<(), String>,
) -> Result<u32, String> {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    for n in 1..=MAX_N {
        let mut s = setup(n).map_err(|e| format!("{name}: set-up for N={n}: {e}"))?;
        nth.arm(n)?;
        let r = op(&mut s);
        let injected = nth.disarm()?;
        match r {
            Err((step, e)) if !injected => {
                return Err(format!(
                    "{name}: {step} failed (errno {e}) with no fault injected (N={n})"
                ))
            }
            Err((step, e)) if !CLEAN_ERRNOS.contains(&e) => {
                return Err(format!(
                    "{name}: fault N={n}: {step} failed with errno {e} (want ENOMEM or EFAULT)"
                ))
            }
            Err((step, e)) => tally.add(format!("{step} errno {e}")),
            Ok(()) if injected => tally.add("tolerated".into()),
            Ok(()) => {}
        }
        check(s, r).map_err(|e| format!("{name}: after fault N={n}: {e}"))?;
        if !injected {
            println!(
                "  fault sweep {name}: N=1..{} failed one site each ({}); N={n} reached no site and succeeded ({} ms)",
                n - 1,
                tally.summary(),
                t0.elapsed().as_millis()
            );
            return Ok(n);
        }
    }
    Err(format!("{name}: still reaching fault sites at N={MAX_N}"))
}

fn rw(p: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(p)
}

fn step<T>(what: &'static str, r: std::io::Result<T>) -> Result<T, (&'static str, i32)> {
    r.map_err(|e| (what, errno_of(&e)))
}

fn ioctl_step(what: &'static str, fd: i32, req: u64, words: &mut [u32]) -> OpResult {
    ioctl_words(fd, req, words).map(drop).map_err(|e| (what, e))
}

/// The mdev counts of the parent are back to all free.
fn all_free(p: &Path) -> Result<(), String> {
    let (s, l) = (available(p, "edu-small")?, available(p, "edu-large")?);
    ensure(s == 8 && l == 4, || {
        format!("available_instances small {s} large {l}, want 8 and 4")
    })
}

// ---- mdev create and remove -------------------------------------------------------------------

/// Device nodes of `/dev/vfio` (groups) and `/dev/vfio/devices` (cdevs) that no live device
/// owns, removed; returns their paths.
///
/// Why they exist: 6.12's `devtmpfs_delete_node` allocates the node's name
/// (`device_get_devnode`, `vfio/N` for a group) and returns `ENOMEM` when that fails, which
/// `device_del` ignores, so the node outlives its device. The create and remove sweeps fail
/// exactly such allocations in the teardown of an mdev's vfio group. devtmpfs does not replace
/// an existing node, so a later group with the same number would find the old one, whose
/// device number belongs to nobody: its open fails with `ENXIO` (seen once in a debug run on
/// the PASID platform, in a test after this sweep). An upstream effect, outside the sample:
/// reported and cleared, not failed.
fn clear_stale_vfio_nodes() -> Result<Vec<String>, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut stale = Vec::new();
    for (dir, class) in [("/dev/vfio", "vfio"), ("/dev/vfio/devices", "vfio-dev")] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries {
            let e = e.map_err(|e| format!("{dir}: {e}"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let md = e.metadata().map_err(|e| format!("{dir}/{name}: {e}"))?;
            // `/dev/vfio/vfio` is the container (a misc device), not a group.
            if !md.file_type().is_char_device() || name == "vfio" {
                continue;
            }
            let rdev = md.rdev();
            let (major, minor) = (
                ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
                (rdev & 0xff) | ((rdev >> 12) & !0xff),
            );
            let live = std::fs::read_to_string(format!("/sys/class/{class}/{name}/dev"))
                .ok()
                .map(|s| s.trim().to_string());
            if live.as_deref() != Some(format!("{major}:{minor}").as_str()) {
                let path = format!("{dir}/{name}");
                std::fs::remove_file(&path).map_err(|e| format!("stale node {path}: {e}"))?;
                stale.push(path);
            }
        }
    }
    Ok(stale)
}

/// [`clear_stale_vfio_nodes`] after a sweep, saying what it removed.
fn report_stale_vfio_nodes(after: &str) -> Result<(), String> {
    let stale = clear_stale_vfio_nodes()?;
    if !stale.is_empty() {
        println!(
            "  fault sweep: after {after}, {} device node(s) left by devtmpfs_delete_node's failed allocation, removed: {}",
            stale.len(),
            stale.join(" ")
        );
    }
    Ok(())
}

fn create_sweep(nth: &FailNth, p: &Path) -> Result<u32, String> {
    let create = p.join("mdev_supported_types/edu-small/create");
    sweep(
        nth,
        "mdev create",
        |n| {
            let u = uuid(UUID_BASE + n);
            let f = OpenOptions::new()
                .write(true)
                .open(&create)
                .map_err(|e| format!("{}: {e}", create.display()))?;
            Ok((f, u))
        },
        |(f, u)| step("write create", f.write_at(u.as_bytes(), 0)).map(drop),
        |(_, u), r| {
            let exists = mdev_path(&u).exists();
            if r.is_ok() {
                ensure(exists, || format!("create succeeded but no mdev {u}"))?;
                // Complete although a fault was injected: everything a user needs is there.
                let whole = complete_mdev(&u);
                remove_mdev(&u).map_err(|e| format!("remove {u}: {e}"))?;
                whole?;
            } else {
                ensure(!exists, || format!("failed create left mdev {u}"))?;
            }
            all_free(p)
        },
    )
}

/// A created mdev has its attributes, its VFIO cdev and its IOMMU group.
fn complete_mdev(u: &str) -> Result<(), String> {
    let pasid: u32 = mdev_attr(u, "pasid")?
        .parse()
        .map_err(|e| format!("pasid of {u}: {e}"))?;
    ensure(pasid >= 1, || format!("{u}: PASID {pasid}"))?;
    // The parent's mode: mediated on edu, PASID on edu-pasid (the PASID platform's parent).
    let (mode, want) = (mdev_attr(u, "mode")?, expected_mode());
    ensure(mode == want, || {
        format!("{u}: mode {mode:?}, want {want:?}")
    })?;
    cdev_path(u)?;
    std::fs::read_link(mdev_path(u).join("iommu_group"))
        .map(drop)
        .map_err(|e| format!("{u}: iommu_group: {e}"))
}

/// After an open that succeeded (`r`), its device fd answers: region info and the `ID`
/// register. The fd is closed either way.
fn device_answers(f: Option<File>, r: OpResult) -> Result<(), String> {
    if r.is_err() {
        return Ok(());
    }
    let d = Device::from_file(f.ok_or("open succeeded without a device fd")?)?;
    let id = d.read32(regs::ID)?;
    ensure(id == regs::ID_VALUE, || format!("ID register {id:#x}"))
}

fn remove_sweep(nth: &FailNth, p: &Path) -> Result<u32, String> {
    sweep(
        nth,
        "mdev remove",
        |n| {
            let u = uuid(UUID_BASE + 0x1000 + n);
            create_mdev(p, "edu-small", &u).map_err(|e| format!("create {u}: {e}"))?;
            let f = OpenOptions::new()
                .write(true)
                .open(mdev_path(&u).join("remove"))
                .map_err(|e| format!("remove file of {u}: {e}"))?;
            Ok((f, u))
        },
        |(f, _)| step("write remove", f.write_at(b"1", 0)).map(drop),
        |(_, u), r| {
            let exists = mdev_path(&u).exists();
            if r.is_ok() {
                ensure(!exists, || format!("remove succeeded but {u} is there"))?;
            } else {
                ensure(exists, || format!("failed remove took {u} half away"))?;
                remove_mdev(&u).map_err(|e| format!("second remove of {u}: {e}"))?;
            }
            all_free(p)
        },
    )
}

// ---- open through the two VFIO paths ------------------------------------------------------------

/// Buffers mapped by the open operations (touched first: a page fault of ours must not take
/// the injected failure).
struct Buffers {
    src: Buffer,
    dst: Buffer,
}

impl Buffers {
    fn new() -> Result<Self, String> {
        let mut b = Buffers {
            src: Buffer::new(BUF_LEN)?,
            dst: Buffer::new(BUF_LEN)?,
        };
        b.src.bytes().fill(1);
        b.dst.bytes().fill(0);
        Ok(b)
    }
}

/// A type1 open: `/dev/vfio/vfio`, the group, `SET_CONTAINER`, `SET_IOMMU`, the device fd and
/// the two DMA maps. Files are kept so that the check closes them (outside the fault).
#[derive(Default)]
struct Type1Open {
    container: Option<File>,
    group: Option<File>,
    device: Option<File>,
}

fn dma_map_words(vaddr: u64, iova: u64) -> [u32; 8] {
    let size = BUF_LEN as u64;
    [
        32,
        3,
        vaddr as u32,
        (vaddr >> 32) as u32,
        iova as u32,
        (iova >> 32) as u32,
        size as u32,
        (size >> 32) as u32,
    ]
}

fn open_type1(o: &mut Type1Open, group: &Path, name: &std::ffi::CStr, bufs: &Buffers) -> OpResult {
    let c = step("open /dev/vfio/vfio", rw(Path::new("/dev/vfio/vfio")))?;
    let cfd = c.as_raw_fd();
    o.container = Some(c);
    let g = step("open group", rw(group))?;
    let gfd = g.as_raw_fd();
    o.group = Some(g);
    let mut w = [cfd as u32];
    ioctl_step("SET_CONTAINER", gfd, VFIO_GROUP_SET_CONTAINER, &mut w)?;
    ioctl_value(cfd, VFIO_SET_IOMMU, 3).map_err(|e| ("SET_IOMMU", e))?;
    let dfd = ioctl_value(gfd, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as u64)
        .map_err(|e| ("GET_DEVICE_FD", e))?;
    // SAFETY: a new fd we own.
    o.device = Some(unsafe { File::from_raw_fd(dfd) });
    let mut m = dma_map_words(bufs.src.ptr as u64, SRC_IOVA);
    ioctl_step("MAP_DMA src", cfd, VFIO_IOMMU_MAP_DMA, &mut m)?;
    let mut m = dma_map_words(bufs.dst.ptr as u64, DST_IOVA);
    ioctl_step("MAP_DMA dst", cfd, VFIO_IOMMU_MAP_DMA, &mut m)
}

/// An iommufd open: `/dev/iommu`, an IOAS, the cdev, bind, attach and the two maps.
#[derive(Default)]
struct CdevOpen {
    iommufd: Option<File>,
    device: Option<File>,
}

fn ioas_map_words(ioas: u32, vaddr: u64, iova: u64) -> [u32; 10] {
    let len = BUF_LEN as u64;
    [
        40,
        7,
        ioas,
        0,
        vaddr as u32,
        (vaddr >> 32) as u32,
        len as u32,
        (len >> 32) as u32,
        iova as u32,
        (iova >> 32) as u32,
    ]
}

fn open_cdev(o: &mut CdevOpen, cdev: &Path, bufs: &Buffers) -> OpResult {
    let i = step("open /dev/iommu", rw(Path::new("/dev/iommu")))?;
    let ifd = i.as_raw_fd();
    o.iommufd = Some(i);
    let mut alloc = [12u32, 0, 0];
    ioctl_step("IOAS_ALLOC", ifd, IOMMU_IOAS_ALLOC, &mut alloc)?;
    let ioas = alloc[2];
    let d = step("open cdev", rw(cdev))?;
    let dfd = d.as_raw_fd();
    o.device = Some(d);
    let mut bind = [16u32, 0, ifd as u32, 0];
    ioctl_step("BIND_IOMMUFD", dfd, VFIO_DEVICE_BIND_IOMMUFD, &mut bind)?;
    let mut attach = [12u32, 0, ioas];
    ioctl_step(
        "ATTACH_IOMMUFD_PT",
        dfd,
        VFIO_DEVICE_ATTACH_IOMMUFD_PT,
        &mut attach,
    )?;
    let mut m = ioas_map_words(ioas, bufs.src.ptr as u64, SRC_IOVA);
    ioctl_step("IOAS_MAP src", ifd, IOMMU_IOAS_MAP, &mut m)?;
    let mut m = ioas_map_words(ioas, bufs.dst.ptr as u64, DST_IOVA);
    ioctl_step("IOAS_MAP dst", ifd, IOMMU_IOAS_MAP, &mut m)
}

/// After an open under fault and its close: the mdev opens and copies.
fn opens_and_copies(u: &str, iommufd: bool) -> Result<(), String> {
    let mut s = if iommufd {
        Session::open_iommufd(u)?
    } else {
        Session::open(u)?
    };
    s.copy_checked(0x5a, 0, 8, 4096)
}

fn open_sweeps(nth: &FailNth, p: &Path) -> Result<(u32, u32), String> {
    let m = Mdev::new(p, "edu-small", UUID_BASE + 0x2000)?;
    let bufs = Buffers::new()?;
    let name = std::ffi::CString::new(m.0.clone()).map_err(|e| e.to_string())?;
    let link = std::fs::read_link(mdev_path(&m.0).join("iommu_group"))
        .map_err(|e| format!("iommu_group: {e}"))?;
    let group = Path::new("/dev/vfio").join(link.file_name().ok_or("bad iommu_group link")?);
    let type1 = sweep(
        nth,
        "open (type1 group/container)",
        |_| Ok(Type1Open::default()),
        |o| open_type1(o, &group, &name, &bufs),
        // Device, group and container are closed in that order.
        |o, r| {
            let answers = device_answers(o.device, r);
            drop(o.group);
            drop(o.container);
            answers
        },
    )?;
    opens_and_copies(&m.0, false)?;
    let cdev = PathBuf::from(cdev_path(&m.0)?);
    let iommufd = sweep(
        nth,
        "open (iommufd cdev)",
        |_| Ok(CdevOpen::default()),
        |o| open_cdev(o, &cdev, &bufs),
        |o, r| {
            let answers = device_answers(o.device, r);
            drop(o.iommufd);
            answers
        },
    )?;
    opens_and_copies(&m.0, true)?;
    Ok((type1, iommufd))
}

// ---- SET_IRQS and the user's side of a copy -----------------------------------------------------

/// Whether eventfd `e` was signalled, without blocking (consumes the count).
fn signalled(e: &File) -> Result<bool, String> {
    match wait_eventfd(e, 0) {
        Ok(()) => Ok(true),
        Err(m) if m.contains("not signalled") => Ok(false),
        Err(m) => Err(m),
    }
}

fn set_irqs_sweep(nth: &FailNth, s: &Session) -> Result<u32, String> {
    let fd = s.dev.file.as_raw_fd();
    sweep(
        nth,
        "SET_IRQS (MSI eventfd)",
        |_| new_eventfd(),
        |e| {
            let mut w = [24u32, 4 | 32, MSI_INDEX, 0, 1, e.as_raw_fd() as u32];
            ioctl_step("SET_IRQS", fd, VFIO_DEVICE_SET_IRQS, &mut w)
        },
        |e, r| {
            // Loopback trigger (DATA_NONE | ACTION_TRIGGER): fires the connected eventfd.
            let mut fire = [20u32, 1 | 32, MSI_INDEX, 0, 1];
            ioctl_words(fd, VFIO_DEVICE_SET_IRQS, &mut fire)
                .map_err(|e| format!("loopback trigger: errno {e}"))?;
            let got = signalled(&e)?;
            ensure(got == r.is_ok(), || {
                format!(
                    "SET_IRQS {} but the new eventfd was {}signalled by a loopback trigger",
                    if r.is_ok() { "succeeded" } else { "failed" },
                    if got { "" } else { "not " }
                )
            })
        },
    )
}

/// The copy as the user drives it: registers, `CMD`, the completion interrupt, `STATUS`.
fn user_copy(dev: &Device, len: u32) -> OpResult {
    let efd = dev.eventfd.as_ref().ok_or(("no MSI eventfd", -1))?;
    let w = |off: u64, v: u32| {
        step(
            "BAR0 write",
            dev.file.write_at(&v.to_le_bytes(), dev.bar0 + off),
        )
    };
    w(regs::SRC_LO, SRC_IOVA as u32)?;
    w(regs::SRC_HI, 0)?;
    w(regs::DST_LO, DST_IOVA as u32)?;
    w(regs::DST_HI, 0)?;
    w(regs::LEN, len)?;
    w(regs::CMD, regs::CMD_START | regs::CMD_IRQ)?;
    // struct pollfd { int fd; short events (POLLIN); short revents; } as two words.
    let mut pfd = [efd.as_raw_fd(), 1];
    poll_words(&mut pfd).map_err(|e| ("poll", e))?;
    let mut b = [0u8; 8];
    step("eventfd read", std::io::Read::read(&mut &*efd, &mut b))?;
    let mut st = [0u8; 4];
    step(
        "STATUS read",
        dev.file.read_at(&mut st, dev.bar0 + regs::STATUS),
    )?;
    match status_outcome(u32::from_le_bytes(st)) {
        Some(Ok(())) => Ok(()),
        _ => Err(("copy STATUS", -1)),
    }
}

extern "C" {
    fn poll(fds: *mut i32, nfds: u64, timeout: i32) -> i32;
}

/// `poll` on one `struct pollfd` laid out as `[fd, events | revents << 16]`, 30 s.
fn poll_words(pfd: &mut [i32; 2]) -> Result<(), i32> {
    // SAFETY: `pfd` is one live, writable `struct pollfd` (8 bytes).
    let r = unsafe { poll(pfd.as_mut_ptr(), 1, 30_000) };
    match r {
        r if r < 0 => Err(last_errno()),
        0 => Err(-2),
        _ => Ok(()),
    }
}

/// Waits until the device is idle after an interrupted copy and drains its eventfd.
fn settle(s: &Session) -> Result<u32, String> {
    let t = Instant::now();
    loop {
        let st = s.dev.read32(regs::STATUS)?;
        if st & regs::STATUS_BUSY == 0 {
            if let Some(e) = &s.dev.eventfd {
                signalled(e)?;
            }
            return Ok(st);
        }
        ensure(t.elapsed().as_secs() < 30, || {
            format!("copy still busy 30 s after an injected fault (STATUS {st:#x})")
        })?;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The destination holds the source's first `len` bytes and nothing else was written.
fn copied(s: &mut Session, len: usize) -> Result<(), String> {
    let want = s.src.bytes()[..len].to_vec();
    let dst = s.dst.bytes();
    ensure(
        dst[..len] == want[..] && dst[len..].iter().all(|&b| b == 0),
        || "copy reported success but the destination differs".into(),
    )
}

fn user_copy_sweep(nth: &FailNth, s: &mut Session) -> Result<u32, String> {
    let len = 4096;
    let s = std::cell::RefCell::new(s);
    sweep(
        nth,
        "copy (user side: registers, CMD, interrupt, STATUS)",
        |n| {
            let mut s = s.borrow_mut();
            for (i, b) in s.src.bytes().iter_mut().enumerate() {
                *b = (i as u8) ^ (n as u8) | 1;
            }
            s.dst.bytes().fill(0);
            Ok(())
        },
        |_| user_copy(&s.borrow().dev, len),
        |_, r| {
            let mut s = s.borrow_mut();
            let st = settle(&s)?;
            match r {
                Ok(()) => copied(&mut s, len as usize),
                // The copy may have run anyway; it must have ended.
                Err(_) => ensure(st & regs::STATUS_BUSY == 0, || "still busy".into()),
            }
        },
    )
}

// ---- the engine worker's side of a copy ---------------------------------------------------------

/// One `/proc/kallsyms` line: address, type, name, module (None: the kernel proper).
type Sym = (u64, char, String, Option<String>);

/// `/proc/kallsyms`.
fn kallsyms() -> Result<Vec<Sym>, String> {
    let syms = std::fs::read_to_string("/proc/kallsyms").map_err(|e| format!("kallsyms: {e}"))?;
    let mut out = Vec::new();
    for l in syms.lines() {
        let mut it = l.split_whitespace();
        let (Some(a), Some(t), Some(n)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(a) = u64::from_str_radix(a, 16) else {
            continue;
        };
        let m = it.next().map(|m| m.trim_matches(['[', ']']).to_string());
        out.push((a, t.chars().next().unwrap_or('?'), n.to_string(), m));
    }
    ensure(out.iter().any(|s| s.0 != 0), || {
        "kallsyms addresses hidden (kptr_restrict)".into()
    })?;
    Ok(out)
}

/// `[start, end)` of function `name` of the kernel proper: up to the next symbol.
fn function_range(syms: &[Sym], name: &str) -> Result<(u64, u64), String> {
    let start = syms
        .iter()
        .find(|s| s.2 == name && s.3.is_none() && matches!(s.1, 't' | 'T'))
        .map(|s| s.0)
        .ok_or_else(|| format!("no function {name} in kallsyms"))?;
    let end = syms
        .iter()
        .map(|s| s.0)
        .filter(|&a| a > start)
        .min()
        .ok_or_else(|| format!("nothing after {name} in kallsyms"))?;
    Ok((start, end))
}

/// The text of `module`: `[its first function, the next foreign symbol above its last)`, at
/// most 1 MiB past its last function.
fn module_text(syms: &[Sym], module: &str) -> Result<(u64, u64), String> {
    let ours = |s: &&Sym| s.3.as_deref() == Some(module);
    let text: Vec<u64> = syms
        .iter()
        .filter(ours)
        .filter(|s| matches!(s.1, 't' | 'T'))
        .map(|s| s.0)
        .collect();
    let (Some(&lo), Some(&hi)) = (text.iter().min(), text.iter().max()) else {
        return Err(format!("no text symbols of {module} in /proc/kallsyms"));
    };
    let end = syms
        .iter()
        .filter(|s| s.0 > hi && !ours(s))
        .map(|s| s.0)
        .min()
        .unwrap_or(u64::MAX)
        .min(hi + (1 << 20));
    Ok((lo, end))
}

/// A copy that fails in the worker's page check after pinning the source: a few allocations
/// with the sample on the stack and no edu DMA (fast).
fn cheap_copy(s: &Session) -> Result<(), String> {
    s.dev.start_copy(SRC_IOVA, HOLE_IOVA, 4096)?;
    settle(s).map(drop)
}

/// Sweeps the Nth allocation the worker makes with the sample's code on the stack during a
/// one-page copy, through attribute `attr` (`failslab` or `fail_page_alloc`). Returns N reached
/// (or 0: the copies made no such allocation at all).
fn worker_sweep(attr: &str, s: &mut Session) -> Result<u32, String> {
    let t0 = Instant::now();
    let times = format!("{attr}/times");
    let interval = format!("{attr}/interval");
    let armed = || read_knob(&times).map(|t| t != "0");
    let mut tally = Tally::default();
    let mut result = None;
    let mut unaimed = false;
    for n in 1..=MAX_N {
        // Bring the attribute's hidden counter to a multiple of n.
        write_knob(&Path::new(DEBUGFS).join(&interval), &n.to_string())?;
        write_knob(&Path::new(DEBUGFS).join(&times), "1")?;
        let mut synced = false;
        for _ in 0..(2 * n + 8) {
            cheap_copy(s)?;
            if !armed()? {
                synced = true;
                break;
            }
        }
        if !synced {
            write_knob(&Path::new(DEBUGFS).join(&times), "0")?;
            if n > 1 {
                // The counter cannot be aimed without them (interval 1 needs no aiming): a
                // page allocation the measured copy made (a new slab page, say) was N=1.
                println!("  fault sweep worker {attr}: the cheap copies reach no such site: N>1 cannot be aimed, stopping at N={n}");
                result = Some(n);
                unaimed = true;
                break;
            }
            println!("  fault sweep worker {attr}: no such allocation on the worker's check path; N=1 only");
        }
        // The measured copy: its nth matching allocation fails.
        write_knob(&Path::new(DEBUGFS).join(&times), "1")?;
        for (i, b) in s.src.bytes().iter_mut().enumerate() {
            *b = (i as u8).wrapping_add(n as u8) | 1;
        }
        s.dst.bytes().fill(0);
        s.dev.start_copy(SRC_IOVA, DST_IOVA, 4096)?;
        let st = settle(s)?;
        let injected = !armed()?;
        write_knob(&Path::new(DEBUGFS).join(&times), "0")?;
        match status_outcome(st) {
            Some(Ok(())) => {
                copied(s, 4096)?;
                if injected {
                    tally.add("tolerated".into());
                }
            }
            // An allocation failure is the parent's, not the user's: `ERROR` 9 ("device"),
            // never 4 ("unmapped": the user's mapping is intact) or anything else.
            Some(Err(code)) if injected && code == CopyError::Device as u32 => {
                tally.add(format!("ERROR {code}"))
            }
            _ if injected => {
                return Err(format!(
                    "worker {attr}: allocation N={n} failed and the copy ended with STATUS {st:#x}: want ERROR {} (device) or success",
                    CopyError::Device as u32
                ))
            }
            _ => {
                return Err(format!(
                    "worker {attr}: STATUS {st:#x} at N={n} with no fault injected"
                ))
            }
        }
        if !injected {
            result = Some(n);
            break;
        }
    }
    let n = result.ok_or_else(|| format!("worker {attr}: still failing at N={MAX_N}"))?;
    println!(
        "  fault sweep worker {attr}: N=1..{} failed one allocation each ({}); N={n} {} ({} ms)",
        n - 1,
        tally.summary(),
        if unaimed { "not aimed" } else { "copied" },
        t0.elapsed().as_millis()
    );
    Ok(n)
}

fn worker_sweeps(s: &mut Session, knobs: &mut Knobs) -> Result<(), String> {
    let (lo, hi) = module_text(&kallsyms()?, "edu_mdev")?;
    println!("  fault sweep worker: edu_mdev text {lo:#x}..{hi:#x}");
    for attr in ["failslab", "fail_page_alloc"] {
        knobs.set(&format!("{attr}/times"), "0")?;
        knobs.set(&format!("{attr}/interval"), "1")?;
        knobs.set(&format!("{attr}/require-start"), &format!("{lo:#x}"))?;
        knobs.set(&format!("{attr}/require-end"), &format!("{hi:#x}"))?;
        knobs.set(&format!("{attr}/stacktrace-depth"), "32")?;
        knobs.set(&format!("{attr}/probability"), "100")?;
        let r = worker_sweep(attr, s);
        // Off again before anything else runs (restored fully when `knobs` drops).
        write_knob(&Path::new(DEBUGFS).join(format!("{attr}/probability")), "0")?;
        write_knob(&Path::new(DEBUGFS).join(format!("{attr}/times")), "0")?;
        r?;
    }
    Ok(())
}

// ---- the test -------------------------------------------------------------------------------

/// See the module documentation.
pub fn fault_sweep() -> Result<(), String> {
    if let Some(why) = missing_support() {
        return Err(crate::user_tests::skipped(&why));
    }
    let p = parent()?;
    all_free(&p)?;
    let nth = FailNth::open().map_err(|e| format!("fail-nth: {e}"))?;
    let mut knobs = Knobs::default();
    // Every allocation may fail (GFP_KERNEL ones included, order 0 pages too), quietly: the
    // judge looks for splats, not for the injection's own reports.
    knobs.set("failslab/ignore-gfp-wait", "N")?;
    knobs.set("fail_page_alloc/ignore-gfp-wait", "N")?;
    knobs.set("fail_page_alloc/ignore-gfp-highmem", "N")?;
    knobs.set("fail_page_alloc/min-order", "0")?;
    for a in ATTRS {
        knobs.set(&format!("{a}/verbose"), "0")?;
        knobs.set(&format!("{a}/probability"), "0")?;
    }
    // Not failed (and not counted): allocations under `vfio_create_group`. Its error path in
    // 6.12 (`drivers/vfio/group.c`, unchanged upstream) releases the new group with its
    // `iommu_group` still set: `WARN_ON(group->iommu_group)` in `vfio_group_release` and a
    // leaked iommu_group reference (docs/security-review.md). Everything else of mdev create
    // is swept.
    let (lo, hi) = function_range(&kallsyms()?, "vfio_create_group")?;
    for a in ["failslab", "fail_page_alloc"] {
        knobs.set(&format!("{a}/stacktrace-depth"), "32")?;
        knobs.set(&format!("{a}/reject-start"), &format!("{lo:#x}"))?;
        knobs.set(&format!("{a}/reject-end"), &format!("{hi:#x}"))?;
    }
    let t0 = Instant::now();
    create_sweep(&nth, &p)?;
    report_stale_vfio_nodes("mdev create")?;
    remove_sweep(&nth, &p)?;
    report_stale_vfio_nodes("mdev remove")?;
    open_sweeps(&nth, &p)?;
    {
        let m = Mdev::new(&p, "edu-small", UUID_BASE + 0x3000)?;
        let mut s = Session::open(&m.0)?;
        set_irqs_sweep(&nth, &s)?;
        s.dev.enable_msi()?;
        user_copy_sweep(&nth, &mut s)?;
        worker_sweeps(&mut s, &mut knobs)?;
        let m2 = Mdev::new(&p, "edu-small", UUID_BASE + 0x3001)?;
        let mut c = Session::open_iommufd(&m2.0)?;
        worker_sweeps(&mut c, &mut knobs)?;
    }
    drop(knobs);
    // The parent still works: a fresh mdev copies correctly, every slot is free again.
    {
        let m = Mdev::new(&p, "edu-large", UUID_BASE + 0x4000)?;
        let mut s = Session::open(&m.0)?;
        s.copy_checked(0x77, 4, 100, 9000)?;
    }
    all_free(&p)?;
    println!("  fault sweep: {} ms in all", t0.elapsed().as_millis());
    Ok(())
}
