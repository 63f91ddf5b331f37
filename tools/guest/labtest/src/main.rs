// SPDX-License-Identifier: GPL-2.0
//! `labtest`: the guest-side test runner.
//!
//! Prints one line per test (`PASS <name>` or `FAIL <name>: <why>`) and closes with
//! `N passed, N failed`. Sources of results:
//! 1. boot-time in-tree tests: KUnit suites (KTAP in the kernel log) and the io-pgtable-arm
//!    selftest;
//! 2. the project's kernel test modules listed in `/lib/labtest/modules.list`: each is loaded,
//!    its `labtest:` lines are collected until its `end` line, and it is unloaded again; a
//!    module that fails to load, or ends without an `end` line, is a failed test;
//! 3. user-space tests registered in [`user_tests`];
//! 4. on the release kernel only (`/lib/labtest/flavour`, written by `guest.sh`), the
//!    benchmarks in [`bench`], which print `BENCH` lines (like the `release`-only bench modules
//!    of `modules.list`).
//!
//! `labtest [FILTER]` runs only tests whose name contains FILTER (sources are still scanned).

mod bench;
mod kmsg;
mod results;
mod user_tests;
mod vm;

use results::{parse_labtest, Ktap, Outcome};
use std::process::Command;
use std::time::{Duration, Instant};

const MODULE_LIST: &str = "/lib/labtest/modules.list";
const MODULE_DIR: &str = "/lib/labtest";
/// The kernel flavour the initramfs was built for (`release` or `debug`).
const FLAVOUR: &str = "/lib/labtest/flavour";

struct Runner {
    filter: Option<String>,
    passed: u32,
    failed: u32,
}

impl Runner {
    fn report(&mut self, o: &Outcome) {
        // kmemleak:clean judges everything the run did, so a filtered run reports it too.
        if let Some(f) = &self.filter {
            if !o.name.contains(f.as_str()) && o.name != KMEMLEAK_TEST {
                return;
            }
        }
        if o.passed {
            self.passed += 1;
            println!("PASS {}", o.name);
        } else {
            self.failed += 1;
            if o.detail.is_empty() {
                println!("FAIL {}", o.name);
            } else {
                println!("FAIL {}: {}", o.name, o.detail);
            }
        }
    }

    fn fail(&mut self, name: &str, detail: String) {
        self.report(&Outcome {
            name: name.to_string(),
            passed: false,
            detail,
        });
    }
}

fn boot_results(r: &mut Runner, log: &[String]) {
    let mut ktap = Ktap::default();
    for line in log {
        ktap.feed(line);
        if let Some(rest) = line.strip_prefix("arm-lpae io-pgtable: selftest: completed with ") {
            // "<pass> PASS <fail> FAIL"
            let fails = rest
                .split_whitespace()
                .nth(2)
                .and_then(|n| n.parse::<u32>().ok());
            r.report(&Outcome {
                name: "selftest:io-pgtable-arm".into(),
                passed: fails == Some(0),
                detail: rest.to_string(),
            });
        }
    }
    for o in &ktap.outcomes {
        r.report(o);
    }
}

fn module_results(r: &mut Runner, kmsg: &mut kmsg::Kmsg) {
    let Ok(list) = std::fs::read_to_string(MODULE_LIST) else {
        return;
    };
    for module in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = format!("module:{module}");
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
                    println!("BENCH {}", &line[at + "labtest-bench: ".len()..]);
                }
                match parse_labtest(&line) {
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
            r.fail(KMEMLEAK_TEST, format!("cannot trigger a scan: {e}"));
            return;
        }
    }
    let report = std::fs::read_to_string(KMEMLEAK).unwrap_or_default();
    let leaks = report.matches("unreferenced object").count();
    if leaks == 0 {
        r.report(&Outcome {
            name: KMEMLEAK_TEST.into(),
            passed: true,
            detail: String::new(),
        });
    } else {
        print!("{report}");
        r.fail(
            KMEMLEAK_TEST,
            format!("{leaks} unreferenced objects (report above)"),
        );
    }
}

fn main() {
    let filter = std::env::args().nth(1).filter(|f| !f.is_empty());
    let mut r = Runner {
        filter,
        passed: 0,
        failed: 0,
    };
    let kmemleak = kmemleak_clear();
    match kmsg::Kmsg::open() {
        Ok(mut kmsg) => {
            let boot = kmsg.drain();
            boot_results(&mut r, &boot);
            module_results(&mut r, &mut kmsg);
        }
        Err(e) => r.fail("labtest:kmsg", format!("cannot open /dev/kmsg: {e}")),
    }
    let flavour = std::fs::read_to_string(FLAVOUR).unwrap_or_default();
    let benches = if flavour.trim() == "release" {
        bench::ALL
    } else {
        println!(
            "labtest: benchmarks skipped (release kernel only; flavour {:?})",
            flavour.trim()
        );
        &[]
    };
    // VMs inside the guest need `run.sh --vm` (EL2, the VMM disk): without it they run only
    // when asked for by name (and then fail saying what is missing).
    let vms = if mdev_client::vm::vmm_attached()
        || r.filter.as_deref().is_some_and(|f| f.starts_with("vm:"))
    {
        vm::ALL
    } else {
        println!("labtest: vm:* tests skipped (no VMM disk: run.sh --vm)");
        &[]
    };
    for t in user_tests::ALL.iter().chain(benches).chain(vms) {
        if r.filter.as_deref().is_some_and(|f| !t.name.contains(f)) {
            continue;
        }
        let o = match (t.run)() {
            Ok(()) => Outcome {
                name: t.name.into(),
                passed: true,
                detail: String::new(),
            },
            Err(e) => Outcome {
                name: t.name.into(),
                passed: false,
                detail: e,
            },
        };
        r.report(&o);
    }
    if kmemleak {
        kmemleak_check(&mut r);
    }
    println!("{} passed, {} failed", r.passed, r.failed);
    std::process::exit(i32::from(r.failed > 0));
}
