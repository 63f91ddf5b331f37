// SPDX-License-Identifier: GPL-2.0
//! Per-master context-descriptor tables (IHI0070 5.3): one CD per SubstreamID (PASID).
//!
//! Up to 1024 SubstreamIDs (or when the SMMU lacks IDR0.CD2L) the table is linear; beyond that
//! it is 2-level with 1024-entry (64KB) leaves allocated the first time a SubstreamID inside
//! them is used, as Linux does. SubstreamID 0 holds the CD used for transactions without a
//! PASID when the STE says S1DSS = SSID0.

use super::cd::{Cd, L1Cd};
use super::dma::{DmaAllocator, DmaMemory};
use super::error::{Error, Result};
use super::ste::{s1fmt, CdTableRef};
use super::store::TableStore;

/// Bytes per CD.
pub const CD_BYTES: usize = 64;
/// CDs per leaf of a 2-level table (arm-smmu-v3.h CTXDESC_L2_ENTRIES).
pub const L2_ENTRIES: u32 = 1024;
/// log2 of [`L2_ENTRIES`].
pub const L2_SHIFT: u32 = 10;
/// Largest linear table (log2 entries) when 2-level tables are unavailable: 64KB, like
/// Linux's CTXDESC_LINEAR_CDMAX.
pub const LINEAR_MAX_BITS: u32 = 10;
/// Bytes of one leaf of a 2-level table (allocated naturally aligned).
pub const LEAF_BYTES: usize = CD_BYTES * L2_ENTRIES as usize;
/// Widest SubstreamID (IHI0070: 20 bits).
pub const MAX_SSID_BITS: u32 = 20;

/// Number of SubstreamID bits a master gets: bounded by the master, by the SMMU
/// (IDR1.SSIDSIZE), and by [`LINEAR_MAX_BITS`] without 2-level CD tables. This is S1CDMax.
pub fn s1cdmax(master_ssid_bits: u32, smmu_ssid_bits: u32, cd2l: bool) -> u32 {
    let bits = master_ssid_bits.min(smmu_ssid_bits).min(MAX_SSID_BITS);
    if cd2l {
        bits
    } else {
        bits.min(LINEAR_MAX_BITS)
    }
}

/// Where one CD lives.
pub struct CdSlot<'a, D: DmaMemory> {
    /// The table or leaf holding it.
    pub mem: &'a D,
    /// Byte offset of the CD in `mem`.
    pub offset: usize,
}

enum Layout<D: DmaMemory, S: TableStore<D>> {
    Linear(D),
    TwoLevel { l1: D, l1_entries: u32, leaves: S },
}

/// A master's CD table.
pub struct CdTable<D: DmaMemory, S: TableStore<D>> {
    bits: u32,
    layout: Layout<D, S>,
}

impl<D: DmaMemory, S: TableStore<D> + Default> CdTable<D, S> {
    /// Allocates a table for `2^bits` SubstreamIDs (`bits` from [`s1cdmax`]), 2-level when
    /// there are more than 1024 and `cd2l`.
    pub fn new<A: DmaAllocator<Memory = D>>(alloc: &A, bits: u32, cd2l: bool) -> Result<Self> {
        if bits > MAX_SSID_BITS || (!cd2l && bits > LINEAR_MAX_BITS) {
            return Err(Error::InvalidArgument);
        }
        let layout = if bits <= L2_SHIFT {
            let bytes = CD_BYTES << bits;
            Layout::Linear(alloc.alloc_zeroed(bytes, bytes.max(64))?)
        } else {
            let l1_entries = 1u32 << (bits - L2_SHIFT);
            let bytes = l1_entries as usize * 8;
            let l1 = alloc.alloc_zeroed(bytes, bytes.max(64))?;
            Layout::TwoLevel {
                l1,
                l1_entries,
                leaves: S::default(),
            }
        };
        Ok(Self { bits, layout })
    }
}

impl<D: DmaMemory, S: TableStore<D>> CdTable<D, S> {
    /// SubstreamID bits (STE.S1CDMax).
    pub fn ssid_bits(&self) -> u32 {
        self.bits
    }

    /// What an STE needs to point at this table.
    pub fn cd_ref(&self) -> CdTableRef {
        match &self.layout {
            Layout::Linear(mem) => CdTableRef {
                dma: mem.dma_addr(),
                s1fmt: s1fmt::LINEAR,
                s1cdmax: self.bits as u8,
            },
            Layout::TwoLevel { l1, .. } => CdTableRef {
                dma: l1.dma_addr(),
                s1fmt: s1fmt::L2_64K,
                s1cdmax: self.bits as u8,
            },
        }
    }

    /// Number of allocated leaves (0 for a linear table).
    pub fn leaves(&self) -> usize {
        match &self.layout {
            Layout::Linear(_) => 0,
            Layout::TwoLevel { leaves, .. } => leaves.len(),
        }
    }

    /// Makes sure the CD of `ssid` exists, allocating and linking its leaf if needed. Returns
    /// whether a level-1 descriptor was written: the SMMU may have cached the invalid one, so
    /// the caller must then issue CFGI_CD with Leaf = 0 before relying on the new leaf.
    pub fn prepare<A: DmaAllocator<Memory = D>>(&mut self, alloc: &A, ssid: u32) -> Result<bool> {
        if (ssid as u64) >= (1u64 << self.bits) {
            return Err(Error::InvalidArgument);
        }
        match &mut self.layout {
            Layout::Linear(_) => Ok(false),
            Layout::TwoLevel {
                l1,
                l1_entries,
                leaves,
            } => {
                let idx = ssid >> L2_SHIFT;
                if idx >= *l1_entries {
                    return Err(Error::InvalidArgument);
                }
                let leaf_addr = match leaves.get(idx) {
                    Some(leaf) => leaf.dma_addr(),
                    None => {
                        // Naturally aligned, as the kernel page allocator would give it.
                        let leaf = alloc.alloc_zeroed(LEAF_BYTES, LEAF_BYTES)?;
                        let addr = leaf.dma_addr();
                        leaves.insert(idx, leaf).map_err(|_| Error::NoSpace)?;
                        addr
                    }
                };
                // A leaf added by the caller ([`CdTable::add_leaf`]) is linked here too.
                let desc = L1Cd::new(leaf_addr).0[0];
                if l1.read_u64(idx as usize * 8) == desc {
                    return Ok(false);
                }
                l1.write_u64(idx as usize * 8, desc);
                Ok(true)
            }
        }
    }

    /// Whether the CD of `ssid` lies in a leaf not allocated yet (2-level tables only).
    pub fn leaf_missing(&self, ssid: u32) -> bool {
        match &self.layout {
            Layout::Linear(_) => false,
            Layout::TwoLevel { leaves, .. } => leaves.get(ssid >> L2_SHIFT).is_none(),
        }
    }

    /// Adds `leaf` (zeroed, at least [`LEAF_BYTES`], naturally aligned), allocated by the
    /// caller beforehand (outside its locks, with an allocator that may sleep), as the leaf
    /// holding the CD of `ssid`. The level-1 descriptor is written (and must be invalidated)
    /// by the next [`CdTable::prepare`] of an SSID in it, as for a leaf `prepare` allocates.
    /// Gives the leaf back when there is one already (another attach added it first), for a
    /// linear table, an SSID beyond the table, a block too small, or no room in the store.
    pub fn add_leaf(&mut self, ssid: u32, leaf: D) -> core::result::Result<(), D> {
        if (ssid as u64) >= (1u64 << self.bits) || leaf.size() < LEAF_BYTES {
            return Err(leaf);
        }
        match &mut self.layout {
            Layout::Linear(_) => Err(leaf),
            Layout::TwoLevel {
                l1_entries, leaves, ..
            } => {
                let idx = ssid >> L2_SHIFT;
                if idx >= *l1_entries || leaves.get(idx).is_some() {
                    return Err(leaf);
                }
                leaves.insert(idx, leaf)
            }
        }
    }

    /// The CD of `ssid`, if its leaf exists.
    pub fn slot(&self, ssid: u32) -> Option<CdSlot<'_, D>> {
        if (ssid as u64) >= (1u64 << self.bits) {
            return None;
        }
        match &self.layout {
            Layout::Linear(mem) => Some(CdSlot {
                mem,
                offset: ssid as usize * CD_BYTES,
            }),
            Layout::TwoLevel { leaves, .. } => {
                let mem = leaves.get(ssid >> L2_SHIFT)?;
                let offset = (ssid & (L2_ENTRIES - 1)) as usize * CD_BYTES;
                Some(CdSlot { mem, offset })
            }
        }
    }

    /// Reads the CD of `ssid` (invalid if its leaf does not exist).
    pub fn read(&self, ssid: u32) -> Cd {
        let mut cd = Cd::invalid();
        if let Some(slot) = self.slot(ssid) {
            for (i, w) in cd.0.iter_mut().enumerate() {
                *w = slot.mem.read_u64(slot.offset + i * 8);
            }
        }
        cd
    }
}
