// SPDX-License-Identifier: GPL-2.0
//! The scenario suite on QEMU and on the model must agree observation for observation; bugs
//! planted into the model must be caught. QEMU traces are computed once per test binary and
//! shared. Without QEMU every test prints SKIP and returns.

use differential::planted::{EventAddrOffset, TlbiAsidOffset};
use differential::scenarios::{run, NAMES};
use differential::{ModelPlatform, Platform, QemuPlatform, Trace};
use std::sync::OnceLock;

fn qemu_traces() -> Option<&'static Vec<Trace>> {
    static T: OnceLock<Option<Vec<Trace>>> = OnceLock::new();
    T.get_or_init(|| {
        QemuPlatform::start()?;
        Some(
            NAMES
                .iter()
                .map(|n| run(n, QemuPlatform::start().unwrap()))
                .collect(),
        )
    })
    .as_ref()
}

/// Scenarios whose trace on `mk()` differs from QEMU's, with the first difference.
fn mismatches<P: Platform>(mk: impl Fn() -> P) -> Option<Vec<(&'static str, String)>> {
    let q = qemu_traces()?;
    Some(
        NAMES
            .iter()
            .zip(q)
            .filter_map(|(n, qt)| qt.diff(&run(n, mk())).map(|d| (*n, d)))
            .collect(),
    )
}

#[test]
fn model_matches_qemu_event_for_event() {
    let Some(q) = qemu_traces() else {
        println!("SKIP: qemu-system-aarch64 not found");
        return;
    };
    let mut bad = Vec::new();
    let mut events = 0;
    for (n, qt) in NAMES.iter().zip(q) {
        let mt = run(n, ModelPlatform::new());
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
    }
    println!("{} scenarios, {events} event records compared", NAMES.len());
    assert!(events > 0);
    assert!(bad.is_empty(), "model differs from QEMU in {bad:?}");
}

#[test]
fn model_runs_are_deterministic() {
    for n in NAMES {
        assert_eq!(
            run(n, ModelPlatform::new()),
            run(n, ModelPlatform::new()),
            "{n}"
        );
    }
}

#[test]
fn planted_tlbi_asid_offset_bug_is_caught() {
    let Some(m) = mismatches(TlbiAsidOffset::new) else {
        println!("SKIP: qemu-system-aarch64 not found");
        return;
    };
    for (n, d) in &m {
        println!("caught in {n}: {d}");
    }
    assert!(m.iter().any(|(n, _)| *n == "tlbi"), "{m:?}");
}

#[test]
fn planted_event_addr_offset_bug_is_caught() {
    let Some(m) = mismatches(EventAddrOffset::default) else {
        println!("SKIP: qemu-system-aarch64 not found");
        return;
    };
    for (n, d) in &m {
        println!("caught in {n}: {d}");
    }
    assert!(m.iter().any(|(n, _)| *n == "s1_4k"), "{m:?}");
}
