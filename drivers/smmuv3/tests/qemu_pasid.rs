// SPDX-License-Identifier: GPL-2.0
//! PASID-tagged DMA through the lab QEMU's SMMUv3 (SubstreamIDs, `tools/qemu/patches`), driven
//! by this crate's driver core over qtest. `edu-pasid` (`docs/pasid-device.md`) tags its DMA
//! with the PASID written to its register 0xa0; the SMMU translates it through the CD of that
//! SubstreamID.
//!
//! * every PASID goes through its own CD (linear and 2-level CD tables, 64 KB and 4 KB
//!   leaves), untagged DMA through CD 0 (S1DSS = SSID0); an invalid CD is C_BAD_CD, an invalid
//!   L1 descriptor C_BAD_SUBSTREAMID;
//! * a SubstreamID at or beyond 2^S1CDMax is refused with C_BAD_SUBSTREAMID, a fault names the
//!   PASID (SSV = 1), a PASID with PASID Enable clear is not sent;
//! * a changed CD stays stale until CFGI_CD for its SubstreamID (CFGI_CD of another SubstreamID
//!   does not drop it), CFGI_CD_ALL or CFGI_STE;
//! * S1DSS: terminate, bypass, SSID0 (then SubstreamID 0 is terminated);
//! * edu-pasid's interrupt message (registers 0xa8..0xb4) is tagged like the DMA it completes:
//!   it lands at the doorbell its PASID's CD maps, faults naming the PASID where only another
//!   PASID maps it, and replaces the PCI MSI only while enabled.

mod qemu_common;

use qemu_common::*;
use qtest::{Edu, GuestRamBlock};
use smmuv3::cmd::{op, Command};
use smmuv3::device::SmmuConfig;
use smmuv3::dma::DmaMemory;
use smmuv3::event::Event;
use smmuv3::pgtable::{Granule, Prot};
use smmuv3::ste::{s1dss, s1fmt, CdTableRef, MasterOptions, Ste};

const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);
const DATA: &[u8; 8] = b"pasid!!!";
const IOVA: u64 = 0x1000_0000;

/// A PASID rig with `DATA` in edu's buffer at 0 (loaded through a bypass STE).
fn setup(cfg: SmmuConfig) -> Option<Rig> {
    let mut r = rig_pasid(cfg)?;
    assert_eq!(
        r.smmu.features().ssid_bits,
        PASID_SSID_BITS,
        "IDR1.SSIDSIZE"
    );
    r.load_edu(DATA);
    Some(r)
}

/// edu writes `DATA` to `iova`, tagged with `pasid`; returns edu's DMA result register.
fn dma(edu: &Edu, pasid: Option<u32>, iova: u64) -> u32 {
    edu.set_dma_pasid(pasid).unwrap();
    edu.dma_from_edu(0, iova, 8).unwrap();
    edu.dma_result().unwrap()
}

/// The one event `evs` repeats: QEMU translates a failed 8-byte DMA once per 4-byte piece, so
/// one DMA can record the same event more than once.
fn one_kind(evs: Vec<Event>) -> Event {
    let Some(first) = evs.first().copied() else {
        panic!("expected an event, got none");
    };
    assert!(
        evs.iter().all(|e| *e == first),
        "different events: {evs:x?}"
    );
    first
}

fn has_data(b: &GuestRamBlock) -> bool {
    Rig::read(b, 0, 8) == DATA
}

/// edu's master with `bits` PASID bits and its CD table (no STE written yet).
fn master(r: &mut Rig, bits: u32) -> QMaster {
    let mut m = r
        .smmu
        .new_master(&[r.sid], bits, MasterOptions::default())
        .unwrap();
    r.smmu.ensure_cd_table(&mut m).unwrap();
    m
}

/// `n` domains, each mapping `IOVA` to its own zeroed page.
fn domains(r: &mut Rig, n: usize) -> Vec<(Dom, GuestRamBlock)> {
    (0..n)
        .map(|_| {
            let d = r.domain(Granule::G4K);
            let page = r.buf(4096, 4096);
            d.map(IOVA, page.dma_addr(), 4096, RW).unwrap();
            (d, page)
        })
        .collect()
}

/// Untagged DMA through CD 0, PASID 1 and PASID `far` through their own CDs, all at `IOVA`;
/// PASID `unset` (no CD written) gives the event `unset_event(StreamID)`.
fn three_address_spaces(
    cfg: SmmuConfig,
    fmt: u8,
    far: u32,
    unset: u32,
    unset_event: impl Fn(u32) -> Event,
) {
    let Some(mut r) = setup(cfg) else { return };
    let doms = domains(&mut r, 3);
    let mut m = master(&mut r, PASID_SSID_BITS);
    for (ssid, (d, _)) in [0, 1, far].into_iter().zip(&doms) {
        r.smmu.write_cd(&mut m, ssid, &d.cd()).unwrap();
    }
    r.smmu.attach_cd_table(&mut m, s1dss::SSID0).unwrap();
    let ste = r.smmu.read_ste(r.sid);
    assert_eq!(ste.s1fmt(), fmt, "STE.S1Fmt");
    println!("S1Fmt {} S1CDMax {}", ste.s1fmt(), ste.s1cdmax());

    for (i, pasid) in [None, Some(1), Some(far)].into_iter().enumerate() {
        assert_eq!(dma(&r.edu, pasid, IOVA), Edu::DMA_RESULT_OK, "{pasid:?}");
        for (j, (_, page)) in doms.iter().enumerate() {
            assert_eq!(has_data(page), i == j, "PASID {pasid:?}: page {j}");
        }
        doms[i].1.fill(0, 4096, 0).unwrap();
    }
    assert_eq!(r.events(), vec![]);
    assert_eq!(dma(&r.edu, Some(unset), IOVA), Edu::DMA_RESULT_ERROR);
    assert_eq!(one_kind(r.events()), unset_event(r.sid));
    r.check();
}

#[test]
fn qemu_pasid_dma_uses_its_cd_linear_table() {
    let cfg = SmmuConfig {
        force_linear_cd: true,
        ..SmmuConfig::default()
    };
    // CD 999 is in the table but invalid: C_BAD_CD naming the PASID (SSV = 1).
    let ev = |sid| Event::BadCd {
        sid,
        ssid: Some(999),
    };
    three_address_spaces(cfg, s1fmt::LINEAR, 1000, 999, ev);
}

#[test]
fn qemu_pasid_dma_uses_its_cd_two_level_table() {
    // 0x12345 lies in another leaf (L1 index 0x48) than PASIDs 0 and 1.
    // 0x8_0000's leaf was never allocated: its L1 descriptor is invalid, C_BAD_SUBSTREAMID.
    let ev = |sid| Event::BadSubstreamId {
        sid,
        ssid: Some(0x8_0000),
    };
    three_address_spaces(SmmuConfig::default(), s1fmt::L2_64K, 0x1_2345, 0x8_0000, ev);
}

/// A 2-level CD table with 4 KB leaves (S1Fmt = 1; the driver core only makes 64 KB ones),
/// built by hand: S1CDMax 8, L1 entry 1 valid (SubstreamIDs 64..127), the others invalid.
#[test]
fn qemu_pasid_two_level_4k_leaves() {
    let Some(mut r) = setup(SmmuConfig::default()) else {
        return;
    };
    let doms = domains(&mut r, 1);
    let (l1, leaf) = (r.buf(4096, 4096), r.buf(4096, 4096));
    let cd = doms[0].0.cd();
    for (i, w) in cd.0.iter().enumerate() {
        leaf.write_bytes(64 + i * 8, &w.to_le_bytes()).unwrap();
    }
    l1.write_bytes(8, &(leaf.dma_addr() | 1).to_le_bytes())
        .unwrap();
    let table = CdTableRef {
        dma: l1.dma_addr(),
        s1fmt: s1fmt::L2_4K,
        s1cdmax: 8,
    };
    let feat = r.smmu.features().ste_features();
    let ste = Ste::s1_cdtable(&feat, &MasterOptions::default(), &table, s1dss::TERMINATE);
    r.smmu.write_ste(r.sid, &ste).unwrap();
    let sid = r.sid;

    // SubstreamID 65: L1 index 1, CD 1 of the leaf.
    assert_eq!(dma(&r.edu, Some(65), IOVA), Edu::DMA_RESULT_OK);
    assert!(has_data(&doms[0].1));
    for (pasid, what) in [(5, "invalid L1CD"), (256, "beyond S1CDMax")] {
        assert_eq!(
            dma(&r.edu, Some(pasid), IOVA),
            Edu::DMA_RESULT_ERROR,
            "{what}"
        );
        let ev = Event::BadSubstreamId {
            sid,
            ssid: Some(pasid),
        };
        assert_eq!(one_kind(r.events()), ev, "{what}");
    }
    r.check();
}

#[test]
fn qemu_pasid_beyond_s1cdmax_and_faults_name_the_pasid() {
    let Some(mut r) = setup(SmmuConfig::default()) else {
        return;
    };
    let doms = domains(&mut r, 1);
    // 4 PASID bits: a 16-CD linear table.
    let mut m = master(&mut r, 4);
    r.smmu.write_cd(&mut m, 15, &doms[0].0.cd()).unwrap();
    r.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    assert_eq!(r.smmu.read_ste(r.sid).s1cdmax(), 4);

    assert_eq!(dma(&r.edu, Some(15), IOVA), Edu::DMA_RESULT_OK);
    assert!(has_data(&doms[0].1));
    doms[0].1.fill(0, 4096, 0).unwrap();

    assert_eq!(dma(&r.edu, Some(16), IOVA), Edu::DMA_RESULT_ERROR);
    let sid = r.sid;
    assert_eq!(
        one_kind(r.events()),
        Event::BadSubstreamId {
            sid,
            ssid: Some(16)
        }
    );
    // CD 15 translates IOVA only: a fault at IOVA + 1 MiB names PASID 15 (SSV = 1).
    assert_eq!(
        dma(&r.edu, Some(15), IOVA + 0x10_0000),
        Edu::DMA_RESULT_ERROR
    );
    let evs = r.events();
    assert!(!evs.is_empty(), "expected F_TRANSLATION events");
    for e in evs {
        match e {
            Event::Translation(f) => {
                assert_eq!((f.access.sid, f.access.ssid), (sid, Some(15)), "{f:?}");
                assert!((IOVA + 0x10_0000..IOVA + 0x10_0008).contains(&f.access.addr));
            }
            other => panic!("expected F_TRANSLATION, got {other:?}"),
        }
    }
    // PASID Enable clear: edu-pasid sends nothing (no event either).
    r.m.set_pasid_enable(r.edu.bdf(), false).unwrap();
    assert_eq!(dma(&r.edu, Some(15), IOVA), Edu::DMA_RESULT_NO_PASID);
    assert!(!has_data(&doms[0].1));
    assert_eq!(r.events(), vec![]);
    r.check();
}

/// Points CD `ssid` at `dom` with every CFGI_CD the driver issues dropped on its way to the
/// SMMU: the CD in memory changes, the SMMU is not told.
fn write_cd_unannounced(r: &mut Rig, m: &mut QMaster, ssid: u32, dom: &Dom) {
    r.arm(Tamper::drop_op(op::CFGI_CD));
    r.smmu.write_cd(m, ssid, &dom.cd()).unwrap();
    assert!(!r.disarm().is_empty(), "no CFGI_CD was dropped");
}

/// The DMA of `pasid` at `IOVA` lands in exactly `pages[want]`; clears it again.
fn lands_in(r: &Rig, pasid: u32, pages: &[&GuestRamBlock], want: usize, what: &str) {
    assert_eq!(dma(&r.edu, Some(pasid), IOVA), Edu::DMA_RESULT_OK, "{what}");
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(has_data(p), i == want, "{what}: page {i}");
    }
    pages[want].fill(0, 4096, 0).unwrap();
}

#[test]
fn qemu_pasid_stale_cd_until_its_invalidation() {
    let Some(mut r) = setup(SmmuConfig::default()) else {
        return;
    };
    let doms = domains(&mut r, 4);
    let pages: Vec<&GuestRamBlock> = doms.iter().map(|(_, p)| p).collect();
    let mut m = master(&mut r, PASID_SSID_BITS);
    r.smmu.write_cd(&mut m, 1, &doms[0].0.cd()).unwrap();
    r.smmu.write_cd(&mut m, 2, &doms[1].0.cd()).unwrap();
    r.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    let sid = r.sid;
    // Warm the CD cache of both PASIDs.
    lands_in(&r, 1, &pages, 0, "PASID 1 before");
    lands_in(&r, 2, &pages, 1, "PASID 2 before");

    // CD 1 -> domain 2 unannounced: PASID 1 keeps using the cached CD.
    write_cd_unannounced(&mut r, &mut m, 1, &doms[2].0);
    lands_in(&r, 1, &pages, 0, "stale CD 1");
    // CFGI_CD of SubstreamID 2 does not drop CD 1.
    r.smmu.inv_cd(sid, 2).unwrap();
    lands_in(&r, 1, &pages, 0, "CD 1 after CFGI_CD(2)");
    // CFGI_CD of SubstreamID 1 does.
    r.smmu.inv_cd(sid, 1).unwrap();
    lands_in(&r, 1, &pages, 2, "CD 1 after CFGI_CD(1)");

    // CD 2 -> domain 3 unannounced (CD 2 cached again first: CFGI_CD(2) dropped it); CFGI_CD_ALL
    // drops it.
    lands_in(&r, 2, &pages, 1, "PASID 2 cached again");
    write_cd_unannounced(&mut r, &mut m, 2, &doms[3].0);
    lands_in(&r, 2, &pages, 1, "stale CD 2");
    r.smmu.submit_sync(&[Command::CfgiCdAll { sid }]).unwrap();
    lands_in(&r, 2, &pages, 3, "CD 2 after CFGI_CD_ALL");

    // CD 1 -> domain 0 unannounced (CD 1 cached again first: CFGI_CD_ALL dropped it); CFGI_STE
    // drops the CDs cached through the STE.
    lands_in(&r, 1, &pages, 2, "PASID 1 cached again");
    write_cd_unannounced(&mut r, &mut m, 1, &doms[0].0);
    lands_in(&r, 1, &pages, 2, "stale CD 1 again");
    r.smmu.inv_ste(sid).unwrap();
    lands_in(&r, 1, &pages, 0, "CD 1 after CFGI_STE");
    assert_eq!(r.events(), vec![]);
    r.check();
}

#[test]
fn qemu_pasid_s1dss() {
    let Some(mut r) = setup(SmmuConfig::default()) else {
        return;
    };
    let doms = domains(&mut r, 2);
    let pages: Vec<&GuestRamBlock> = doms.iter().map(|(_, p)| p).collect();
    let target = r.buf(4096, 4096);
    let mut m = master(&mut r, PASID_SSID_BITS);
    r.smmu.write_cd(&mut m, 0, &doms[0].0.cd()).unwrap();
    r.smmu.write_cd(&mut m, 1, &doms[1].0.cd()).unwrap();
    let sid = r.sid;
    let stream_disabled = |evs: Vec<Event>| match one_kind(evs) {
        Event::StreamDisabled { access } => assert_eq!(access.sid, sid, "{access:?}"),
        other => panic!("expected F_STREAM_DISABLED, got {other:?}"),
    };

    // Terminate: untagged DMA is refused; PASID 1 translates.
    r.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    assert_eq!(dma(&r.edu, None, IOVA), Edu::DMA_RESULT_ERROR);
    stream_disabled(r.events());
    lands_in(&r, 1, &pages, 1, "PASID 1 with S1DSS=terminate");

    // Bypass: untagged DMA reaches the physical address; PASID 1 still translates.
    r.smmu.attach_cd_table(&mut m, s1dss::BYPASS).unwrap();
    assert_eq!(dma(&r.edu, None, target.dma_addr()), Edu::DMA_RESULT_OK);
    assert!(has_data(&target), "bypassed DMA");
    lands_in(&r, 1, &pages, 1, "PASID 1 with S1DSS=bypass");

    // SSID0: untagged DMA uses CD 0, and SubstreamID 0 itself is terminated.
    r.smmu.attach_cd_table(&mut m, s1dss::SSID0).unwrap();
    assert_eq!(dma(&r.edu, None, IOVA), Edu::DMA_RESULT_OK);
    assert!(has_data(pages[0]) && !has_data(pages[1]));
    pages[0].fill(0, 4096, 0).unwrap();
    assert_eq!(dma(&r.edu, Some(0), IOVA), Edu::DMA_RESULT_ERROR);
    stream_disabled(r.events());
    assert!(!has_data(pages[0]));
    assert_eq!(r.events(), vec![]);
    r.check();
}

/// The doorbell IOVA of the interrupt-message test (Linux's MSI_IOVA_BASE).
const DB_IOVA: u64 = 0x0800_0000;
/// The doorbell offset and message data of the interrupt-message test.
const DB_OFF: u64 = 0x40;
const DB_DATA: u32 = 0x4d51;

/// edu writes `DATA` to `iova` tagged with `pasid`, asking for the completion interrupt;
/// returns the DMA result and the interrupt-message status register.
fn dma_irq(edu: &Edu, pasid: Option<u32>, iova: u64) -> (u32, u32) {
    edu.set_dma_pasid(pasid).unwrap();
    edu.start_dma(
        qtest::EDU_DMA_BUF,
        iova,
        8,
        Edu::DMA_FROM_EDU | Edu::DMA_IRQ,
    )
    .unwrap();
    edu.wait_dma(std::time::Duration::from_secs(5)).unwrap();
    (
        edu.dma_result().unwrap(),
        edu.interrupt_message_status().unwrap() & (Edu::IMS_SENT | Edu::IMS_FAULT),
    )
}

#[test]
fn qemu_pasid_interrupt_message_uses_its_cd() {
    let Some(mut r) = setup(SmmuConfig::default()) else {
        return;
    };
    // PASID 1's domain maps the doorbell (as iommu_dma_get_msi_page() would), PASID 2's does
    // not; both map `IOVA`, so the DMAs themselves succeed. Untagged traffic is terminated.
    let doms = domains(&mut r, 2);
    let db = r.buf(4096, 4096);
    let db_prot = Prot::WRITE | Prot::NOEXEC | Prot::MMIO;
    doms[0]
        .0
        .map(DB_IOVA, db.dma_addr(), 4096, db_prot)
        .unwrap();
    let mut m = master(&mut r, PASID_SSID_BITS);
    r.smmu.write_cd(&mut m, 1, &doms[0].0.cd()).unwrap();
    r.smmu.write_cd(&mut m, 2, &doms[1].0.cd()).unwrap();
    r.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    let sid = r.sid;
    let msg = DB_IOVA + DB_OFF;
    r.edu.set_interrupt_message(Some((msg, DB_DATA))).unwrap();

    // PASID 1: the message is translated by CD 1 and lands at the doorbell; no PCI MSI (edu's
    // interrupt status stays clear).
    assert_eq!(
        dma_irq(&r.edu, Some(1), IOVA),
        (Edu::DMA_RESULT_OK, Edu::IMS_SENT)
    );
    assert!(has_data(&doms[0].1));
    assert_eq!(
        db.read_u32(DB_OFF as usize).unwrap(),
        DB_DATA,
        "message at the doorbell"
    );
    assert_eq!(r.events(), vec![]);
    assert_eq!(r.edu.irq_status().unwrap(), 0, "PCI MSI raised too");
    db.fill(0, 4096, 0).unwrap();

    // PASID 2: its DMA lands in its own page, its message faults naming PASID 2 at the
    // doorbell IOVA (a write); the doorbell page is untouched.
    assert_eq!(
        dma_irq(&r.edu, Some(2), IOVA),
        (Edu::DMA_RESULT_OK, Edu::IMS_FAULT)
    );
    assert!(has_data(&doms[1].1));
    assert_eq!(
        db.read_u32(DB_OFF as usize).unwrap(),
        0,
        "PASID 2's message arrived"
    );
    let evs = r.events();
    assert!(!evs.is_empty(), "expected F_TRANSLATION for the message");
    for e in evs {
        match e {
            Event::Translation(f) => {
                assert_eq!((f.access.sid, f.access.ssid), (sid, Some(2)), "{f:?}");
                assert_eq!((f.access.addr, f.access.read), (msg, false), "{f:?}");
            }
            other => panic!("expected F_TRANSLATION, got {other:?}"),
        }
    }

    // PASID Enable clear: neither the DMA nor its message is sent, and nothing faults.
    r.m.set_pasid_enable(r.edu.bdf(), false).unwrap();
    assert_eq!(
        dma_irq(&r.edu, Some(1), IOVA),
        (Edu::DMA_RESULT_NO_PASID, Edu::IMS_FAULT)
    );
    assert_eq!(db.read_u32(DB_OFF as usize).unwrap(), 0);
    assert_eq!(r.events(), vec![]);
    r.m.set_pasid_enable(r.edu.bdf(), true).unwrap();

    // Message disabled: the completion is edu's PCI interrupt again, nothing at the doorbell.
    r.edu.set_interrupt_message(None).unwrap();
    assert_eq!(dma_irq(&r.edu, Some(1), IOVA), (Edu::DMA_RESULT_OK, 0));
    assert_eq!(r.edu.irq_status().unwrap(), Edu::IRQ_DMA);
    assert_eq!(db.read_u32(DB_OFF as usize).unwrap(), 0);
    r.edu.ack_irq(Edu::IRQ_DMA).unwrap();
    assert_eq!(r.events(), vec![]);
    r.check();
}
