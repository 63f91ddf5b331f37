// SPDX-License-Identifier: GPL-2.0
//! Turning kernel log lines into test results.
//!
//! Two producers are understood:
//! - the project's kernel test modules (`kernel::labtest` in the overlay) print
//!   `labtest: <suite>: ok <case>`, `labtest: <suite>: not ok <case>: <why>` and finally
//!   `labtest: <suite>: end`;
//! - KUnit prints KTAP: a suite starts with `# Subtest: <suite>` (indented one level), its
//!   cases are `ok N name` / `not ok N name` at the same indentation, with an optional
//!   `# SKIP reason` directive, and the suite closes with a top-level `ok N <suite>` or
//!   `not ok N <suite>`. A top-level `not ok` is a failure of its own (KUnit reports a suite
//!   whose init or exit failed that way even when every case passed); a `# SKIP` is a skip
//!   only with a stated reason.

/// What happened to one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    /// Did not run, for the reason in [`Outcome::detail`].
    Skipped,
}

/// One test outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Outcome {
    pub fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Parses one `labtest:` line; returns `None` for other lines, `Some(None)` for the end marker.
pub fn parse_labtest(line: &str) -> Option<Option<Outcome>> {
    // printk prefixes the line with the printing crate's name (`rust_kernel: ` for the kernel
    // crate's reporter), so the marker may stand anywhere.
    let at = line.find("labtest: ")?;
    let rest = &line[at + "labtest: ".len()..];
    let (suite, rest) = rest.split_once(": ")?;
    if rest == "end" {
        return Some(None);
    }
    let (status, case) = if let Some(c) = rest.strip_prefix("ok ") {
        (Status::Passed, c)
    } else if let Some(c) = rest.strip_prefix("not ok ") {
        (Status::Failed, c)
    } else {
        return None;
    };
    let (case, detail) = case.split_once(": ").unwrap_or((case, ""));
    Some(Some(Outcome::new(
        format!("{suite}:{case}"),
        status,
        detail,
    )))
}

/// The result of a `# SKIP` directive: skipped with its reason, or failed without one.
fn skip(name: String, reason: &str) -> Outcome {
    let reason = reason.trim();
    if reason.is_empty() {
        Outcome::new(name, Status::Failed, "skipped without a stated reason")
    } else {
        Outcome::new(name, Status::Skipped, reason)
    }
}

/// Splits `N name [# directive]` into the name and the directive (empty if none).
fn ktap_name(rest: &str) -> Option<(&str, &str)> {
    let (_, name) = rest.split_once(' ')?;
    Some(name.split_once(" # ").unwrap_or((name, "")))
}

/// Collects KUnit results (KTAP) from log lines: case outcomes in [`Ktap::outcomes`]
/// (`kunit:<suite>:<case>`), suite-level failures and skips in [`Ktap::suite_outcomes`]
/// (`kunit:<suite>`), which are not cases and so not counted against the expected results.
#[derive(Default)]
pub struct Ktap {
    /// The open suite and the indentation of its `# Subtest:` line (its cases' indentation).
    suite: Option<(String, usize)>,
    pub outcomes: Vec<Outcome>,
    pub suite_outcomes: Vec<Outcome>,
}

impl Ktap {
    pub fn feed(&mut self, line: &str) {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let t = line.trim();
        if let Some(s) = t.strip_prefix("# Subtest: ") {
            if indent > 0 {
                self.suite = Some((s.to_string(), indent));
            }
            return;
        }
        let (status, rest) = if let Some(r) = t.strip_prefix("ok ") {
            (Status::Passed, r)
        } else if let Some(r) = t.strip_prefix("not ok ") {
            (Status::Failed, r)
        } else {
            return;
        };
        let Some((name, directive)) = ktap_name(rest) else {
            return;
        };
        if indent == 0 {
            // The top-level line of a suite: its own verdict.
            self.suite = None;
            let full = format!("kunit:{name}");
            if let Some(reason) = directive.strip_prefix("SKIP") {
                self.suite_outcomes.push(skip(full, reason));
            } else if status == Status::Failed {
                self.suite_outcomes.push(Outcome::new(
                    full,
                    Status::Failed,
                    "KUnit reported the suite 'not ok'",
                ));
            }
            return;
        }
        // Cases at the suite's own indentation; deeper lines are parameters of a case.
        let Some((suite, at)) = &self.suite else {
            return;
        };
        if indent != *at {
            return;
        }
        let full = format!("kunit:{suite}:{name}");
        self.outcomes.push(match directive.strip_prefix("SKIP") {
            Some(reason) => skip(full, reason),
            None => Outcome::new(full, status, ""),
        });
    }
}

/// Parses the io-pgtable-arm boot selftest's closing line
/// (`arm-lpae io-pgtable: selftest: completed with <pass> PASS <fail> FAIL`).
pub fn parse_io_pgtable(line: &str) -> Option<Outcome> {
    let rest = line.strip_prefix("arm-lpae io-pgtable: selftest: completed with ")?;
    let w: Vec<&str> = rest.split_whitespace().collect();
    let passed =
        matches!(w.as_slice(), [p, "PASS", "0", "FAIL"] if p.parse::<u32>().is_ok_and(|p| p > 0));
    let status = if passed {
        Status::Passed
    } else {
        Status::Failed
    };
    Some(Outcome::new("selftest:io-pgtable-arm", status, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labtest_lines() {
        let ok = parse_labtest("labtest: xarray: ok alloc_limit")
            .unwrap()
            .unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.status),
            ("xarray:alloc_limit", Status::Passed)
        );
        let bad = parse_labtest("labtest: xarray: not ok erase: got 3")
            .unwrap()
            .unwrap();
        assert_eq!((bad.status, bad.detail.as_str()), (Status::Failed, "got 3"));
        assert_eq!(
            parse_labtest("rust_kernel: labtest: xarray: end"),
            Some(None)
        );
        let prefixed = parse_labtest("rust_kernel: labtest: s: ok c")
            .unwrap()
            .unwrap();
        assert_eq!(prefixed.name, "s:c");
        assert_eq!(
            parse_labtest("labtest: s: summary 1 passed, 0 failed"),
            None
        );
        assert_eq!(parse_labtest("something else"), None);
    }

    fn feed(log: &[&str]) -> Ktap {
        let mut k = Ktap::default();
        log.iter().for_each(|l| k.feed(l));
        k
    }

    fn summary(v: &[Outcome]) -> Vec<(&str, Status, &str)> {
        v.iter()
            .map(|o| (o.name.as_str(), o.status, o.detail.as_str()))
            .collect()
    }

    #[test]
    fn ktap_cases_skips_and_suite_verdicts() {
        let k = feed(&[
            "KTAP version 1",
            "1..2",
            "    KTAP version 1",
            "    # Subtest: arm-smmu-v3-kunit-test",
            "    1..5",
            "    ok 1 arm_smmu_v3_write_ste_test_bypass_to_abort",
            "    not ok 2 arm_smmu_v3_write_cd_test_s1_clear",
            "    ok 3 skipped_case # SKIP not here",
            "    ok 4 silent_skip # SKIP",
            "        ok 1 param_one",
            "    ok 5 parameterised",
            "# arm-smmu-v3-kunit-test: pass:2 fail:1 skip:2 total:5",
            "not ok 1 arm-smmu-v3-kunit-test",
            "    ok 9 not_in_a_suite",
            "ok 2 other-suite # SKIP no hardware",
        ]);
        let s = "kunit:arm-smmu-v3-kunit-test";
        assert_eq!(
            summary(&k.outcomes),
            [
                (
                    "kunit:arm-smmu-v3-kunit-test:arm_smmu_v3_write_ste_test_bypass_to_abort",
                    Status::Passed,
                    ""
                ),
                (
                    "kunit:arm-smmu-v3-kunit-test:arm_smmu_v3_write_cd_test_s1_clear",
                    Status::Failed,
                    ""
                ),
                (
                    "kunit:arm-smmu-v3-kunit-test:skipped_case",
                    Status::Skipped,
                    "not here"
                ),
                (
                    "kunit:arm-smmu-v3-kunit-test:silent_skip",
                    Status::Failed,
                    "skipped without a stated reason"
                ),
                (
                    "kunit:arm-smmu-v3-kunit-test:parameterised",
                    Status::Passed,
                    ""
                ),
            ]
        );
        assert_eq!(
            summary(&k.suite_outcomes),
            [
                (s, Status::Failed, "KUnit reported the suite 'not ok'"),
                ("kunit:other-suite", Status::Skipped, "no hardware"),
            ]
        );
    }

    #[test]
    fn top_level_not_ok_fails_even_when_all_cases_pass() {
        let k = feed(&["    # Subtest: s", "    ok 1 a", "not ok 1 s"]);
        assert_eq!(summary(&k.outcomes), [("kunit:s:a", Status::Passed, "")]);
        assert_eq!(k.suite_outcomes.len(), 1);
        assert_eq!(k.suite_outcomes[0].status, Status::Failed);
        let ok = feed(&["    # Subtest: s", "    ok 1 a", "ok 1 s"]);
        assert!(ok.suite_outcomes.is_empty());
    }

    #[test]
    fn io_pgtable_selftest_line() {
        let p = "arm-lpae io-pgtable: selftest: completed with ";
        let ok = parse_io_pgtable(&format!("{p}48 PASS 0 FAIL")).unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.status),
            ("selftest:io-pgtable-arm", Status::Passed)
        );
        for bad in ["48 PASS 1 FAIL", "0 PASS 0 FAIL", "garbled"] {
            assert_eq!(
                parse_io_pgtable(&format!("{p}{bad}")).unwrap().status,
                Status::Failed
            );
        }
        assert!(parse_io_pgtable("something else").is_none());
    }
}
