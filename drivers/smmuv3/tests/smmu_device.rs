// SPDX-License-Identifier: GPL-2.0
//! Host tests of the command/event queues and of the `Smmu` object, over simulated physical
//! memory (`physmem`) and a scripted register stub (`fake_smmu`).

mod fake_smmu;

use fake_smmu::*;
use physmem::PhysMem;
use smmuv3::cd::{Cd, S1Config};
use smmuv3::cdtab::{CdTable, LEAF_BYTES};
use smmuv3::cmd::{op, CmdEntry, Command};
use smmuv3::device::{Smmu, SmmuConfig};
use smmuv3::dma::{DmaAllocator, DmaMemory, Mmio};
use smmuv3::error::{CmdErrorKind, Error};
use smmuv3::event::Event;
use smmuv3::queue::{CmdQueue, EventQueue, Poll};
use smmuv3::ste::{s1dss, MasterOptions, Ste};

fn mem() -> PhysMem {
    PhysMem::new(0x8000_0000, 1 << 30)
}

fn enc(c: Command) -> CmdEntry {
    c.encode().unwrap()
}

/// A command queue of `2^shift` entries wired to the stub (base programmed, CMDQEN set).
fn queue(shift: u32, limit: u32) -> (PhysMem, FakeSmmu, CmdQueue<physmem::Block>) {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let q = CmdQueue::new(&m, shift, Poll { limit }).unwrap();
    q.base_reg().write(&fake);
    fake.write32(CR0, 1 << 3);
    (m, fake, q)
}

#[test]
fn cmdq_wraps_and_keeps_order() {
    let (_m, fake, mut q) = queue(2, 100);
    let mut expect = Vec::new();
    for round in 0..10u32 {
        let cmds = [
            enc(Command::CfgiSte {
                sid: round,
                leaf: true,
            }),
            enc(Command::TlbiNhAsid {
                asid: round as u16,
                vmid: 0,
            }),
            enc(Command::CfgiCdAll { sid: round }),
        ];
        q.submit(&fake, &cmds, true).unwrap();
        expect.extend([
            op::CFGI_STE,
            op::TLBI_NH_ASID,
            op::CFGI_CD_ALL,
            op::CMD_SYNC,
        ]);
    }
    assert_eq!(fake.opcodes(), expect);
    // 40 entries through a 4-entry ring: PROD is back at index 0 with wrap bit even (40 / 4 =
    // 10 laps), and the stub's CONS matches.
    assert_eq!(q.prod(), 0);
    assert_eq!(fake.reg(CMDQ_CONS) as u32, 0);
    let s = q.stats();
    assert_eq!((s.commands, s.syncs), (40, 10));
    // 4 entries per round fit exactly: no back-pressure.
    assert_eq!(s.full_waits, 0);
    assert_eq!(s.prod_writes, 10);
}

#[test]
fn cmdq_wrap_bit_after_odd_laps() {
    let (_m, fake, mut q) = queue(2, 100);
    let c = [enc(Command::TlbiNsnhAll)];
    for _ in 0..5 {
        q.submit(&fake, &c, false).unwrap();
    }
    // Five entries in a four-entry ring: index 1, wrap bit (bit 2) set.
    assert_eq!(q.prod(), 0b101);
    assert_eq!(q.ring().used(q.prod(), 0b100), 1);
}

#[test]
fn cmdq_back_pressure_when_full() {
    let (_m, fake, mut q) = queue(2, 1000);
    fake.set_rate(Some(1));
    let cmds: Vec<CmdEntry> = (0..10)
        .map(|i| enc(Command::CfgiSte { sid: i, leaf: true }))
        .collect();
    q.submit(&fake, &cmds, true).unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 11);
    for (i, c) in log.iter().take(10).enumerate() {
        assert_eq!(c[0] >> 32, i as u64, "order kept across waits");
    }
    let s = q.stats();
    assert!(s.full_waits >= 2, "{s:?}");
    assert!(s.prod_writes >= 3, "published before each wait: {s:?}");
}

#[test]
fn cmdq_times_out_when_smmu_stops() {
    let (_m, fake, mut q) = queue(2, 50);
    fake.set_rate(Some(0));
    let cmds: Vec<CmdEntry> = (0..5).map(|_| enc(Command::TlbiNsnhAll)).collect();
    assert_eq!(q.submit(&fake, &cmds, false), Err(Error::Timeout));
    let (_m, fake, mut q) = queue(4, 50);
    fake.set_rate(Some(0));
    assert_eq!(q.submit(&fake, &cmds, true), Err(Error::Timeout));
    // Bounded: about one CONS + GERROR + GERRORN read per poll.
    assert!(fake.reads() <= 3 * 50 + 10, "{}", fake.reads());
}

#[test]
fn cmdq_illegal_command_is_skipped_and_reported() {
    let (_m, fake, mut q) = queue(3, 100);
    fake.set_illegal(&[0x7f]);
    let bad = CmdEntry::default().set_op(0x7f).set_sid(0x55);
    let cmds = [
        enc(Command::CfgiSte { sid: 1, leaf: true }),
        bad,
        enc(Command::TlbiNsnhAll),
    ];
    let err = q.submit(&fake, &cmds, true).unwrap_err();
    match err {
        Error::Command(e) => {
            assert_eq!(e.kind, CmdErrorKind::Illegal);
            assert_eq!(e.index, 1);
            assert_eq!(e.command, bad.0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.errno(), 5);
    // The bad command became a CMD_SYNC, everything else ran, the error was acknowledged.
    assert_eq!(
        fake.opcodes(),
        [op::CFGI_STE, op::CMD_SYNC, op::TLBI_NSNH_ALL, op::CMD_SYNC]
    );
    assert_eq!(fake.reg(GERROR) & 1, fake.reg(GERRORN) & 1);
    assert_eq!(q.stats().errors, 1);
    // The queue keeps working.
    q.submit(&fake, &[enc(Command::TlbiNsnhAll)], true).unwrap();
    assert_eq!(fake.opcodes().len(), 6);
}

#[test]
fn cmdq_fetch_abort_is_retried() {
    let (_m, fake, mut q) = queue(3, 100);
    fake.fail_once(2); // CERROR_ABT
    let err = q
        .submit(&fake, &[enc(Command::TlbiNsnhAll)], true)
        .unwrap_err();
    match err {
        Error::Command(e) => assert_eq!(e.kind, CmdErrorKind::Abort),
        other => panic!("{other:?}"),
    }
    // Not replaced: the command itself ran once acknowledged.
    assert_eq!(fake.opcodes(), [op::TLBI_NSNH_ALL, op::CMD_SYNC]);
}

#[test]
fn evtq_drains_decodes_wraps_and_acks_overflow() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut q = EventQueue::new(&m, 2).unwrap();
    q.base_reg().write(&fake);
    let rec = |sid: u64| [0x10 | sid << 32, 0, 0x1000 * sid, 0];
    let mut seen = Vec::new();
    for lap in 0..3u64 {
        for i in 0..3 {
            assert!(fake.inject_event(rec(lap * 3 + i)));
        }
        let d = q.drain(&fake, 16, |r| seen.push(r.decode()));
        assert_eq!((d.events, d.overflow), (3, false));
    }
    assert_eq!(seen.len(), 9);
    for (i, e) in seen.iter().enumerate() {
        match e {
            Event::Translation(f) => {
                assert_eq!((f.access.sid, f.access.addr), (i as u32, 0x1000 * i as u64))
            }
            other => panic!("{other:?}"),
        }
    }
    // Fill the 4-entry queue and one more: the SMMU toggles PROD.OVFLG.
    for i in 0..5 {
        fake.inject_event(rec(i));
    }
    let d = q.drain(&fake, 2, |_| {});
    assert_eq!((d.events, d.overflow), (2, true));
    assert_eq!(
        fake.reg(EVTQ_CONS) >> 31,
        fake.reg(EVTQ_PROD) >> 31,
        "overflow acknowledged"
    );
    let d = q.drain(&fake, 16, |_| {});
    assert_eq!((d.events, d.overflow), (2, false));
}

fn smmu<'a>(m: &PhysMem, fake: &'a FakeSmmu, cfg: SmmuConfig) -> Smmu<&'a FakeSmmu, PhysMem> {
    let _ = m;
    Smmu::probe(fake, m.clone(), cfg).unwrap()
}

#[test]
fn probe_decodes_features() {
    let m = mem();
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0 | 1 << 9,
        QEMU_LIKE_IDR1,
        1 << 10,
        QEMU_LIKE_IDR5,
    );
    let s = smmu(&m, &fake, SmmuConfig::default());
    let f = s.features();
    assert!(f.s1 && f.s2 && f.two_level_strtab && f.two_level_cd && f.hyp && f.ril);
    assert_eq!(
        (f.sid_bits, f.ssid_bits, f.asid_bits, f.vmid_bits),
        (16, 20, 16, 16)
    );
    assert_eq!(f.oas, 44);
    assert_eq!(
        f.pgsize_bitmap,
        (1 << 12) | (1 << 21) | (1 << 30) | (1 << 16) | (1 << 29)
    );
    assert!(f.coherent && f.stalls && !f.stall_force);
    // No stage 1: refused.
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0 & !2,
        QEMU_LIKE_IDR1,
        0,
        QEMU_LIKE_IDR5,
    );
    assert_eq!(
        Smmu::<_, PhysMem>::probe(&fake, m.clone(), SmmuConfig::default()).err(),
        Some(Error::Unsupported)
    );
    // Embedded implementation (TABLES_PRESET): refused.
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0,
        QEMU_LIKE_IDR1 | 1 << 30,
        0,
        QEMU_LIKE_IDR5,
    );
    assert_eq!(
        Smmu::<_, PhysMem>::probe(&fake, m.clone(), SmmuConfig::default()).err(),
        Some(Error::Unsupported)
    );
}

#[test]
fn enable_programs_registers_in_order() {
    let m = mem();
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0 | 1 << 9,
        QEMU_LIKE_IDR1,
        0,
        QEMU_LIKE_IDR5,
    );
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    assert_eq!(fake.reg(CR1), 0xd75);
    assert_eq!(fake.reg(CR2), 0x6);
    // 2-level stream table, SPLIT 8, 16 SID bits.
    assert_eq!(fake.reg(STRTAB_BASE_CFG), 1 << 16 | 8 << 6 | 16);
    assert_eq!(fake.reg(STRTAB_BASE) >> 62, 1, "RA");
    assert_eq!(fake.reg(CR0), 0xd, "SMMUEN | EVENTQEN | CMDQEN");
    assert_eq!(fake.reg(GBPA) & (1 << 20), 1 << 20, "GBPA abort");
    // CFGI_ALL, TLBI_EL2_ALL (HYP), TLBI_NSNH_ALL, each followed by a sync.
    assert_eq!(
        fake.opcodes(),
        [
            op::CFGI_STE_RANGE,
            op::CMD_SYNC,
            op::TLBI_EL2_ALL,
            op::CMD_SYNC,
            op::TLBI_NSNH_ALL,
            op::CMD_SYNC
        ]
    );
    assert_eq!(fake.log()[0][1] & 0x1f, 31, "CFGI_ALL range");
    let st = s.stats();
    assert_eq!((st.cmdq.commands, st.cmdq.syncs), (6, 3));
}

#[test]
fn enable_times_out_without_cr0ack() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    fake.set_cr0_stuck(true);
    let cfg = SmmuConfig {
        poll: Poll { limit: 20 },
        ..SmmuConfig::default()
    };
    let mut s = smmu(&m, &fake, cfg);
    // CR0 = 0 matches the reset value of CR0ACK, so the first wait passes; CMDQEN cannot.
    assert_eq!(s.enable(), Err(Error::Timeout));
}

#[test]
fn linear_stream_table_when_small() {
    let m = mem();
    // ST_LEVEL linear only, SIDSIZE 6.
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0 & !(3 << 27),
        (QEMU_LIKE_IDR1 & !0x3f) | 6,
        0,
        QEMU_LIKE_IDR5,
    );
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    assert_eq!(fake.reg(STRTAB_BASE_CFG), 6, "linear, LOG2SIZE 6");
    let base = fake.reg(STRTAB_BASE) & 0x000f_ffff_ffff_ffc0;
    // Every STE starts as abort (V=1, Config=0).
    for sid in 0..64 {
        assert_eq!(m.read_u64(base + sid * 64), 1);
    }
    // Without ATTR_TYPES_OVR a bypass STE differs from abort in word 0 only: one sync.
    let st = s.set_bypass(5).unwrap();
    assert_eq!(st.syncs, 1);
    assert_eq!(m.read_u64(base + 5 * 64) & 0xf, 0x9);
    assert_eq!(s.set_bypass(64).err(), Some(Error::InvalidArgument));
}

#[test]
fn two_level_stream_table_allocates_lazily() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    fake.clear_log();
    let l1 = fake.reg(STRTAB_BASE) & 0x000f_ffff_ffff_ffc0;
    let live = m.live_blocks();
    let st = s.set_bypass(0x1234).unwrap();
    assert_eq!(m.live_blocks(), live + 1, "one level-2 table");
    let desc = m.read_u64(l1 + 0x12 * 8);
    assert_eq!(desc & 0x1f, 9, "Span = SPLIT + 1");
    let l2 = desc & 0x000f_ffff_ffff_ffc0;
    assert_eq!(m.read_u64(l2 + 0x34 * 64) & 0xf, 0x9, "bypass STE");
    assert_eq!(m.read_u64(l2 + 0x35 * 64), 1, "neighbours abort");
    assert_eq!(st.syncs, 1);
    // The first CFGI_STE after linking is not leaf-only.
    let log = fake.log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0][0] & 0xff, log[0][0] >> 32, log[0][1] & 1),
        (op::CFGI_STE as u64, 0x1234, 0)
    );
    // Same bus: no new table; leaf-only invalidation.
    fake.clear_log();
    s.set_bypass(0x12ff).unwrap();
    assert_eq!(m.live_blocks(), live + 1);
    assert_eq!(fake.log()[0][1] & 1, 1);
    // Already abort: nothing to write, no command at all.
    fake.clear_log();
    assert_eq!(s.set_abort(0x1200).unwrap().syncs, 0);
    assert!(fake.log().is_empty());
    assert_eq!(
        s.read_ste(0x1234),
        Ste::bypass(&s.features().ste_features())
    );
    assert_eq!(s.set_abort(0x1_0000).err(), Some(Error::InvalidArgument));
    // Out of memory on a new bus: error, nothing linked.
    m.fail_allocations_after(Some(0));
    assert_eq!(s.set_bypass(0x2000).err(), Some(Error::NoMemory));
    m.fail_allocations_after(None);
    assert_eq!(m.read_u64(l1 + 0x20 * 8), 0);
}

fn s1cfg(asid: u16, ttbr: u64) -> S1Config {
    S1Config {
        asid,
        ttbr,
        tsz: 16,
        tg: 0,
        irgn: 1,
        orgn: 1,
        sh: 3,
        ips: 4,
        mair: 0xff44,
        hw_dirty: false,
        stall: false,
    }
}

/// The first commands after a CD write that linked a new leaf for StreamIDs 0x10 and 0x11:
/// CFGI_CD with Leaf = 0 (the invalid L1 descriptor may be cached) for each, then CMD_SYNC.
fn assert_new_leaf_invalidated_first(fake: &FakeSmmu) {
    let first: Vec<(u64, u64, u64)> = fake
        .log()
        .iter()
        .take(3)
        .map(|c| (c[0] & 0xff, c[0] >> 32, c[1] & 1))
        .collect();
    assert_eq!(
        first,
        [
            (op::CFGI_CD as u64, 0x10, 0),
            (op::CFGI_CD as u64, 0x11, 0),
            (op::CMD_SYNC as u64, 0, 0)
        ]
    );
}

/// The kernel driver allocates a master's CD table and its leaves before taking its
/// spinlocks (with an allocator that may sleep) and installs them under the lock: the SMMU's
/// allocator is then not used by the CD write, a spare from a lost race is handed back, and a
/// leaf added that way is linked and invalidated exactly like one allocated on the spot.
#[test]
fn cd_table_and_leaf_allocated_by_the_caller() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    let mut master = s
        .new_master(&[0x10, 0x11], 20, MasterOptions::default())
        .unwrap();
    assert!(
        master.cd_leaf_needed(5000),
        "2-level table to be: leaf needed"
    );
    let table = CdTable::new(&m, master.ssid_bits(), true).unwrap();
    let spare = CdTable::new(&m, master.ssid_bits(), true).unwrap();
    assert!(master.install_cd_table(table).is_ok());
    // Another attach installed one first: its table is handed back (and freed by the caller).
    assert!(master.install_cd_table(spare).is_err());
    assert!(master.cd_leaf_needed(5000));
    let leaf = m.alloc_zeroed(LEAF_BYTES, LEAF_BYTES).unwrap();
    let leaf_addr = leaf.dma_addr();
    assert!(master.add_cd_leaf(5000, leaf).is_ok());
    assert!(!master.cd_leaf_needed(5000));
    let spare_leaf = m.alloc_zeroed(LEAF_BYTES, LEAF_BYTES).unwrap();
    assert!(master.add_cd_leaf(5001, spare_leaf).is_err(), "same leaf");
    assert_eq!(master.cd_table().unwrap().leaves(), 1);

    s.attach_cd_table(&mut master, s1dss::SSID0).unwrap();
    let l1 = s.read_ste(0x10).cd_table_addr();
    fake.clear_log();
    let live = m.live_blocks();
    s.write_cd(&mut master, 5000, &Cd::s1(&s1cfg(2, 0x9100_0000)))
        .unwrap();
    assert_eq!(m.live_blocks(), live, "nothing allocated by the CD write");
    let d4 = m.read_u64(l1 + 4 * 8);
    assert_eq!((d4 & 1, d4 & 0x000f_ffff_ffff_f000), (1, leaf_addr), "L1CD");
    assert_eq!(m.read_u64(leaf_addr + (5000 % 1024) * 64 + 8), 0x9100_0000);
    // The new L1 descriptor is invalidated first: CFGI_CD with Leaf = 0 for both StreamIDs.
    assert_new_leaf_invalidated_first(&fake);
    // Linked once: the next CD in that leaf needs no L1 invalidation.
    fake.clear_log();
    s.write_cd(&mut master, 5001, &Cd::s1(&s1cfg(3, 0x9200_0000)))
        .unwrap();
    assert!(fake
        .log()
        .iter()
        .all(|c| c[1] & 1 == 1 || c[0] & 0xff != op::CFGI_CD as u64));
}

#[test]
fn cd_table_two_level_with_lazy_leaves() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    let mut master = s
        .new_master(&[0x10, 0x11], 20, MasterOptions::default())
        .unwrap();
    assert_eq!(master.ssid_bits(), 20);
    s.attach_cd_table(&mut master, s1dss::SSID0).unwrap();
    let ste = s.read_ste(0x10);
    assert_eq!(
        (ste.config(), ste.s1fmt(), ste.s1cdmax(), ste.s1dss()),
        (5, 2, 20, 2)
    );
    assert_eq!(s.read_ste(0x11), ste);
    let l1 = ste.cd_table_addr();
    let table = master.cd_table().unwrap();
    assert_eq!(table.leaves(), 0);
    fake.clear_log();
    // SSID 0 (requester ID) and a PASID in another leaf.
    let st = s
        .write_cd(&mut master, 0, &Cd::s1(&s1cfg(1, 0x9000_0000)))
        .unwrap();
    assert_eq!(st.syncs, 2, "invalid -> valid: rest of the CD, then word 0");
    s.write_cd(&mut master, 5000, &Cd::s1(&s1cfg(2, 0x9100_0000)))
        .unwrap();
    assert_eq!(master.cd_table().unwrap().leaves(), 2);
    let d0 = m.read_u64(l1);
    let d4 = m.read_u64(l1 + 4 * 8);
    assert_eq!((d0 & 1, d4 & 1), (1, 1), "L1CD valid");
    let leaf4 = d4 & 0x000f_ffff_ffff_f000;
    let w0 = m.read_u64(leaf4 + (5000 % 1024) * 64);
    assert_eq!(w0 >> 48, 2, "ASID");
    assert_eq!(
        m.read_u64(leaf4 + (5000 % 1024) * 64 + 8),
        0x9100_0000,
        "TTB0"
    );
    // New leaf: CFGI_CD with Leaf = 0 for both StreamIDs + sync, then per step CFGI_CD x2 + sync.
    assert_new_leaf_invalidated_first(&fake);
    // Change the ASID hitlessly, then clear.
    let st = s
        .write_cd(&mut master, 5000, &Cd::s1(&s1cfg(3, 0x9100_0000)))
        .unwrap();
    assert_eq!((st.syncs, st.breaking), (1, false));
    let st = s.clear_cd(&mut master, 5000).unwrap();
    assert_eq!(st.syncs, 2);
    assert_eq!(m.read_u64(leaf4 + (5000 % 1024) * 64) & (1 << 31), 0);
    // Beyond S1CDMax.
    assert_eq!(
        s.write_cd(&mut master, 1 << 20, &Cd::invalid()).err(),
        Some(Error::InvalidArgument)
    );
    let stats = s.stats();
    assert_eq!(stats.cd_updates, 4);
}

#[test]
fn cd_table_linear_and_s1cdmax_limits() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    let mut master = s.new_master(&[3], 4, MasterOptions::default()).unwrap();
    s.attach_cd_table(&mut master, s1dss::BYPASS).unwrap();
    let ste = s.read_ste(3);
    assert_eq!((ste.s1fmt(), ste.s1cdmax(), ste.s1dss()), (0, 4, 1));
    s.write_cd(&mut master, 15, &Cd::s1(&s1cfg(9, 0x1000)))
        .unwrap();
    assert_eq!(
        s.write_cd(&mut master, 16, &Cd::invalid()).err(),
        Some(Error::InvalidArgument)
    );
    // SMMU without CD2L: a 20-bit master is capped to 10 bits (64KB linear table).
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0 & !(1 << 19),
        QEMU_LIKE_IDR1,
        0,
        QEMU_LIKE_IDR5,
    );
    let s = smmu(&m, &fake, SmmuConfig::default());
    assert_eq!(
        s.new_master(&[1], 20, MasterOptions::default())
            .unwrap()
            .ssid_bits(),
        10
    );
    // SMMU with fewer SSID bits than the master.
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0,
        (QEMU_LIKE_IDR1 & !(0x1f << 6)) | 8 << 6,
        0,
        QEMU_LIKE_IDR5,
    );
    let s = smmu(&m, &fake, SmmuConfig::default());
    assert_eq!(
        s.new_master(&[1], 20, MasterOptions::default())
            .unwrap()
            .ssid_bits(),
        8
    );
    // No CD table yet: write_cd refuses.
    let mut fresh = s.new_master(&[2], 4, MasterOptions::default()).unwrap();
    let mut s = s;
    assert_eq!(
        s.write_cd(&mut fresh, 0, &Cd::invalid()).err(),
        Some(Error::Busy)
    );
}

#[test]
fn invalidation_helpers_and_stats() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    fake.clear_log();
    let before = s.stats().cmdq;
    s.inv_asid(7).unwrap();
    s.inv_ste(3).unwrap();
    s.inv_cd(3, 4).unwrap();
    let after = s.stats().cmdq;
    assert_eq!(
        (after.commands - before.commands, after.syncs - before.syncs),
        (6, 3)
    );
    assert_eq!(
        fake.opcodes(),
        [
            op::TLBI_NH_ASID,
            op::CMD_SYNC,
            op::CFGI_STE,
            op::CMD_SYNC,
            op::CFGI_CD,
            op::CMD_SYNC
        ]
    );
    // 16 pages without RIL: 16 TLBI_NH_VA + one sync, one PROD write.
    fake.clear_log();
    let before = s.stats().cmdq;
    s.inv_range(7, 0x10_0000, 16 << 12, 1 << 12, true, 12)
        .unwrap();
    let after = s.stats().cmdq;
    assert_eq!(after.commands - before.commands, 17);
    assert_eq!(after.prod_writes - before.prod_writes, 1);
    let addrs: Vec<u64> = fake.log().iter().take(16).map(|c| c[1] & !0xfff).collect();
    assert_eq!(
        addrs,
        (0..16).map(|i| 0x10_0000 + (i << 12)).collect::<Vec<_>>()
    );
    // Huge range without RIL: one TLBI_NH_ASID instead.
    fake.clear_log();
    s.inv_range(7, 0, 1 << 30, 1 << 12, true, 12).unwrap();
    assert_eq!(fake.opcodes(), [op::TLBI_NH_ASID, op::CMD_SYNC]);
    // More than a batch of commands: split into several PROD writes, one sync.
    fake.clear_log();
    s.inv_range(7, 0, 100 << 12, 1 << 12, true, 12).unwrap();
    assert_eq!(
        fake.opcodes()
            .iter()
            .filter(|&&o| o == op::TLBI_NH_VA)
            .count(),
        100
    );
    assert_eq!(
        fake.opcodes()
            .iter()
            .filter(|&&o| o == op::CMD_SYNC)
            .count(),
        1
    );
}

#[test]
fn range_invalidation_with_ril() {
    let m = mem();
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0,
        QEMU_LIKE_IDR1,
        1 << 10,
        QEMU_LIKE_IDR5,
    );
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    fake.clear_log();
    // 33 pages: one command for 1 page (SCALE 0, NUM 0) and one for 32 (SCALE 5, NUM 0).
    s.inv_range(9, 0x40_0000, 33 << 12, 1 << 12, true, 12)
        .unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 3);
    let f = |c: &[u64; 2]| {
        (
            (c[0] >> 12) & 0x1f,
            (c[0] >> 20) & 0x1f,
            (c[1] >> 10) & 3,
            (c[1] >> 8) & 3,
            c[1] & !0xfff,
        )
    };
    assert_eq!(f(&log[0]), (0, 0, 1, 3, 0x40_0000));
    assert_eq!(f(&log[1]), (0, 5, 1, 3, 0x40_1000));
    // A 2MB block: TTL 2.
    fake.clear_log();
    s.inv_range(9, 0x20_0000, 2 << 20, 2 << 20, true, 12)
        .unwrap();
    let log = fake.log();
    assert_eq!(f(&log[0]), (0, 9, 1, 2, 0x20_0000));
}

#[test]
fn events_and_global_errors() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    // C_BAD_STE for SID 0x40, then an unknown event.
    fake.inject_event([0x0000_0040_0000_0004, 0, 0, 0]);
    fake.inject_event([0xee, 1, 2, 3]);
    let mut evs = Vec::new();
    let d = s.poll_events(16, |e| evs.push(e));
    assert_eq!(d.events, 2);
    assert_eq!(
        evs[0],
        Event::BadSte {
            sid: 0x40,
            ssid: None
        }
    );
    assert_eq!(
        evs[1],
        Event::Unknown {
            id: 0xee,
            raw: [0xee, 1, 2, 3]
        }
    );
    assert_eq!(s.stats().events, 2);
    // EVTQ abort error: acknowledged and reported; SFM: fatal, SMMU disabled.
    fake.set_reg(GERROR, 1 << 2);
    assert_eq!(s.handle_gerror(), Ok(1 << 2));
    assert_eq!(fake.reg(GERRORN), 1 << 2);
    assert_eq!(s.handle_gerror(), Ok(0));
    fake.set_reg(GERROR, (1 << 2) | (1 << 8));
    assert_eq!(s.handle_gerror(), Err(Error::Fatal(1 << 8)));
    assert_eq!(fake.reg(CR0), 0);
}

#[test]
fn detach_and_reattach_hitlessly() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    s.enable().unwrap();
    let mut master = s.new_master(&[0x100], 8, MasterOptions::default()).unwrap();
    s.attach_cd_table(&mut master, s1dss::SSID0).unwrap();
    // S1DSS change only touches word 1: one sync, hitless.
    let before = s.stats();
    s.attach_cd_table(&mut master, s1dss::BYPASS).unwrap();
    let after = s.stats();
    assert_eq!(after.cmdq.syncs - before.cmdq.syncs, 1);
    assert_eq!(after.breaking_updates, before.breaking_updates);
    s.detach(&master).unwrap();
    assert_eq!(s.read_ste(0x100), Ste::abort());
    assert!(s.new_master(&[], 8, MasterOptions::default()).is_err());
    assert!(s
        .new_master(&[0x1_0000], 8, MasterOptions::default())
        .is_err());
}

#[test]
fn qemu_10_smmu_without_substreams() {
    // docs/qtest.md (QEMU 10.0.2 virt): SMMU_IDR0 = 0x0d44101b, IDR1 SIDSIZE 16, SSIDSIZE 0.
    // CMDQS/EVENTQS 19 are QEMU's SMMU_CMDQS/SMMU_EVENTQS (assumed here, not verified).
    let idr1 = 16 | 19 << 16 | 19 << 21;
    let m = mem();
    let fake = FakeSmmu::new(m.clone(), 0x0d44_101b, idr1, 0, QEMU_LIKE_IDR5);
    let mut s = smmu(&m, &fake, SmmuConfig::default());
    let f = *s.features();
    assert!(f.s1 && f.s2 && f.two_level_strtab && f.coherent && !f.two_level_cd);
    assert!(!f.stalls && !f.hyp && !f.ats && !f.msi);
    assert_eq!(
        (f.sid_bits, f.ssid_bits, f.asid_bits, f.vmid_bits),
        (16, 0, 16, 16)
    );
    s.enable().unwrap();
    assert_eq!(
        fake.opcodes(),
        [
            op::CFGI_STE_RANGE,
            op::CMD_SYNC,
            op::TLBI_NSNH_ALL,
            op::CMD_SYNC
        ]
    );
    // A PASID-capable master gets S1CDMax 0: one CD, no S1STALLD (stalls unsupported).
    let mut master = s.new_master(&[8], 20, MasterOptions::default()).unwrap();
    assert_eq!(master.ssid_bits(), 0);
    s.attach_cd_table(&mut master, s1dss::SSID0).unwrap();
    let ste = s.read_ste(8);
    assert_eq!((ste.s1cdmax(), ste.s1fmt(), ste.s1stalld()), (0, 0, false));
    s.write_cd(&mut master, 0, &Cd::s1(&s1cfg(1, 0x4010_0000)))
        .unwrap();
    assert_eq!(
        s.write_cd(&mut master, 1, &Cd::invalid()).err(),
        Some(Error::InvalidArgument)
    );
}

#[test]
fn cd0_before_attach_and_disable_on_drop() {
    let m = mem();
    let fake = FakeSmmu::qemu_like(m.clone());
    {
        let mut s = smmu(&m, &fake, SmmuConfig::default());
        s.enable().unwrap();
        let mut master = s.new_master(&[0x20], 4, MasterOptions::default()).unwrap();
        s.ensure_cd_table(&mut master).unwrap();
        s.write_cd(&mut master, 0, &Cd::s1(&s1cfg(4, 0x7000)))
            .unwrap();
        assert_eq!(s.read_ste(0x20), Ste::abort(), "STE untouched until attach");
        s.attach_cd_table(&mut master, s1dss::SSID0).unwrap();
        let ste = s.read_ste(0x20);
        let cd0 = m.read_u64(ste.cd_table_addr());
        assert_eq!((cd0 >> 31) & 1, 1, "CD 0 valid when the STE goes live");
        s.detach(&master).unwrap();
        assert_eq!(fake.reg(CR0), 0xd);
    }
    assert_eq!(fake.reg(CR0), 0, "dropping the Smmu disables it");
}
