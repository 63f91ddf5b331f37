// SPDX-License-Identifier: GPL-2.0
//! Issue 12: the sample's PASID mode on edu-pasid (PASID platforms only, `user_tests::PASID`).
//! Every other `mdev:*` test runs on edu-pasid there too (`find_parent` picks it); these add
//! what rests on the IOMMU's translation of the engine's PASID-tagged DMA:
//! - `pasid_same_iovas_real_translation`: two users (type1 and iommufd) map different memory at
//!   the same IOVAs and copy at the same time; each copy lands in its own user's memory only,
//!   through DMA tagged with that mdev's PASID (the parent's counters: pieces done, no fault).
//! - `pasid_unmapped_iova_faults`: with fault injection (`inject_unmapped_dst`) the engine DMAs
//!   to an IOVA that is not mapped in the mdev's domain: the SMMU refuses it, the copy ends with
//!   the engine's `ERROR` 4 (unmapped), the user's page is untouched, the sample logs the fault
//!   naming the PASID (and the SMMU driver its event record): no oops, no WARN.
//! - `pasid_msi_isolation_at_open`: with GICv3's ITS (`--platform pasid`) an mdev in PASID mode
//!   opens; without (`--platform pasid-noits`) the open is refused with `EPERM` and a message on
//!   both VFIO paths until the module parameter `allow_unsafe_interrupts` is set, and the mediated
//!   parent (edu) opens regardless.
//! - `pasid_completion_through_own_domain`: the engine's completion interrupt is edu-pasid's
//!   PASID-tagged message, whose doorbell the mdev's domain binds: a copy's completions arrive
//!   as messages (the parent's counters) and raise the parent's MSI vector. With fault
//!   injection (`inject_no_doorbell`) an mdev's domain lacks the binding: its completion
//!   message faults, the SMMU names its PASID and the doorbell IOVA, no interrupt arrives, and
//!   the copy still ends (polled) with `ERROR` 9 and a message; no WARN.

use super::{ensure, parent, Mdev};
use mdev_client::*;
use std::path::Path;

const PARAMS: &str = "/sys/module/edu_mdev/parameters";

fn set_param(name: &str, on: bool) -> Result<(), String> {
    let p = format!("{PARAMS}/{name}");
    std::fs::write(&p, if on { "1" } else { "0" }).map_err(|e| format!("{p}: {e}"))
}

/// A counter of the parent's debugfs accounting (`edu_mdev/<parent>`).
fn stat(p: &Path, key: &str) -> Result<u64, String> {
    let f = format!("/sys/kernel/debug/edu_mdev/{}", parent_bdf(p)?);
    let s = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{f}: no {key} line"))
}

/// Dword 0 of each event record arm-smmu-v3 printed (`event 0x.. received:` and a line per
/// dword): type in bits 7:0, SSV bit 11, SubstreamID bits 31:12, StreamID bits 63:32.
fn smmu_events<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut want = false;
    for l in lines {
        if l.contains("arm-smmu-v3") && l.contains("event 0x") && l.contains("received") {
            want = true;
        } else if want {
            want = false;
            let hex = l
                .split_whitespace()
                .last()
                .and_then(|w| w.strip_prefix("0x"));
            if let Some(v) = hex.and_then(|h| u64::from_str_radix(h, 16).ok()) {
                out.push(v);
            }
        }
    }
    out
}

/// SubstreamIDs of the translation faults the project's Rust SMMUv3 driver reported
/// (`translation fault by <dev>: StreamID 0x.. SSID 0x.. IOVA 0x.. (...)`, docs/rust-smmuv3.md).
fn rust_smmu_fault_ssids<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u64> {
    lines
        .filter(|l| l.contains("translation fault by "))
        .filter_map(|l| {
            let ssid = l.split(" SSID ").nth(1)?.split_whitespace().next()?;
            u64::from_str_radix(ssid.strip_prefix("0x")?, 16).ok()
        })
        .collect()
}

fn dmesg() -> Result<String, String> {
    let o = std::process::Command::new("dmesg")
        .output()
        .map_err(|e| format!("dmesg: {e}"))?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The parent in PASID mode (edu-pasid), checked through an mdev's `mode`.
fn pasid_parent() -> Result<std::path::PathBuf, String> {
    let p = parent()?;
    ensure(platform_parent_device() == EDU_PASID, || {
        format!(
            "platform {}: the mdev tests do not use edu-pasid",
            platform()
        )
    })?;
    Ok(p)
}

pub fn same_iovas_real_translation() -> Result<(), String> {
    let p = pasid_parent()?;
    let a = Mdev::new(&p, "edu-small", 0x600)?;
    let b = Mdev::new(&p, "edu-large", 0x601)?;
    for m in [&a, &b] {
        let mode = mdev_attr(&m.0, "mode")?;
        ensure(mode == "pasid", || format!("{}: mode {mode}", m.0))?;
    }
    let (pa, pb) = (mdev_attr(&a.0, "pasid")?, mdev_attr(&b.0, "pasid")?);
    ensure(pa != pb, || format!("same PASID {pa}"))?;
    let (pieces0, faults0) = (stat(&p, "pieces")?, stat(&p, "faults")?);
    let ua = a.0.clone();
    let ub = b.0.clone();
    // Both users copy at once, to the same IOVAs: pieces of A and B alternate on the engine.
    let ta = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        let mut s = Session::open(&ua)?;
        s.copy_checked(0xa1, 0, 0, 4096)?;
        s.copy_checked(0xa2, 12, 4000, 9000)?;
        Ok(s.dst.bytes().to_vec())
    });
    let tb = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        let mut s = Session::open_iommufd(&ub)?;
        s.copy_checked(0xb1, 0, 0, 4096)?;
        s.copy_checked(0xb2, 12, 4000, 9000)?;
        Ok(s.dst.bytes().to_vec())
    });
    let da = ta.join().map_err(|_| "A panicked".to_string())??;
    let db = tb.join().map_err(|_| "B panicked".to_string())??;
    // copy_checked checked each user's bytes; the two destinations must differ too.
    ensure(da != db, || "A's and B's destinations are equal".into())?;
    let (pieces1, faults1) = (stat(&p, "pieces")?, stat(&p, "faults")?);
    // 1 + 3 pieces each (4000 + 9000 crosses three destination pages).
    ensure(pieces1 - pieces0 >= 8 && faults1 == faults0, || {
        format!(
            "{} pieces and {} IOMMU faults of the parent during the copies",
            pieces1 - pieces0,
            faults1 - faults0
        )
    })?;
    println!(
        "  mdev: PASIDs {pa} and {pb}, same IOVAs, {} pieces of tagged DMA, each in its own memory",
        pieces1 - pieces0
    );
    Ok(())
}

pub fn unmapped_iova_faults() -> Result<(), String> {
    let p = pasid_parent()?;
    let m = Mdev::new(&p, "edu-small", 0x610)?;
    let pasid = mdev_attr(&m.0, "pasid")?;
    let mut s = Session::open(&m.0)?;
    s.src.bytes().fill(0x5a);
    s.dst.bytes().fill(0);
    let faults0 = stat(&p, "faults")?;
    let lines0 = dmesg()?.lines().count();
    set_param("inject_unmapped_dst", true)?;
    let r = s.dev.copy(SRC_IOVA, DST_IOVA, 4096);
    // Off again before anything is checked.
    set_param("inject_unmapped_dst", false)?;
    let r = r?;
    ensure(r == Err(CopyError::Unmapped as u32), || {
        format!("copy with its destination not mapped in the PASID's domain: {r:?}")
    })?;
    ensure(s.dst.bytes().iter().all(|&b| b == 0), || {
        "the destination changed although the DMA faulted".into()
    })?;
    let faults1 = stat(&p, "faults")?;
    ensure(faults1 == faults0 + 1, || {
        format!("{} IOMMU faults counted, want 1", faults1 - faults0)
    })?;
    let log = dmesg()?;
    let want = format!("edu_mdev: PASID {pasid} DMA 0x40000 -> {DST_IOVA:#x} faulted in the IOMMU");
    ensure(log.contains(&want), || format!("no '{want}' line"))?;
    // The SMMU driver's reports since the copy started: a translation fault (0x10) with SSV set
    // and SubstreamID = the mdev's PASID. arm-smmu-v3 prints the raw record (at most 10 per
    // 5 s); the Rust driver (release and debug flavours) decodes it and names the SSID.
    let pasid: u64 = pasid.parse().map_err(|e| format!("pasid: {e}"))?;
    let events = smmu_events(log.lines().skip(lines0));
    let ours = events
        .iter()
        .filter(|&&w| w & 0xff == 0x10 && w & (1 << 11) != 0 && (w >> 12) & 0xf_ffff == pasid)
        .count();
    let decoded = rust_smmu_fault_ssids(log.lines().skip(lines0));
    let ours_decoded = decoded.iter().filter(|&&s| s == pasid).count();
    ensure(ours + ours_decoded > 0, || {
        format!("no SMMU translation fault with SSV and SubstreamID {pasid} logged (arm-smmu-v3 event dword 0s: {events:#x?}; Rust driver fault SSIDs: {decoded:#x?})")
    })?;
    println!(
        "  mdev: the SMMU driver logged {} translation faults with SubstreamID {pasid}",
        ours + ours_decoded
    );
    // The device works on afterwards.
    s.copy_checked(0x61, 0, 0, 4096)
}

pub fn msi_isolation_at_open() -> Result<(), String> {
    let p = pasid_parent()?;
    let refused = "PASID mode needs isolated MSIs";
    let m = Mdev::new(&p, "edu-small", 0x620)?;
    match platform().as_str() {
        "pasid" => {
            // GICv3 ITS: isolated, opens on both paths without the parameter.
            let before = dmesg()?.matches(refused).count();
            Session::open(&m.0)?.copy_checked(0x71, 0, 0, 1024)?;
            Session::open_iommufd(&m.0)?.copy_checked(0x72, 0, 0, 1024)?;
            ensure(dmesg()?.matches(refused).count() == before, || {
                "open refused on a machine with an ITS".into()
            })
        }
        "pasid-noits" => {
            let before = dmesg()?.matches(refused).count();
            let t1 = Session::open(&m.0).map(drop);
            let fd = Session::open_iommufd(&m.0).map(drop);
            for (path, r) in [("type1", &t1), ("iommufd", &fd)] {
                ensure(
                    r.as_ref().err().is_some_and(|e| e.contains("os error 1)")),
                    || format!("{path} open without isolated MSIs: {r:?}, want EPERM"),
                )?;
            }
            let after = dmesg()?.matches(refused).count();
            ensure(after == before + 2, || {
                format!("{} '{refused}' lines for two refused opens", after - before)
            })?;
            // The administrator's override.
            set_param("allow_unsafe_interrupts", true)?;
            let r = Session::open(&m.0).and_then(|mut s| s.copy_checked(0x73, 0, 0, 1024));
            set_param("allow_unsafe_interrupts", false)?;
            r.map_err(|e| format!("with allow_unsafe_interrupts=1: {e}"))?;
            // Mediated mode never needs it.
            let e = find_parent_of(EDU)?;
            let me = Mdev::new(&e, "edu-small", 0x621)?;
            // A statement: the session must close before `me` is removed.
            let r = Session::open(&me.0).and_then(|mut s| s.copy_checked(0x74, 0, 0, 1024));
            drop(me);
            r
        }
        other => Err(format!("platform {other} has no PASID mode")),
    }
}

/// Translation faults the SMMU driver logged, as (SubstreamID, input address): arm-smmu-v3's
/// raw records (`event 0x10 received:` and the four dwords: SSV bit 11 and SubstreamID bits
/// 31:12 of the first, InputAddr the third) and the Rust driver's decoded lines.
fn smmu_faults(log: &str) -> Vec<(u64, u64)> {
    let lines: Vec<&str> = log.lines().collect();
    let hex = |l: &str| {
        let w = l.split_whitespace().last()?;
        u64::from_str_radix(w.strip_prefix("0x")?, 16).ok()
    };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("arm-smmu-v3") && l.contains("event 0x10 received") {
            let dw: Vec<u64> = lines[i + 1..]
                .iter()
                .take(3)
                .filter_map(|l| hex(l))
                .collect();
            if let [d0, _, addr] = dw[..] {
                if d0 & (1 << 11) != 0 {
                    out.push(((d0 >> 12) & 0xf_ffff, addr));
                }
            }
        } else if l.contains("translation fault by ") {
            let field = |k: &str| {
                let v = l.split(k).nth(1)?.split_whitespace().next()?;
                u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()
            };
            if let (Some(ssid), Some(iova)) = (field(" SSID "), field(" IOVA ")) {
                out.push((ssid, iova));
            }
        }
    }
    out
}

/// Interrupts of the parent's MSI vector (`/sys/bus/pci/devices/<bdf>/msi_irqs`, then
/// `/proc/interrupts`).
fn parent_interrupts(p: &Path) -> Result<u64, String> {
    let bdf = parent_bdf(p)?;
    let dir = format!("/sys/bus/pci/devices/{bdf}/msi_irqs");
    let irq = std::fs::read_dir(&dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
        .ok_or_else(|| format!("{dir}: no MSI vector"))?;
    let all = std::fs::read_to_string("/proc/interrupts")
        .map_err(|e| format!("/proc/interrupts: {e}"))?;
    let line = all
        .lines()
        .find(|l| l.trim_start().strip_prefix(&format!("{irq}:")).is_some())
        .ok_or_else(|| format!("/proc/interrupts: no IRQ {irq}"))?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .map_while(|w| w.parse::<u64>().ok())
        .sum())
}

pub fn completion_through_own_domain() -> Result<(), String> {
    let p = pasid_parent()?;
    // 1. Doorbell bound in the mdev's domain: each DMA's completion is an accepted message and
    //    an interrupt of the parent's vector.
    let a = Mdev::new(&p, "edu-small", 0x630)?;
    let mut s = Session::open(&a.0)?;
    let (msgs0, mfaults0, irqs0) = (
        stat(&p, "messages")?,
        stat(&p, "message_faults")?,
        parent_interrupts(&p)?,
    );
    s.copy_checked(0x31, 0, 0, 4096)?;
    // The worker may see the last DMA done (it also polls) before a CPU took the interrupt
    // the message raised: give delivery up to a second.
    let mut irqs1 = parent_interrupts(&p)?;
    for _ in 0..100 {
        if irqs1 - irqs0 >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        irqs1 = parent_interrupts(&p)?;
    }
    let (msgs1, mfaults1) = (stat(&p, "messages")?, stat(&p, "message_faults")?);
    // One piece: two DMAs (RAM -> edu, edu -> RAM), each completed by a message.
    ensure(
        msgs1 - msgs0 == 2 && mfaults1 == mfaults0 && irqs1 - irqs0 >= 2,
        || {
            format!(
            "one piece: {} completion messages accepted, {} refused, {} interrupts of the parent",
            msgs1 - msgs0,
            mfaults1 - mfaults0,
            irqs1 - irqs0
        )
        },
    )?;
    println!(
        "  mdev: one piece of PASID {}: {} completion messages through its domain, {} interrupts",
        mdev_attr(&a.0, "pasid")?,
        msgs1 - msgs0,
        irqs1 - irqs0
    );
    // 2. Fault injection: the next mdev's domain lacks the doorbell binding.
    set_param("inject_no_doorbell", true)?;
    let b = Mdev::new(&p, "edu-small", 0x631);
    set_param("inject_no_doorbell", false)?;
    let b = b?;
    let pasid: u64 = mdev_attr(&b.0, "pasid")?
        .parse()
        .map_err(|e| format!("pasid: {e}"))?;
    let mut sb = Session::open(&b.0)?;
    sb.src.bytes().fill(0x5b);
    // arm-smmu-v3 logs at most 10 event records per 5 s (the test before this one used
    // them up): a fresh window, so that the message's fault is printed.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let lines0 = dmesg()?.lines().count();
    let irqs0 = parent_interrupts(&p)?;
    let t0 = std::time::Instant::now();
    let r = sb.dev.copy(SRC_IOVA, DST_IOVA, 4096)?;
    let took = t0.elapsed();
    let irqs1 = parent_interrupts(&p)?;
    ensure(r == Err(CopyError::Device as u32), || {
        format!("copy whose completion message has no doorbell: {r:?}, want ERROR 9")
    })?;
    ensure(irqs1 == irqs0, || {
        format!("{} interrupts arrived without a doorbell", irqs1 - irqs0)
    })?;
    let log: String = dmesg()?.lines().skip(lines0).collect::<Vec<_>>().join("\n");
    let want = format!("edu_mdev: PASID {pasid} completion message to 0x");
    let line = log
        .lines()
        .find(|l| l.contains(&want))
        .ok_or_else(|| format!("no '{want}...' line"))?;
    let addr = line
        .split(" to 0x")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("no message address in '{line}'"))?;
    let faults = smmu_faults(&log);
    ensure(faults.contains(&(pasid, addr)), || {
        format!("no SMMU translation fault with SubstreamID {pasid} at the doorbell IOVA {addr:#x} logged: {faults:#x?}")
    })?;
    println!(
        "  mdev: PASID {pasid} without doorbell: message to {addr:#x} faulted (SMMU event SSID {pasid}), no interrupt, copy ended with ERROR 9 in {} ms",
        took.as_millis()
    );
    // 3. The first mdev still completes through its own doorbell.
    let msgs0 = stat(&p, "messages")?;
    s.copy_checked(0x32, 0, 0, 4096)?;
    ensure(stat(&p, "messages")? - msgs0 == 2, || {
        "A's completions after B's faults".into()
    })?;
    Ok(())
}
