// SPDX-License-Identifier: GPL-2.0
//! Property test: random map/unmap sequences (pages, blocks, block splits, allocation
//! failures; all three granules) against a reference interval map. After every step, sampled
//! and boundary addresses must agree between the reference, `iova_to_phys` and the independent
//! walker; every unmapped address must be covered by the planned invalidations; no table may
//! leak; dropping the page table frees everything.

mod pgtable_common;

use pgtable_common::{attrs, count_tables, walk, Attrs, Store, WalkCfg};
use physmem::PhysMem;
use proptest::prelude::*;
use smmuv3::pgtable::{
    Config, Gather, Granule, InvFeatures, Invalidation, PageTable, PgtableError, Prot,
};
use std::collections::BTreeMap;

/// Reference: start -> (end, pa at start, prot).
type Reference = BTreeMap<u64, (u64, u64, u32)>;

fn ref_lookup(r: &Reference, va: u64) -> Option<(u64, u32)> {
    let (&s, &(e, pa, prot)) = r.range(..=va).next_back()?;
    (va < e).then_some((pa + (va - s), prot))
}

fn ref_mapped_bytes(r: &Reference, s: u64, e: u64) -> u64 {
    r.iter()
        .map(|(&a, &(b, _, _))| b.min(e).saturating_sub(a.max(s)))
        .sum()
}

fn ref_remove(r: &mut Reference, s: u64, e: u64) {
    let keys: Vec<u64> = r.range(..e).map(|(k, _)| *k).collect();
    for a in keys {
        let (b, pa, prot) = r[&a];
        if b <= s {
            continue;
        }
        r.remove(&a);
        if a < s {
            r.insert(a, (s, pa, prot));
        }
        if b > e {
            r.insert(e, (b, pa + (e - a), prot));
        }
    }
}

fn expected_attrs(prot: u32) -> Attrs {
    let p = |f: Prot| prot & f.0 != 0;
    Attrs {
        attr_index: if p(Prot::MMIO) {
            2
        } else if p(Prot::CACHE) {
            1
        } else {
            0
        },
        read_only: p(Prot::READ) && !p(Prot::WRITE),
        el0: !p(Prot::PRIV),
        sh: if p(Prot::CACHE) { 3 } else { 2 },
        af: true,
        ng: true,
        pxn: p(Prot::NOEXEC),
        uxn: p(Prot::NOEXEC),
    }
}

const PROTS: [u32; 5] = [
    Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0,
    Prot::READ.0,
    Prot::READ.0 | Prot::WRITE.0 | Prot::NOEXEC.0,
    Prot::WRITE.0 | Prot::MMIO.0 | Prot::PRIV.0,
    Prot::READ.0 | Prot::PRIV.0 | Prot::CACHE.0 | Prot::NOEXEC.0,
];

#[derive(Debug, Clone)]
struct Op {
    map: bool,
    /// Start offset in granules (before alignment).
    off: u64,
    /// Align the start to the block size.
    block_aligned: bool,
    len_kind: u8,
    len_pages: u64,
    /// PA offset kind: 0 same alignment as the IOVA, 1 shifted by one granule.
    pa_kind: u8,
    prot: usize,
    /// Fail allocations after this many (fault injection), if any.
    fail_after: Option<u64>,
    /// Extra addresses to sample, as window fractions and byte offsets.
    samples: Vec<(u64, u64)>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        0u64..1 << 20,
        any::<bool>(),
        0u8..6,
        1u64..40,
        0u8..2,
        0usize..PROTS.len(),
        prop_oneof![6 => Just(None), 1 => (0u64..3).prop_map(Some)],
        proptest::collection::vec((0u64..1 << 20, 0u64..1 << 16), 6),
    )
        .prop_map(
            |(map, off, block_aligned, len_kind, len_pages, pa_kind, prot, fail_after, samples)| {
                Op {
                    map,
                    off,
                    block_aligned,
                    len_kind,
                    len_pages,
                    pa_kind,
                    prot,
                    fail_after,
                    samples,
                }
            },
        )
}

struct Geometry {
    g: u64,
    block: u64,
    huge: u64,
    window: u64,
    base: u64,
}

fn geometry(granule: Granule) -> Geometry {
    let g = granule.size();
    match granule {
        Granule::G4K => Geometry {
            g,
            block: 2 << 20,
            huge: 1 << 30,
            window: 4 << 30,
            base: 1 << 40,
        },
        Granule::G16K => Geometry {
            g,
            block: 32 << 20,
            huge: 32 << 20,
            window: 256 << 20,
            base: 1 << 40,
        },
        Granule::G64K => Geometry {
            g,
            block: 512 << 20,
            huge: 512 << 20,
            window: 2 << 30,
            base: 1 << 40,
        },
    }
}

/// Whether `inv` removes a cached leaf for `va` that was at `level`, spanning `[ls, ls+lsize)`.
fn covers(inv: &Invalidation, va: u64, level: u32, ls: u64, lsize: u64) -> bool {
    match *inv {
        Invalidation::Asid => true,
        // Hits any entry containing the address (no TTL).
        Invalidation::Va { iova, .. } => iova >= ls && iova - ls < lsize,
        Invalidation::Range { iova, ttl, .. } => {
            let end = iova + inv.size().unwrap();
            let overlaps = iova < ls + lsize && ls < end;
            let _ = va;
            overlaps && (ttl == 0 || u32::from(ttl) == level)
        }
    }
}

fn run(granule: Granule, ops: Vec<Op>, ril: bool) -> Result<(), TestCaseError> {
    let geo = geometry(granule);
    let mem = PhysMem::new(0x1_0000_0000, 1 << 34);
    let cfg = Config {
        granule,
        ias: 48,
        oas: 48,
        coherent_walk: true,
    };
    let mut pt = PageTable::new(cfg, mem.clone(), Store::default()).unwrap();
    let c = pt.s1_context();
    let wcfg = WalkCfg {
        ttb: c.ttb0,
        granule: geo.g,
        t0sz: u32::from(c.t0sz),
    };
    let mut reference = Reference::new();
    let features = InvFeatures {
        ril,
        max_tlbi_ops: None,
    };

    for op in ops {
        let len = match op.len_kind {
            0 => geo.g,
            1 => op.len_pages * geo.g,
            2 => geo.block,
            3 => geo.block + op.len_pages * geo.g,
            4 => geo.huge,
            _ => 2 * geo.block + 3 * geo.g,
        };
        let align = if op.block_aligned { geo.block } else { geo.g };
        let max_off = geo.window - len;
        let start = geo.base + ((op.off * geo.g) % (max_off + 1)) / align * align;
        let end = start + len;
        let pa = start + (1 << 44) + if op.pa_kind == 1 { geo.g } else { 0 };
        let prot = PROTS[op.prot];

        // Leaf extents before the op, for the invalidation coverage check.
        let mut probes: Vec<u64> = vec![start, end - geo.g, start + (len / 2) / geo.g * geo.g];
        probes.extend(
            op.samples
                .iter()
                .map(|&(f, _)| start + (f * geo.g) % len / geo.g * geo.g),
        );
        let before: Vec<_> = probes
            .iter()
            .map(|&va| (va, walk(&mem, &wcfg, va)))
            .collect();

        mem.fail_allocations_after(op.fail_after);
        if op.map {
            let overlap = ref_mapped_bytes(&reference, start, end) != 0;
            let r = pt.map(start, pa, len, Prot(prot));
            mem.fail_allocations_after(None);
            match r {
                Ok(()) => {
                    prop_assert!(!overlap, "map over a mapping succeeded");
                    reference.insert(start, (end, pa, prot));
                }
                Err(PgtableError::Exists) => prop_assert!(overlap),
                Err(PgtableError::NoMemory) => prop_assert!(op.fail_after.is_some()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        } else {
            let mut gather = Gather::new();
            let r = pt.unmap(start, len, &mut gather);
            mem.fail_allocations_after(None);
            match r {
                Ok(n) => {
                    prop_assert_eq!(n, ref_mapped_bytes(&reference, start, end));
                    // Every unmapped probe's old leaf is invalidated by the plan.
                    let plan: Vec<_> = gather.plan(features).collect();
                    for (va, w) in &before {
                        if let Ok(w) = w {
                            let lshift = granule.level_shift(w.level);
                            let ls = va & !((1u64 << lshift) - 1);
                            prop_assert!(
                                plan.iter()
                                    .any(|i| covers(i, *va, w.level, ls, 1 << lshift)),
                                "{va:#x} (level {}) not invalidated by {plan:?}",
                                w.level
                            );
                        }
                    }
                    prop_assert_eq!(plan.len() as u64, gather.cost(features).tlbi);
                    ref_remove(&mut reference, start, end);
                }
                Err(PgtableError::NoMemory) => prop_assert!(op.fail_after.is_some()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
            // Invalidation done: free the retired tables.
            pt.release_retired(&mut gather);
        }

        // Agreement on boundary and sampled addresses.
        let mut check: Vec<u64> = vec![start, end - 1, end, start.wrapping_sub(1), start + len / 2];
        check.extend(
            op.samples
                .iter()
                .map(|&(f, b)| geo.base + (f * geo.g + b) % geo.window),
        );
        for (&a, &(b, _, _)) in reference.iter().take(8) {
            check.extend([a, b - 1, b]);
        }
        for va in check {
            let expect = ref_lookup(&reference, va);
            prop_assert_eq!(
                pt.iova_to_phys(va),
                expect.map(|e| e.0),
                "iova_to_phys {:#x}",
                va
            );
            match (walk(&mem, &wcfg, va), expect) {
                (Ok(w), Some((pa, prot))) => {
                    prop_assert_eq!(w.pa, pa, "walk {:#x}", va);
                    prop_assert_eq!(attrs(w.desc), expected_attrs(prot), "attrs {:#x}", va);
                }
                (Err(_), None) => {}
                (w, e) => prop_assert!(false, "walk {va:#x}: {w:?} vs reference {e:?}"),
            }
        }
        // No leaked tables: every live block is the root or a reachable table.
        prop_assert_eq!(mem.live_blocks(), count_tables(&mem, &wcfg));
        prop_assert_eq!(pt.store().len() + 1, mem.live_blocks());
    }
    drop(pt);
    prop_assert_eq!(mem.live_blocks(), 0);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_ops_4k(ops in proptest::collection::vec(op_strategy(), 1..40), ril in any::<bool>()) {
        run(Granule::G4K, ops, ril)?;
    }

    #[test]
    fn random_ops_16k(ops in proptest::collection::vec(op_strategy(), 1..40), ril in any::<bool>()) {
        run(Granule::G16K, ops, ril)?;
    }

    #[test]
    fn random_ops_64k(ops in proptest::collection::vec(op_strategy(), 1..30), ril in any::<bool>()) {
        run(Granule::G64K, ops, ril)?;
    }
}
