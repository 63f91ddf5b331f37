// SPDX-License-Identifier: GPL-2.0
//! Host tests of `smmuv3::domain::S1Domain` over simulated physical memory (`physmem`) and the
//! scripted register stub (`fake_smmu`): which commands each operation issues (read back from
//! the stub's consumer log, encodings worked out by hand from IHI 0070 4.4), when retired
//! tables are freed, escalation on a rejected TLBI, behaviour on timeouts, ASID life cycle.

mod fake_smmu;
mod pgtable_common;

use fake_smmu::*;
use pgtable_common::Store;
use physmem::PhysMem;
use smmuv3::asid::{AsidAllocator, AsidBits, AsidError};
use smmuv3::cmd::op;
use smmuv3::device::{Smmu, SmmuConfig};
use smmuv3::domain::{self, DomainError, S1Domain};
use smmuv3::error::Error;
use smmuv3::pgtable::{Granule, PgtableError, Prot};
use smmuv3::queue::Poll;

const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);
const K4: u64 = 4096;
const RIL: u32 = 1 << 10;

type Dom = S1Domain<PhysMem, Store>;

fn setup(idr3: u32) -> (PhysMem, FakeSmmu) {
    let m = PhysMem::new(0x8000_0000, 1 << 30);
    let fake = FakeSmmu::new(
        m.clone(),
        QEMU_LIKE_IDR0,
        QEMU_LIKE_IDR1,
        idr3,
        QEMU_LIKE_IDR5,
    );
    (m, fake)
}

fn smmu<'a>(m: &PhysMem, fake: &'a FakeSmmu, poll: u32) -> Smmu<&'a FakeSmmu, PhysMem> {
    let cfg = SmmuConfig {
        poll: Poll { limit: poll },
        ..SmmuConfig::default()
    };
    let mut s = Smmu::probe(fake, m.clone(), cfg).unwrap();
    s.enable().unwrap();
    fake.clear_log();
    s
}

fn domain(m: &PhysMem, s: &Smmu<&FakeSmmu, PhysMem>, asids: &mut AsidAllocator) -> Dom {
    let f = s.features();
    let cfg = domain::page_table_config(f, Granule::G4K).unwrap();
    S1Domain::new(
        cfg,
        m.clone(),
        Store::default(),
        asids,
        domain::inv_features(f),
    )
    .unwrap()
}

#[test]
fn cd_describes_the_page_table_and_asid() {
    let (m, fake) = setup(RIL);
    let s = smmu(&m, &fake, 1000);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let d1 = domain(&m, &s, &mut asids);
    let d2 = domain(&m, &s, &mut asids);
    assert_eq!((d1.asid(), d2.asid()), (1, 2), "xa_alloc from 1");
    let c = d1.page_table().s1_context();
    let cfg = d1.s1_config();
    assert_eq!(cfg.asid, 1);
    assert_eq!(cfg.ttbr, d1.page_table().root_addr());
    // IAS 48 -> T0SZ 16; 4K -> TG0 0; OAS 44 (QEMU_LIKE_IDR5) -> IPS 0b100; COHACC -> inner
    // shareable write-back walks; MAIR of io-pgtable-arm.c.
    assert_eq!((cfg.tsz, cfg.tg, cfg.ips, cfg.sh), (16, 0, 0b100, 0b11));
    assert_eq!((cfg.irgn, cfg.orgn), (1, 1));
    assert_eq!(cfg.mair, c.mair);
    let cd = d1.cd();
    assert!(cd.v());
    assert_eq!(cd.asid(), 1);
    assert_eq!(cd.ttb0_addr(), d1.page_table().root_addr());
    // QEMU_LIKE_IDR5 has no 16K granule.
    assert_eq!(
        domain::page_table_config(s.features(), Granule::G16K).err(),
        Some(DomainError::Pgtable(PgtableError::InvalidArgument))
    );
}

#[test]
fn map_issues_nothing_unmap_issues_plan_then_sync_then_frees() {
    let (m, fake) = setup(RIL);
    let mut s = smmu(&m, &fake, 1000);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let mut d = domain(&m, &s, &mut asids);
    let iova = 0x1234_5000;
    let pa = 0x9000_0000;
    let live = m.live_blocks();
    d.map(iova, pa, K4, RW).unwrap();
    assert_eq!(
        m.live_blocks(),
        live + 3,
        "level 1, 2, 3 tables below the root"
    );
    assert!(fake.log().is_empty(), "map issues no command");
    assert_eq!(
        d.map(iova, pa, K4, RW),
        Err(DomainError::Pgtable(PgtableError::Exists))
    );
    assert_eq!(DomainError::Pgtable(PgtableError::Exists).errno(), 17);

    assert_eq!(d.unmap(&mut s, iova, K4).unwrap(), K4);
    // The page was alone, but the unmap does not cover its tables whole: like io-pgtable-arm
    // (which frees only tables an unmap covers whole), they stay linked, empty. One leaf TLBI
    // (TTL 3, NUM 0, SCALE 0) + sync, nothing freed.
    // Word 0: ASID 1 << 48 | 0x12; word 1: addr | TG 4K (1) << 10 | TTL 3 << 8 | leaf.
    assert_eq!(
        fake.log(),
        [
            [1 << 48 | 0x12, 0x1234_5000 | 1 << 10 | 3 << 8 | 1],
            [0x0fc0_2046, 0]
        ]
    );
    assert_eq!(m.live_blocks(), live + 3, "empty tables kept");
    assert_eq!(d.page_table().iova_to_phys(iova), None);
    // The next map below them reuses them: no allocation, no command.
    fake.clear_log();
    d.map(iova + K4, pa, K4, RW).unwrap();
    assert_eq!(m.live_blocks(), live + 3, "map reuses the kept tables");
    assert!(fake.log().is_empty(), "map issues no command");

    // An unmap covering the level-3 table's whole 2 MiB unlinks it: one non-leaf range TLBI
    // (arm-smmu-v3.c:2194 never sends NUM = SCALE = 0 non-leaf: SCALE 1, 2 pages) + sync,
    // then the table is freed. The level-1 and level-2 tables are not covered: kept.
    // Word 0: ASID 1 << 48 | SCALE 1 << 20 | NUM 0 | 0x12; word 1: addr | TG 4K (1) << 10.
    assert_eq!(d.unmap(&mut s, 0x1220_0000, 2 << 20).unwrap(), K4);
    assert_eq!(
        fake.log(),
        [
            [1 << 48 | 1 << 20 | 0x12, 0x1234_6000 | 1 << 10],
            [0x0fc0_2046, 0]
        ]
    );
    assert_eq!(
        m.live_blocks(),
        live + 2,
        "level-3 table freed after the sync"
    );
    let st = d.stats();
    assert_eq!((st.tlbis, st.syncs, st.tables_freed), (2, 2, 1));
    assert!(!d.flush_pending());
    assert_eq!(d.page_table().iova_to_phys(iova + K4), None);

    // A leaf-only unmap: the neighbour keeps the table. TTL 3, leaf, NUM 0, SCALE 0.
    fake.clear_log();
    d.map(iova, pa, 2 * K4, RW).unwrap();
    assert_eq!(d.unmap(&mut s, iova, K4).unwrap(), K4);
    assert_eq!(
        fake.log(),
        [
            [1 << 48 | 0x12, 0x1234_5000 | 1 << 10 | 3 << 8 | 1],
            [0x0fc0_2046, 0]
        ]
    );
    // Unmapping nothing issues nothing.
    fake.clear_log();
    assert_eq!(d.unmap(&mut s, 0x4000_0000, K4).unwrap(), 0);
    assert!(fake.log().is_empty());
}

#[test]
fn without_ril_per_page_then_whole_asid() {
    let (m, fake) = setup(0);
    let mut s = smmu(&m, &fake, 1000);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let mut d = domain(&m, &s, &mut asids);
    let base = 1u64 << 40;
    d.map(base, 0x9000_1000, 2 << 20, RW).unwrap();
    d.unmap(&mut s, base + K4, 16 * K4).unwrap();
    let ops = fake.opcodes();
    assert_eq!(ops.len(), 17);
    assert!(ops[..16].iter().all(|&o| o == op::TLBI_NH_VA));
    assert_eq!(ops[16], op::CMD_SYNC);
    // TLBI_NH_VA without range: TG = TTL = NUM = SCALE = 0, leaf.
    assert_eq!(fake.log()[0], [1 << 48 | 0x12, (base + K4) | 1]);
    // 512 pages or more: one TLBI_NH_ASID (CMDQ_MAX_TLBI_OPS).
    fake.clear_log();
    d.map(base + K4, 0x9000_1000, 16 * K4, RW).unwrap();
    d.unmap(&mut s, base, 2 << 20).unwrap();
    assert_eq!(fake.log(), [[1 << 48 | 0x11, 0], [0x0fc0_2046, 0]]);
}

#[test]
fn deferred_unmaps_share_one_sync() {
    let (m, fake) = setup(RIL);
    let mut s = smmu(&m, &fake, 1000);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let mut d = domain(&m, &s, &mut asids);
    for i in 0..3u64 {
        d.map(i << 30, 0x9000_0000, 2 * K4, RW).unwrap();
    }
    for i in 0..3u64 {
        assert_eq!(d.unmap_deferred(i << 30, K4).unwrap(), K4);
    }
    assert!(fake.log().is_empty(), "nothing issued before the flush");
    assert!(d.flush_pending());
    d.flush(&mut s).unwrap();
    assert_eq!(
        fake.opcodes(),
        [op::TLBI_NH_VA, op::TLBI_NH_VA, op::TLBI_NH_VA, op::CMD_SYNC]
    );
    assert!(!d.flush_pending());
    // An empty flush is free.
    fake.clear_log();
    d.flush(&mut s).unwrap();
    assert!(fake.log().is_empty());
}

/// What the kernel driver's `unmap_pages` + `iotlb_sync` do for one `iommu_unmap`: the IOMMU
/// core splits a range at block boundaries (`iommu_pgsize()` with paddr = iova) into several
/// `unmap_pages` calls, here 511 pages up to the 2 MiB boundary, one 2 MiB (a whole level-3
/// table of pages) and one page. Each call only gathers (`unmap_deferred`); `iotlb_sync`
/// (`flush`) then sends one range TLBI and one CMD_SYNC for all three. Flushing per call (the
/// driver before, `unmap`) sent four TLBIs and three CMD_SYNCs.
#[test]
fn unmap_split_in_calls_gathers_one_range_tlbi_one_sync() {
    let (m, fake) = setup(RIL);
    let mut s = smmu(&m, &fake, 1000);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let mut d = domain(&m, &s, &mut asids);
    let base = 1u64 << 40;
    // Physical address offset by 2 pages within 2 MiB: pages only, no blocks.
    let pa = 0x9000_2000;
    let calls = [
        (base + K4, 511 * K4),
        (base + (2 << 20), 2 << 20),
        (base + (4 << 20), K4),
    ];
    let map = |d: &mut Dom| d.map(base + K4, pa, 1024 * K4, RW).unwrap();

    // Per call: four TLBIs and three CMD_SYNCs.
    map(&mut d);
    fake.clear_log();
    for (iova, size) in calls {
        d.unmap(&mut s, iova, size).unwrap();
    }
    let per_call = fake.opcodes();
    assert_eq!(per_call.iter().filter(|&&o| o == op::CMD_SYNC).count(), 3);
    // The 511 pages take two range commands (NUM/SCALE cannot say 511 at once).
    assert_eq!(per_call.len(), 7);

    // Gathered: one range TLBI, one CMD_SYNC; the level-3 table the middle call unlinked is
    // freed only after that sync.
    map(&mut d);
    fake.clear_log();
    let live = m.live_blocks();
    for (iova, size) in calls {
        assert_eq!(d.unmap_deferred(iova, size).unwrap(), size);
    }
    assert!(fake.log().is_empty(), "nothing issued before iotlb_sync");
    assert_eq!(m.live_blocks(), live, "unlinked table kept until the sync");
    d.flush(&mut s).unwrap();
    assert_eq!(fake.opcodes(), [op::TLBI_NH_VA, op::CMD_SYNC]);
    assert_eq!(
        m.live_blocks(),
        live - 1,
        "unlinked table freed after the sync"
    );
    // The range covers the three calls: base + 4K, 1024 pages, non-leaf (a table went).
    // Word 1: addr | TG 4K (1) << 10 (TTL 0, non-leaf).
    assert_eq!(fake.log()[0][1], (base + K4) | 1 << 10);
    for (iova, _) in calls {
        assert_eq!(d.page_table().iova_to_phys(iova), None);
    }
}

#[test]
fn rejected_tlbi_escalates_to_whole_asid_before_freeing() {
    let (m, fake) = setup(RIL);
    let mut s = smmu(&m, &fake, 1000);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let mut d = domain(&m, &s, &mut asids);
    let live = m.live_blocks();
    d.map(0x1000_0000, 0x9000_0000, K4, RW).unwrap();
    fake.set_illegal(&[op::TLBI_NH_VA]);
    // Covers the level-3 table whole: it is retired with a non-leaf TLBI.
    assert_eq!(d.unmap(&mut s, 0x1000_0000, 2 << 20).unwrap(), K4);
    // The rejected TLBI was replaced by a CMD_SYNC; then TLBI_NH_ASID + sync.
    assert_eq!(
        fake.opcodes(),
        [op::CMD_SYNC, op::CMD_SYNC, op::TLBI_NH_ASID, op::CMD_SYNC]
    );
    assert_eq!(d.stats().escalations, 1);
    assert_eq!(s.stats().cmdq.errors, 1);
    assert_eq!(d.stats().tables_freed, 1);
    assert_eq!(
        m.live_blocks(),
        live + 2,
        "the level-3 table freed once the ASID is clean (level 1 and 2 kept)"
    );
}

#[test]
fn timeout_keeps_tables_and_retries_on_next_flush() {
    let (m, fake) = setup(RIL);
    let mut s = smmu(&m, &fake, 100);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let mut d = domain(&m, &s, &mut asids);
    let live = m.live_blocks();
    d.map(0x1000_0000, 0x9000_0000, K4, RW).unwrap();
    // The unmap below covers the level-3 table whole: it is retired, to be freed after the
    // sync.
    fake.set_rate(Some(0)); // the SMMU stops consuming
    let e = d.unmap(&mut s, 0x1000_0000, 2 << 20).unwrap_err();
    assert_eq!(e, DomainError::Smmu(Error::Timeout));
    assert_eq!(e.errno(), 110);
    // Unmapped in the tables, but the walk may still use them: nothing freed.
    assert_eq!(d.page_table().iova_to_phys(0x1000_0000), None);
    assert!(d.flush_pending());
    assert_eq!(m.live_blocks(), live + 3);
    fake.set_rate(None);
    d.flush(&mut s).unwrap();
    assert!(!d.flush_pending());
    assert_eq!(
        m.live_blocks(),
        live + 2,
        "level-3 table freed, level 1 and 2 kept"
    );
    // Both attempts issued the same TLBI.
    let tlbis: Vec<_> = fake
        .log()
        .into_iter()
        .filter(|c| c[0] as u8 == op::TLBI_NH_VA)
        .collect();
    assert_eq!(tlbis.len(), 2);
    assert_eq!(tlbis[0], tlbis[1]);
}

#[test]
fn destroy_invalidates_the_asid_before_freeing_it() {
    let (m, fake) = setup(RIL);
    let mut s = smmu(&m, &fake, 100);
    let mut asids = AsidAllocator::new(AsidBits::Bits16);
    let d = domain(&m, &s, &mut asids);
    d.map(0x1000_0000, 0x9000_0000, K4, RW).unwrap();
    let asid = d.asid();
    // The SMMU does not answer: the domain comes back, its ASID still taken.
    fake.set_rate(Some(0));
    let (d, e) = match d.destroy(&mut s, &mut asids) {
        Err(x) => x,
        Ok(_) => panic!("destroy must fail while the SMMU is stuck"),
    };
    assert_eq!(e, DomainError::Smmu(Error::Timeout));
    assert!(asids.is_allocated(asid));
    fake.set_rate(None);
    fake.clear_log();
    let live = m.live_blocks();
    let st = d.destroy(&mut s, &mut asids).map_err(|x| x.1).unwrap();
    // The stuck attempt's commands are consumed late, then the retry's.
    let pair = [[(asid as u64) << 48 | 0x11, 0], [0x0fc0_2046, 0]];
    assert_eq!(fake.log(), [pair, pair].concat());
    assert_eq!((st.tlbis, st.syncs), (2, 2), "both attempts counted");
    assert!(!asids.is_allocated(asid));
    assert_eq!(m.live_blocks(), live - 4, "root + 3 tables dropped");
    // ASID exhaustion: EBUSY, and the root table allocated on the way is given back.
    let mut small = AsidAllocator::new(AsidBits::Bits8);
    for _ in 0..255 {
        small.alloc().unwrap();
    }
    let live = m.live_blocks();
    let f = *s.features();
    let r = S1Domain::new(
        domain::page_table_config(&f, Granule::G4K).unwrap(),
        m.clone(),
        Store::default(),
        &mut small,
        domain::inv_features(&f),
    );
    let e = r.err().unwrap();
    assert_eq!(e, DomainError::Asid(AsidError::Exhausted));
    assert_eq!(e.errno(), 16);
    assert_eq!(m.live_blocks(), live);
}
