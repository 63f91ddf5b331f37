// SPDX-License-Identifier: GPL-2.0
//! Nested translation (STE.Config = 0b111) through the lab QEMU's SMMUv3 with SubstreamIDs
//! and stage 2 (`arm-smmuv3.stage=nested`), driven by this crate's driver core over qtest:
//! the CD table is named by an IPA (S1ContextPtr) and fetched by SubstreamID through stage 2.
//!
//! Stage 2 (built here: the driver core makes no stage 2 tables) has two 1 GiB blocks: RAM at
//! IPA = PA (so the driver's stage 1 tables, L1CD leaves included, are found where the driver
//! put them) and a window at IPA = PA + 4 GiB. The STE names the CD table (linear, or the L1
//! table of a 2-level one) by its window IPA; each domain maps `IOVA` to the window IPA of
//! its page, so every DMA goes through stage 1 then stage 2.
//!
//! * DMA with several PASIDs (and untagged, through CD 0) lands in each PASID's page;
//! * a CD table IPA that stage 2 does not map gives F_TRANSLATION with S2 = 1, CLASS = CD, the
//!   IPA of the entry fetched (IPA[51:12]) and the SubstreamID of the transaction (none for an
//!   untagged one), decoded by the driver's event parser;
//! * a changed CD stays stale until CFGI_CD of its SubstreamID, also across TLBI_S12_VMALL
//!   (TLB invalidation does not touch the configuration cache).
//!
//! The differential suite (`tests/differential`, `nested_*`) compares the same behaviour with
//! the model record for record.

mod qemu_common;

use qemu_common::*;
use qtest::{Edu, GuestRamBlock};
use smmuv3::cmd::{op, Command};
use smmuv3::device::SmmuConfig;
use smmuv3::dma::DmaMemory;
use smmuv3::event::Event;
use smmuv3::pgtable::{Granule, Prot};
use smmuv3::ste::{config, s1dss, s1fmt, MasterOptions, S2Config, Ste};

const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);
const DATA: &[u8; 8] = b"nested!!";
const IOVA: u64 = 0x1000_0000;
/// IPA - PA in the stage 2 window.
const WINDOW: u64 = 1 << 32;
/// `virt`'s RAM (IPA = PA).
const RAM: u64 = 0x4000_0000;
/// Not mapped by stage 2.
const UNMAPPED: u64 = 0x2_0000_0000;
const VMID: u16 = 1;
/// Stage 2 block descriptor: Normal WB, S2AP read/write, Inner Shareable, AF.
const S2_BLOCK: u64 = 0b01 | (0xf << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10);

/// A nested rig with `DATA` in edu's buffer and the stage 2 table (4 KB granule, 39-bit IPA,
/// start level 1): RAM at IPA = PA, the window at IPA = PA + 4 GiB. The block returned holds
/// that table (keep it).
fn setup(cfg: SmmuConfig) -> Option<(Rig, S2Config, GuestRamBlock)> {
    let mut r = rig_pasid_nested(cfg)?;
    assert!(r.smmu.features().s2, "IDR0.S2P with stage=nested");
    r.load_edu(DATA);
    let l1 = r.buf(4096, 4096);
    l1.write_bytes(8 * (RAM >> 30) as usize, &(RAM | S2_BLOCK).to_le_bytes())
        .unwrap();
    l1.write_bytes(
        8 * ((RAM + WINDOW) >> 30) as usize,
        &(RAM | S2_BLOCK).to_le_bytes(),
    )
    .unwrap();
    let s2 = S2Config {
        vmid: VMID,
        tsz: 25,
        sl: 1,
        irgn: 1,
        orgn: 1,
        sh: 3,
        tg: 0,
        ps: 2,
        vttbr: l1.dma_addr(),
    };
    Some((r, s2, l1))
}

/// `n` domains, each mapping `IOVA` to the window IPA of its own zeroed page.
fn domains(r: &mut Rig, n: usize) -> Vec<(Dom, GuestRamBlock)> {
    (0..n)
        .map(|_| {
            let d = r.domain(Granule::G4K);
            let page = r.buf(4096, 4096);
            d.map(IOVA, page.dma_addr() + WINDOW, 4096, RW).unwrap();
            (d, page)
        })
        .collect()
}

/// edu's master with `bits` PASID bits, CDs `cds` (SubstreamID, domain) written by the driver.
fn master(r: &mut Rig, bits: u32, doms: &[(Dom, GuestRamBlock)], cds: &[(u32, usize)]) -> QMaster {
    let mut m = r
        .smmu
        .new_master(&[r.sid], bits, MasterOptions::default())
        .unwrap();
    r.smmu.ensure_cd_table(&mut m).unwrap();
    for &(ssid, d) in cds {
        r.smmu.write_cd(&mut m, ssid, &doms[d].0.cd()).unwrap();
    }
    m
}

/// Writes a nested STE for `m`'s CD table, named by `table_ipa`, with stage 2 `s2`.
fn attach_nested(r: &mut Rig, m: &QMaster, s2: &S2Config, table_ipa: u64, dss: u8) {
    let mut cd = m.cd_table().unwrap().cd_ref();
    cd.dma = table_ipa;
    let feat = r.smmu.features().ste_features();
    let o = MasterOptions::default();
    let s1 = Ste::s1_cdtable(&feat, &o, &cd, dss);
    let s2ste = Ste::s2(&feat, &o, s2);
    let mut w = s1.0;
    w[2] = s2ste.0[2];
    w[3] = s2ste.0[3];
    r.smmu
        .write_ste(r.sid, &Ste(w).set_config(config::NESTED))
        .unwrap();
    assert_eq!(r.smmu.read_ste(r.sid).config(), config::NESTED);
}

/// edu writes `DATA` to `iova` tagged with `pasid`; returns edu's DMA result register.
fn dma(edu: &Edu, pasid: Option<u32>, iova: u64) -> u32 {
    edu.set_dma_pasid(pasid).unwrap();
    edu.dma_from_edu(0, iova, 8).unwrap();
    edu.dma_result().unwrap()
}

/// The DMA of `pasid` at `IOVA` lands in exactly `doms[want]`'s page; clears it again.
fn lands_in(r: &Rig, doms: &[(Dom, GuestRamBlock)], pasid: Option<u32>, want: usize) {
    assert_eq!(dma(&r.edu, pasid, IOVA), Edu::DMA_RESULT_OK, "{pasid:?}");
    for (i, (_, p)) in doms.iter().enumerate() {
        assert_eq!(Rig::read(p, 0, 8) == DATA, i == want, "{pasid:?}: page {i}");
    }
    doms[want].1.fill(0, 4096, 0).unwrap();
}

/// Untagged DMA (CD 0), PASID 1 and PASID `far` land in their own pages, with a CD table of
/// `bits` SubstreamID bits in format `fmt`.
fn cds_land(fmt: u8, cfg: SmmuConfig, bits: u32, far: u32) {
    let Some((mut r, s2, _s2_table)) = setup(cfg) else {
        return;
    };
    let doms = domains(&mut r, 3);
    let m = master(&mut r, bits, &doms, &[(0, 0), (1, 1), (far, 2)]);
    let table = m.cd_table().unwrap().cd_ref();
    assert_eq!(table.s1fmt, fmt, "S1Fmt");
    attach_nested(&mut r, &m, &s2, table.dma + WINDOW, s1dss::SSID0);
    lands_in(&r, &doms, None, 0);
    lands_in(&r, &doms, Some(1), 1);
    lands_in(&r, &doms, Some(far), 2);
    assert_eq!(r.events(), vec![]);
    r.check();
}

#[test]
fn qemu_nested_linear_cd_table_at_an_ipa() {
    let cfg = SmmuConfig {
        force_linear_cd: true,
        ..SmmuConfig::default()
    };
    cds_land(s1fmt::LINEAR, cfg, 4, 15);
}

#[test]
fn qemu_nested_two_level_cd_table_at_an_ipa() {
    // 0x12345: another leaf (L1 index 0x48) than CDs 0 and 1.
    cds_land(
        s1fmt::L2_64K,
        SmmuConfig::default(),
        PASID_SSID_BITS,
        0x1_2345,
    );
}

/// The CD table (linear) at an IPA stage 2 does not map: untagged DMA (CD 0) and PASID 3 both
/// fault at stage 2 with CLASS = CD, at the IPA of their CD.
#[test]
fn qemu_nested_cd_fetch_stage2_fault() {
    let cfg = SmmuConfig {
        force_linear_cd: true,
        ..SmmuConfig::default()
    };
    let Some((mut r, s2, _s2_table)) = setup(cfg) else {
        return;
    };
    let doms = domains(&mut r, 2);
    let m = master(&mut r, 4, &doms, &[(0, 0), (3, 1)]);
    let table = UNMAPPED + 0x4_0000;
    attach_nested(&mut r, &m, &s2, table, s1dss::SSID0);
    let sid = r.sid;
    for (pasid, at) in [(None, table), (Some(3), table + 3 * 64)] {
        assert_eq!(dma(&r.edu, pasid, IOVA), Edu::DMA_RESULT_ERROR, "{pasid:?}");
        let evs = r.events();
        assert_eq!(evs.len(), 2, "one record per 4-byte piece: {evs:x?}");
        for e in evs {
            let Event::Translation(f) = e else {
                panic!("expected F_TRANSLATION, got {e:x?}");
            };
            assert_eq!((f.access.sid, f.access.ssid), (sid, pasid), "{f:x?}");
            assert!(f.stage2, "S2 = 1: {f:x?}");
            assert_eq!(f.class, 0, "CLASS = CD: {f:x?}");
            // IPA[51:12] of the entry fetched (the driver reads only those bits: QEMU's
            // stray bits [11:0] before patch 0007 show in the differential suite's raw records).
            assert_eq!(f.ipa, at & !0xfff, "{f:x?}");
            assert!((IOVA..IOVA + 8).contains(&f.access.addr), "{f:x?}");
        }
        assert!(doms.iter().all(|(_, p)| Rig::read(p, 0, 8) != DATA));
    }
    r.check();
}

/// A CD rewritten without CFGI_CD stays in use, also after TLBI_S12_VMALL; CFGI_CD of its
/// SubstreamID (not of another one) makes the SMMU fetch it again through stage 2.
#[test]
fn qemu_nested_stale_cd_until_cfgi_cd() {
    let Some((mut r, s2, _s2_table)) = setup(SmmuConfig::default()) else {
        return;
    };
    let doms = domains(&mut r, 3);
    let mut m = master(&mut r, PASID_SSID_BITS, &doms, &[(1, 0), (2, 1)]);
    let table = m.cd_table().unwrap().cd_ref().dma;
    attach_nested(&mut r, &m, &s2, table + WINDOW, s1dss::TERMINATE);
    let sid = r.sid;
    lands_in(&r, &doms, Some(1), 0);
    lands_in(&r, &doms, Some(2), 1);

    r.arm(Tamper::drop_op(op::CFGI_CD));
    r.smmu.write_cd(&mut m, 1, &doms[2].0.cd()).unwrap();
    assert!(!r.disarm().is_empty(), "no CFGI_CD was dropped");
    lands_in(&r, &doms, Some(1), 0);
    r.smmu
        .submit_sync(&[Command::TlbiS12Vmall { vmid: VMID }])
        .unwrap();
    lands_in(&r, &doms, Some(1), 0);
    r.smmu.inv_cd(sid, 2).unwrap();
    lands_in(&r, &doms, Some(1), 0);
    r.smmu.inv_cd(sid, 1).unwrap();
    lands_in(&r, &doms, Some(1), 2);
    lands_in(&r, &doms, Some(2), 1);
    assert_eq!(r.events(), vec![]);
    r.check();
}
