// SPDX-License-Identifier: GPL-2.0
//! Stale caches on QEMU's SMMUv3: its IOTLB and configuration cache keep entries until the
//! matching TLBI / CFGI. Each scenario runs twice on a fresh QEMU:
//!
//! * as the driver issues it: the DMA after the change must use the new configuration;
//! * with one class of invalidation removed on its way to the SMMU (`qemu_common::HwMmio`
//!   replaces it by a no-op CMD_SYNC; the driver code is unchanged): the DMA must then use the
//!   **old** translation. This proves both that QEMU really caches and that the test would
//!   catch a driver that forgot the invalidation.
//!
//! Scenarios: remap (unmap + map to another page, TLBI_NH_VA), STE S1 -> abort (CFGI_STE), CD
//! switch to another domain with a different ASID and TTB0 (CFGI_CD), and ASID reuse after
//! `S1Domain::destroy` (TLBI_NH_ASID).

mod qemu_common;

use qemu_common::*;
use qtest::GuestRamBlock;
use smmuv3::cmd::op;
use smmuv3::device::SmmuConfig;
use smmuv3::dma::DmaMemory;
use smmuv3::pgtable::{Granule, Prot};

const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);
const DATA: &[u8; 8] = b"edu data";

/// A rig with `DATA` loaded into edu's buffer at 0 (through a bypass STE, before any test
/// translation exists).
fn setup() -> Option<Rig> {
    let mut r = rig(SmmuConfig::default(), false)?;
    r.load_edu(DATA);
    Some(r)
}

/// edu writes `DATA` to `iova + off`.
fn dma(r: &Rig, iova: u64, off: u64) {
    r.edu.dma_from_edu(0, iova + off, 8).unwrap();
}

fn has_data(b: &GuestRamBlock, off: usize) -> bool {
    Rig::read(b, off, 8) == DATA
}

fn is_zero(b: &GuestRamBlock) -> bool {
    Rig::read(b, 0, 4096).iter().all(|&x| x == 0)
}

/// Checks what the tamper rule removed: nothing when not armed, else `min` or more commands
/// with opcode `op`.
fn check_tampered(r: &Rig, drop: bool, op: u8, min: usize) {
    let t = r.disarm();
    if drop {
        println!("dropped before reaching QEMU's SMMU: {t:x?}");
        assert!(t.len() >= min, "rule matched {} commands", t.len());
        assert!(t.iter().all(|c| c[0] as u8 == op));
    } else {
        assert!(t.is_empty());
    }
}

/// Unmap + map to a different page, through `S1Domain` (TLBI from the gather plan, sync, free
/// the unlinked table). IOVA A is alone in its level-3 table and unmapped with the table's
/// whole 2 MiB (the unmap also unlinks and frees the table: non-leaf TLBI); IOVA B has a
/// neighbour (leaf TLBI with TTL 3).
fn remap(drop: bool) {
    let Some(mut r) = setup() else { return };
    let mut dom = r.domain(Granule::G4K);
    let (a, b) = (0x1000_0000u64, 0x2000_0000u64);
    let [old_a, new_a, old_b, new_b, nb] = [(); 5].map(|_| r.buf(4096, 4096));
    dom.map(a, old_a.dma_addr(), 4096, RW).unwrap();
    dom.map(b, old_b.dma_addr(), 4096, RW).unwrap();
    dom.map(b + 4096, nb.dma_addr(), 4096, RW).unwrap();
    let _m = r.attach(&dom);
    // Warm the IOTLB.
    dma(&r, a, 0x40);
    dma(&r, b, 0x40);
    assert!(has_data(&old_a, 0x40) && has_data(&old_b, 0x40));
    old_a.fill(0, 4096, 0).unwrap();
    old_b.fill(0, 4096, 0).unwrap();

    let tlbi_seen = r.hw.borrow().count(op::TLBI_NH_VA);
    if drop {
        r.arm(Tamper {
            asid: Some(dom.asid()),
            ..Tamper::drop_op(op::TLBI_NH_VA)
        });
    }
    // A's unmap covers its level-3 table's whole 2 MiB: the table is unlinked and freed
    // (non-leaf TLBI). B's covers one page: leaf TLBI, the table stays.
    assert_eq!(dom.unmap(&mut r.smmu, a, 2 << 20).unwrap(), 4096);
    assert_eq!(dom.unmap(&mut r.smmu, b, 4096).unwrap(), 4096);
    assert_eq!(dom.stats().tables_freed, 1, "A's level-3 table");
    check_tampered(&r, drop, op::TLBI_NH_VA, 2);
    if !drop {
        assert_eq!(r.hw.borrow().count(op::TLBI_NH_VA), tlbi_seen + 2);
    }
    dom.map(a, new_a.dma_addr(), 4096, RW).unwrap();
    dom.map(b, new_b.dma_addr(), 4096, RW).unwrap();

    dma(&r, a, 0x80);
    dma(&r, b, 0x80);
    if drop {
        // The IOTLB still translates A and B to the old pages.
        assert!(has_data(&old_a, 0x80), "stale translation expected for A");
        assert!(has_data(&old_b, 0x80), "stale translation expected for B");
        assert!(is_zero(&new_a) && is_zero(&new_b));
    } else {
        assert!(has_data(&new_a, 0x80) && has_data(&new_b, 0x80));
        assert!(is_zero(&old_a) && is_zero(&old_b), "old pages untouched");
    }
    assert!(r.events().is_empty());
    r.check();
}

#[test]
fn qemu_stale_remap_invalidated() {
    remap(false);
}

#[test]
fn qemu_stale_remap_without_tlbi_uses_old_page() {
    remap(true);
}

/// STE S1 -> abort (`Smmu::set_abort`: hitless writer, CFGI_STE + CMD_SYNC per step).
fn ste_to_abort(drop: bool) {
    let Some(mut r) = setup() else { return };
    let dom = r.domain(Granule::G4K);
    let iova = 0x3000_0000u64;
    let p = r.buf(4096, 4096);
    dom.map(iova, p.dma_addr(), 4096, RW).unwrap();
    let _m = r.attach(&dom);
    dma(&r, iova, 0x40);
    assert!(has_data(&p, 0x40));
    p.fill(0, 4096, 0).unwrap();

    if drop {
        r.arm(Tamper {
            sid: Some(r.sid),
            ..Tamper::drop_op(op::CFGI_STE)
        });
    }
    let st = r.smmu.set_abort(r.sid).unwrap();
    println!("S1 -> abort: {st:?}");
    check_tampered(&r, drop, op::CFGI_STE, st.syncs as usize);
    dma(&r, iova, 0x80);
    if drop {
        assert!(
            has_data(&p, 0x80),
            "stale STE expected: DMA still translated"
        );
    } else {
        assert!(is_zero(&p), "abort STE: nothing written");
    }
    // Abort is silent either way (IHI 0070 5.2: Config = abort, no event).
    assert!(r.events().is_empty());
    r.check();
}

#[test]
fn qemu_stale_ste_abort_invalidated() {
    ste_to_abort(false);
}

#[test]
fn qemu_stale_ste_abort_without_cfgi_ste_still_translates() {
    ste_to_abort(true);
}

/// CD 0 switched from domain A to domain B (new ASID and TTB0: a breaking CD update, each step
/// CFGI_CD + CMD_SYNC).
fn cd_switch(drop: bool) {
    let Some(mut r) = setup() else { return };
    let da = r.domain(Granule::G4K);
    let db = r.domain(Granule::G4K);
    assert_ne!(da.asid(), db.asid());
    let iova = 0x4000_0000u64;
    let (pa, pb) = (r.buf(4096, 4096), r.buf(4096, 4096));
    da.map(iova, pa.dma_addr(), 4096, RW).unwrap();
    db.map(iova, pb.dma_addr(), 4096, RW).unwrap();
    let mut m = r.attach(&da);
    dma(&r, iova, 0x40);
    assert!(has_data(&pa, 0x40));
    pa.fill(0, 4096, 0).unwrap();

    if drop {
        r.arm(Tamper {
            sid: Some(r.sid),
            ..Tamper::drop_op(op::CFGI_CD)
        });
    }
    let st = r.smmu.write_cd(&mut m, 0, &db.cd()).unwrap();
    println!("CD A -> B: {st:?}");
    assert!(st.breaking, "ASID and TTB0 are in different qwords");
    check_tampered(&r, drop, op::CFGI_CD, st.syncs as usize);
    dma(&r, iova, 0x80);
    if drop {
        assert!(has_data(&pa, 0x80), "stale CD expected: old ASID/TTB0");
        assert!(is_zero(&pb));
    } else {
        assert!(has_data(&pb, 0x80));
        assert!(is_zero(&pa), "old domain's page untouched");
    }
    assert!(r.events().is_empty());
    r.check();
}

#[test]
fn qemu_stale_cd_switch_invalidated() {
    cd_switch(false);
}

#[test]
fn qemu_stale_cd_switch_without_cfgi_cd_uses_old_context() {
    cd_switch(true);
}

/// Domain A is destroyed (`S1Domain::destroy`: TLBI_NH_ASID + sync, ASID freed); domain B gets
/// the same ASID and maps the same IOVA elsewhere.
fn asid_reuse(drop: bool) {
    let Some(mut r) = setup() else { return };
    let da = r.domain(Granule::G4K);
    let asid = da.asid();
    let iova = 0x5000_0000u64;
    let (pa, pb) = (r.buf(4096, 4096), r.buf(4096, 4096));
    da.map(iova, pa.dma_addr(), 4096, RW).unwrap();
    let mut m = r.attach(&da);
    dma(&r, iova, 0x40);
    assert!(has_data(&pa, 0x40));
    pa.fill(0, 4096, 0).unwrap();

    // Detach: CD 0 invalid (CFGI_CD), then tear the domain down.
    r.smmu.clear_cd(&mut m, 0).unwrap();
    if drop {
        r.arm(Tamper {
            asid: Some(asid),
            ..Tamper::drop_op(op::TLBI_NH_ASID)
        });
    }
    let st = da
        .destroy(&mut r.smmu, &mut r.asids)
        .map_err(|e| e.1)
        .unwrap();
    assert_eq!((st.tlbis, st.syncs), (1, 1));
    check_tampered(&r, drop, op::TLBI_NH_ASID, 1);

    let db = r.domain(Granule::G4K);
    assert_eq!(db.asid(), asid, "lowest free ASID is handed out again");
    db.map(iova, pb.dma_addr(), 4096, RW).unwrap();
    r.smmu.write_cd(&mut m, 0, &db.cd()).unwrap();
    dma(&r, iova, 0x80);
    if drop {
        assert!(
            has_data(&pa, 0x80),
            "stale IOTLB entry of the reused ASID expected"
        );
        assert!(is_zero(&pb));
    } else {
        assert!(has_data(&pb, 0x80));
        assert!(is_zero(&pa));
    }
    assert!(r.events().is_empty());
    r.check();
}

#[test]
fn qemu_stale_asid_reuse_invalidated() {
    asid_reuse(false);
}

#[test]
fn qemu_stale_asid_reuse_without_tlbi_asid_hits_old_domain() {
    asid_reuse(true);
}
