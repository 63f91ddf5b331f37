// SPDX-License-Identifier: GPL-2.0

//! IOMMU consumer API: paging domains, attaching them to a device (RID) or to a PASID of a
//! device, mapping, reserved regions and the MSI cookie.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! - [`Domain`]: an `iommu_domain` from `iommu_paging_domain_alloc`, freed when the last
//!   reference goes away. Its lifetime is its own: it is reference counted ([`Arc`]) and every
//!   attachment holds a reference, so a domain cannot be freed while attached.
//! - [`Attachment`] / [`PasidAttachment`]: an attach of a domain to a device (or to one PASID of
//!   it); detached on drop. Only what was attached is ever detached.
//! - [`Domain::attach_device_pasid`] refuses a device whose IOMMU reports no PASID support
//!   (`max_pasids == 0`) with `EOPNOTSUPP`: 6.12's `iommu_attach_device_pasid` returns 0 for such
//!   a device without programming anything.
//!
//! The device must be bound to the caller's driver while attached (the C API's rule "caller must
//! be a probed driver on dev"); keep attachments in the driver's data.

use crate::{
    alloc::{flags::GFP_KERNEL, Flags, KVec},
    bindings,
    device::Device,
    error::{code::*, to_result, Result},
    sync::Arc,
    types::ARef,
};

/// An I/O virtual address.
pub type Iova = u64;

/// Mapping permissions (`IOMMU_READ`, ...): the project's one portable `Prot`
/// (`drivers/smmuv3/src/smmuv3/prot/`), the SMMUv3 core's own ([`crate::smmuv3::prot`]),
/// shared with the aux-domain policy.
pub use crate::smmuv3::prot::Prot;

// The portable bits are Linux's: checked here, where they meet C, so they cross unchanged.
const _: () = {
    assert!(Prot::READ.bits() == bindings::IOMMU_READ);
    assert!(Prot::WRITE.bits() == bindings::IOMMU_WRITE);
    assert!(Prot::CACHE.bits() == bindings::IOMMU_CACHE);
    assert!(Prot::NOEXEC.bits() == bindings::IOMMU_NOEXEC);
    assert!(Prot::MMIO.bits() == bindings::IOMMU_MMIO);
    assert!(Prot::PRIV.bits() == bindings::IOMMU_PRIV);
};

impl Prot {
    /// The `int prot` the C IOMMU and VFIO calls take (the bits are Linux's, checked above).
    pub fn to_c(self) -> crate::ffi::c_int {
        self.bits() as crate::ffi::c_int
    }

    /// The flags of an `int prot` from C; `None` (the caller refuses it) for a negative value
    /// or a bit no `IOMMU_*` flag above names.
    pub fn from_c(prot: crate::ffi::c_int) -> Option<Prot> {
        u32::try_from(prot).ok().and_then(Prot::from_bits)
    }
}

/// IOMMU capabilities for [`device_iommu_capable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// `IOMMU_CAP_CACHE_COHERENCY`
    CacheCoherency,
    /// `IOMMU_CAP_NOEXEC`
    NoExec,
    /// `IOMMU_CAP_PRE_BOOT_PROTECTION`
    PreBootProtection,
    /// `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`
    EnforceCacheCoherency,
    /// `IOMMU_CAP_DEFERRED_FLUSH`
    DeferredFlush,
    /// `IOMMU_CAP_DIRTY_TRACKING`
    DirtyTracking,
}

/// Whether the IOMMU serving `dev` has capability `cap` (`device_iommu_capable`).
pub fn device_iommu_capable(dev: &Device, cap: Capability) -> bool {
    let c = match cap {
        Capability::CacheCoherency => bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY,
        Capability::NoExec => bindings::iommu_cap_IOMMU_CAP_NOEXEC,
        Capability::PreBootProtection => bindings::iommu_cap_IOMMU_CAP_PRE_BOOT_PROTECTION,
        Capability::EnforceCacheCoherency => bindings::iommu_cap_IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
        Capability::DeferredFlush => bindings::iommu_cap_IOMMU_CAP_DEFERRED_FLUSH,
        Capability::DirtyTracking => bindings::iommu_cap_IOMMU_CAP_DIRTY_TRACKING,
    };
    // SAFETY: valid device.
    unsafe { bindings::device_iommu_capable(dev.as_raw(), c) }
}

/// The number of PASIDs the IOMMU core allows for `dev` (`dev->iommu->max_pasids`; 0 when the
/// device or its IOMMU has no PASID support, or it has no IOMMU).
pub fn max_pasids(dev: &Device) -> u32 {
    // SAFETY: valid device; the helper reads `dev->iommu` set up at IOMMU probe.
    unsafe { bindings::dev_iommu_max_pasids(dev.as_raw()) }
}

/// What `iova` translates to in the domain `dev` is attached to now
/// (`iommu_get_domain_for_dev`, `iommu_iova_to_phys`): for a bound driver's device, its DMA
/// domain. `None` when the device has no IOMMU domain or `iova` is unmapped there.
pub fn device_iova_to_phys(dev: &Device, iova: Iova) -> Option<u64> {
    // SAFETY: valid device. The domain returned is the group's current one; it lives while it
    // is attached, which for a device bound to its driver (the callers) is until the driver or
    // VFIO changes it, and `iommu_iova_to_phys` only walks its page table.
    let p = unsafe {
        let domain = bindings::iommu_get_domain_for_dev(dev.as_raw());
        if domain.is_null() {
            return None;
        }
        bindings::iommu_iova_to_phys(domain, iova)
    };
    (p != 0).then_some(p)
}

/// Whether the MSIs of every device in `dev`'s IOMMU group are isolated
/// (`iommu_group_has_isolated_msi`): the MSI controller tells the devices apart (GICv3's ITS
/// does, by DeviceID) or interrupts are remapped, so a device that can DMA to its MSI doorbell
/// can only raise its own interrupts. VFIO's condition for handing a user a device that DMAs to
/// addresses the user chose. False for a device without an IOMMU group (and on a machine whose
/// PCI MSIs go nowhere isolated, e.g. GICv3 without an ITS).
pub fn group_has_isolated_msi(dev: &Device) -> bool {
    // SAFETY: valid device; `iommu_group_get` returns a new reference to its group or null.
    let group = unsafe { bindings::iommu_group_get(dev.as_raw()) };
    if group.is_null() {
        return false;
    }
    // SAFETY: `group` is referenced (above) until the put below.
    let isolated = unsafe { bindings::iommu_group_has_isolated_msi(group) };
    // SAFETY: drops the reference `iommu_group_get` took.
    unsafe { bindings::iommu_group_put(group) };
    isolated
}

/// An IOMMU paging domain (an I/O address space).
///
/// # Invariants
///
/// `ptr` is a domain returned by `iommu_paging_domain_alloc`, freed exactly once, in `drop`;
/// no attachment of it exists by then (each holds an `Arc<Domain>`).
///
/// # Examples
///
/// ```ignore
/// let dom = iommu::Domain::new_paging(dev)?;
/// dom.map(0x10_0000, phys, 4096, Prot::READ | Prot::WRITE, GFP_KERNEL)?;
/// let att = dom.attach_device(dev)?;  // detached when `att` drops
/// assert!(dom.attach_device(dev).is_err()); // already attached: EBUSY
/// ```
pub struct Domain {
    ptr: *mut bindings::iommu_domain,
}

// SAFETY: the IOMMU core locks around domain operations; a domain may be freed from any thread.
unsafe impl Send for Domain {}
// SAFETY: `&Domain` operations (map, unmap, iova_to_phys, attach) are thread-safe in the core.
unsafe impl Sync for Domain {}

impl Domain {
    /// Allocates a paging domain suitable for `dev` (`iommu_paging_domain_alloc`).
    pub fn new_paging(dev: &Device) -> Result<Arc<Domain>> {
        // SAFETY: valid device.
        let p = unsafe { bindings::iommu_paging_domain_alloc(dev.as_raw()) };
        let p = crate::error::from_err_ptr(p)?;
        if p.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: allocated above; on `Arc` allocation failure `Domain` is dropped (freed).
        Ok(Arc::new(Domain { ptr: p }, GFP_KERNEL)?)
    }

    /// The raw domain pointer, for C APIs.
    pub fn as_raw(&self) -> *mut bindings::iommu_domain {
        self.ptr
    }

    /// Maps `size` bytes of physical memory at `paddr` to `iova` (`iommu_map`). All three must
    /// be aligned to a page size the domain supports.
    pub fn map(&self, iova: Iova, paddr: u64, size: usize, prot: Prot, gfp: Flags) -> Result {
        if size == 0 || iova.checked_add(size as u64).is_none() {
            return Err(EINVAL);
        }
        // SAFETY: valid domain (type invariant); the core validates alignment.
        to_result(unsafe {
            bindings::iommu_map(self.ptr, iova as _, paddr, size, prot.to_c(), gfp.as_raw())
        })
    }

    /// Unmaps `size` bytes at `iova`; returns how many bytes were unmapped (`iommu_unmap`).
    pub fn unmap(&self, iova: Iova, size: usize) -> usize {
        // SAFETY: valid domain.
        unsafe { bindings::iommu_unmap(self.ptr, iova as _, size) }
    }

    /// Translates `iova` (`iommu_iova_to_phys`); `None` if unmapped.
    pub fn iova_to_phys(&self, iova: Iova) -> Option<u64> {
        // SAFETY: valid domain.
        let p = unsafe { bindings::iommu_iova_to_phys(self.ptr, iova) };
        if p == 0 {
            None
        } else {
            Some(p)
        }
    }

    /// The page sizes the domain maps (`pgsize_bitmap`: bit n set = 2^n bytes).
    pub fn pgsize_bitmap(&self) -> u64 {
        // SAFETY: valid domain; the bitmap is set at allocation and never changes.
        unsafe { bindings::iommu_domain_pgsize_bitmap(self.ptr) as u64 }
    }

    /// The last IOVA the domain can translate (`geometry.aperture_end`).
    pub fn aperture_end(&self) -> Iova {
        // SAFETY: valid domain; the geometry is set at allocation and never changes.
        unsafe { bindings::iommu_domain_aperture_end(self.ptr) }
    }

    /// Makes the domain block No_snoop for every device attached, now and later
    /// (`ops->enforce_cache_coherency`, what VFIO and iommufd call). `false` if the IOMMU
    /// driver cannot (arm-smmu-v3 in 6.12 has no such operation) or an attached device cannot.
    pub fn enforce_cache_coherency(&self) -> bool {
        // SAFETY: valid domain; the helper checks that the operation exists.
        unsafe { bindings::iommu_domain_enforce_cache_coherency(self.ptr) }
    }

    /// Sets up an MSI cookie with its doorbell window at `base` (`iommu_get_msi_cookie`), so
    /// that MSIs of devices attached to this domain are translated. `EEXIST` if the domain has a
    /// cookie already. The cookie is freed with the domain.
    pub fn get_msi_cookie(&self, base: Iova) -> Result {
        // SAFETY: valid domain.
        to_result(unsafe { bindings::iommu_get_msi_cookie(self.ptr, base) })
    }

    /// Attaches this domain to `dev` (its whole RID, `iommu_attach_device`); detached when the
    /// returned [`Attachment`] is dropped. `EBUSY` if the device's group is attached to a
    /// non-default domain already (including this one).
    pub fn attach_device(self: &Arc<Self>, dev: &Device) -> Result<Attachment> {
        // SAFETY: valid domain and device.
        to_result(unsafe { bindings::iommu_attach_device(self.ptr, dev.as_raw()) })?;
        // INVARIANT: attached just above.
        Ok(Attachment { domain: self.clone(), dev: dev.into() })
    }

    /// Attaches this domain to PASID `pasid` of `dev` (`iommu_attach_device_pasid`); detached
    /// when the returned [`PasidAttachment`] is dropped.
    ///
    /// Errors: `EOPNOTSUPP` (with a message) if the IOMMU reports no PASID support for `dev`
    /// (6.12 would return success without programming anything); `EINVAL` for PASID 0 (the
    /// RID's) or a PASID beyond `max_pasids`; `EBUSY` if the PASID is in use.
    pub fn attach_device_pasid(self: &Arc<Self>, dev: &Device, pasid: u32) -> Result<PasidAttachment> {
        let max = max_pasids(dev);
        if max == 0 {
            crate::dev_err!(dev, "PASID attach refused: the IOMMU reports no PASID support for this device\n");
            return Err(EOPNOTSUPP);
        }
        if pasid == 0 || pasid >= max {
            crate::dev_err!(dev, "PASID attach refused: PASID {pasid:#x} outside 1..{max:#x}\n");
            return Err(EINVAL);
        }
        // SAFETY: valid domain and device; no attach handle.
        to_result(unsafe {
            bindings::iommu_attach_device_pasid(self.ptr, dev.as_raw(), pasid, core::ptr::null_mut())
        })
        .inspect_err(|e| crate::dev_err!(dev, "PASID {pasid:#x}: attach failed (errno {})\n", e.to_errno()))?;
        // INVARIANT: attached just above.
        Ok(PasidAttachment { domain: self.clone(), dev: dev.into(), pasid })
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // SAFETY: by the type invariant, not attached anywhere and freed only here.
        unsafe { bindings::iommu_domain_free(self.ptr) };
    }
}

/// A domain attached to a device's RID; detached on drop.
///
/// # Invariants
///
/// `domain` was attached to `dev` by `iommu_attach_device` and is detached exactly once, in
/// `drop`.
pub struct Attachment {
    domain: Arc<Domain>,
    dev: ARef<Device>,
}

impl Attachment {
    /// The attached domain.
    pub fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: attached (type invariant); the group goes back to its default domain.
        unsafe { bindings::iommu_detach_device(self.domain.ptr, self.dev.as_raw()) };
    }
}

/// A domain attached to one PASID of a device; detached on drop.
///
/// # Invariants
///
/// `domain` was attached to `pasid` of `dev` by `iommu_attach_device_pasid` and is detached
/// exactly once, in `drop`.
pub struct PasidAttachment {
    domain: Arc<Domain>,
    dev: ARef<Device>,
    pasid: u32,
}

impl PasidAttachment {
    /// The PASID.
    pub fn pasid(&self) -> u32 {
        self.pasid
    }

    /// The attached domain.
    pub fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }
}

impl Drop for PasidAttachment {
    fn drop(&mut self) {
        // SAFETY: attached (type invariant).
        unsafe { bindings::iommu_detach_device_pasid(self.domain.ptr, self.dev.as_raw(), self.pasid) };
    }
}

/// Kinds of reserved regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResvType {
    /// Must be mapped 1:1.
    Direct,
    /// 1:1, relaxable.
    DirectRelaxable,
    /// Never map.
    Reserved,
    /// Hardware MSI region.
    Msi,
    /// Software-managed MSI window (where an MSI cookie maps doorbells).
    SwMsi,
    /// A type this abstraction does not know.
    Other(u32),
}

/// A reserved IOVA region of a device (copied out of the IOMMU core's list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResvRegion {
    /// First address.
    pub start: u64,
    /// Length in bytes.
    pub length: usize,
    /// Permissions the region is mapped with, if it is.
    pub prot: i32,
    /// Kind.
    pub kind: ResvType,
}

/// The reserved regions of `dev` (`iommu_get_resv_regions`).
pub fn reserved_regions(dev: &Device) -> Result<KVec<ResvRegion>> {
    let mut head = core::mem::MaybeUninit::<bindings::list_head>::uninit();
    let hp = head.as_mut_ptr();
    // SAFETY: `hp` is valid for writes; an empty list points at itself (`INIT_LIST_HEAD`).
    unsafe {
        (*hp).next = hp;
        (*hp).prev = hp;
        bindings::iommu_get_resv_regions(dev.as_raw(), hp);
    }
    let mut out = KVec::new();
    let mut res = Ok(());
    // SAFETY: the list is well formed; its entries are `iommu_resv_region`s linked through
    // `list`, valid until `iommu_put_resv_regions`.
    unsafe {
        let mut p = (*hp).next;
        while p != hp {
            let r = container_of!(p, bindings::iommu_resv_region, list);
            let kind = match (*r).type_ {
                bindings::iommu_resv_type_IOMMU_RESV_DIRECT => ResvType::Direct,
                bindings::iommu_resv_type_IOMMU_RESV_DIRECT_RELAXABLE => ResvType::DirectRelaxable,
                bindings::iommu_resv_type_IOMMU_RESV_RESERVED => ResvType::Reserved,
                bindings::iommu_resv_type_IOMMU_RESV_MSI => ResvType::Msi,
                bindings::iommu_resv_type_IOMMU_RESV_SW_MSI => ResvType::SwMsi,
                t => ResvType::Other(t),
            };
            let region = ResvRegion { start: (*r).start, length: (*r).length, prot: (*r).prot, kind };
            if res.is_ok() {
                res = out.push(region, GFP_KERNEL).map_err(Into::into);
            }
            p = (*p).next;
        }
        bindings::iommu_put_resv_regions(dev.as_raw(), hp);
    }
    res.map(|()| out)
}
