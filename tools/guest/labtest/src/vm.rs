// SPDX-License-Identifier: GPL-2.0
//! `vm:*`: virtual machines inside the lab guest, each given an `edu_mdev` mdev as a PCI device
//! through QEMU's `vfio-pci` (docs/vm-guests.md). The VMs themselves are [`mdev_client::vm`].

use crate::user_tests::UserTest;
use mdev_client as mc;
use mdev_client::vm::{Report, Vm, RUN_TIMEOUT};
use std::path::Path;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// The `vm:*` tests, run when the VMM disk is attached or they are selected by name.
pub const ALL: &[UserTest] = &[
    UserTest {
        name: "vm:two_vms_copy_concurrently",
        run: two_vms_copy_concurrently,
    },
    UserTest {
        name: "vm:kill_releases_mdev",
        run: kill_releases_mdev,
    },
    UserTest {
        name: "vm:remove_while_vm_copies",
        run: remove_while_vm_copies,
    },
];

/// mdevs created for a test, removed when it ends however it ends.
struct Mdevs(Vec<String>);

impl Mdevs {
    fn create(&mut self, parent: &Path, ty: &str, uuid: String) -> Result<(), String> {
        mc::create_mdev(parent, ty, &uuid).map_err(|e| format!("create {ty} {uuid}: {e}"))?;
        self.0.push(uuid);
        Ok(())
    }
}

impl Drop for Mdevs {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = mc::remove_mdev(u);
        }
    }
}

fn check_pasid(report: &Report, uuid: &str) -> Result<(), String> {
    let sysfs: u32 = mc::mdev_attr(uuid, "pasid")?
        .parse()
        .map_err(|e| format!("pasid of {uuid}: {e}"))?;
    if report.pasid != sysfs {
        return Err(format!(
            "the VM saw PASID {}, sysfs says {sysfs}",
            report.pasid
        ));
    }
    Ok(())
}

/// Two VMs, each with its own mdev, copy at the same time: both get their own bytes (the
/// pattern is seeded with the mdev's PASID, and both drivers use the same guest addresses),
/// both see their own PASID, both refuse addresses outside their RAM, and their copies overlap
/// in time. Prints the VMs' boot time and per-copy time.
fn two_vms_copy_concurrently() -> Result<(), String> {
    mc::ensure_module()?;
    let parent = mc::find_vm_parent()?;
    let mut mdevs = Mdevs(Vec::new());
    let uuids = [mc::uuid(0x7_0000), mc::uuid(0x7_0001)];
    for u in &uuids {
        mdevs.create(&parent, "edu-small", u.clone())?;
    }
    let mut vms = [Vm::start("vm0", &uuids[0])?, Vm::start("vm1", &uuids[1])?];
    let mut boot = Vec::new();
    for vm in &mut vms {
        boot.push(vm.boot()?);
    }
    // Both are up: start their copies together.
    for vm in &mut vms {
        vm.go()?;
    }
    let mut reports = Vec::new();
    for vm in &mut vms {
        reports.push(vm.finish()?);
    }
    for (r, u) in reports.iter().zip(&uuids) {
        check_pasid(r, u)?;
    }
    if reports[0].pasid == reports[1].pasid {
        return Err(format!("both VMs saw PASID {}", reports[0].pasid));
    }
    let (Some(a), Some(b)) = (reports[0].window(), reports[1].window()) else {
        return Err("no 4 KiB copy times".into());
    };
    if !(a.0 < b.1 && b.0 < a.1) {
        return Err("the two VMs' copies did not overlap in time".into());
    }
    println!(
        "BENCH vm:boot_to_init vm0 {} ms, vm1 {} ms (two VMs booting at once, KVM nested in TCG)",
        boot[0].as_millis(),
        boot[1].as_millis()
    );
    println!(
        "BENCH vm:copy_4k_two_vms driver CMD-to-MSI mean vm0 {} us, vm1 {} us (sharing edu)",
        reports[0].mean_us(),
        reports[1].mean_us()
    );
    Ok(())
}

/// Killing a VM's QEMU with SIGKILL releases its mdev: with the parent full, the killed VM's
/// mdev is removed, a new mdev fits in the freed capacity only, and a new VM copies through it.
/// Then the per-copy time of that VM's driver against the lab guest's user-space client on the
/// same mdev, in the same boot.
fn kill_releases_mdev() -> Result<(), String> {
    mc::ensure_module()?;
    let parent = mc::find_vm_parent()?;
    let mut mdevs = Mdevs(Vec::new());
    // Fill the parent: edu-large takes 2 of its 8 slots.
    let mut n = 0x7_0100;
    while mc::available(&parent, "edu-large")? > 0 {
        mdevs.create(&parent, "edu-large", mc::uuid(n))?;
        n += 1;
    }
    let victim = mdevs.0.first().cloned().ok_or("no mdev created")?;
    let mut vm = Vm::start("vm-killed", &victim)?;
    vm.boot()?;
    vm.go()?;
    // Kill it while its driver is copying.
    vm.wait_for("copy_engine_guest: copy_us", RUN_TIMEOUT)?;
    vm.kill()?;
    let full = mc::create_mdev(&parent, "edu-small", &mc::uuid(0x7_01ff));
    if full.is_ok() {
        let _ = mc::remove_mdev(&mc::uuid(0x7_01ff));
        return Err("the parent was not full before the removal".into());
    }
    // The removal waits for the device to be closed: bound it.
    let (tx, rx) = channel();
    let v = victim.clone();
    std::thread::spawn(move || {
        let _ = tx.send(mc::remove_mdev(&v));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => mdevs.0.retain(|u| *u != victim),
        Ok(Err(e)) => return Err(format!("remove of the killed VM's mdev: {e}")),
        Err(_) => return Err("remove of the killed VM's mdev still blocked after 30 s".into()),
    }
    let fresh = mc::uuid(0x7_0200);
    mdevs.create(&parent, "edu-large", fresh.clone())?;
    let mut vm = Vm::start("vm-new", &fresh)?;
    let boot = vm.boot()?;
    vm.go()?;
    let report = vm.finish()?;
    check_pasid(&report, &fresh)?;
    drop(vm);

    // The same copies from the lab guest's user space through VFIO on the same mdev.
    let mut s = mc::Session::open(&fresh)?;
    let mut user = Vec::new();
    for round in 0..report.copies_4k.len() {
        for (i, b) in s.src.bytes().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13) ^ round as u8;
        }
        s.dst.bytes().fill(0);
        // Timed like the driver's: from the CMD write to the completion interrupt.
        let t = Instant::now();
        let status = s.dev.copy(mc::SRC_IOVA, mc::DST_IOVA, 4096)?;
        user.push(t.elapsed().as_micros() as u64);
        status.map_err(|code| format!("user-space copy: engine error {code}"))?;
        if s.dst.bytes()[..4096] != s.src.bytes()[..4096] {
            return Err("user-space copy: destination bytes differ".into());
        }
    }
    let user_mean = user.iter().sum::<u64>() / user.len().max(1) as u64;
    println!(
        "BENCH vm:boot_to_init one VM {} ms (KVM nested in TCG)",
        boot.as_millis()
    );
    println!(
        "BENCH vm:copy_4k VM driver CMD-to-MSI mean {} us vs lab guest mdev-client copy mean {} us ({} copies each, same mdev, same boot); ratio {:.2}",
        report.mean_us(),
        user_mean,
        user.len(),
        report.mean_us() as f64 / user_mean.max(1) as f64
    );
    Ok(())
}

/// Removing an mdev while its VM copies through it: the mdev core asks the VMM to let go (the
/// REQ eventfd) and QEMU cannot unplug a device from the VM's root bus, so the removal waits as
/// long as the VM holds the device; meanwhile the VM's copies still complete correctly, and once
/// the VM is gone the removal completes and frees the capacity.
fn remove_while_vm_copies() -> Result<(), String> {
    mc::ensure_module()?;
    let parent = mc::find_vm_parent()?;
    let full = mc::available(&parent, "edu-small")?;
    let mut mdevs = Mdevs(Vec::new());
    let u = mc::uuid(0x7_0300);
    mdevs.create(&parent, "edu-small", u.clone())?;
    let pasid = mc::mdev_attr(&u, "pasid")?;
    let mut vm = Vm::start("vm-removed", &u)?;
    vm.boot()?;
    vm.go()?;
    vm.wait_for("copy_engine_guest: copy_us", RUN_TIMEOUT)?;
    let (tx, rx) = channel();
    let v = u.clone();
    std::thread::spawn(move || {
        let r = mc::remove_mdev(&v);
        let _ = tx.send((r, Instant::now()));
    });
    // The VM's last line comes while it still holds the device.
    let end = vm.wait_for("vm-init: end", RUN_TIMEOUT)?;
    // All the driver's checks passed although the removal was pending.
    let report = vm.finish()?;
    if report.pasid.to_string() != pasid {
        return Err(format!(
            "the VM saw PASID {}, sysfs said {pasid}",
            report.pasid
        ));
    }
    let (r, removed_at) = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "removal still blocked 30 s after the VM ended".to_string())?;
    r.map_err(|e| format!("remove: {e}"))?;
    mdevs.0.clear();
    if removed_at < end {
        return Err("the removal completed while the VM still held the device".into());
    }
    if mc::mdev_path(&u).exists() {
        return Err("the mdev is still in sysfs after its removal".into());
    }
    let now = mc::available(&parent, "edu-small")?;
    if now != full {
        return Err(format!(
            "available_instances {now} after the removal, {full} before"
        ));
    }
    Ok(())
}
