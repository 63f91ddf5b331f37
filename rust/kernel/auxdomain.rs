// SPDX-License-Identifier: GPL-2.0

//! Auxiliary domains over the kernel's IOMMU API: an I/O address space attached to a device at
//! a PASID, with its own MSI doorbell window and no-snoop policy.
//!
//! The decisions are the portable policy's (`drivers/auxdomain/src/auxdomain/policy/` in the
//! project, compiled here from the very same files as the host tests, see
//! `docs/portable-code.md` and `docs/auxdomain.md`): attachments and their errors, the reserved
//! MSI window, refcounted doorbell bindings keyed by doorbell page, routing of requester-ID and
//! PASID-tagged messages, the one-way coherency switch. This module plugs in the IOMMU API of
//! Linux 6.12:
//!
//! - [`AuxDevice::enable`] combines the device's PCIe PASID capability (`pci_max_pasids`) with
//!   what the IOMMU offers it (`dev->iommu->max_pasids`) and refuses with `EOPNOTSUPP` and a
//!   message when either is missing. 6.12's `iommu_attach_device_pasid` returns success for a
//!   device with no PASIDs without programming anything; this layer never gets that far.
//! - [`AuxDomain`] is the policy's one `AuxDomain` over [`IommuBackend`], an [`iommu::Domain`]
//!   (`iommu_paging_domain_alloc`): not tied to the device
//!   it was allocated for, attachable at PASIDs of any device behind the same IOMMU
//!   (`iommu_attach_device_pasid`) and as a device's requester-ID domain. Its MSI window gets
//!   the kernel's MSI cookie (`iommu_get_msi_cookie`), so requester-ID MSIs of a device whose
//!   RID it translates are mapped by the MSI layer; PASID-tagged queue messages, which the MSI
//!   layer knows nothing about, are bound by [`AuxDomain::msi_activate`] in free pages of the
//!   same window.
//! - The page table is the IOMMU driver's; this module checks ranges before calling it (the
//!   Arm io-pgtable WARNs on mapping over a mapping, unmapping a hole, or an IOVA beyond the
//!   aperture) and `iommu_unmap` completes the IOTLB and ATC invalidations before returning.
//!
//! Calls that take a context on the host's SMMUv3 backend (`unmap_in`, `msi_deactivate_in`,
//! `msi_set_affinity_in`, `enforce_cache_coherency_in`) have forms without it here (`unmap`,
//! `msi_deactivate`, ...): the IOMMU driver needs nothing from the caller.
//! Callers serialise calls on one [`AuxDomain`] (`&mut self`), e.g. under their own lock.
//!
//! # Examples
//!
//! ```ignore
//! let adev = AuxDevice::enable(pdev, 1, (1 << 20) - 1)?;   // EOPNOTSUPP under QEMU
//! let mut dom = AuxDomain::new(adev.device(), MsiWindow::default())?;
//! dom.attach(&adev, pasid)?;
//! dom.map(0x10_0000, phys, 4096, Prot::READ | Prot::WRITE)?;
//! let addr = dom.msi_activate(&adev, MsiSource::Queue { pasid, queue: 0 }, doorbell)?;
//! dom.unmap(0x10_0000, 4096)?;
//! ```

// The portable policy (`drivers/auxdomain/src/auxdomain/policy/` in the project); its own
// module documentation describes it.
#[path = "portable/auxpolicy/mod.rs"]
pub mod policy;

use crate::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    device::Device,
    error::{code::*, Error, Result},
    iommu::{self, Capability, Domain},
    pci,
    sync::Arc,
    types::ARef,
};
use core::borrow::{Borrow, BorrowMut};
use policy::{
    usable_pasid_range, Attach, Attachment, AuxBackend, AuxPolicy, Coherency, DeviceFacts,
    DeviceId, Invalidate, Mapper, PasidLimits,
};

/// The one `Prot` (`kernel::iommu::Prot`), also the policy's: the portable policy refers to it
/// as `super::Prot`, which each code including it provides.
pub use crate::iommu::Prot;
pub use policy::{
    DoorbellInfo, MsiSource, MsiWindow, ReservedKind, ReservedRegion, Teardown, Unsupported,
    MAX_ATTACH, SW_MSI_BASE, SW_MSI_SIZE,
};

/// The policy's errors with a kernel [`Error`] from the IOMMU API as backend error.
pub type AuxError = policy::Error<Error>;

impl policy::BackendError for Error {
    fn errno(&self) -> i32 {
        -self.to_errno()
    }

    fn describe(&self) -> &'static str {
        match *self {
            e if e == EINVAL => "IOMMU: empty or misaligned range",
            e if e == ERANGE => "IOMMU: range beyond the domain's aperture",
            e if e == EEXIST => "IOMMU: range already mapped",
            e if e == EBUSY => "IOMMU: device attached to another domain",
            e if e == ENOMEM => "IOMMU: out of memory",
            _ => "IOMMU API call failed",
        }
    }
}

/// Logs `e` (what failed, why, the errno) and returns it as a kernel error.
fn report(dev: Option<&Device>, what: &str, e: AuxError) -> Error {
    match dev {
        Some(d) => crate::dev_err!(d, "aux domain: {}: {} (errno {})\n", what, e.describe(), e.errno()),
        None => crate::pr_err!("aux domain: {}: {} (errno {})\n", what, e.describe(), e.errno()),
    }
    to_error(e)
}

/// The kernel error of `e`: the IOMMU API's own, or the policy's errno.
fn to_error(e: AuxError) -> Error {
    match e {
        policy::Error::Backend(k) => k,
        other => Error::from_errno(-other.errno()),
    }
}

/// Bits of a power-of-two count of PASIDs (`None` for no PASIDs at all).
fn pasid_bits(count: u32) -> Option<u32> {
    if count == 0 {
        None
    } else {
        Some(count.ilog2())
    }
}

/// A PCI function whose PASIDs can take auxiliary domains.
///
/// # Invariants
///
/// `pasids`, if any, is a non-empty `[min, max]` starting at 1 or above and within both the
/// device's and its IOMMU's PASID widths.
pub struct AuxDevice {
    dev: ARef<Device>,
    id: u32,
    /// `None`: PASIDs are not enabled ([`AuxDevice::requester_id_only`]).
    pasids: Option<(u32, u32)>,
    snoop_control: bool,
}

impl AuxDevice {
    /// Checks that `pdev` and its IOMMU support PASIDs and computes the usable range
    /// `[max(min_pasid, 1), min(max_pasid, 2^bits - 1)]`. `EOPNOTSUPP` with a message naming
    /// the missing half when the device has no PASID capability or the IOMMU offers it no
    /// PASIDs (QEMU: edu has no PASID capability, the SMMUv3 no SubstreamIDs); `EINVAL` for an
    /// empty range. (The IOMMU driver enables the device's PASID capability at its probe.)
    pub fn enable(pdev: &pci::Device, min_pasid: u32, max_pasid: u32) -> Result<Self> {
        let dev: &Device = pdev.as_ref();
        let dev_pasids = pdev.max_pasids().unwrap_or(0);
        let iommu_pasids = iommu::max_pasids(dev);
        let limits = PasidLimits {
            device_bits: pasid_bits(dev_pasids),
            iommu_bits: pasid_bits(iommu_pasids).unwrap_or(0),
            min_pasid,
            max_pasid,
        };
        match usable_pasid_range::<Error>(&limits) {
            Ok((_, min, max)) => Ok(Self::new(pdev, Some((min, max)))),
            Err(e) => {
                crate::dev_err!(
                    dev,
                    "aux domain: PASIDs unusable: {} (device PASIDs {}, IOMMU PASIDs {}, wanted {}..={})\n",
                    e.describe(),
                    dev_pasids,
                    iommu_pasids,
                    min_pasid,
                    max_pasid
                );
                Err(Error::from_errno(-e.errno()))
            }
        }
    }

    /// The device without PASIDs: domains can be its requester-ID domain only (attaching at a
    /// PASID is `EOPNOTSUPP`). What a parent uses on a platform without PASID support.
    pub fn requester_id_only(pdev: &pci::Device) -> Self {
        Self::new(pdev, None)
    }

    fn new(pdev: &pci::Device, pasids: Option<(u32, u32)>) -> Self {
        let dev: &Device = pdev.as_ref();
        Self {
            dev: dev.into(),
            id: u32::from(pdev.requester_id()),
            pasids,
            snoop_control: iommu::device_iommu_capable(dev, Capability::EnforceCacheCoherency),
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The doorbell (physical address) and data of the device's MSI/MSI-X vector `vector`, as
    /// the kernel programmed them: what a PASID-tagged interrupt message of this device must
    /// write to raise that vector's interrupt (GICv3's ITS tells the device by its requester
    /// ID, which the tagged write carries too). Bind the doorbell in the aux domain with
    /// [`AuxDomain::msi_activate`] and program the address it returns with this data. The
    /// kernel's message address is an IOVA of the device's DMA domain (dma-iommu maps the
    /// doorbell there): it is resolved through that domain. `ENXIO` for a vector that is not
    /// MSI/MSI-X, `ENOENT` when the message address translates to nothing.
    pub fn msi_doorbell(&self, vector: u32) -> Result<(u64, u32)> {
        let pdev = pci::Device::from_device(&self.dev).ok_or(ENODEV)?;
        let (addr, data) = pdev.msi_message(vector).inspect_err(|e| {
            crate::dev_err!(&*self.dev, "aux domain: no MSI message for vector {}: {:?}\n", vector, e);
        })?;
        let doorbell = iommu::device_iova_to_phys(&self.dev, addr).ok_or_else(|| {
            crate::dev_err!(&*self.dev, "aux domain: MSI address {:#x} maps no doorbell\n", addr);
            ENOENT
        })?;
        Ok((doorbell, data))
    }

    /// The usable PASID range (inclusive); `None` without PASIDs.
    pub fn pasid_range(&self) -> Option<(u32, u32)> {
        self.pasids
    }

    /// Whether the IOMMU can block No_snoop for this device
    /// (`IOMMU_CAP_ENFORCE_CACHE_COHERENCY`).
    pub fn snoop_control(&self) -> bool {
        self.snoop_control
    }

    /// The key of this device in a domain's attachments: its requester ID.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl DeviceId for &AuxDevice {
    fn id(&self) -> u32 {
        self.id
    }
}

/// What keeps one attachment in place: dropping it detaches.
// The attachments are held for their `Drop` only.
#[allow(dead_code)]
enum Link {
    Pasid(iommu::PasidAttachment),
    Rid(iommu::Attachment),
}

/// The IOMMU API as the backend of an [`AuxDomain`]: a paging domain and the handles of its
/// attachments. `iommu_map`/`iommu_unmap` are only called on ranges known to be inside the
/// aperture and wholly unmapped (map) or only over mapped runs (unmap): the Arm io-pgtable
/// WARNs otherwise, and a user can reach these paths.
///
/// # Invariants
///
/// `links` has [`MAX_ATTACH`] entries and holds exactly the attachments the domain's policy
/// records, under the same (device, PASID) keys.
pub struct IommuBackend {
    /// Declared first: dropped (detached) before the domain reference.
    links: KVec<Option<(u32, Option<u32>, Link)>>,
    domain: Arc<Domain>,
}

/// The policy's tables, on the heap so that an [`AuxDomain`] is a few words: it is returned by
/// value and kept in drivers' arrays, and copies of kilobytes on a 16 KiB kernel stack overflow
/// it (a test module with aux domains in locals did). Dropped after the backend (so after every
/// attachment is gone): unbinds the doorbells a user forgot, then frees the domain (last
/// reference).
pub struct Tables {
    policy: KBox<AuxPolicy<()>>,
    domain: Arc<Domain>,
}

/// A paging domain usable at PASIDs of any device behind its IOMMU and as a requester-ID
/// domain, with an MSI window and a no-snoop switch: the policy's one `AuxDomain` over the
/// IOMMU API. Detaches everything and unbinds every doorbell left when dropped.
pub type AuxDomain = policy::AuxDomain<IommuBackend>;

// The promise above, checked at build time: six words, whatever the policy's table sizes.
const _: () = assert!(core::mem::size_of::<AuxDomain>() <= 6 * core::mem::size_of::<usize>());

impl Borrow<AuxPolicy<()>> for Tables {
    fn borrow(&self) -> &AuxPolicy<()> {
        &self.policy
    }
}

impl BorrowMut<AuxPolicy<()>> for Tables {
    fn borrow_mut(&mut self) -> &mut AuxPolicy<()> {
        &mut self.policy
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        // The backend was dropped first (field order of `AuxDomain`): nothing is attached.
        loop {
            let next = self.policy.attachment_list().next();
            let Some((dev, pasid)) = next else { break };
            let _ = self.policy.remove_attach::<Error>(dev, pasid);
        }
        let domain = &self.domain;
        let t = self.policy.teardown(|iova, size| {
            let len = usize::try_from(size).map_err(|_| ERANGE)?;
            domain.unmap(iova, len);
            Ok(())
        });
        match t {
            Ok(t) if t.doorbells != 0 || t.vectors != 0 => crate::pr_info!(
                "aux domain: freed with {} doorbell bindings and {} MSI sources still active\n",
                t.doorbells,
                t.vectors
            ),
            Ok(_) => {}
            Err(e) => {
                report(None, "teardown", e);
            }
        }
    }
}

impl IommuBackend {
    /// `EINVAL` for an empty or misaligned range, `ERANGE` beyond the aperture.
    fn check_range(&self, iova: u64, size: u64) -> Result<usize> {
        let mask = self.granule() - 1;
        if size == 0 || (iova | size) & mask != 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(size - 1).ok_or(ERANGE)?;
        if last > self.domain.aperture_end() {
            return Err(ERANGE);
        }
        usize::try_from(size).map_err(|_| ERANGE)
    }

    fn pages(&self, iova: u64, size: u64) -> impl Iterator<Item = u64> {
        let g = self.granule();
        (0..size / g).map(move |i| iova + i * g)
    }
}

impl Mapper for IommuBackend {
    type Error = Error;

    /// The smallest page size of the domain.
    fn granule(&self) -> u64 {
        1u64 << self.domain.pgsize_bitmap().trailing_zeros().min(63)
    }

    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result {
        let len = self.check_range(iova, size)?;
        if paddr & (self.granule() - 1) != 0 {
            return Err(EINVAL);
        }
        if self.pages(iova, size).any(|p| self.domain.iova_to_phys(p).is_some()) {
            return Err(EEXIST);
        }
        self.domain.map(iova, paddr, len, prot, GFP_KERNEL)
    }

    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.domain.iova_to_phys(iova)
    }
}

impl AuxBackend for IommuBackend {
    type Target = ();
    type Policy = Tables;
    type Failure = Error;

    fn fail(&self, what: &'static str, dev: Option<u32>, e: AuxError) -> Error {
        match dev {
            Some(id) => {
                crate::pr_err!("aux domain: {} (requester ID {:#06x}): {} (errno {})\n", what, id, e.describe(), e.errno());
                to_error(e)
            }
            None => report(None, what, e),
        }
    }

    /// Unmaps a doorbell page of a domain attached nowhere.
    fn release(&mut self, iova: u64, size: u64) -> Result {
        let len = usize::try_from(size).map_err(|_| ERANGE)?;
        self.domain.unmap(iova, len);
        Ok(())
    }
}

impl Invalidate<()> for IommuBackend {
    /// Unmaps the mapped runs of the range; `iommu_unmap` invalidates the IOTLB and the ATCs
    /// of every attached device before it returns.
    fn unmap(&mut self, _: &mut (), iova: u64, size: u64, _: &[Option<Attachment<()>>]) -> Result<u64> {
        self.check_range(iova, size)?;
        let g = self.granule();
        let mut done = 0u64;
        let mut run: Option<(u64, u64)> = None;
        let flush = |run: (u64, u64)| -> Result<u64> {
            let len = usize::try_from(run.1).map_err(|_| ERANGE)?;
            Ok(self.domain.unmap(run.0, len) as u64)
        };
        for p in self.pages(iova, size) {
            let mapped = self.domain.iova_to_phys(p).is_some();
            run = match (run, mapped) {
                (Some((s, l)), true) => Some((s, l + g)),
                (None, true) => Some((p, g)),
                (Some(r), false) => {
                    done += flush(r)?;
                    None
                }
                (None, false) => None,
            };
        }
        if let Some(r) = run {
            done += flush(r)?;
        }
        Ok(done)
    }
}

impl Coherency<()> for IommuBackend {
    /// `ops->enforce_cache_coherency` (arm-smmu-v3 in 6.12 has none: `EINVAL`).
    fn enforce(&mut self, _: &mut (), _: &[Option<Attachment<()>>]) -> core::result::Result<(), AuxError> {
        if self.domain.enforce_cache_coherency() {
            Ok(())
        } else {
            Err(AuxError::CoherencyUnsupported)
        }
    }
}

impl Attach<&AuxDevice> for IommuBackend {
    fn facts(dev: &&AuxDevice) -> DeviceFacts {
        DeviceFacts {
            id: dev.id,
            pasids: dev.pasids,
            snoop_control: dev.snoop_control,
        }
    }

    fn target(&self, _: &&AuxDevice) {}

    /// The IOMMU core refuses a busy PASID or group itself (`EBUSY` from the attach).
    fn check(&self, _: &&AuxDevice, _: Option<u32>) -> core::result::Result<(), AuxError> {
        Ok(())
    }

    /// `iommu_attach_device_pasid` (`EBUSY`: another domain holds the PASID) or
    /// `iommu_attach_device` (`EBUSY`: the group has another non-default domain).
    fn attach(&mut self, dev: &mut &AuxDevice, a: &Attachment<()>) -> core::result::Result<(), AuxError> {
        let link = match a.pasid {
            Some(p) => self.domain.attach_device_pasid(&dev.dev, p).map(Link::Pasid).map_err(|e| {
                if e == EBUSY {
                    AuxError::PasidInUse
                } else {
                    AuxError::Backend(e)
                }
            })?,
            None => self.domain.attach_device(&dev.dev).map(Link::Rid).map_err(AuxError::Backend)?,
        };
        // The policy saw a free slot, so `links` has one too (invariant).
        let slot = self.links.iter_mut().find(|l| l.is_none()).ok_or(AuxError::NoSpace)?;
        *slot = Some((a.dev, a.pasid, link));
        Ok(())
    }

    /// Drops the attachment's handle (`iommu_detach_device[_pasid]`).
    fn detach(&mut self, _: &mut &AuxDevice, a: &Attachment<()>) -> core::result::Result<(), AuxError> {
        for l in self.links.iter_mut() {
            if matches!(l, Some((d, p, _)) if *d == a.dev && *p == a.pasid) {
                *l = None;
            }
        }
        Ok(())
    }

    /// Nothing per attachment: `enforce_cache_coherency` covers the whole domain.
    fn force_snoop(&mut self, _: &mut &AuxDevice, _: &Attachment<()>, _: bool) {}

    fn fail_at(&self, dev: &&AuxDevice, what: &'static str, e: AuxError) -> Error {
        report(Some(dev.device()), what, e)
    }
}

impl policy::AuxDomain<IommuBackend> {
    /// A new paging domain from the IOMMU of `dev` (the domain is not tied to `dev`), with the
    /// MSI window `window` (granule-aligned, inside the aperture: `EINVAL` otherwise) and the
    /// kernel's MSI cookie at the window base.
    pub fn new(dev: &Device, window: MsiWindow) -> Result<Self> {
        let domain = Domain::new_paging(dev).inspect_err(|e| {
            crate::dev_err!(dev, "aux domain: no paging domain: {:?}\n", e);
        })?;
        let mut links = KVec::with_capacity(MAX_ATTACH, GFP_KERNEL)?;
        for _ in 0..MAX_ATTACH {
            links.push(None, GFP_KERNEL)?;
        }
        let backend = IommuBackend {
            links,
            domain: domain.clone(),
        };
        let ias = 64 - domain.aperture_end().leading_zeros();
        // Built in place in its box: on the stack the tables would cost KiBs of frame.
        let mut policy = KBox::<AuxPolicy<()>>::new_uninit(GFP_KERNEL)?;
        AuxPolicy::new_in::<Error>(&mut policy, window, backend.granule(), ias)
            .map_err(|e| report(Some(dev), "MSI window does not fit the domain", e))?;
        // The one `unsafe` of this glue, kept on purpose: the tables must be built in place (on
        // the stack they would cost KiBs of frame), and the portable policy, built on the host
        // too, has neither an allocator nor pin-init, so it initialises a `MaybeUninit` slot
        // (`new_in`) and only the box's owner can turn `KBox<MaybeUninit<_>>` into `KBox<_>`.
        // SAFETY: `new_in` returned `Ok`, so it initialised the box.
        let policy = unsafe { policy.assume_init() };
        domain.get_msi_cookie(window.base).inspect_err(|e| {
            crate::dev_err!(dev, "aux domain: MSI cookie at {:#x}: {:?}\n", window.base, e);
        })?;
        Ok(Self::from_parts(backend, Tables { policy, domain }))
    }

    /// The IOMMU domain (e.g. for `iommu_domain`-level C APIs).
    pub fn domain(&self) -> &Arc<Domain> {
        &self.backend().domain
    }

    /// The smallest page size of the domain.
    pub fn granule(&self) -> u64 {
        self.backend().granule()
    }
}
