// SPDX-License-Identifier: GPL-2.0
//! `vm:*`: virtual machines inside the lab guest, each given an `edu_mdev` mdev as a PCI device
//! through QEMU's `vfio-pci` (docs/vm-guests.md).
//!
//! The VMM is Debian's arm64 QEMU from the disk `run.sh --vm` attaches (`tools/lab/vmm.sh`),
//! run in a chroot under KVM (the lab guest boots at EL2). Each VM boots the lab kernel with a
//! small initramfs (`/lib/vm`, built by `guest.sh`) whose init waits for a `go` line on its
//! console, then loads `samples/copy-engine-guest`: its probe copies, checks the bytes and the
//! isolation, and logs `copy_engine_guest: ...` lines, parsed here. Every line a VM prints is
//! relayed as `[vm N] ...`, so the judge also sees a VM kernel's oops or warning.

use crate::user_tests::UserTest;
use mdev_client as mc;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
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
];

const VMM_ROOT: &str = "/vmm";
const VMM_DISK: &str = "/dev/vda";
const QEMU: &str = "/usr/bin/qemu-system-aarch64";
/// Checks the guest driver logs per probe: 6 copies of 4 KiB, one of 16 KiB, 2 isolation.
const DRIVER_CHECKS: usize = 9;
/// Boot of a VM until its init runs (TCG running KVM: slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// From `go` until the VM powered off.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether the guest was booted with the VMM disk (`run.sh --vm`).
pub fn vmm_attached() -> bool {
    Path::new(VMM_DISK).exists()
}

/// Mounts the VMM disk at `/vmm` (once) with what QEMU needs inside the chroot: `/proc`,
/// `/sys` (the mdevs), `/dev` (kvm, vfio), a writable `/tmp`, and `/boot` (the VM's kernel
/// and initramfs).
fn vmm_ready() -> Result<(), String> {
    if Path::new(VMM_ROOT).join("boot/Image").exists() {
        return Ok(());
    }
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm: the lab guest must boot at EL2 (run.sh --vm)".into());
    }
    if !Path::new(VMM_DISK).exists() {
        return Err(format!("no {VMM_DISK}: run.sh --vm attaches the VMM disk"));
    }
    std::fs::create_dir_all(VMM_ROOT).map_err(|e| format!("{VMM_ROOT}: {e}"))?;
    let mounts: [&[&str]; 6] = [
        &["-t", "ext2", "-o", "ro", VMM_DISK, VMM_ROOT],
        &["-t", "proc", "proc", "/vmm/proc"],
        &["--bind", "/sys", "/vmm/sys"],
        &["--bind", "/dev", "/vmm/dev"],
        &["-t", "tmpfs", "tmpfs", "/vmm/tmp"],
        &["--bind", "/lib/vm", "/vmm/boot"],
    ];
    for args in mounts {
        let o = Command::new("mount")
            .args(args)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// One line a VM (its console or its QEMU) printed, and when it arrived.
struct Line {
    at: Instant,
    text: String,
}

/// A VM running in QEMU with one mdev; killed (SIGKILL) if dropped while running.
struct Vm {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    log: Vec<Line>,
    started: Instant,
}

impl Vm {
    fn start(name: &str, uuid: &str) -> Result<Vm, String> {
        vmm_ready()?;
        let started = Instant::now();
        let mut child = Command::new("chroot")
            .args([VMM_ROOT, QEMU])
            .args([
                "-machine",
                "virt,gic-version=3",
                "-accel",
                "kvm",
                "-cpu",
                "host",
            ])
            .args(["-smp", "1", "-m", "128M", "-nodefaults", "-no-reboot"])
            .args(["-display", "none", "-serial", "stdio"])
            .args(["-kernel", "/boot/Image", "-initrd", "/boot/initrd.gz"])
            .args(["-append", "console=ttyAMA0 panic=-1 quiet"])
            .arg("-device")
            .arg(format!("vfio-pci,sysfsdev=/sys/bus/mdev/devices/{uuid}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: cannot start QEMU: {e}"))?;
        let (tx, lines) = channel();
        let out: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().ok_or("no stdout")?),
            Box::new(child.stderr.take().ok_or("no stderr")?),
        ];
        for stream in out {
            let tx = tx.clone();
            let name = name.to_string();
            std::thread::spawn(move || {
                for text in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("[{name}] {text}");
                    let line = Line {
                        at: Instant::now(),
                        text,
                    };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Vm {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            log: Vec::new(),
            started,
        })
    }

    /// Waits for a line containing `pat`; fails on timeout or if the VM's output ends.
    fn wait_for(&mut self, pat: &str, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.text.contains(pat);
                    let at = line.at;
                    self.log.push(line);
                    if found {
                        return Ok(at);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {pat:?} within {timeout:?}", self.name))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{}: QEMU ended before {pat:?}", self.name))
                }
            }
        }
    }

    /// Boots until init runs; returns the boot time.
    fn boot(&mut self) -> Result<Duration, String> {
        let at = self.wait_for("vm-init: up", BOOT_TIMEOUT)?;
        Ok(at - self.started)
    }

    /// Lets the VM's init load the driver (it waits for this line on its console).
    fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(b"go\n")
            .map_err(|e| format!("{}: console: {e}", self.name))
    }

    /// Waits until the VM powered off and its QEMU exited successfully.
    fn finish(&mut self) -> Result<Report, String> {
        self.wait_for("vm-init: end", RUN_TIMEOUT)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) if s.success() => break,
                Ok(Some(s)) => return Err(format!("{}: QEMU exited with {s}", self.name)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => {
                    return Err(format!("{}: QEMU did not exit after power-off", self.name))
                }
                Err(e) => return Err(format!("{}: wait: {e}", self.name)),
            }
        }
        // The reader threads end with QEMU's output.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.log.push(line);
        }
        Report::parse(&self.name, &self.log)
    }

    /// Kills the VMM with SIGKILL (no clean shutdown) and reaps it.
    fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .and_then(|()| self.child.wait().map(drop))
            .map_err(|e| format!("{}: kill: {e}", self.name))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.kill();
        }
    }
}

/// What a VM's guest driver reported.
struct Report {
    pasid: u32,
    /// 4 KiB copies: microseconds from `CMD` to the MSI, and when the line arrived.
    copies_4k: Vec<(u64, Instant)>,
}

impl Report {
    /// Parses the driver's lines; fails unless every check passed and all were there.
    fn parse(name: &str, log: &[Line]) -> Result<Report, String> {
        let mut pasid = None;
        let mut copies_4k = Vec::new();
        let mut results = 0;
        let mut failures = Vec::new();
        let mut done = None;
        for line in log {
            // `pr_info` lines ("copy_engine_guest: ...") and the probe's `dev_info` line
            // ("copy_engine_guest 0000:00:01.0: copy engine with PASID N").
            if let Some(at) = line.text.find("copy engine with PASID ") {
                pasid = line.text[at + "copy engine with PASID ".len()..]
                    .trim()
                    .parse()
                    .ok();
                continue;
            }
            let Some(at) = line.text.find("copy_engine_guest: ") else {
                continue;
            };
            let msg = &line.text[at + "copy_engine_guest: ".len()..];
            let words: Vec<&str> = msg.split_whitespace().collect();
            match words.as_slice() {
                ["result", _, "ok"] => results += 1,
                ["result", check, "FAIL", ..] => {
                    results += 1;
                    failures.push(format!("{check}: {}", words[3..].join(" ")));
                }
                ["copy_us", "4096", us] => copies_4k.push((
                    us.parse().map_err(|_| format!("bad line {msg:?}"))?,
                    line.at,
                )),
                ["done", ..] => done = Some(msg.to_string()),
                _ => {}
            }
        }
        let done = done.ok_or_else(|| format!("{name}: no 'done' line from the guest driver"))?;
        if !failures.is_empty() {
            return Err(format!("{name}: {}", failures.join("; ")));
        }
        if results != DRIVER_CHECKS
            || !done.starts_with(&format!("done {DRIVER_CHECKS} passed, 0 failed"))
        {
            return Err(format!(
                "{name}: {results} checks reported, {DRIVER_CHECKS} expected ({done})"
            ));
        }
        let pasid = pasid.ok_or_else(|| format!("{name}: the driver did not report the PASID"))?;
        Ok(Report { pasid, copies_4k })
    }

    fn mean_us(&self) -> u64 {
        let n = self.copies_4k.len().max(1) as u64;
        self.copies_4k.iter().map(|(us, _)| us).sum::<u64>() / n
    }

    /// When the first and the last 4 KiB copy of this VM ended.
    fn window(&self) -> Option<(Instant, Instant)> {
        Some((self.copies_4k.first()?.1, self.copies_4k.last()?.1))
    }
}

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
    let parent = mc::find_parent()?;
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
    let parent = mc::find_parent()?;
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
