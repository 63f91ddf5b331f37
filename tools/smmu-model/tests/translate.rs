// SPDX-License-Identifier: GPL-2.0
//! Transaction-path tests of the SMMU model: STE configs, stage 1 walks, stream and CD tables,
//! SubstreamIDs, faults and their raw event records.

mod common;
use common::*;
use smmu_model::spec::event_id;
use smmu_model::{Access, Event, Features, Shareability, TranslateError, TxnAttrs};
use smmuv3::dma::Mmio;

fn fault_event(r: Result<smmu_model::Translation, TranslateError>) -> Event {
    match r {
        Err(TranslateError::Fault(f)) => f.event,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn bypass_ste_passes_address_through() {
    let r = Rig::new(Features::default());
    r.set_ste(3, ste_bypass());
    let t = r.read(3, None, 0x1234_5678).unwrap();
    assert_eq!(t.pa, 0x1234_5678);
    assert!(!t.stage1);
    // Incoming PCIe memory type passes through (MTCFG == 0); SHCFG[109:108] == 0b00 makes it
    // Non-shareable.
    assert_eq!(t.attrs.attr, 0xff);
    assert_eq!(t.attrs.sh, Shareability::Non);
    // SHCFG = 0b01 "use incoming": Inner Shareable; MTCFG[100] + MemAttr[99:96] = 0b0101
    // (Normal Non-cacheable) overrides the type.
    let mut ste = ste_bypass();
    ste[1] = (0b01 << 44) | (1 << 36) | (0b0101 << 32);
    r.set_ste(3, ste);
    r.cmds(&[cfgi_ste(3), sync()]);
    let t = r.read(3, None, 0x1234_5678).unwrap();
    assert_eq!(t.attrs.sh, Shareability::Inner);
    assert_eq!(t.attrs.attr, 0x44);
    assert!(!t.attrs.is_cacheable());
    assert!(r.events().is_empty());
}

#[test]
fn abort_ste_terminates_without_event() {
    let r = Rig::new(Features::default());
    r.set_ste(4, ste_abort());
    assert_eq!(r.read(4, None, 0x1000), Err(TranslateError::Aborted));
    // 5.2: Config 0b0xx reserved values behave as 0b000.
    r.set_ste(5, [1 | (0b011 << 1), 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(r.read(5, None, 0x1000), Err(TranslateError::Aborted));
    assert!(r.events().is_empty());
}

#[test]
fn smmu_disabled_follows_gbpa() {
    let r = Rig::new(Features::default());
    r.smmu.write32(CR0, 0);
    assert_eq!(r.read(9, None, 0xabc).unwrap().pa, 0xabc);
    // GBPA (6.3.14): ABORT[20] only takes effect with UPDATE[31].
    r.smmu.write32(GBPA, 1 << 20);
    assert!(r.read(9, None, 0xabc).is_ok());
    r.smmu.write32(GBPA, (1 << 31) | (1 << 20));
    assert_eq!(r.smmu.read32(GBPA) >> 31, 0, "UPDATE completes at once");
    assert_eq!(r.read(9, None, 0xabc), Err(TranslateError::Aborted));
}

#[test]
fn invalid_ste_records_c_bad_ste() {
    let r = Rig::new(Features::default());
    let e = fault_event(r.read(7, None, 0x1000));
    // 7.3.5 C_BAD_STE: type 0x04 in [7:0], StreamID in [63:32], nothing else.
    assert_eq!(e.words(), [0x04 | (7 << 32), 0, 0, 0]);
    assert_eq!(r.events(), vec![e]);
    // With a SubstreamID: SSV[11] and SubstreamID[31:12].
    let e = fault_event(r.read(7, Some(5), 0x1000));
    assert_eq!(e.words()[0], 0x04 | (1 << 11) | (5 << 12) | (7 << 32));
}

#[test]
fn out_of_range_streamid_needs_recinvsid() {
    let r = Rig::new(Features::default());
    // LOG2SIZE = 8: StreamID 256 is out of range (7.3.3).
    let e = fault_event(r.read(256, None, 0));
    assert_eq!(e.words(), [0x02 | (256 << 32), 0, 0, 0]);
    assert_eq!(r.events().len(), 1);
    r.smmu.write32(CR2, 0);
    match r.read(256, None, 0) {
        Err(TranslateError::Fault(f)) => assert!(!f.recorded),
        other => panic!("{other:?}"),
    }
    assert!(r.events().is_empty());
}

fn stage1_roundtrip(granule: u32, t0sz: u32) {
    let mut r = Rig::new(Features::default());
    let pt = r.new_pt(granule, t0sz);
    let cdt = r.cd_table(0);
    r.write_words(cdt, &cd(pt.root, u64::from(t0sz), granule, 9));
    r.set_ste(1, ste_s1(cdt, 0, 0, 0));
    let page = 1u64 << granule;
    let va = 0x40_0000_0000 & ((1u64 << (64 - t0sz)) - 1) | (5 * page);
    r.map(&pt, va, 0x8000_0000 + 7 * page, LEAF_RW, 3);
    let t = r.read(1, None, va + 0x18).unwrap();
    assert_eq!(t.pa, 0x8000_0000 + 7 * page + 0x18);
    assert!(t.stage1);
    assert_eq!(t.attrs.attr, 0xff);
    // Level 2 block: 2MB (4KB), 32MB (16KB), 512MB (64KB).
    let block = 1u64 << (granule + (granule - 3));
    let bva = 2 * block;
    r.map(&pt, bva, 0x1_0000_0000, LEAF_RO, 2);
    let t = r.read(1, None, bva + block / 2 + 4).unwrap();
    assert_eq!(t.pa, 0x1_0000_0000 + block / 2 + 4);
    assert_eq!(
        r.smmu
            .iotlb_entries()
            .iter()
            .filter(|e| e.level == 2)
            .count(),
        1
    );
    // Unmapped: F_TRANSLATION with InputAddr, RnW, CLASS == IN.
    let e = fault_event(r.write(1, None, 3 * block));
    assert_eq!(e.id(), event_id::F_TRANSLATION);
    assert_eq!(e.input_addr(), 3 * block);
    assert!(!e.rnw());
    assert_eq!(e.class(), 0b10);
    assert!(r.events().len() == 1);
}

#[test]
fn stage1_4k() {
    stage1_roundtrip(12, 16);
    stage1_roundtrip(12, 25); // 39-bit VA, start level 1
}

#[test]
fn stage1_16k() {
    stage1_roundtrip(14, 16); // start level 0 with a 2-entry table
    stage1_roundtrip(14, 28);
}

#[test]
fn stage1_64k() {
    stage1_roundtrip(16, 16);
    stage1_roundtrip(16, 22); // 42-bit VA, start level 2
}

#[test]
fn translation_fault_record_is_exact() {
    let mut r = Rig::new(Features::default());
    let _pt = r.simple_s1(2, 1);
    let e = fault_event(r.read(2, None, 0x7000_1234));
    // 7.3.13: [7:0]=0x10, SSV=0, StreamID; RnW[99]=1 (read), CLASS[105:104]=IN, S2=0,
    // PnU=InD=0 (unprivileged data), InputAddr[191:128], IPA UNKNOWN (0).
    assert_eq!(
        e.words(),
        [0x10 | (2 << 32), (1 << 35) | (0b10 << 40), 0x7000_1234, 0]
    );
    assert_eq!(r.events(), vec![e]);
    // Privileged instruction fetch: PnU[97] and InD[98].
    let attrs = TxnAttrs {
        privileged: true,
        instruction: true,
        no_snoop: false,
    };
    let e = fault_event(r.smmu.translate(2, None, 0x5000, Access::Read, attrs));
    assert_eq!(
        e.words()[1],
        (1 << 33) | (1 << 34) | (1 << 35) | (0b10 << 40)
    );
}

#[test]
fn permission_access_and_address_size_faults() {
    let mut r = Rig::new(Features::default());
    let pt = r.simple_s1(2, 1);
    r.map(&pt, 0x1000, 0x9000, LEAF_RO, 3);
    assert!(r.read(2, None, 0x1000).is_ok());
    assert_eq!(
        fault_event(r.write(2, None, 0x1000)).id(),
        event_id::F_PERMISSION
    );
    // AP[1] == 0: not accessible to unprivileged transactions (PCIe default).
    r.map(&pt, 0x2000, 0xa000, LEAF_RW & !(1 << 6), 3);
    assert_eq!(
        fault_event(r.read(2, None, 0x2000)).id(),
        event_id::F_PERMISSION
    );
    let privileged = TxnAttrs {
        privileged: true,
        ..Default::default()
    };
    assert!(r
        .smmu
        .translate(2, None, 0x2000, Access::Read, privileged)
        .is_ok());
    // AF == 0 with AFFD == 0 and no HTTU: F_ACCESS.
    r.map(&pt, 0x3000, 0xb000, LEAF_RW & !(1 << 10), 3);
    assert_eq!(
        fault_event(r.read(2, None, 0x3000)).id(),
        event_id::F_ACCESS
    );
    // Output address above the CD's IPS (32 bits here): F_ADDR_SIZE.
    let pt2 = r.new_pt(12, 16);
    let cdt = r.cd_table(0);
    r.write_words(cdt, &cd_with_ips(cd(pt2.root, 16, 12, 3), 0b000));
    r.set_ste(6, ste_s1(cdt, 0, 0, 0));
    r.map(&pt2, 0x4000, 0x1_0000_0000, LEAF_RW, 3);
    assert_eq!(
        fault_event(r.read(6, None, 0x4000)).id(),
        event_id::F_ADDR_SIZE
    );
    let ids: Vec<u8> = r.events().iter().map(|e| e.id()).collect();
    assert_eq!(ids, [0x13, 0x13, 0x12, 0x11]);
}

#[test]
fn affd_and_record_bit() {
    let mut r = Rig::new(Features::default());
    let pt = r.new_pt(12, 16);
    let cdt = r.cd_table(0);
    r.write_words(cdt, &cd_no_record(cd_affd(cd(pt.root, 16, 12, 1))));
    r.set_ste(2, ste_s1(cdt, 0, 0, 0));
    r.map(&pt, 0x3000, 0xb000, LEAF_RW & !(1 << 10), 3);
    assert!(r.read(2, None, 0x3000).is_ok(), "AFFD: AF treated as 1");
    // CD.R == 0: the fault is not recorded.
    match r.read(2, None, 0x9000) {
        Err(TranslateError::Fault(f)) => {
            assert_eq!(f.event.id(), event_id::F_TRANSLATION);
            assert!(!f.recorded);
        }
        other => panic!("{other:?}"),
    }
    assert!(r.events().is_empty());
}

#[test]
fn ttb1_and_epd() {
    let mut r = Rig::new(Features::default());
    let _pt = r.simple_s1(2, 1);
    // VA[55] == 1 selects TTB1, disabled by EPD1: F_TRANSLATION.
    assert_eq!(
        fault_event(r.read(2, None, 0xffff_0000_0000_0000)).id(),
        0x10
    );
    // Bits above T0SZ not all zero and no TBI: F_TRANSLATION.
    assert_eq!(
        fault_event(r.read(2, None, 0x0001_0000_0000_0000)).id(),
        0x10
    );
}

#[test]
fn bad_cd_is_c_bad_cd() {
    let mut r = Rig::new(Features::default());
    let cdt = r.cd_table(0);
    r.set_ste(2, ste_s1(cdt, 0, 0, 0));
    // CD.V == 0.
    let e = fault_event(r.read(2, None, 0));
    assert_eq!(e.words(), [0x0a | (2 << 32), 0, 0, 0]);
    // T0SZ = 12 is out of range (16..=39) without 52-bit VA support.
    r.write_words(cdt, &cd(0x10_0000, 12, 12, 1));
    assert_eq!(fault_event(r.read(2, None, 0)).id(), event_id::C_BAD_CD);
    // TTB0 beyond IPS (48 bits).
    r.write_words(cdt, &cd(1 << 49, 16, 12, 1));
    assert_eq!(fault_event(r.read(2, None, 0)).id(), event_id::C_BAD_CD);
    assert_eq!(r.events().len(), 3);
}

#[test]
fn two_level_stream_table() {
    let mut r = Rig::new(Features::default());
    // LOG2SIZE = 12, SPLIT = 8: 16 L1STDs, 256 STEs per full L2 table.
    r.two_level_strtab(12, 8);
    let l1 = STRTAB;
    let l2 = r.alloc(64 * 256, 64 * 256);
    // L1STD #3 covers StreamIDs 0x300..0x3ff; Span = 5 gives 2^(5-1) = 16 STEs.
    r.mem.write_u64(l1 + 3 * 8, l1std(l2, 5));
    r.write_words(l2 + 2 * 64, &ste_bypass());
    assert_eq!(r.read(0x302, None, 0x5000).unwrap().pa, 0x5000);
    // StreamID[7:0] = 0x10 >= 16: outside the span, C_BAD_STREAMID.
    assert_eq!(
        fault_event(r.read(0x310, None, 0)).id(),
        event_id::C_BAD_STREAMID
    );
    // L1STD #4 with Span = 0: invalid.
    assert_eq!(
        fault_event(r.read(0x400, None, 0)).id(),
        event_id::C_BAD_STREAMID
    );
    // Within the span but STE.V == 0: C_BAD_STE.
    assert_eq!(
        fault_event(r.read(0x301, None, 0)).id(),
        event_id::C_BAD_STE
    );
    // Beyond LOG2SIZE.
    assert_eq!(
        fault_event(r.read(0x1000, None, 0)).id(),
        event_id::C_BAD_STREAMID
    );
    assert_eq!(r.events().len(), 4);
}

/// Builds stream `sid` with a 2-level CD table (S1Fmt = 0b01, 4KB leaf tables of 64 CDs),
/// S1CDMax = 10, and CDs for `ssids`, each with its own ASID and a page at 0x1000.
fn two_level_cd(r: &mut Rig, sid: u32, dss: u64, ssids: &[u32]) {
    let l1 = r.alloc(8 * 16, 128);
    r.set_ste(sid, ste_s1(l1, 10, 0b01, dss));
    for &s in ssids {
        let slot = l1 + u64::from(s >> 6) * 8;
        let mut l2 = r.mem.read_u64(slot) & !0xfff;
        if l2 == 0 {
            l2 = r.alloc(4096, 4096);
            r.mem.write_u64(slot, l1cd(l2));
        }
        let pt = r.new_pt(12, 16);
        r.map(&pt, 0x1000, 0x10_0000 * u64::from(s + 1), LEAF_RW, 3);
        r.write_words(
            l2 + u64::from(s & 63) * 64,
            &cd(pt.root, 16, 12, 100 + s as u16),
        );
    }
}

#[test]
fn two_level_cd_table_with_ssids() {
    let mut r = Rig::new(Features::default());
    two_level_cd(&mut r, 8, 0b10, &[0, 1, 70, 1000]);
    for s in [1u32, 70, 1000] {
        assert_eq!(
            r.read(8, Some(s), 0x1008).unwrap().pa,
            0x10_0000 * u64::from(s + 1) + 8
        );
    }
    // Untagged traffic with S1DSS = 0b10 uses CD 0.
    assert_eq!(r.read(8, None, 0x1000).unwrap().pa, 0x10_0000);
    // An SSID under an L1CD with V == 0: C_BAD_SUBSTREAMID with that SubstreamID (5.3.1).
    let e = fault_event(r.read(8, Some(200), 0x1000));
    assert_eq!(e.words(), [0x08 | (200 << 12) | (8 << 32), 0, 0, 0]);
    // A valid L1CD whose CD has V == 0: C_BAD_CD with SSV and SubstreamID.
    let e = fault_event(r.read(8, Some(2), 0x1000));
    assert_eq!(
        e.words(),
        [0x0a | (1 << 11) | (2 << 12) | (8 << 32), 0, 0, 0]
    );
    // Per-SSID faults carry SSV/SubstreamID.
    let e = fault_event(r.read(8, Some(70), 0x9000));
    assert_eq!(e.id(), event_id::F_TRANSLATION);
    assert!(e.ssv());
    assert_eq!(e.ssid(), 70);
    assert_eq!(r.events().len(), 3);
}

#[test]
fn linear_cd_table_with_ssids() {
    let mut r = Rig::new(Features::default());
    let cdt = r.cd_table(3);
    r.set_ste(1, ste_s1(cdt, 3, 0, 0b10));
    for s in 1..8u64 {
        let pt = r.new_pt(12, 16);
        r.map(&pt, 0x2000, 0x100_0000 * s, LEAF_RW, 3);
        r.write_words(cdt + s * 64, &cd(pt.root, 16, 12, s as u16));
    }
    for s in 1..8u32 {
        assert_eq!(
            r.read(1, Some(s), 0x2004).unwrap().pa,
            0x100_0000 * u64::from(s) + 4
        );
    }
}

#[test]
fn bad_substreamid_cases() {
    let mut r = Rig::new(Features::default());
    two_level_cd(&mut r, 8, 0b10, &[1]);
    // SubstreamID >= 2^S1CDMax.
    assert_eq!(
        fault_event(r.read(8, Some(1 << 10), 0)).id(),
        event_id::C_BAD_SUBSTREAMID
    );
    // Substreams disabled (S1CDMax == 0).
    let _ = r.simple_s1(2, 1);
    assert_eq!(
        fault_event(r.read(2, Some(1), 0)).id(),
        event_id::C_BAD_SUBSTREAMID
    );
    // Stage 1 bypassed.
    r.set_ste(3, ste_bypass());
    let e = fault_event(r.read(3, Some(9), 0));
    assert_eq!(e.words(), [0x08 | (9 << 12) | (3 << 32), 0, 0, 0]);
    // An SMMU without substreams (SSIDSIZE == 0).
    let mut q = Rig::new(Features {
        ssidsize: 0,
        ..Features::default()
    });
    let _ = q.simple_s1(2, 1);
    assert_eq!(
        fault_event(q.read(2, Some(0), 0)).id(),
        event_id::C_BAD_SUBSTREAMID
    );
    // S1CDMax above SSIDSIZE is an ILLEGAL STE.
    let f = Rig::new(Features {
        ssidsize: 4,
        ..Features::default()
    });
    f.set_ste(1, ste_s1(0x10_0000, 5, 0, 0));
    assert_eq!(fault_event(f.read(1, None, 0)).id(), event_id::C_BAD_STE);
}

#[test]
fn s1dss_modes() {
    let mut r = Rig::new(Features::default());
    // 0b00 terminate: untagged traffic gets F_STREAM_DISABLED (StreamID only).
    two_level_cd(&mut r, 8, 0b00, &[0, 1]);
    let e = fault_event(r.read(8, None, 0x1000));
    assert_eq!(e.words(), [0x06 | (8 << 32), 0, 0, 0]);
    assert!(
        r.read(8, Some(0), 0x1000).is_ok(),
        "SSID 0 is usable with S1DSS = terminate"
    );
    // 0b01 bypass: untagged traffic bypasses stage 1, tagged traffic translates.
    two_level_cd(&mut r, 9, 0b01, &[1]);
    let t = r.read(9, None, 0x1234).unwrap();
    assert_eq!((t.pa, t.stage1), (0x1234, false));
    assert!(r.read(9, Some(1), 0x1000).unwrap().stage1);
    // 0b10 SSID0: untagged uses CD 0, SubstreamID 0 is F_STREAM_DISABLED.
    two_level_cd(&mut r, 10, 0b10, &[0, 1]);
    assert_eq!(r.read(10, None, 0x1000).unwrap().pa, 0x10_0000);
    assert_eq!(
        fault_event(r.read(10, Some(0), 0x1000)).id(),
        event_id::F_STREAM_DISABLED
    );
    // 0b11 reserved, behaves as 0b00.
    two_level_cd(&mut r, 11, 0b11, &[1]);
    assert_eq!(
        fault_event(r.read(11, None, 0x1000)).id(),
        event_id::F_STREAM_DISABLED
    );
    assert_eq!(r.events().len(), 3);
}

#[test]
fn ste_overrides_privilege() {
    let mut r = Rig::new(Features::default());
    let pt = r.simple_s1(2, 1);
    r.map(&pt, 0x2000, 0xa000, LEAF_RW & !(1 << 6), 3);
    // STE.PRIVCFG[113:112] = 0b11: privileged.
    let mut ste = r.mem.read_u64(STRTAB + 2 * 64 + 8);
    ste |= 0b11 << 48;
    r.mem.write_u64(STRTAB + 2 * 64 + 8, ste);
    assert!(r.read(2, None, 0x2000).is_ok());
    // The record reports post-override PnU.
    let e = fault_event(r.read(2, None, 0x8000));
    assert!(e.pnu());
}

#[test]
fn two_level_cd_table_with_64k_leaves() {
    let mut r = Rig::new(Features::default());
    // S1Fmt = 0b10: 64KB L2 tables of 1024 CDs; S1CDMax = 12 -> 4 L1CDs.
    let l1 = r.alloc(64, 64);
    r.set_ste(4, ste_s1(l1, 12, 0b10, 0));
    let l2 = r.alloc(1 << 16, 1 << 16);
    r.mem.write_u64(l1 + 2 * 8, l1cd(l2));
    let pt = r.new_pt(12, 16);
    r.map(&pt, 0x1000, 0x77_0000, LEAF_RW, 3);
    // SubstreamID 2*1024 + 5 -> L1CD #2, CD #5.
    r.write_words(l2 + 5 * 64, &cd(pt.root, 16, 12, 42));
    assert_eq!(r.read(4, Some(2053), 0x1010).unwrap().pa, 0x77_0010);
    assert_eq!(
        fault_event(r.read(4, Some(5), 0x1010)).id(),
        event_id::C_BAD_SUBSTREAMID
    );
    // Untagged traffic with S1DSS = 0b00 (terminate).
    assert_eq!(
        fault_event(r.read(4, None, 0x1010)).id(),
        event_id::F_STREAM_DISABLED
    );
}
