// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains over the SMMUv3 driver core: stage-1 paging domains attached at
//! (device, PASID) pairs, with a reserved MSI window and doorbell bindings, and a one-way
//! cache-coherency switch.
//!
//! The domain is the one [`policy::AuxDomain`] (attachments, MSI window, doorbells, no-snoop
//! rules and errors written once, shared with the kernel glue over the IOMMU API) over the
//! [`SmmuBackend`] defined here. The
//! page table, the ASID, the CD and the unmap sequence (TLBIs from `Gather::plan`, one
//! CMD_SYNC, then `release_retired`; escalation to TLBI_NH_ASID on a rejected TLBI) belong to
//! the driver core's [`S1Domain`]. This file adds what the SMMU needs on top: CD writes at
//! SSID = PASID, ATC invalidation of ATS masters, S1DSS for the requester-ID domain and the
//! platform's No_snoop control.

use super::device::{AuxDevice, RidMode};
use super::error::{Error, Result};
use super::policy::{
    self, Attach, Attachment, AuxBackend, AuxPolicy, Coherency, DeviceFacts, DeviceId, Invalidate,
    Mapper, MsiWindow, Prot, Teardown,
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

/// The SMMUv3 driver core as the backend of an auxiliary domain: the domain's [`S1Domain`]
/// (page table, ASID, CD, unmap sequence) plus what the SMMU needs on top of it: CD writes at
/// SSID = PASID, ATC invalidation of ATS masters, S1DSS for the requester-ID domain and the
/// platform's No_snoop control.
pub struct SmmuBackend<A: DmaAllocator, S: PageTableStore<A::Memory>> {
    s1: S1Domain<A, S>,
    /// A flush completed its TLB invalidation but not the ATC invalidation that follows it.
    atc_pending: bool,
}

/// A stage-1 paging domain usable at any (device, PASID), and as a requester-ID domain: the
/// one [`policy::AuxDomain`] over the SMMUv3 driver core.
///
/// Not bound to the device it was allocated for: `attach` installs its CD at a PASID of any
/// PASID-enabled device, as many times as [`super::MAX_ATTACH`] allows. The ASID is the
/// domain's identity ([`RidMode::Domain`]). Calls that reach the SMMU take it (and the device
/// and the platform's [`SnoopControl`]) from the caller:
///
/// ```ignore
/// d.attach((&mut smmu, &mut dev, &mut snoop), pasid)?;   // CD at SSID = pasid
/// d.attach_rid((&mut smmu, &mut dev, &mut snoop))?;      // CD 0, S1DSS = SSID0
/// d.unmap_in(&mut smmu, iova, size)?;  d.msi_deactivate_in(&mut smmu, dev.id(), src)?;
/// d.enforce_cache_coherency_in(&mut snoop)?;
/// ```
pub type AuxDomain<A, S> = policy::AuxDomain<SmmuBackend<A, S>>;

/// What an attach or detach of the SMMU backend needs from the caller: the SMMU, the device
/// and the platform's No_snoop control.
pub type SmmuDev<'a, M, SA, SS, C> = (
    &'a mut Smmu<M, SA, SS>,
    &'a mut AuxDevice<<SA as DmaAllocator>::Memory, SS>,
    &'a mut C,
);

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> Mapper for SmmuBackend<A, S> {
    type Error = DomainError;
    fn granule(&self) -> u64 {
        self.s1.page_table().config().granule.size()
    }
    /// No invalidation needed to fill invalid entries.
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), DomainError> {
        self.s1.map(iova, paddr, size, prot)
    }
    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.s1.page_table().iova_to_phys(iova)
    }
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> AuxBackend for SmmuBackend<A, S> {
    type Target = SmmuTarget;
    type Policy = AuxPolicy<SmmuTarget>;
    type Failure = Error;

    fn fail(&self, _what: &'static str, _dev: Option<u32>, e: Error) -> Error {
        e
    }

    /// Unlinks the page; [`S1Domain::destroy`] invalidates the whole ASID afterwards.
    fn release(&mut self, iova: u64, size: u64) -> Result<(), DomainError> {
        self.s1.unmap_deferred(iova, size).map(|_| ())
    }
}

impl<A, S, M, SA, SS> Invalidate<&mut Smmu<M, SA, SS>> for SmmuBackend<A, S>
where
    A: DmaAllocator,
    S: PageTableStore<A::Memory>,
    M: Mmio,
    SA: DmaAllocator,
    SS: TableStore<SA::Memory>,
{
    /// [`S1Domain::unmap_deferred`] + [`S1Domain::flush`] (TLBIs, CMD_SYNC, retired tables
    /// freed), then ATC_INV of every ATS attachment under a second CMD_SYNC. The ATC is
    /// invalidated only once the TLB invalidation has completed, as in Linux
    /// (`arm_smmu_tlb_inv_range_domain()`): an ATS translation request served from a stale TLB
    /// entry in between would refill the ATC. If that second batch fails, the next flush
    /// issues it again.
    fn unmap(
        &mut self,
        smmu: &mut &mut Smmu<M, SA, SS>,
        iova: u64,
        size: u64,
        attached: &[Option<SmmuAttachment>],
    ) -> Result<u64, DomainError> {
        let n = self.s1.unmap_deferred(iova, size)?;
        self.atc_pending |= self.s1.flush_pending();
        self.s1.flush(smmu)?;
        if !self.atc_pending {
            return Ok(n);
        }
        let mut batch = CmdBatch::default();
        let mut cmds = 0usize;
        for a in attached.iter().flatten().filter(|a| a.target.ats) {
            for &sid in a.target.sids() {
                smmu.batch_add(&mut batch, &atc_inv_all(sid, a.pasid))?;
                cmds += 1;
            }
        }
        if cmds != 0 {
            smmu.batch_submit(&mut batch)?;
        }
        self.atc_pending = false;
        Ok(n)
    }
}

impl<A, S, C> Coherency<&mut C> for SmmuBackend<A, S>
where
    A: DmaAllocator,
    S: PageTableStore<A::Memory>,
    C: SnoopControl,
{
    /// The platform strips No_snoop for every attached stream.
    fn enforce(&mut self, coh: &mut &mut C, attached: &[Option<SmmuAttachment>]) -> Result<()> {
        for a in attached.iter().flatten() {
            set_forced(a, *coh, true);
        }
        Ok(())
    }
}

fn set_forced(a: &SmmuAttachment, coh: &mut impl SnoopControl, on: bool) {
    for &sid in a.target.sids() {
        coh.set_snoop_forced(sid, a.pasid, on);
    }
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> SmmuBackend<A, S> {
    /// Clears the CD at `a`'s SSID (CFGI_CD + CMD_SYNC), then TLBI_NH_ASID and, for an ATS
    /// device, ATC_INV of that SSID, under one CMD_SYNC (with the CD gone no ATS request can
    /// reach the ASID's TLB entries).
    fn clear_cd<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        a: &SmmuAttachment,
    ) -> Result<()> {
        smmu.clear_cd(&mut dev.master, a.pasid.unwrap_or(0))?;
        let mut batch = CmdBatch::default();
        smmu.batch_add(
            &mut batch,
            &tlbi_command(self.s1.asid(), Invalidation::Asid),
        )?;
        if a.target.ats {
            for &sid in a.target.sids() {
                smmu.batch_add(&mut batch, &atc_inv_all(sid, a.pasid))?;
            }
        }
        smmu.batch_submit(&mut batch)?;
        Ok(())
    }
}

impl<'a, A, S, M, SA, SS, C> Attach<SmmuDev<'a, M, SA, SS, C>> for SmmuBackend<A, S>
where
    A: DmaAllocator,
    S: PageTableStore<A::Memory>,
    M: Mmio,
    SA: DmaAllocator,
    SS: TableStore<SA::Memory> + Default,
    C: SnoopControl,
{
    fn facts(dev: &SmmuDev<'a, M, SA, SS, C>) -> DeviceFacts {
        DeviceFacts {
            id: dev.1.id,
            pasids: Some(dev.1.pasid_range()),
            snoop_control: dev.1.snoop_control,
        }
    }

    fn target(&self, dev: &SmmuDev<'a, M, SA, SS, C>) -> SmmuTarget {
        let mut t = SmmuTarget {
            sids: [0; MAX_MASTER_SIDS],
            nsids: 0,
            ats: dev.1.ats,
        };
        for (d, s) in t.sids.iter_mut().zip(dev.1.sids()) {
            *d = *s;
            t.nsids += 1;
        }
        t
    }

    /// A valid CD at the PASID belongs to another domain (the hardware CD is the source of
    /// truth); a device has one requester-ID domain.
    fn check(&self, dev: &SmmuDev<'a, M, SA, SS, C>, pasid: Option<u32>) -> Result<()> {
        match pasid {
            Some(p) if dev.1.pasid_in_use(p) => Err(Error::PasidInUse),
            None if matches!(dev.1.rid, RidMode::Domain(_)) => Err(Error::StillAttached),
            _ => Ok(()),
        }
    }

    /// Writes the domain's CD at SSID = PASID (hitless writer: CFGI_CD + CMD_SYNC per step);
    /// for the requester-ID domain CD 0 first, then STE.S1DSS = SSID0 (untagged traffic and
    /// PCIe MSIs translate here; PASID 0 tagged traffic is terminated, F_STREAM_DISABLED).
    fn attach(&mut self, dev: &mut SmmuDev<'a, M, SA, SS, C>, a: &SmmuAttachment) -> Result<()> {
        let (smmu, d, _) = dev;
        smmu.write_cd(&mut d.master, a.pasid.unwrap_or(0), &self.s1.cd())?;
        if a.pasid.is_some() {
            d.aux_count = d.aux_count.saturating_add(1);
            return Ok(());
        }
        let asid = self.s1.asid();
        if let Err(e) = smmu.attach_cd_table(&mut d.master, RidMode::Domain(asid).s1dss()) {
            // Undo: CD 0 is unused while S1DSS is not SSID0.
            let _ = self.clear_cd(smmu, d, a);
            return Err(e.into());
        }
        d.rid = RidMode::Domain(asid);
        Ok(())
    }

    /// Clears the CD ([`SmmuBackend::clear_cd`]); a requester-ID domain first switches
    /// STE.S1DSS back to the device's mode without one ([`AuxDevice::set_rid_mode`]).
    fn detach(&mut self, dev: &mut SmmuDev<'a, M, SA, SS, C>, a: &SmmuAttachment) -> Result<()> {
        let (smmu, d, _) = dev;
        if a.pasid.is_none() {
            smmu.attach_cd_table(&mut d.master, d.rid_idle.s1dss())?;
            d.rid = d.rid_idle;
        }
        self.clear_cd(smmu, d, a)?;
        if a.pasid.is_some() {
            d.aux_count = d.aux_count.saturating_sub(1);
        }
        Ok(())
    }

    fn force_snoop(&mut self, dev: &mut SmmuDev<'a, M, SA, SS, C>, a: &SmmuAttachment, on: bool) {
        set_forced(a, dev.2, on);
    }
}

impl<D: DmaMemory, SS: TableStore<D>> DeviceId for &AuxDevice<D, SS> {
    fn id(&self) -> u32 {
        self.id
    }
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> policy::AuxDomain<SmmuBackend<A, S>> {
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
        let s1 = S1Domain::new(cfg, alloc, store, asids, inv)?;
        Ok(Self::from_parts(
            SmmuBackend {
                s1,
                atc_pending: false,
            },
            policy,
        ))
    }

    /// The ASID (also the domain's identity).
    pub fn asid(&self) -> u16 {
        self.backend().s1.asid()
    }

    /// The page table (read only).
    pub fn page_table(&self) -> &PageTable<A, S> {
        self.backend().s1.page_table()
    }

    /// The underlying stage-1 domain (read only: its invalidation counters, pending flush).
    pub fn s1(&self) -> &S1Domain<A, S> {
        &self.backend().s1
    }

    /// The CD this domain installs.
    pub fn cd(&self) -> Cd {
        self.backend().s1.cd()
    }

    /// Frees the domain: refused with `EBUSY` (domain handed back) while attached anywhere.
    /// Every doorbell binding still present is unmapped even if its sources were never
    /// deactivated ([`policy::AuxDomain::release_doorbells`]), then [`S1Domain::destroy`]
    /// invalidates the whole ASID (TLBI_NH_ASID + CMD_SYNC, so a later domain reusing the ASID
    /// cannot hit stale entries, the doorbells included) and returns the ASID to `asids`. The
    /// page table is dropped with the domain.
    // The domain is handed back on failure so the caller can retry: the large `Err` is it.
    #[allow(clippy::result_large_err)]
    pub fn destroy<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        mut self,
        smmu: &mut Smmu<M, SA, SS>,
        asids: &mut AsidAllocator,
    ) -> core::result::Result<Teardown, (Error, Self)> {
        let t = match self.release_doorbells() {
            Ok(t) => t,
            Err(e) => return Err((e, self)),
        };
        let (b, policy) = self.into_parts();
        let atc_pending = b.atc_pending;
        match b.s1.destroy(smmu, asids) {
            Ok(_) => Ok(t),
            Err((s1, e)) => Err((
                e.into(),
                Self::from_parts(SmmuBackend { s1, atc_pending }, policy),
            )),
        }
    }
}
