// SPDX-License-Identifier: GPL-2.0
//! The machine `run.sh --platform` chose (`lab.platform=` on the kernel command line).
//!
//! On the PASID platform (docs/pasid-device.md) the lab QEMU's `edu-pasid` (1234:11e9) must be
//! there and Linux's arm-smmu-v3 must enable PASID on it when it probes it for an IOMMU (6.12
//! probes a PCI function when a driver binds, so `vfio-pci` is bound through `driver_override`
//! and unbound afterwards): `pci_enable_pasid` succeeds only for a function with End-End TLP
//! prefix support on an ACS path. On the stock platform the device must be absent.

use std::fs;
use std::path::{Path, PathBuf};

const PCI: &str = "/sys/bus/pci/devices";
const PASID_CAP_ID: u16 = 0x1b;

fn platform() -> String {
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("lab.platform="))
        .unwrap_or("edu")
        .to_string()
}

fn find(vendor: &str, device: &str) -> Option<PathBuf> {
    fs::read_dir(PCI)
        .ok()?
        .flatten()
        .map(|d| d.path())
        .find(|p| {
            let read = |f: &str| fs::read_to_string(p.join(f)).unwrap_or_default();
            read("vendor").trim() == vendor && read("device").trim() == device
        })
}

fn le16(c: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*c.get(off)?, *c.get(off + 1)?]))
}

/// (Max PASID Width, PASID Enable) of the function's PASID capability.
fn pasid_state(dev: &Path) -> Result<(u16, bool), String> {
    let c = fs::read(dev.join("config")).map_err(|e| format!("config: {e}"))?;
    let mut off = 0x100usize;
    for _ in 0..960 {
        let id = le16(&c, off).ok_or("config space shorter than 4 KiB")?;
        let next = usize::from(le16(&c, off + 2).unwrap_or(0) >> 4) & !3;
        if id == PASID_CAP_ID {
            let cap = le16(&c, off + 4).unwrap_or(0);
            let ctrl = le16(&c, off + 6).unwrap_or(0);
            return Ok(((cap >> 8) & 0x1f, ctrl & 1 != 0));
        }
        if next < 0x100 {
            break;
        }
        off = next;
    }
    Err(format!("{} has no PASID capability", dev.display()))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

/// Binds `vfio-pci`, checks the IOMMU group and PASID Enable, unbinds again.
fn check_pasid_enabled(dev: &Path) -> Result<(), String> {
    let name = dev
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bad device path")?
        .to_string();
    let (width, enabled) = pasid_state(dev)?;
    if width != 20 {
        return Err(format!("Max PASID Width {width}, want 20"));
    }
    let bound_here = !dev.join("driver").exists();
    if bound_here {
        write(&dev.join("driver_override"), "vfio-pci")?;
        write(Path::new("/sys/bus/pci/drivers_probe"), &name)?;
    }
    let result = (|| {
        if !dev.join("iommu_group").exists() {
            return Err("no IOMMU group after binding vfio-pci".to_string());
        }
        match pasid_state(dev)? {
            (_, true) => Ok(()),
            (_, false) => Err(format!(
                "PASID Enable still clear after the IOMMU probe (was {enabled})"
            )),
        }
    })();
    if bound_here {
        // Restore the device whatever the outcome; the check's error comes first.
        let unbind = write(&dev.join("driver/unbind"), &name);
        let clear = write(&dev.join("driver_override"), "\n");
        return result.and(unbind).and(clear);
    }
    result
}

/// `guest:platform`: the device set of the chosen platform.
pub fn platform_devices() -> Result<(), String> {
    let p = platform();
    let dev = find("0x1234", "0x11e9");
    // `pasid` and `pasid-noits` (the same devices, no GICv3 ITS).
    let pasid = p.starts_with("pasid");
    match (p.as_str(), dev) {
        (_, Some(dev)) if pasid => check_pasid_enabled(&dev),
        (_, None) if pasid => Err(format!("platform {p} without edu-pasid (1234:11e9)")),
        (_, Some(dev)) => Err(format!("platform {p} has edu-pasid at {}", dev.display())),
        (_, None) => Ok(()),
    }
}
