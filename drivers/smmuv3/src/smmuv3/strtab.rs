// SPDX-License-Identifier: GPL-2.0
//! The stream table: linear, or 2-level with lazily allocated level-2 tables (IHI0070 5.1).
//!
//! Like Linux, the 2-level format uses SPLIT = 8: each level-2 table holds 256 STEs (one PCI
//! bus) and is allocated the first time one of its StreamIDs is configured. Fresh STEs are
//! written as "abort" before the level-2 table is linked, so a stream the driver never
//! configured can never bypass the SMMU.

use super::dma::{DmaAllocator, DmaMemory};
use super::error::{Error, Result};
use super::regs::{StrtabBase, StrtabBaseCfg};
use super::ste::{L1Std, Ste};
use super::store::TableStore;

/// Bytes per STE.
pub const STE_BYTES: usize = 64;
/// StreamID bits resolved by a level-2 table (arm-smmu-v3.h STRTAB_SPLIT).
pub const STRTAB_SPLIT: u32 = 8;
/// Largest number of level-1 descriptors allocated (arm-smmu-v3.h STRTAB_MAX_L1_ENTRIES).
pub const MAX_L1_ENTRIES: u32 = 1 << 17;
/// Largest linear table allocated (log2 entries): beyond this a 2-level table is required.
pub const MAX_LINEAR_SID_BITS: u32 = 16;

/// STRTAB_BASE_CFG.FMT values.
pub mod fmt {
    /// Linear.
    pub const LINEAR: u8 = 0;
    /// 2-level.
    pub const TWO_LEVEL: u8 = 1;
}

fn init_abort<D: DmaMemory>(mem: &D, count: usize) {
    let abort = Ste::abort();
    for i in 0..count {
        for (w, v) in abort.0.iter().enumerate() {
            mem.write_u64(i * STE_BYTES + w * 8, *v);
        }
    }
}

/// Where one STE lives.
pub struct SteSlot<'a, D: DmaMemory> {
    /// The table holding it.
    pub mem: &'a D,
    /// Byte offset of the STE in `mem`.
    pub offset: usize,
}

/// A stream table.
pub enum StreamTable<D: DmaMemory, S: TableStore<D>> {
    /// One array of `2^sid_bits` STEs.
    Linear {
        /// The STE array.
        mem: D,
        /// StreamID bits covered.
        sid_bits: u32,
    },
    /// Level-1 descriptors pointing at lazily allocated 256-STE tables.
    TwoLevel {
        /// The level-1 descriptor array.
        l1: D,
        /// Number of level-1 descriptors.
        l1_entries: u32,
        /// Owners of the level-2 tables, by level-1 index.
        l2: S,
    },
}

impl<D: DmaMemory, S: TableStore<D> + Default> StreamTable<D, S> {
    /// Allocates a table covering `sid_bits` of StreamID, 2-level if `two_level`.
    pub fn new<A: DmaAllocator<Memory = D>>(
        alloc: &A,
        sid_bits: u32,
        two_level: bool,
    ) -> Result<Self> {
        if two_level && sid_bits > STRTAB_SPLIT {
            let want = 1u64 << (sid_bits.min(32) - STRTAB_SPLIT);
            let l1_entries = want.min(MAX_L1_ENTRIES as u64) as u32;
            let bytes = l1_entries as usize * 8;
            let l1 = alloc.alloc_zeroed(bytes, bytes.max(64))?;
            Ok(Self::TwoLevel {
                l1,
                l1_entries,
                l2: S::default(),
            })
        } else {
            if sid_bits > MAX_LINEAR_SID_BITS {
                return Err(Error::Unsupported);
            }
            let count = 1usize << sid_bits;
            let bytes = count * STE_BYTES;
            let mem = alloc.alloc_zeroed(bytes, bytes)?;
            init_abort(&mem, count);
            Ok(Self::Linear { mem, sid_bits })
        }
    }
}

impl<D: DmaMemory, S: TableStore<D>> StreamTable<D, S> {
    /// Number of StreamIDs the table covers.
    pub fn num_sids(&self) -> u64 {
        match self {
            Self::Linear { sid_bits, .. } => 1u64 << sid_bits,
            Self::TwoLevel { l1_entries, .. } => (*l1_entries as u64) << STRTAB_SPLIT,
        }
    }

    /// The SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG values for this table.
    pub fn base_regs(&self) -> (StrtabBase, StrtabBaseCfg) {
        match self {
            Self::Linear { mem, sid_bits } => (
                StrtabBase(0).set_ra(true).set_addr(mem.dma_addr() >> 6),
                StrtabBaseCfg(0)
                    .set_fmt(fmt::LINEAR)
                    .set_log2size(*sid_bits as u8),
            ),
            Self::TwoLevel { l1, l1_entries, .. } => (
                StrtabBase(0).set_ra(true).set_addr(l1.dma_addr() >> 6),
                StrtabBaseCfg(0)
                    .set_fmt(fmt::TWO_LEVEL)
                    .set_split(STRTAB_SPLIT as u8)
                    .set_log2size((l1_entries.trailing_zeros() + STRTAB_SPLIT) as u8),
            ),
        }
    }

    /// Makes sure the STE of `sid` exists, allocating (all-abort) and linking its level-2
    /// table if needed. Returns whether a level-1 descriptor was written, in which case the
    /// caller's first invalidation must not be leaf-only.
    pub fn prepare<A: DmaAllocator<Memory = D>>(&mut self, alloc: &A, sid: u32) -> Result<bool> {
        if (sid as u64) >= self.num_sids() {
            return Err(Error::InvalidArgument);
        }
        match self {
            Self::Linear { .. } => Ok(false),
            Self::TwoLevel { l1, l2, .. } => {
                let idx = sid >> STRTAB_SPLIT;
                if l2.get(idx).is_some() {
                    return Ok(false);
                }
                let count = 1usize << STRTAB_SPLIT;
                let bytes = count * STE_BYTES;
                let table = alloc.alloc_zeroed(bytes, bytes)?;
                init_abort(&table, count);
                let desc = L1Std::new(table.dma_addr(), STRTAB_SPLIT as u8);
                // Keep the owner before publishing the descriptor, so a full store cannot
                // leave the SMMU pointing at freed memory.
                l2.insert(idx, table).map_err(|_| Error::NoSpace)?;
                l1.write_u64(idx as usize * 8, desc.0[0]);
                Ok(true)
            }
        }
    }

    /// The STE of `sid`, if its table exists.
    pub fn slot(&self, sid: u32) -> Option<SteSlot<'_, D>> {
        if (sid as u64) >= self.num_sids() {
            return None;
        }
        match self {
            Self::Linear { mem, .. } => Some(SteSlot {
                mem,
                offset: sid as usize * STE_BYTES,
            }),
            Self::TwoLevel { l2, .. } => {
                let mem = l2.get(sid >> STRTAB_SPLIT)?;
                let offset = (sid as usize & ((1 << STRTAB_SPLIT) - 1)) * STE_BYTES;
                Some(SteSlot { mem, offset })
            }
        }
    }

    /// Reads the current STE of `sid` (abort if its level-2 table does not exist).
    pub fn read(&self, sid: u32) -> Ste {
        let mut ste = Ste::abort();
        if let Some(slot) = self.slot(sid) {
            for (i, w) in ste.0.iter_mut().enumerate() {
                *w = slot.mem.read_u64(slot.offset + i * 8);
            }
        }
        ste
    }
}
