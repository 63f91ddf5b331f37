// SPDX-License-Identifier: GPL-2.0
//! Shared test set-up: start the machine, or fail without QEMU (skip with `LAB_NO_QEMU=1`,
//! see `qtest::require_qemu`).

#![allow(dead_code)]

use qtest::{Machine, QemuConfig, Qtest};

/// `true` if QEMU is installed; `false` when it is not and `LAB_NO_QEMU=1` says to skip;
/// panics otherwise (`qtest::require_qemu`).
#[track_caller]
pub fn have_qemu() -> bool {
    qtest::require_qemu().is_some()
}

/// Starts a machine with `config`, or `None` when skipped ([`have_qemu`]).
#[track_caller]
pub fn machine(config: QemuConfig) -> Option<Machine> {
    have_qemu().then(|| Machine::start(&config).expect("start QEMU"))
}

/// Starts a bare qtest client with `config`, or `None` when skipped ([`have_qemu`]).
#[track_caller]
pub fn client(config: QemuConfig) -> Option<Qtest> {
    have_qemu().then(|| Qtest::spawn(&config).expect("start QEMU"))
}

/// edu with a full 64-bit DMA mask, so that bypass DMA can reach RAM at 0x4000_0000.
pub fn edu_full_mask() -> QemuConfig {
    QemuConfig::default().devices(["edu,dma_mask=0xffffffffffffffff"])
}

/// A deterministic byte pattern.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
