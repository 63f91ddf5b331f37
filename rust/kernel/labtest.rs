// SPDX-License-Identifier: GPL-2.0

//! Test reporting for the lab's guest runner (`tools/guest/labtest`).
//!
//! A test module runs its cases when it loads and reports each as one kernel log line:
//! `labtest: <suite>: ok <case>` or `labtest: <suite>: not ok <case>: <why>`, then
//! `labtest: <suite>: end`. The runner turns these into `PASS`/`FAIL` lines and treats a suite
//! without its `end` line as failed, so a module that crashes half-way cannot look green.
//!
//! # Examples
//!
//! ```
//! use kernel::{labtest::Suite, labtest_ensure};
//!
//! let mut suite = Suite::new("example");
//! suite.run("addition", |case| {
//!     labtest_ensure!(case, 1 + 1 == 2, "arithmetic is broken");
//!     Ok(())
//! });
//! suite.finish();
//! ```

use core::fmt;

/// A case failed; its `not ok` line has been printed already.
#[derive(Debug)]
pub struct Failed(());

/// One running test case.
pub struct Case<'a> {
    suite: &'a str,
    name: &'a str,
}

impl Case<'_> {
    /// Reports this case as failed with a reason; return the result from the case.
    pub fn fail(&self, why: fmt::Arguments<'_>) -> Failed {
        crate::pr_info!("labtest: {}: not ok {}: {}\n", self.suite, self.name, why);
        Failed(())
    }

    /// Fails the case unless `result` is `Ok`, naming the operation that returned the error.
    pub fn check<T>(&self, what: &str, result: crate::error::Result<T>) -> Result<T, Failed> {
        result.map_err(|e| self.fail(format_args!("{what} failed: {e:?}")))
    }
}

/// A named group of cases.
pub struct Suite {
    name: &'static str,
    passed: u32,
    failed: u32,
}

impl Suite {
    /// Starts a suite.
    pub fn new(name: &'static str) -> Self {
        Self { name, passed: 0, failed: 0 }
    }

    /// Runs one case and reports it.
    pub fn run(&mut self, case: &str, f: impl FnOnce(&Case<'_>) -> Result<(), Failed>) {
        let c = Case { suite: self.name, name: case };
        match f(&c) {
            Ok(()) => {
                self.passed += 1;
                crate::pr_info!("labtest: {}: ok {}\n", self.name, case);
            }
            Err(Failed(())) => self.failed += 1,
        }
    }

    /// Number of failed cases so far.
    pub fn failures(&self) -> u32 {
        self.failed
    }

    /// Number of cases run so far (passed or failed): lets a suite whose cases run somewhere
    /// else (a PCI probe) check that they did run.
    pub fn cases_run(&self) -> u32 {
        self.passed + self.failed
    }

    /// Prints the end marker (with the counts as a comment for humans).
    pub fn finish(self) {
        crate::pr_info!(
            "labtest: {}: summary {} passed, {} failed\n",
            self.name,
            self.passed,
            self.failed
        );
        crate::pr_info!("labtest: {}: end\n", self.name);
    }
}

/// Fails the current case with a formatted reason unless the condition holds.
#[macro_export]
macro_rules! labtest_ensure {
    ($case:expr, $cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err($case.fail(format_args!($($why)+)));
        }
    };
}
