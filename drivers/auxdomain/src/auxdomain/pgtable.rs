// SPDX-License-Identifier: GPL-2.0
//! The page-table interface an auxiliary domain needs, and the invalidation sequence.
//!
//! The layer keeps the page table behind [`IoPgtable`] so that it does not depend on how the
//! stage-1 domain of the driver core evolves (`smmuv3::domain`, in progress at the time of
//! writing): [`IoPgtable`] is implemented here for `smmuv3::pgtable::PageTable`, and
//! [`invalidate`] issues the unmap sequence (one TLBI per [`Invalidation`] of the gather's
//! plan, ATC invalidations for ATS masters, one CMD_SYNC, then the retired tables are freed).

use super::smmuv3::cmd::{Command, TlbiRange};
use super::smmuv3::device::Smmu;
use super::smmuv3::dma::{DmaAllocator, Mmio};
use super::smmuv3::pgtable::{
    Gather, Granule, InvFeatures, Invalidation, PageTable, PageTableStore, PgtableError, Prot,
    S1Context,
};
use super::smmuv3::queue::CmdBatch;
use super::smmuv3::store::TableStore;

/// A stage-1 I/O page table.
pub trait IoPgtable {
    /// Maps `[iova, iova + size)` to `[paddr, ..)` (fills invalid entries only).
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), PgtableError>;
    /// Unmaps every leaf in the range, recording what to invalidate into `gather`.
    fn unmap(&mut self, iova: u64, size: u64, gather: &mut Gather) -> Result<u64, PgtableError>;
    /// Frees the tables `gather` retired (after its invalidations completed).
    fn release_retired(&mut self, gather: &mut Gather) -> usize;
    /// Output address of `iova`, if mapped.
    fn iova_to_phys(&self, iova: u64) -> Option<u64>;
    /// The CD fields for this table.
    fn s1_context(&self) -> S1Context;
    /// The translation granule.
    fn granule(&self) -> Granule;
    /// Input address size in bits.
    fn ias(&self) -> u32;
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> IoPgtable for PageTable<A, S> {
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), PgtableError> {
        PageTable::map(self, iova, paddr, size, prot)
    }
    fn unmap(&mut self, iova: u64, size: u64, gather: &mut Gather) -> Result<u64, PgtableError> {
        PageTable::unmap(self, iova, size, gather)
    }
    fn release_retired(&mut self, gather: &mut Gather) -> usize {
        PageTable::release_retired(self, gather)
    }
    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        PageTable::iova_to_phys(self, iova)
    }
    fn s1_context(&self) -> S1Context {
        PageTable::s1_context(self)
    }
    fn granule(&self) -> Granule {
        self.config().granule
    }
    fn ias(&self) -> u32 {
        self.config().ias
    }
}

/// The TLBI command for one planned invalidation of `asid` (VMID 0: no stage 2).
pub fn tlbi_command(asid: u16, inv: Invalidation) -> Command {
    match inv {
        Invalidation::Va { iova, leaf } => Command::TlbiNhVa {
            asid,
            vmid: 0,
            addr: iova,
            leaf,
            range: TlbiRange::default(),
        },
        Invalidation::Range {
            iova,
            granule,
            scale,
            num,
            ttl,
            leaf,
        } => Command::TlbiNhVa {
            asid,
            vmid: 0,
            addr: iova,
            leaf,
            range: TlbiRange {
                num: num.saturating_sub(1),
                scale,
                tg: granule.tlbi_tg(),
                ttl,
            },
        },
        Invalidation::Asid => Command::TlbiNhAsid { asid, vmid: 0 },
    }
}

/// An ATS-capable (StreamID, SubstreamID) whose ATC must follow the domain's invalidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtcTarget {
    /// StreamID.
    pub sid: u32,
    /// SubstreamID (None: the requester-ID context).
    pub ssid: Option<u32>,
}

/// ATC_INV of everything cached for `t` (Size = 52: the whole address space).
pub fn atc_inv_all(t: AtcTarget) -> Command {
    Command::AtcInv {
        sid: t.sid,
        ssid: t.ssid,
        addr: 0,
        size: 52,
        global: false,
    }
}

/// Issues the invalidations `gather` asks for on `asid`, the ATC invalidations of `atc`, one
/// CMD_SYNC, and frees the retired tables of `pt` once the sync completed. On error the gather
/// is kept (nothing freed) so the caller may retry.
pub fn invalidate<M: Mmio, A: DmaAllocator, S: TableStore<A::Memory>, P: IoPgtable>(
    smmu: &mut Smmu<M, A, S>,
    pt: &mut P,
    asid: u16,
    gather: &mut Gather,
    atc: impl Iterator<Item = AtcTarget>,
) -> Result<(), super::Error> {
    if gather.is_empty() && gather.retired_tables() == 0 {
        return Ok(());
    }
    let feat = InvFeatures {
        ril: smmu.features().ril,
        max_tlbi_ops: None,
    };
    let mut batch = CmdBatch::default();
    for inv in gather.plan(feat) {
        smmu.batch_add(&mut batch, &tlbi_command(asid, inv))?;
    }
    for t in atc {
        smmu.batch_add(&mut batch, &atc_inv_all(t))?;
    }
    smmu.batch_submit(&mut batch)?;
    pt.release_retired(gather);
    Ok(())
}
