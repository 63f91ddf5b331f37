// SPDX-License-Identifier: GPL-2.0
//! Turning kernel log lines into test results.
//!
//! Two producers are understood:
//! - the project's kernel test modules (`kernel::labtest` in the overlay) print
//!   `labtest: <suite>: ok <case>`, `labtest: <suite>: not ok <case>: <why>` and finally
//!   `labtest: <suite>: end`;
//! - KUnit prints KTAP: a subtest line `ok N name` or `not ok N name` (indented under its suite,
//!   which starts with `# Subtest: <suite>`).

/// One test outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
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
    let (passed, case) = if let Some(c) = rest.strip_prefix("ok ") {
        (true, c)
    } else if let Some(c) = rest.strip_prefix("not ok ") {
        (false, c)
    } else {
        return None;
    };
    let (case, detail) = case.split_once(": ").unwrap_or((case, ""));
    Some(Some(Outcome { name: format!("{suite}:{case}"), passed, detail: detail.to_string() }))
}

/// Collects KUnit test-case results (KTAP, nested one level under a suite) from log lines.
#[derive(Default)]
pub struct Ktap {
    suite: Option<String>,
    pub outcomes: Vec<Outcome>,
}

impl Ktap {
    pub fn feed(&mut self, line: &str) {
        let indented = line.starts_with(' ');
        let t = line.trim();
        if let Some(s) = t.strip_prefix("# Subtest: ") {
            if indented {
                self.suite = Some(s.to_string());
            }
            return;
        }
        let Some(suite) = self.suite.clone() else { return };
        if !indented {
            // A top-level `ok N suite` closes the suite.
            if t.starts_with("ok ") || t.starts_with("not ok ") {
                self.suite = None;
            }
            return;
        }
        let (passed, rest) = if let Some(r) = t.strip_prefix("ok ") {
            (true, r)
        } else if let Some(r) = t.strip_prefix("not ok ") {
            (false, r)
        } else {
            return;
        };
        // `N name [# SKIP reason]`
        let Some((_, name)) = rest.split_once(' ') else { return };
        let (name, directive) = name.split_once(" # ").unwrap_or((name, ""));
        if directive.starts_with("SKIP") {
            return;
        }
        self.outcomes.push(Outcome {
            name: format!("kunit:{suite}:{name}"),
            passed,
            detail: String::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labtest_lines() {
        let ok = parse_labtest("labtest: xarray: ok alloc_limit").unwrap().unwrap();
        assert_eq!((ok.name.as_str(), ok.passed), ("xarray:alloc_limit", true));
        let bad = parse_labtest("labtest: xarray: not ok erase: got 3").unwrap().unwrap();
        assert_eq!((bad.passed, bad.detail.as_str()), (false, "got 3"));
        assert_eq!(parse_labtest("rust_kernel: labtest: xarray: end"), Some(None));
        let prefixed = parse_labtest("rust_kernel: labtest: s: ok c").unwrap().unwrap();
        assert_eq!(prefixed.name, "s:c");
        assert_eq!(parse_labtest("labtest: s: summary 1 passed, 0 failed"), None);
        assert_eq!(parse_labtest("something else"), None);
    }

    #[test]
    fn ktap_cases_are_collected_per_suite() {
        let log = [
            "KTAP version 1",
            "1..1",
            "    KTAP version 1",
            "    # Subtest: arm-smmu-v3-kunit-test",
            "    1..3",
            "    ok 1 arm_smmu_v3_write_ste_test_bypass_to_abort",
            "    not ok 2 arm_smmu_v3_write_cd_test_s1_clear",
            "    ok 3 skipped_case # SKIP not here",
            "# arm-smmu-v3-kunit-test: pass:1 fail:1 skip:1 total:3",
            "not ok 1 arm-smmu-v3-kunit-test",
            "    ok 9 not_in_a_suite",
        ];
        let mut k = Ktap::default();
        log.iter().for_each(|l| k.feed(l));
        let got: Vec<_> = k.outcomes.iter().map(|o| (o.name.as_str(), o.passed)).collect();
        assert_eq!(
            got,
            [
                ("kunit:arm-smmu-v3-kunit-test:arm_smmu_v3_write_ste_test_bypass_to_abort", true),
                ("kunit:arm-smmu-v3-kunit-test:arm_smmu_v3_write_cd_test_s1_clear", false),
            ]
        );
    }
}
