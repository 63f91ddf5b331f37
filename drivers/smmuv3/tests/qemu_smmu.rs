// SPDX-License-Identifier: GPL-2.0
//! The driver core against QEMU's real SMMUv3 (over `tools/qtest`), with the edu device as
//! the DMA master: enable, abort/bypass STEs, stage-1 translation through a CD, translation
//! fault events, and command-error recovery. Without QEMU they fail (skip with
//! `LAB_NO_QEMU=1`: `qtest::require_qemu`).

use qtest::{Machine, QemuConfig};
use smmuv3::cd::{Cd, S1Config};
use smmuv3::cmd::{CmdEntry, Command};
use smmuv3::device::{Smmu, SmmuConfig};
use smmuv3::dma::{DmaAllocator, DmaMemory};
use smmuv3::error::{CmdErrorKind, Error};
use smmuv3::event::Event;
use smmuv3::ste::{s1dss, MasterOptions};

#[track_caller]
fn machine() -> Option<Machine> {
    qtest::require_qemu()?;
    let cfg = QemuConfig::default().devices(["edu,dma_mask=0xffffffffffffffff"]);
    Some(Machine::start(&cfg).expect("start QEMU"))
}

/// Stage-1 tables for one 4KB page, written by hand from the Arm ARM (VMSAv8-64, 4KB granule,
/// 39-bit VA so the walk starts at level 1): table descriptors `addr | 0b11`, page descriptor
/// `pa | AF | SH=inner | AP[1]=EL0 access | AttrIndx 0 | 0b11`.
struct OnePage<M> {
    tables: [M; 3],
}

fn map_one<A: DmaAllocator>(ram: &A, iova: u64, pa: u64) -> OnePage<A::Memory> {
    let l1 = ram.alloc_zeroed(4096, 4096).unwrap();
    let l2 = ram.alloc_zeroed(4096, 4096).unwrap();
    let l3 = ram.alloc_zeroed(4096, 4096).unwrap();
    let idx = |shift: u32| ((iova >> shift) & 0x1ff) as usize * 8;
    l1.write_u64(idx(30), l2.dma_addr() | 0b11);
    l2.write_u64(idx(21), l3.dma_addr() | 0b11);
    l3.write_u64(idx(12), pa | 1 << 10 | 3 << 8 | 1 << 6 | 0b11);
    OnePage {
        tables: [l1, l2, l3],
    }
}

#[test]
fn driver_controls_edu_dma_through_qemu_smmu() {
    let Some(m) = machine() else { return };
    let edu = m.edu().unwrap();
    let sid = edu.stream_id();
    let ram = m.ram().clone();
    let mut smmu = Smmu::<_, _>::probe(m.smmu(), ram.clone(), SmmuConfig::default()).unwrap();
    assert!(smmu.features().two_level_strtab);
    smmu.enable().unwrap();
    m.qtest().check().unwrap();

    let buf = ram.alloc(4096, 4096).unwrap();
    buf.write_bytes(0, b"through!").unwrap();

    // No level-2 stream table exists yet for bus 0 (they are allocated on first use): the
    // SMMU aborts edu's DMA and, with CR2.RECINVSID, reports C_BAD_STREAMID.
    edu.dma_to_edu(buf.addr(), 0, 8).unwrap();
    edu.dma_from_edu(0, buf.addr() + 64, 8).unwrap();
    let mut back = [0u8; 8];
    buf.read_bytes(64, &mut back).unwrap();
    assert_eq!(back, [0; 8], "aborted DMA wrote RAM");
    let mut evs = Vec::new();
    smmu.poll_events(64, |e| evs.push(e));
    assert!(!evs.is_empty());
    assert!(
        evs.iter()
            .all(|e| *e == Event::BadStreamId { sid, ssid: None }),
        "{evs:?}"
    );
    evs.clear();

    // An explicit abort STE (the level-2 table now exists): still no DMA, and no event.
    smmu.set_abort(sid).unwrap();
    edu.dma_from_edu(0, buf.addr() + 64, 8).unwrap();
    buf.read_bytes(64, &mut back).unwrap();
    assert_eq!(back, [0; 8], "aborted DMA wrote RAM");
    smmu.poll_events(64, |e| evs.push(e));
    assert!(evs.is_empty(), "{evs:?}");

    // Bypass: the DMA goes through untranslated.
    smmu.set_bypass(sid).unwrap();
    edu.dma_to_edu(buf.addr(), 0, 8).unwrap();
    edu.dma_from_edu(0, buf.addr() + 64, 8).unwrap();
    buf.read_bytes(64, &mut back).unwrap();
    assert_eq!(&back, b"through!");

    // Stage 1: IOVA 0x1234_5000 -> the second half of a fresh page.
    let target = ram.alloc(8192, 4096).unwrap();
    let iova = 0x1234_5000;
    let pt = map_one(&ram, iova, target.addr() + 4096);
    let mut master = smmu
        .new_master(&[sid], 0, MasterOptions::default())
        .unwrap();
    smmu.ensure_cd_table(&mut master).unwrap();
    let cfg = S1Config {
        asid: 1,
        ttbr: pt.tables[0].dma_addr(),
        tsz: 25,
        tg: 0,
        irgn: 1,
        orgn: 1,
        sh: 3,
        ips: 4,
        mair: 0xff,
        hw_dirty: false,
        stall: false,
    };
    smmu.write_cd(&mut master, 0, &Cd::s1(&cfg)).unwrap();
    // CD 0 is in place before the STE (bypass -> S1) points at the table.
    smmu.attach_cd_table(&mut master, s1dss::SSID0).unwrap();
    edu.dma_from_edu(0, iova + 0x80, 8).unwrap();
    let mut got = [0u8; 8];
    target.read_bytes(4096 + 0x80, &mut got).unwrap();
    assert_eq!(&got, b"through!", "translated DMA");
    smmu.poll_events(64, |e| evs.push(e));
    assert!(evs.is_empty(), "{evs:?}");

    // An unmapped IOVA: F_TRANSLATION naming edu's StreamID and the IOVA.
    edu.dma_from_edu(0, 0x2000_0000, 8).unwrap();
    smmu.poll_events(64, |e| evs.push(e));
    assert!(!evs.is_empty());
    for e in &evs {
        match e {
            Event::Translation(f) => {
                assert_eq!(f.access.sid, sid);
                // QEMU's edu moves the 8 bytes in smaller accesses: one fault each.
                assert!((0x2000_0000..0x2000_0008).contains(&f.access.addr), "{f:?}");
                assert!(!f.access.read, "edu writes to RAM");
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    // Changing the ASID of the live CD is hitless (one sync); invalidate the old ASID.
    let st = smmu
        .write_cd(&mut master, 0, &Cd::s1(&S1Config { asid: 2, ..cfg }))
        .unwrap();
    assert_eq!((st.syncs, st.breaking), (1, false));
    smmu.inv_asid(1).unwrap();
    edu.dma_from_edu(0, iova + 0x100, 8).unwrap();
    target.read_bytes(4096 + 0x100, &mut got).unwrap();
    assert_eq!(&got, b"through!");

    smmu.detach(&master).unwrap();
    let s = smmu.stats();
    println!("stats after the scenario: {s:?}");
    assert_eq!(s.cmdq.errors, 0);
    m.qtest().check().unwrap();
}

#[test]
fn qemu_illegal_command_is_skipped() {
    let Some(m) = machine() else { return };
    let mut smmu = Smmu::<_, _>::probe(m.smmu(), m.ram().clone(), SmmuConfig::default()).unwrap();
    smmu.enable().unwrap();
    let bad = CmdEntry::default().set_op(0x7f);
    let ok = Command::TlbiNsnhAll.encode().unwrap();
    match smmu.submit_entries(&[ok, bad, ok], true) {
        Err(Error::Command(e)) => {
            assert_eq!(e.kind, CmdErrorKind::Illegal);
            assert_eq!(e.command, bad.0);
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    // The queue runs again.
    smmu.inv_asid(3).unwrap();
    assert_eq!(smmu.stats().cmdq.errors, 1);
    m.qtest().check().unwrap();
}
