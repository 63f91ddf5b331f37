// SPDX-License-Identifier: GPL-2.0
//! The driver core alone programming QEMU's SMMUv3 for edu (over `tools/qtest`): stage-1
//! domains (`smmuv3::domain::S1Domain`: `PageTable` + ASID + CD) with 4K, 16K and 64K granules,
//! 2-level and linear stream tables, DMA in both directions through IOVAs that straddle page
//! boundaries onto non-contiguous pages, F_TRANSLATION events for unmapped IOVAs in both
//! directions and after `unmap`, edu's MSI through a mapped and an unmapped doorbell IOVA, and
//! recovery from command errors. Without QEMU they fail (skip with `LAB_NO_QEMU=1`:
//! `qtest::require_qemu`).

mod qemu_common;

use qemu_common::*;
use smmuv3::cmd::{op, CmdEntry, Command};
use smmuv3::device::SmmuConfig;
use smmuv3::dma::{DmaMemory, Mmio};
use smmuv3::error::{CmdErrorKind, Error};
use smmuv3::pgtable::{Granule, Prot};
use smmuv3::regs::{CmdqCons, CmdqProd, Gerror, Gerrorn, StrtabBaseCfg};

const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);
/// IOVAs above 4 GiB (edu has a 64-bit DMA mask here), 32 MiB aligned so every granule's
/// tables are exercised from the top level.
const IOVA_SRC: u64 = 0x0000_1234_5600_0000;
const IOVA_DST: u64 = 0x0000_1234_5800_0000;
const IOVA_HOLE: u64 = 0x0000_1234_5a00_0000;

/// A pattern that differs per granule so a leftover from another run cannot pass.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// Maps two IOVA pages onto two separately allocated RAM pages in reverse order, moves 4 KiB
/// RAM -> edu across the IOVA page boundary, then 4 KiB edu -> RAM across another boundary,
/// and checks every byte on both sides. Then faults (both directions, and after `unmap`).
fn dma_both_directions(r: &mut Rig, granule: Granule) -> (Dom, QMaster) {
    let g = granule.size() as usize;
    let seed = granule.shift() as u8;
    let mut dom = r.domain(granule);
    // Physical pages: lo then hi; IOVA page 0 -> hi, page 1 -> lo.
    let src_lo = r.buf(g, g);
    let src_hi = r.buf(g, g);
    let dst_lo = r.buf(g, g);
    let dst_hi = r.buf(g, g);
    let gu = g as u64;
    dom.map(IOVA_SRC, src_hi.dma_addr(), gu, Prot::READ)
        .unwrap();
    dom.map(IOVA_SRC + gu, src_lo.dma_addr(), gu, Prot::READ)
        .unwrap();
    dom.map(IOVA_DST, dst_hi.dma_addr(), gu, RW).unwrap();
    dom.map(IOVA_DST + gu, dst_lo.dma_addr(), gu, RW).unwrap();
    assert_eq!(
        dom.page_table().iova_to_phys(IOVA_SRC + gu + 8),
        Some(src_lo.dma_addr() + 8)
    );
    let master = r.attach(&dom);
    let before = r.smmu.stats().cmdq.commands;

    // The 4 KiB window [g - 2K, g + 2K) of the IOVA range: last 2K of src_hi, first 2K of
    // src_lo.
    let p = pattern(seed, 4096);
    src_hi.write_bytes(g - 2048, &p[..2048]).unwrap();
    src_lo.write_bytes(0, &p[2048..]).unwrap();
    r.edu.dma_to_edu(IOVA_SRC + gu - 2048, 0, 4096).unwrap();
    r.edu.dma_from_edu(0, IOVA_DST + gu - 2048, 4096).unwrap();
    assert_eq!(Rig::read(&dst_hi, g - 2048, 2048), &p[..2048]);
    assert_eq!(Rig::read(&dst_lo, 0, 2048), &p[2048..]);
    // Nothing outside the window was written.
    assert!(Rig::read(&dst_hi, 0, g - 2048).iter().all(|&b| b == 0));
    assert!(Rig::read(&dst_lo, 2048, g - 2048).iter().all(|&b| b == 0));
    assert!(r.events().is_empty());
    // DMA needs no command: map issued none.
    assert_eq!(r.smmu.stats().cmdq.commands, before);

    // Unmapped IOVA, device write (edu -> RAM) and device read (RAM -> edu).
    r.edu.dma_from_edu(0, IOVA_HOLE + 0x100, 8).unwrap();
    let evs = r.events();
    assert_translation_faults(&evs, r.sid, IOVA_HOLE + 0x100, IOVA_HOLE + 0x108, false);
    r.edu.dma_to_edu(IOVA_HOLE + 0x200, 0, 8).unwrap();
    let evs = r.events();
    assert_translation_faults(&evs, r.sid, IOVA_HOLE + 0x200, IOVA_HOLE + 0x208, true);

    // Unmap the destination through the domain (TLBI + sync): the same DMA now faults and
    // RAM is untouched.
    dst_hi.fill(0, g, 0).unwrap();
    assert_eq!(dom.unmap(&mut r.smmu, IOVA_DST, 2 * gu).unwrap(), 2 * gu);
    assert!(!dom.flush_pending());
    r.edu.dma_from_edu(0, IOVA_DST + gu - 2048, 8).unwrap();
    assert!(Rig::read(&dst_hi, 0, g).iter().all(|&b| b == 0));
    let evs = r.events();
    let a = IOVA_DST + gu - 2048;
    assert_translation_faults(&evs, r.sid, a, a + 8, false);
    assert_eq!(r.smmu.stats().cmdq.errors, 0);
    r.check();
    (dom, master)
}

#[test]
fn qemu_dma_4k_two_level_strtab_faults_and_msi() {
    let Some(mut r) = rig(SmmuConfig::default(), false) else {
        return;
    };
    assert!(r.smmu.features().two_level_strtab);
    assert_eq!(
        StrtabBaseCfg::read(r.smmu.mmio()).fmt(),
        1,
        "2-level in QEMU"
    );
    let (dom, _master) = dma_both_directions(&mut r, Granule::G4K);

    // MSI through a mapped doorbell IOVA (Linux's MSI_IOVA_BASE 0x0800_0000, mapped like
    // iommu_dma_get_msi_page(): WRITE | NOEXEC | MMIO) onto a RAM page.
    let db = r.buf(4096, 4096);
    let db_iova = 0x0800_0000;
    dom.map(
        db_iova,
        db.dma_addr(),
        4096,
        Prot::WRITE | Prot::NOEXEC | Prot::MMIO,
    )
    .unwrap();
    r.edu.msi_enable(db_iova + 0x40, 0x4d51).unwrap();
    r.edu.raise_irq(1).unwrap();
    assert_eq!(
        db.read_u32(0x40).unwrap(),
        0x4d51,
        "MSI data at the doorbell"
    );
    assert!(r.events().is_empty());
    r.edu.ack_irq(1).unwrap();

    // An unmapped doorbell IOVA: the MSI write faults at exactly that address.
    let bad = 0x0810_0000 + 0x44;
    r.edu.msi_enable(bad, 0x1234).unwrap();
    r.edu.raise_irq(2).unwrap();
    let evs = r.events();
    assert_translation_faults(&evs, r.sid, bad, bad + 4, false);
    r.edu.ack_irq(2).unwrap();
    r.edu.msi_disable().unwrap();
    r.check();
}

#[test]
fn qemu_dma_64k_linear_strtab() {
    let cfg = SmmuConfig {
        force_linear_strtab: true,
        ..SmmuConfig::default()
    };
    // 8 StreamID bits (256 STEs, edu is 8): a linear table for QEMU's 16 bits would take 10 s
    // of qtest writes to initialise.
    let Some(mut r) = rig_with(cfg, false, Some(8)) else {
        return;
    };
    let c = StrtabBaseCfg::read(r.smmu.mmio());
    assert_eq!((c.fmt(), c.log2size()), (0, 8), "linear in QEMU");
    dma_both_directions(&mut r, Granule::G64K);
}

#[test]
fn qemu_dma_16k_two_level_strtab() {
    let Some(mut r) = rig(SmmuConfig::default(), false) else {
        return;
    };
    dma_both_directions(&mut r, Granule::G16K);
}

/// IHI 0070 7.1: an illegal command stops the queue with CMDQ_CONS.ERR = CERROR_ILL and
/// GERROR.CMDQ_ERR; the driver reports the failing command, skips it, acknowledges, and the
/// commands after it (and later submissions) complete.
#[test]
fn qemu_command_error_is_reported_and_recovered() {
    let Some(mut r) = rig(SmmuConfig::default(), false) else {
        return;
    };
    let bad = CmdEntry::default().set_op(0x7f);
    let before = r.smmu.mmio().read32(CmdqProd::OFFSET);
    let cmds = [
        Command::TlbiNhAsid { asid: 9, vmid: 0 }.encode().unwrap(),
        bad,
        Command::CfgiSte {
            sid: r.sid,
            leaf: true,
        }
        .encode()
        .unwrap(),
    ];
    let seen_before = r.hw.borrow().seen.len();
    match r.smmu.submit_entries(&cmds, true) {
        Err(Error::Command(e)) => {
            assert_eq!(e.kind, CmdErrorKind::Illegal);
            assert_eq!(e.command, bad.0, "the failing command is reported");
            assert_eq!(e.index, (before + 1) & 0xff, "at its queue index");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    // The SMMU got all four entries (three + CMD_SYNC) and consumed them all.
    let seen: Vec<u8> = r.hw.borrow().seen[seen_before..]
        .iter()
        .map(|c| c[0] as u8)
        .collect();
    assert_eq!(
        seen,
        [op::TLBI_NH_ASID, 0x7f, op::CFGI_STE, op::CMD_SYNC],
        "published"
    );
    let mmio = r.smmu.mmio();
    assert_eq!(
        mmio.read32(CmdqCons::OFFSET) & 0xfffff,
        mmio.read32(CmdqProd::OFFSET),
        "queue drained, ERR cleared"
    );
    assert_eq!(
        (mmio.read32(Gerror::OFFSET) ^ mmio.read32(Gerrorn::OFFSET)) & 1,
        0,
        "CMDQ_ERR acknowledged"
    );
    assert_eq!(r.smmu.stats().cmdq.errors, 1);

    // Later commands complete: attach a domain and DMA through it.
    let mut dom = r.domain(Granule::G4K);
    let p1 = r.buf(4096, 4096);
    let p2 = r.buf(4096, 4096);
    let iova = 0x4000_0000;
    dom.map(iova, p1.dma_addr(), 4096, RW).unwrap();
    let _master = r.attach(&dom);
    r.edu.dma_to_edu(iova, 0, 8).unwrap(); // p1 is zero: edu buffer word 0 = 0
    p2.write_bytes(0x10, b"p2 later").unwrap();

    // A command error inside a domain flush: the TLBI of the unmap is corrupted on its way
    // to the SMMU. The queue recovers, the domain escalates to TLBI_NH_ASID, and the remapped
    // IOVA reaches the new page (no stale translation survives the error).
    r.edu.dma_from_edu(0, iova + 0x20, 8).unwrap(); // warm the IOTLB for iova
    r.arm(Tamper {
        action: Action::Corrupt,
        ..Tamper::drop_op(op::TLBI_NH_VA)
    });
    assert_eq!(dom.unmap(&mut r.smmu, iova, 4096).unwrap(), 4096);
    let corrupted = r.disarm();
    assert_eq!(corrupted.len(), 1, "exactly the unmap's TLBI");
    assert_eq!(dom.stats().escalations, 1);
    assert_eq!(r.smmu.stats().cmdq.errors, 2);
    dom.map(iova, p2.dma_addr(), 4096, RW).unwrap();
    r.edu.dma_to_edu(iova + 0x10, 0, 8).unwrap();
    r.edu.dma_from_edu(0, iova + 0x100, 8).unwrap();
    assert_eq!(Rig::read(&p2, 0x100, 8), b"p2 later");
    assert_eq!(Rig::read(&p1, 0x100, 8), [0; 8]);
    assert!(r.events().is_empty());
    r.check();
}
