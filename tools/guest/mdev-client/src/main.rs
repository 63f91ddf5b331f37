// SPDX-License-Identifier: GPL-2.0
//! `mdev-client demo [N]`: loads `edu_mdev.ko` if needed, creates N mdevs (default 3, small and
//! large), prints each one's PASID and mode, runs a copy through each one's VFIO device, prints
//! the result and removes the mdevs again.
//!
//! `mdev-client vm`: the same device in a VM (docs/vm-guests.md): creates an mdev, boots a VM
//! with it (QEMU's vfio-pci, KVM), lets the VM's driver copy, prints what it reported and removes
//! the mdev. Needs the guest booted with `run.sh --vm`.

use mdev_client::*;

fn demo(n: u32) -> Result<(), String> {
    ensure_module()?;
    let parent = find_parent()?;
    let dev = platform_parent_device();
    println!(
        "platform {}: parent {} ({}), mdevs in {} mode",
        platform(),
        parent.display(),
        if dev == EDU_PASID {
            "edu-pasid 1234:11e9: its DMA is tagged with each mdev's PASID and translated by that mdev's own aux domain at the user's IOVAs"
        } else {
            "edu 1234:11e8: its DMA carries only its requester ID, so the parent pins and maps each mdev's pages for itself"
        },
        expected_mode()
    );
    for ty in ["edu-small", "edu-large"] {
        println!(
            "  type {ty}: {} ({}), available_instances {}",
            type_attr(&parent, ty, "name")?,
            type_attr(&parent, ty, "description")?,
            available(&parent, ty)?
        );
    }
    let mut uuids = Vec::new();
    for i in 0..n {
        let ty = if i % 2 == 0 { "edu-small" } else { "edu-large" };
        let u = uuid(0xd000 + i);
        create_mdev(&parent, ty, &u).map_err(|e| format!("create {u}: {e}"))?;
        println!(
            "mdev {u}: type {ty}, PASID {}, mode {}",
            mdev_attr(&u, "pasid")?,
            mdev_attr(&u, "mode")?
        );
        uuids.push(u);
    }
    println!(
        "available_instances now: edu-small {}, edu-large {}",
        available(&parent, "edu-small")?,
        available(&parent, "edu-large")?
    );
    let mut ok = true;
    for (i, u) in uuids.iter().enumerate() {
        // Every other mdev through the iommufd/cdev path, the others through a type1 container.
        let (mut s, path) = if i % 2 == 1 {
            (Session::open_iommufd(u)?, "iommufd")
        } else {
            (Session::open(u)?, "type1 container")
        };
        let len = 4096 + 1024 * i;
        let t = std::time::Instant::now();
        let r = s.copy_checked(i as u8, 0, 8, len);
        let pasid_reg = s.dev.read32(regs::PASID)?;
        match &r {
            Ok(()) => println!(
                "mdev {u}: copied {len} bytes IOVA {SRC_IOVA:#x} -> {:#x} via {path} in {} ms, bytes match, PASID register {pasid_reg}",
                DST_IOVA + 8,
                t.elapsed().as_millis()
            ),
            Err(e) => {
                ok = false;
                println!("mdev {u}: copy FAILED: {e}");
            }
        }
    }
    // The parent's own accounting (debugfs): pieces of DMA, IOMMU faults, aux domains.
    let stats = format!("/sys/kernel/debug/edu_mdev/{}", parent_bdf(&parent)?);
    if let Ok(text) = std::fs::read_to_string(&stats) {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                .unwrap_or("?")
                .to_string()
        };
        println!(
            "parent {}: {} copies, {} pieces of DMA, {} IOMMU faults, {} aux domains attached at a PASID",
            parent_bdf(&parent)?,
            get("copies"),
            get("pieces"),
            get("faults"),
            get("attaches")
        );
    }
    for u in &uuids {
        remove_mdev(u).map_err(|e| format!("remove {u}: {e}"))?;
    }
    println!(
        "removed {} mdevs; available_instances edu-small {}",
        uuids.len(),
        available(&parent, "edu-small")?
    );
    if ok {
        Ok(())
    } else {
        Err("a copy failed".into())
    }
}

fn vm_demo() -> Result<(), String> {
    ensure_module()?;
    // From edu in mediated mode: the VM's guest-physical addresses are beyond edu-pasid's reach.
    let parent = find_vm_parent()?;
    let u = uuid(0xd100);
    create_mdev(&parent, "edu-small", &u).map_err(|e| format!("create {u}: {e}"))?;
    println!(
        "mdev {u}: PASID {}, mode {}",
        mdev_attr(&u, "pasid")?,
        mdev_attr(&u, "mode")?
    );
    let r = (|| {
        let mut vm = vm::Vm::start("vm", &u)?;
        let boot = vm.boot()?;
        println!(
            "VM with mdev {u} (-device vfio-pci,sysfsdev=...) booted to its init in {} ms",
            boot.as_millis()
        );
        vm.go()?;
        let report = vm.finish()?;
        println!(
            "VM's driver: all {} checks passed, PASID register {}, 4 KiB copy {} us (CMD to MSI)",
            vm::DRIVER_CHECKS,
            report.pasid,
            report.mean_us()
        );
        Ok::<(), String>(())
    })();
    remove_mdev(&u).map_err(|e| format!("remove {u}: {e}"))?;
    println!("VM gone, mdev {u} removed");
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("demo") => demo(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3)),
        Some("vm") => vm_demo(),
        _ => Err("usage: mdev-client demo [N] | vm".into()),
    };
    if let Err(e) = r {
        eprintln!("mdev-client: {e}");
        std::process::exit(1);
    }
}
