// SPDX-License-Identifier: GPL-2.0
//! Unit tests of the stage-1 page tables and invalidation gathering, checked with the
//! independent walker of `pgtable_common` over simulated physical memory.

mod pgtable_common;

use pgtable_common::{attrs, count_tables, walk, wcfg, Fault, Store};
use physmem::PhysMem;
use smmuv3::pgtable::gather::LinuxModel;
use smmuv3::pgtable::{
    Config, Gather, Granule, InvFeatures, Invalidation, PageTable, PgtableError, Prot, TlbiCost,
    MAIR,
};

const K4: u64 = 4 << 10;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;
const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0);

type Pt = PageTable<PhysMem, Store>;

fn new_pt(granule: Granule, ias: u32) -> (PhysMem, Pt) {
    let mem = PhysMem::new(0x8000_0000, 1 << 32);
    let cfg = Config {
        granule,
        ias,
        oas: 48,
        coherent_walk: true,
    };
    let pt = PageTable::new(cfg, mem.clone(), Store::default()).unwrap();
    (mem, pt)
}

/// Unmaps and completes the invalidation protocol; returns bytes and the gather's plan.
fn unmap(pt: &mut Pt, iova: u64, size: u64, ril: bool) -> (u64, Vec<Invalidation>) {
    let mut g = Gather::new();
    let n = pt.unmap(iova, size, &mut g).unwrap();
    let plan = g
        .plan(InvFeatures {
            ril,
            max_tlbi_ops: None,
        })
        .collect();
    pt.release_retired(&mut g);
    (n, plan)
}

#[test]
fn geometry_and_cd_values() {
    // (granule, ias) -> (start level, T0SZ, TG0): Arm ARM D8.2.7 / TCR_EL1.TG0.
    let cases = [
        (Granule::G4K, 48, 0, 16, 0b00),
        (Granule::G4K, 39, 1, 25, 0b00),
        (Granule::G4K, 32, 1, 32, 0b00),
        (Granule::G4K, 30, 2, 34, 0b00),
        (Granule::G16K, 48, 0, 16, 0b10),
        (Granule::G16K, 47, 1, 17, 0b10),
        (Granule::G16K, 36, 2, 28, 0b10),
        (Granule::G64K, 48, 1, 16, 0b01),
        (Granule::G64K, 42, 2, 22, 0b01),
        (Granule::G64K, 29, 3, 35, 0b01),
    ];
    for (g, ias, lvl, t0sz, tg0) in cases {
        let (_m, pt) = new_pt(g, ias);
        let c = pt.s1_context();
        assert_eq!(
            (pt.start_level(), c.t0sz, c.tg0),
            (lvl, t0sz, tg0),
            "{g:?} ias {ias}"
        );
        assert_eq!(c.start_level as u32, lvl);
        assert_eq!(c.ips, 0b101);
        assert_eq!((c.sh0, c.rgn0), (0b11, 0b01));
    }
    // io-pgtable-arm.c:1014-1021: NC 0x44 @0, WBRWA 0xff @1, DEVICE 0x04 @2, 0xf4 @3.
    assert_eq!(MAIR, 0x0000_0000_f404_ff44);
    let mem = PhysMem::new(0, 1 << 30);
    for (oas, ips) in [(32, 0), (36, 1), (40, 2), (42, 3), (44, 4), (48, 5)] {
        let cfg = Config {
            granule: Granule::G4K,
            ias: 48,
            oas,
            coherent_walk: false,
        };
        let pt = PageTable::new(cfg, mem.clone(), Store::default()).unwrap();
        assert_eq!(pt.s1_context().ips, ips);
        assert_eq!((pt.s1_context().sh0, pt.s1_context().rgn0), (0b10, 0b00));
    }
    for (g, ias, oas) in [
        (Granule::G4K, 49, 48),
        (Granule::G4K, 24, 48),
        (Granule::G4K, 48, 52),
    ] {
        let cfg = Config {
            granule: g,
            ias,
            oas,
            coherent_walk: true,
        };
        let e = PageTable::new(cfg, mem.clone(), Store::default()).err();
        assert_eq!(e, Some(PgtableError::InvalidArgument));
    }
}

#[test]
fn descriptor_golden_values() {
    // Bits from the Arm ARM D8.3/D8.4 (same as io-pgtable-arm.c:68-137): page 0b11, AttrIndx
    // [4:2], AP[1] bit 6 (EL0), AP[2] bit 7 (RO), SH [9:8], AF bit 10, nG bit 11, PXN 53, UXN 54.
    let (mem, pt) = new_pt(Granule::G4K, 48);
    let pa = 0x1234_5000;
    let cases = [
        (RW | Prot::CACHE, 0xf47),                      // idx 1, SH inner, EL0, RW
        (Prot::READ, 0xec3),                            // idx 0, SH outer, RO
        (RW | Prot::MMIO, 0xe4b),                       // idx 2 (device)
        (RW | Prot::PRIV, 0xf03 & !0x100),              // no EL0 bit, SH outer
        (RW | Prot::NOEXEC, 0x0060_0000_0000_0e43),     // UXN | PXN
        (Prot::WRITE, 0xe43),                           // write-only becomes RW (no RO bit)
        (Prot::READ | Prot::PRIV | Prot::CACHE, 0xf87), // RO, privileged, cacheable
    ];
    for (i, (prot, bits)) in cases.into_iter().enumerate() {
        let iova = 0x4000_0000 + i as u64 * K4;
        pt.map(iova, pa, K4, prot).unwrap();
        let w = walk(&mem, &wcfg(&pt), iova).unwrap();
        assert_eq!(w.desc, pa | bits, "case {i}: {prot:?} -> {:#x}", w.desc);
        assert_eq!(w.level, 3);
    }
    let a = attrs(walk(&mem, &wcfg(&pt), 0x4000_0000).unwrap().desc);
    assert!(a.af && a.ng && a.el0 && !a.read_only && a.attr_index == 1 && a.sh == 3);
}

/// Largest-leaf selection for each granule, checked with the walker.
#[test]
fn blocks_per_granule() {
    let cases: [(Granule, u64, u32); 4] = [
        (Granule::G4K, G1, 1),
        (Granule::G4K, M2, 2),
        (Granule::G16K, 32 << 20, 2),
        (Granule::G64K, 512 << 20, 2),
    ];
    for (g, block, level) in cases {
        let (mem, pt) = new_pt(g, 48);
        let gs = g.size();
        // One page, then the block, then one page: page / block / page.
        let iova = 4 * block - gs;
        let pa = 8 * block - gs;
        pt.map(iova, pa, block + 2 * gs, RW).unwrap();
        let cfg = wcfg(&pt);
        assert_eq!(
            walk(&mem, &cfg, iova).unwrap(),
            walk(&mem, &cfg, iova).unwrap()
        );
        assert_eq!(walk(&mem, &cfg, iova).unwrap().level, 3);
        let b = walk(&mem, &cfg, iova + gs).unwrap();
        assert_eq!((b.level, b.pa), (level, pa + gs), "{g:?}");
        let b2 = walk(&mem, &cfg, iova + gs + block - 8).unwrap();
        assert_eq!((b2.level, b2.pa), (level, pa + gs + block - 8));
        assert_eq!(walk(&mem, &cfg, iova + gs + block).unwrap().level, 3);
        assert_eq!(
            walk(&mem, &cfg, iova + 2 * gs + block),
            Err(Fault::Translation(3))
        );
        // Misaligned physical address: no block, pages only.
        let (mem, pt) = new_pt(g, 48);
        pt.map(block, block + gs, block, RW).unwrap();
        let w = walk(&mem, &wcfg(&pt), block + 5 * gs).unwrap();
        assert_eq!((w.level, w.pa), (3, block + 6 * gs));
        assert_eq!(
            pt.iova_to_phys(block + 5 * gs + 3),
            Some(block + 6 * gs + 3)
        );
    }
}

#[test]
fn split_block_on_partial_unmap() {
    for ril in [false, true] {
        let (mem, mut pt) = new_pt(Granule::G4K, 48);
        let prot = Prot::READ | Prot::NOEXEC | Prot::CACHE;
        pt.map(G1, 3 * G1, M2, prot).unwrap();
        let before = walk(&mem, &wcfg(&pt), G1).unwrap();
        assert_eq!(before.level, 2);
        let (n, plan) = unmap(&mut pt, G1 + 5 * K4, K4, ril);
        assert_eq!(n, K4);
        let cfg = wcfg(&pt);
        for p in 0..512u64 {
            let r = walk(&mem, &cfg, G1 + p * K4);
            if p == 5 {
                assert_eq!(r, Err(Fault::Translation(3)));
                assert_eq!(pt.iova_to_phys(G1 + p * K4), None);
            } else {
                let w = r.unwrap();
                assert_eq!((w.pa, w.level), (3 * G1 + p * K4, 3));
                assert_eq!(attrs(w.desc), attrs(before.desc), "attributes kept");
            }
        }
        // One command, no TTL: the old 2M entry and the new page entry both contain the VA.
        let expect = if ril {
            Invalidation::Range {
                iova: G1 + 5 * K4,
                granule: Granule::G4K,
                scale: 0,
                num: 1,
                ttl: 0,
                leaf: true,
            }
        } else {
            Invalidation::Va {
                iova: G1 + 5 * K4,
                leaf: true,
            }
        };
        assert_eq!(plan, vec![expect]);
    }
    // 1G block: two-level split, remove a 2M piece and a 4K piece in one range.
    let (mem, mut pt) = new_pt(Granule::G4K, 48);
    pt.map(G1, G1, G1, RW).unwrap();
    let (n, _) = unmap(&mut pt, G1 + M2 - K4, M2 + K4, false);
    assert_eq!(n, M2 + K4);
    let cfg = wcfg(&pt);
    assert_eq!(walk(&mem, &cfg, G1).unwrap().level, 3);
    assert!(walk(&mem, &cfg, G1 + M2 - K4).is_err());
    assert!(walk(&mem, &cfg, G1 + 2 * M2 - K4).is_err());
    let w = walk(&mem, &cfg, G1 + 2 * M2).unwrap();
    assert_eq!((w.level, w.pa), (2, G1 + 2 * M2));
    // 16K and 64K: 32M / 512M blocks split into pages.
    for (g, block) in [(Granule::G16K, 32u64 << 20), (Granule::G64K, 512 << 20)] {
        let (mem, mut pt) = new_pt(g, 48);
        pt.map(block, block, block, RW).unwrap();
        let gs = g.size();
        let (n, _) = unmap(&mut pt, block + block / 2, gs, false);
        assert_eq!(n, gs);
        let cfg = wcfg(&pt);
        assert!(walk(&mem, &cfg, block + block / 2).is_err());
        let w = walk(&mem, &cfg, block + block / 2 + gs).unwrap();
        assert_eq!((w.level, w.pa), (3, block + block / 2 + gs));
    }
}

#[test]
fn error_cases() {
    let (mem, mut pt) = new_pt(Granule::G4K, 39);
    use PgtableError::*;
    assert_eq!(pt.map(0x1000, 0x1800, K4, RW), Err(InvalidArgument));
    assert_eq!(pt.map(0x1800, 0x1000, K4, RW), Err(InvalidArgument));
    assert_eq!(pt.map(0x1000, 0x1000, 0x800, RW), Err(InvalidArgument));
    assert_eq!(pt.map(0x1000, 0x1000, 0, RW), Err(InvalidArgument));
    assert_eq!(
        pt.map(0x1000, 0x1000, K4, Prot::CACHE),
        Err(InvalidArgument)
    );
    assert_eq!(pt.map((1 << 39) - K4, 0, 2 * K4, RW), Err(OutOfRange));
    assert_eq!(pt.map(u64::MAX - 0xfff, 0, K4, RW), Err(OutOfRange));
    assert_eq!(pt.map(0, (1 << 48) - K4, 2 * K4, RW), Err(OutOfRange));
    assert_eq!(pt.map((1 << 39) - K4, (1 << 48) - K4, K4, RW), Ok(()));
    assert_eq!(InvalidArgument.errno(), 22);
    assert_eq!(OutOfRange.errno(), 34);
    assert_eq!(Exists.errno(), 17);
    assert_eq!(NoMemory.errno(), 12);

    // Overlap: partial overlap with a block and with a page; nothing changes.
    pt.map(M2, 0, M2, RW).unwrap();
    assert_eq!(pt.map(M2 - K4, 0x10_0000_0000, 2 * K4, RW), Err(Exists));
    assert_eq!(pt.iova_to_phys(M2 - K4), None, "no partial map on EEXIST");
    // The same inside one level-2 entry (the single-walk path): the existing page is the
    // last of the run, nothing before it may have been written.
    pt.map(3 * M2 + 15 * K4, 0x10_0000_0000, K4, RW).unwrap();
    assert_eq!(pt.map(3 * M2, 0x20_0000_0000, 16 * K4, RW), Err(Exists));
    for p in 0..15 {
        assert_eq!(
            pt.iova_to_phys(3 * M2 + p * K4),
            None,
            "no partial map on EEXIST"
        );
    }
    assert_eq!(pt.map(2 * M2 - K4, 0, K4, RW), Err(Exists));
    let mut g = Gather::new();
    assert_eq!(pt.unmap(0x1000, 0x800, &mut g), Err(InvalidArgument));
    assert_eq!(pt.unmap(1 << 39, K4, &mut g), Err(OutOfRange));
    // Unmapping nothing returns 0 bytes and needs no invalidation.
    assert_eq!(pt.unmap(10 * M2, M2, &mut g), Ok(0));
    assert!(g.is_empty());

    // ENOMEM on map: nothing mapped, tables left behind are reclaimed by a later unmap.
    let live = mem.live_blocks();
    mem.fail_allocations_after(Some(1));
    let iova = 0x20_0000_0000 + 0x10_0000;
    assert_eq!(pt.map(iova, 0, K4, RW), Err(NoMemory));
    mem.fail_allocations_after(None);
    assert_eq!(pt.iova_to_phys(iova), None);
    assert_eq!(
        walk(&mem, &wcfg(&pt), iova).map(|w| w.pa),
        Err(Fault::Translation(2))
    );
    let (n, _) = unmap(&mut pt, 0x20_0000_0000, G1, false);
    assert_eq!(n, 0);
    assert_eq!(mem.live_blocks(), live, "leftover table reclaimed");

    // ENOMEM while splitting on unmap: every translation intact.
    pt.map(4 * G1, 4 * G1, G1, RW).unwrap();
    mem.fail_allocations_after(Some(1));
    let mut g = Gather::new();
    assert_eq!(pt.unmap(4 * G1 + K4, K4, &mut g), Err(NoMemory));
    mem.fail_allocations_after(None);
    for va in [4 * G1, 4 * G1 + K4, 4 * G1 + M2 + K4, 5 * G1 - K4] {
        assert_eq!(walk(&mem, &wcfg(&pt), va).map(|w| w.pa), Ok(va));
    }
    assert!(!g.is_empty(), "the split 1G block is still invalidated");
}

#[test]
fn tables_retired_then_freed() {
    let (mem, mut pt) = new_pt(Granule::G4K, 48);
    let root_only = mem.live_blocks();
    pt.map(0x7f_0000_0000, 0x1000, 3 * K4, RW).unwrap();
    assert_eq!(mem.live_blocks(), root_only + 3);
    let mut g = Gather::new();
    // Partial unmap: the L3 table still holds a page.
    assert_eq!(pt.unmap(0x7f_0000_0000, 2 * K4, &mut g), Ok(2 * K4));
    assert_eq!(g.retired_tables(), 0);
    assert_eq!(
        g.plan(InvFeatures::default()).collect::<Vec<_>>(),
        vec![
            Invalidation::Va {
                iova: 0x7f_0000_0000,
                leaf: true
            },
            Invalidation::Va {
                iova: 0x7f_0000_1000,
                leaf: true
            }
        ]
    );
    // Removing the last page empties the tables but does not cover them: they stay linked
    // (io-pgtable-arm frees only tables an unmap covers whole), with a leaf invalidation only.
    assert_eq!(pt.release_retired(&mut g), 0);
    assert_eq!(pt.unmap(0x7f_0000_2000, K4, &mut g), Ok(K4));
    assert_eq!(g.retired_tables(), 0);
    assert_eq!(
        g.plan(InvFeatures::default()).collect::<Vec<_>>(),
        vec![Invalidation::Va {
            iova: 0x7f_0000_2000,
            leaf: true
        }]
    );
    assert_eq!(pt.release_retired(&mut g), 0);
    assert_eq!(mem.live_blocks(), root_only + 3, "empty tables kept");
    // A map below the kept tables allocates nothing.
    pt.map(0x7f_0000_3000, 0x1000, K4, RW).unwrap();
    assert_eq!(mem.live_blocks(), root_only + 3, "kept tables reused");
    // An unmap covering the level-0 entry's 512 GiB covers the three tables whole: retired
    // (walk invalidation), freed only by release_retired.
    assert_eq!(pt.unmap(0, 1 << 39, &mut g), Ok(K4));
    assert_eq!(g.retired_tables(), 3);
    assert_eq!(
        mem.live_blocks(),
        root_only + 3,
        "not freed before invalidation"
    );
    assert_eq!(
        walk(&mem, &wcfg(&pt), 0x7f_0000_3000),
        Err(Fault::Translation(0))
    );
    let plan: Vec<_> = g.plan(InvFeatures::default()).collect();
    assert_eq!(
        plan,
        vec![Invalidation::Va {
            iova: 0x7f_0000_3000,
            leaf: false
        }]
    );
    assert_eq!(pt.release_retired(&mut g), 3);
    assert!(g.is_empty());
    assert_eq!(mem.live_blocks(), root_only);
    assert_eq!(count_tables(&mem, &wcfg(&pt)), 1);
    drop(pt);
    assert_eq!(mem.live_blocks(), 0);
}

#[test]
fn invalidation_plans_and_linux_comparison() {
    let none = InvFeatures {
        ril: false,
        max_tlbi_ops: None,
    };
    let ril = InvFeatures {
        ril: true,
        max_tlbi_ops: None,
    };
    let base = 0x10_0000_0000u64;
    // (what, setup size and mapping, unmap size, ours no-RIL, ours RIL)
    for (pages, ours_no, ours_ril) in [(1u64, 1, 1), (16, 16, 1), (33, 33, 2), (511, 511, 2)] {
        let (_m, pt) = new_pt(Granule::G4K, 48);
        pt.map(base + K4, 0, 511 * K4, RW).unwrap();
        let mut g = Gather::new();
        pt.unmap(base + K4, pages * K4, &mut g).unwrap();
        assert_eq!(
            g.cost(none),
            TlbiCost {
                tlbi: ours_no,
                sync: 1
            },
            "{pages}"
        );
        assert_eq!(
            g.cost(ril),
            TlbiCost {
                tlbi: ours_ril,
                sync: 1
            },
            "{pages} ril"
        );
        let mut c = LinuxModel::new(false, Granule::G4K);
        for p in 0..pages {
            c.add_page(base + K4 + p * K4, K4);
        }
        assert_eq!(
            c.finish(),
            TlbiCost {
                tlbi: pages,
                sync: 1
            }
        );
    }
    // Threshold: 512 single pages (not a whole table) -> one ASID invalidation.
    let (_m, pt) = new_pt(Granule::G4K, 48);
    pt.map(base + K4, 0, 512 * K4, RW).unwrap();
    let mut g = Gather::new();
    pt.unmap(base + K4, 512 * K4, &mut g).unwrap();
    assert_eq!(g.plan(none).collect::<Vec<_>>(), vec![Invalidation::Asid]);
    // RIL: one range of 512 pages, leaf, TTL 3: neither level-3 table is covered whole, so
    // both stay (as in C) and no walk invalidation is owed.
    assert_eq!(g.retired_tables(), 0);
    let r: Vec<_> = g.plan(ril).collect();
    assert_eq!(
        r,
        vec![Invalidation::Range {
            iova: base + K4,
            granule: Granule::G4K,
            scale: 9,
            num: 1,
            ttl: 3,
            leaf: true
        }]
    );
    // C for the same: 512 pages at 4K -> 512 TLBI + 1 sync (no RIL), 1 range (RIL).
    for (ril, tlbi) in [(false, 512), (true, 1)] {
        let mut c = LinuxModel::new(ril, Granule::G4K);
        for p in 0..512 {
            c.add_page(base + K4 + p * K4, K4);
        }
        assert_eq!(c.finish(), TlbiCost { tlbi, sync: 1 });
    }
    // A whole 2M of pages: the L3 table is retired; C flushes the walk (512 non-leaf + sync)
    // then the leaf range (1 + sync).
    // (The physical address is not 2M-aligned: pages, not a block.)
    let (_m, pt) = new_pt(Granule::G4K, 48);
    pt.map(base, K4, 512 * K4, RW).unwrap();
    let mut g = Gather::new();
    pt.unmap(base, M2, &mut g).unwrap();
    assert_eq!(g.retired_tables(), 1);
    assert_eq!(g.cost(none), TlbiCost { tlbi: 1, sync: 1 });
    let r: Vec<_> = g.plan(ril).collect();
    assert_eq!(
        r,
        vec![Invalidation::Range {
            iova: base,
            granule: Granule::G4K,
            scale: 9,
            num: 1,
            ttl: 0,
            leaf: false
        }]
    );
    let mut c = LinuxModel::new(false, Granule::G4K);
    c.flush_walk(base, M2, K4);
    c.add_page(base, M2);
    assert_eq!(c.finish(), TlbiCost { tlbi: 513, sync: 2 });
    // A 2M block: one leaf command with TTL 2 (RIL), like C.
    let (_m, pt) = new_pt(Granule::G4K, 48);
    pt.map(base, 0, M2, RW).unwrap();
    pt.map(base + 4 * M2, 0, M2, RW).unwrap(); // keeps the L2 table alive
    let mut g = Gather::new();
    pt.unmap(base, M2, &mut g).unwrap();
    assert_eq!(
        g.plan(none).collect::<Vec<_>>(),
        vec![Invalidation::Va {
            iova: base,
            leaf: true
        }]
    );
    assert!(matches!(
        g.plan(ril).next(),
        Some(Invalidation::Range {
            ttl: 2,
            scale: 9,
            num: 1,
            ..
        })
    ));
    // Gather overflow degrades to a whole-ASID invalidation.
    let (_m, pt) = new_pt(Granule::G4K, 48);
    pt.map(base, 0, 64 * K4, RW).unwrap();
    let mut g = Gather::new();
    for p in (0..64).step_by(2) {
        pt.unmap(base + p * K4, K4, &mut g).unwrap();
    }
    assert!(g.is_whole_asid());
    assert_eq!(g.cost(ril), TlbiCost { tlbi: 1, sync: 1 });
}
