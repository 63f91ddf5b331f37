// SPDX-License-Identifier: GPL-2.0
//! Stage-1 domains: one page table, one ASID, and the one correct unmap sequence.
//!
//! An [`S1Domain`] is what Linux calls a paging `arm_smmu_domain` of stage 1: an io-pgtable
//! (here [`PageTable`]), the ASID tagging its TLB entries (from an [`AsidAllocator`], like
//! `arm_smmu_domain_finalise_s1()`, arm-smmu-v3.c:2387-2400) and the context descriptor that
//! makes a stream or PASID translate through it ([`S1Domain::cd`], the fields of
//! `arm_smmu_make_s1_cd()`, arm-smmu-v3.c:1369-1409). Later layers (PASID/auxiliary domains)
//! build on it rather than repeating the sequence:
//!
//! * [`S1Domain::map`] only fills invalid entries, so it issues no command (the SMMU does not
//!   cache invalid entries, IHI 0070 3.17).
//! * [`S1Domain::unmap`] clears the entries into the domain's [`Gather`], then
//!   [`S1Domain::flush`]: every [`Invalidation`] of [`Gather::plan`] becomes one TLBI command
//!   for the domain's ASID (see [`tlbi_command`]), one CMD_SYNC ends the batch, and only after
//!   that sync has completed are the page-table pages the unmap unlinked freed
//!   ([`PageTable::release_retired`]). This is `iommu_unmap()` + `iommu_iotlb_sync()`
//!   (`arm_smmu_iotlb_sync()`, arm-smmu-v3.c:3171-3181) with the gather policy of
//!   [`super::pgtable::gather`] (never more commands or syncs than the C driver).
//! * [`S1Domain::unmap_deferred`] + [`S1Domain::flush`] let a caller batch several unmaps
//!   behind one sync (the `iommu_iotlb_gather` of a multi-range unmap).
//! * [`S1Domain::destroy`] invalidates the whole ASID (CMD_TLBI_NH_ASID + CMD_SYNC, what
//!   `free_io_pgtable_ops()` -> `arm_smmu_tlb_inv_context()` does, arm-smmu-v3.c:2139-2160,
//!   2370) before returning the ASID to the allocator (line 2376), so a later domain that gets
//!   the same ASID cannot hit this one's TLB entries.
//!
//! # Failure handling
//!
//! * If the SMMU rejects a TLBI of the batch (command error: the queue skipped it), the flush
//!   escalates to CMD_TLBI_NH_ASID + CMD_SYNC; only if that succeeds are the retired tables
//!   freed and the flush reported successful ([`DomainStats::escalations`] counts it).
//! * If the batch or the escalation fails otherwise (timeout, fatal error), nothing is freed
//!   and the gather is kept: stale translations may remain, the error is returned, and the
//!   next [`S1Domain::flush`] (or `unmap`) retries the same invalidations.
//! * A failed `unmap` (only `ENOMEM` while splitting a block, or bad arguments) unmapped
//!   nothing; whatever its split recorded is still flushed.
//!
//! Maps and per-call unmaps ([`S1Domain::map`], [`S1Domain::unmap_into`] +
//! [`S1Domain::flush_gather`]) take `&self` and may run concurrently on disjoint ranges (the
//! page table's contract); only the command queue (`&mut Smmu`) is exclusive. The methods on
//! the domain's own gather take `&mut self`. The domain does not know which
//! masters use it: detaching them (their STE/CD no longer naming the ASID or the table) before
//! [`S1Domain::destroy`] is the caller's job, as in Linux.

use super::asid::{AsidAllocator, AsidError};
use super::cd::{Cd, S1Config};
use super::cmd::{Command, TlbiRange};
use super::device::{Features, Smmu};
use super::dma::{DmaAllocator, Mmio};
use super::error::Error;
use super::pgtable::{
    Config, Gather, Granule, InvFeatures, Invalidation, PageTable, PageTableStore, PgtableError,
    Prot,
};
use super::queue::CmdBatch;
use super::store::TableStore;
use core::sync::atomic::{AtomicU64, Ordering};

/// Errors of domain operations. [`DomainError::errno`] gives the errno for the kernel glue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainError {
    /// A page-table error (its own errno: `EINVAL`, `ERANGE`, `EEXIST`, `ENOMEM`, `EIO`).
    Pgtable(PgtableError),
    /// No ASID available (`EBUSY`) or an ASID bookkeeping error (`EINVAL`).
    Asid(AsidError),
    /// The SMMU failed to carry out an invalidation (its own errno: `ETIMEDOUT`, `EIO`, ...).
    /// Stale translations may remain until a later flush succeeds.
    Smmu(Error),
}

impl DomainError {
    /// The positive errno value the kernel glue returns (negated) for this error.
    pub const fn errno(&self) -> i32 {
        match self {
            Self::Pgtable(e) => e.errno(),
            Self::Asid(e) => e.errno(),
            Self::Smmu(e) => e.errno(),
        }
    }
}

impl From<PgtableError> for DomainError {
    fn from(e: PgtableError) -> Self {
        Self::Pgtable(e)
    }
}

impl From<AsidError> for DomainError {
    fn from(e: AsidError) -> Self {
        Self::Asid(e)
    }
}

impl From<Error> for DomainError {
    fn from(e: Error) -> Self {
        Self::Smmu(e)
    }
}

/// Counters of one domain's invalidation traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// TLBI commands issued (escalations included).
    pub tlbis: u64,
    /// CMD_SYNCs issued by flushes and [`S1Domain::destroy`].
    pub syncs: u64,
    /// Flushes that fell back to a whole-ASID invalidation after a rejected TLBI.
    pub escalations: u64,
    /// Page-table pages freed after their invalidation completed.
    pub tables_freed: u64,
}

/// The command for one [`Invalidation`] of a domain with `asid` (VMID 0: no stage 2), as
/// documented in [`super::pgtable::gather`]: `Va` -> TLBI_NH_VA without range or TTL,
/// `Range` -> TLBI_NH_VA with TG/SCALE/NUM-1/TTL, `Asid` -> TLBI_NH_ASID.
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
                num: num.wrapping_sub(1),
                scale,
                tg: granule.tlbi_tg(),
                ttl,
            },
        },
        Invalidation::Asid => Command::TlbiNhAsid { asid, vmid: 0 },
    }
}

/// The invalidation features of an SMMU (range invalidation if IDR3.RIL).
pub fn inv_features(f: &Features) -> InvFeatures {
    InvFeatures {
        ril: f.ril,
        max_tlbi_ops: None,
    }
}

/// A page-table configuration for `granule` suited to an SMMU with features `f`: IAS 48 bits
/// (Linux: `min(48, VA_BITS)` without VAX, arm-smmu-v3.c `arm_smmu_domain_finalise()`), OAS
/// from IDR5.OAS capped at 48, coherent walks if IDR0.COHACC. Fails with `EINVAL` if the SMMU
/// lacks the granule.
pub fn page_table_config(f: &Features, granule: Granule) -> Result<Config, DomainError> {
    if f.pgsize_bitmap & granule.size() == 0 {
        return Err(DomainError::Pgtable(PgtableError::InvalidArgument));
    }
    Ok(Config {
        granule,
        ias: 48,
        oas: f.oas.min(48),
        coherent_walk: f.coherent,
    })
}

/// [`DomainStats`] as atomics, so that `&self` flushes can count.
#[derive(Default)]
struct Counters {
    tlbis: AtomicU64,
    syncs: AtomicU64,
    escalations: AtomicU64,
    tables_freed: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// A stage-1 domain: page table + ASID + gather (see the module documentation).
pub struct S1Domain<A: DmaAllocator, S: PageTableStore<A::Memory>> {
    pt: PageTable<A, S>,
    asid: u16,
    gather: Gather,
    inv: InvFeatures,
    stats: Counters,
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> S1Domain<A, S> {
    /// Creates an empty domain: allocates the root table and an ASID. `inv` are the
    /// invalidation features of the SMMU(s) it will be used with ([`inv_features`]).
    pub fn new(
        cfg: Config,
        alloc: A,
        store: S,
        asids: &mut AsidAllocator,
        inv: InvFeatures,
    ) -> Result<Self, DomainError> {
        let pt = PageTable::new(cfg, alloc, store)?;
        let asid = asids.alloc()?;
        Ok(Self {
            pt,
            asid,
            gather: Gather::new(),
            inv,
            stats: Counters::default(),
        })
    }

    /// The domain's ASID.
    pub fn asid(&self) -> u16 {
        self.asid
    }

    /// The page table (read only: changes go through the domain so invalidation is not
    /// forgotten).
    pub fn page_table(&self) -> &PageTable<A, S> {
        &self.pt
    }

    /// Invalidation counters so far.
    pub fn stats(&self) -> DomainStats {
        let c = &self.stats;
        DomainStats {
            tlbis: c.tlbis.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            escalations: c.escalations.load(Ordering::Relaxed),
            tables_freed: c.tables_freed.load(Ordering::Relaxed),
        }
    }

    /// Whether unmapped entries still await invalidation (a failed or deferred flush).
    pub fn flush_pending(&self) -> bool {
        !self.gather.is_empty() || self.gather.retired_tables() != 0
    }

    /// The stage-1 parameters of the CD (TTB0, T0SZ, TG0, IPS, walk attributes, MAIR, ASID).
    pub fn s1_config(&self) -> S1Config {
        let c = self.pt.s1_context();
        S1Config {
            asid: self.asid,
            ttbr: c.ttb0,
            tsz: c.t0sz,
            tg: c.tg0,
            irgn: c.rgn0,
            orgn: c.rgn0,
            sh: c.sh0,
            ips: c.ips,
            mair: c.mair,
            hw_dirty: false,
            stall: false,
        }
    }

    /// The CD that makes a stream (CD 0) or a PASID translate through this domain.
    pub fn cd(&self) -> Cd {
        Cd::s1(&self.s1_config())
    }

    /// Maps `[iova, iova + size)` to `[paddr, paddr + size)` (see [`PageTable::map`]). Issues
    /// no command. Concurrent callers allowed on disjoint ranges (the page table's contract,
    /// "Concurrency" in [`super::pgtable`]).
    pub fn map(&self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), DomainError> {
        Ok(self.pt.map(iova, paddr, size, prot)?)
    }

    /// Unmaps `[iova, iova + size)` into the caller's `gather` (one per unmap call, the
    /// IOMMU core's `iommu_iotlb_gather`), without invalidating: concurrent callers allowed
    /// on disjoint ranges. [`S1Domain::flush_gather`] of that gather must follow before the
    /// IOVAs or the pages they pointed at are reused.
    pub fn unmap_into(
        &self,
        iova: u64,
        size: u64,
        gather: &mut Gather,
    ) -> Result<u64, DomainError> {
        Ok(self.pt.unmap(iova, size, gather)?)
    }

    /// Issues `gather`'s invalidations (one CMD_SYNC) for this domain's ASID, then gives the
    /// tables it retired back to the store ([`PageTable::release_retired_shared`]) and empties
    /// it. Only `smmu` (the command queue) is exclusive: the domain is shared. On failure the
    /// gather is kept (tables included) for a retry.
    pub fn flush_gather<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &self,
        smmu: &mut Smmu<M, SA, SS>,
        gather: &mut Gather,
    ) -> Result<(), DomainError> {
        if !gather.is_empty() {
            self.issue(smmu, gather)?;
        }
        let n = self.pt.release_retired_shared(gather);
        Counters::add(&self.stats.tables_freed, n as u64);
        Ok(())
    }

    /// Unmaps `[iova, iova + size)` and makes the change visible to the SMMU before returning:
    /// TLBIs for what was removed, one CMD_SYNC, then the unlinked tables are freed. Returns
    /// the bytes that were mapped. See the module documentation for errors.
    pub fn unmap<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        iova: u64,
        size: u64,
    ) -> Result<u64, DomainError> {
        let r = self.unmap_deferred(iova, size);
        self.flush(smmu)?;
        r
    }

    /// Unmaps without invalidating: the removed translations stay usable by the SMMU until
    /// the next [`S1Domain::flush`], which the caller must issue before reusing the IOVAs or
    /// the memory they pointed at.
    pub fn unmap_deferred(&mut self, iova: u64, size: u64) -> Result<u64, DomainError> {
        Ok(self.pt.unmap(iova, size, &mut self.gather)?)
    }

    /// Issues the gathered invalidations (one CMD_SYNC), then frees retired tables. Does
    /// nothing when nothing is pending.
    pub fn flush<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
    ) -> Result<(), DomainError> {
        if self.gather.is_empty() {
            // Tables are only retired together with a walk invalidation, so none can wait.
            self.release();
            return Ok(());
        }
        self.flush_gathered(smmu)
    }

    /// The non-empty part of [`S1Domain::flush`]. Never inlined: its `CmdBatch` (1 KiB) would
    /// otherwise land in the frame of every caller of `unmap` (the kernel driver's
    /// `unmap_pages` went over the 2 KiB frame rule), and a call is nothing next to the
    /// CMD_SYNC it waits for.
    fn flush_gathered<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
    ) -> Result<(), DomainError> {
        self.issue(smmu, &self.gather)?;
        self.release();
        Ok(())
    }

    /// The TLBIs of `gather` and one CMD_SYNC; a refused TLBI escalates to the whole ASID.
    #[inline(never)]
    fn issue<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &self,
        smmu: &mut Smmu<M, SA, SS>,
        gather: &Gather,
    ) -> Result<(), DomainError> {
        let mut batch = CmdBatch::default();
        let mut issued = 0u64;
        let mut res = Ok(());
        for inv in gather.plan(self.inv) {
            res = smmu.batch_add(&mut batch, &tlbi_command(self.asid, inv));
            if res.is_err() {
                break;
            }
            issued += 1;
        }
        if res.is_ok() {
            res = smmu.batch_submit(&mut batch);
            Counters::add(&self.stats.syncs, 1);
        }
        Counters::add(&self.stats.tlbis, issued);
        match res {
            Ok(()) => Ok(()),
            // A TLBI was refused and skipped: fall back to the whole ASID.
            Err(Error::Command(_)) | Err(Error::InvalidArgument) => {
                Counters::add(&self.stats.escalations, 1);
                Counters::add(&self.stats.tlbis, 1);
                Counters::add(&self.stats.syncs, 1);
                smmu.inv_asid(self.asid)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Invalidates the whole ASID (CMD_TLBI_NH_ASID + CMD_SYNC, `flush_iotlb_all`): this
    /// covers every pending deferred unmap, so the gather is emptied and the retired tables
    /// freed. On failure both are kept for the next flush.
    pub fn flush_all<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
    ) -> Result<(), DomainError> {
        self.inv_asid(smmu)?;
        self.release();
        Ok(())
    }

    /// CMD_TLBI_NH_ASID + CMD_SYNC for the domain's ASID, nothing else: `flush_iotlb_all` of
    /// a shared domain (pending per-call gathers stay with their callers).
    pub fn inv_asid<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &self,
        smmu: &mut Smmu<M, SA, SS>,
    ) -> Result<(), DomainError> {
        Counters::add(&self.stats.tlbis, 1);
        Counters::add(&self.stats.syncs, 1);
        smmu.inv_asid(self.asid)?;
        Ok(())
    }

    fn release(&mut self) {
        let n = self.pt.release_retired(&mut self.gather);
        Counters::add(&self.stats.tables_freed, n as u64);
    }

    /// Tears the domain down: CMD_TLBI_NH_ASID + CMD_SYNC, then the ASID goes back to
    /// `asids` and the page table is dropped. No master may still use the domain. On failure
    /// the domain is handed back untouched (its ASID still allocated) with the error.
    // Handing the domain back by value is the point (the caller may retry or keep it alive);
    // portable code has no `Box` to shrink the error with.
    #[allow(clippy::result_large_err)]
    pub fn destroy<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        mut self,
        smmu: &mut Smmu<M, SA, SS>,
        asids: &mut AsidAllocator,
    ) -> Result<DomainStats, (Self, DomainError)> {
        if let Err(e) = self.inv_asid(smmu) {
            return Err((self, e));
        }
        // Everything of this ASID is gone from the TLBs: retired tables may go too.
        self.release();
        if let Err(e) = asids.free(self.asid) {
            return Err((self, e.into()));
        }
        Ok(self.stats())
    }
}
