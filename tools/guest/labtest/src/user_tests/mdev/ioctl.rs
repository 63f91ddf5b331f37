// SPDX-License-Identifier: GPL-2.0
//! Malformed ioctl arguments against an `edu_mdev` device, through both VFIO paths, with the
//! errno each must get (`docs/sample-mdev.md`; the VFIO core's and iommufd's own checks as in
//! Linux 6.12). After the bad calls the device must still work: a copy with its completion
//! interrupt (so the MSI eventfd set before the bad calls survived them).

use super::{ensure, parent, Mdev};
use mdev_client::*;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

const ENOENT: i32 = 2;
const EBADF: i32 = 9;
const EFAULT: i32 = 14;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const ENOTTY: i32 = 25;
const EOVERFLOW: i32 = 75;
const EBADFD: i32 = 77;
const EOPNOTSUPP: i32 = 95;

/// An address no test process maps (the first page): the kernel must answer EFAULT.
const BAD_PTR: u64 = 0x8;
/// An fd number that is not open.
const CLOSED_FD: u32 = 999;

// VFIO_IRQ_SET_* flags.
const DATA_NONE: u32 = 1;
const DATA_BOOL: u32 = 2;
const DATA_EVENTFD: u32 = 4;
const ACTION_MASK: u32 = 8;
const ACTION_UNMASK: u32 = 16;
const ACTION_TRIGGER: u32 = 32;

/// Runs `(what, request, words, errno)` cases on `fd`; every one must fail with its errno.
fn expect_errnos(fd: RawFd, cases: &mut [(&str, u64, Vec<u32>, i32)]) -> Result<(), String> {
    let mut bad = Vec::new();
    for (what, req, words, want) in cases.iter_mut() {
        match ioctl_words(fd, *req, words) {
            Err(e) if e == *want => {}
            Err(e) => bad.push(format!("{what}: errno {e}, want {want}")),
            Ok(r) => bad.push(format!("{what}: succeeded ({r}), want errno {want}")),
        }
    }
    ensure(bad.is_empty(), || bad.join("; "))
}

fn expect_errno_value(fd: RawFd, what: &str, req: u64, arg: u64, want: i32) -> Result<(), String> {
    match ioctl_value(fd, req, arg) {
        Err(e) if e == want => Ok(()),
        r => Err(format!("{what}: {r:?}, want errno {want}")),
    }
}

fn rw(p: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .map_err(|e| format!("{p}: {e}"))
}

/// The device ioctls the sample answers itself (both paths): info, region info, IRQ info,
/// SET_IRQS, unknown ioctls, and BAR0/config accesses outside the rules.
fn device_cases(d: &Device) -> Result<(), String> {
    let fd = d.file.as_raw_fd();
    let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    let not_eventfd = null.as_raw_fd() as u32;
    let efd = new_eventfd()?;
    let ev = efd.as_raw_fd() as u32;
    let msi = MSI_INDEX;
    let trig = DATA_EVENTFD | ACTION_TRIGGER;
    expect_errnos(
        fd,
        &mut [
            (
                "GET_INFO argsz 8",
                VFIO_DEVICE_GET_INFO,
                vec![8, 0, 0, 0, 0, 0],
                EINVAL,
            ),
            (
                "GET_INFO argsz 0",
                VFIO_DEVICE_GET_INFO,
                vec![0, 0, 0, 0, 0, 0],
                EINVAL,
            ),
            (
                "REGION_INFO argsz 16",
                VFIO_DEVICE_GET_REGION_INFO,
                vec![16, 0, 0, 0, 0, 0, 0, 0],
                EINVAL,
            ),
            (
                "REGION_INFO index 9",
                VFIO_DEVICE_GET_REGION_INFO,
                vec![32, 0, 9, 0, 0, 0, 0, 0],
                EINVAL,
            ),
            (
                "REGION_INFO index u32::MAX",
                VFIO_DEVICE_GET_REGION_INFO,
                vec![32, 0, u32::MAX, 0, 0, 0, 0, 0],
                EINVAL,
            ),
            (
                "IRQ_INFO argsz 8",
                VFIO_DEVICE_GET_IRQ_INFO,
                vec![8, 0, msi, 0],
                EINVAL,
            ),
            (
                "IRQ_INFO index 5",
                VFIO_DEVICE_GET_IRQ_INFO,
                vec![16, 0, 5, 0],
                EINVAL,
            ),
            (
                "IRQ_INFO index u32::MAX",
                VFIO_DEVICE_GET_IRQ_INFO,
                vec![16, 0, u32::MAX, 0],
                EINVAL,
            ),
            (
                "SET_IRQS argsz 16",
                VFIO_DEVICE_SET_IRQS,
                vec![16, trig, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS 2 MSI vectors",
                VFIO_DEVICE_SET_IRQS,
                vec![28, trig, msi, 0, 2, ev, ev],
                EINVAL,
            ),
            (
                "SET_IRQS start 1",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, msi, 1, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS start u32::MAX",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, msi, u32::MAX, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS count u32::MAX",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, msi, 0, u32::MAX, ev],
                EINVAL,
            ),
            (
                "SET_IRQS two data types",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig | DATA_BOOL, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS no data type",
                VFIO_DEVICE_SET_IRQS,
                vec![24, ACTION_TRIGGER, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS no action",
                VFIO_DEVICE_SET_IRQS,
                vec![24, DATA_EVENTFD, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS two actions",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig | ACTION_MASK, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS unknown flag",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig | 1 << 6, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS index 5",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, 5, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS INTx (no vectors)",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, 0, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS eventfd without room for it",
                VFIO_DEVICE_SET_IRQS,
                vec![20, trig, msi, 0, 1, ev],
                EINVAL,
            ),
            (
                "SET_IRQS bool count 0",
                VFIO_DEVICE_SET_IRQS,
                vec![24, DATA_BOOL | ACTION_TRIGGER, msi, 0, 0, 1],
                EINVAL,
            ),
            (
                "SET_IRQS fd not an eventfd",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, msi, 0, 1, not_eventfd],
                EINVAL,
            ),
            (
                "SET_IRQS closed fd",
                VFIO_DEVICE_SET_IRQS,
                vec![24, trig, msi, 0, 1, CLOSED_FD],
                EBADF,
            ),
            (
                "SET_IRQS MSI mask",
                VFIO_DEVICE_SET_IRQS,
                vec![20, DATA_NONE | ACTION_MASK, msi, 0, 1],
                EINVAL,
            ),
            (
                "SET_IRQS MSI unmask",
                VFIO_DEVICE_SET_IRQS,
                vec![20, DATA_NONE | ACTION_UNMASK, msi, 0, 1],
                EINVAL,
            ),
            (
                "SET_IRQS REQ mask",
                VFIO_DEVICE_SET_IRQS,
                vec![20, DATA_NONE | ACTION_MASK, REQ_INDEX, 0, 1],
                EINVAL,
            ),
            ("unknown device ioctl", 0x3b80, vec![0; 8], ENOTTY),
        ],
    )?;
    for (what, req) in [
        ("GET_INFO", VFIO_DEVICE_GET_INFO),
        ("REGION_INFO", VFIO_DEVICE_GET_REGION_INFO),
        ("IRQ_INFO", VFIO_DEVICE_GET_IRQ_INFO),
        ("SET_IRQS", VFIO_DEVICE_SET_IRQS),
    ] {
        expect_errno_value(
            fd,
            &format!("{what} at a bad address"),
            req,
            BAD_PTR,
            EFAULT,
        )?;
    }
    // Region accesses outside the rules.
    let io_errno = |r: std::io::Result<usize>| r.err().and_then(|e| e.raw_os_error());
    let cases: [(&str, Option<i32>); 7] = [
        (
            "16-bit BAR0 read",
            io_errno(d.file.read_at(&mut [0u8; 2], d.bar0)),
        ),
        (
            "unaligned BAR0 read",
            io_errno(d.file.read_at(&mut [0u8; 4], d.bar0 + 2)),
        ),
        (
            "BAR0 read past the end",
            io_errno(d.file.read_at(&mut [0u8; 4], d.bar0 + 0x1000)),
        ),
        (
            "8-byte BAR0 write",
            io_errno(d.file.write_at(&[0u8; 8], d.bar0 + 8)),
        ),
        (
            "region 3 read",
            io_errno(d.file.read_at(&mut [0u8; 4], 3 << 40)),
        ),
        (
            "region 9 write",
            io_errno(d.file.write_at(&[0u8; 4], 9 << 40)),
        ),
        (
            "config write past the end",
            io_errno(d.file.write_at(&[0u8; 8], d.config + 252)),
        ),
    ];
    let bad: Vec<String> = cases
        .iter()
        .filter(|(_, e)| *e != Some(EINVAL))
        .map(|(w, e)| format!("{w}: {e:?}, want EINVAL"))
        .collect();
    ensure(bad.is_empty(), || bad.join("; "))
}

/// The classic path: group and type1 container ioctls with bad arguments, then the device's,
/// all with the session (buffers mapped, MSI eventfd connected) set up first, so that a bad
/// call that loses state shows in the copy at the end.
pub fn bad_ioctls_group() -> Result<(), String> {
    let p = parent()?;
    let m = Mdev::new(&p, "edu-small", 0x500)?;
    let c = Container::open(&m.0)?;
    let dev = c.device(&m.0)?;
    // The fds stay valid: the session owns the container and its group.
    let (cfd, gfd) = (c.container.as_raw_fd(), c.group.as_raw_fd());
    let mut s = Session::setup(&m.0, dev, Box::new(c))?;
    // GET_DEVICE_FD of a name the group does not have; SET_CONTAINER on a group in one.
    let bogus = std::ffi::CString::new("5a3e0c1d-7b2f-4e8a-9c6d-0000000fffff")
        .map_err(|e| e.to_string())?;
    expect_errno_value(
        gfd,
        "GET_DEVICE_FD unknown name",
        VFIO_GROUP_GET_DEVICE_FD,
        bogus.as_ptr() as u64,
        ENODEV,
    )?;
    expect_errno_value(
        gfd,
        "GET_DEVICE_FD bad address",
        VFIO_GROUP_GET_DEVICE_FD,
        BAD_PTR,
        EFAULT,
    )?;
    let mut cfd_word = [cfd as u32];
    match ioctl_words(gfd, VFIO_GROUP_SET_CONTAINER, &mut cfd_word) {
        Err(EINVAL) => {}
        r => return Err(format!("SET_CONTAINER twice: {r:?}, want errno {EINVAL}")),
    }
    // MAP_DMA / UNMAP_DMA (type1). The session mapped SRC_IOVA and DST_IOVA (64 KiB each).
    let buf = Buffer::new(8192)?;
    let va = buf.ptr as u64;
    let lo = |x: u64| x as u32;
    let hi = |x: u64| (x >> 32) as u32;
    // vfio_iommu_type1_dma_map: argsz, flags, vaddr, iova, size
    let map = |argsz: u32, flags: u32, vaddr: u64, iova: u64, size: u64| {
        vec![
            argsz,
            flags,
            lo(vaddr),
            hi(vaddr),
            lo(iova),
            hi(iova),
            lo(size),
            hi(size),
        ]
    };
    let unmap = |argsz: u32, flags: u32, iova: u64, size: u64| {
        vec![argsz, flags, lo(iova), hi(iova), lo(size), hi(size)]
    };
    let free = 0x60_0000;
    expect_errnos(
        cfd,
        &mut [
            (
                "MAP_DMA argsz 16",
                VFIO_IOMMU_MAP_DMA,
                map(16, 3, va, free, 4096),
                EINVAL,
            ),
            (
                "MAP_DMA unknown flag",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3 | 1 << 5, va, free, 4096),
                EINVAL,
            ),
            (
                "MAP_DMA neither read nor write",
                VFIO_IOMMU_MAP_DMA,
                map(32, 0, va, free, 4096),
                EINVAL,
            ),
            (
                "MAP_DMA size 0",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3, va, free, 0),
                EINVAL,
            ),
            (
                "MAP_DMA unaligned IOVA",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3, va, free + 4, 4096),
                EINVAL,
            ),
            (
                "MAP_DMA unaligned vaddr",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3, va + 4, free, 4096),
                EINVAL,
            ),
            (
                "MAP_DMA unaligned size",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3, va, free, 100),
                EINVAL,
            ),
            (
                "MAP_DMA IOVA wraps",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3, va, u64::MAX - 4095, 8192),
                EINVAL,
            ),
            (
                "MAP_DMA over a mapping",
                VFIO_IOMMU_MAP_DMA,
                map(32, 3, va, SRC_IOVA + 4096, 8192),
                EEXIST,
            ),
            (
                "UNMAP_DMA argsz 16",
                VFIO_IOMMU_UNMAP_DMA,
                unmap(16, 0, SRC_IOVA, 8192),
                EINVAL,
            ),
            (
                "UNMAP_DMA unknown flag",
                VFIO_IOMMU_UNMAP_DMA,
                unmap(24, 1 << 7, SRC_IOVA, 8192),
                EINVAL,
            ),
            (
                "UNMAP_DMA unaligned",
                VFIO_IOMMU_UNMAP_DMA,
                unmap(24, 0, SRC_IOVA + 4, 4096),
                EINVAL,
            ),
        ],
    )?;
    expect_errno_value(
        cfd,
        "MAP_DMA bad address",
        VFIO_IOMMU_MAP_DMA,
        BAD_PTR,
        EFAULT,
    )?;
    // Unmapping nothing is not an error in type1: it unmaps 0 bytes.
    let mut none = unmap(24, 0, 0x4000_0000, 4096);
    let r = ioctl_words(cfd, VFIO_IOMMU_UNMAP_DMA, &mut none);
    ensure(r.is_ok() && none[4] == 0 && none[5] == 0, || {
        format!(
            "UNMAP_DMA of nothing: {r:?}, size {:#x}",
            u64::from(none[4]) | u64::from(none[5]) << 32
        )
    })?;
    drop(buf);
    device_cases(&s.dev)?;
    s.copy_checked(0x21, 0, 4, 4096)?;
    ensure(s.dev.read32(regs::COMPLETED)? == 1, || {
        "COMPLETED != 1".into()
    })
}

/// The iommufd/cdev path: BIND_IOMMUFD, ATTACH_IOMMUFD_PT, IOAS_MAP/UNMAP with bad arguments
/// (and device ioctls before the bind), then the device's own ioctls, then a copy.
pub fn bad_ioctls_iommufd() -> Result<(), String> {
    let p = parent()?;
    let m = Mdev::new(&p, "edu-small", 0x510)?;
    let iommufd = rw("/dev/iommu")?;
    let ifd = iommufd.as_raw_fd();
    let mut alloc = vec![12u32, 0, 0];
    ioctl_words(ifd, IOMMU_IOAS_ALLOC, &mut alloc).map_err(|e| format!("IOAS_ALLOC: errno {e}"))?;
    let ioas = alloc[2];
    let cdev = rw(&cdev_path(&m.0)?)?;
    let fd = cdev.as_raw_fd();
    let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    // Before BIND_IOMMUFD nothing but the bind is allowed.
    expect_errnos(
        fd,
        &mut [
            (
                "GET_INFO before bind",
                VFIO_DEVICE_GET_INFO,
                vec![24, 0, 0, 0, 0, 0],
                EINVAL,
            ),
            (
                "ATTACH before bind",
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                vec![12, 0, ioas],
                EINVAL,
            ),
            (
                "BIND argsz 8",
                VFIO_DEVICE_BIND_IOMMUFD,
                vec![8, 0, ifd as u32, 0],
                EINVAL,
            ),
            (
                "BIND flags 1",
                VFIO_DEVICE_BIND_IOMMUFD,
                vec![16, 1, ifd as u32, 0],
                EINVAL,
            ),
            (
                "BIND iommufd -1",
                VFIO_DEVICE_BIND_IOMMUFD,
                vec![16, 0, u32::MAX, 0],
                EINVAL,
            ),
            (
                "BIND closed fd",
                VFIO_DEVICE_BIND_IOMMUFD,
                vec![16, 0, CLOSED_FD, 0],
                EBADF,
            ),
            (
                "BIND fd not an iommufd",
                VFIO_DEVICE_BIND_IOMMUFD,
                vec![16, 0, null.as_raw_fd() as u32, 0],
                EBADFD,
            ),
        ],
    )?;
    expect_errno_value(
        fd,
        "BIND bad address",
        VFIO_DEVICE_BIND_IOMMUFD,
        BAD_PTR,
        EFAULT,
    )?;
    let before = cdev
        .read_at(&mut [0u8; 4], 0)
        .err()
        .and_then(|e| e.raw_os_error());
    ensure(before == Some(EINVAL), || {
        format!("read before bind: {before:?}, want EINVAL")
    })?;
    let mut bind = vec![16u32, 0, ifd as u32, 0];
    ioctl_words(fd, VFIO_DEVICE_BIND_IOMMUFD, &mut bind).map_err(|e| format!("BIND: errno {e}"))?;
    expect_errnos(
        fd,
        &mut [
            (
                "BIND twice",
                VFIO_DEVICE_BIND_IOMMUFD,
                vec![16, 0, ifd as u32, 0],
                EINVAL,
            ),
            (
                "ATTACH argsz 8",
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                vec![8, 0, ioas],
                EINVAL,
            ),
            (
                "ATTACH flags 1",
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                vec![12, 1, ioas],
                EINVAL,
            ),
            (
                "ATTACH unknown id",
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                vec![12, 0, 0xdead],
                ENOENT,
            ),
            (
                "ATTACH id 0",
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                vec![12, 0, 0],
                ENOENT,
            ),
        ],
    )?;
    expect_errno_value(
        fd,
        "ATTACH bad address",
        VFIO_DEVICE_ATTACH_IOMMUFD_PT,
        BAD_PTR,
        EFAULT,
    )?;
    let mut attach = vec![12u32, 0, ioas];
    ioctl_words(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach)
        .map_err(|e| format!("ATTACH: errno {e}"))?;
    expect_errnos(
        fd,
        &mut [(
            "DETACH flags 1",
            VFIO_DEVICE_DETACH_IOMMUFD_PT,
            vec![8, 1],
            EINVAL,
        )],
    )?;
    let dev = Device::from_file(cdev)?;
    let mut s = Session::setup(&m.0, dev, Box::new(Iommufd { iommufd, ioas }))?;
    // IOAS_MAP / IOAS_UNMAP; the session mapped SRC_IOVA and DST_IOVA (64 KiB each).
    let buf = Buffer::new(8192)?;
    let va = buf.ptr as u64;
    let lo = |x: u64| x as u32;
    let hi = |x: u64| (x >> 32) as u32;
    // iommu_ioas_map: size, flags, ioas_id, __reserved, user_va, length, iova
    let map = |size: u32, flags: u32, id: u32, rsvd: u32, length: u64, iova: u64| {
        vec![
            size,
            flags,
            id,
            rsvd,
            lo(va),
            hi(va),
            lo(length),
            hi(length),
            lo(iova),
            hi(iova),
        ]
    };
    // iommu_ioas_unmap: size, ioas_id, iova, length
    let unmap = |size: u32, id: u32, iova: u64, length: u64| {
        vec![size, id, lo(iova), hi(iova), lo(length), hi(length)]
    };
    const FIXED_RW: u32 = 7;
    // `ifd` stays valid: the session owns the iommufd file now.
    expect_errnos(
        ifd,
        &mut [
            (
                "IOAS_MAP size 16",
                IOMMU_IOAS_MAP,
                map(16, FIXED_RW, ioas, 0, 4096, 0x60_0000),
                EINVAL,
            ),
            (
                "IOAS_MAP unknown flag",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW | 1 << 5, ioas, 0, 4096, 0x60_0000),
                EOPNOTSUPP,
            ),
            (
                "IOAS_MAP reserved field",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW, ioas, 1, 4096, 0x60_0000),
                EOPNOTSUPP,
            ),
            (
                "IOAS_MAP neither read nor write",
                IOMMU_IOAS_MAP,
                map(40, 1, ioas, 0, 4096, 0x60_0000),
                EINVAL,
            ),
            (
                "IOAS_MAP unknown IOAS",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW, 0xdead, 0, 4096, 0x60_0000),
                ENOENT,
            ),
            (
                "IOAS_MAP unaligned IOVA",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW, ioas, 0, 4096, 0x60_0004),
                EINVAL,
            ),
            (
                "IOAS_MAP length 0",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW, ioas, 0, 0, 0x60_0000),
                EINVAL,
            ),
            (
                "IOAS_MAP IOVA u64::MAX",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW, ioas, 0, 4096, u64::MAX),
                EOVERFLOW,
            ),
            (
                "IOAS_MAP over a mapping",
                IOMMU_IOAS_MAP,
                map(40, FIXED_RW, ioas, 0, 8192, SRC_IOVA + 4096),
                EEXIST,
            ),
            (
                "IOAS_UNMAP size 8",
                IOMMU_IOAS_UNMAP,
                unmap(8, ioas, SRC_IOVA, 4096),
                EINVAL,
            ),
            (
                "IOAS_UNMAP unknown IOAS",
                IOMMU_IOAS_UNMAP,
                unmap(24, 0xdead, SRC_IOVA, 4096),
                ENOENT,
            ),
            (
                "IOAS_UNMAP nothing mapped",
                IOMMU_IOAS_UNMAP,
                unmap(24, ioas, 0x4000_0000, 4096),
                ENOENT,
            ),
        ],
    )?;
    expect_errno_value(ifd, "IOAS_MAP bad address", IOMMU_IOAS_MAP, BAD_PTR, EFAULT)?;
    drop(buf);
    device_cases(&s.dev)?;
    s.copy_checked(0x31, 8, 0, 4096)?;
    ensure(s.dev.read32(regs::COMPLETED)? == 1, || {
        "COMPLETED != 1".into()
    })
}
