// SPDX-License-Identifier: GPL-2.0
//! The one auxiliary domain: an [`AuxPolicy`] over a backend that translates its DMA.
//!
//! Every rule is here or in [`AuxPolicy`], written once: PASID validity, the attachment table
//! (`EEXIST`, `ENOSPC`, `ENOENT`), the no-snoop ordering around attach and detach, the MSI
//! window and the doorbell bindings. A backend says what it must do in [`AuxBackend`] (map,
//! look up, release at teardown, report errors) and in three traits whose type parameter is
//! what the caller lends to a call that reaches the IOMMU:
//!
//! - [`Attach<D>`]: attach and detach at a PASID or at the requester ID of a device `D`, and
//!   force snooping for one attachment;
//! - [`Invalidate<C>`]: unmap and complete the invalidations before returning;
//! - [`Coherency<C>`]: throw the no-snoop switch for every attachment.
//!
//! The backends are the project's SMMUv3 driver core (host, `C` = the SMMU) and the kernel's
//! IOMMU API (`kernel::auxdomain`, `C` = `()`: the IOMMU driver needs nothing from the caller).

use core::borrow::{Borrow, BorrowMut};

use super::error::Error;
use super::state::{Attachment, AuxPolicy, Mapper, Translation};
use super::types::{DoorbellInfo, MsiSource, ReservedRegion, Teardown};

/// A backend of [`AuxDomain`]: its page table ([`Mapper`]), what it keeps per attachment, where
/// the policy's tables live and how errors leave the domain.
pub trait AuxBackend: Mapper {
    /// What the backend keeps per attachment (StreamIDs and ATS for the SMMU; nothing for the
    /// IOMMU API, which tracks attachments itself).
    type Target: Copy;
    /// Where the policy's tables live (inline on the host; a box in the kernel, whose stacks are
    /// too small for a few KiB moved by value).
    type Policy: BorrowMut<AuxPolicy<Self::Target>>;
    /// What the domain's methods return on failure: the policy's error itself (host), or a
    /// kernel error after a log line naming the operation (kernel).
    type Failure;

    /// Turns a failed `what` (on device `dev`, if one is involved) into [`Self::Failure`].
    fn fail(&self, what: &'static str, dev: Option<u32>, e: Error<Self::Error>) -> Self::Failure;

    /// Unmaps a doorbell page at teardown: the domain is attached nowhere, so no invalidation
    /// is needed beyond what freeing the domain does.
    fn release(&mut self, iova: u64, size: u64) -> Result<(), Self::Error>;
}

/// What a backend tells the domain about a device it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The caller's identifier of the device (the key in the attachment table).
    pub id: u32,
    /// The usable PASID range (inclusive, from `usable_pasid_range`); `None` without PASIDs.
    pub pasids: Option<(u32, u32)>,
    /// The platform can strip No_snoop for the device.
    pub snoop_control: bool,
}

/// Attachment of the backend's domain to a device `D` (the device and whatever the backend
/// needs from the caller to program it). The domain has checked the PASID range and the
/// attachment table before any of these is called.
pub trait Attach<D>: AuxBackend {
    /// The device's identity, PASID range and snoop capability.
    fn facts(dev: &D) -> DeviceFacts;
    /// The backend's data for an attachment to `dev`.
    fn target(&self, dev: &D) -> Self::Target;
    /// Refuses an attachment the hardware state forbids before anything is programmed (another
    /// domain at the PASID: `EBUSY`; a second requester-ID domain: `EBUSY`).
    fn check(&self, dev: &D, pasid: Option<u32>) -> Result<(), Error<Self::Error>>;
    /// Installs the domain at `a.pasid` of `dev` (`None`: as its requester-ID domain).
    fn attach(
        &mut self,
        dev: &mut D,
        a: &Attachment<Self::Target>,
    ) -> Result<(), Error<Self::Error>>;
    /// Removes the attachment `a` and invalidates what the device may cache of it.
    fn detach(
        &mut self,
        dev: &mut D,
        a: &Attachment<Self::Target>,
    ) -> Result<(), Error<Self::Error>>;
    /// Forces snooping for the attachment `a` (`on`), or stops forcing it.
    fn force_snoop(&mut self, dev: &mut D, a: &Attachment<Self::Target>, on: bool);
    /// Like [`AuxBackend::fail`], with the device at hand (for a log line naming it).
    fn fail_at(&self, dev: &D, what: &'static str, e: Error<Self::Error>) -> Self::Failure {
        self.fail(what, Some(Self::facts(dev).id), e)
    }
}

/// Unmapping with the caller's context `C`: returns only once the IOTLB and the ATCs of the
/// attached devices (`attached`) can no longer translate the range.
pub trait Invalidate<C>: AuxBackend {
    /// Unmaps what is mapped in [`iova`, `iova + size`), invalidates, returns the bytes
    /// unmapped.
    fn unmap(
        &mut self,
        ctx: &mut C,
        iova: u64,
        size: u64,
        attached: &[Option<Attachment<Self::Target>>],
    ) -> Result<u64, Self::Error>;
}

/// The no-snoop switch with the caller's context `C`.
pub trait Coherency<C>: AuxBackend {
    /// Makes every attachment in `attached` (and every later one, through
    /// [`Attach::force_snoop`]) snoop; `EINVAL` if the backend cannot.
    fn enforce(
        &mut self,
        ctx: &mut C,
        attached: &[Option<Attachment<Self::Target>>],
    ) -> Result<(), Error<Self::Error>>;
}

/// How an MSI call names the device: its identifier, or anything that knows it.
pub trait DeviceId {
    /// The identifier (the key in the attachment table).
    fn id(&self) -> u32;
}

impl DeviceId for u32 {
    fn id(&self) -> u32 {
        *self
    }
}

/// The policy's unmaps through a backend with the caller's context.
struct WithCtx<'a, B, C> {
    b: &'a mut B,
    ctx: &'a mut C,
}

impl<B: AuxBackend, C> Mapper for WithCtx<'_, B, C> {
    type Error = B::Error;
    fn granule(&self) -> u64 {
        self.b.granule()
    }
    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: super::Prot) -> Result<(), B::Error> {
        self.b.map(iova, paddr, size, prot)
    }
    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.b.iova_to_phys(iova)
    }
}

impl<B: Invalidate<C>, C> Translation for WithCtx<'_, B, C> {
    type Target = B::Target;
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        attached: &[Option<Attachment<B::Target>>],
    ) -> Result<u64, B::Error> {
        self.b.unmap(self.ctx, iova, size, attached)
    }
}

/// A paging domain usable at PASIDs of any device its backend reaches and as a requester-ID
/// domain, with a reserved MSI window, doorbell bindings and a one-way no-snoop switch.
///
/// The backend is dropped before the policy's tables (field order): a backend whose
/// attachments detach on drop (the kernel's) is detached before its tables tear the doorbells
/// down.
pub struct AuxDomain<B: AuxBackend> {
    backend: B,
    policy: B::Policy,
}

type Res<T, B> = Result<T, Error<<B as Mapper>::Error>>;

impl<B: AuxBackend> AuxDomain<B> {
    /// A domain from a backend and policy tables the backend built (its constructor checked
    /// the MSI window with `AuxPolicy::new`).
    pub(crate) fn from_parts(backend: B, policy: B::Policy) -> Self {
        Self { backend, policy }
    }

    /// The backend and the tables, for a backend's own teardown.
    // Only the host crate's `SmmuBackend` takes a domain apart; the kernel crate, which compiles
    // this file too, tears its backend down in `Drop`, so there the method is unused.
    #[allow(dead_code)]
    pub(crate) fn into_parts(self) -> (B, B::Policy) {
        (self.backend, self.policy)
    }

    /// The backend (read only).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The bookkeeping (read only).
    pub fn policy(&self) -> &AuxPolicy<B::Target> {
        self.policy.borrow()
    }

    fn pol(&mut self) -> &mut AuxPolicy<B::Target> {
        self.policy.borrow_mut()
    }

    /// Reserved regions: the MSI window.
    pub fn reserved_regions(&self) -> [ReservedRegion; 1] {
        self.policy().reserved_regions()
    }

    /// Whether cache coherency is enforced.
    pub fn coherency_enforced(&self) -> bool {
        self.policy().coherency_enforced()
    }

    /// The PASID at which the domain is attached to `dev`, if any (the lowest one if it is
    /// attached at several).
    pub fn pasid_of(&self, dev: impl DeviceId) -> Option<u32> {
        self.policy().pasid_of(dev.id())
    }

    /// Whether the domain is attached at (`dev`, `pasid`) (`None`: as requester-ID domain).
    pub fn is_attached(&self, dev: impl DeviceId, pasid: Option<u32>) -> bool {
        self.policy().is_attached(dev.id(), pasid)
    }

    /// Number of attachments (requester-ID attachments included).
    pub fn attachments(&self) -> usize {
        self.policy().attachments()
    }

    /// Each (device, PASID) attachment (`None`: requester-ID), in slot order.
    pub fn attachment_list(&self) -> impl Iterator<Item = (u32, Option<u32>)> + '_ {
        self.policy().attachment_list()
    }

    // ---------------------------------------------------------------------------------
    // Attachments

    /// Attaches the domain at `pasid` of `dev`. `EOPNOTSUPP` for a device without PASIDs,
    /// `EINVAL` for PASID 0 or one outside the device's range, `EEXIST` if already attached
    /// there, `EINVAL` if coherency is enforced and the device cannot keep it, `ENOSPC` beyond
    /// [`super::MAX_ATTACH`] attachments, `EBUSY` if another domain holds the PASID. While
    /// coherency is enforced, snooping is forced before the attachment goes live.
    pub fn attach<D>(&mut self, mut dev: D, pasid: u32) -> Result<(), B::Failure>
    where
        B: Attach<D>,
    {
        self.attach_at(&mut dev, Some(pasid))
            .map_err(|e| self.backend.fail_at(&dev, "attach at PASID", e))
    }

    /// Makes the domain `dev`'s requester-ID domain (untagged DMA and PCIe MSIs translate
    /// here). `EEXIST` if it already is, `EBUSY` if the device has another one.
    pub fn attach_rid<D>(&mut self, mut dev: D) -> Result<(), B::Failure>
    where
        B: Attach<D>,
    {
        self.attach_at(&mut dev, None).map_err(|e| {
            self.backend
                .fail_at(&dev, "attach as requester-ID domain", e)
        })
    }

    fn attach_at<D>(&mut self, dev: &mut D, pasid: Option<u32>) -> Res<(), B>
    where
        B: Attach<D>,
    {
        let facts = B::facts(dev);
        if let Some(p) = pasid {
            let (min, max) = facts.pasids.ok_or(Error::PasidDisabled)?;
            if p == 0 || p < min || p > max {
                return Err(Error::InvalidPasid);
            }
        }
        let a = Attachment {
            dev: facts.id,
            pasid,
            snoop_control: facts.snoop_control,
            target: self.backend.target(dev),
        };
        self.policy().check_attach(&a)?;
        self.backend.check(dev, pasid)?;
        let enforced = self.coherency_enforced();
        if enforced {
            self.backend.force_snoop(dev, &a, true);
        }
        if let Err(e) = self.backend.attach(dev, &a) {
            if enforced {
                self.backend.force_snoop(dev, &a, false);
            }
            return Err(e);
        }
        self.pol().record_attach(a)
    }

    /// Detaches the domain from `pasid` of `dev`; `ENOENT` if it is not attached there. MSI
    /// sources of the PASID stay bound until deactivated (or the domain is torn down); they no
    /// longer translate.
    pub fn detach<D>(&mut self, mut dev: D, pasid: u32) -> Result<(), B::Failure>
    where
        B: Attach<D>,
    {
        self.detach_at(&mut dev, Some(pasid))
            .map_err(|e| self.backend.fail_at(&dev, "detach", e))
    }

    /// Stops being `dev`'s requester-ID domain; `ENOENT` if it is not.
    pub fn detach_rid<D>(&mut self, mut dev: D) -> Result<(), B::Failure>
    where
        B: Attach<D>,
    {
        self.detach_at(&mut dev, None)
            .map_err(|e| self.backend.fail_at(&dev, "detach requester-ID domain", e))
    }

    fn detach_at<D>(&mut self, dev: &mut D, pasid: Option<u32>) -> Res<(), B>
    where
        B: Attach<D>,
    {
        let id = B::facts(dev).id;
        let a = self
            .policy()
            .attachment(id, pasid)
            .ok_or(Error::NotAttached)?;
        self.backend.detach(dev, &a)?;
        if self.coherency_enforced() {
            self.backend.force_snoop(dev, &a, false);
        }
        self.pol().remove_attach(id, pasid)?;
        Ok(())
    }

    /// VFIO/iommufd `enforce_cache_coherency` ([`AuxPolicy::enforce_cache_coherency`]):
    /// one-way; `EBUSY` after the first mapping, `EINVAL` if an attached device or the backend
    /// cannot block No_snoop.
    pub fn enforce_cache_coherency_in<C>(&mut self, mut ctx: C) -> Result<(), B::Failure>
    where
        B: Coherency<C>,
    {
        let b = &mut self.backend;
        let r = self
            .policy
            .borrow_mut()
            .enforce_cache_coherency(|attached| b.enforce(&mut ctx, attached));
        r.map_err(|e| self.backend.fail("enforce cache coherency", None, e))
    }

    // ---------------------------------------------------------------------------------
    // Mappings

    /// Maps [`iova`, `iova + size`) to `paddr` ([`AuxPolicy::map`]): `EADDRINUSE` if the
    /// range touches the MSI window; the backend's errors otherwise (`EEXIST` over a mapping).
    pub fn map(
        &mut self,
        iova: u64,
        paddr: u64,
        size: u64,
        prot: super::Prot,
    ) -> Result<(), B::Failure> {
        let r = self
            .policy
            .borrow_mut()
            .map(&mut self.backend, iova, paddr, size, prot);
        r.map_err(|e| self.backend.fail("map", None, e))
    }

    /// Unmaps what is mapped in [`iova`, `iova + size`) and invalidates before returning;
    /// returns the bytes unmapped. `EADDRINUSE` for the MSI window, `EBUSY` over a user-placed
    /// doorbell.
    pub fn unmap_in<C>(&mut self, mut ctx: C, iova: u64, size: u64) -> Result<u64, B::Failure>
    where
        B: Invalidate<C>,
    {
        let mut t = WithCtx {
            b: &mut self.backend,
            ctx: &mut ctx,
        };
        let r = self.policy.borrow_mut().unmap(&mut t, iova, size);
        r.map_err(|e| self.backend.fail("unmap", None, e))
    }

    /// Output address of `iova` in this domain.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.backend.iova_to_phys(iova)
    }

    // ---------------------------------------------------------------------------------
    // MSI doorbells

    /// `msi_domain_activate` ([`AuxPolicy::msi_activate`]): binds `doorbell` in the window and
    /// returns the message address the device must be programmed with. `EINVAL` if `src` does
    /// not translate through this domain, `EEXIST` if already active, `ENOSPC` if full.
    pub fn msi_activate(
        &mut self,
        dev: impl DeviceId,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64, B::Failure> {
        let id = dev.id();
        let r = self
            .policy
            .borrow_mut()
            .msi_activate(&mut self.backend, id, src, doorbell);
        r.map_err(|e| self.backend.fail("MSI activate", Some(id), e))
    }

    /// Like [`AuxDomain::msi_activate`] at a user-chosen IOVA (nested case,
    /// [`AuxPolicy::msi_activate_at`]).
    pub fn msi_activate_at(
        &mut self,
        dev: impl DeviceId,
        src: MsiSource,
        doorbell: u64,
        iova: u64,
    ) -> Result<u64, B::Failure> {
        let id = dev.id();
        let r =
            self.policy
                .borrow_mut()
                .msi_activate_at(&mut self.backend, id, src, doorbell, iova);
        r.map_err(|e| self.backend.fail("MSI activate at IOVA", Some(id), e))
    }

    /// `msi_domain_deactivate`: drops the source's doorbell reference (the last one unmaps the
    /// doorbell and invalidates). `ENOENT` if not active.
    pub fn msi_deactivate_in<C>(
        &mut self,
        mut ctx: C,
        dev: impl DeviceId,
        src: MsiSource,
    ) -> Result<(), B::Failure>
    where
        B: Invalidate<C>,
    {
        let id = dev.id();
        let mut t = WithCtx {
            b: &mut self.backend,
            ctx: &mut ctx,
        };
        let r = self.policy.borrow_mut().msi_deactivate(&mut t, id, src);
        r.map_err(|e| self.backend.fail("MSI deactivate", Some(id), e))
    }

    /// `irq_set_affinity` moved the source to `doorbell` ([`AuxPolicy::msi_set_affinity`]:
    /// the new one is bound before the old one is put). Returns the new message address.
    pub fn msi_set_affinity_in<C>(
        &mut self,
        mut ctx: C,
        dev: impl DeviceId,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64, B::Failure>
    where
        B: Invalidate<C>,
    {
        let id = dev.id();
        let mut t = WithCtx {
            b: &mut self.backend,
            ctx: &mut ctx,
        };
        let r = self
            .policy
            .borrow_mut()
            .msi_set_affinity(&mut t, id, src, doorbell);
        r.map_err(|e| self.backend.fail("MSI affinity change", Some(id), e))
    }

    // ---------------------------------------------------------------------------------
    // Backends that need no context from the caller (the kernel's IOMMU API: the IOMMU
    // driver invalidates by itself). The `_in` forms above take the context another backend
    // needs (the host's SMMUv3 core: `&mut Smmu`).

    /// [`unmap_in`](Self::unmap_in) for a backend without a context.
    pub fn unmap(&mut self, iova: u64, size: u64) -> Result<u64, B::Failure>
    where
        B: Invalidate<()>,
    {
        self.unmap_in((), iova, size)
    }

    /// [`msi_deactivate_in`](Self::msi_deactivate_in) for a backend without a context.
    pub fn msi_deactivate(&mut self, dev: impl DeviceId, src: MsiSource) -> Result<(), B::Failure>
    where
        B: Invalidate<()>,
    {
        self.msi_deactivate_in((), dev, src)
    }

    /// [`msi_set_affinity_in`](Self::msi_set_affinity_in) for a backend without a context.
    pub fn msi_set_affinity(
        &mut self,
        dev: impl DeviceId,
        src: MsiSource,
        doorbell: u64,
    ) -> Result<u64, B::Failure>
    where
        B: Invalidate<()>,
    {
        self.msi_set_affinity_in((), dev, src, doorbell)
    }

    /// [`enforce_cache_coherency_in`](Self::enforce_cache_coherency_in) for a backend without a
    /// context.
    pub fn enforce_cache_coherency(&mut self) -> Result<(), B::Failure>
    where
        B: Coherency<()>,
    {
        self.enforce_cache_coherency_in(())
    }

    /// The message address of an active source.
    pub fn msi_msg_addr(&self, dev: impl DeviceId, src: MsiSource) -> Option<u64> {
        self.policy().msi_msg_addr(dev.id(), src)
    }

    /// References held on the doorbell page containing `doorbell` (all its bindings).
    pub fn doorbell_refs(&self, doorbell: u64) -> u32 {
        self.policy().doorbell_refs(doorbell)
    }

    /// Every doorbell binding.
    pub fn doorbells(&self) -> impl Iterator<Item = DoorbellInfo> + '_ {
        self.policy().doorbells()
    }

    /// Active MSI sources.
    pub fn active_vectors(&self) -> usize {
        self.policy().active_vectors()
    }

    /// Tears the MSI state down before the domain is freed ([`AuxPolicy::teardown`]: `EBUSY`
    /// while attached; bindings left are released through [`AuxBackend::release`]).
    pub fn release_doorbells(&mut self) -> Result<Teardown, Error<B::Error>> {
        let b = &mut self.backend;
        self.policy
            .borrow_mut()
            .teardown(|iova, size| b.release(iova, size))
    }
}
