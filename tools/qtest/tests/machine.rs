// SPDX-License-Identifier: GPL-2.0
//! The virt machine: memory map, PCI enumeration, BARs, SMMU registers, guest RAM, stream IDs.

mod common;

use qtest::{virt, Bdf, Edu, Machine, QemuConfig, EDU_DEVICE_ID, EDU_VENDOR_ID};
use smmuv3::dma::{DmaAllocator, DmaMemory, Mmio};
use std::time::Duration;

/// SMMU_IDR0 of QEMU 10.0.2's SMMUv3 on `virt` (hw/arm/smmuv3.c, smmuv3_init_regs(); the
/// machine creates it with stage "nested"): S2P(0) S1P(1) TTF=2 AArch64(3:2) COHACC(4)
/// ASID16(12) VMID16(18) TTENDIAN=2 little(22:21) STALL_MODEL=1 no stall(25:24)
/// TERM_MODEL(26) ST_LEVEL=1 two-level(28:27). No ATS(10), PRI(16), HTTU(7:6), MSI(13).
const QEMU_SMMU_IDR0: u32 = 0x0d44_101b;

#[test]
fn smmu_id_registers_match_qemu_10() {
    let Some(m) = common::machine(QemuConfig::default()) else {
        return;
    };
    let smmu = m.smmu();
    let idr0 = smmu.read32(0x0);
    assert_eq!(idr0, QEMU_SMMU_IDR0, "IDR0 {idr0:#010x}");
    assert_eq!(idr0 & 3, 3, "stage 1 and stage 2");
    assert_eq!((idr0 >> 2) & 3, 2, "AArch64 tables only");
    assert_eq!((idr0 >> 27) & 3, 1, "2-level stream table");
    assert_eq!(
        idr0 & (1 << 10 | 1 << 16 | 3 << 6 | 1 << 13),
        0,
        "no ATS/PRI/HTTU/MSI"
    );
    let idr1 = smmu.read32(0x4);
    assert_eq!((idr1 >> 6) & 0x1f, 0, "SSIDSIZE 0: no PASID");
    assert_eq!(idr1 & 0x3f, 16, "SIDSIZE 16");
    // Page 1 is reachable through the same Mmio (EVENTQ_PROD/CONS read 0 after reset).
    assert_eq!(smmu.read32(0x1_00a8), 0);
    assert_eq!(smmu.read64(0x1_00a8), 0);
    // GBPA after reset: SHCFG "use incoming", ABORT clear: bypass when SMMUEN = 0.
    assert_eq!(smmu.read32(0x44) & (1 << 20), 0);
    // Outside the frame: all-ones and a deferred error, no panic.
    assert_eq!(smmu.read32(0x2_0000), u32::MAX);
    assert!(m.qtest().check().is_err());
    m.qtest().check().unwrap();
}

#[test]
fn bus0_holds_host_bridge_and_edu_and_high_ecam_is_used() {
    let Some(m) = common::machine(QemuConfig::default()) else {
        return;
    };
    assert_eq!(m.ecam_base(), virt::PCIE_ECAM_HIGH);
    let funcs = m.enumerate(0).unwrap();
    let ids: Vec<_> = funcs
        .iter()
        .map(|f| (f.bdf.to_string(), f.vendor, f.device))
        .collect();
    assert_eq!(
        ids,
        [
            ("00:00.0".to_string(), 0x1b36, 0x0008),
            ("00:01.0".to_string(), EDU_VENDOR_ID, EDU_DEVICE_ID)
        ]
    );
    assert_eq!(funcs[1].revision, 0x10);
    assert_eq!(funcs[1].class >> 8, 0x00ff);
    let edu = m.find(EDU_VENDOR_ID, EDU_DEVICE_ID).unwrap();
    assert_eq!(edu, Bdf::new(0, 1, 0).unwrap());
    assert_eq!(edu.stream_id(), 0x8);
    assert!(m.find(0xdead, 0xbeef).is_err());
}

#[test]
fn low_ecam_with_highmem_off() {
    let Some(m) = common::machine(QemuConfig::default().machine_option("highmem=off")) else {
        return;
    };
    assert_eq!(m.ecam_base(), virt::PCIE_ECAM_LOW);
    let edu = m.edu().unwrap();
    assert_eq!(edu.id().unwrap(), 0x0100_00ed);
}

#[test]
fn bar0_lands_in_the_32bit_window() {
    let Some(m) = common::machine(QemuConfig::default().device("edu")) else {
        return;
    };
    let first = m.find(EDU_VENDOR_ID, EDU_DEVICE_ID).unwrap();
    let bar = m.assign_bar(first, 0).unwrap();
    assert_eq!(
        (bar.addr, bar.size, bar.is_64bit),
        (virt::PCIE_MMIO, 1 << 20, false)
    );
    assert_eq!(m.cfg_read32(first, 0x10).unwrap(), virt::PCIE_MMIO as u32);
    // Second edu (00:02.0, stream ID 0x10) gets the next naturally aligned MiB.
    let funcs = m.enumerate(0).unwrap();
    let second = funcs.iter().map(|f| f.bdf).find(|b| b.dev == 2).unwrap();
    assert_eq!(second.stream_id(), 0x10);
    let bar2 = m.assign_bar(second, 0).unwrap();
    assert_eq!(bar2.addr, virt::PCIE_MMIO + (1 << 20));
    m.enable_device(second, true, false).unwrap();
    assert_eq!(m.qtest().readl(bar2.addr).unwrap(), 0x0100_00ed);
    // Memory decoding off: the BAR does not answer.
    m.enable_device(second, false, false).unwrap();
    assert_ne!(m.qtest().readl(bar2.addr).unwrap(), 0x0100_00ed);
    assert!(m.assign_bar(first, 1).is_err(), "BAR1 is not implemented");
    assert!(m.assign_bar(first, 6).is_err());
}

#[test]
fn guest_ram_allocator_through_dma_traits() {
    let Some(m) = common::machine(QemuConfig::default()) else {
        return;
    };
    let ram = m.ram().clone();
    let a = ram.alloc_zeroed(4096, 4096).unwrap();
    let b = ram.alloc_zeroed(64, 64).unwrap();
    assert!(a.dma_addr() >= virt::RAM_BASE + virt::RAM_RESERVED);
    assert_eq!(a.dma_addr() % 4096, 0);
    assert_eq!(b.dma_addr() % 64, 0);
    assert!(b.dma_addr() >= a.dma_addr() + 4096);
    assert_eq!(a.read_u64(4088), 0);
    a.write_u64(8, 0x1122_3344_5566_7788);
    assert_eq!(m.qtest().readl(a.dma_addr() + 12).unwrap(), 0x1122_3344);
    // Misuse is reported, not a panic.
    assert_eq!(a.read_u64(4096), u64::MAX);
    assert!(m.qtest().check().is_err());
    let pa = a.dma_addr();
    drop(a);
    assert_eq!(m.qtest().readq(pa + 8).unwrap(), 0x6b6b_6b6b_6b6b_6b6b);
    assert_eq!(ram.live_blocks(), 1);
    ram.fail_allocations_after(Some(0));
    assert!(ram.alloc_zeroed(8, 8).is_err());
    ram.fail_allocations_after(None);
    assert!(ram.alloc_zeroed(1 << 30, 8).is_err(), "more than RAM");
    assert!(ram.alloc_zeroed(8, 3).is_err());
    m.qtest().check().unwrap();
}

// SMMU register offsets and fields used below (SMMUv3 architecture spec, chapter 6).
const CR0: usize = 0x20;
const CR0ACK: usize = 0x24;
const IRQ_CTRL: usize = 0x50;
const STRTAB_BASE: usize = 0x80;
const STRTAB_BASE_CFG: usize = 0x88;
const EVENTQ_BASE: usize = 0xa0;
const EVENTQ_PROD: usize = 0x1_00a8;
const EVENTQ_CONS: usize = 0x1_00ac;
const C_BAD_STE: u64 = 0x04;

/// Turns the SMMU on with a linear stream table of 32 (invalid) STEs and an 8-entry event
/// queue, and returns (stream table, event queue).
fn smmu_on<A: DmaAllocator>(m: &Machine, ram: &A) -> (A::Memory, A::Memory) {
    let smmu = m.smmu();
    let strtab = ram.alloc_zeroed(32 * 64, 32 * 64).unwrap();
    let evtq = ram.alloc_zeroed(8 * 32, 8 * 32).unwrap();
    smmu.write64(STRTAB_BASE, strtab.dma_addr());
    smmu.write32(STRTAB_BASE_CFG, 5); // linear, LOG2SIZE 5
    smmu.write64(EVENTQ_BASE, evtq.dma_addr() | 3); // LOG2SIZE 3
    smmu.write32(EVENTQ_PROD, 0);
    smmu.write32(EVENTQ_CONS, 0);
    smmu.write32(IRQ_CTRL, 1 << 2); // EVENTQ_IRQEN
    smmu.write32(CR0, 1 | 1 << 2); // SMMUEN | EVENTQEN
    assert_eq!(smmu.read32(CR0ACK), 0x5);
    (strtab, evtq)
}

#[test]
fn edu_stream_id_is_its_requester_id() {
    let Some(m) = common::machine(common::edu_full_mask()) else {
        return;
    };
    m.intercept_gic().unwrap();
    let qt = m.qtest();
    let edu: Edu = m.edu().unwrap();
    let ram = m.ram().clone();
    let (strtab, evtq) = smmu_on(&m, &ram);
    let buf = ram.alloc(4096, 4096).unwrap();
    let before = qt.irq_raise_count(virt::SMMU_SPI_EVENTQ).unwrap();

    // All STEs invalid: edu's DMA read faults with C_BAD_STE naming edu's stream ID.
    edu.dma_to_edu(buf.addr(), 0, 8).unwrap();
    // QEMU 10.0.2 records the fault twice for one 8-byte DMA read (two translation attempts).
    let prod = m.smmu().read32(EVENTQ_PROD);
    assert!((1..8).contains(&prod), "EVENTQ_PROD {prod}");
    for i in 0..prod as usize {
        let ev0 = evtq.read_u64(i * 32);
        println!(
            "event {i}: {:#018x} {:#018x}",
            ev0,
            evtq.read_u64(i * 32 + 8)
        );
        assert_eq!(ev0 & 0xff, C_BAD_STE, "event {ev0:#x}");
        assert_eq!((ev0 >> 32) as u32, edu.stream_id());
    }
    assert_eq!(edu.stream_id(), 0x0008);
    // The event queue interrupt is wired to SPI 74.
    qt.wait_irq_raises(virt::SMMU_SPI_EVENTQ, before, Duration::from_secs(2))
        .unwrap();

    // A bypass STE at index stream_id (V=1, Config=0b100) lets the same DMA through.
    buf.write_bytes(0, b"bypassed").unwrap();
    strtab.write_u64(edu.stream_id() as usize * 64, 0x9);
    edu.dma_to_edu(buf.addr(), 0, 8).unwrap();
    edu.dma_from_edu(0, buf.addr() + 64, 8).unwrap();
    let mut back = [0u8; 8];
    buf.read_bytes(64, &mut back).unwrap();
    assert_eq!(&back, b"bypassed");
    assert_eq!(m.smmu().read32(EVENTQ_PROD), prod, "no new event");
    qt.check().unwrap();
}

#[test]
fn edu_intx_reaches_the_expected_gic_spi() {
    let Some(m) = common::machine(QemuConfig::default()) else {
        return;
    };
    m.intercept_gic().unwrap();
    let edu = m.edu().unwrap();
    let spi = m.intx_spi(edu.bdf()).unwrap();
    assert_eq!(spi, virt::PCIE_INTX_SPI + 1, "slot 1, INTA");
    assert!(!m.qtest().irq_level(spi).unwrap());
    edu.raise_irq(0x5).unwrap();
    assert_eq!(edu.irq_status().unwrap(), 0x5);
    assert!(m.qtest().irq_level(spi).unwrap());
    edu.ack_irq(0x5).unwrap();
    assert!(!m.qtest().irq_level(spi).unwrap());
}
