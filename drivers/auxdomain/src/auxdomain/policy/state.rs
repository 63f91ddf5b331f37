// SPDX-License-Identifier: GPL-2.0
//! The bookkeeping of one auxiliary domain and every decision it takes: attachments, the MSI
//! window and its refcounted doorbell bindings, active MSI sources, the no-snoop switch.
//!
//! The page table is the backend's: [`Mapper`] maps and looks up, [`Translation`] also unmaps
//! and completes the invalidations before returning. Methods that change the page table take
//! the backend as an argument, so the same policy runs over the SMMUv3 driver core (host
//! model) and over the kernel's IOMMU API.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use super::error::{BackendError, Error};
use super::types::{
    DoorbellInfo, MsiSource, MsiWindow, ReservedKind, ReservedRegion, Teardown, DOORBELL_PROT,
    MAX_ATTACH, MAX_DOORBELLS, MAX_VECTORS,
};
use super::Prot;

/// Mapping side of a backend: enough for maps and doorbell bindings.
pub trait Mapper {
    /// The backend's error.
    type Error: BackendError;
    /// Page size of the domain's page table (the doorbell mapping unit).
    fn granule(&self) -> u64;
    /// Maps [`iova`, `iova + size`) to `paddr`.
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), Self::Error>;
    /// Output address of `iova`, if mapped.
    fn iova_to_phys(&self, iova: u64) -> Option<u64>;
}

/// A backend that can also unmap: `unmap` returns only once the IOTLB and the ATCs of the
/// attached devices (`attached`, the policy's attachment table) can no longer translate the
/// range.
pub trait Translation: Mapper {
    /// What the backend keeps per attachment to invalidate it (StreamIDs, ATS, ...).
    type Target: Copy;
    /// Unmaps and invalidates; returns the bytes unmapped.
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        attached: &[Option<Attachment<Self::Target>>],
    ) -> Result<u64, Self::Error>;
}

/// One (device, PASID) attachment of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment<T> {
    /// The caller's identifier of the device.
    pub dev: u32,
    /// The PASID; `None` for the requester-ID context.
    pub pasid: Option<u32>,
    /// The platform can strip No_snoop for this device.
    pub snoop_control: bool,
    /// The backend's data for the attachment.
    pub target: T,
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

/// The state of one auxiliary domain apart from its page table. `T` is the backend's
/// per-attachment data. Fixed tables, no allocation; every error is a value.
pub struct AuxPolicy<T: Copy> {
    window: MsiWindow,
    granule: u64,
    enforced: bool,
    mapped_bytes: u64,
    attach: [Option<Attachment<T>>; MAX_ATTACH],
    bindings: [Option<Binding>; MAX_DOORBELLS],
    vectors: [Option<Vector>; MAX_VECTORS],
}

type Res<T, B> = Result<T, Error<B>>;

impl<T: Copy> AuxPolicy<T> {
    /// A domain with no attachment, mapping or doorbell, whose MSI window is `window` in a
    /// page table of `granule`-byte pages and `ias` input bits (`EINVAL` unless the window
    /// [`MsiWindow::fits`]).
    pub fn new<B>(window: MsiWindow, granule: u64, ias: u32) -> Res<Self, B> {
        let mut slot = MaybeUninit::uninit();
        Self::new_in::<B>(&mut slot, window, granule, ias)?;
        // SAFETY: `new_in` returned `Ok`, so it initialised `slot`.
        Ok(unsafe { slot.assume_init() })
    }

    /// [`new`](Self::new), built in place in `slot`, which the caller allocated (a kernel
    /// driver: a box). The tables are a few KiB; built on the stack and moved, they cost a
    /// frame or two of that size, and kernel stacks are 16 KiB for everything on them.
    pub fn new_in<B>(
        slot: &mut MaybeUninit<Self>,
        window: MsiWindow,
        granule: u64,
        ias: u32,
    ) -> Res<&mut Self, B> {
        if !window.fits(granule, ias) {
            return Err(Error::InvalidArgument);
        }
        let p = slot.as_mut_ptr();
        // SAFETY: `p` points to memory valid for writes of a `Self` (`slot`). Every field is
        // written exactly once, the tables entry by entry so that none is built on the stack,
        // before the slot is treated as initialised.
        unsafe {
            addr_of_mut!((*p).window).write(window);
            addr_of_mut!((*p).granule).write(granule);
            addr_of_mut!((*p).enforced).write(false);
            addr_of_mut!((*p).mapped_bytes).write(0);
            for i in 0..MAX_ATTACH {
                addr_of_mut!((*p).attach[i]).write(None);
            }
            for i in 0..MAX_DOORBELLS {
                addr_of_mut!((*p).bindings[i]).write(None);
            }
            for i in 0..MAX_VECTORS {
                addr_of_mut!((*p).vectors[i]).write(None);
            }
            Ok(slot.assume_init_mut())
        }
    }

    /// The MSI window.
    pub fn window(&self) -> MsiWindow {
        self.window
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

    // ---------------------------------------------------------------------------------
    // Attachments

    /// The PASID at which the domain is attached to `dev`, if any (the lowest one if it is
    /// attached at several).
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

    /// The attachment table (what [`Translation::unmap`] invalidates).
    pub fn attached(&self) -> &[Option<Attachment<T>>] {
        &self.attach
    }

    /// The attachment at (`dev`, `pasid`).
    pub fn attachment(&self, dev: u32, pasid: Option<u32>) -> Option<Attachment<T>> {
        self.attach.get(self.find(dev, pasid)?).copied().flatten()
    }

    fn find(&self, dev: u32, pasid: Option<u32>) -> Option<usize> {
        self.attach
            .iter()
            .position(|a| a.is_some_and(|a| a.dev == dev && a.pasid == pasid))
    }

    /// Checks that `a` may be attached: not already there (`EEXIST`), a device that can
    /// guarantee coherency if it is enforced (`EINVAL`), room in the table (`ENOSPC`).
    /// Nothing is recorded: the caller programs the backend, then calls
    /// [`AuxPolicy::record_attach`].
    pub fn check_attach<B>(&self, a: &Attachment<T>) -> Res<(), B> {
        if self.find(a.dev, a.pasid).is_some() {
            return Err(Error::AlreadyAttached);
        }
        if self.enforced && !a.snoop_control {
            return Err(Error::CoherencyUnsupported);
        }
        if !self.attach.iter().any(Option::is_none) {
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    /// Records an attachment that [`AuxPolicy::check_attach`] accepted and the backend
    /// programmed.
    pub fn record_attach<B>(&mut self, a: Attachment<T>) -> Res<(), B> {
        self.check_attach(&a)?;
        let slot = self
            .attach
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(Error::NoSpace)?;
        *slot = Some(a);
        Ok(())
    }

    /// Forgets the attachment at (`dev`, `pasid`) once the backend removed it (`ENOENT` if
    /// there is none). MSI sources of the PASID stay active until deactivated (or the domain
    /// is torn down); they no longer translate.
    pub fn remove_attach<B>(&mut self, dev: u32, pasid: Option<u32>) -> Res<Attachment<T>, B> {
        let slot = self.find(dev, pasid).ok_or(Error::NotAttached)?;
        self.attach
            .get_mut(slot)
            .and_then(Option::take)
            .ok_or(Error::NotAttached)
    }

    // ---------------------------------------------------------------------------------
    // No-snoop policy

    /// VFIO/iommufd `enforce_cache_coherency`: checks the switch may be thrown (`EBUSY` once
    /// the domain has mappings, user or doorbell, as VFIO enforces before the first map;
    /// `EINVAL` if an attached device cannot have No_snoop stripped), lets the backend apply
    /// it to every attachment (`apply`), then records it. One-way: calling it again does
    /// nothing. While enforced, maps get [`Prot::CACHE`].
    pub fn enforce_cache_coherency<B>(
        &mut self,
        apply: impl FnOnce(&[Option<Attachment<T>>]) -> Res<(), B>,
    ) -> Res<(), B> {
        if self.enforced {
            return Ok(());
        }
        if self.mapped_bytes != 0 || self.bindings.iter().any(Option::is_some) {
            return Err(Error::CoherencyAfterMap);
        }
        if self.attach.iter().flatten().any(|a| !a.snoop_control) {
            return Err(Error::CoherencyUnsupported);
        }
        apply(&self.attach)?;
        self.enforced = true;
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // User mappings

    fn overlaps_user_doorbell(&self, iova: u64, size: u64) -> bool {
        let end = iova.saturating_add(size);
        self.bindings
            .iter()
            .flatten()
            .any(|b| b.user && b.iova_page < end && iova < b.iova_page.saturating_add(self.granule))
    }

    /// Maps user memory. `EADDRINUSE` if the range touches the MSI window; the backend's
    /// errors otherwise (`EEXIST` over an existing mapping, a user-placed doorbell included).
    pub fn map<M: Mapper>(
        &mut self,
        b: &mut M,
        iova: u64,
        paddr: u64,
        size: u64,
        prot: Prot,
    ) -> Res<(), M::Error> {
        if self.window.overlaps(iova, size) {
            return Err(Error::ReservedIova);
        }
        let prot = if self.enforced {
            prot | Prot::CACHE
        } else {
            prot
        };
        b.map(iova, paddr, size, prot).map_err(Error::Backend)?;
        self.mapped_bytes = self.mapped_bytes.saturating_add(size);
        Ok(())
    }

    /// Unmaps user memory; the backend invalidates before returning. Returns the bytes
    /// unmapped. `EADDRINUSE` for the MSI window, `EBUSY` over a user-placed doorbell.
    pub fn unmap<X: Translation<Target = T>>(
        &mut self,
        b: &mut X,
        iova: u64,
        size: u64,
    ) -> Res<u64, X::Error> {
        if self.window.overlaps(iova, size) {
            return Err(Error::ReservedIova);
        }
        if self.overlaps_user_doorbell(iova, size) {
            return Err(Error::DoorbellInUse);
        }
        let n = b.unmap(iova, size, &self.attach).map_err(Error::Backend)?;
        self.mapped_bytes = self.mapped_bytes.saturating_sub(n);
        Ok(n)
    }

    // ---------------------------------------------------------------------------------
    // MSI doorbells

    fn check_route<B>(&self, dev: u32, src: MsiSource) -> Res<(), B> {
        let pasid = match src {
            MsiSource::Rid { .. } => None,
            MsiSource::Queue { pasid, .. } => Some(pasid),
        };
        match self.find(dev, pasid) {
            Some(_) => Ok(()),
            None => Err(Error::MsiRoute),
        }
    }

    fn find_vector(&self, dev: u32, src: MsiSource) -> Option<usize> {
        self.vectors
            .iter()
            .position(|v| v.is_some_and(|v| v.dev == dev && v.src == src))
    }

    fn binding(&self, i: usize) -> Option<Binding> {
        self.bindings.get(i).copied().flatten()
    }

    /// Finds or creates the binding for `doorbell`'s page: at `user_iova`'s page if given,
    /// else in a free window slot. Takes one reference.
    fn get_binding<M: Mapper>(
        &mut self,
        b: &mut M,
        doorbell: u64,
        user_iova: Option<u64>,
    ) -> Res<usize, M::Error> {
        let page = self.granule;
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
                match i.and_then(|i| self.binding(i)) {
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
                    && b.iova_to_phys(iova_page).is_some()
                {
                    return Err(Error::MsiIovaMapped);
                }
                (iova_page, true)
            }
            None => (self.free_window_page(b)?, false),
        };
        b.map(iova_page, pa_page, page, DOORBELL_PROT)
            .map_err(Error::Backend)?;
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

    /// A window page no binding uses and nothing else mapped (a backend may map doorbells of
    /// its own there, as the kernel's MSI cookie does for requester-ID MSIs).
    fn free_window_page<M: Mapper>(&self, b: &M) -> Res<u64, M::Error> {
        let page = self.granule;
        let n = self.window.size / page;
        (0..n)
            .map(|i| self.window.base + i * page)
            .find(|&iova| {
                !self.bindings.iter().flatten().any(|b| b.iova_page == iova)
                    && b.iova_to_phys(iova).is_none()
            })
            .ok_or(Error::NoSpace)
    }

    /// Drops one reference of binding `i`; the last one unmaps the doorbell (the backend
    /// invalidates).
    fn put_binding<X: Translation<Target = T>>(
        &mut self,
        b: &mut X,
        i: usize,
    ) -> Res<(), X::Error> {
        let Some(Some(bd)) = self.bindings.get_mut(i) else {
            return Err(Error::NotAttached);
        };
        bd.refs = bd.refs.saturating_sub(1);
        if bd.refs != 0 {
            return Ok(());
        }
        let iova = bd.iova_page;
        b.unmap(iova, self.granule, &self.attach)
            .map_err(Error::Backend)?;
        if let Some(s) = self.bindings.get_mut(i) {
            *s = None;
        }
        Ok(())
    }

    fn activate<M: Mapper>(
        &mut self,
        b: &mut M,
        dev: u32,
        src: MsiSource,
        doorbell: u64,
        user_iova: Option<u64>,
    ) -> Res<u64, M::Error> {
        self.check_route(dev, src)?;
        if self.find_vector(dev, src).is_some() {
            return Err(Error::AlreadyAttached);
        }
        let vslot = self
            .vectors
            .iter()
            .position(Option::is_none)
            .ok_or(Error::NoSpace)?;
        if let Some(iova) = user_iova {
            // The message lands at the same offset in the page as the doorbell.
            if (iova ^ doorbell) & (self.granule - 1) != 0 {
                return Err(Error::InvalidArgument);
            }
        }
        let bi = self.get_binding(b, doorbell, user_iova)?;
        if let Some(v) = self.vectors.get_mut(vslot) {
            *v = Some(Vector {
                dev,
                src,
                binding: bi,
                doorbell,
            });
        }
        Ok(self.msg_addr(bi, doorbell))
    }

    fn msg_addr(&self, b: usize, doorbell: u64) -> u64 {
        let iova = self.binding(b).map_or(0, |b| b.iova_page);
        iova | (doorbell & (self.granule - 1))
    }

    /// `msi_domain_activate`: binds `doorbell` (refcounted per doorbell page) in the window
    /// and returns the message address the device must be programmed with. `EINVAL` if `src`
    /// does not translate through this domain (PCIe MSIs: the requester-ID attachment of
    /// `dev`; queue messages: the attachment at that PASID), `EEXIST` if already active,
    /// `ENOSPC` if full.
    pub fn msi_activate<M: Mapper>(
        &mut self,
        b: &mut M,
        dev: u32,
        src: MsiSource,
        doorbell: u64,
    ) -> Res<u64, M::Error> {
        self.activate(b, dev, src, doorbell, None)
    }

    /// Like [`AuxPolicy::msi_activate`] with a user-specified IOVA (nested case: the guest
    /// chose the address its stage 1 maps). Validated: same page offset as the doorbell
    /// (`EINVAL`); inside the window the page must be free or already bound to the same
    /// doorbell (`EBUSY`); outside it must not overlap a mapping (`EEXIST`), and it is then
    /// protected from user unmaps (`EBUSY`) until released.
    pub fn msi_activate_at<M: Mapper>(
        &mut self,
        b: &mut M,
        dev: u32,
        src: MsiSource,
        doorbell: u64,
        iova: u64,
    ) -> Res<u64, M::Error> {
        self.activate(b, dev, src, doorbell, Some(iova))
    }

    /// `msi_domain_deactivate`: drops the source's doorbell reference (the last one unmaps
    /// the doorbell). `ENOENT` if not active.
    pub fn msi_deactivate<X: Translation<Target = T>>(
        &mut self,
        b: &mut X,
        dev: u32,
        src: MsiSource,
    ) -> Res<(), X::Error> {
        let v = self.find_vector(dev, src).ok_or(Error::NotAttached)?;
        let bi = self
            .vectors
            .get_mut(v)
            .and_then(Option::take)
            .map(|v| v.binding)
            .ok_or(Error::NotAttached)?;
        self.put_binding(b, bi)
    }

    /// `irq_set_affinity` moved the source to another doorbell: the new one is bound first,
    /// then the old one is put (so a shared page never drops to zero in between). Returns
    /// the new message address. Sources with a user-specified IOVA keep it only if the new
    /// doorbell shares the page; otherwise they move into the window.
    pub fn msi_set_affinity<X: Translation<Target = T>>(
        &mut self,
        b: &mut X,
        dev: u32,
        src: MsiSource,
        doorbell: u64,
    ) -> Res<u64, X::Error> {
        let vi = self.find_vector(dev, src).ok_or(Error::NotAttached)?;
        let old = self
            .vectors
            .get(vi)
            .copied()
            .flatten()
            .ok_or(Error::NotAttached)?;
        let page = self.granule;
        let keep_user = self
            .binding(old.binding)
            .filter(|b| b.user && b.pa_page == doorbell & !(page - 1))
            .map(|b| b.iova_page | (doorbell & (page - 1)));
        let nb = self.get_binding(b, doorbell, keep_user)?;
        if let Some(Some(v)) = self.vectors.get_mut(vi) {
            v.binding = nb;
            v.doorbell = doorbell;
        }
        self.put_binding(b, old.binding)?;
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
        let pa_page = doorbell & !(self.granule - 1);
        self.bindings
            .iter()
            .flatten()
            .filter(|b| b.pa_page == pa_page)
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

    /// Tears the MSI state down before the domain is freed: refused with `EBUSY` while the
    /// domain is attached anywhere; every doorbell binding still present (a user that forgot
    /// to deactivate) is unmapped through `unmap_page(iova, size)` (which need not invalidate
    /// if the caller invalidates the whole domain afterwards) and every source dropped. If
    /// `unmap_page` fails, the bindings not yet unmapped are kept and its error returned.
    pub fn teardown<E: BackendError>(
        &mut self,
        mut unmap_page: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Res<Teardown, E> {
        if self.attachments() != 0 {
            return Err(Error::StillAttached);
        }
        let mut t = Teardown {
            doorbells: 0,
            vectors: self.active_vectors(),
        };
        for slot in self.bindings.iter_mut() {
            if let Some(b) = *slot {
                unmap_page(b.iova_page, self.granule).map_err(Error::Backend)?;
                *slot = None;
                t.doorbells += 1;
            }
        }
        self.vectors = [None; MAX_VECTORS];
        Ok(t)
    }
}
