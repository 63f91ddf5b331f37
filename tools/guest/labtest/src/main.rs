// SPDX-License-Identifier: GPL-2.0
//! `labtest`: the guest-side test runner.
//!
//! Prints one line per test (`PASS <name>`, `FAIL <name>: <why>`, `SKIP <name>: <reason>`) and
//! closes with `N passed, N failed, N skipped`. Sources of results:
//! 1. boot-time in-tree tests: KUnit suites (KTAP in the kernel log; a suite-level `not ok` is
//!    a failure, a `# SKIP` without a reason too) and the io-pgtable-arm selftest;
//! 2. the project's kernel test modules listed in `/lib/labtest/modules.list` (a missing list
//!    is a failure): each is loaded, its `labtest:` lines are collected until its `end` line,
//!    and it is unloaded again; a module that fails to load, or ends without an `end` line, is
//!    a failed test;
//! 3. user-space tests registered in [`user_tests`];
//! 4. on the release kernel only (`/lib/labtest/flavour`, written by `guest.sh`), the
//!    benchmarks in [`bench`] and the modules marked `bench` in `modules.list` (there, for the
//!    flavours it names; and [`bench::DRIVER`] and [`bench::PASID`], which compare the SMMUv3
//!    drivers, on every non-debug flavour): they print `BENCH` lines; one that produced its
//!    figures prints `BENCH-DONE` and is not counted as a passed test, one that could not
//!    measure is a failure.
//!
//! A full run then checks every result name against the platform's expected results
//! ([`expect`], `lab.platform=` on the kernel command line): a suite that did not run, ran
//! fewer or more cases than expected, or a result nobody expects fails the run. Kernel log
//! records lost to a wrapped log buffer fail it too.
//!
//! `labtest [FILTER]` runs only tests whose name contains FILTER (sources are still scanned);
//! a filtered run does not check the expected results.

mod bench;
mod expect;
mod kmsg;
mod results;
mod user_tests;
mod vm;

use results::{parse_io_pgtable, parse_labtest, Ktap, Outcome, Status};
use std::process::Command;
use std::time::{Duration, Instant};

const MODULE_LIST: &str = "/lib/labtest/modules.list";
const MODULE_DIR: &str = "/lib/labtest";
/// The kernel flavour the initramfs was built for ([`expect::FLAVOURS`]).
const FLAVOUR: &str = "/lib/labtest/flavour";
/// The expected results, one file per platform (`tools/lab/expected/`).
const EXPECTED_DIR: &str = "/lib/labtest/expected";

#[derive(Default)]
struct Runner {
    filter: Option<String>,
    passed: u32,
    failed: u32,
    skipped: u32,
    /// Benchmarks that produced their figures (not counted as passed tests).
    benches: u32,
    /// Every test and benchmark result of the run, for the expected-results check.
    seen: Vec<String>,
}

impl Runner {
    fn selected(&self, name: &str) -> bool {
        // kmemleak:clean judges everything the run did, so a filtered run reports it too.
        self.filter
            .as_deref()
            .is_none_or(|f| name.contains(f) || name == KMEMLEAK_TEST)
    }

    /// Prints and counts one result.
    fn print(&mut self, o: &Outcome) {
        let (word, counter) = match o.status {
            Status::Passed => ("PASS", &mut self.passed),
            Status::Failed => ("FAIL", &mut self.failed),
            Status::Skipped => ("SKIP", &mut self.skipped),
        };
        *counter += 1;
        if o.detail.is_empty() {
            println!("{word} {}", o.name);
        } else {
            println!("{word} {}: {}", o.name, o.detail);
        }
    }

    /// A test case's result.
    fn report(&mut self, o: &Outcome) {
        if self.selected(&o.name) {
            self.seen.push(o.name.clone());
            self.print(o);
        }
    }

    /// A benchmark's result: a failure (no figures) fails the run, figures are not a pass.
    fn bench(&mut self, o: &Outcome) {
        if !self.selected(&o.name) {
            return;
        }
        self.seen.push(o.name.clone());
        if o.status == Status::Passed {
            self.benches += 1;
            println!("BENCH-DONE {}", o.name);
        } else {
            self.print(o);
        }
    }

    /// A result that is not a test case (a suite-level verdict, a module that did not load, a
    /// harness problem): counted, never matched against the expected results.
    fn harness(&mut self, o: &Outcome) {
        if self.selected(&o.name) || o.status == Status::Failed {
            self.print(o);
        }
    }

    fn fail(&mut self, name: &str, detail: String) {
        self.harness(&Outcome::new(name, Status::Failed, detail));
    }
}

fn boot_results(r: &mut Runner, log: &[String]) {
    let mut ktap = Ktap::default();
    for line in log {
        ktap.feed(line);
        if let Some(o) = parse_io_pgtable(line) {
            r.report(&o);
        }
        bench::boot_line(line);
    }
    for o in &ktap.outcomes {
        r.report(o);
    }
    for o in &ktap.suite_outcomes {
        r.harness(o);
    }
}

/// One line of the guest's `modules.list` (written by `guest.sh`):
/// `<module> [bench] [platform=<name>]`.
struct ListedModule<'a> {
    name: &'a str,
    bench: bool,
    /// The only platform (`lab.platform=`) the module runs on, if it names one.
    platform: Option<&'a str>,
}

fn parse_module_list(text: &str) -> Vec<ListedModule<'_>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next().unwrap_or_default();
            let rest: Vec<&str> = w.collect();
            ListedModule {
                name,
                bench: rest.contains(&"bench"),
                platform: rest.iter().find_map(|x| x.strip_prefix("platform=")),
            }
        })
        .collect()
}

fn module_results(r: &mut Runner, kmsg: &mut kmsg::Kmsg) {
    let list = match std::fs::read_to_string(MODULE_LIST) {
        Ok(l) => l,
        Err(e) => {
            r.fail(
                "labtest:modules.list",
                format!("{MODULE_LIST}: {e}: no test module can run"),
            );
            return;
        }
    };
    let platform = cmdline_arg("platform");
    for m in parse_module_list(&list) {
        let module = m.name;
        let name = format!("module:{module}");
        if let Some(want) = m.platform {
            if platform.as_deref() != Some(want) {
                // Not a skip: the module belongs to another machine, and this platform's
                // expected results do not list it.
                println!("labtest: {name} runs on platform {want} only, not here");
                continue;
            }
        }
        kmsg.drain();
        let path = format!("{MODULE_DIR}/{module}.ko");
        let out = Command::new("insmod").arg(&path).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                r.fail(
                    &name,
                    format!(
                        "insmod failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                );
                continue;
            }
            Err(e) => {
                r.fail(&name, format!("cannot run insmod: {e}"));
                continue;
            }
        }
        // Test modules run their cases in init, but allow for deferred work finishing later.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ended = false;
        while !ended && Instant::now() < deadline {
            for line in kmsg.drain() {
                // Benchmark figures are passed through for the log reader.
                if let Some(at) = line.find("labtest-bench: ") {
                    bench::figure(&line[at + "labtest-bench: ".len()..]);
                }
                match parse_labtest(&line) {
                    Some(Some(o)) if m.bench => r.bench(&o),
                    Some(Some(o)) => r.report(&o),
                    Some(None) => ended = true,
                    None => {}
                }
            }
            if !ended {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if !ended {
            r.fail(&name, "no 'end' line from the module within 60 s".into());
        }
        let rm = Command::new("rmmod").arg(module).output();
        if !matches!(rm, Ok(ref o) if o.status.success()) {
            r.fail(&format!("{name}:unload"), "rmmod failed".into());
        }
    }
}

/// Fails the run if kernel log records were overwritten before labtest read them (since the
/// last call).
fn kmsg_lost(r: &mut Runner, kmsg: &mut kmsg::Kmsg, when: &str) {
    let lost = std::mem::take(&mut kmsg.gaps.lost);
    if lost > 0 {
        r.fail(
            "labtest:kmsg",
            format!(
                "{lost} kernel log records were overwritten before labtest read them ({when}):                  results in them are lost (raise log_buf_len= in tools/lab/run.sh)"
            ),
        );
    }
}

/// `lab.<key>=` from the kernel command line.
fn cmdline_arg(key: &str) -> Option<String> {
    let c = std::fs::read_to_string("/proc/cmdline").ok()?;
    let want = format!("lab.{key}=");
    c.split_whitespace()
        .find_map(|w| w.strip_prefix(want.as_str()).map(str::to_string))
}

/// Compares everything the run produced with the platform's expected results.
fn expected_results(r: &mut Runner, flavour: &str) {
    const NAME: &str = "labtest:expected";
    if let Some(f) = &r.filter {
        println!("labtest: expected results not checked: filtered run ({f:?})");
        return;
    }
    let Some(platform) = cmdline_arg("platform") else {
        r.fail(NAME, "no lab.platform= on the kernel command line".into());
        return;
    };
    let path = format!("{EXPECTED_DIR}/{platform}.list");
    let shown = format!("tools/lab/expected/{platform}.list");
    let entries = match std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))
        .and_then(|t| expect::parse(&t, flavour).map_err(|e| format!("{shown}: {e}")))
    {
        Ok(e) => e,
        Err(e) => {
            r.fail(NAME, e);
            return;
        }
    };
    let problems = expect::check(&entries, &r.seen, &shown);
    if problems.is_empty() {
        println!(
            "labtest: expected results: all {} entries of {shown} ({flavour}) matched",
            entries.len()
        );
    }
    for p in problems {
        r.fail(NAME, p);
    }
}

const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";
const KMEMLEAK_TEST: &str = "kmemleak:clean";

/// On a kernel with kmemleak (the debug flavour): forget what boot leaked, so that the final
/// check only sees leaks of what the tests did.
fn kmemleak_clear() -> bool {
    std::fs::write(KMEMLEAK, "clear").is_ok()
}

/// Scans for leaks (objects must be 5 s old before kmemleak reports them) and fails the run if
/// any object allocated since [`kmemleak_clear`] is unreferenced.
fn kmemleak_check(r: &mut Runner) {
    std::thread::sleep(Duration::from_secs(6));
    for _ in 0..2 {
        if let Err(e) = std::fs::write(KMEMLEAK, "scan") {
            r.report(&Outcome::new(
                KMEMLEAK_TEST,
                Status::Failed,
                format!("cannot trigger a scan: {e}"),
            ));
            return;
        }
    }
    let report = std::fs::read_to_string(KMEMLEAK).unwrap_or_default();
    let leaks = report.matches("unreferenced object").count();
    if leaks == 0 {
        r.report(&Outcome::new(KMEMLEAK_TEST, Status::Passed, ""));
    } else {
        print!("{report}");
        r.report(&Outcome::new(
            KMEMLEAK_TEST,
            Status::Failed,
            format!("{leaks} unreferenced objects (report above)"),
        ));
    }
}

fn main() {
    let filter = std::env::args().nth(1).filter(|f| !f.is_empty());
    let mut r = Runner {
        filter,
        ..Runner::default()
    };
    let kmemleak = kmemleak_clear();
    let mut kmsg = match kmsg::Kmsg::open() {
        Ok(mut kmsg) => {
            let boot = kmsg.drain();
            kmsg_lost(&mut r, &mut kmsg, "boot");
            boot_results(&mut r, &boot);
            module_results(&mut r, &mut kmsg);
            Some(kmsg)
        }
        Err(e) => {
            r.fail("labtest:kmsg", format!("cannot open /dev/kmsg: {e}"));
            None
        }
    };
    let flavour = std::fs::read_to_string(FLAVOUR).unwrap_or_default();
    let flavour = flavour.trim();
    let benches = if flavour == "release" {
        bench::ALL
    } else {
        println!("labtest: benchmarks not run (release kernel only; flavour {flavour:?})");
        &[]
    };
    // VMs inside the guest need `run.sh --vm` (EL2, the VMM disk): without it they run only
    // when asked for by name (and then fail saying what is missing). The expected results
    // list them for the runs that attach the disk (release test runs).
    let vms = if mdev_client::vm::vmm_attached()
        || r.filter.as_deref().is_some_and(|f| f.starts_with("vm:"))
    {
        vm::ALL
    } else {
        println!("labtest: vm:* tests not run (no VMM disk: run.sh --vm)");
        &[]
    };
    // The benchmarks that compare the SMMUv3 drivers (probe time, commands per piece) run on
    // every non-debug flavour: the C driver's kernel and the Rust driver's.
    let driver_benches = if flavour.ends_with("debug") {
        &[][..]
    } else {
        bench::DRIVER
    };
    // The PASID platforms add the tests of PASID mode and its benchmark.
    let (pasid_tests, pasid_benches) = if mdev_client::pasid_platform() {
        (
            user_tests::PASID,
            if driver_benches.is_empty() {
                &[][..]
            } else {
                bench::PASID
            },
        )
    } else {
        (&[][..], &[][..])
    };
    // The mdev sample the `mdev:*` tests drive (kernel command line `lab.mdev_module=`).
    let mdev_sample = mdev_client::mdev_module();
    for (t, is_bench) in user_tests::ALL
        .iter()
        .chain(pasid_tests)
        .chain(vms)
        .map(|t| (t, false))
        .chain(
            benches
                .iter()
                .chain(pasid_benches)
                .chain(driver_benches)
                .map(|t| (t, true)),
        )
    {
        if !r.selected(t.name) {
            continue;
        }
        let full_only = user_tests::FULL_SAMPLE_ONLY
            .iter()
            .find(|(n, _)| *n == t.name);
        if let (Some((_, why)), false) = (full_only, mdev_sample == "edu_mdev") {
            r.report(&Outcome::new(
                t.name,
                Status::Skipped,
                format!("{mdev_sample}: {why}"),
            ));
            continue;
        }
        let o = match (t.run)() {
            Ok(()) => Outcome::new(t.name, Status::Passed, ""),
            Err(e) => match e.strip_prefix(user_tests::SKIP_MARK) {
                Some(reason) => Outcome::new(t.name, Status::Skipped, reason),
                None => Outcome::new(t.name, Status::Failed, e),
            },
        };
        if is_bench {
            r.bench(&o);
        } else {
            r.report(&o);
        }
    }
    if kmemleak {
        kmemleak_check(&mut r);
    }
    if let Some(k) = kmsg.as_mut() {
        k.drain();
        kmsg_lost(&mut r, k, "during the modules and tests");
    }
    expected_results(&mut r, flavour);
    println!(
        "labtest: benchmarks: {} produced their figures (not counted as passed tests)",
        r.benches
    );
    println!(
        "{} passed, {} failed, {} skipped",
        r.passed, r.failed, r.skipped
    );
    std::process::exit(i32::from(r.failed > 0));
}
