// SPDX-License-Identifier: GPL-2.0
//! Host-side helpers for the page-table tests and benchmark: a `HashMap` [`Store`] and an
//! independent VMSAv8-64 stage-1 walker over [`PhysMem`].
//!
//! The walker is written from the Arm ARM (DDI 0487, D8.2 "Translation granules and lookup
//! levels", D8.3 "Descriptor formats") and uses no code or constant of the driver: it reads
//! raw descriptors from simulated physical memory like an SMMU table walk would.
#![allow(dead_code)]

use physmem::{Block, PhysMem};

/// The host `PageTableStore` (shared by concurrent callers, see `physmem::ArenaStore`).
pub type Store = physmem::ArenaStore<Block>;

/// What the walker needs, as a CD would give it to the SMMU.
#[derive(Debug, Clone, Copy)]
pub struct WalkCfg {
    /// TTB0.
    pub ttb: u64,
    /// Granule size in bytes: 4096, 16384 or 65536.
    pub granule: u64,
    /// T0SZ (16..=39).
    pub t0sz: u32,
}

/// The walker's view of `pt`'s CD fields (TTB0, granule, T0SZ).
pub fn wcfg<A, S>(pt: &smmuv3::pgtable::PageTable<A, S>) -> WalkCfg
where
    A: smmuv3::dma::DmaAllocator,
    S: smmuv3::pgtable::PageTableStore<A::Memory>,
{
    let c = pt.s1_context();
    WalkCfg {
        ttb: c.ttb0,
        granule: pt.config().granule.size(),
        t0sz: c.t0sz as u32,
    }
}

/// Result of a successful walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    pub pa: u64,
    pub level: u32,
    pub desc: u64,
}

/// Permission/attribute view of a leaf descriptor (Arm ARM D8.4 stage-1 fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub attr_index: u64,
    pub read_only: bool,
    pub el0: bool,
    pub sh: u64,
    pub af: bool,
    pub ng: bool,
    pub pxn: bool,
    pub uxn: bool,
}

pub fn attrs(desc: u64) -> Attrs {
    Attrs {
        attr_index: (desc >> 2) & 7,
        el0: desc & (1 << 6) != 0,
        read_only: desc & (1 << 7) != 0,
        sh: (desc >> 8) & 3,
        af: desc & (1 << 10) != 0,
        ng: desc & (1 << 11) != 0,
        pxn: desc & (1 << 53) != 0,
        uxn: desc & (1 << 54) != 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// VA beyond the input range (T0SZ).
    AddressSize,
    /// Invalid or reserved descriptor at this level.
    Translation(u32),
}

/// Initial lookup level from the Arm ARM tables "Translation table level for first lookup"
/// (D8.2.7), by granule and T0SZ. Deliberately a table, not a formula.
fn start_level(granule: u64, t0sz: u32) -> Option<u32> {
    match (granule, t0sz) {
        (4096, 16..=24) => Some(0),
        (4096, 25..=33) => Some(1),
        (4096, 34..=39) => Some(2),
        (16384, 16) => Some(0),
        (16384, 17..=27) => Some(1),
        (16384, 28..=38) => Some(2),
        (16384, 39) => Some(3),
        (65536, 16..=21) => Some(1),
        (65536, 22..=34) => Some(2),
        (65536, 35..=39) => Some(3),
        _ => None,
    }
}

/// Whether a block descriptor (bits[1:0] = 0b01) is allowed at `level` for this granule with
/// a 48-bit OA (D8.3.1: 4K L1/L2, 16K L2, 64K L2).
fn block_ok(granule: u64, level: u32) -> bool {
    matches!(
        (granule, level),
        (4096, 1) | (4096, 2) | (16384, 2) | (65536, 2)
    )
}

/// Walks `va`.
pub fn walk(mem: &PhysMem, cfg: &WalkCfg, va: u64) -> Result<Walked, Fault> {
    let ias = 64 - cfg.t0sz;
    if va >> ias != 0 {
        return Err(Fault::AddressSize);
    }
    let gshift = cfg.granule.trailing_zeros();
    let stride = gshift - 3;
    let mut level = start_level(cfg.granule, cfg.t0sz).expect("bad walk config");
    let mut table = cfg.ttb;
    let oa_mask: u64 = ((1u64 << 48) - 1) & !(cfg.granule - 1);
    loop {
        let lsb = gshift + stride * (3 - level);
        let msb = (lsb + stride - 1).min(ias - 1);
        let idx = (va >> lsb) & ((1u64 << (msb - lsb + 1)) - 1);
        let desc = mem.read_u64(table + idx * 8);
        if desc & 1 == 0 {
            return Err(Fault::Translation(level));
        }
        let is_table_or_page = desc & 2 != 0;
        if level == 3 {
            if !is_table_or_page {
                return Err(Fault::Translation(level));
            }
        } else if is_table_or_page {
            table = desc & oa_mask;
            level += 1;
            continue;
        } else if !block_ok(cfg.granule, level) {
            return Err(Fault::Translation(level));
        }
        let out_mask = ((1u64 << 48) - 1) & !((1u64 << lsb) - 1);
        return Ok(Walked {
            pa: (desc & out_mask) | (va & ((1u64 << lsb) - 1)),
            level,
            desc,
        });
    }
}

/// Number of tables reachable from the root (root included), by walking raw descriptors.
pub fn count_tables(mem: &PhysMem, cfg: &WalkCfg) -> usize {
    let gshift = cfg.granule.trailing_zeros();
    let stride = gshift - 3;
    let ias = 64 - cfg.t0sz;
    let level = start_level(cfg.granule, cfg.t0sz).unwrap();
    let lsb = gshift + stride * (3 - level);
    let root_entries = 1u64 << (ias - lsb);
    fn rec(mem: &PhysMem, cfg: &WalkCfg, t: u64, n: u64, level: u32) -> usize {
        let mut c = 1;
        if level == 3 {
            return c;
        }
        let oa_mask: u64 = ((1u64 << 48) - 1) & !(cfg.granule - 1);
        for i in 0..n {
            let d = mem.read_u64(t + i * 8);
            if d & 3 == 3 {
                c += rec(mem, cfg, d & oa_mask, cfg.granule / 8, level + 1);
            }
        }
        c
    }
    rec(mem, cfg, cfg.ttb, root_entries, level)
}
