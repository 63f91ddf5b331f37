// SPDX-License-Identifier: GPL-2.0
//! The scenario suite on QEMU and on the model must agree observation for observation, and
//! each run must meet the scenarios' declarations (events, data, results) on both sides; bugs
//! planted into the model, and a silence planted into both, must be caught. QEMU traces are
//! computed once per test binary and shared. Without QEMU every test fails, unless
//! `LAB_NO_QEMU=1` makes it a reported skip (`qtest::require_qemu`).

use differential::planted::{model_with, qemu_with, CmdBug, EventAddrOffset, Silenced};
use differential::scenarios::{run, NAMES};
use differential::{ModelPlatform, Platform, QemuPlatform, Trace};
use std::sync::OnceLock;

/// QEMU's traces (each test calls `require_qemu` before, so that each reports its own skip).
fn qemu_traces() -> &'static Vec<Trace> {
    static T: OnceLock<Vec<Trace>> = OnceLock::new();
    T.get_or_init(|| {
        NAMES
            .iter()
            .map(|n| run(n, QemuPlatform::for_scenario(n)))
            .collect()
    })
}

/// Scenarios whose trace on `mk()` differs from QEMU's, with the first difference.
fn mismatches<P: Platform>(mk: impl Fn(&str) -> P) -> Vec<(&'static str, String)> {
    NAMES
        .iter()
        .zip(qemu_traces())
        .filter_map(|(n, qt)| qt.diff(&run(n, mk(n))).map(|d| (*n, d)))
        .collect()
}

/// Every unmet declaration of `traces` (one per scenario, in `NAMES` order), named.
fn unmet<'a>(side: &str, traces: impl IntoIterator<Item = &'a Trace>) -> Vec<String> {
    NAMES
        .iter()
        .zip(traces)
        .flat_map(|(n, t)| {
            t.unmet()
                .into_iter()
                .map(move |u| format!("{side} {n}: {u}"))
        })
        .collect()
}

#[test]
fn model_matches_qemu_event_for_event() {
    if qtest::require_qemu().is_none() {
        return;
    }
    let q = qemu_traces();
    let mut bad = Vec::new();
    let mut events = 0;
    let mut model = Vec::new();
    for (n, qt) in NAMES.iter().zip(q) {
        let mt = run(n, ModelPlatform::for_scenario(n));
        events += qt.event_count();
        match qt.diff(&mt) {
            None => println!(
                "{n}: {} observations, {} events: identical",
                qt.0.len(),
                qt.event_count()
            ),
            Some(d) => {
                println!(
                    "{n}: MISMATCH {d}\nqemu trace: {:#?}\nmodel trace: {:#?}",
                    qt.0, mt.0
                );
                bad.push(*n);
            }
        }
        model.push(mt);
    }
    println!("{} scenarios, {events} event records compared", NAMES.len());
    let mut missed = unmet("qemu", q);
    missed.extend(unmet("model", &model));
    assert!(
        missed.is_empty(),
        "declarations not met:\n{}",
        missed.join("\n")
    );
    assert!(bad.is_empty(), "model differs from QEMU in {bad:?}");
}

#[test]
fn model_runs_are_deterministic() {
    for n in NAMES {
        assert_eq!(
            run(n, ModelPlatform::for_scenario(n)),
            run(n, ModelPlatform::for_scenario(n)),
            "{n}"
        );
    }
}

#[test]
fn model_meets_the_declarations_without_qemu() {
    let model: Vec<Trace> = NAMES
        .iter()
        .map(|n| run(n, ModelPlatform::for_scenario(n)))
        .collect();
    let missed = unmet("model", &model);
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn planted_tlbi_asid_offset_bug_is_caught() {
    if qtest::require_qemu().is_none() {
        return;
    }
    let m = mismatches(|n| model_with(n, CmdBug::TlbiAsidOffset));
    for (n, d) in &m {
        println!("caught in {n}: {d}");
    }
    assert!(m.iter().any(|(n, _)| *n == "tlbi"), "{m:?}");
}

#[test]
fn planted_event_addr_offset_bug_is_caught() {
    if qtest::require_qemu().is_none() {
        return;
    }
    let m = mismatches(EventAddrOffset::for_scenario);
    for (n, d) in &m {
        println!("caught in {n}: {d}");
    }
    assert!(m.iter().any(|(n, _)| *n == "s1_4k"), "{m:?}");
}

/// Silence planted on both sides: the traces agree with each other (the old check, "events
/// were seen somewhere over the whole suite", would pass on the rest), but every scenario
/// that declares events misses its declarations on both sides.
#[test]
fn planted_silence_on_both_sides_is_caught() {
    if qtest::require_qemu().is_none() {
        return;
    }
    let mut caught = Vec::new();
    for n in NAMES {
        let q = run(n, Silenced(QemuPlatform::for_scenario(n)));
        let m = run(n, Silenced(ModelPlatform::for_scenario(n)));
        assert_eq!(q.diff(&m), None, "{n}: silenced traces should still agree");
        assert_eq!(q.event_count() + m.event_count(), 0, "{n}");
        let declares_events =
            qemu_traces()[NAMES.iter().position(|x| x == n).unwrap()].event_count() > 0;
        let missed = (q.unmet(), m.unmet());
        println!("{n}: qemu unmet {:?}; model unmet {:?}", missed.0, missed.1);
        assert_eq!(
            declares_events,
            !missed.0.is_empty() && !missed.1.is_empty(),
            "{n}: a scenario that declares events must miss them when silenced, on both sides"
        );
        if declares_events {
            caught.push(*n);
        }
    }
    assert!(caught.len() >= 8, "only {caught:?} declare events");
}

/// Runs scenario `n` (`ssid_cfgi_cd` or `nested_cfgi_cd`) on the planted platform `p` and on
/// the clean `other`, and asserts the plant fired and was caught twice: the traces differ, and
/// the planted run misses the declarations of the step `CFGI_CD(2)`.
fn cfgi_cd_plant_is_caught<P: Platform, Q: differential::planted::QueueMem, O: Platform>(
    n: &str,
    p: differential::planted::Misdecoding<P, Q>,
    other: O,
) {
    let fired = p.mmio().rewritten.clone();
    let planted = run(n, p);
    let clean = run(n, other);
    let fired = *fired.lock().unwrap();
    let diff = clean.diff(&planted);
    let missed = planted.unmet();
    println!("{n}: {fired} commands misdecoded\ndiff: {diff:?}\nunmet: {missed:#?}");
    assert!(fired > 0, "the plant never fired");
    assert!(diff.is_some(), "the planted platform matched the clean one");
    assert!(
        missed.iter().any(|u| u.contains("CFGI_CD(2)")),
        "{missed:?}"
    );
}

/// A model whose CFGI_CD ignores the SubstreamID (drops every CD of the StreamID): the stale
/// CD 1 that must survive CFGI_CD(2) does not. Caught by the comparison with QEMU and by the
/// scenario's own declarations.
/// The same under nesting (`nested_cfgi_cd`, CDs fetched through stage 2).
#[test]
fn planted_model_cfgi_cd_ignoring_the_ssid_is_caught() {
    if qtest::require_qemu().is_none() {
        return;
    }
    for n in ["ssid_cfgi_cd", "nested_cfgi_cd"] {
        cfgi_cd_plant_is_caught(
            n,
            model_with(n, CmdBug::CfgiCdAllSsids),
            QemuPlatform::for_scenario(n),
        );
    }
}

/// A QEMU whose CFGI_CD reads the SubstreamID as 0 (drops CD 0 instead of the one named):
/// CD 2 stays stale after CFGI_CD(2). Caught by the comparison with the model and by the
/// declarations.
/// The same under nesting.
#[test]
fn planted_qemu_cfgi_cd_ssid_zero_is_caught() {
    if qtest::require_qemu().is_none() {
        return;
    }
    for n in ["ssid_cfgi_cd", "nested_cfgi_cd"] {
        cfgi_cd_plant_is_caught(
            n,
            qemu_with(n, CmdBug::CfgiCdSsidZero),
            ModelPlatform::for_scenario(n),
        );
    }
}
