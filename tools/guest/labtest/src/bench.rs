// SPDX-License-Identifier: GPL-2.0
//! Benchmarks of the `edu_mdev` sample: figures printed as `BENCH` lines, not timed tests (a
//! bench fails only if it cannot measure). They run on the release kernel only, like the
//! `ioasid_bench` module: debug-kernel figures would measure KASAN and lockdep.
//!
//! - `bench:mdev_create_to_ready`: from the write of a UUID to `create` until the new mdev's
//!   VFIO cdev node (`/dev/vfio/devices/vfioN`) exists and opens, for `edu_mdev` (edu-small)
//!   and the in-tree C sample `mtty` (mtty-1) in the same boot: a warm-up round of each first
//!   (not counted), then creates interleaved with the order alternating every round, so that
//!   neither always runs on the caches the other warmed.
//! - `bench:mdev_copy_driver_time`: the driver's own time per mediated copy, from its debugfs
//!   accounting (`/sys/kernel/debug/edu_mdev/<parent>`), which leaves out the time the driver
//!   sleeps until edu completes a DMA (edu's fixed 100 ms timer). Its peer is the same edu DMA
//!   of one page done without mediation by the `edu_dma_peer` test module earlier in the same
//!   boot (map, program edu both ways, unmap; waits excluded the same way), whose figures
//!   reach us as `labtest-bench: edu_dma_peer:` lines ([`figure`]); the same kernel's CPU copy
//!   of one page (`/sys/kernel/debug/edu_mdev/peer_memcpy`) is printed beside it. Both measure
//!   the parent on edu (mediated mode) on every platform.
//! - `bench:mdev_pasid_vs_mediated` (PASID platforms, [`PASID`]): the same driver-time
//!   measurement on both parents of one boot, edu (mediated) and edu-pasid (PASID mode: the
//!   pages are mapped in the mdev's aux domain instead of the parent's DMA domain, the DMA is
//!   tagged), alternating, and the latency of attaching an aux domain at an mdev's PASID and of
//!   detaching it (the sample's own accounting, over mdev creates and removes); then the
//!   SMMU commands and CMD_SYNCs per piece in each mode, counted from the SMMU's command queue
//!   (`tests/kernel/smmu_cmdq_window.rs`, loaded around single copies: independent of the
//!   driver). Runs on both SMMUv3 drivers' kernels (every non-debug flavour).
//! - `bench:smmu_probe_time` (every non-debug flavour): how long the driver core's probe of
//!   the SMMU took, whichever driver bound it, from the `probe of <dev> returned 0 after <n>
//!   usecs` line `initcall_debug` (on the lab's kernel command line) makes the driver core log.

use crate::user_tests::UserTest;
use mdev_client::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `labtest-bench:` lines of the bench modules in this boot, for the benchmarks that compare
/// against them.
static FIGURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Prints a bench module's figure line and keeps it for [`module_figure`].
pub fn figure(line: &str) {
    println!("BENCH {line}");
    if let Ok(mut f) = FIGURES.lock() {
        f.push(line.to_string());
    }
}

/// `key=<u64>` from the last figure line starting with `prefix`.
fn module_figure(prefix: &str, key: &str) -> Result<u64, String> {
    let f = FIGURES.lock().map_err(|_| "figures lock poisoned")?;
    let line = f
        .iter()
        .rev()
        .find(|l| l.starts_with(prefix))
        .ok_or(format!(
            "no '{prefix}' figures in this boot (module not run?)"
        ))?;
    parse_key(line, key).ok_or(format!("no {key}= in {line:?}"))
}

fn parse_key(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

pub const ALL: &[UserTest] = &[
    UserTest {
        name: "bench:mdev_create_to_ready",
        run: create_to_ready,
    },
    UserTest {
        name: "bench:mdev_copy_driver_time",
        run: copy_driver_time,
    },
];

/// The benchmarks of the PASID platforms (every non-debug flavour: they compare the SMMUv3
/// drivers too).
pub const PASID: &[UserTest] = &[UserTest {
    name: "bench:mdev_pasid_vs_mediated",
    run: pasid_vs_mediated,
}];

/// The benchmarks of the SMMUv3 driver itself, run on every non-debug flavour (the C and the
/// Rust driver's kernels).
pub const DRIVER: &[UserTest] = &[UserTest {
    name: "bench:smmu_probe_time",
    run: smmu_probe_time,
}];

/// `probe of ...` lines of the boot log (`initcall_debug`), for [`smmu_probe_time`].
static PROBES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps a boot log line for the benchmarks that read the boot (the driver core's probe
/// timings).
pub fn boot_line(line: &str) {
    if let Some(l) = line.trim_start().strip_prefix("probe of ") {
        if let Ok(mut p) = PROBES.lock() {
            p.push(l.to_string());
        }
    }
}

/// `(returned, usecs)` of `<dev> returned <r> after <n> usecs` (the text after `probe of `) if
/// it is about `dev`.
fn parse_probe(line: &str, dev: &str) -> Option<(i64, u64)> {
    let rest = line.strip_prefix(dev)?.strip_prefix(" returned ")?;
    let (r, rest) = rest.split_once(" after ")?;
    let us = rest.strip_suffix(" usecs")?;
    Some((r.trim().parse().ok()?, us.trim().parse().ok()?))
}

/// The platform device of the system's SMMUv3 (device-tree `compatible` `arm,smmu-v3`) and the
/// driver bound to it.
fn smmu_device() -> Result<(String, String), String> {
    let dir = Path::new("/sys/bus/platform/devices");
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        let compat = std::fs::read(p.join("of_node/compatible")).unwrap_or_default();
        if compat.split(|&b| b == 0).any(|c| c == b"arm,smmu-v3") {
            found.push(p);
        }
    }
    let [p] = found.as_slice() else {
        return Err(format!(
            "{} platform devices compatible with arm,smmu-v3, want 1",
            found.len()
        ));
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let driver = std::fs::read_link(p.join("driver"))
        .map_err(|e| format!("{name}: no driver bound ({e})"))?;
    let driver = driver
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((name, driver))
}

/// `c` for the C `arm-smmu-v3`, `rust` for the project's driver: the `driver=` of the figure
/// lines, grouped by `tools/lab/compare-drivers.sh`.
fn driver_key(driver: &str) -> &'static str {
    match driver {
        "arm-smmu-v3" => "c",
        "arm_smmu_v3_rust" => "rust",
        _ => "other",
    }
}

fn smmu_probe_time() -> Result<(), String> {
    let (dev, driver) = smmu_device()?;
    let probes = PROBES.lock().map_err(|_| "probe lines lock poisoned")?;
    let runs: Vec<(i64, u64)> = probes.iter().filter_map(|l| parse_probe(l, &dev)).collect();
    let Some(&(_, us)) = runs.iter().find(|(r, _)| *r == 0) else {
        return Err(format!(
            "no 'probe of {dev} returned 0 after N usecs' in the boot log ({} probe lines, {} of \
             {dev}): the kernel needs initcall_debug on its command line (tools/lab/run.sh adds it)",
            probes.len(),
            runs.len()
        ));
    };
    let deferred = runs.iter().filter(|(r, _)| *r != 0).count();
    bench(format!(
        "smmu_probe: driver={} probe_us={us} deferred={deferred} ({driver} on {dev}: the driver \
         core's really_probe, i.e. the driver's whole probe (reset, queues, stream table, IRQs, \
         IOMMU registration) plus the core's pinctrl/DMA set-up around it; once per boot) \
         [tools/lab/run.sh test --filter bench:smmu_probe]",
        driver_key(&driver)
    ));
    Ok(())
}

/// The figure lines of the unmediated peer of `bench:mdev_copy_driver_time`
/// (`tests/kernel/edu_dma_peer.rs`).
const PEER: &str = "edu_dma_peer:";

/// The command that reproduces the figures (printed with them).
const COMMAND: &str = "tools/lab/run.sh test --filter bench:mdev";

fn bench(line: String) {
    println!("BENCH {line}");
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Writes `uuid` to `create` of `ty` under `parent`, waits until the mdev's cdev opens; returns
/// (µs until the write returned, µs until ready).
fn time_create(parent: &Path, ty: &str, uuid: &str) -> Result<(u64, u64), String> {
    let t = Instant::now();
    create_mdev(parent, ty, uuid).map_err(|e| format!("create {ty} {uuid}: {e}"))?;
    let written = t.elapsed();
    let deadline = t + Duration::from_secs(5);
    loop {
        if let Ok(node) = cdev_path(uuid) {
            if std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&node)
                .is_ok()
            {
                let ready = t.elapsed();
                return Ok((written.as_micros() as u64, ready.as_micros() as u64));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{ty} {uuid}: cdev not ready after 5 s"));
        }
        std::thread::yield_now();
    }
}

fn create_to_ready() -> Result<(), String> {
    ensure_module()?;
    let edu = find_parent_of(EDU)?;
    let mtty = Path::new("/sys/class/mdev_bus/mtty");
    let loaded_mtty = if mtty.exists() {
        false
    } else {
        let o = std::process::Command::new("insmod")
            .arg("/lib/labtest/mtty.ko")
            .output()
            .map_err(|e| format!("insmod mtty: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "insmod mtty.ko: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        true
    };
    const N: u32 = 50;
    const WARMUP: u32 = 2;
    let (mut edu_ready, mut mtty_ready, mut edu_write, mut mtty_write) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let r = (|| -> Result<(), String> {
        for i in 0..WARMUP + N {
            // Interleaved, so both see the same machine state; the order alternates.
            let mut pair = [
                (edu.as_path(), "edu-small", &mut edu_ready, &mut edu_write),
                (mtty, "mtty-1", &mut mtty_ready, &mut mtty_write),
            ];
            if i % 2 == 1 {
                pair.reverse();
            }
            for (parent, ty, ready, write) in pair {
                let u = uuid(0xb000 + i);
                let res = time_create(parent, ty, &u);
                let _ = remove_mdev(&u);
                let (w, r) = res?;
                if i >= WARMUP {
                    write.push(w);
                    ready.push(r);
                }
            }
        }
        Ok(())
    })();
    if loaded_mtty {
        let _ = std::process::Command::new("rmmod").arg("mtty").output();
    }
    r?;
    let (em, mm) = (median(&mut edu_ready), median(&mut mtty_ready));
    let (emin, mmin) = (edu_ready[0], mtty_ready[0]);
    let (ew, mw) = (median(&mut edu_write), median(&mut mtty_write));
    bench(format!(
        "mdev_create_to_ready: {N} creates each after {WARMUP} warm-up rounds, interleaved in \
         alternating order, create write -> VFIO cdev opens: \
         edu_mdev (edu-small) median {em} us min {emin} us (write returns after {ew} us); \
         mtty (mtty-1) median {mm} us min {mmin} us (write {mw} us); \
         ratio edu_mdev/mtty median {:.2} min {:.2} [{COMMAND}]",
        em as f64 / mm.max(1) as f64,
        emin as f64 / mmin.max(1) as f64
    ));
    Ok(())
}

fn read_stats(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next().and_then(|v| v.parse().ok())) {
                (Some(k), Some(v)) => Ok((k.to_string(), v)),
                _ => Err(format!("{}: bad line {l:?}", path.display())),
            }
        })
        .collect()
}

/// The driver's own time over a series of copies on one mdev of `parent` (debugfs accounting
/// before and after).
struct DriverTime {
    copies: u64,
    pieces: u64,
    /// Per piece (one 4 KiB page), ns: all driver time, then by phase.
    per_page: u64,
    validate: u64,
    pin: u64,
    map: u64,
    program: u64,
    unmap_unpin: u64,
    complete: u64,
    /// Not driver time: sleeping until edu's DMAs end, ns per page.
    wait: u64,
    /// ms per page as the user saw it.
    wall_ms: u64,
    faults: u64,
    /// Medians of the CPU memcpy peer sampled between the copies, ns.
    memcpy: Vec<u64>,
}

/// One-page copies (one piece each) and 64 KiB copies (16 pieces each).
const SMALL: u64 = 20;
const LARGE: u64 = 3;

fn measure(parent: &Path, n: u32, small: u64, large: u64) -> Result<DriverTime, String> {
    let stats = Path::new("/sys/kernel/debug/edu_mdev").join(parent_bdf(parent)?);
    let peer = Path::new("/sys/kernel/debug/edu_mdev/peer_memcpy");
    let m = uuid(n);
    create_mdev(parent, "edu-small", &m).map_err(|e| format!("create: {e}"))?;
    let r = (|| -> Result<DriverTime, String> {
        let mut s = Session::open(&m)?;
        let before = read_stats(&stats)?;
        // The peer is sampled between the copies, so both see the same host load.
        let mut memcpy = Vec::new();
        let mut wall = Duration::ZERO;
        for i in 0..small + large {
            let t = Instant::now();
            if i < small {
                s.copy_checked(i as u8, 0, 0, 4096)?;
            } else {
                s.copy_checked(0x80 + i as u8, 0, 0, BUF_LEN)?;
            }
            wall += t.elapsed();
            let p = read_stats(peer)?;
            memcpy.push(*p.get("memcpy_ns").ok_or("no memcpy_ns")?);
        }
        let after = read_stats(&stats)?;
        let d = |k: &str| -> Result<u64, String> {
            Ok(after.get(k).ok_or(format!("no {k} in stats"))?
                - before.get(k).copied().unwrap_or(0))
        };
        let copies = d("copies")?;
        let pieces = d("pieces")?;
        let bytes = d("bytes")?;
        let want_bytes = small * 4096 + large * BUF_LEN as u64;
        if copies != small + large || bytes != want_bytes {
            return Err(format!(
                "stats counted {copies} copies / {bytes} bytes, want {} / {want_bytes}",
                small + large
            ));
        }
        let pp = |k: &str| -> Result<u64, String> { Ok(d(k)? / pieces.max(1)) };
        Ok(DriverTime {
            copies,
            pieces,
            per_page: pp("driver_ns")?,
            validate: pp("validate_ns")?,
            pin: pp("pin_ns")?,
            map: pp("map_ns")?,
            program: pp("program_ns")?,
            unmap_unpin: pp("unmap_unpin_ns")?,
            complete: pp("complete_ns")?,
            wait: pp("edu_wait_ns")?,
            wall_ms: wall.as_millis() as u64 / pieces.max(1),
            faults: d("faults")?,
            memcpy,
        })
    })();
    let _ = remove_mdev(&m);
    r
}

fn copy_driver_time() -> Result<(), String> {
    ensure_module()?;
    let parent = find_parent_of(EDU)?;
    let t = measure(&parent, 0xb100, SMALL, LARGE)?;
    let mut memcpy = t.memcpy.clone();
    let samples = memcpy.len();
    let memcpy = median(&mut memcpy).max(1);
    let per_page = t.per_page;
    bench(format!(
        "mdev_copy_driver_time: {} copies ({SMALL} x 4 KiB, {LARGE} x 64 KiB), {} pages, \
         driver time {} us per copy, {} us per 4 KiB page (edu DMA waits excluded: {} ms per page); \
         per page: validate {} us, pin {} us, dma_map {} us, program edu {} us, unmap+unpin {} us, completion {} us [{COMMAND}]",
        t.copies,
        t.pieces,
        per_page * t.pieces / t.copies.max(1) / 1000,
        per_page / 1000,
        t.wait / 1_000_000,
        t.validate / 1000,
        t.pin / 1000,
        t.map / 1000,
        t.program / 1000,
        t.unmap_unpin / 1000,
        t.complete / 1000,
    ));
    let peer = module_figure(PEER, "per_page_ns")?;
    let peer_rounds = module_figure(PEER, "rounds")?;
    bench(format!(
        "mdev_copy_driver_time peers (same boot): driver {per_page} ns per page vs the unmediated \
         edu DMA of a page by edu_dma_peer (dma_map src+dst, program edu both ways, unmap; \
         waits excluded; median of {peer_rounds}) {peer} ns -> driver/peer {:.2}x; \
         CPU memcpy of 4 KiB {memcpy} ns (median of {samples} samples between the copies) -> driver/memcpy {:.0}x; \
         the driver's own vfio_pin_pages+dma_map+unmap+unpin, a part of the driver time and not a peer, {} us per page; \
         user-visible {} ms per page (edu's two 100 ms DMAs) [{COMMAND}]",
        per_page as f64 / peer.max(1) as f64,
        per_page as f64 / memcpy as f64,
        (t.pin + t.map + t.unmap_unpin) / 1000,
        t.wall_ms,
    ));
    Ok(())
}

const PASID_COMMAND: &str = "tools/lab/run.sh test --platform pasid --filter bench:mdev_pasid";

/// Driver time per page in PASID mode (edu-pasid) vs mediated mode (edu), same boot, two
/// alternating rounds each; aux-domain attach/detach latency over mdev creates/removes.
fn pasid_vs_mediated() -> Result<(), String> {
    ensure_module()?;
    let mediated = find_parent_of(EDU)?;
    let pasid = find_parent_of(EDU_PASID)?;
    let (mut med, mut pas) = (Vec::new(), Vec::new());
    for round in 0..2u32 {
        // Alternating order: neither always runs on what the other warmed.
        let order = if round == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_pasid in order {
            let (p, out) = if is_pasid {
                (&pasid, &mut pas)
            } else {
                (&mediated, &mut med)
            };
            out.push(measure(
                p,
                0xb200 + round * 2 + u32::from(is_pasid),
                SMALL / 2,
                1,
            )?);
        }
    }
    let sum = |v: &[DriverTime], f: fn(&DriverTime) -> u64| -> u64 {
        let pages: u64 = v.iter().map(|t| t.pieces).sum();
        v.iter().map(|t| f(t) * t.pieces).sum::<u64>() / pages.max(1)
    };
    let line = |name: &str, v: &[DriverTime]| {
        format!(
            "{name}: {} pages, driver {} us per page (validate {} / pin {} / map {} / program {} / \
             unmap+unpin {} / completion {} us), {} IOMMU faults",
            v.iter().map(|t| t.pieces).sum::<u64>(),
            sum(v, |t| t.per_page) / 1000,
            sum(v, |t| t.validate) / 1000,
            sum(v, |t| t.pin) / 1000,
            sum(v, |t| t.map) / 1000,
            sum(v, |t| t.program) / 1000,
            sum(v, |t| t.unmap_unpin) / 1000,
            sum(v, |t| t.complete) / 1000,
            v.iter().map(|t| t.faults).sum::<u64>(),
        )
    };
    let (pm, pp) = (sum(&med, |t| t.per_page), sum(&pas, |t| t.per_page));
    bench(format!(
        "mdev_pasid_vs_mediated (same boot, 2 alternating rounds of {} x 4 KiB + 1 x 64 KiB each): \
         {}; {}; ratio PASID/mediated driver time per page {:.2} [{PASID_COMMAND}]",
        SMALL / 2,
        line("PASID mode (edu-pasid, aux domain per mdev, tagged DMA)", &pas),
        line("mediated mode (edu, parent's DMA mapping)", &med),
        pp as f64 / pm.max(1) as f64,
    ));
    // Attach/detach: each create attaches a new aux domain at the mdev's PASID, each remove
    // detaches and frees it.
    let stats = Path::new("/sys/kernel/debug/edu_mdev").join(parent_bdf(&pasid)?);
    let before = read_stats(&stats)?;
    const N: u32 = 30;
    for i in 0..N {
        let u = uuid(0xb300 + i);
        create_mdev(&pasid, "edu-small", &u).map_err(|e| format!("create {u}: {e}"))?;
        remove_mdev(&u).map_err(|e| format!("remove {u}: {e}"))?;
    }
    let after = read_stats(&stats)?;
    let d = |k: &str| -> Result<u64, String> {
        Ok(after.get(k).ok_or(format!("no {k} in stats"))? - before.get(k).copied().unwrap_or(0))
    };
    let (a, an, dt, dn) = (
        d("attaches")?,
        d("attach_ns")?,
        d("detaches")?,
        d("detach_ns")?,
    );
    if a != u64::from(N) || dt != u64::from(N) {
        return Err(format!(
            "{a} attaches / {dt} detaches counted for {N} creates/removes"
        ));
    }
    bench(format!(
        "mdev_pasid_attach_detach: {N} mdev creates/removes on edu-pasid: aux domain alloc + \
         iommu_attach_device_pasid {} us mean, iommu_detach_device_pasid + free {} us mean \
         [{PASID_COMMAND}]",
        an / a.max(1) / 1000,
        dn / dt.max(1) / 1000,
    ));
    // Commands per piece, counted apart from the timed copies (loading the counting window
    // module between copies would disturb their times).
    let p = commands_per_piece(&pasid, 0xb400)?;
    let m = commands_per_piece(&mediated, 0xb410)?;
    if p.driver != m.driver {
        return Err(format!(
            "counted on two drivers: {} and {}",
            p.driver, m.driver
        ));
    }
    let keys = |mode: &str, c: &PieceCommands| {
        format!(
            "{mode}_piece_cmds={} {mode}_piece_syncs={} {mode}_64k_cmds={} {mode}_64k_syncs={} \
             {mode}_64k_pieces={} {mode}_attach_cmds={} {mode}_attach_syncs={} \
             {mode}_detach_cmds={} {mode}_detach_syncs={}",
            c.one.commands,
            c.one.syncs,
            c.big.commands,
            c.big.syncs,
            c.big_pieces,
            c.create.commands,
            c.create.syncs,
            c.remove.commands,
            c.remove.syncs,
        )
    };
    let text = |c: &PieceCommands| {
        format!(
            "a 4 KiB copy (1 piece): {}; a 64 KiB copy ({} pieces): {} ({:.2} commands + {:.2} \
             CMD_SYNC per piece); mdev create: {}; remove: {}",
            c.one.kinds,
            c.big_pieces,
            c.big.kinds,
            c.big.commands as f64 / c.big_pieces.max(1) as f64,
            c.big.syncs as f64 / c.big_pieces.max(1) as f64,
            c.create.kinds,
            c.remove.kinds,
        )
    };
    bench(format!(
        "mdev_commands: driver={} {} {} (SMMU commands counted from the command queue around \
         single copies, each repeated until two agree); PASID mode (edu-pasid): {}; mediated \
         mode (edu): {} [{PASID_COMMAND}]",
        p.driver,
        keys("pasid", &p),
        keys("mediated", &m),
        text(&p),
        text(&m),
    ));
    Ok(())
}

/// The commands the SMMU's queue received in a counting window (`smmu_cmdq_window.ko`).
#[derive(PartialEq, Eq)]
struct Window {
    /// `c` or `rust`.
    driver: String,
    commands: u64,
    syncs: u64,
    /// The opcodes, e.g. `2 CMD_SYNC + 2 TLBI_NH_VA`.
    kinds: String,
}

const WINDOW_MODULE: &str = "smmu_cmdq_window";

/// Runs `f` inside a counting window: `insmod` of the window module before, `rmmod` after,
/// and its line from the kernel log.
fn counted<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(Window, T), String> {
    let mut log = crate::kmsg::Kmsg::open().map_err(|e| format!("/dev/kmsg: {e}"))?;
    log.drain();
    let tag = format!("{WINDOW_MODULE}: ");
    let line_of = |lines: Vec<String>| {
        lines
            .into_iter()
            .find_map(|l| l.find(&tag).map(|i| l[i + tag.len()..].to_string()))
    };
    let o = std::process::Command::new("insmod")
        .arg(format!("/lib/labtest/{WINDOW_MODULE}.ko"))
        .output()
        .map_err(|e| format!("insmod {WINDOW_MODULE}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "insmod {WINDOW_MODULE}: {} ({})",
            String::from_utf8_lossy(&o.stderr).trim(),
            line_of(log.drain()).unwrap_or_default()
        ));
    }
    let r = f();
    let rm = std::process::Command::new("rmmod")
        .arg(WINDOW_MODULE)
        .output();
    if !matches!(rm, Ok(ref o) if o.status.success()) {
        return Err(format!("rmmod {WINDOW_MODULE} failed"));
    }
    let r = r?;
    let line =
        line_of(log.drain()).ok_or(format!("no '{tag}' line in the kernel log after rmmod"))?;
    if let Some(e) = line.strip_prefix("error: ") {
        return Err(format!("counting window: {e}"));
    }
    let driver = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("driver="))
        .ok_or(format!("no driver= in {line:?}"))?
        .to_string();
    let num = |k: &str| parse_key(&line, k).ok_or(format!("no {k}= in {line:?}"));
    let kinds = line
        .split_once('(')
        .and_then(|(_, k)| k.strip_suffix(')'))
        .unwrap_or("?")
        .to_string();
    Ok((
        Window {
            driver,
            commands: num("commands")?,
            syncs: num("syncs")?,
            kinds,
        },
        r,
    ))
}

/// Repeats the counted `measure` until two windows in a row agree (other activity only adds
/// commands), at most 5 times.
fn stable_window<T>(
    mut measure: impl FnMut() -> Result<(Window, T), String>,
) -> Result<(Window, T), String> {
    let mut prev = measure()?;
    for _ in 0..4 {
        let next = measure()?;
        if next.0 == prev.0 {
            return Ok(next);
        }
        prev = next;
    }
    Err(format!(
        "5 counting windows around the same operation never agreed twice in a row (last: {}): \
         other commands on the SMMU?",
        prev.0.kinds
    ))
}

/// Commands counted around single copies of an mdev of `parent`, and around an mdev's create
/// and remove.
struct PieceCommands {
    driver: String,
    /// A one-page copy: one piece.
    one: Window,
    /// A 64 KiB copy.
    big: Window,
    big_pieces: u64,
    create: Window,
    remove: Window,
}

fn commands_per_piece(parent: &Path, n: u32) -> Result<PieceCommands, String> {
    let stats = Path::new("/sys/kernel/debug/edu_mdev").join(parent_bdf(parent)?);
    let pieces = || -> Result<u64, String> {
        read_stats(&stats)?
            .get("pieces")
            .copied()
            .ok_or("no pieces in stats".into())
    };
    // An mdev's create (PASID mode: its aux domain attached at its PASID) and remove.
    let mut i = 0;
    let (create, ()) = stable_window(|| {
        i += 1;
        let u = uuid(n + i);
        let r =
            counted(|| create_mdev(parent, "edu-small", &u).map_err(|e| format!("create: {e}")));
        let _ = remove_mdev(&u);
        r
    })?;
    let (remove, ()) = stable_window(|| {
        i += 1;
        let u = uuid(n + i);
        create_mdev(parent, "edu-small", &u).map_err(|e| format!("create: {e}"))?;
        counted(|| remove_mdev(&u).map_err(|e| format!("remove: {e}")))
    })?;
    let m = uuid(n);
    create_mdev(parent, "edu-small", &m).map_err(|e| format!("create: {e}"))?;
    let r = (|| -> Result<PieceCommands, String> {
        let mut s = Session::open(&m)?;
        // Not counted: the first copy of a session may set up what later ones reuse.
        s.copy_checked(1, 0, 0, 4096)?;
        let copy = |s: &mut Session, len: usize| {
            let p0 = pieces()?;
            let (w, ()) = counted(|| s.copy_checked(2, 0, 0, len))?;
            Ok::<_, String>((w, pieces()? - p0))
        };
        let (one, one_pieces) = stable_window(|| copy(&mut s, 4096))?;
        if one_pieces != 1 {
            return Err(format!("a 4 KiB copy counted {one_pieces} pieces, want 1"));
        }
        let (big, big_pieces) = stable_window(|| copy(&mut s, BUF_LEN))?;
        Ok(PieceCommands {
            driver: one.driver.clone(),
            one,
            big,
            big_pieces,
            create,
            remove,
        })
    })();
    let _ = remove_mdev(&m);
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_lines() {
        let l = "9050000.smmuv3 returned 0 after 12345 usecs";
        assert_eq!(super::parse_probe(l, "9050000.smmuv3"), Some((0, 12345)));
        assert_eq!(super::parse_probe(l, "9050000.smmu"), None);
        assert_eq!(
            super::parse_probe(
                "9050000.smmuv3 returned -517 after 3 usecs",
                "9050000.smmuv3"
            ),
            Some((-517, 3))
        );
        assert_eq!(
            super::parse_probe("9050000.smmuv3 returned 0", "9050000.smmuv3"),
            None
        );
    }

    #[test]
    fn figure_keys() {
        let l = "edu_dma_peer: rounds=20 per_page_ns=41000 map_ns=3000";
        assert_eq!(super::parse_key(l, "per_page_ns"), Some(41000));
        assert_eq!(super::parse_key(l, "rounds"), Some(20));
        assert_eq!(super::parse_key(l, "page_ns"), None);
        assert_eq!(super::parse_key(l, "edu_dma_peer:"), None);
    }
}
