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
//! - [`AuxDomain`] is an [`iommu::Domain`] (`iommu_paging_domain_alloc`): not tied to the device
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
//! ```

// The portable policy (`drivers/auxdomain/src/auxdomain/policy/` in the project); its own
// module documentation describes it.
#[path = "portable/auxpolicy/mod.rs"]
#[allow(missing_docs, unreachable_pub, unused_imports, dead_code, clippy::all)]
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
use policy::{usable_pasid_range, Attachment, AuxPolicy, Mapper, PasidLimits, Translation};

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

/// The IOMMU API as the policy's backend. `iommu_map`/`iommu_unmap` are only called on ranges
/// known to be inside the aperture and wholly unmapped (map) or only over mapped runs (unmap):
/// the Arm io-pgtable WARNs otherwise, and a user can reach these paths.
struct IommuBackend<'a> {
    domain: &'a Domain,
    granule: u64,
}

impl<'a> IommuBackend<'a> {
    fn new(domain: &'a Domain, granule: u64) -> Self {
        Self { domain, granule }
    }

    /// `EINVAL` for an empty or misaligned range, `ERANGE` beyond the aperture.
    fn check_range(&self, iova: u64, size: u64) -> Result<usize> {
        let mask = self.granule - 1;
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
        let g = self.granule;
        (0..size / g).map(move |i| iova + i * g)
    }
}

impl Mapper for IommuBackend<'_> {
    type Error = Error;

    fn granule(&self) -> u64 {
        self.granule
    }

    fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result {
        let len = self.check_range(iova, size)?;
        if paddr & (self.granule - 1) != 0 {
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

impl Translation for IommuBackend<'_> {
    type Target = ();

    /// Unmaps the mapped runs of the range; `iommu_unmap` invalidates the IOTLB and the ATCs
    /// of every attached device before it returns.
    fn unmap(&mut self, iova: u64, size: u64, _attached: &[Option<Attachment<()>>]) -> Result<u64> {
        self.check_range(iova, size)?;
        let g = self.granule;
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

/// What keeps one attachment in place: dropping it detaches.
// The attachments are held for their `Drop` only.
#[allow(dead_code)]
enum Link {
    Pasid(iommu::PasidAttachment),
    Rid(iommu::Attachment),
}

/// A paging domain usable at PASIDs of any device behind its IOMMU and as a requester-ID
/// domain, with an MSI window and a no-snoop switch. Detaches everything and unbinds every
/// doorbell left when dropped.
///
/// # Invariants
///
/// `links` has [`MAX_ATTACH`] entries and holds exactly the attachments `policy` records,
/// under the same (device, PASID) keys; `policy.granule` is the smallest page size of `domain`.
pub struct AuxDomain {
    domain: Arc<Domain>,
    /// The policy's tables (a few KiB) and the links are on the heap so that an `AuxDomain` is a
    /// few words: it is returned by value and kept in drivers' arrays, and copies of kilobytes
    /// on a 16 KiB kernel stack overflow it (a test module with aux domains in locals did).
    policy: KBox<AuxPolicy<()>>,
    granule: u64,
    links: KVec<Option<(u32, Option<u32>, Link)>>,
}

// The promise above, checked at build time: six words, whatever the policy's table sizes.
const _: () = assert!(core::mem::size_of::<AuxDomain>() <= 6 * core::mem::size_of::<usize>());

impl AuxDomain {
    /// A new paging domain from the IOMMU of `dev` (the domain is not tied to `dev`), with the
    /// MSI window `window` (granule-aligned, inside the aperture: `EINVAL` otherwise) and the
    /// kernel's MSI cookie at the window base.
    pub fn new(dev: &Device, window: MsiWindow) -> Result<Self> {
        let domain = Domain::new_paging(dev).inspect_err(|e| {
            crate::dev_err!(dev, "aux domain: no paging domain: {:?}\n", e);
        })?;
        let granule = 1u64 << domain.pgsize_bitmap().trailing_zeros().min(63);
        let ias = 64 - domain.aperture_end().leading_zeros();
        // Built in place in its box: on the stack the tables would cost KiBs of frame.
        let mut policy = KBox::<AuxPolicy<()>>::new_uninit(GFP_KERNEL)?;
        AuxPolicy::new_in::<Error>(&mut policy, window, granule, ias)
            .map_err(|e| report(Some(dev), "MSI window does not fit the domain", e))?;
        // SAFETY: `new_in` returned `Ok`, so it initialised the box.
        let policy = unsafe { policy.assume_init() };
        let mut links = KVec::with_capacity(MAX_ATTACH, GFP_KERNEL)?;
        for _ in 0..MAX_ATTACH {
            links.push(None, GFP_KERNEL)?;
        }
        domain.get_msi_cookie(window.base).inspect_err(|e| {
            crate::dev_err!(dev, "aux domain: MSI cookie at {:#x}: {:?}\n", window.base, e);
        })?;
        Ok(Self {
            domain,
            policy,
            granule,
            links,
        })
    }

    /// The IOMMU domain (e.g. for `iommu_domain`-level C APIs).
    pub fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }

    /// The smallest page size of the domain.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// The reserved regions this domain adds: the MSI window.
    pub fn reserved_regions(&self) -> [ReservedRegion; 1] {
        self.policy.reserved_regions()
    }

    /// The PASID at which the domain is attached to `dev`, if any.
    pub fn pasid_of(&self, dev: &AuxDevice) -> Option<u32> {
        self.policy.pasid_of(dev.id)
    }

    /// Number of attachments (requester-ID attachments included).
    pub fn attachments(&self) -> usize {
        self.policy.attachments()
    }

    fn record(dev: &AuxDevice, pasid: Option<u32>) -> Attachment<()> {
        Attachment {
            dev: dev.id,
            pasid,
            snoop_control: dev.snoop_control,
            target: (),
        }
    }

    fn keep(&mut self, dev: u32, pasid: Option<u32>, link: Link) -> Result {
        let slot = self.links.iter_mut().find(|l| l.is_none()).ok_or(ENOSPC)?;
        *slot = Some((dev, pasid, link));
        Ok(())
    }

    fn attach_with(
        &mut self,
        dev: &AuxDevice,
        pasid: Option<u32>,
        link: impl FnOnce(&Arc<Domain>) -> Result<Link>,
    ) -> core::result::Result<(), AuxError> {
        let a = Self::record(dev, pasid);
        self.policy.check_attach::<Error>(&a)?;
        let l = link(&self.domain).map_err(|e| match pasid {
            Some(_) if e == EBUSY => AuxError::PasidInUse,
            _ => AuxError::Backend(e),
        })?;
        // `check_attach` saw a free slot in the policy, so `links` has one too (invariant).
        self.keep(dev.id, pasid, l).map_err(AuxError::Backend)?;
        self.policy.record_attach(a)
    }

    /// Attaches the domain at `pasid` of `dev` (`iommu_attach_device_pasid`). `EOPNOTSUPP`
    /// for a device without PASIDs, `EINVAL` for a PASID outside the device's range (PASID 0
    /// included) or a device that cannot keep coherency while it is enforced, `EEXIST` if
    /// already attached there, `EBUSY` if another domain holds the PASID, `ENOSPC` beyond
    /// [`MAX_ATTACH`] attachments.
    pub fn attach(&mut self, dev: &AuxDevice, pasid: u32) -> Result {
        let r = match dev.pasids {
            None => Err(AuxError::PasidDisabled),
            Some((min, max)) if pasid < min || pasid > max => Err(AuxError::InvalidPasid),
            Some(_) => self.attach_with(dev, Some(pasid), |d| {
                d.attach_device_pasid(&dev.dev, pasid).map(Link::Pasid)
            }),
        };
        r.map_err(|e| report(Some(dev.device()), "attach at PASID", e))
    }

    /// Makes the domain `dev`'s requester-ID domain (`iommu_attach_device`: untagged DMA and
    /// PCIe MSIs translate here; the MSI cookie maps the doorbells of MSIs allocated while
    /// attached). `EBUSY` if the device's group is attached to another non-default domain.
    pub fn attach_rid(&mut self, dev: &AuxDevice) -> Result {
        self.attach_with(dev, None, |d| d.attach_device(&dev.dev).map(Link::Rid))
            .map_err(|e| report(Some(dev.device()), "attach as requester-ID domain", e))
    }

    fn detach_key(&mut self, dev: &AuxDevice, pasid: Option<u32>) -> Result {
        let r = self.policy.remove_attach::<Error>(dev.id, pasid).map(|_| {
            for l in self.links.iter_mut() {
                if matches!(l, Some((d, p, _)) if *d == dev.id && *p == pasid) {
                    // Dropping the link detaches (`iommu_detach_device[_pasid]`).
                    *l = None;
                }
            }
        });
        r.map_err(|e| report(Some(dev.device()), "detach", e))
    }

    /// Detaches the domain from `pasid` of `dev`; `ENOENT` if it is not attached there. MSI
    /// sources of the PASID stay bound until deactivated (or the domain is dropped).
    pub fn detach(&mut self, dev: &AuxDevice, pasid: u32) -> Result {
        self.detach_key(dev, Some(pasid))
    }

    /// Stops being `dev`'s requester-ID domain (the group returns to its default domain).
    pub fn detach_rid(&mut self, dev: &AuxDevice) -> Result {
        self.detach_key(dev, None)
    }

    /// VFIO/iommufd `enforce_cache_coherency`: one-way; `EBUSY` after the first mapping,
    /// `EINVAL` if an attached device, or the IOMMU driver itself, cannot block No_snoop
    /// (arm-smmu-v3 in 6.12 cannot: the call is refused there, with a message).
    pub fn enforce_cache_coherency(&mut self) -> Result {
        let domain = &self.domain;
        self.policy
            .enforce_cache_coherency::<Error>(|_| {
                if domain.enforce_cache_coherency() {
                    Ok(())
                } else {
                    Err(AuxError::CoherencyUnsupported)
                }
            })
            .map_err(|e| report(None, "enforce cache coherency", e))
    }

    /// Maps [`iova`, `iova + size`) to `paddr`. `EADDRINUSE` if the range touches the MSI
    /// window, `EINVAL` if empty or not granule-aligned, `ERANGE` beyond the aperture,
    /// `EEXIST` over an existing mapping.
    pub fn map(&mut self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result {
        let mut b = IommuBackend::new(&self.domain, self.granule);
        self.policy
            .map(&mut b, iova, paddr, size, prot)
            .map_err(|e| report(None, "map", e))
    }

    /// Unmaps what is mapped in [`iova`, `iova + size`) and returns the bytes unmapped; the
    /// IOTLB and device ATCs are invalidated before it returns. `EADDRINUSE` for the MSI
    /// window, `EBUSY` over a user-placed doorbell.
    pub fn unmap(&mut self, iova: u64, size: u64) -> Result<u64> {
        let mut b = IommuBackend::new(&self.domain, self.granule);
        self.policy
            .unmap(&mut b, iova, size)
            .map_err(|e| report(None, "unmap", e))
    }

    /// Output address of `iova`.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.domain.iova_to_phys(iova)
    }

    /// Binds `doorbell` for an MSI source of `dev` and returns the message address to program:
    /// requester-ID vectors need this domain to be `dev`'s requester-ID domain, queue messages
    /// its attachment at that PASID (`EINVAL` otherwise). Bindings are refcounted per doorbell
    /// page; the page is taken from the window pages nobody (the MSI cookie included) maps.
    pub fn msi_activate(&mut self, dev: &AuxDevice, src: MsiSource, doorbell: u64) -> Result<u64> {
        let mut b = IommuBackend::new(&self.domain, self.granule);
        let r = self.policy.msi_activate(&mut b, dev.id, src, doorbell);
        r.map_err(|e| report(Some(dev.device()), "MSI activate", e))
    }

    /// Like [`AuxDomain::msi_activate`] at a user-chosen IOVA (nested case).
    pub fn msi_activate_at(
        &mut self,
        dev: &AuxDevice,
        src: MsiSource,
        doorbell: u64,
        iova: u64,
    ) -> Result<u64> {
        let mut b = IommuBackend::new(&self.domain, self.granule);
        let r = self.policy.msi_activate_at(&mut b, dev.id, src, doorbell, iova);
        r.map_err(|e| report(Some(dev.device()), "MSI activate at IOVA", e))
    }

    /// Drops the source's doorbell reference; the last one unmaps the doorbell.
    pub fn msi_deactivate(&mut self, dev: &AuxDevice, src: MsiSource) -> Result {
        let mut b = IommuBackend::new(&self.domain, self.granule);
        let r = self.policy.msi_deactivate(&mut b, dev.id, src);
        r.map_err(|e| report(Some(dev.device()), "MSI deactivate", e))
    }

    /// The source moved to `doorbell` (affinity change): the new doorbell is bound before the
    /// old one is put. Returns the new message address.
    pub fn msi_set_affinity(&mut self, dev: &AuxDevice, src: MsiSource, doorbell: u64) -> Result<u64> {
        let mut b = IommuBackend::new(&self.domain, self.granule);
        let r = self.policy.msi_set_affinity(&mut b, dev.id, src, doorbell);
        r.map_err(|e| report(Some(dev.device()), "MSI affinity change", e))
    }

    /// References held on the doorbell page containing `doorbell`.
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
}

impl Drop for AuxDomain {
    fn drop(&mut self) {
        // Detach everything first (dropping the links), then unbind the doorbells a user forgot.
        for l in self.links.iter_mut() {
            if let Some((dev, pasid, _)) = l.take() {
                let _ = self.policy.remove_attach::<Error>(dev, pasid);
            }
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
