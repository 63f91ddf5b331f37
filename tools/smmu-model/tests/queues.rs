// SPDX-License-Identifier: GPL-2.0
//! Command queue, Event queue, cache staleness and invalidation, registers, statistics.

mod common;
use common::*;
use smmu_model::spec::{event_id, op};
use smmu_model::{Features, TranslateError};
use smmuv3::dma::Mmio;

#[test]
fn id_registers_reflect_features() {
    let r = Rig::new(Features::default());
    let idr0 = r.smmu.read32(IDR0);
    // S1P[1], TTF[3:2] = 0b10, COHACC[4], ASID16[12], CD2L[19], TTENDIAN = 0b10,
    // STALL_MODEL = 0b01, TERM_MODEL[26], ST_LEVEL = 0b01.
    assert_eq!(
        idr0,
        (1 << 1)
            | (0b10 << 2)
            | (1 << 4)
            | (1 << 12)
            | (1 << 19)
            | (0b10 << 21)
            | (1 << 24)
            | (1 << 26)
            | (1 << 27)
    );
    // IDR1: SIDSIZE = 16, SSIDSIZE[10:6] = 20, EVENTQS[20:16] = CMDQS[25:21] = 19.
    assert_eq!(
        r.smmu.read32(IDR1),
        16 | (20 << 6) | (19 << 16) | (19 << 21)
    );
    // IDR3: HAD[2], RIL[10], BBML[12:11] = 0b10. IDR5: OAS = 0b101, GRAN4K/16K/64K.
    assert_eq!(r.smmu.read32(IDR3), (1 << 2) | (1 << 10) | (0b10 << 11));
    assert_eq!(r.smmu.read32(IDR5), 0b101 | (0b111 << 4));
    let q = Rig::new(Features::qemu());
    assert_eq!(
        (q.smmu.read32(IDR1) >> 6) & 0x1f,
        0,
        "QEMU: no SubstreamIDs"
    );
    assert_eq!(q.smmu.read32(IDR5) & 7, 4, "QEMU: 44-bit OAS");
    // CR0ACK follows CR0 at once; page 1 aliases page 0 (QEMU).
    assert_eq!(r.smmu.read32(CR0ACK), SMMUEN | EVENTQEN | CMDQEN);
    assert_eq!(
        r.smmu.read32(EVENTQ_PROD - 0x10000),
        r.smmu.read32(EVENTQ_PROD)
    );
    assert_eq!(r.smmu.read64(CMDQ_BASE), CMDQ | 4);
}

#[test]
fn stale_iotlb_entry_until_tlbi_va() {
    let mut r = Rig::new(Features::default());
    let pt = r.simple_s1(2, 7);
    r.map(&pt, 0x4000, 0xa000, LEAF_RW, 3);
    assert_eq!(r.read(2, None, 0x4000).unwrap().pa, 0xa000);
    // Remap in memory only: the IOTLB still has the old page.
    r.set_leaf(&pt, 0x4000, leaf(0xb000, LEAF_RW, 3), 3);
    assert_eq!(r.read(2, None, 0x4000).unwrap().pa, 0xa000);
    // Unmap in memory only: still translates.
    r.set_leaf(&pt, 0x4000, 0, 3);
    assert_eq!(r.read(2, None, 0x4000).unwrap().pa, 0xa000);
    // A TLBI for another ASID or another page does not help.
    r.cmds(&[tlbi_nh_va(8, 0x4000), tlbi_nh_va(7, 0x5000), sync()]);
    assert_eq!(r.read(2, None, 0x4000).unwrap().pa, 0xa000);
    r.cmds(&[tlbi_nh_va(7, 0x4000), sync()]);
    assert_eq!(
        r.read(2, None, 0x4000).unwrap_err().event_id(),
        Some(event_id::F_TRANSLATION)
    );
    let s = r.smmu.stats();
    assert_eq!(s.commands[&op::TLBI_NH_VA], 3);
    assert_eq!(s.syncs, 2);
    assert_eq!(s.iotlb_hits, 3);
}

#[test]
fn tlbi_asid_all_and_global_entries() {
    let mut r = Rig::new(Features::default());
    let pt = r.simple_s1(2, 7);
    r.map(&pt, 0x4000, 0xa000, LEAF_RW, 3);
    // nG == 0: a global entry, matched by any ASID and not removed by TLBI_NH_ASID.
    r.map(&pt, 0x6000, 0xc000, LEAF_RW & !(1 << 11), 3);
    r.read(2, None, 0x4000).unwrap();
    r.read(2, None, 0x6000).unwrap();
    r.set_leaf(&pt, 0x4000, 0, 3);
    r.set_leaf(&pt, 0x6000, 0, 3);
    r.cmds(&[tlbi_nh_asid(7), sync()]);
    assert!(r.read(2, None, 0x4000).is_err());
    assert_eq!(
        r.read(2, None, 0x6000).unwrap().pa,
        0xc000,
        "global entry survives"
    );
    r.cmds(&[tlbi_nh_all(), sync()]);
    assert!(r.read(2, None, 0x6000).is_err());
    assert_eq!(r.smmu.cache_occupancy().1, 0);
}

#[test]
fn range_tlbi() {
    let mut r = Rig::new(Features::default());
    let pt = r.simple_s1(2, 7);
    for i in 0..8u64 {
        r.map(
            &pt,
            0x10_0000 + i * 0x1000,
            0x80_0000 + i * 0x1000,
            LEAF_RW,
            3,
        );
        r.read(2, None, 0x10_0000 + i * 0x1000).unwrap();
    }
    assert_eq!(r.smmu.cache_occupancy().1, 8);
    // TG = 0b01 (4KB), NUM = 2, SCALE = 1: (2+1) * 2^1 = 6 pages from 0x101000, TTL = 3.
    r.cmds(&[tlbi_nh_va_range(7, 0x10_1000, 0b01, 2, 1, 3), sync()]);
    let left: Vec<u64> = r.smmu.iotlb_entries().iter().map(|e| e.va).collect();
    assert_eq!(left, [0x10_0000, 0x10_7000]);
    r.cmds(&[tlbi_nsnh_all(), sync()]);
    assert!(r.smmu.iotlb_entries().is_empty());
}

#[test]
fn block_entry_is_invalidated_by_va_inside_it() {
    let mut r = Rig::new(Features::default());
    let pt = r.simple_s1(2, 7);
    r.map(&pt, 0x20_0000, 0x4000_0000, LEAF_RW, 2);
    r.read(2, None, 0x21_2345).unwrap();
    let e = r.smmu.iotlb_entries();
    assert_eq!((e[0].level, e[0].size, e[0].va), (2, 2 << 20, 0x20_0000));
    r.cmds(&[tlbi_nh_va(7, 0x2f_f000), sync()]);
    assert!(r.smmu.iotlb_entries().is_empty());
}

#[test]
fn stale_ste_until_cfgi_ste() {
    let r = Rig::new(Features::default());
    r.set_ste(5, ste_bypass());
    assert!(r.read(5, None, 0).is_ok());
    r.set_ste(5, ste_abort());
    assert!(r.read(5, None, 0).is_ok(), "cached STE still bypasses");
    r.cmds(&[cfgi_ste(6), sync()]);
    assert!(r.read(5, None, 0).is_ok());
    r.cmds(&[cfgi_ste(5), sync()]);
    assert_eq!(r.read(5, None, 0), Err(TranslateError::Aborted));
    // CFGI_ALL also works.
    r.set_ste(5, ste_bypass());
    r.cmds(&[cfgi_all(), sync()]);
    assert!(r.read(5, None, 0).is_ok());
    // An invalid STE is not cached: fixing it takes effect without a CFGI.
    assert!(r.read(6, None, 0).is_err());
    r.set_ste(6, ste_bypass());
    assert!(r.read(6, None, 0).is_ok());
}

#[test]
fn stale_cd_until_cfgi_cd() {
    let mut r = Rig::new(Features::default());
    let cdt = r.cd_table(2);
    r.set_ste(1, ste_s1(cdt, 2, 0, 0b10));
    let pt_a = r.new_pt(12, 16);
    let pt_b = r.new_pt(12, 16);
    r.map(&pt_a, 0x1000, 0xa000, LEAF_RW, 3);
    r.map(&pt_b, 0x1000, 0xb000, LEAF_RW, 3);
    r.write_words(cdt + 64, &cd(pt_a.root, 16, 12, 11));
    r.write_words(cdt + 128, &cd(pt_a.root, 16, 12, 12));
    assert_eq!(r.read(1, Some(1), 0x1000).unwrap().pa, 0xa000);
    assert_eq!(r.read(1, Some(2), 0x1000).unwrap().pa, 0xa000);
    // Point both CDs at table B with new ASIDs; only CFGI_CD(SSID 1) is issued.
    r.write_words(cdt + 64, &cd(pt_b.root, 16, 12, 21));
    r.write_words(cdt + 128, &cd(pt_b.root, 16, 12, 22));
    r.cmds(&[cfgi_cd(1, 1), sync()]);
    assert_eq!(r.read(1, Some(1), 0x1000).unwrap().pa, 0xb000);
    assert_eq!(
        r.read(1, Some(2), 0x1000).unwrap().pa,
        0xa000,
        "stale CD for SSID 2"
    );
    r.cmds(&[cfgi_cd_all(1), sync()]);
    assert_eq!(r.read(1, Some(2), 0x1000).unwrap().pa, 0xb000);
    // CFGI_STE drops the CDs cached through it too (4.3.1).
    r.write_words(cdt + 64, &cd(pt_a.root, 16, 12, 31));
    r.cmds(&[cfgi_ste(1), sync()]);
    assert_eq!(r.read(1, Some(1), 0x1000).unwrap().pa, 0xa000);
}

#[test]
fn illegal_command_stops_queue_until_gerrorn() {
    let r = Rig::new(Features::default());
    r.set_ste(5, ste_bypass());
    r.read(5, None, 0).unwrap();
    r.set_ste(5, ste_abort());
    // Opcode 0x7f does not exist: CERROR_ILL at index 1; the CFGI behind it must not run.
    r.cmds(&[sync(), [0x7f, 0], cfgi_ste(5), sync()]);
    assert_eq!(r.smmu.read32(GERROR) & 1, 1, "GERROR.CMDQ_ERR");
    let cons = r.smmu.read32(CMDQ_CONS);
    assert_eq!(cons & 0x1f, 1, "CONS stops at the bad command");
    assert_eq!((cons >> 24) & 0x7f, 1, "CONS.ERR = CERROR_ILL");
    assert!(r.read(5, None, 0).is_ok(), "CFGI_STE not yet consumed");
    // More PROD writes do not restart consumption while the error is active.
    r.cmds(&[sync()]);
    assert_eq!(r.smmu.read32(CMDQ_CONS) & 0x1f, 1);
    // Software replaces the bad command with a CMD_SYNC and acknowledges via GERRORN.
    r.write_words(CMDQ + 16, &sync());
    let g = r.smmu.read32(GERROR);
    r.smmu.write32(GERRORN, g);
    assert_eq!(r.cons() & 0x1f, 5);
    assert_eq!(r.read(5, None, 0), Err(TranslateError::Aborted));
    let s = r.smmu.stats();
    assert_eq!(s.command_errors, 1);
    assert_eq!(s.commands[&0x7f], 1);
    // A second error toggles GERROR again.
    r.cmds(&[[0x7e, 0]]);
    assert_eq!((r.smmu.read32(GERROR) ^ r.smmu.read32(GERRORN)) & 1, 1);
}

#[test]
fn secure_cfgi_and_missing_stage_commands_are_illegal() {
    let r = Rig::new(Features::default());
    // CFGI_STE with SSec[10] on the Non-secure queue.
    r.cmds(&[[0x03 | (1 << 10), 0]]);
    assert_eq!((r.smmu.read32(CMDQ_CONS) >> 24) & 0x7f, 1);
    r.write_words(CMDQ, &sync());
    r.smmu.write32(GERRORN, r.smmu.read32(GERROR));
    // TLBI_S12_VMALL without stage 2.
    r.cmds(&[[0x28, 0]]);
    assert_eq!(r.smmu.read32(GERROR) ^ r.smmu.read32(GERRORN), 1);
    assert_eq!(r.cons() & 0x1f, 1);
}

#[test]
fn command_queue_wraps() {
    let r = Rig::with_queues(Features::default(), 2, 4);
    for _ in 0..5 {
        r.cmds(&[sync(), sync(), sync()]);
    }
    assert_eq!(r.smmu.stats().syncs, 15);
    // 15 commands in a 4-entry queue: index 3, wrap bit (bit 2) set.
    assert_eq!(r.cons(), 0b111);
}

#[test]
fn event_queue_overflow() {
    // Two-entry Event queue.
    let mut r = Rig::with_queues(Features::default(), 4, 1);
    let _ = r.simple_s1(2, 1);
    for va in [0x1000, 0x2000, 0x3000] {
        assert!(r.read(2, None, va).is_err());
    }
    // Full after two; the third is lost and OVFLG[31] toggles.
    let prod = r.smmu.read32(EVENTQ_PROD);
    assert_eq!(prod & 0x3, 0b10, "index 0, wrap 1: full");
    assert_eq!(prod >> 31, 1, "OVFLG");
    assert_eq!(r.smmu.stats().events_dropped, 1);
    let ev = r.events();
    assert_eq!(
        ev.iter().map(|e| e.input_addr()).collect::<Vec<_>>(),
        [0x1000, 0x2000]
    );
    // Another overflow while one is pending does not toggle OVFLG back.
    for va in [0x4000, 0x5000, 0x6000] {
        assert!(r.read(2, None, va).is_err());
    }
    assert_eq!(r.smmu.read32(EVENTQ_PROD) >> 31, 1);
    // Acknowledge: OVACKFLG = OVFLG.
    let cons = r.smmu.read32(EVENTQ_CONS);
    r.events();
    r.smmu
        .write32(EVENTQ_CONS, r.smmu.read32(EVENTQ_CONS) | (1 << 31));
    assert_ne!(cons, r.smmu.read32(EVENTQ_CONS));
    for va in [0x7000, 0x8000, 0x9000] {
        assert!(r.read(2, None, va).is_err());
    }
    assert_eq!(
        r.smmu.read32(EVENTQ_PROD) >> 31,
        0,
        "a new overflow toggles OVFLG again"
    );
    assert_eq!(r.smmu.read32(GERROR), 0);
}

#[test]
fn qemu_quirks() {
    // Full Event queue raises GERROR.EVENTQ_ABT_ERR[2] instead of overflowing.
    let mut r = Rig::with_queues(Features::qemu(), 4, 1);
    let _ = r.simple_s1(2, 1);
    for va in [0x1000, 0x2000, 0x3000] {
        assert!(r.read(2, None, va).is_err());
    }
    assert_eq!(r.smmu.read32(GERROR), 1 << 2);
    assert_eq!(r.smmu.read32(EVENTQ_PROD) >> 31, 0);
    // S1CDMax != 0 rejected; C_BAD_STREAMID recorded without RECINVSID.
    r.set_ste(3, ste_s1(0x10_0000, 1, 0, 0));
    r.events();
    assert_eq!(
        r.read(3, None, 0).unwrap_err().event_id(),
        Some(event_id::C_BAD_STE)
    );
    r.smmu.write32(CR2, 0);
    assert_eq!(
        r.read(999, None, 0).unwrap_err().event_id(),
        Some(event_id::C_BAD_STREAMID)
    );
    assert_eq!(r.events().len(), 2);
}

#[test]
fn events_are_not_written_with_eventq_disabled() {
    let r = Rig::new(Features::default());
    r.smmu.write32(CR0, SMMUEN | CMDQEN);
    match r.read(3, None, 0) {
        Err(TranslateError::Fault(f)) => assert!(!f.recorded),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.smmu.read32(EVENTQ_PROD), 0);
    assert_eq!(r.smmu.generated_events().len(), 1);
}

#[test]
fn cache_capacity_flushes_when_full() {
    let f = Features {
        iotlb_capacity: 4,
        config_cache_capacity: 3,
        ..Features::default()
    };
    let mut r = Rig::new(f);
    let pt = r.simple_s1(2, 7);
    for i in 0..5u64 {
        r.map(&pt, i * 0x1000, 0x9_0000 + i * 0x1000, LEAF_RW, 3);
    }
    for i in 0..4u64 {
        r.read(2, None, i * 0x1000).unwrap();
    }
    assert_eq!(r.smmu.cache_occupancy(), (2, 4));
    // The fifth entry empties the full IOTLB first (as QEMU).
    r.read(2, None, 0x4000).unwrap();
    assert_eq!(r.smmu.cache_occupancy().1, 1);
    // Zero capacity: nothing is cached, so memory changes show at once.
    let f = Features {
        iotlb_capacity: 0,
        config_cache_capacity: 0,
        ..Features::default()
    };
    let mut r = Rig::new(f);
    let pt = r.simple_s1(2, 7);
    r.map(&pt, 0x1000, 0xa000, LEAF_RW, 3);
    r.read(2, None, 0x1000).unwrap();
    r.set_leaf(&pt, 0x1000, 0, 3);
    assert!(r.read(2, None, 0x1000).is_err());
    let s = r.smmu.stats();
    assert_eq!((s.walks, s.iotlb_hits, s.config_hits), (2, 0, 0));
}

#[test]
fn cmd_sync_signals() {
    let r = Rig::new(Features {
        msi: true,
        ..Features::default()
    });
    // CMD_SYNC CS[13:12] = 0b01 SIG_IRQ, MSIData[63:32], MSIAddress[115:66] (= addr[51:2]).
    r.cmds(&[[0x46 | (0b01 << 12) | (0xcafe << 32), 0x3000_0040]]);
    assert_eq!(r.mem.read_u32(0x3000_0040), 0xcafe);
    assert_eq!(r.smmu.irq_counts().sync_msis, 1);
    // Without an address, the wired interrupt is pulsed.
    r.cmds(&[[0x46 | (0b01 << 12), 0]]);
    assert_eq!(r.smmu.irq_counts().cmd_sync, 1);
}

#[test]
fn event_and_gerror_interrupts() {
    let r = Rig::new(Features::default());
    // IRQ_CTRL: GERROR_IRQEN[0], EVENTQ_IRQEN[2].
    r.smmu.write32(IRQ_CTRL, 0b101);
    let _ = r.read(77, None, 0);
    r.cmds(&[[0x7f, 0]]);
    let irqs = r.smmu.irq_counts();
    assert_eq!((irqs.eventq, irqs.gerror), (1, 1));
}

#[test]
fn cfgi_ste_range_invalidates_an_aligned_block() {
    let r = Rig::new(Features::default());
    for sid in 0..8 {
        r.set_ste(sid, ste_bypass());
        r.read(sid, None, 0).unwrap();
        r.set_ste(sid, ste_abort());
    }
    // CMD_CFGI_STE_RANGE 0x04: StreamID 5, Range[68:64] = 1 -> StreamIDs 4..=7.
    r.cmds(&[[0x04 | (5 << 32), 1], sync()]);
    for sid in 0..4 {
        assert!(r.read(sid, None, 0).is_ok(), "sid {sid} still cached");
    }
    for sid in 4..8 {
        assert_eq!(r.read(sid, None, 0), Err(TranslateError::Aborted));
    }
}

#[test]
fn range_tlbi_64k_granule() {
    let mut r = Rig::new(Features::default());
    let pt = r.new_pt(16, 16);
    let cdt = r.cd_table(0);
    r.write_words(cdt, &cd(pt.root, 16, 16, 5));
    r.set_ste(1, ste_s1(cdt, 0, 0, 0));
    for i in 0..4u64 {
        r.map(&pt, i << 16, 0x100_0000 + (i << 16), LEAF_RW, 3);
        r.read(1, None, (i << 16) + 0x1234).unwrap();
    }
    assert!(r
        .smmu
        .iotlb_entries()
        .iter()
        .all(|e| e.granule == 1 << 16 && e.level == 3));
    // TG = 0b11 (64KB), NUM = 1, SCALE = 0: 2 pages from 0x10000.
    r.cmds(&[tlbi_nh_va_range(5, 0x1_0000, 0b11, 1, 0, 3), sync()]);
    let left: Vec<u64> = r.smmu.iotlb_entries().iter().map(|e| e.va).collect();
    assert_eq!(left, [0, 0x3_0000]);
}
