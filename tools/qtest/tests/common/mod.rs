// SPDX-License-Identifier: GPL-2.0
//! Shared test set-up: skip (loudly) when QEMU is absent, otherwise start the machine.

#![allow(dead_code)]

use qtest::{Machine, QemuConfig, Qtest};

/// `true` if QEMU is installed; otherwise prints the SKIP line and returns `false`.
pub fn have_qemu() -> bool {
    if qtest::qemu_binary().is_none() {
        println!("SKIP: qemu-system-aarch64 not found");
        eprintln!("SKIP: qemu-system-aarch64 not found");
        return false;
    }
    true
}

/// Starts a machine with `config`, or `None` (after printing SKIP) without QEMU.
pub fn machine(config: QemuConfig) -> Option<Machine> {
    have_qemu().then(|| Machine::start(&config).expect("start QEMU"))
}

/// Starts a bare qtest client with `config`, or `None` without QEMU.
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
