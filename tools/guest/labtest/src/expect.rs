// SPDX-License-Identifier: GPL-2.0
//! The expected results of a full run (`tools/lab/expected/<platform>.list`, copied to
//! `/lib/labtest/expected/`): without it a suite that silently stopped running, a KUnit suite
//! that was configured out, or a probe that never ran its cases would leave the run green.
//!
//! Format, one entry a line (`#` starts a comment):
//!
//! ```text
//! <name> <count> [flavour ...]
//! ```
//!
//! `<name>` covers every result called `<name>` or `<name>:...` (the longest entry wins), so an
//! entry is a suite (`abs_pci`, `kunit:arm-smmu-v3-kunit-test`, `mdev`) or one result
//! (`selftest:io-pgtable-arm`). `<count>` is how many results (passed, failed or skipped) it
//! must produce. With flavours listed, the entry applies only to those kernel flavours.
//! A full run fails on an entry with fewer or more results than its count, and on a result no
//! entry covers.

use std::collections::BTreeMap;

/// The kernel flavours (`tools/lab/kenv.sh`): `release` and `debug` carry the project's Rust
/// SMMUv3 driver, `c-smmu` and `c-smmu-debug` the C `arm-smmu-v3` (the baseline).
pub const FLAVOURS: [&str; 4] = ["release", "debug", "c-smmu", "c-smmu-debug"];

/// One manifest line that applies to the running flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub count: u32,
}

/// Parses a manifest; keeps the entries for `flavour`.
pub fn parse(text: &str, flavour: &str) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut w = line.split_whitespace();
        let (Some(name), Some(count)) = (w.next(), w.next()) else {
            return Err(format!(
                "line {}: want '<name> <count> [flavour ...]': {raw:?}",
                i + 1
            ));
        };
        let count = count
            .parse()
            .map_err(|_| format!("line {}: count {count:?} is not a number", i + 1))?;
        let flavours: Vec<&str> = w.collect();
        if let Some(f) = flavours.iter().find(|f| !FLAVOURS.contains(f)) {
            return Err(format!(
                "line {}: unknown flavour {f:?} (want one of {FLAVOURS:?})",
                i + 1
            ));
        }
        if out.iter().any(|e| e.name == name)
            && (flavours.is_empty() || flavours.contains(&flavour))
        {
            return Err(format!("line {}: {name} listed twice", i + 1));
        }
        if flavours.is_empty() || flavours.contains(&flavour) {
            out.push(Entry {
                name: name.to_string(),
                count,
            });
        }
    }
    Ok(out)
}

/// The entry covering result `name`: the longest entry equal to it or a prefix of it up to a
/// `:`.
fn entry_of<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| {
            name == e.name
                || name
                    .strip_prefix(e.name.as_str())
                    .is_some_and(|r| r.starts_with(':'))
        })
        .max_by_key(|e| e.name.len())
}

/// Everything wrong with the results `seen` (every result name of the run, once each) against
/// `entries`; each problem says what to fix. Empty if the run matches.
pub fn check(entries: &[Entry], seen: &[String], manifest: &str) -> Vec<String> {
    let mut counts: BTreeMap<&str, u32> = entries.iter().map(|e| (e.name.as_str(), 0)).collect();
    let mut unknown: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in seen {
        match entry_of(entries, name) {
            Some(e) => *counts.entry(e.name.as_str()).or_default() += 1,
            None => {
                // Group by suite (everything before the last `:`) for the suggested line.
                let suite = name.rsplit_once(':').map_or(name.as_str(), |(s, _)| s);
                unknown.entry(suite).or_default().push(name);
            }
        }
    }
    let mut problems = Vec::new();
    for e in entries {
        let n = counts[e.name.as_str()];
        if n < e.count {
            problems.push(format!(
                "missing results: {} expects {} in {manifest}, the run produced {n}{}",
                e.name,
                e.count,
                if n == 0 {
                    " (the suite did not run)"
                } else {
                    ""
                }
            ));
        } else if n > e.count {
            problems.push(format!(
                "more results than expected: {} expects {} in {manifest}, the run produced {n} \
                 (a new case? update the count)",
                e.name, e.count
            ));
        }
    }
    for (suite, names) in unknown {
        problems.push(format!(
            "unknown results (no entry in {manifest}; add '{suite} {}'): {}",
            names.len(),
            names.join(", ")
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "\
# comment
abs_pci 3
kunit:arm-smmu-v3-kunit-test 2   # KUnit
selftest:io-pgtable-arm 1
bench 1 release
kmemleak 1 debug
";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entries_follow_the_flavour() {
        let r = parse(M, "release").unwrap();
        assert_eq!(
            r.iter()
                .map(|e| (e.name.as_str(), e.count))
                .collect::<Vec<_>>(),
            [
                ("abs_pci", 3),
                ("kunit:arm-smmu-v3-kunit-test", 2),
                ("selftest:io-pgtable-arm", 1),
                ("bench", 1)
            ]
        );
        let d = parse(M, "debug").unwrap();
        assert!(d.iter().any(|e| e.name == "kmemleak") && !d.iter().any(|e| e.name == "bench"));
        assert!(parse("x", "release").is_err());
        assert!(parse("x y", "release").is_err());
        assert!(parse("x 1 fast", "release").is_err());
        // The flavours before the Rust driver became the default are gone.
        assert!(parse("x 1 rust-smmu", "release").is_err());
        assert!(parse("x 1 c-smmu\nx 2 release", "c-smmu").is_ok());
        assert!(parse("x 1\nx 2", "release").is_err());
        assert!(parse("x 1 release\nx 2 debug", "release").is_ok());
    }

    #[test]
    fn a_complete_run_matches() {
        let e = parse(M, "release").unwrap();
        let seen = names(&[
            "abs_pci:a",
            "abs_pci:b",
            "abs_pci:c",
            "kunit:arm-smmu-v3-kunit-test:x",
            "kunit:arm-smmu-v3-kunit-test:y",
            "selftest:io-pgtable-arm",
            "bench:copy",
        ]);
        assert_eq!(check(&e, &seen, "m"), Vec::<String>::new());
    }

    #[test]
    fn missing_extra_and_unknown_results_are_named() {
        let e = parse(M, "release").unwrap();
        let seen = names(&[
            "abs_pci:driver_registered",
            "kunit:arm-smmu-v3-kunit-test:x",
            "kunit:arm-smmu-v3-kunit-test:y",
            "kunit:arm-smmu-v3-kunit-test:z",
            "new_suite:a",
            "new_suite:b",
            "bench:copy",
        ]);
        let p = check(&e, &seen, "m");
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].contains("abs_pci expects 3") && p[0].contains("produced 1"));
        assert!(p[1].contains("arm-smmu-v3-kunit-test expects 2") && p[1].contains("produced 3"));
        assert!(p[2].contains("selftest:io-pgtable-arm") && p[2].contains("did not run"));
        assert!(p[3].contains("add 'new_suite 2'") && p[3].contains("new_suite:a, new_suite:b"));
    }

    #[test]
    fn longest_entry_wins_and_prefixes_stop_at_colons() {
        let e = parse("mdev 1\nmdev:bench 1\n", "release").unwrap();
        assert_eq!(
            check(&e, &names(&["mdev:a", "mdev:bench:b"]), "m"),
            Vec::<String>::new()
        );
        let p = check(&e, &names(&["mdev:a", "mdevx:b", "mdev:bench:b"]), "m");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("unknown") && p[0].contains("mdevx:b"));
    }
}
