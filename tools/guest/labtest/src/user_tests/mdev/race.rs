// SPDX-License-Identifier: GPL-2.0
//! Regression tests of issue 11 ("an unprivileged VFIO user crashes the host"), one per defect
//! that user space can reach:
//! - `race_unmap_pin_*`: users of one address space (three mdevs in one type1 container, or
//!   bound to one iommufd IOAS) loop copies reading a range R while the main thread unmaps and
//!   maps R again. The old sample pinned R from the `CMD` write, outside `dma_unmap`'s reach:
//!   `kernel BUG at drivers/vfio/vfio_iommu_type1.c:1390!` (type1), pages pinned for good
//!   (iommufd). Phase 1 is the reproducer (destination unmapped), phase 2 copies for
//!   real (the engine's pieces pin R).
//! - `race_reset_cmd`: `RESET` racing `CMD`: no job survives a reset (no DMA after it returned),
//!   and another tenant's copy still gets the engine.
//! - `debugfs_open_across_rmmod`: an open debugfs file of the module keeps it loaded.
//! - `pasid_mode_needs_tagged_dma`: edu cannot tag its DMA with a PASID, so the parent never
//!   considers PASID mode and says why.

use super::{ensure, parent, Mdev};
use mdev_client::*;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The range the users copy from and the main thread unmaps and maps again.
const R_IOVA: u64 = 0x10_0000;
const R_LEN: usize = 64 * 1024;
/// Phase 1's destination: never mapped. Phase 2's: mapped.
const HOLE_IOVA: u64 = 0x40_0000;
const DST2_IOVA: u64 = 0x20_0000;

fn open_rw(p: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .map_err(|e| format!("{p}: {e}"))
}

/// The `/dev/vfio/N` group of mdev `uuid`.
pub(super) fn group_file(uuid: &str) -> Result<File, String> {
    let link = std::fs::read_link(mdev_path(uuid).join("iommu_group"))
        .map_err(|e| format!("iommu_group: {e}"))?;
    let n = link
        .file_name()
        .and_then(|s| s.to_str())
        .ok_or("bad iommu_group link")?
        .to_string();
    open_rw(&format!("/dev/vfio/{n}"))
}

/// The device fd of mdev `uuid` from its (container-attached) group.
pub(super) fn device_from_group(group: &File, uuid: &str) -> Result<Device, String> {
    let name = std::ffi::CString::new(uuid).map_err(|e| e.to_string())?;
    let fd = ioctl_value(
        group.as_raw_fd(),
        VFIO_GROUP_GET_DEVICE_FD,
        name.as_ptr() as u64,
    )
    .map_err(|e| format!("GET_DEVICE_FD {uuid}: errno {e}"))?;
    // SAFETY: a new fd we own.
    Device::from_file(unsafe { File::from_raw_fd(fd) })
}

/// Puts mdev `uuid`'s group into `c` (an existing type1 container) and opens the device. The
/// group file must stay open as long as the device is used.
pub(super) fn join_container(c: &Container, uuid: &str) -> Result<(File, Device), String> {
    let group = group_file(uuid)?;
    let mut cfd = [c.container.as_raw_fd() as u32];
    ioctl_words(group.as_raw_fd(), VFIO_GROUP_SET_CONTAINER, &mut cfd)
        .map_err(|e| format!("SET_CONTAINER {uuid}: errno {e}"))?;
    let dev = device_from_group(&group, uuid)?;
    Ok((group, dev))
}

/// Binds the cdev of mdev `uuid` to iommufd `fd` and attaches it to IOAS `ioas`.
pub(super) fn bind_iommufd(fd: &File, ioas: u32, uuid: &str) -> Result<Device, String> {
    let file = open_rw(&cdev_path(uuid)?)?;
    let mut bind = [16u32, 0, fd.as_raw_fd() as u32, 0];
    ioctl_words(file.as_raw_fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind)
        .map_err(|e| format!("BIND_IOMMUFD {uuid}: errno {e}"))?;
    let mut attach = [12u32, 0, ioas];
    ioctl_words(file.as_raw_fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach)
        .map_err(|e| format!("ATTACH_IOMMUFD_PT {uuid}: errno {e}"))?;
    Device::from_file(file)
}

/// A new iommufd with one IOAS.
pub(super) fn new_iommufd() -> Result<Iommufd, String> {
    let iommufd = open_rw("/dev/iommu")?;
    let mut alloc = [12u32, 0, 0];
    ioctl_words(iommufd.as_raw_fd(), IOMMU_IOAS_ALLOC, &mut alloc)
        .map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    Ok(Iommufd {
        iommufd,
        ioas: alloc[2],
    })
}

/// Waits until the device's `STATUS` is not `BUSY`; returns it.
pub(super) fn wait_idle(d: &Device, timeout: Duration) -> Result<u32, String> {
    let end = Instant::now() + timeout;
    loop {
        let s = d.read32(regs::STATUS)?;
        if s & regs::STATUS_BUSY == 0 {
            return Ok(s);
        }
        if Instant::now() > end {
            return Err(format!("still BUSY after {timeout:?} (STATUS {s:#x})"));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Copies `len` bytes from `src` to `dst` with `d` and waits for the end; the engine's verdict.
pub(super) fn run_copy(
    d: &Device,
    src: u64,
    dst: u64,
    len: u32,
) -> Result<Result<(), u32>, String> {
    d.start_copy(src, dst, len)?;
    let s = wait_idle(d, Duration::from_secs(60))?;
    status_outcome(s).ok_or_else(|| format!("STATUS {s:#x} without DONE"))
}

/// Three users of one address space loop copies from R (to `dst`) while the main thread unmaps
/// and maps R again for `secs`; every unmap must unmap all of R. Returns (unmaps, copies).
fn unmap_vs_copies(
    space: &dyn IoSpace,
    r: &Buffer,
    devs: Vec<Device>,
    dst: u64,
    secs: u64,
) -> Result<(Vec<Device>, u32, u32), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let copies = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = devs
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let (stop, copies) = (stop.clone(), copies.clone());
            thread::spawn(move || -> Result<Device, String> {
                let off = (i as u64) * 8192;
                while !stop.load(Ordering::Acquire) {
                    // Any verdict is fine (0 or 4): the kernel must survive and unmap R.
                    let _verdict = run_copy(&d, R_IOVA + off, dst + off, 8192)?;
                    copies.fetch_add(1, Ordering::Relaxed);
                }
                Ok(d)
            })
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut unmaps = 0;
    let mut err = None;
    while Instant::now() < end {
        if let Err(e) = space.unmap(R_IOVA, R_LEN as u64) {
            err = Some(format!("unmap {unmaps}: {e}"));
            break;
        }
        if let Err(e) = space.map(r, R_IOVA) {
            err = Some(format!("map {unmaps}: {e}"));
            break;
        }
        unmaps += 1;
    }
    stop.store(true, Ordering::Release);
    let mut back = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok(Ok(d)) => back.push(d),
            Ok(Err(e)) => err = err.or(Some(format!("user {i}: {e}"))),
            Err(_) => err = err.or(Some(format!("user {i} panicked"))),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok((back, unmaps, copies.load(Ordering::Relaxed))),
    }
}

/// Both phases on one address space, then every device copies right again and R unmaps.
fn unmap_pin_phases(path: &str, space: &dyn IoSpace, devs: Vec<Device>) -> Result<(), String> {
    let (secs1, secs2) = race_secs();
    let mut r = Buffer::new(R_LEN)?;
    for (i, b) in r.bytes().iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(3);
    }
    space.map(&r, R_IOVA)?;
    // Phase 1: the reproducer, destination unmapped (every copy ends with ERROR 4).
    let (devs, unmaps1, copies1) = unmap_vs_copies(space, &r, devs, HOLE_IOVA, secs1)?;
    // Phase 2: real copies, whose pieces pin R while it is unmapped under them.
    let mut dst = Buffer::new(R_LEN)?;
    space.map(&dst, DST2_IOVA)?;
    let (devs, unmaps2, copies2) = unmap_vs_copies(space, &r, devs, DST2_IOVA, secs2)?;
    println!(
        "  mdev: {path}: phase 1 {unmaps1} unmaps / {copies1} copies, phase 2 {unmaps2} unmaps / {copies2} copies"
    );
    ensure(
        unmaps1 > 0 && copies1 > 0 && unmaps2 > 0 && copies2 > 0,
        || format!("{path}: nothing raced"),
    )?;
    // Afterwards each user copies right, and R unmaps in one go (nothing left pinned).
    for (i, d) in devs.iter().enumerate() {
        dst.bytes().fill(0);
        let off = i * 4096;
        let v = run_copy(d, R_IOVA + off as u64, DST2_IOVA, 4096)?;
        ensure(v == Ok(()), || {
            format!("{path}: user {i} copy after the race: {v:?}")
        })?;
        let want = r.bytes()[off..off + 4096].to_vec();
        ensure(dst.bytes()[..4096] == want[..], || {
            format!("{path}: user {i}: wrong bytes after the race")
        })?;
    }
    space.unmap(R_IOVA, R_LEN as u64)?;
    space.unmap(DST2_IOVA, R_LEN as u64)?;
    drop(devs);
    Ok(())
}

/// How long phase 1 and phase 2 race, in seconds. Phase 2 is the one that needs the unmap
/// fence: without it (the pre-pin dropped only) type1 still `BUG`ged, once within two 20 s
/// phases; 10 s keeps the suite within its CI budget.
fn race_secs() -> (u64, u64) {
    (3, 10)
}

/// Issue 11, defect 1, type1: three mdevs in one container.
pub fn race_unmap_pin_type1() -> Result<(), String> {
    let p = parent()?;
    let ms: Vec<Mdev> = (0..3)
        .map(|i| Mdev::new(&p, "edu-small", 0x400 + i))
        .collect::<Result<_, _>>()?;
    let c = Container::open(&ms[0].0)?;
    let d0 = c.device(&ms[0].0)?;
    let (g1, d1) = join_container(&c, &ms[1].0)?;
    let (g2, d2) = join_container(&c, &ms[2].0)?;
    unmap_pin_phases("type1", &c, vec![d0, d1, d2])?;
    drop((g1, g2));
    Ok(())
}

/// Issue 11, defect 1, iommufd: three mdevs bound to one iommufd and attached to one IOAS.
pub fn race_unmap_pin_iommufd() -> Result<(), String> {
    let p = parent()?;
    let ms: Vec<Mdev> = (0..3)
        .map(|i| Mdev::new(&p, "edu-small", 0x410 + i))
        .collect::<Result<_, _>>()?;
    let fd = new_iommufd()?;
    let devs = ms
        .iter()
        .map(|m| bind_iommufd(&fd.iommufd, fd.ioas, &m.0))
        .collect::<Result<Vec<_>, _>>()?;
    unmap_pin_phases("iommufd", &fd, devs)
}

/// The parent's `pieces` counter (debugfs `edu_mdev/<parent>`): every edu DMA pair counts.
fn pieces(p: &std::path::Path) -> Result<u64, String> {
    let f = format!("/sys/kernel/debug/edu_mdev/{}", parent_bdf(p)?);
    let s = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("pieces "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{f}: no pieces line"))
}

/// Issue 11, defect 2: `CMD` and `RESET` (ioctl and register, alternately) written at the same
/// moment by two threads, the reset a random few microseconds later, many times. When both
/// returned and `STATUS` says idle (the reset came last), no copy of the mdev may run any more:
/// the parent's piece counter must stand still (the old sample queued the copy after the reset
/// had cleared the registers: it ran on, and, repeated, filled the parent's queue). Then
/// tenant B's copy and A's own still work.
pub fn race_reset_cmd() -> Result<(), String> {
    let p = parent()?;
    let a = Mdev::new(&p, "edu-small", 0x420)?;
    let b = Mdev::new(&p, "edu-small", 0x421)?;
    let mut sa = Session::open(&a.0)?;
    let mut sb = Session::open(&b.0)?;
    sa.src.bytes().fill(0x6d);
    let da = &sa.dev;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut stale_checks, mut later_cmds) = (0, 0);
    for round in 0..30u32 {
        da.write32(regs::SRC_LO, SRC_IOVA as u32)?;
        da.write32(regs::SRC_HI, 0)?;
        da.write32(regs::DST_LO, DST_IOVA as u32)?;
        da.write32(regs::DST_HI, 0)?;
        da.write32(regs::LEN, BUF_LEN as u32)?;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % 3000);
        let barrier = std::sync::Barrier::new(2);
        thread::scope(|sc| -> Result<(), String> {
            let cmd = sc.spawn(|| {
                barrier.wait();
                da.write32(regs::CMD, regs::CMD_START)
            });
            barrier.wait();
            let t = Instant::now();
            while t.elapsed() < delay {
                std::hint::spin_loop();
            }
            if round % 2 == 0 {
                da.reset()?;
            } else {
                da.write32(regs::RESET, 1)?;
            }
            cmd.join().map_err(|_| "CMD thread panicked")?
        })?;
        let st = da.read32(regs::STATUS)?;
        if st & regs::STATUS_BUSY != 0 {
            // The CMD came after the reset: a legitimate copy.
            later_cmds += 1;
            let st = wait_idle(da, Duration::from_secs(60))?;
            ensure(status_outcome(st) == Some(Ok(())), || {
                format!("round {round}: copy after the reset: STATUS {st:#x}")
            })?;
            continue;
        }
        stale_checks += 1;
        let p0 = pieces(&p)?;
        thread::sleep(Duration::from_millis(400));
        let p1 = pieces(&p)?;
        ensure(p1 == p0, || {
            format!(
                "round {round} (reset {delay:?} after CMD): STATUS {st:#x} but {} pieces of DMA after the reset returned (a stale copy ran)",
                p1 - p0
            )
        })?;
    }
    println!("  mdev: {stale_checks} rounds with the reset last (no DMA after it), {later_cmds} with the CMD last");
    ensure(stale_checks > 0, || {
        "the reset never came last: nothing tested".into()
    })?;
    // Both tenants still copy (A's queue entry was not left taken).
    sb.copy_checked(0x24, 0, 0, 4096)?;
    sa.copy_checked(0x42, 0, 0, 4096)
}

/// Issue 11, defect 3: with `edu_mdev/<parent>` open in debugfs the module cannot be unloaded
/// (the old file operations had no owner: `rmmod` succeeded and the close called into freed
/// module memory); after the close it unloads, and loads again.
pub fn debugfs_open_across_rmmod() -> Result<(), String> {
    let p = parent()?;
    let bdf = parent_bdf(&p)?;
    let path = format!("/sys/kernel/debug/edu_mdev/{bdf}");
    let f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let rm = || {
        std::process::Command::new("rmmod")
            .arg("edu_mdev")
            .output()
            .map_err(|e| format!("rmmod: {e}"))
    };
    let o = rm()?;
    if o.status.success() {
        // Do not close the file: with the module gone that is the crash this test is about.
        std::mem::forget(f);
        return Err("rmmod edu_mdev succeeded with its debugfs file open".into());
    }
    let mut s = String::new();
    std::io::Read::read_to_string(&mut &f, &mut s).map_err(|e| format!("read {path}: {e}"))?;
    ensure(s.contains("submitted"), || format!("{path}: {s:?}"))?;
    drop(f);
    let o = rm()?;
    ensure(o.status.success(), || {
        format!(
            "rmmod after the close: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )
    })?;
    ensure_module()?;
    find_parent().map(drop)
}

/// Issue 11, defect 4, and issue 12: the engine's capabilities choose the mode. edu cannot tag
/// its DMA with a PASID, so its parent must not even consider PASID mode (the old sample would
/// have chosen it on a PASID-capable platform and programmed edu with user IOVAs, untagged),
/// says why, and its mdevs are `mediated`; edu-pasid's mdevs (PASID platforms) are `pasid`, and
/// there is no edu-pasid elsewhere.
pub fn pasid_mode_needs_tagged_dma() -> Result<(), String> {
    ensure_module()?;
    let p = find_parent_of(EDU)?;
    let bdf = parent_bdf(&p)?;
    // A fresh probe, so that its lines are in the log.
    edu_driver("unbind", &bdf)?;
    edu_driver("bind", &bdf)?;
    let p = find_parent_of(EDU)?;
    let o = std::process::Command::new("dmesg")
        .output()
        .map_err(|e| format!("dmesg: {e}"))?;
    let log = String::from_utf8_lossy(&o.stdout);
    let why = "PASID mode not considered: the engine cannot tag its DMA with a PASID";
    let last_probe = log
        .lines()
        .rev()
        .find(|l| l.contains(&bdf) && l.contains("edu_mdev: mdev parent with types"));
    ensure(last_probe.is_some(), || "no probe line in the log".into())?;
    ensure(
        log.lines().any(|l| l.contains(&bdf) && l.contains(why)),
        || format!("no '{why}' line for {bdf}"),
    )?;
    let mut want = vec![(p, "mediated", 0x430)];
    match find_parent_of(EDU_PASID) {
        Ok(pp) => want.push((pp, "pasid", 0x431)),
        Err(_) if !pasid_platform() => {}
        Err(e) => return Err(format!("platform {}: {e}", platform())),
    }
    ensure(pasid_platform() == (want.len() == 2), || {
        format!("platform {} has {} parents", platform(), want.len())
    })?;
    for (parent, mode_want, n) in want {
        let m = Mdev::new(&parent, "edu-small", n)?;
        let mode = mdev_attr(&m.0, "mode")?;
        ensure(mode == mode_want, || {
            format!("{}: mode {mode:?}, want {mode_want}", parent.display())
        })?;
    }
    Ok(())
}
