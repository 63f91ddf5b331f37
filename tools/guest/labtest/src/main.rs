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
//! 3. user-space tests registered in [`user_tests`].
//!
//! `labtest [FILTER]` runs only tests whose name contains FILTER (sources are still scanned).

mod kmsg;
mod results;
mod user_tests;

use results::{parse_labtest, Ktap, Outcome};
use std::process::Command;
use std::time::{Duration, Instant};

const MODULE_LIST: &str = "/lib/labtest/modules.list";
const MODULE_DIR: &str = "/lib/labtest";

struct Runner {
    filter: Option<String>,
    passed: u32,
    failed: u32,
}

impl Runner {
    fn report(&mut self, o: &Outcome) {
        if let Some(f) = &self.filter {
            if !o.name.contains(f.as_str()) {
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
        self.report(&Outcome { name: name.to_string(), passed: false, detail });
    }
}

fn boot_results(r: &mut Runner, log: &[String]) {
    let mut ktap = Ktap::default();
    for line in log {
        ktap.feed(line);
        if let Some(rest) = line.strip_prefix("arm-lpae io-pgtable: selftest: completed with ") {
            // "<pass> PASS <fail> FAIL"
            let fails = rest.split_whitespace().nth(2).and_then(|n| n.parse::<u32>().ok());
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
    for module in list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = format!("module:{module}");
        kmsg.drain();
        let path = format!("{MODULE_DIR}/{module}.ko");
        let out = Command::new("insmod").arg(&path).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                r.fail(&name, format!("insmod failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
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

fn main() {
    let filter = std::env::args().nth(1).filter(|f| !f.is_empty());
    let mut r = Runner { filter, passed: 0, failed: 0 };
    match kmsg::Kmsg::open() {
        Ok(mut kmsg) => {
            let boot = kmsg.drain();
            boot_results(&mut r, &boot);
            module_results(&mut r, &mut kmsg);
        }
        Err(e) => r.fail("labtest:kmsg", format!("cannot open /dev/kmsg: {e}")),
    }
    for t in user_tests::ALL {
        if r.filter.as_deref().is_some_and(|f| !t.name.contains(f)) {
            continue;
        }
        let o = match (t.run)() {
            Ok(()) => Outcome { name: t.name.into(), passed: true, detail: String::new() },
            Err(e) => Outcome { name: t.name.into(), passed: false, detail: e },
        };
        r.report(&o);
    }
    println!("{} passed, {} failed", r.passed, r.failed);
    std::process::exit(i32::from(r.failed > 0));
}
