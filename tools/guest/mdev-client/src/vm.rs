// SPDX-License-Identifier: GPL-2.0
//! VMs given an mdev, inside the lab guest (docs/vm-guests.md): the VMM is Debian's arm64 QEMU
//! from the disk `run.sh --vm` attaches (`tools/lab/vmm.sh`), run in a chroot under KVM (the
//! lab guest boots at EL2), with the mdev as `-device vfio-pci,sysfsdev=...`. Each VM boots the
//! lab kernel with a small initramfs (`/lib/vm`, built by `guest.sh`) whose init waits for a
//! `go` line on its console, then loads `samples/copy-engine-guest`: its probe copies, checks
//! the bytes and the isolation, and logs `copy_engine_guest: ...` lines, parsed by [`Report`].
//! Every line a VM prints is relayed as `[name] ...`, so the lab's judge also sees a VM
//! kernel's oops or warning. Used by labtest's `vm:*` tests and `mdev-client vm`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const VMM_ROOT: &str = "/vmm";
const VMM_DISK: &str = "/dev/vda";
const QEMU: &str = "/usr/bin/qemu-system-aarch64";
/// Checks the guest driver logs per probe: 6 copies of 4 KiB, one of 16 KiB, 2 isolation.
pub const DRIVER_CHECKS: usize = 9;
/// Boot of a VM until its init runs (TCG running KVM: slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// From `go` until the VM powered off.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether the guest was booted with the VMM disk (`run.sh --vm`).
pub fn vmm_attached() -> bool {
    Path::new(VMM_DISK).exists()
}

/// Mounts the VMM disk at `/vmm` (once) with what QEMU needs inside the chroot: `/proc`,
/// `/sys` (the mdevs), `/dev` (kvm, vfio), a writable `/tmp`, and `/boot` (the VM's kernel
/// and initramfs).
pub fn vmm_ready() -> Result<(), String> {
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
pub struct Line {
    pub at: Instant,
    pub text: String,
}

/// A VM running in QEMU with one mdev; killed (SIGKILL) if dropped while running.
pub struct Vm {
    name: String,
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    log: Vec<Line>,
    started: Instant,
}

impl Vm {
    pub fn start(name: &str, uuid: &str) -> Result<Vm, String> {
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
    pub fn wait_for(&mut self, pat: &str, timeout: Duration) -> Result<Instant, String> {
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
    pub fn boot(&mut self) -> Result<Duration, String> {
        let at = self.wait_for("vm-init: up", BOOT_TIMEOUT)?;
        Ok(at - self.started)
    }

    /// Lets the VM's init load the driver (it waits for this line on its console).
    pub fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(b"go\n")
            .map_err(|e| format!("{}: console: {e}", self.name))
    }

    /// Waits until the VM powered off and its QEMU exited successfully.
    pub fn finish(&mut self) -> Result<Report, String> {
        if !self.log.iter().any(|l| l.text.contains("vm-init: end")) {
            self.wait_for("vm-init: end", RUN_TIMEOUT)?;
        }
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
    pub fn kill(&mut self) -> Result<(), String> {
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
pub struct Report {
    pub pasid: u32,
    /// 4 KiB copies: microseconds from `CMD` to the MSI, and when the line arrived.
    pub copies_4k: Vec<(u64, Instant)>,
}

impl Report {
    /// Parses the driver's lines; fails unless every check passed and all were there.
    pub fn parse(name: &str, log: &[Line]) -> Result<Report, String> {
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

    pub fn mean_us(&self) -> u64 {
        let n = self.copies_4k.len().max(1) as u64;
        self.copies_4k.iter().map(|(us, _)| us).sum::<u64>() / n
    }

    /// When the first and the last 4 KiB copy of this VM ended.
    pub fn window(&self) -> Option<(Instant, Instant)> {
        Some((self.copies_4k.first()?.1, self.copies_4k.last()?.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> Vec<Line> {
        lines
            .iter()
            .map(|t| Line {
                at: Instant::now(),
                text: t.to_string(),
            })
            .collect()
    }

    /// What a VM's console shows when every check passes (as seen in the lab).
    fn good() -> Vec<String> {
        let mut v = vec!["copy_engine_guest 0000:00:01.0: copy engine with PASID 3".to_string()];
        for _ in 0..6 {
            v.push("copy_engine_guest: copy_us 4096 210717".into());
            v.push("copy_engine_guest: result copy_4k ok".into());
        }
        v.push("copy_engine_guest: copy_us 16384 808368".into());
        v.push("copy_engine_guest: result copy_16k ok".into());
        v.push("copy_engine_guest: result isolation_source_outside_ram ok".into());
        v.push("copy_engine_guest: result isolation_destination_outside_ram ok".into());
        v.push("copy_engine_guest: done 9 passed, 0 failed (9 interrupts)".into());
        v
    }

    fn parse(lines: &[String]) -> Result<Report, String> {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        Report::parse("vm", &log(&refs))
    }

    #[test]
    fn a_full_clean_report_parses() {
        let r = parse(&good()).unwrap();
        assert_eq!(r.pasid, 3);
        assert_eq!(r.copies_4k.len(), 6);
        assert_eq!(r.mean_us(), 210717);
    }

    #[test]
    fn a_failed_check_fails_naming_it() {
        let mut v = good();
        v[15] = "copy_engine_guest: result isolation_source_outside_ram FAIL a source outside the VM's memory was not refused".into();
        v[17] = "copy_engine_guest: done 8 passed, 1 failed (9 interrupts)".into();
        let e = parse(&v).err().unwrap();
        assert!(
            e.contains("isolation_source_outside_ram: a source outside"),
            "{e}"
        );
    }

    #[test]
    fn missing_lines_fail() {
        // No done line (the VM died in the middle).
        let v = good();
        assert!(parse(&v[..v.len() - 1]).is_err());
        // A check missing although the driver says all passed.
        let mut v = good();
        v.remove(2);
        assert!(parse(&v).is_err());
        // No PASID line.
        assert!(parse(&good()[1..]).is_err());
    }
}
