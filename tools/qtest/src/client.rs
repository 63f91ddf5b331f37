// SPDX-License-Identifier: GPL-2.0
//! The qtest protocol client: spawns QEMU and exchanges one command line for one answer line.
//!
//! Protocol (QEMU `system/qtest.c`): the client sends `readl 0x...\n`; QEMU answers `OK 0x...`,
//! `OK` or `FAIL <reason>`. Interrupt lines intercepted with `irq_intercept_in` are reported
//! asynchronously as `IRQ raise <n>` / `IRQ lower <n>` lines, interleaved before answers.

use super::base64;
use super::error::{Error, Result};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bound on every wait for a QEMU answer unless [`QemuConfig::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest memory chunk moved by one `b64read`/`b64write` command.
const CHUNK: usize = 64 * 1024;
/// How much of QEMU's stderr/stdout is kept (the tail).
const LOG_CAP: usize = 64 * 1024;

/// Firmware that parks the vCPU: `wfi; b .-4`. Without it the vCPU executes from an empty
/// flash at 100% host CPU; with it QEMU idles (measured: 99% vs 1% of a core).
const IDLE_FIRMWARE: [u8; 8] = [0x7f, 0x20, 0x03, 0xd5, 0xff, 0xff, 0xff, 0x17];

/// Locates the lab's `qemu-system-aarch64` (built with the project's patches by
/// `tools/qemu/build.sh`): `$LAB_QEMU` if set (the lab scripts set it), else
/// `$LAB_CACHE/qemu/install/bin/` with `LAB_CACHE` defaulting to `~/.cache/pasid-mdev-lab`, as
/// in `tools/lab/env.sh`.
pub fn qemu_binary() -> Option<PathBuf> {
    let p = match std::env::var_os("LAB_QEMU") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = match std::env::var_os("LAB_CACHE") {
                Some(c) => PathBuf::from(c),
                None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/pasid-mdev-lab"),
            };
            cache.join("qemu/install/bin/qemu-system-aarch64")
        }
    };
    p.is_file().then_some(p)
}

/// The environment variable that turns a missing QEMU from a failure into a skip.
pub const NO_QEMU_ENV: &str = "LAB_NO_QEMU";
/// Start of the line [`require_qemu`] prints for a skipped test (`tools/lab/test.sh` counts
/// these lines as skipped tests and takes them out of cargo's passes).
pub const SKIP_MARKER: &str = "LAB-SKIP";

/// The one place a host test that needs QEMU finds it (through [`qemu_binary`]) or learns it
/// cannot run. With QEMU: its path. Without: a panic that says what is missing, so the test
/// fails, unless `LAB_NO_QEMU=1` is set; then it prints `LAB-SKIP <test> (<file:line>): <why>`
/// once per test on the real stdout (past cargo's capture, which would hide the line of a
/// passing test) and returns `None`: the caller returns at once and cargo counts a pass,
/// which `tools/lab/test.sh` turns back into a skip from the marker. Call it at the top of
/// each test, before any shared set-up, so that every skipped test prints its own marker.
#[track_caller]
pub fn require_qemu() -> Option<PathBuf> {
    if let Some(p) = qemu_binary() {
        return Some(p);
    }
    let at = std::panic::Location::caller();
    let why = match std::env::var_os("LAB_QEMU") {
        Some(p) => format!("LAB_QEMU={} is not a file", PathBuf::from(p).display()),
        None => "the lab's QEMU is not built (no LAB_QEMU, nothing in the lab cache)".to_string(),
    };
    if std::env::var_os(NO_QEMU_ENV).is_none_or(|v| v != "1") {
        panic!(
            "{why}: this test needs QEMU (build it with tools/lab/setup.sh, or set \
             {NO_QEMU_ENV}=1 to report the QEMU tests as skipped)"
        );
    }
    static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed thread)")
        .to_string();
    let mut done = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if !done.contains(&test) {
        // A leading newline: libtest may have printed "test <name> ... " without one.
        let _ = writeln!(
            std::io::stdout().lock(),
            "\n{SKIP_MARKER} {test} ({}:{}): {why}, {NO_QEMU_ENV}=1",
            at.file(),
            at.line()
        );
        done.push(test);
    }
    None
}

/// How to start QEMU. `Default` gives the project's machine:
/// `-machine virt,iommu=smmuv3,gic-version=3 -cpu max -m 256M -accel tcg -device edu`.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// QEMU binary; `None` means [`qemu_binary`].
    pub binary: Option<PathBuf>,
    /// `-machine` argument.
    pub machine: String,
    /// `-cpu` argument.
    pub cpu: String,
    /// Guest RAM in MiB (`-m`).
    pub memory_mb: u64,
    /// One `-device` per entry (default: `["edu"]`).
    pub devices: Vec<String>,
    /// Further raw arguments appended last.
    pub extra_args: Vec<String>,
    /// Bound on QEMU start-up and on every answer.
    pub timeout: Duration,
    /// Load a `wfi` loop as `-bios` so the idle vCPU does not burn a host core.
    pub idle_firmware: bool,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            binary: None,
            machine: "virt,iommu=smmuv3,gic-version=3".into(),
            cpu: "max".into(),
            memory_mb: 256,
            devices: vec!["edu".into()],
            extra_args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            idle_firmware: true,
        }
    }
}

impl QemuConfig {
    /// Sets the guest RAM size in MiB.
    pub fn memory_mb(mut self, mb: u64) -> Self {
        self.memory_mb = mb;
        self
    }
    /// Replaces the device list (each entry is one `-device` argument).
    pub fn devices<I: IntoIterator<Item = S>, S: Into<String>>(mut self, devices: I) -> Self {
        self.devices = devices.into_iter().map(Into::into).collect();
        self
    }
    /// Appends one `-device` argument.
    pub fn device(mut self, device: &str) -> Self {
        self.devices.push(device.into());
        self
    }
    /// Appends `,option` to the `-machine` argument (e.g. `"highmem=off"`).
    pub fn machine_option(mut self, option: &str) -> Self {
        self.machine.push(',');
        self.machine.push_str(option);
        self
    }
    /// Appends a raw command-line argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.into());
        self
    }
    /// Sets the answer timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[derive(Default, Clone, Copy)]
struct IrqLine {
    level: bool,
    raises: u64,
}

struct Inner {
    child: Child,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    timeout: Duration,
    /// Set once the connection is out of sync or gone: every later command fails with it.
    broken: Option<String>,
    /// First error swallowed by an infallible trait method (`DmaMemory`, `Mmio`).
    deferred: Option<Error>,
    irqs: HashMap<u32, IrqLine>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
    dir: PathBuf,
}

/// A running QEMU under qtest control. Cheap to clone: clones share one QEMU, which is killed
/// when the last clone is dropped. Methods take `&self` and serialise on an internal mutex.
#[derive(Clone)]
pub struct Qtest {
    inner: Arc<Mutex<Inner>>,
    pid: u32,
}

fn lock_buf(buf: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    buf.lock().unwrap_or_else(|e| e.into_inner())
}

fn collect<R: Read + Send + 'static>(mut src: R, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = src.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let mut b = lock_buf(&buf);
            b.extend_from_slice(&chunk[..n]);
            if b.len() > LOG_CAP {
                let cut = b.len() - LOG_CAP;
                b.drain(..cut);
            }
        }
    })
}

fn tail(buf: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&lock_buf(buf)).into_owned()
}

fn unique_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "qtest-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Inner {
    /// Describes why QEMU went away, waiting briefly for it to finish exiting.
    fn exited(&mut self) -> Error {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => break "running".to_string(),
                Err(e) => break format!("unknown: {e}"),
            }
        };
        // Give the stderr collector a moment to drain the pipe of an exited process.
        std::thread::sleep(Duration::from_millis(20));
        Error::Exited {
            status,
            stderr: tail(&self.stderr),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        if self.broken.is_none() {
            self.broken = Some(e.to_string());
        }
        e
    }

    fn handle_irq(&mut self, line: &str) -> bool {
        let mut words = line.split_whitespace();
        if words.next() != Some("IRQ") {
            return false;
        }
        let raise = match words.next() {
            Some("raise") => true,
            Some("lower") => false,
            _ => return false,
        };
        let Some(n) = words.next().and_then(|w| w.parse::<u32>().ok()) else {
            return false;
        };
        let irq = self.irqs.entry(n).or_default();
        irq.level = raise;
        if raise {
            irq.raises += 1;
        }
        true
    }

    fn command(&mut self, cmd: &str) -> Result<String> {
        if let Some(b) = &self.broken {
            return Err(Error::Broken(b.clone()));
        }
        let mut line = String::with_capacity(cmd.len() + 1);
        line.push_str(cmd);
        line.push('\n');
        if let Err(e) = self.writer.write_all(line.as_bytes()) {
            let err = match e.kind() {
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => self.exited(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout {
                    command: short(cmd),
                    after: self.timeout,
                },
                _ => Error::Io {
                    command: short(cmd),
                    err: e.to_string(),
                },
            };
            return Err(self.fail(err));
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let e = Error::Timeout {
                    command: short(cmd),
                    after: self.timeout,
                };
                return Err(self.fail(e));
            }
            if let Err(e) = self.reader.get_ref().set_read_timeout(Some(left)) {
                let e = Error::Io {
                    command: short(cmd),
                    err: e.to_string(),
                };
                return Err(self.fail(e));
            }
            let mut answer = String::new();
            match self.reader.read_line(&mut answer) {
                Ok(0) => {
                    let e = self.exited();
                    return Err(self.fail(e));
                }
                Ok(_) if !answer.ends_with('\n') => {
                    let e = self.exited();
                    return Err(self.fail(e));
                }
                Ok(_) => {
                    let answer = answer.trim_end();
                    if self.handle_irq(answer) {
                        continue;
                    }
                    if answer == "OK" {
                        return Ok(String::new());
                    }
                    if let Some(rest) = answer.strip_prefix("OK ") {
                        return Ok(rest.to_string());
                    }
                    if answer.starts_with("FAIL") {
                        // The protocol is still in step: the next command may succeed.
                        return Err(Error::Failed {
                            command: short(cmd),
                            reply: answer.into(),
                        });
                    }
                    let e = Error::Protocol {
                        command: short(cmd),
                        reply: short(answer),
                    };
                    return Err(self.fail(e));
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let e = match self.child.try_wait() {
                        Ok(Some(_)) => self.exited(),
                        _ => Error::Timeout {
                            command: short(cmd),
                            after: self.timeout,
                        },
                    };
                    return Err(self.fail(e));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::BrokenPipe
                            | ErrorKind::UnexpectedEof
                    ) =>
                {
                    let e = self.exited();
                    return Err(self.fail(e));
                }
                Err(e) => {
                    let e = Error::Io {
                        command: short(cmd),
                        err: e.to_string(),
                    };
                    return Err(self.fail(e));
                }
            }
        }
    }
}

/// Shortens long commands (b64write payloads) for error messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn parse_u64(cmd: &str, text: &str) -> Result<u64> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(digits, 16).map_err(|_| Error::Protocol {
        command: cmd.into(),
        reply: text.into(),
    })
}

impl Qtest {
    /// Starts QEMU as `config` says and connects to its qtest socket.
    pub fn spawn(config: &QemuConfig) -> Result<Self> {
        let binary = match &config.binary {
            Some(b) => b.clone(),
            None => qemu_binary().ok_or_else(|| {
                Error::NotFound(
                    "the lab's qemu-system-aarch64 is missing: run tools/qemu/build.sh".to_string(),
                )
            })?,
        };
        let dir = unique_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Spawn(format!("cannot create {}: {e}", dir.display())))?;
        match Self::spawn_in(config, binary, dir.clone()) {
            Ok(q) => Ok(q),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn spawn_in(config: &QemuConfig, binary: PathBuf, dir: PathBuf) -> Result<Self> {
        let sock = dir.join("qtest.sock");
        let listener = UnixListener::bind(&sock)
            .map_err(|e| Error::Spawn(format!("cannot listen on {}: {e}", sock.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Spawn(e.to_string()))?;

        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("-machine");
        push(&config.machine);
        push("-cpu");
        push(&config.cpu);
        push("-m");
        push(&format!("{}M", config.memory_mb));
        push("-display");
        push("none");
        push("-nodefaults");
        // Debian's QEMU has no qtest accelerator: TCG it is (the virtual clock follows
        // real time; `clock_step` does not exist).
        push("-accel");
        push("tcg");
        push("-qtest-log");
        push("none");
        for d in &config.devices {
            push("-device");
            push(d);
        }
        if config.idle_firmware {
            let fw = dir.join("idle.bin");
            std::fs::write(&fw, IDLE_FIRMWARE)
                .map_err(|e| Error::Spawn(format!("cannot write {}: {e}", fw.display())))?;
            args.push("-bios".into());
            args.push(fw.into_os_string());
        }
        args.push("-qtest".into());
        let mut q = OsString::from("unix:");
        q.push(sock.as_os_str());
        args.push(q);
        for a in &config.extra_args {
            args.push(a.into());
        }

        let mut child = Command::new(&binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Spawn(format!("{}: {e}", binary.display())))?;
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        if let Some(s) = child.stderr.take() {
            threads.push(collect(s, stderr.clone()));
        }
        if let Some(s) = child.stdout.take() {
            threads.push(collect(s, stdout.clone()));
        }

        // QEMU connects to our socket while it initialises the machine.
        let deadline = Instant::now() + config.timeout;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break Ok(s),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => break Err(Error::Spawn(format!("accept: {e}"))),
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    for t in threads.drain(..) {
                        let _ = t.join();
                    }
                    break Err(Error::Exited {
                        status: status.to_string(),
                        stderr: tail(&stderr),
                    });
                }
                Ok(None) => {}
                Err(e) => break Err(Error::Spawn(format!("wait: {e}"))),
            }
            if Instant::now() >= deadline {
                break Err(Error::Spawn(format!(
                    "QEMU did not connect to the qtest socket within {:?}; stderr: {}",
                    config.timeout,
                    tail(&stderr).trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                for t in threads.drain(..) {
                    let _ = t.join();
                }
                return Err(e);
            }
        };
        let setup = || -> std::io::Result<(UnixStream, UnixStream)> {
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(config.timeout))?;
            stream.set_write_timeout(Some(config.timeout))?;
            Ok((stream.try_clone()?, stream.try_clone()?))
        };
        let (r, w) = match setup() {
            Ok(rw) => rw,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Spawn(format!("socket set-up: {e}")));
            }
        };
        let inner = Inner {
            child,
            reader: BufReader::with_capacity(256 * 1024, r),
            writer: w,
            timeout: config.timeout,
            broken: None,
            deferred: None,
            irqs: HashMap::new(),
            stderr,
            stdout,
            threads,
            dir,
        };
        let qt = Qtest {
            inner: Arc::new(Mutex::new(inner)),
            pid,
        };
        let endian = qt.command("endianness")?;
        if endian != "little" {
            return Err(Error::Protocol {
                command: "endianness".into(),
                reply: endian,
            });
        }
        Ok(qt)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one raw qtest command and returns the text after `OK` (empty for a bare `OK`).
    pub fn command(&self, cmd: &str) -> Result<String> {
        self.lock().command(cmd)
    }

    fn read_n(&self, op: &str, addr: u64) -> Result<u64> {
        let cmd = format!("{op} {addr:#x}");
        let answer = self.command(&cmd)?;
        parse_u64(&cmd, &answer)
    }

    fn write_n(&self, op: &str, addr: u64, value: u64) -> Result<()> {
        self.command(&format!("{op} {addr:#x} {value:#x}"))
            .map(drop)
    }

    /// Reads one byte of guest physical address space.
    pub fn readb(&self, addr: u64) -> Result<u8> {
        self.read_n("readb", addr).map(|v| v as u8)
    }
    /// Reads a little-endian 16-bit value (one 16-bit access).
    pub fn readw(&self, addr: u64) -> Result<u16> {
        self.read_n("readw", addr).map(|v| v as u16)
    }
    /// Reads a little-endian 32-bit value (one 32-bit access).
    pub fn readl(&self, addr: u64) -> Result<u32> {
        self.read_n("readl", addr).map(|v| v as u32)
    }
    /// Reads a little-endian 64-bit value (one 64-bit access).
    pub fn readq(&self, addr: u64) -> Result<u64> {
        self.read_n("readq", addr)
    }
    /// Writes one byte.
    pub fn writeb(&self, addr: u64, value: u8) -> Result<()> {
        self.write_n("writeb", addr, value.into())
    }
    /// Writes a 16-bit value (one access).
    pub fn writew(&self, addr: u64, value: u16) -> Result<()> {
        self.write_n("writew", addr, value.into())
    }
    /// Writes a 32-bit value (one access).
    pub fn writel(&self, addr: u64, value: u32) -> Result<()> {
        self.write_n("writel", addr, value.into())
    }
    /// Writes a 64-bit value (one access).
    pub fn writeq(&self, addr: u64, value: u64) -> Result<()> {
        self.write_n("writeq", addr, value)
    }

    /// Reads `buf.len()` bytes at `addr` (`b64read`, 64 KiB per command).
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let mut a = addr;
        for chunk in buf.chunks_mut(CHUNK) {
            let cmd = format!("b64read {a:#x} {:#x}", chunk.len());
            let answer = self.command(&cmd)?;
            let data = base64::decode(&answer)
                .filter(|d| d.len() == chunk.len())
                .ok_or_else(|| Error::Protocol {
                    command: cmd.clone(),
                    reply: short(&answer),
                })?;
            chunk.copy_from_slice(&data);
            a = a.wrapping_add(chunk.len() as u64);
        }
        Ok(())
    }

    /// Writes `data` at `addr` (`b64write`, 64 KiB per command).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<()> {
        let mut a = addr;
        for chunk in data.chunks(CHUNK) {
            let cmd = format!(
                "b64write {a:#x} {:#x} {}",
                chunk.len(),
                base64::encode(chunk)
            );
            self.command(&cmd)?;
            a = a.wrapping_add(chunk.len() as u64);
        }
        Ok(())
    }

    /// Fills `len` bytes at `addr` with `value` (qtest `memset`, one command).
    pub fn memset(&self, addr: u64, len: u64, value: u8) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.command(&format!("memset {addr:#x} {len:#x} {value:#x}"))
            .map(drop)
    }

    /// Intercepts the GPIO inputs of the QOM object at `path`: from now on raising or lowering
    /// input `n` is reported to this client (see [`Qtest::irq_level`]) instead of reaching the
    /// device. Can be done once per QEMU.
    pub fn irq_intercept_in(&self, path: &str) -> Result<()> {
        self.command(&format!("irq_intercept_in {path}")).map(drop)
    }

    /// Intercepts the GPIO outputs of the QOM object at `path`.
    pub fn irq_intercept_out(&self, path: &str) -> Result<()> {
        self.command(&format!("irq_intercept_out {path}")).map(drop)
    }

    /// Collects pending asynchronous `IRQ` reports (a round trip) and returns whether
    /// intercepted line `n` is currently raised.
    pub fn irq_level(&self, n: u32) -> Result<bool> {
        let mut inner = self.lock();
        inner.command("endianness")?;
        Ok(inner.irqs.get(&n).is_some_and(|l| l.level))
    }

    /// Collects pending `IRQ` reports and returns how often line `n` was raised so far
    /// (QEMU pulses some lines: raise and lower in one go).
    pub fn irq_raise_count(&self, n: u32) -> Result<u64> {
        let mut inner = self.lock();
        inner.command("endianness")?;
        Ok(inner.irqs.get(&n).map_or(0, |l| l.raises))
    }

    /// Polls until line `n` has been raised more than `seen` times, or `timeout` passes.
    /// Returns the new raise count.
    pub fn wait_irq_raises(&self, n: u32, seen: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.irq_raise_count(n)?;
            if count > seen {
                return Ok(count);
            }
            if Instant::now() >= deadline {
                return Err(Error::Harness(format!(
                    "interrupt line {n} not raised within {timeout:?} (raised {count} times)"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The answer timeout.
    pub fn timeout(&self) -> Duration {
        self.lock().timeout
    }

    /// Changes the answer timeout.
    pub fn set_timeout(&self, timeout: Duration) {
        self.lock().timeout = timeout;
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What QEMU wrote to stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        tail(&self.lock().stderr)
    }

    /// What QEMU wrote to stdout so far (edu's `printf`s land here; block-buffered by QEMU).
    pub fn stdout(&self) -> String {
        tail(&self.lock().stdout)
    }

    /// Kills QEMU now; later commands fail with [`Error::Exited`].
    pub fn kill(&self) {
        let mut inner = self.lock();
        let _ = inner.child.kill();
        let _ = inner.child.wait();
    }

    /// Whether an earlier transport error made the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.lock().broken.is_some()
    }

    /// Reports the first error swallowed by an infallible trait method ([`DmaMemory`],
    /// [`Mmio`]) and clears it; also fails if the connection is broken.
    ///
    /// [`DmaMemory`]: smmuv3::dma::DmaMemory
    /// [`Mmio`]: smmuv3::dma::Mmio
    pub fn check(&self) -> Result<()> {
        let mut inner = self.lock();
        if let Some(e) = inner.deferred.take() {
            return Err(e);
        }
        match &inner.broken {
            Some(b) => Err(Error::Broken(b.clone())),
            None => Ok(()),
        }
    }

    /// Records an error that an infallible caller could not return (first one wins).
    pub(crate) fn defer(&self, e: Error) {
        let mut inner = self.lock();
        if inner.deferred.is_none() {
            inner.deferred = Some(e);
        }
    }
}
