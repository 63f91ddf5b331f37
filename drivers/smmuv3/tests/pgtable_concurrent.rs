// SPDX-License-Identifier: GPL-2.0
//! The page table's lockless contract: `map` and `unmap` of disjoint ranges from several
//! threads at once, on ranges that share tables, then every translation checked by the
//! independent walker of `pgtable_common` (what the SMMU would see) and by `iova_to_phys`.
//!
//! `PhysMem` serialises each word access on its own lock, so threads interleave at descriptor
//! granularity: a table installed with a plain store instead of a compare-and-swap loses one
//! of two racing tables (and the leaves written below it) within a few rounds.

mod pgtable_common;

use pgtable_common::{count_tables, walk, wcfg, Store};
use physmem::PhysMem;
use smmuv3::pgtable::{Config, Gather, Granule, PageTable, Prot};
use std::sync::Barrier;

const K4: u64 = 4 << 10;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;
const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0);
const THREADS: u64 = 4;

type Pt = PageTable<PhysMem, Store>;

fn new_pt() -> (PhysMem, Pt) {
    let mem = PhysMem::new(0x8000_0000, 1 << 32);
    let cfg = Config {
        granule: Granule::G4K,
        ias: 48,
        oas: 48,
        coherent_walk: true,
    };
    let store = Store::with_rendezvous(THREADS as usize);
    let pt = PageTable::new(cfg, mem.clone(), store).unwrap();
    (mem, pt)
}

/// The output address the tests give `iova` (distinct per page, far from the tables).
fn pa_of(iova: u64) -> u64 {
    (1 << 40) + iova
}

/// Unmaps like a lockless caller: its own gather, then (invalidation assumed complete) the
/// retired tables back to the store.
fn unmap(pt: &Pt, iova: u64, size: u64) -> u64 {
    let mut g = Gather::new();
    let n = pt.unmap(iova, size, &mut g).unwrap();
    pt.release_retired_shared(&mut g);
    n
}

/// Checks that exactly the pages of `mapped` (iova -> mapped?) translate, to `pa_of`.
fn check(mem: &PhysMem, pt: &Pt, pages: impl Iterator<Item = (u64, bool)>) {
    let cfg = wcfg(pt);
    for (iova, mapped) in pages {
        let seen = walk(mem, &cfg, iova).ok().map(|w| w.pa);
        let want = mapped.then(|| pa_of(iova));
        assert_eq!(seen, want, "SMMU walk of IOVA {iova:#x}");
        assert_eq!(pt.iova_to_phys(iova), want, "iova_to_phys({iova:#x})");
    }
}

/// Threads own interleaved pages (page i belongs to thread i % THREADS) of one 4 MiB span:
/// every level-3 table, and the tables above, are shared by all of them. Each round maps all
/// of a thread's pages, unmaps every other one, maps them again with another layout.
#[test]
fn interleaved_pages_share_tables() {
    let (mem, pt) = new_pt();
    let base = 7 * G1 - M2; // the span crosses a level-1 and a level-2 boundary
    let pages = 2 * M2 / K4;
    let rounds = 8;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pt = &pt;
            s.spawn(move || {
                let mine = (0..pages).filter(|i| i % THREADS == t);
                for r in 0..rounds {
                    for i in mine.clone() {
                        let iova = base + i * K4;
                        pt.map(iova, pa_of(iova), K4, RW).unwrap();
                    }
                    for i in mine.clone().filter(|i| (i / THREADS + r).is_multiple_of(2)) {
                        assert_eq!(unmap(pt, base + i * K4, K4), K4);
                    }
                    if r + 1 < rounds {
                        for i in mine
                            .clone()
                            .filter(|i| !(i / THREADS + r).is_multiple_of(2))
                        {
                            assert_eq!(unmap(pt, base + i * K4, K4), K4);
                        }
                    }
                }
            });
        }
    });
    let last = rounds - 1;
    check(
        &mem,
        &pt,
        (0..pages).map(|i| (base + i * K4, !(i / THREADS + last).is_multiple_of(2))),
    );
}

/// Every thread maps one page of a region nobody touched yet, released together by a
/// barrier: they race to install the same level-1, level-2 and level-3 tables. The losers'
/// tables go back to the store; exactly one table per level is linked.
#[test]
fn racing_installs_link_one_table() {
    let (mem, pt) = new_pt();
    let rounds = 100;
    let barrier = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pt, barrier) = (&pt, &barrier);
            s.spawn(move || {
                for r in 0..rounds {
                    // A fresh 512 GiB slot per round: no table below the root yet.
                    let iova = (r + 1) * (1 << 39) + t * K4;
                    barrier.wait();
                    pt.map(iova, pa_of(iova), K4, RW).unwrap();
                }
            });
        }
    });
    check(
        &mem,
        &pt,
        (0..rounds).flat_map(|r| {
            (0..THREADS + 1).map(move |t| ((r + 1) * (1 << 39) + t * K4, t < THREADS))
        }),
    );
    // The root plus one table per level below it, per round.
    assert_eq!(count_tables(&mem, &wcfg(&pt)), 1 + 3 * rounds as usize);
}

/// One thread maps a whole 2 MiB of pages (a level-3 table) and unmaps it whole (the table
/// unlinked, retired, recycled), over and over; another maps and unmaps pages in the next
/// 2 MiB, whose level-3 table shares the level-2 table with it, checking its own pages as it
/// goes. Recycled tables come back for the first thread's next map.
#[test]
fn table_freed_next_to_map_in_neighbour() {
    let (mem, pt) = new_pt();
    let a = 3 * G1;
    let b = a + M2;
    let rounds = 30;
    std::thread::scope(|s| {
        let pt = &pt;
        let mem = &mem;
        s.spawn(move || {
            for _ in 0..rounds {
                for i in 0..M2 / K4 / 8 {
                    let iova = a + i * 8 * K4;
                    pt.map(iova, pa_of(iova), 8 * K4, RW).unwrap();
                }
                assert_eq!(unmap(pt, a, M2), M2);
            }
        });
        s.spawn(move || {
            for r in 0..rounds * 4 {
                let iova = b + (r % 64) * K4;
                pt.map(iova, pa_of(iova), K4, RW).unwrap();
                check(mem, pt, [(iova, true)].into_iter());
                assert_eq!(unmap(pt, iova, K4), K4);
                check(mem, pt, [(iova, false)].into_iter());
            }
        });
    });
    check(&mem, &pt, (0..2 * M2 / K4).map(|i| (a + i * K4, false)));
    // Empty tables stay linked (root, L1, L2, B's L3); A's L3 went back to the store.
    assert_eq!(count_tables(&mem, &wcfg(&pt)), 4);
    assert!(pt.store().pooled() >= 1, "unlinked table not recycled");
}

/// A caller that breaks the contract (maps and unmaps the same range from two threads at
/// once) gets wrong translations for that range at worst: no panic, no access outside the
/// store, and the page table keeps working for everyone else.
#[test]
fn overlapping_callers_stay_memory_safe() {
    let (mem, pt) = new_pt();
    let hot = 5 * G1;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pt = &pt;
            s.spawn(move || {
                for r in 0..200u64 {
                    let size = if (r + t) % 3 == 0 { M2 } else { 16 * K4 };
                    let _ = pt.map(hot, pa_of(hot), size, RW);
                    let mut g = Gather::new();
                    let _ = pt.unmap(hot, M2, &mut g);
                    pt.release_retired_shared(&mut g);
                }
            });
        }
    });
    // Whatever the hot range holds, a clean unmap empties it and the rest works.
    unmap(&pt, hot, M2);
    check(&mem, &pt, (0..M2 / K4).map(|i| (hot + i * K4, false)));
    let other = 9 * G1;
    pt.map(other, pa_of(other), 4 * K4, RW).unwrap();
    check(&mem, &pt, (0..4).map(|i| (other + i * K4, true)));
}
