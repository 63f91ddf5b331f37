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
        name: "guest:ioasid_debugfs_view",
        run: ioasid_debugfs_view,
    },
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
