// SPDX-License-Identifier: GPL-2.0
//! User-space tests run inside the guest (device nodes, sysfs, VFIO clients).

/// A named user-space test.
pub struct UserTest {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

/// Every user-space test, in order.
pub const ALL: &[UserTest] = &[
    UserTest {
        name: "guest:edu_present",
        run: edu_present,
    },
    UserTest {
        name: "guest:platform_devices",
        run: platform::platform_devices,
    },
    UserTest {
        name: "guest:ioasid_debugfs_view",
        run: ioasid_debugfs_view,
    },
    UserTest {
        name: "mdev:types_and_capacity",
        run: mdev::types_and_capacity,
    },
    UserTest {
        name: "mdev:create_copy_remove",
        run: mdev::create_copy_remove,
    },
    UserTest {
        name: "mdev:config_space_and_info",
        run: mdev::config_space_and_info,
    },
    UserTest {
        name: "mdev:iommufd_cdev_copy",
        run: mdev::iommufd_cdev_copy,
    },
    UserTest {
        name: "mdev:capacity_exhausted",
        run: mdev::capacity_exhausted,
    },
    UserTest {
        name: "mdev:bad_sysfs_input",
        run: mdev::bad_sysfs_input,
    },
    UserTest {
        name: "mdev:bad_copies",
        run: mdev::bad_copies,
    },
    UserTest {
        name: "mdev:bad_register_and_ioctl_input",
        run: mdev::bad_register_and_ioctl_input,
    },
    UserTest {
        name: "mdev:isolation",
        run: mdev::isolation,
    },
    UserTest {
        name: "mdev:isolation_iommufd",
        run: mdev::isolation_iommufd,
    },
    UserTest {
        name: "mdev:concurrent_copies",
        run: mdev::concurrent_copies,
    },
    UserTest {
        name: "mdev:engine_shared_fairly",
        run: mdev::engine_shared_fairly,
    },
    UserTest {
        name: "mdev:unmap_during_copy",
        run: mdev::unmap_during_copy,
    },
    UserTest {
        name: "mdev:reset_aborts",
        run: mdev::reset_aborts,
    },
    UserTest {
        name: "mdev:remove_while_open",
        run: mdev::remove_while_open,
    },
    UserTest {
        name: "mdev:bad_ioctls_group",
        run: mdev::ioctl::bad_ioctls_group,
    },
    UserTest {
        name: "mdev:bad_ioctls_iommufd",
        run: mdev::ioctl::bad_ioctls_iommufd,
    },
    UserTest {
        name: "mdev:no_dma_after_unmap",
        run: mdev::no_dma_after_unmap,
    },
    UserTest {
        name: "mdev:concurrent_copies_with_churn",
        run: mdev::stress::concurrent_copies_with_churn,
    },
    UserTest {
        name: "mdev:capacity_race",
        run: mdev::stress::capacity_race,
    },
    UserTest {
        name: "mdev:remove_while_open_without_req",
        run: mdev::remove_while_open_without_req,
    },
    UserTest {
        name: "mdev:parent_unbind_while_open",
        run: mdev::parent_unbind_while_open,
    },
    UserTest {
        name: "mdev:parent_unbind_with_mdevs",
        run: mdev::parent_unbind_with_mdevs,
    },
    UserTest {
        name: "mdev:race_unmap_pin_type1",
        run: mdev::race::race_unmap_pin_type1,
    },
    UserTest {
        name: "mdev:race_unmap_pin_iommufd",
        run: mdev::race::race_unmap_pin_iommufd,
    },
    UserTest {
        name: "mdev:race_reset_cmd",
        run: mdev::race::race_reset_cmd,
    },
    UserTest {
        name: "mdev:vfio_stress",
        run: mdev::harness::vfio_stress,
    },
    UserTest {
        name: "mdev:pasid_mode_needs_tagged_dma",
        run: mdev::race::pasid_mode_needs_tagged_dma,
    },
    UserTest {
        name: "mdev:debugfs_open_across_rmmod",
        run: mdev::race::debugfs_open_across_rmmod,
    },
    UserTest {
        name: "mdev:fault_sweep",
        run: mdev::faults::fault_sweep,
    },
];

/// The tests that run only on the PASID platforms (`run.sh --platform pasid|pasid-noits`),
/// after [`ALL`]: PASID mode on edu-pasid, what rests on the IOMMU's translation.
pub const PASID: &[UserTest] = &[
    UserTest {
        name: "mdev:pasid_same_iovas_real_translation",
        run: mdev::pasid::same_iovas_real_translation,
    },
    UserTest {
        name: "mdev:pasid_unmapped_iova_faults",
        run: mdev::pasid::unmapped_iova_faults,
    },
    UserTest {
        name: "mdev:pasid_msi_isolation_at_open",
        run: mdev::pasid::msi_isolation_at_open,
    },
    UserTest {
        name: "mdev:pasid_completion_through_own_domain",
        run: mdev::pasid::completion_through_own_domain,
    },
];

/// Marks a test's `Err` as a skip: what [`skipped`] returns starts with it.
pub const SKIP_MARK: &str = "\u{1}skip: ";

/// The error a test returns when it cannot run here: reported as `SKIP <name>: <reason>`.
pub fn skipped(reason: &str) -> String {
    format!("{SKIP_MARK}{reason}")
}

/// The `mdev:*` tests that need the full sample (`edu_mdev`) and why: a run of the minimal
/// sample (`run.sh test --filter mdev: --append lab.mdev_module=edu_mdev_min`) reports them as
/// skipped with the reason; every other `mdev:*` test applies to it unchanged.
pub const FULL_SAMPLE_ONLY: &[(&str, &str)] = &[
    (
        "mdev:types_and_capacity",
        "checks both types (edu-small, edu-large)",
    ),
    ("mdev:create_copy_remove", "uses the edu-large type"),
    ("mdev:config_space_and_info", "uses the edu-large type"),
    ("mdev:capacity_exhausted", "counts edu-large slots"),
    ("mdev:bad_sysfs_input", "uses the edu-large type"),
    ("mdev:engine_shared_fairly", "uses the edu-large type"),
    (
        "mdev:concurrent_copies_with_churn",
        "reads the pasid attribute",
    ),
    ("mdev:capacity_race", "races edu-small and edu-large"),
    ("mdev:parent_unbind_while_open", "uses the edu-large type"),
    ("mdev:parent_unbind_with_mdevs", "uses the edu-large type"),
    ("mdev:race_reset_cmd", "reads the debugfs copy statistics"),
    (
        "mdev:pasid_mode_needs_tagged_dma",
        "checks the PASID-mode probe messages",
    ),
    ("mdev:debugfs_open_across_rmmod", "needs the debugfs files"),
    ("mdev:fault_sweep", "uses the edu-large type"),
];

/// The lab machine must expose QEMU's edu device (1234:11e8) on PCI: later tests depend on it.
fn edu_present() -> Result<(), String> {
    let dir =
        std::fs::read_dir("/sys/bus/pci/devices").map_err(|e| format!("no PCI sysfs: {e}"))?;
    for d in dir.flatten() {
        let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap_or_default();
        if read("vendor").trim() == "0x1234" && read("device").trim() == "0x11e8" {
            return Ok(());
        }
    }
    Err("edu (1234:11e8) not found under /sys/bus/pci/devices".into())
}

/// The system PASID allocator (created by the `ioasid_test` module's first use) publishes its
/// state in debugfs: a 20-bit space with PASID 0 reserved for the requester ID.
fn ioasid_debugfs_view() -> Result<(), String> {
    let path = "/sys/kernel/debug/ioasid/pasids";
    let view = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let first = view.lines().next().unwrap_or("");
    if !first.starts_with("pasid_bits 20 max 0xfffff") {
        return Err(format!("unexpected first line {first:?}"));
    }
    for want in ["reserved 0x0", "sets:", "pasids:"] {
        if !view.lines().any(|l| l.trim_start().starts_with(want)) {
            return Err(format!("no {want:?} line in:\n{view}"));
        }
    }
    Ok(())
}

/// Tests of the `edu_mdev` sample through sysfs and VFIO, as a user-space driver sees it.
mod platform;

mod mdev {
    use mdev_client::*;
    use std::path::PathBuf;

    pub mod faults;
    pub mod harness;
    pub mod ioctl;
    pub mod pasid;
    pub mod race;
    pub mod stress;

    pub(super) fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
        if cond {
            Ok(())
        } else {
            Err(what())
        }
    }

    pub(super) fn parent() -> Result<PathBuf, String> {
        ensure_module()?;
        find_parent()
    }

    /// Removes the mdev when dropped (tests fail half-way; later tests need a clean parent).
    pub(super) struct Mdev(pub(super) String);

    impl Mdev {
        pub(super) fn new(parent: &std::path::Path, ty: &str, n: u32) -> Result<Self, String> {
            let u = uuid(n);
            create_mdev(parent, ty, &u).map_err(|e| format!("create {ty} {u}: {e}"))?;
            Ok(Self(u))
        }
    }

    impl Drop for Mdev {
        fn drop(&mut self) {
            let _ = remove_mdev(&self.0);
        }
    }

    pub fn types_and_capacity() -> Result<(), String> {
        let p = parent()?;
        for (ty, name, avail) in [("edu-small", "edu-small", 8), ("edu-large", "edu-large", 4)] {
            ensure(type_attr(&p, ty, "name")? == name, || format!("{ty} name"))?;
            ensure(type_attr(&p, ty, "device_api")? == "vfio-pci", || {
                format!("{ty} device_api")
            })?;
            ensure(!type_attr(&p, ty, "description")?.is_empty(), || {
                format!("{ty} description")
            })?;
            let a = available(&p, ty)?;
            ensure(a == avail, || {
                format!("{ty} available_instances {a}, want {avail}")
            })?;
            ensure(
                p.join("mdev_supported_types")
                    .join(ty)
                    .join("devices")
                    .is_dir(),
                || format!("{ty} devices/"),
            )?;
        }
        Ok(())
    }

    pub fn create_copy_remove() -> Result<(), String> {
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 1)?;
        ensure(available(&p, "edu-small")? == 7, || {
            "edu-small not 7 after one create".into()
        })?;
        ensure(available(&p, "edu-large")? == 3, || {
            "edu-large not 3 after one small".into()
        })?;
        let pasid: u32 = mdev_attr(&m.0, "pasid")?
            .parse()
            .map_err(|e| format!("pasid: {e}"))?;
        ensure(pasid >= 1, || format!("PASID {pasid}"))?;
        let mode = mdev_attr(&m.0, "mode")?;
        let want = expected_mode();
        ensure(mode == want, || {
            format!("mode {mode}, want {want} on platform {}", platform())
        })?;
        let link = std::fs::read_link(mdev_path(&m.0).join("mdev_type"))
            .map_err(|e| format!("mdev_type: {e}"))?;
        ensure(link.ends_with("edu-small"), || {
            format!("mdev_type -> {}", link.display())
        })?;
        {
            let mut s = Session::open(&m.0)?;
            ensure(s.dev.read32(regs::ID)? == regs::ID_VALUE, || {
                "ID register".into()
            })?;
            ensure(s.dev.read32(regs::PASID)? == pasid, || {
                "PASID register differs from sysfs".into()
            })?;
            s.copy_checked(1, 0, 0, 4096)?;
            // Unaligned to pages on both sides, several pieces.
            s.copy_checked(2, 12, 4000, 9000)?;
            ensure(s.dev.read32(regs::COMPLETED)? == 2, || {
                "COMPLETED != 2".into()
            })?;
        }
        drop(m);
        ensure(available(&p, "edu-small")? == 8, || {
            "edu-small not back to 8".into()
        })
    }

    pub fn iommufd_cdev_copy() -> Result<(), String> {
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 3)?;
        let mut s = Session::open_iommufd(&m.0)?;
        s.copy_checked(7, 0, 0, 4096)?;
        s.copy_checked(8, 4, 5000, 3000)?;
        // Unmapping the source while a copy runs: it fails as unmapped, nothing stays pinned.
        s.dev.start_copy(SRC_IOVA, DST_IOVA, BUF_LEN as u32)?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.space.unmap(SRC_IOVA, BUF_LEN as u64)?;
        let st = s.dev.wait(30_000)?;
        ensure(
            status_outcome(st) == Some(Err(CopyError::Unmapped as u32)),
            || format!("STATUS {st:#x} after unmapping the source"),
        )
    }

    pub fn config_space_and_info() -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let p = parent()?;
        let m = Mdev::new(&p, "edu-large", 2)?;
        let s = Session::open(&m.0)?;
        let d = &s.dev;
        let (flags, regions, irqs) = d.info()?;
        ensure(flags & 3 == 3 && regions == 9 && irqs == 5, || {
            format!("info {flags:#x} {regions} {irqs}")
        })?;
        let bar = d.region_info(BAR0_INDEX)?;
        ensure(bar.size == 0x1000 && bar.flags & 3 == 3, || {
            format!("BAR0 {bar:?}")
        })?;
        let cfg = d.region_info(CONFIG_INDEX)?;
        ensure(cfg.size == 256, || format!("config {cfg:?}"))?;
        ensure(d.region_info(2)?.size == 0, || "BAR2 not empty".into())?;
        let msi = d.irq_info(MSI_INDEX)?;
        ensure(msi.count == 1 && msi.flags & 1 != 0, || {
            format!("MSI {msi:?}")
        })?;
        ensure(d.irq_info(REQ_INDEX)?.count == 1, || "REQ count".into())?;
        ensure(d.irq_info(0)?.count == 0, || "INTx count".into())?;
        ensure(d.config_read32(0)? == 0xed01_1234, || {
            format!("IDs {:#x}", d.config_read32(0).unwrap_or(0))
        })?;
        // BAR sizing.
        d.config_write32(0x10, 0xffff_ffff)?;
        let sz = d.config_read32(0x10)?;
        ensure(sz == 0xffff_f000, || format!("BAR0 sizing gave {sz:#x}"))?;
        d.config_write32(0x10, 0x1234_5000)?;
        ensure(d.config_read32(0x10)? == 0x1234_5000, || {
            "BAR0 address".into()
        })?;
        // Read-only IDs stay.
        d.config_write32(0, 0)?;
        ensure(d.config_read32(0)? == 0xed01_1234, || "IDs writable".into())?;
        // MSI capability at the capability pointer.
        let cap = d.config_read32(0x34)? & 0xff;
        let hdr = d.config_read32(u64::from(cap))?;
        ensure(cap == 0x40 && hdr & 0xff == 0x05, || {
            format!("cap {cap:#x} header {hdr:#x}")
        })?;
        // The whole space in one read, as a VMM (QEMU's vfio-pci) reads it; not past the end.
        let mut whole = [0u8; 256];
        d.file
            .read_exact_at(&mut whole, d.config)
            .map_err(|e| format!("read of the whole config space: {e}"))?;
        ensure(
            whole[..4] == [0x34, 0x12, 0x01, 0xed] && whole[0x40] == 0x05,
            || format!("whole config space read: {:02x?}", &whole[..8]),
        )?;
        ensure(
            d.file.read_at(&mut [0u8; 8], d.config + 252).is_err(),
            || "read past config accepted".into(),
        )?;
        Ok(())
    }

    pub fn capacity_exhausted() -> Result<(), String> {
        let p = parent()?;
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(Mdev::new(&p, "edu-large", 10 + i)?);
        }
        ensure(
            available(&p, "edu-large")? == 0 && available(&p, "edu-small")? == 0,
            || "capacity not used up".into(),
        )?;
        let r = create_mdev(&p, "edu-small", &uuid(20));
        ensure(r.is_err(), || "ninth slot accepted".into())?;
        let _ = remove_mdev(&uuid(20));
        let mut pasids: Vec<String> = v
            .iter()
            .map(|m| mdev_attr(&m.0, "pasid"))
            .collect::<Result<_, _>>()?;
        pasids.sort();
        pasids.dedup();
        ensure(pasids.len() == 4, || "PASIDs not distinct".into())?;
        v.pop();
        ensure(
            available(&p, "edu-large")? == 1 && available(&p, "edu-small")? == 2,
            || "not freed".into(),
        )?;
        drop(v);
        ensure(available(&p, "edu-small")? == 8, || "not back to 8".into())
    }

    pub fn bad_sysfs_input() -> Result<(), String> {
        let p = parent()?;
        for bad in [
            "not-a-uuid",
            "\n",
            "5a3e0c1d-7b2f-4e8a-9c6d",
            "5a3e0c1d-7b2f-4e8a-9c6d-00000000000g",
        ] {
            let r = create_mdev(&p, "edu-small", bad);
            ensure(r.is_err(), || format!("malformed UUID {bad:?} accepted"))?;
        }
        let m = Mdev::new(&p, "edu-small", 30)?;
        let r = create_mdev(&p, "edu-large", &m.0);
        ensure(
            r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(17),
            || format!("duplicate UUID: {r:?}"),
        )?;
        remove_mdev(&m.0).map_err(|e| format!("remove: {e}"))?;
        ensure(remove_mdev(&m.0).is_err(), || {
            "second remove succeeded".into()
        })?;
        ensure(available(&p, "edu-small")? == 8, || {
            "capacity leaked".into()
        })
    }

    pub fn bad_copies() -> Result<(), String> {
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 40)?;
        let s = Session::open(&m.0)?;
        let d = &s.dev;
        let cases: [(&str, u64, u64, u32, CopyError); 9] = [
            ("zero length", SRC_IOVA, DST_IOVA, 0, CopyError::BadLength),
            (
                "huge length",
                SRC_IOVA,
                DST_IOVA,
                1 << 20,
                CopyError::BadLength,
            ),
            (
                "unaligned src",
                SRC_IOVA + 1,
                DST_IOVA,
                64,
                CopyError::BadAlignment,
            ),
            (
                "unaligned len",
                SRC_IOVA,
                DST_IOVA,
                63,
                CopyError::BadAlignment,
            ),
            (
                "unmapped src",
                0x4000_0000,
                DST_IOVA,
                64,
                CopyError::Unmapped,
            ),
            (
                "dst past the mapping",
                SRC_IOVA,
                DST_IOVA + BUF_LEN as u64 - 32,
                64,
                CopyError::Unmapped,
            ),
            (
                "overflowing src",
                u64::MAX - 63,
                DST_IOVA,
                128,
                CopyError::Overflow,
            ),
            (
                "overlapping",
                SRC_IOVA,
                SRC_IOVA + 32,
                64,
                CopyError::Overlap,
            ),
            ("iova 0", 0, DST_IOVA, 64, CopyError::Unmapped),
        ];
        for (what, src, dst, len, want) in cases {
            let r = d.copy(src, dst, len)?;
            ensure(r == Err(want as u32), || {
                format!("{what}: {r:?}, want {want:?}")
            })?;
        }
        // The device still works.
        let mut s = s;
        s.copy_checked(3, 0, 0, 256)
    }

    pub fn bad_register_and_ioctl_input() -> Result<(), String> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileExt;
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 50)?;
        let mut s = Session::open(&m.0)?;
        let d = &s.dev;
        let pasid = d.read32(regs::PASID)?;
        d.write32(regs::PASID, 0xdead)?;
        d.write32(regs::STATUS, 0xffff_ffff)?;
        d.write32(regs::ID, 0)?;
        d.write32(0x800, 0x1234)?;
        ensure(
            d.read32(regs::PASID)? == pasid && d.read32(regs::ID)? == regs::ID_VALUE,
            || "RO register changed".into(),
        )?;
        ensure(d.read32(0x800)? == 0, || {
            "unknown register reads non-zero".into()
        })?;
        d.write32(regs::CMD, 0x8000_0001)?;
        let st = d.read32(regs::STATUS)?;
        ensure(
            st == regs::STATUS_DONE | (CopyError::BadCommand as u32) << 8,
            || format!("garbage CMD: STATUS {st:#x}"),
        )?;
        // Only 32-bit accesses to BAR0, inside it; unknown regions refused.
        let mut b2 = [0u8; 2];
        ensure(d.file.read_at(&mut b2, d.bar0).is_err(), || {
            "16-bit BAR0 read accepted".into()
        })?;
        ensure(d.file.read_at(&mut [0u8; 4], d.bar0 + 2).is_err(), || {
            "unaligned BAR0 read accepted".into()
        })?;
        ensure(
            d.file.read_at(&mut [0u8; 4], d.bar0 + 0x1000).is_err(),
            || "read past BAR0 accepted".into(),
        )?;
        ensure(d.file.read_at(&mut [0u8; 4], 3 << 40).is_err(), || {
            "read of region 3 accepted".into()
        })?;
        ensure(d.file.write_at(&[0u8; 8], d.config + 252).is_err(), || {
            "write past config accepted".into()
        })?;
        // Malformed ioctl arguments.
        let fd = d.file.as_raw_fd();
        let ioctl_err = |req: u64, words: &mut [u32]| -> bool {
            extern "C" {
                fn ioctl(fd: i32, req: u64, ...) -> i32;
            }
            // SAFETY: `words` is a live buffer big enough for the request's fixed part.
            unsafe { ioctl(fd, req, words.as_mut_ptr()) < 0 }
        };
        ensure(
            ioctl_err(VFIO_DEVICE_GET_INFO, &mut [8, 0, 0, 0, 0, 0]),
            || "GET_INFO argsz 8".into(),
        )?;
        ensure(
            ioctl_err(VFIO_DEVICE_GET_REGION_INFO, &mut [32, 0, 9, 0, 0, 0, 0, 0]),
            || "region 9".into(),
        )?;
        ensure(
            ioctl_err(VFIO_DEVICE_GET_IRQ_INFO, &mut [16, 0, 5, 0]),
            || "irq 5".into(),
        )?;
        ensure(
            ioctl_err(VFIO_DEVICE_SET_IRQS, &mut [24, 4 | 32, MSI_INDEX, 0, 2, 0]),
            || "2 MSI vectors".into(),
        )?;
        ensure(
            ioctl_err(
                VFIO_DEVICE_SET_IRQS,
                &mut [24, 4 | 2 | 32, MSI_INDEX, 0, 1, 0],
            ),
            || "two data types".into(),
        )?;
        ensure(
            ioctl_err(VFIO_DEVICE_SET_IRQS, &mut [24, 4 | 32, MSI_INDEX, 0, 1, 0]),
            || "fd 0 is no eventfd".into(),
        )?;
        ensure(
            ioctl_err(VFIO_DEVICE_SET_IRQS, &mut [20, 1 | 8, MSI_INDEX, 0, 1]),
            || "MSI mask".into(),
        )?;
        ensure(ioctl_err(0x3b80, &mut [0; 8]), || "unknown ioctl".into())?;
        // And it still copies, with its interrupt.
        s.copy_checked(4, 0, 0, 512)
    }

    pub fn isolation() -> Result<(), String> {
        let p = parent()?;
        let a = Mdev::new(&p, "edu-small", 60)?;
        let b = Mdev::new(&p, "edu-small", 61)?;
        let mut sa = Session::open(&a.0)?;
        let mut sb = Session::open(&b.0)?;
        // B keeps a secret at an IOVA that A's container does not map.
        let secret_iova = 0x80_0000;
        let mut secret = Buffer::new(4096)?;
        secret.bytes().fill(0x5e);
        sb.space.map(&secret, secret_iova)?;
        let r = sa.dev.copy(secret_iova, DST_IOVA, 4096)?;
        ensure(r == Err(CopyError::Unmapped as u32), || {
            format!("A read B's IOVA: {r:?}")
        })?;
        ensure(sa.dst.bytes().iter().all(|&x| x != 0x5e), || {
            "B's bytes reached A".into()
        })?;
        let r = sa.dev.copy(SRC_IOVA, secret_iova, 4096)?;
        ensure(r == Err(CopyError::Unmapped as u32), || {
            format!("A wrote B's IOVA: {r:?}")
        })?;
        ensure(secret.bytes().iter().all(|&x| x == 0x5e), || {
            "B's buffer changed".into()
        })?;
        // Same IOVAs, different memory: each mdev's copy lands in its own buffers.
        sa.copy_checked(0x11, 0, 0, 4096)?;
        sb.copy_checked(0x22, 0, 0, 4096)?;
        ensure(
            sa.dst.bytes()[0] == 0x11 && sb.dst.bytes()[0] == 0x22,
            || "copies crossed".into(),
        )
    }

    /// Isolation on the iommufd path: A in its own iommufd/IOAS, B in another IOAS or in a
    /// type1 container; A cannot make the engine read or write B's buffer at B's IOVA.
    pub fn isolation_iommufd() -> Result<(), String> {
        let p = parent()?;
        for (n, b_iommufd) in [(0x160, true), (0x162, false)] {
            let b_path = if b_iommufd { "iommufd" } else { "type1" };
            let a = Mdev::new(&p, "edu-small", n)?;
            let b = Mdev::new(&p, "edu-small", n + 1)?;
            let mut sa = Session::open_iommufd(&a.0)?;
            let sb = if b_iommufd {
                Session::open_iommufd(&b.0)?
            } else {
                Session::open(&b.0)?
            };
            let secret_iova = 0x80_0000;
            let mut secret = Buffer::new(4096)?;
            secret.bytes().fill(0x5e);
            sb.space.map(&secret, secret_iova)?;
            sa.dst.bytes().fill(0);
            let r = sa.dev.copy(secret_iova, DST_IOVA, 4096)?;
            ensure(r == Err(CopyError::Unmapped as u32), || {
                format!("A (iommufd) read B's ({b_path}) IOVA: {r:?}")
            })?;
            ensure(sa.dst.bytes().iter().all(|&x| x != 0x5e), || {
                format!("B's ({b_path}) bytes reached A")
            })?;
            let r = sa.dev.copy(SRC_IOVA, secret_iova, 4096)?;
            ensure(r == Err(CopyError::Unmapped as u32), || {
                format!("A (iommufd) wrote B's ({b_path}) IOVA: {r:?}")
            })?;
            ensure(secret.bytes().iter().all(|&x| x == 0x5e), || {
                format!("B's ({b_path}) buffer changed")
            })?;
            sa.copy_checked(0x12, 0, 0, 4096)?;
            drop(sb);
        }
        Ok(())
    }

    pub fn concurrent_copies() -> Result<(), String> {
        let p = parent()?;
        let ms: Vec<Mdev> = (0..3)
            .map(|i| Mdev::new(&p, "edu-small", 70 + i))
            .collect::<Result<_, _>>()?;
        let handles: Vec<_> = ms
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let u = m.0.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    let mut s = Session::open(&u)?;
                    s.copy_checked(0x30 + i as u8, 4 * i, 8, 8192)
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "thread panicked".to_string())??;
        }
        Ok(())
    }

    /// A long copy on one mdev does not hold the engine: a short copy on another mdev started
    /// later finishes while the long one is still running (the engine takes turns per piece).
    pub fn engine_shared_fairly() -> Result<(), String> {
        let p = parent()?;
        let a = Mdev::new(&p, "edu-large", 120)?;
        let b = Mdev::new(&p, "edu-small", 121)?;
        let mut sa = Session::open(&a.0)?;
        let mut sb = Session::open(&b.0)?;
        sa.src.bytes().fill(0xa5);
        sb.src.bytes().fill(0x5b);
        let t = std::time::Instant::now();
        sa.dev.start_copy(SRC_IOVA, DST_IOVA, BUF_LEN as u32)?;
        std::thread::sleep(std::time::Duration::from_millis(100));
        let rb = sb.dev.copy(SRC_IOVA, DST_IOVA, 4096)?;
        let b_ms = t.elapsed().as_millis();
        let a_status = sa.dev.read32(regs::STATUS)?;
        ensure(rb == Ok(()), || format!("B's copy: {rb:?}"))?;
        ensure(a_status & regs::STATUS_BUSY != 0, || {
            format!("A's 64 KiB copy was done before B's 4 KiB one ({b_ms} ms): no turns")
        })?;
        let sa_status = sa.dev.wait(60_000)?;
        let a_ms = t.elapsed().as_millis();
        ensure(status_outcome(sa_status) == Some(Ok(())), || {
            format!("A: STATUS {sa_status:#x}")
        })?;
        ensure(sa.dst.bytes().iter().all(|&x| x == 0xa5), || {
            "A's bytes".into()
        })?;
        ensure(sb.dst.bytes()[..4096].iter().all(|&x| x == 0x5b), || {
            "B's bytes".into()
        })?;
        println!("  mdev: B (4 KiB) done after {b_ms} ms while A (64 KiB) took {a_ms} ms");
        Ok(())
    }

    pub fn unmap_during_copy() -> Result<(), String> {
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 80)?;
        let s = Session::open(&m.0)?;
        let t = std::time::Instant::now();
        s.dev.start_copy(SRC_IOVA, DST_IOVA, BUF_LEN as u32)?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = s.dev.read32(regs::STATUS)?;
        s.space.unmap(DST_IOVA, BUF_LEN as u64)?;
        let unmapped = t.elapsed().as_millis();
        let st = s.dev.wait(30_000)?;
        let r = status_outcome(st);
        ensure(r == Some(Err(CopyError::Unmapped as u32)), || {
            format!(
                "STATUS {st:#x} after unmapping the destination (STATUS {before:#x} before, unmapped at {unmapped} ms, done at {} ms)",
                t.elapsed().as_millis()
            )
        })?;
        Ok(())
    }

    /// After `VFIO_IOMMU_UNMAP_DMA` / `IOMMU_IOAS_UNMAP` returns, no DMA of the engine touches
    /// the unmapped pages: the user's memory (still mapped in the process) is snapshot when
    /// the unmap returns and must not change while the aborted copy winds down, nor after a
    /// new copy to the unmapped IOVA (refused as unmapped). Both paths.
    pub fn no_dma_after_unmap() -> Result<(), String> {
        let p = parent()?;
        for (n, iommufd) in [(0x130, false), (0x131, true)] {
            let path = if iommufd { "iommufd" } else { "type1" };
            let m = Mdev::new(&p, "edu-small", n)?;
            let mut s = if iommufd {
                Session::open_iommufd(&m.0)?
            } else {
                Session::open(&m.0)?
            };
            s.src.bytes().fill(0xc3);
            s.dst.bytes().fill(0);
            s.dev.start_copy(SRC_IOVA, DST_IOVA, BUF_LEN as u32)?;
            // Let the copy get going (some pieces done, one on edu).
            std::thread::sleep(std::time::Duration::from_millis(500));
            s.space.unmap(DST_IOVA, BUF_LEN as u64)?;
            let snapshot = s.dst.bytes().to_vec();
            let st = s.dev.wait(30_000)?;
            ensure(
                status_outcome(st) == Some(Err(CopyError::Unmapped as u32)),
                || format!("{path}: STATUS {st:#x} after unmapping the destination"),
            )?;
            let copied = snapshot.iter().filter(|&&b| b == 0xc3).count();
            // Give a stray DMA time to land (edu takes ~0.1 s per DMA).
            std::thread::sleep(std::time::Duration::from_millis(400));
            let r = s.dev.copy(SRC_IOVA, DST_IOVA, 4096)?;
            ensure(r == Err(CopyError::Unmapped as u32), || {
                format!("{path}: copy to the unmapped IOVA: {r:?}")
            })?;
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = s.dst.bytes();
            if let Some(i) = (0..now.len()).find(|&i| now[i] != snapshot[i]) {
                return Err(format!(
                    "{path}: byte {i} of the unmapped destination changed after the unmap returned ({:#x} -> {:#x}; {copied} bytes had been copied before)",
                    snapshot[i], now[i]
                ));
            }
            ensure(copied < BUF_LEN, || {
                format!("{path}: the copy was over before the unmap: nothing tested")
            })?;
            println!("  mdev: {path}: {copied} bytes copied before the unmap, none after");
            // The device still works on mapped memory.
            s.space.map(&s.dst, DST_IOVA)?;
            s.copy_checked(0x44, 0, 0, 4096)?;
        }
        Ok(())
    }

    /// A reset aborts a running copy: the piece on edu finishes, no later piece starts (the
    /// engine fences the mdev while the reset waits for that piece; without the fence the
    /// worker takes the job again at once and the reset waits for the whole copy, which then
    /// runs to the end).
    pub fn reset_aborts() -> Result<(), String> {
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 90)?;
        let mut s = Session::open(&m.0)?;
        s.src.bytes().fill(0x5c);
        s.dst.bytes().fill(0);
        // 16 pieces of a page, each two edu DMAs of 100 ms (QEMU's virtual clock).
        s.dev.start_copy(SRC_IOVA, DST_IOVA, BUF_LEN as u32)?;
        std::thread::sleep(std::time::Duration::from_millis(200));
        let t = std::time::Instant::now();
        s.dev.reset()?;
        let took = t.elapsed();
        let st = s.dev.read32(regs::STATUS)?;
        ensure(st == 0 && s.dev.read32(regs::LEN)? == 0, || {
            format!("STATUS {st:#x} after reset")
        })?;
        let pages_written =
            |s: &mut Session| s.dst.bytes().chunks(4096).filter(|c| c[0] != 0).count();
        let at_reset = pages_written(&mut s);
        std::thread::sleep(std::time::Duration::from_millis(400));
        let later = pages_written(&mut s);
        ensure(later == at_reset && later <= 4, || {
            format!(
                "the copy went on after the reset ({took:?}): {at_reset} of 16 pages written when it returned, {later} 400 ms later (at most the pieces up to the reset, <= 4, and none after)"
            )
        })?;
        // Drain a possible completion signal of the aborted copy? None must come: it is stale.
        s.copy_checked(5, 0, 0, 1024)
    }

    pub fn remove_while_open() -> Result<(), String> {
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 100)?;
        let mut s = Session::open(&m.0)?;
        let req = s.dev.set_irq_eventfd(REQ_INDEX)?;
        let u = m.0.clone();
        let remover = std::thread::spawn(move || remove_mdev(&u));
        // The removal asks us (REQ eventfd) to let go of the device.
        let mut b = [0u8; 8];
        std::io::Read::read_exact(&mut &req, &mut b)
            .map_err(|e| format!("request eventfd: {e}"))?;
        drop(s);
        remover
            .join()
            .map_err(|_| "remover panicked".to_string())?
            .map_err(|e| format!("remove: {e}"))?;
        ensure(!mdev_path(&m.0).exists(), || "mdev still there".into())?;
        ensure(available(&p, "edu-small")? == 8, || {
            "capacity not back".into()
        })
    }

    /// A user that holds the device without a request eventfd: the removal waits (the VFIO
    /// core cannot ask), the device keeps working meanwhile, and the removal completes as soon
    /// as the user closes it.
    pub fn remove_while_open_without_req() -> Result<(), String> {
        use std::time::{Duration, Instant};
        let p = parent()?;
        let m = Mdev::new(&p, "edu-small", 0x140)?;
        let mut s = Session::open_iommufd(&m.0)?;
        let u = m.0.clone();
        let remover = std::thread::spawn(move || {
            let r = remove_mdev(&u);
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(1500));
        ensure(!remover.is_finished(), || {
            "removal did not wait for the user".into()
        })?;
        // (The mdev's /sys/bus/mdev/devices link goes at once; the device waits for the user.)
        // Still a working device while the removal waits.
        s.copy_checked(0x66, 0, 0, 1024)?;
        let closed = Instant::now();
        drop(s);
        let (r, done) = remover.join().map_err(|_| "remover panicked".to_string())?;
        r.map_err(|e| format!("remove: {e}"))?;
        let after = done.saturating_duration_since(closed);
        ensure(after < Duration::from_secs(5), || {
            format!("removal ended {after:?} after the close")
        })?;
        ensure(!mdev_path(&m.0).exists(), || "mdev still there".into())?;
        ensure(available(&p, "edu-small")? == 8, || {
            "capacity not back".into()
        })
    }

    /// Unbinding edu while a client holds an mdev with a copy in flight: the unbind asks the
    /// client through its request eventfd, the client closes (its copy aborted), the unbind
    /// completes and removes every mdev; edu binds again to a parent at full capacity.
    pub fn parent_unbind_while_open() -> Result<(), String> {
        let p = parent()?;
        let bdf = parent_bdf(&p)?;
        let held = Mdev::new(&p, "edu-large", 0x150)?;
        let idle = Mdev::new(&p, "edu-small", 0x151)?;
        let mut s = Session::open(&held.0)?;
        let req = s.dev.set_irq_eventfd(REQ_INDEX)?;
        s.dev.start_copy(SRC_IOVA, DST_IOVA, BUF_LEN as u32)?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let b = bdf.clone();
        let unbind = std::thread::spawn(move || edu_driver("unbind", &b));
        let asked = wait_eventfd(&req, 60_000);
        drop(s);
        let unbound = unbind
            .join()
            .map_err(|_| "unbind thread panicked".to_string())?;
        asked.map_err(|e| format!("request IRQ: {e}"))?;
        unbound?;
        ensure(
            !mdev_path(&held.0).exists() && !mdev_path(&idle.0).exists(),
            || "mdevs survived the unbind".into(),
        )?;
        drop((held, idle));
        edu_driver("bind", &bdf)?;
        let p = find_parent()?;
        ensure(available(&p, "edu-small")? == 8, || {
            "fresh parent not at full capacity".into()
        })?;
        let m = Mdev::new(&p, "edu-small", 0x152)?;
        // A statement: the session must close before `m` is removed.
        Session::open(&m.0)?.copy_checked(0x67, 0, 0, 256)?;
        drop(m);
        Ok(())
    }

    pub fn parent_unbind_with_mdevs() -> Result<(), String> {
        let p = parent()?;
        let bdf = parent_bdf(&p)?;
        let _a = Mdev::new(&p, "edu-small", 110)?;
        let _b = Mdev::new(&p, "edu-large", 111)?;
        edu_driver("unbind", &bdf)?;
        ensure(
            !mdev_path(&uuid(110)).exists() && !mdev_path(&uuid(111)).exists(),
            || "mdevs survived unbind".into(),
        )?;
        ensure(!p.exists(), || "parent still registered".into())?;
        edu_driver("bind", &bdf)?;
        let p = find_parent()?;
        ensure(available(&p, "edu-small")? == 8, || {
            "fresh parent not at full capacity".into()
        })?;
        let m = Mdev::new(&p, "edu-small", 112)?;
        Session::open(&m.0)?.copy_checked(6, 0, 0, 128)?;
        drop(m);
        let o = std::process::Command::new("rmmod")
            .arg("edu_mdev")
            .output()
            .map_err(|e| format!("rmmod: {e}"))?;
        ensure(o.status.success(), || {
            format!("rmmod: {}", String::from_utf8_lossy(&o.stderr))
        })
    }
}
