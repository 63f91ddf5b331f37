// SPDX-License-Identifier: GPL-2.0
//! The edu device: registers, DMA with the SMMU disabled, MSI.

mod common;

use qtest::{Edu, QemuConfig, EDU_DMA_BUF};
use smmuv3::dma::Mmio;
use std::time::Instant;

#[test]
fn id_liveness_factorial() {
    let Some(m) = common::machine(QemuConfig::default()) else {
        return;
    };
    let edu = m.edu().unwrap();
    assert_eq!(edu.id().unwrap(), 0x0100_00ed);
    for x in [0u32, 1, 0x1234_5678, u32::MAX] {
        assert_eq!(edu.liveness(x).unwrap(), !x);
    }
    assert_eq!(edu.factorial(0).unwrap(), 1);
    assert_eq!(edu.factorial(5).unwrap(), 120);
    assert_eq!(edu.factorial(12).unwrap(), 479_001_600);
    assert_eq!(
        edu.factorial(13).unwrap(),
        6_227_020_800u64 as u32,
        "wraps mod 2^32"
    );
}

/// With SMMU_CR0.SMMUEN = 0 and GBPA.ABORT = 0 (the reset state) QEMU's SMMU passes edu's DMA
/// through untranslated. edu needs a full DMA mask for that: its default 28-bit mask would
/// clamp RAM addresses (0x4xxx_xxxx) to below 256 MiB.
#[test]
fn dma_round_trip_with_smmu_in_bypass() {
    let Some(m) = common::machine(common::edu_full_mask()) else {
        return;
    };
    let edu = m.edu().unwrap();
    assert_eq!(m.smmu().read32(0x20) & 1, 0, "SMMUEN clear after reset");
    let ram = m.ram();
    let src = ram.alloc(4096, 4096).unwrap();
    let dst = ram.alloc(4096, 4096).unwrap();
    let data = common::pattern(4096, 3);
    src.write_bytes(0, &data).unwrap();
    dst.fill(0, 4096, 0xee).unwrap();

    let t = Instant::now();
    edu.dma_to_edu(src.addr(), 0, 4096).unwrap();
    edu.dma_from_edu(0, dst.addr(), 4096).unwrap();
    println!("two edu DMAs of 4 KiB: {:?}", t.elapsed());
    let mut back = vec![0; 4096];
    dst.read_bytes(0, &mut back).unwrap();
    assert!(back == data, "bypass round trip differs");

    // Partial transfer at an offset inside edu's buffer.
    edu.dma_from_edu(100, dst.addr() + 8, 16).unwrap();
    let mut part = [0u8; 32];
    dst.read_bytes(0, &mut part).unwrap();
    assert_eq!(&part[..8], &data[..8]);
    assert_eq!(&part[8..24], &data[100..116]);
    assert_eq!(&part[24..], &data[24..32]);

    // Out-of-buffer requests are refused before they reach the device.
    assert!(edu.dma_to_edu(src.addr(), 4000, 200).is_err());
    assert!(edu.dma_from_edu(0, dst.addr(), 0).is_err());
    assert!(edu.start_dma(src.addr(), EDU_DMA_BUF - 8, 8, 0).is_err());
    m.qtest().check().unwrap();
}

/// GBPA.ABORT = 1 with the SMMU disabled: QEMU aborts edu's DMA (no event is recorded) and the
/// destination stays untouched.
#[test]
fn gbpa_abort_blocks_dma_while_smmu_disabled() {
    let Some(m) = common::machine(common::edu_full_mask()) else {
        return;
    };
    let edu = m.edu().unwrap();
    let smmu = m.smmu();
    let ram = m.ram();
    let buf = ram.alloc(4096, 4096).unwrap();
    buf.write_bytes(0, b"original").unwrap();
    edu.dma_to_edu(buf.addr(), 0, 8).unwrap();

    smmu.write32(0x44, 1 << 31 | 1 << 20); // GBPA: UPDATE | ABORT
    assert_eq!(
        smmu.read32(0x44) & (1 << 31 | 1 << 20),
        1 << 20,
        "ABORT set, UPDATE done"
    );
    buf.write_bytes(0, b"changed!").unwrap();
    edu.dma_from_edu(0, buf.addr(), 8).unwrap();
    let mut back = [0u8; 8];
    buf.read_bytes(0, &mut back).unwrap();
    assert_eq!(&back, b"changed!", "aborted DMA must not write RAM");

    smmu.write32(0x44, 1 << 31); // GBPA: UPDATE, ABORT clear
    edu.dma_from_edu(0, buf.addr(), 8).unwrap();
    buf.read_bytes(0, &mut back).unwrap();
    assert_eq!(&back, b"original");
    m.qtest().check().unwrap();
}

/// An MSI is a DMA write of the data word to the address: aimed at RAM, it lands there.
#[test]
fn msi_write_lands_at_the_programmed_address() {
    let Some(m) = common::machine(common::edu_full_mask()) else {
        return;
    };
    let edu: Edu = m.edu().unwrap();
    let doorbell = m.ram().alloc(4096, 4096).unwrap();
    doorbell.fill(0, 16, 0xff).unwrap();
    edu.msi_enable(doorbell.addr(), 0x4321).unwrap();
    edu.raise_irq(0x1).unwrap();
    assert_eq!(doorbell.read_u32(0).unwrap(), 0x0000_4321);
    assert_eq!(doorbell.read_u32(4).unwrap(), u32::MAX, "a 32-bit write");

    // DMA completion with the IRQ bit raises 0x100 and sends another MSI.
    edu.ack_irq(0x1).unwrap();
    doorbell.fill(0, 4, 0).unwrap();
    edu.start_dma(
        EDU_DMA_BUF,
        doorbell.addr() + 64,
        8,
        Edu::DMA_FROM_EDU | Edu::DMA_IRQ,
    )
    .unwrap();
    edu.wait_dma(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(edu.irq_status().unwrap() & Edu::IRQ_DMA, Edu::IRQ_DMA);
    assert_eq!(doorbell.read_u32(0).unwrap(), 0x0000_4321);
    m.qtest().check().unwrap();
}
