// SPDX-License-Identifier: GPL-2.0
//! Auxiliary domains: stage-1 paging domains attached at (device, PASID) pairs, with a
//! reserved MSI window and doorbell bindings, and a one-way cache-coherency switch.
//!
//! The page table, the ASID, the CD and the unmap sequence (TLBIs from `Gather::plan`, one
//! CMD_SYNC, then `release_retired`; escalation to TLBI_NH_ASID on a rejected TLBI) belong to
//! the driver core's [`S1Domain`]: an [`AuxDomain`] owns one and adds what is specific to
//! PASID/auxiliary use (attachments, ATC invalidation of ATS masters, MSI doorbells, the MSI
//! window, the no-snoop policy).

use super::device::{AuxDevice, RidMode};
use super::error::{Error, Result};
use super::smmuv3::asid::AsidAllocator;
use super::smmuv3::cd::Cd;
use super::smmuv3::cmd::Command;
use super::smmuv3::device::{Smmu, MAX_MASTER_SIDS};
use super::smmuv3::dma::{DmaAllocator, DmaMemory, Mmio};
use super::smmuv3::domain::{tlbi_command, S1Domain};
use super::smmuv3::pgtable::{Config, InvFeatures, Invalidation, PageTable, PageTableStore, Prot};
use super::smmuv3::queue::CmdBatch;
use super::smmuv3::store::TableStore;

/// Most (device, PASID) attachments of one domain (the requester-ID attachment included).
pub const MAX_ATTACH: usize = 16;
/// Most distinct doorbell bindings of one domain.
pub const MAX_DOORBELLS: usize = 16;
/// Most active MSI sources (vectors and queue messages) of one domain.
pub const MAX_VECTORS: usize = 64;
/// Linux's `MSI_IOVA_BASE` (arm-smmu-v3.c): the default software-managed MSI window.
pub const SW_MSI_BASE: u64 = 0x800_0000;
/// Linux's `MSI_IOVA_LENGTH`.
pub const SW_MSI_SIZE: u64 = 0x10_0000;

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

/// The reserved IOVA window where doorbells are mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiWindow {
    /// First IOVA (granule aligned).
    pub base: u64,
    /// Size in bytes (granule multiple, non-zero).
    pub size: u64,
}

impl Default for MsiWindow {
    fn default() -> Self {
        Self {
            base: SW_MSI_BASE,
            size: SW_MSI_SIZE,
        }
    }
}

impl MsiWindow {
    fn overlaps(&self, iova: u64, size: u64) -> bool {
        let end = iova.saturating_add(size);
        iova < self.base.saturating_add(self.size) && self.base < end
    }
    fn contains_page(&self, iova: u64, page: u64) -> bool {
        iova >= self.base && iova.saturating_add(page) <= self.base.saturating_add(self.size)
    }
}

/// Kind of a reserved region (Linux `IOMMU_RESV_SW_MSI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedKind {
    /// Software-managed MSI window: the IOMMU layer maps doorbells there.
    SwMsi,
}

/// A reserved IOVA region, to be reported to users (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
/// iommufd IOMMU_IOAS_IOVA_RANGES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedRegion {
    /// First IOVA.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// Kind.
    pub kind: ReservedKind,
}

/// Where an MSI comes from, which decides the domain that translates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiSource {
    /// A PCIe MSI/MSI-X vector: the write carries the requester ID only, so it translates
    /// through the device's requester-ID domain.
    Rid {
        /// Vector number.
        vector: u32,
    },
    /// A per-queue interrupt message tagged with the queue's PASID: it translates through
    /// the domain attached at that PASID.
    Queue {
        /// The queue's PASID.
        pasid: u32,
        /// Queue number.
        queue: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attachment {
    dev: u32,
    /// None: requester-ID context (CD 0).
    pasid: Option<u32>,
    sids: [u32; MAX_MASTER_SIDS],
    nsids: usize,
    ats: bool,
    snoop_control: bool,
}

impl Attachment {
    fn sids(&self) -> &[u32] {
        self.sids.get(..self.nsids).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    pa_page: u64,
    iova_page: u64,
    refs: u32,
    /// Placed by the user (nested case), not allocated in the window.
    user: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Vector {
    dev: u32,
    src: MsiSource,
    binding: usize,
    doorbell: u64,
}

/// A doorbell binding, as reported by [`AuxDomain::doorbells`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorbellInfo {
    /// Physical address of the doorbell page.
    pub pa_page: u64,
    /// IOVA of its mapping.
    pub iova_page: u64,
    /// Active MSI sources using it.
    pub refs: u32,
    /// Placed at a user-specified IOVA.
    pub user: bool,
}

/// What [`AuxDomain::destroy`] tore down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Teardown {
    /// Doorbell bindings still present (a user forgot to deactivate), unmapped here.
    pub doorbells: usize,
    /// MSI sources still active, dropped here.
    pub vectors: usize,
}

/// A stage-1 paging domain usable at any (device, PASID), and as a requester-ID domain.
///
/// Not bound to the device it was allocated for: [`AuxDomain::attach`] installs its CD at a
/// PASID of any PASID-enabled device, as many times as [`MAX_ATTACH`] allows. The ASID is the
/// domain's identity ([`RidMode::Domain`]). Page table, ASID, CD and invalidation are those of
/// the [`S1Domain`] it owns.
pub struct AuxDomain<A: DmaAllocator, S: PageTableStore<A::Memory>> {
    s1: S1Domain<A, S>,
    window: MsiWindow,
    enforced: bool,
    mapped_bytes: u64,
    attach: [Option<Attachment>; MAX_ATTACH],
    bindings: [Option<Binding>; MAX_DOORBELLS],
    vectors: [Option<Vector>; MAX_VECTORS],
    /// A flush completed its TLB invalidation but not the ATC invalidation that follows it:
    /// the next flush issues it again.
    atc_pending: bool,
}

/// Prot of a doorbell mapping (Linux `iommu_dma_get_msi_page`: write, no-exec, MMIO).
const DOORBELL_PROT: Prot = Prot(Prot::WRITE.0 | Prot::NOEXEC.0 | Prot::MMIO.0);

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
        let g = cfg.granule.size();
        let end = window.base.checked_add(window.size);
        let ias_ok = end.is_some_and(|e| cfg.ias >= 64 || e <= 1u64 << cfg.ias);
        if window.size == 0 || (window.base | window.size) & (g - 1) != 0 || !ias_ok {
            return Err(Error::InvalidArgument);
        }
        Ok(Self {
            s1: S1Domain::new(cfg, alloc, store, asids, inv)?,
            window,
            enforced: false,
            mapped_bytes: 0,
            attach: [None; MAX_ATTACH],
            bindings: [None; MAX_DOORBELLS],
            vectors: [None; MAX_VECTORS],
            atc_pending: false,
        })
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

    /// The CD this domain installs.
    pub fn cd(&self) -> Cd {
        self.s1.cd()
    }

    fn page_size(&self) -> u64 {
        self.s1.page_table().config().granule.size()
    }

    /// Reserved regions: the MSI window.
    pub fn reserved_regions(&self) -> [ReservedRegion; 1] {
        [ReservedRegion {
            start: self.window.base,
            length: self.window.size,
            kind: ReservedKind::SwMsi,
        }]
    }

    /// Whether cache coherency is enforced.
    pub fn coherency_enforced(&self) -> bool {
        self.enforced
    }

    /// The PASID at which this domain is attached to device `dev`, if any (the lowest one if
    /// it is attached at several).
    pub fn pasid_of(&self, dev: u32) -> Option<u32> {
        self.attach
            .iter()
            .flatten()
            .filter(|a| a.dev == dev)
            .filter_map(|a| a.pasid)
            .min()
    }

    /// Whether the domain is attached at (`dev`, `pasid`) (`None`: as requester-ID domain).
    pub fn is_attached(&self, dev: u32, pasid: Option<u32>) -> bool {
        self.find(dev, pasid).is_some()
    }

    /// Number of attachments (requester-ID attachments included).
    pub fn attachments(&self) -> usize {
        self.attach.iter().flatten().count()
    }

    /// Each (device, PASID) attachment (`None`: requester-ID), in slot order.
    pub fn attachment_list(&self) -> impl Iterator<Item = (u32, Option<u32>)> + '_ {
        self.attach.iter().flatten().map(|a| (a.dev, a.pasid))
    }

    fn find(&self, dev: u32, pasid: Option<u32>) -> Option<usize> {
        self.attach
            .iter()
            .position(|a| a.is_some_and(|a| a.dev == dev && a.pasid == pasid))
    }

    fn record<D: DmaMemory, SS: TableStore<D>>(
        dev: &AuxDevice<D, SS>,
        pasid: Option<u32>,
    ) -> Attachment {
        let mut a = Attachment {
            dev: dev.id,
            pasid,
            sids: [0; MAX_MASTER_SIDS],
            nsids: 0,
            ats: dev.ats,
            snoop_control: dev.snoop_control,
        };
        for (d, s) in a.sids.iter_mut().zip(dev.sids()) {
            *d = *s;
            a.nsids += 1;
        }
        a
    }

    fn set_forced(a: &Attachment, coh: &mut impl SnoopControl, on: bool) {
        for &sid in a.sids() {
            coh.set_snoop_forced(sid, a.pasid, on);
        }
    }

    /// Attaches the domain at `pasid` of `dev`: writes the domain's CD at SSID = `pasid`
    /// (hitless writer: CFGI_CD + CMD_SYNC per step). Errors: `EOPNOTSUPP` without PASIDs,
    /// `EINVAL` for PASID 0 / out of range, `EEXIST` if already attached there, `EBUSY` if
    /// another domain holds the PASID, `EINVAL` if coherency is enforced and the device cannot
    /// guarantee it, `ENOSPC` if the domain has [`MAX_ATTACH`] attachments. When enforced, the
    /// platform strips No_snoop for the stream before the CD goes live.
    pub fn attach<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        pasid: u32,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        dev.check_pasid(pasid)?;
        if self.find(dev.id, Some(pasid)).is_some() {
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
        if self.enforced && !dev.snoop_control {
            return Err(Error::CoherencyUnsupported);
        }
        let slot = self
            .attach
            .iter()
            .position(Option::is_none)
            .ok_or(Error::NoSpace)?;
        let a = Self::record(dev, pasid);
        if self.enforced {
            Self::set_forced(&a, coh, true);
        }
        if let Err(e) = smmu.write_cd(&mut dev.master, pasid.unwrap_or(0), &self.cd()) {
            if self.enforced {
                Self::set_forced(&a, coh, false);
            }
            return Err(e.into());
        }
        if let Some(s) = self.attach.get_mut(slot) {
            *s = Some(a);
        }
        Ok(())
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
        let slot = self.find(dev.id, Some(pasid)).ok_or(Error::NotAttached)?;
        self.detach_cd(smmu, dev, slot, coh)?;
        dev.aux_count = dev.aux_count.saturating_sub(1);
        Ok(())
    }

    fn detach_cd<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: &mut AuxDevice<SA::Memory, SS>,
        slot: usize,
        coh: &mut impl SnoopControl,
    ) -> Result<()> {
        let a = self
            .attach
            .get(slot)
            .copied()
            .flatten()
            .ok_or(Error::NotAttached)?;
        smmu.clear_cd(&mut dev.master, a.pasid.unwrap_or(0))?;
        let mut batch = CmdBatch::default();
        smmu.batch_add(&mut batch, &tlbi_command(self.asid(), Invalidation::Asid))?;
        if a.ats {
            for &sid in a.sids() {
                smmu.batch_add(&mut batch, &atc_inv_all(sid, a.pasid))?;
            }
        }
        smmu.batch_submit(&mut batch)?;
        if self.enforced {
            Self::set_forced(&a, coh, false);
        }
        if let Some(s) = self.attach.get_mut(slot) {
            *s = None;
        }
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
            if let Some(slot) = self.find(dev.id, None) {
                let _ = self.detach_cd(smmu, dev, slot, coh);
            }
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
        let slot = self.find(dev.id, None).ok_or(Error::NotAttached)?;
        smmu.attach_cd_table(&mut dev.master, mode.s1dss())?;
        dev.rid = mode;
        self.detach_cd(smmu, dev, slot, coh)
    }

    /// VFIO/iommufd `enforce_cache_coherency`: from now on no DMA of any attached device ends
    /// non-coherent. One-way (calling it again is a no-op). `EBUSY` once the domain has
    /// mappings (VFIO enforces before the first map), `EINVAL` if an attached device cannot
    /// have No_snoop stripped. While enforced, maps also get `Prot::CACHE`.
    pub fn enforce_cache_coherency(&mut self, coh: &mut impl SnoopControl) -> Result<()> {
        if self.enforced {
            return Ok(());
        }
        if self.mapped_bytes != 0 || self.bindings.iter().any(Option::is_some) {
            return Err(Error::CoherencyAfterMap);
        }
        if self.attach.iter().flatten().any(|a| !a.snoop_control) {
            return Err(Error::CoherencyUnsupported);
        }
        for a in self.attach.iter().flatten() {
            Self::set_forced(a, coh, true);
        }
        self.enforced = true;
        Ok(())
    }

    fn overlaps_user_doorbell(&self, iova: u64, size: u64, page: u64) -> bool {
        let end = iova.saturating_add(size);
        self.bindings
            .iter()
            .flatten()
            .any(|b| b.user && b.iova_page < end && iova < b.iova_page.saturating_add(page))
    }

    /// Maps user memory. `EADDRINUSE` if the range touches the MSI window; page-table errors
    /// otherwise (`EEXIST` over an existing mapping, a user-placed doorbell included).
    pub fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<()> {
        if self.window.overlaps(iova, size) {
            return Err(Error::ReservedIova);
        }
        let prot = if self.enforced {
            prot | Prot::CACHE
        } else {
            prot
        };
        self.s1.map(iova, paddr, size, prot)?;
        self.mapped_bytes = self.mapped_bytes.saturating_add(size);
        Ok(())
    }

    /// Unmaps user memory and invalidates ([`S1Domain`]: TLBIs per the gather policy, one
    /// CMD_SYNC, then unlinked tables are freed; then ATC_INV for ATS attachments and a second
    /// CMD_SYNC). Returns the bytes unmapped. `EADDRINUSE` for the MSI window, `EBUSY` over a
    /// user-placed doorbell.
    pub fn unmap<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        iova: u64,
        size: u64,
    ) -> Result<u64> {
        if self.window.overlaps(iova, size) {
            return Err(Error::ReservedIova);
        }
        let page = self.page_size();
        if self.overlaps_user_doorbell(iova, size, page) {
            return Err(Error::DoorbellInUse);
        }
        let n = self.s1.unmap_deferred(iova, size)?;
        self.mapped_bytes = self.mapped_bytes.saturating_sub(n);
        self.flush(smmu)?;
        Ok(n)
    }

    /// [`S1Domain::flush`] (TLBIs, CMD_SYNC, retired tables freed), then ATC_INV of every ATS
    /// attachment under a second CMD_SYNC. The ATC is invalidated only once the TLB
    /// invalidation has completed, as in Linux (`arm_smmu_tlb_inv_range_domain()`): an ATS
    /// translation request served from a stale TLB entry in between would refill the ATC.
    fn flush<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
    ) -> Result<()> {
        self.atc_pending |= self.s1.flush_pending();
        self.s1.flush(smmu)?;
        if !self.atc_pending {
            return Ok(());
        }
        let mut batch = CmdBatch::default();
        let mut n = 0usize;
        for a in self.attach.iter().flatten().filter(|a| a.ats) {
            for &sid in a.sids() {
                smmu.batch_add(&mut batch, &atc_inv_all(sid, a.pasid))?;
                n += 1;
            }
        }
        if n != 0 {
            smmu.batch_submit(&mut batch)?;
        }
        self.atc_pending = false;
        Ok(())
    }

    /// Output address of `iova` in this domain.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.s1.page_table().iova_to_phys(iova)
    }

    // ---------------------------------------------------------------------------------
    // MSI doorbells

    fn check_route<D: DmaMemory, SS: TableStore<D>>(
        &self,
        dev: &AuxDevice<D, SS>,
        src: MsiSource,
    ) -> Result<()> {
        let ok = match src {
            MsiSource::Rid { .. } => {
                dev.rid == RidMode::Domain(self.asid()) && self.find(dev.id, None).is_some()
            }
            MsiSource::Queue { pasid, .. } => self.find(dev.id, Some(pasid)).is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::MsiRoute)
        }
    }

    fn find_vector(&self, dev: u32, src: MsiSource) -> Option<usize> {
        self.vectors
            .iter()
            .position(|v| v.is_some_and(|v| v.dev == dev && v.src == src))
    }

    /// Finds or creates the binding for `doorbell`'s page: at `user_iova`'s page if given,
    /// else in a free window slot. Takes one reference.
    fn get_binding(&mut self, doorbell: u64, user_iova: Option<u64>) -> Result<usize> {
        let page = self.page_size();
        let pa_page = doorbell & !(page - 1);
        let existing = match user_iova {
            None => self
                .bindings
                .iter()
                .position(|b| b.is_some_and(|b| !b.user && b.pa_page == pa_page)),
            Some(iova) => {
                let iova_page = iova & !(page - 1);
                let i = self
                    .bindings
                    .iter()
                    .position(|b| b.is_some_and(|b| b.iova_page == iova_page));
                match i.and_then(|i| self.bindings.get(i).copied().flatten()) {
                    Some(b) if b.pa_page != pa_page => return Err(Error::DoorbellConflict),
                    _ => i,
                }
            }
        };
        if let Some(i) = existing {
            if let Some(Some(b)) = self.bindings.get_mut(i) {
                b.refs = b.refs.checked_add(1).ok_or(Error::NoSpace)?;
            }
            return Ok(i);
        }
        let slot = self
            .bindings
            .iter()
            .position(Option::is_none)
            .ok_or(Error::NoSpace)?;
        let (iova_page, user) = match user_iova {
            Some(iova) => {
                let iova_page = iova & !(page - 1);
                if !self.window.contains_page(iova_page, page)
                    && self.iova_to_phys(iova_page).is_some()
                {
                    return Err(Error::MsiIovaMapped);
                }
                (iova_page, true)
            }
            None => (self.free_window_page(page)?, false),
        };
        self.s1.map(iova_page, pa_page, page, DOORBELL_PROT)?;
        if let Some(s) = self.bindings.get_mut(slot) {
            *s = Some(Binding {
                pa_page,
                iova_page,
                refs: 1,
                user,
            });
        }
        Ok(slot)
    }

    fn free_window_page(&self, page: u64) -> Result<u64> {
        let n = self.window.size / page;
        (0..n)
            .map(|i| self.window.base + i * page)
            .find(|&iova| !self.bindings.iter().flatten().any(|b| b.iova_page == iova))
            .ok_or(Error::NoSpace)
    }

    /// Drops one reference of binding `i`; the last one unmaps the doorbell and invalidates.
    fn put_binding<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        i: usize,
    ) -> Result<()> {
        let page = self.page_size();
        let Some(Some(b)) = self.bindings.get_mut(i) else {
            return Err(Error::NotAttached);
        };
        b.refs = b.refs.saturating_sub(1);
        if b.refs != 0 {
            return Ok(());
        }
        let iova = b.iova_page;
        self.s1.unmap_deferred(iova, page)?;
        if let Some(s) = self.bindings.get_mut(i) {
            *s = None;
        }
        self.flush(smmu)
    }

    fn activate<D: DmaMemory, SS: TableStore<D>>(
        &mut self,
        dev: &AuxDevice<D, SS>,
        src: MsiSource,
        doorbell: u64,
        user_iova: Option<u64>,
    ) -> Result<u64> {
        self.check_route(dev, src)?;
        if self.find_vector(dev.id, src).is_some() {
            return Err(Error::AlreadyAttached);
        }
        let vslot = self
            .vectors
            .iter()
            .position(Option::is_none)
            .ok_or(Error::NoSpace)?;
        let page = self.page_size();
        if let Some(iova) = user_iova {
            // The message lands at the same offset in the page as the doorbell.
            if (iova ^ doorbell) & (page - 1) != 0 {
                return Err(Error::InvalidArgument);
            }
        }
        let b = self.get_binding(doorbell, user_iova)?;
        if let Some(v) = self.vectors.get_mut(vslot) {
            *v = Some(Vector {
                dev: dev.id,
                src,
                binding: b,
                doorbell,
            });
        }
        Ok(self.msg_addr(b, doorbell))
    }

    fn msg_addr(&self, b: usize, doorbell: u64) -> u64 {
        let page = self.page_size();
        let iova = self
            .bindings
            .get(b)
            .copied()
            .flatten()
            .map_or(0, |b| b.iova_page);
        iova | (doorbell & (page - 1))
    }

    /// `msi_domain_activate`: binds `doorbell` (refcounted per doorbell page) in the window
    /// and returns the message address the device must be programmed with. `EINVAL` if `src`
    /// does not translate through this domain (PCIe MSIs: the requester-ID domain; queue
    /// messages: the domain at that PASID), `EEXIST` if already active, `ENOSPC` if full.
    pub fn msi_activate<D: DmaMemory, SS: TableStore<D>>(
        &mut self,
        dev: &AuxDevice<D, SS>,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64> {
        self.activate(dev, src, doorbell, None)
    }

    /// Like [`AuxDomain::msi_activate`] with a user-specified IOVA (nested case: the guest
    /// chose the address its stage 1 maps). Validated: same page offset as the doorbell
    /// (`EINVAL`); inside the window the page must be free or already bound to the same
    /// doorbell (`EBUSY`); outside it must not overlap a mapping (`EEXIST`), and it is then
    /// protected from user unmaps (`EBUSY`) until released.
    pub fn msi_activate_at<D: DmaMemory, SS: TableStore<D>>(
        &mut self,
        dev: &AuxDevice<D, SS>,
        src: MsiSource,
        doorbell: u64,
        iova: u64,
    ) -> Result<u64> {
        self.activate(dev, src, doorbell, Some(iova))
    }

    /// `msi_domain_deactivate`: drops the source's doorbell reference (the last one unmaps
    /// the doorbell). `ENOENT` if not active.
    pub fn msi_deactivate<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: u32,
        src: MsiSource,
    ) -> Result<()> {
        let v = self.find_vector(dev, src).ok_or(Error::NotAttached)?;
        let b = self
            .vectors
            .get(v)
            .copied()
            .flatten()
            .map(|v| v.binding)
            .ok_or(Error::NotAttached)?;
        if let Some(s) = self.vectors.get_mut(v) {
            *s = None;
        }
        self.put_binding(smmu, b)
    }

    /// `irq_set_affinity` moved the source to another doorbell: the new one is bound first,
    /// then the old one is put (so a shared page never drops to zero in between). Returns
    /// the new message address. Sources with a user-specified IOVA keep it only if the new
    /// doorbell shares the page; otherwise they move into the window.
    pub fn msi_set_affinity<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        &mut self,
        smmu: &mut Smmu<M, SA, SS>,
        dev: u32,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64> {
        let vi = self.find_vector(dev, src).ok_or(Error::NotAttached)?;
        let old = self
            .vectors
            .get(vi)
            .copied()
            .flatten()
            .ok_or(Error::NotAttached)?;
        let page = self.page_size();
        let keep_user = self
            .bindings
            .get(old.binding)
            .copied()
            .flatten()
            .filter(|b| b.user && b.pa_page == doorbell & !(page - 1))
            .map(|b| b.iova_page | (doorbell & (page - 1)));
        let nb = self.get_binding(doorbell, keep_user)?;
        if let Some(Some(v)) = self.vectors.get_mut(vi) {
            v.binding = nb;
            v.doorbell = doorbell;
        }
        self.put_binding(smmu, old.binding)?;
        Ok(self.msg_addr(nb, doorbell))
    }

    /// The message address of an active source.
    pub fn msi_msg_addr(&self, dev: u32, src: MsiSource) -> Option<u64> {
        let v = self
            .vectors
            .get(self.find_vector(dev, src)?)
            .copied()
            .flatten()?;
        Some(self.msg_addr(v.binding, v.doorbell))
    }

    /// References held on the doorbell page containing `doorbell` (all its bindings).
    pub fn doorbell_refs(&self, doorbell: u64) -> u32 {
        let page = self.page_size();
        self.bindings
            .iter()
            .flatten()
            .filter(|b| b.pa_page == doorbell & !(page - 1))
            .map(|b| b.refs)
            .sum()
    }

    /// Every doorbell binding.
    pub fn doorbells(&self) -> impl Iterator<Item = DoorbellInfo> + '_ {
        self.bindings.iter().flatten().map(|b| DoorbellInfo {
            pa_page: b.pa_page,
            iova_page: b.iova_page,
            refs: b.refs,
            user: b.user,
        })
    }

    /// Active MSI sources.
    pub fn active_vectors(&self) -> usize {
        self.vectors.iter().flatten().count()
    }

    /// Frees the domain: refused with `EBUSY` (domain handed back) while attached anywhere.
    /// Every doorbell binding still present is unmapped even if its sources were never
    /// deactivated, then [`S1Domain::destroy`] invalidates the whole ASID (TLBI_NH_ASID +
    /// CMD_SYNC, so a later domain reusing the ASID cannot hit stale entries, the doorbells
    /// included) and returns the ASID to `asids`. The page table is dropped with the domain.
    // The domain is handed back on failure so the caller can retry: the large `Err` is it.
    #[allow(clippy::result_large_err)]
    pub fn destroy<M: Mmio, SA: DmaAllocator, SS: TableStore<SA::Memory>>(
        mut self,
        smmu: &mut Smmu<M, SA, SS>,
        asids: &mut AsidAllocator,
    ) -> core::result::Result<Teardown, (Error, Self)> {
        if self.attachments() != 0 {
            return Err((Error::StillAttached, self));
        }
        let mut t = Teardown {
            doorbells: 0,
            vectors: self.active_vectors(),
        };
        let page = self.page_size();
        for i in 0..MAX_DOORBELLS {
            if let Some(b) = self.bindings.get(i).copied().flatten() {
                if let Err(e) = self.s1.unmap_deferred(b.iova_page, page) {
                    return Err((e.into(), self));
                }
                if let Some(s) = self.bindings.get_mut(i) {
                    *s = None;
                }
                t.doorbells += 1;
            }
        }
        self.vectors = [None; MAX_VECTORS];
        match self.s1.destroy(smmu, asids) {
            Ok(_) => Ok(t),
            Err((s1, e)) => {
                self.s1 = s1;
                Err((e.into(), self))
            }
        }
    }
}
