// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains over the SMMUv3 driver core: stage-1 paging domains attached at
//! (device, PASID) pairs, with a reserved MSI window and doorbell bindings, and a one-way
//! cache-coherency switch.
//!
//! The decisions (attachments, MSI window, doorbells, no-snoop rules, errors) are the
//! backend-independent [`AuxPolicy`]'s, shared with the kernel glue over the IOMMU API. The
//! page table, the ASID, the CD and the unmap sequence (TLBIs from `Gather::plan`, one
//! CMD_SYNC, then `release_retired`; escalation to TLBI_NH_ASID on a rejected TLBI) belong to
//! the driver core's [`S1Domain`]. This file adds what the SMMU needs on top: CD writes at
//! SSID = PASID, ATC invalidation of ATS masters, S1DSS for the requester-ID domain and the
//! platform's No_snoop control.

use super::device::{AuxDevice, RidMode};
use super::error::{Error, Result};
use super::policy::{
    Attachment, AuxPolicy, DoorbellInfo, Mapper, MsiSource, MsiWindow, Prot, ReservedRegion,
    Teardown, Translation,
};
use super::smmuv3::asid::AsidAllocator;
use super::smmuv3::cd::Cd;
use super::smmuv3::cmd::Command;
use super::smmuv3::device::{Smmu, MAX_MASTER_SIDS};
use super::smmuv3::dma::{DmaAllocator, DmaMemory, Mmio};
use super::smmuv3::domain::{tlbi_command, DomainError, S1Domain};
use super::smmuv3::pgtable::{Config, InvFeatures, Invalidation, PageTable, PageTableStore};
use super::smmuv3::queue::CmdBatch;
use super::smmuv3::store::TableStore;

/// Platform hook for No_snoop enforcement: makes the SMMU or host bridge strip (or stop
/// stripping) No_snoop from the traffic of one (StreamID, SubstreamID-or-none). On the model,
/// `SmmuModel::set_snoop_forced`; on real hardware an implementation-defined control.
pub trait SnoopControl {
    /// Forces snooping (`true`) or lets No_snoop through (`false`).
    fn set_snoop_forced(&mut self, sid: u32, ssid: Option<u32>, forced: bool);
}

/// No enforcement possible: refuses nothing, does nothing (for callers that never enforce).
pub struct NoSnoopControl;

impl SnoopControl for NoSnoopControl {
    fn set_snoop_forced(&mut self, _sid: u32, _ssid: Option<u32>, _forced: bool) {}
}

/// What the SMMU needs per attachment to invalidate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmmuTarget {
    sids: [u32; MAX_MASTER_SIDS],
    nsids: usize,
    ats: bool,
}

impl SmmuTarget {
    fn sids(&self) -> &[u32] {
        self.sids.get(..self.nsids).unwrap_or(&[])
    }
}

type SmmuAttachment = Attachment<SmmuTarget>;

/// ATC_INV of everything an ATS master caches for (`sid`, `ssid`) (Size = 52: the whole
/// address space; `None`: the requester-ID context).
fn atc_inv_all(sid: u32, ssid: Option<u32>) -> Command {
    Command::AtcInv {
        sid,
        ssid,
        addr: 0,
        size: 52,
        global: false,
    }
}

/// Maps through the [`S1Domain`] (no invalidation needed to fill invalid entries).
struct S1Map<'a, A: DmaAllocator, S: PageTableStore<A::Memory>>(&'a mut S1Domain<A, S>);

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> Mapper for S1Map<'_, A, S> {
    type Error = DomainError;
    fn granule(&self) -> u64 {
        self.0.page_table().config().granule.size()
    }
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), DomainError> {
        self.0.map(iova, paddr, size, prot)
    }
    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.0.page_table().iova_to_phys(iova)
    }
}

/// Maps and unmaps through the [`S1Domain`], invalidating on the SMMU.
struct S1Flush<'a, A, S, M, SA, SS>
where
    A: DmaAllocator,
    S: PageTableStore<A::Memory>,
    M: Mmio,
    SA: DmaAllocator,
    SS: TableStore<SA::Memory>,
{
    s1: S1Map<'a, A, S>,
    smmu: &'a mut Smmu<M, SA, SS>,
    /// A flush completed its TLB invalidation but not the ATC invalidation that follows it.
    atc_pending: &'a mut bool,
}

impl<A, S, M, SA, SS> Mapper for S1Flush<'_, A, S, M, SA, SS>
where
    A: DmaAllocator,
    S: PageTableStore<A::Memory>,
    M: Mmio,
    SA: DmaAllocator,
    SS: TableStore<SA::Memory>,
{
    type Error = DomainError;
    fn granule(&self) -> u64 {
        self.s1.granule()
    }
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), DomainError> {
        self.s1.map(iova, paddr, size, prot)
    }
    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.s1.iova_to_phys(iova)
    }
}

impl<A, S, M, SA, SS> Translation for S1Flush<'_, A, S, M, SA, SS>
where
    A: DmaAllocator,
    S: PageTableStore<A::Memory>,
    M: Mmio,
    SA: DmaAllocator,
    SS: TableStore<SA::Memory>,
{
    type Target = SmmuTarget;

    /// [`S1Domain::unmap_deferred`] + [`S1Domain::flush`] (TLBIs, CMD_SYNC, retired tables
    /// freed), then ATC_INV of every ATS attachment under a second CMD_SYNC. The ATC is
    /// invalidated only once the TLB invalidation has completed, as in Linux
    /// (`arm_smmu_tlb_inv_range_domain()`): an ATS translation request served from a stale TLB
    /// entry in between would refill the ATC. If that second batch fails, the next flush
    /// issues it again.
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        attached: &[Option<SmmuAttachment>],
    ) -> Result<u64, DomainError> {
        let s1 = &mut *self.s1.0;
        let n = s1.unmap_deferred(iova, size)?;
        *self.atc_pending |= s1.flush_pending();
        s1.flush(self.smmu)?;
        if !*self.atc_pending {
            return Ok(n);
        }
        let mut batch = CmdBatch::default();
        let mut cmds = 0usize;
        for a in attached.iter().flatten().filter(|a| a.target.ats) {
            for &sid in a.target.sids() {
                self.smmu
                    .batch_add(&mut batch, &atc_inv_all(sid, a.pasid))?;
                cmds += 1;
            }
        }
        if cmds != 0 {
            self.smmu.batch_submit(&mut batch)?;
        }
        *self.atc_pending = false;
        Ok(n)
    }
}

/// A stage-1 paging domain usable at any (device, PASID), and as a requester-ID domain.
///
/// Not bound to the device it was allocated for: [`AuxDomain::attach`] installs its CD at a
/// PASID of any PASID-enabled device, as many times as [`super::MAX_ATTACH`] allows. The ASID
/// is the domain's identity ([`RidMode::Domain`]). Page table, ASID, CD and invalidation are
/// those of the [`S1Domain`] it owns; the bookkeeping is its [`AuxPolicy`].
pub struct AuxDomain<A: DmaAllocator, S: PageTableStore<A::Memory>> {
    s1: S1Domain<A, S>,
    policy: AuxPolicy<SmmuTarget>,
    atc_pending: bool,
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> AuxDomain<A, S> {
    /// A domain with an empty page table of configuration `cfg` (see
    /// `smmuv3::domain::page_table_config`), an ASID from `asids`, the invalidation features
    /// `inv` of its SMMU (`smmuv3::domain::inv_features`) and the MSI window `window`
    /// (granule-aligned, non-empty, inside the input address space; checked before anything
    /// is allocated). Built on [`S1Domain::new`].
    pub fn new(
        cfg: Config,
        alloc: A,
        store: S,
        asids: &mut AsidAllocator,
        inv: InvFeatures,
        window: MsiWindow,
    ) -> Result<Self> {
        let policy = AuxPolicy::new(window, cfg.granule.size(), cfg.ias)?;
        Ok(Self {
            s1: S1Domain::new(cfg, alloc, store, asids, inv)?,
            policy,
            atc_pending: false,
        })
    }

    fn flusher<'a, M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        s1: &'a mut S1Domain<A, S>,
        smmu: &'a mut Smmu<M, SA, SS>,
        atc_pending: &'a mut bool,
    ) -> S1Flush<'a, A, S, M, SA, SS> {
        S1Flush {
            s1: S1Map(s1),
            smmu,
            atc_pending,
        }
    }

    /// The ASID (also the domain's identity).
    pub fn asid(&self) -> u16 {
        self.s1.asid()
    }

    /// The page table (read only).
    pub fn page_table(&self) -> &PageTable<A, S> {
        self.s1.page_table()
    }

    /// The underlying stage-1 domain (read only: its invalidation counters, pending flush).
    pub fn s1(&self) -> &S1Domain<A, S> {
        &self.s1
    }

    /// The bookkeeping (read only).
    pub fn policy(&self) -> &AuxPolicy<SmmuTarget> {
        &self.policy
    }

    /// The CD this domain installs.
    pub fn cd(&self) -> Cd {
        self.s1.cd()
    }

    /// Reserved regions: the MSI window.
    pub fn reserved_regions(&self) -> [ReservedRegion; 1] {
        self.policy.reserved_regions()
    }

    /// Whether cache coherency is enforced.
    pub fn coherency_enforced(&self) -> bool {
        self.policy.coherency_enforced()
    }

    /// The PASID at which this domain is attached to device `dev`, if any (the lowest one if
    /// it is attached at several).
    pub fn pasid_of(&self, dev: u32) -> Option<u32> {
        self.policy.pasid_of(dev)
    }

    /// Whether the domain is attached at (`dev`, `pasid`) (`None`: as requester-ID domain).
    pub fn is_attached(&self, dev: u32, pasid: Option<u32>) -> bool {
        self.policy.is_attached(dev, pasid)
    }

    /// Number of attachments (requester-ID attachments included).
    pub fn attachments(&self) -> usize {
        self.policy.attachments()
    }

    /// Each (device, PASID) attachment (`None`: requester-ID), in slot order.
    pub fn attachment_list(&self) -> impl Iterator<Item = (u32, Option<u32>)> + '_ {
        self.policy.attachment_list()
    }

    fn record<D: DmaMemory, SS: TableStore<D>>(
        dev: &AuxDevice<D, SS>,
        pasid: Option<u32>,
    ) -> SmmuAttachment {
        let mut t = SmmuTarget {
            sids: [0; MAX_MASTER_SIDS],
            nsids: 0,
            ats: dev.ats,
        };
        for (d, s) in t.sids.iter_mut().zip(dev.sids()) {
            *d = *s;
            t.nsids += 1;
        }
        Attachment {
            dev: dev.id,
            pasid,
            snoop_control: dev.snoop_control,
            target: t,
        }
    }

    fn set_forced(a: &SmmuAttachment, coh: &mut impl SnoopControl, on: bool) {
        for &sid in a.target.sids() {
            coh.set_snoop_forced(sid, a.pasid, on);
        }
    }

    /// Attaches the domain at `pasid` of `dev`: writes the domain's CD at SSID = `pasid`
    /// (hitless writer: CFGI_CD + CMD_SYNC per step). Errors: `EINVAL` for PASID 0 / out of
    /// range, `EEXIST` if already attached there, `EBUSY` if another domain holds the PASID,
    /// `EINVAL` if coherency is enforced and the device cannot guarantee it, `ENOSPC` if the
    /// domain has [`super::MAX_ATTACH`] attachments. When enforced, the platform strips
    /// No_snoop for the stream before the CD goes live.
    pub fn attach<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        pasid: u32,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        dev.check_pasid(pasid)?;
        if self.policy.is_attached(dev.id, Some(pasid)) {
            return Err(Error::AlreadyAttached);
        }
        if dev.pasid_in_use(pasid) {
            return Err(Error::PasidInUse);
        }
        self.attach_cd(smmu, dev, Some(pasid), coh)?;
        dev.aux_count = dev.aux_count.saturating_add(1);
        Ok(())
    }

    fn attach_cd<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        pasid: Option<u32>,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        let a = Self::record(dev, pasid);
        self.policy.check_attach(&a)?;
        let enforced = self.policy.coherency_enforced();
        if enforced {
            Self::set_forced(&a, coh, true);
        }
        if let Err(e) = smmu.write_cd(&mut dev.master, pasid.unwrap_or(0), &self.cd()) {
            if enforced {
                Self::set_forced(&a, coh, false);
            }
            return Err(e.into());
        }
        self.policy.record_attach(a)
    }

    /// Detaches the domain from `pasid` of `dev`: clears the CD (CFGI_CD + CMD_SYNC), then
    /// TLBI_NH_ASID and, for an ATS device, ATC_INV of the PASID, under one CMD_SYNC. `ENOENT`
    /// if not attached there. MSI sources of the PASID stay active until deactivated (or the
    /// domain is destroyed); they no longer translate.
    pub fn detach<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        pasid: u32,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        self.detach_cd(smmu, dev, Some(pasid), coh)?;
        dev.aux_count = dev.aux_count.saturating_sub(1);
        Ok(())
    }

    fn detach_cd<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        pasid: Option<u32>,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        let a = self
            .policy
            .attachment(dev.id, pasid)
            .ok_or(Error::NotAttached)?;
        smmu.clear_cd(&mut dev.master, pasid.unwrap_or(0))?;
        let mut batch = CmdBatch::default();
        smmu.batch_add(&mut batch, &tlbi_command(self.asid(), Invalidation::Asid))?;
        if a.target.ats {
            for &sid in a.target.sids() {
                smmu.batch_add(&mut batch, &atc_inv_all(sid, pasid))?;
            }
        }
        smmu.batch_submit(&mut batch)?;
        if self.policy.coherency_enforced() {
            Self::set_forced(&a, coh, false);
        }
        self.policy.remove_attach(dev.id, pasid)?;
        Ok(())
    }

    /// Makes this domain the requester-ID domain of `dev`: CD 0 first, then STE.S1DSS =
    /// SSID0 (untagged traffic and PCIe MSIs translate here; PASID 0 tagged traffic is
    /// terminated with F_STREAM_DISABLED). `EBUSY` if the device already has one.
    pub fn attach_rid<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory> + Default>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        if matches!(dev.rid, RidMode::Domain(_)) {
            return Err(Error::StillAttached);
        }
        self.attach_cd(smmu, dev, None, coh)?;
        if let Err(e) = smmu.attach_cd_table(&mut dev.master, RidMode::Domain(self.asid()).s1dss())
        {
            // Undo: CD 0 is unused while S1DSS is not SSID0.
            let _ = self.detach_cd(smmu, dev, None, coh);
            return Err(e.into());
        }
        dev.rid = RidMode::Domain(self.asid());
        Ok(())
    }

    /// Removes this requester-ID domain from `dev`: STE.S1DSS = `mode` first, then CD 0 is
    /// cleared and the ASID invalidated. `ENOENT` if it is not `dev`'s requester-ID domain.
    pub fn detach_rid<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory> + Default>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        mode: RidMode,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        if matches!(mode, RidMode::Domain(_)) {
            return Err(Error::InvalidArgument);
        }
        if !self.policy.is_attached(dev.id, None) {
            return Err(Error::NotAttached);
        }
        smmu.attach_cd_table(&mut dev.master, mode.s1dss())?;
        dev.rid = mode;
        self.detach_cd(smmu, dev, None, coh)
    }

    /// VFIO/iommufd `enforce_cache_coherency` ([`AuxPolicy::enforce_cache_coherency`]): the
    /// platform strips No_snoop for every attached stream. One-way; `EBUSY` after the first
    /// mapping, `EINVAL` if an attached device cannot have No_snoop stripped.
    pub fn enforce_cache_coherency(&mut self, coh: &mut impl SnoopControl) -> Result<()> {
        self.policy.enforce_cache_coherency(|attached| {
            for a in attached.iter().flatten() {
                Self::set_forced(a, coh, true);
            }
            Ok(())
        })
    }

    /// Maps user memory ([`AuxPolicy::map`]): `EADDRINUSE` if the range touches the MSI
    /// window; page-table errors otherwise (`EEXIST` over an existing mapping, a user-placed
    /// doorbell included).
    pub fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<()> {
        self.policy
            .map(&mut S1Map(&mut self.s1), iova, paddr, size, prot)
    }

    /// Unmaps user memory and invalidates (TLBIs per the gather policy, one CMD_SYNC, then
    /// unlinked tables are freed; then ATC_INV for ATS attachments and a second CMD_SYNC).
    /// Returns the bytes unmapped. `EADDRINUSE` for the MSI window, `EBUSY` over a
    /// user-placed doorbell.
    pub fn unmap<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        iova: u64,
        size: u64,
    ) -> Result<u64> {
        let mut t = Self::flusher(&mut self.s1, smmu, &mut self.atc_pending);
        self.policy.unmap(&mut t, iova, size)
    }

    /// Output address of `iova` in this domain.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.s1.page_table().iova_to_phys(iova)
    }

    // ---------------------------------------------------------------------------------
    // MSI doorbells ([`AuxPolicy`] decides, the S1Domain maps)

    /// `msi_domain_activate` ([`AuxPolicy::msi_activate`]): binds `doorbell` in the window
    /// and returns the message address the device must be programmed with. `EINVAL` if `src`
    /// does not translate through this domain, `EEXIST` if already active, `ENOSPC` if full.
    pub fn msi_activate<D: DmaMemory, SS: TableStore<D>>(
        &mut self,
        dev: &AuxDevice<D, SS>,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64> {
        self.policy
            .msi_activate(&mut S1Map(&mut self.s1), dev.id, src, doorbell)
    }

    /// Like [`AuxDomain::msi_activate`] with a user-specified IOVA (nested case), see
    /// [`AuxPolicy::msi_activate_at`].
    pub fn msi_activate_at<D: DmaMemory, SS: TableStore<D>>(
        &mut self,
        dev: &AuxDevice<D, SS>,
        src: MsiSource,
        doorbell: u64,
        iova: u64,
    ) -> Result<u64> {
        self.policy
            .msi_activate_at(&mut S1Map(&mut self.s1), dev.id, src, doorbell, iova)
    }

    /// `msi_domain_deactivate`: drops the source's doorbell reference (the last one unmaps
    /// the doorbell: TLBI + CMD_SYNC). `ENOENT` if not active.
    pub fn msi_deactivate<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: u32,
        src: MsiSource,
    ) -> Result<()> {
        let mut t = Self::flusher(&mut self.s1, smmu, &mut self.atc_pending);
        self.policy.msi_deactivate(&mut t, dev, src)
    }

    /// `irq_set_affinity` moved the source to another doorbell
    /// ([`AuxPolicy::msi_set_affinity`]: new one bound first, old one put). Returns the new
    /// message address.
    pub fn msi_set_affinity<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: u32,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64> {
        let mut t = Self::flusher(&mut self.s1, smmu, &mut self.atc_pending);
        self.policy.msi_set_affinity(&mut t, dev, src, doorbell)
    }

    /// The message address of an active source.
    pub fn msi_msg_addr(&self, dev: u32, src: MsiSource) -> Option<u64> {
        self.policy.msi_msg_addr(dev, src)
    }

    /// References held on the doorbell page containing `doorbell` (all its bindings).
    pub fn doorbell_refs(&self, doorbell: u64) -> u32 {
        self.policy.doorbell_refs(doorbell)
    }

    /// Every doorbell binding.
    pub fn doorbells(&self) -> impl Iterator<Item = DoorbellInfo> + '_ {
        self.policy.doorbells()
    }

    /// Active MSI sources.
    pub fn active_vectors(&self) -> usize {
        self.policy.active_vectors()
    }

    /// Frees the domain: refused with `EBUSY` (domain handed back) while attached anywhere.
    /// Every doorbell binding still present is unmapped even if its sources were never
    /// deactivated ([`AuxPolicy::teardown`]), then [`S1Domain::destroy`] invalidates the whole
    /// ASID (TLBI_NH_ASID + CMD_SYNC, so a later domain reusing the ASID cannot hit stale
    /// entries, the doorbells included) and returns the ASID to `asids`. The page table is
    /// dropped with the domain.
    // The domain is handed back on failure so the caller can retry: the large `Err` is it.
    #[allow(clippy::result_large_err)]
    pub fn destroy<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        mut self,
        smmu: &mut Smmu<M, SA, SS>,
        asids: &mut AsidAllocator,
    ) -> core::result::Result<Teardown, (Error, Self)> {
        let s1 = &mut self.s1;
        let t = match self
            .policy
            .teardown(|iova, size| s1.unmap_deferred(iova, size).map(|_| ()))
        {
            Ok(t) => t,
            Err(e) => return Err((e, self)),
        };
        match self.s1.destroy(smmu, asids) {
            Ok(_) => Ok(t),
            Err((s1, e)) => {
                self.s1 = s1;
                Err((e.into(), self))
            }
        }
    }
}
