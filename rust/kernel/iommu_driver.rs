// SPDX-License-Identifier: GPL-2.0

//! Provider side of the IOMMU API: IOMMU drivers.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! An IOMMU driver implements [`IommuOps`] (`struct iommu_ops`) and, for its paging domains,
//! [`DomainOps`] (`struct iommu_domain_ops`), both `#[vtable]` traits: an optional method that
//! is not implemented leaves the C callback NULL, so the IOMMU core's defaults apply. The C
//! tables live in one `static` per driver, [`Statics`], declared with
//! [`iommu_statics!`](crate::iommu_statics): the core compares `iommu_ops` and static-domain
//! pointers, so they must have one address.
//!
//! - [`Registration`]: a registered `struct iommu_device` (sysfs + `iommu_device_register`)
//!   carrying the driver's per-instance data [`IommuOps::Instance`]. `probe_device` finds it
//!   from the device's fwspec (`iommu_fwnode` -> the IOMMU's platform device -> a devres node
//!   that points at the registration).
//! - Per-device data [`IommuOps::Master`] is boxed into `dev_iommu_priv` by `probe_device` and
//!   handed back to [`IommuOps::release_device`].
//! - StreamIDs / requester IDs come from the fwspec ([`IommuOps::probe_device`]'s `ids`); a
//!   one-cell `of_xlate` that adds the cell as the ID is provided.
//! - Device groups: `pci_device_group` for PCI devices, `generic_device_group` otherwise.
//! - Reserved regions: an optional software-MSI window ([`IommuOps::sw_msi_region`]) plus the
//!   firmware's reserved regions.
//! - [`Domain<P>`]: a driver domain type embedding `struct iommu_domain` (first field, `repr(C)`)
//!   followed by the driver's paging-domain data `P`; allocated by `domain_alloc_paging`, freed
//!   by the core through `free`.
//! - Identity and blocked domains are static domains whose `attach_dev` calls
//!   [`IommuOps::attach_identity`] / [`IommuOps::attach_blocked`].
//! - PASIDs: [`DomainOps::set_dev_pasid`] / [`IommuOps::remove_dev_pasid`] (the latter only
//!   ever sees this driver's paging domains: the callback checks the domain's ops first), the
//!   instance's `max_pasids` given to [`Registration::new`], and [`PciPasid`] to enable PCI
//!   PASID in `probe_device` as arm-smmu-v3 does.
//!
//! Every callback converts the driver's `Result` to an errno for the core; nothing here warns or
//! panics on bad input.
//!
//! # Limits (6.12 overlay)
//!
//! - `iommu_ops.owner` is NULL: this supports built-in drivers only (a module would need the
//!   module pointer in the static table).
//! - The instance lookup in `probe_device` relies on the registration outliving every device it
//!   probed: drivers set `suppress_bind_attrs` and never drop a registration with clients.

use crate::ffi::{c_int, c_void};
use crate::{
    alloc::{flags::GFP_KERNEL, KBox},
    bindings, c_str,
    device::Device,
    error::{code::*, to_result, Error, Result},
    init::PinInit,
    iommu::{Capability, Prot},
    str::CStr,
    types::Opaque,
};
use core::{marker::PhantomData, marker::PhantomPinned};

/// What a new paging domain supports, written into its `struct iommu_domain`.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Page and block sizes the domain maps (`pgsize_bitmap`).
    pub pgsize_bitmap: u64,
    /// Last IOVA of the aperture (the aperture starts at 0 and is enforced).
    pub aperture_end: u64,
}

/// The IOMMU core's gather of one unmap (`struct iommu_iotlb_gather`), lent to
/// [`DomainOps::unmap_pages`] and [`DomainOps::iotlb_sync`].
///
/// It lives on the caller's stack for one `iommu_unmap`/`iommu_unmap_fast` + `iommu_iotlb_sync`
/// (DMA API, VFIO type1, iommufd), so a driver that gathers here instead of in its domain
/// needs no domain lock for its unmaps: concurrent unmaps each have their own. The driver sees
/// the C fields it may use: the range (`start`, `end`), the page size (`pgsize`) and
/// `queued` (a flush queue will sync later). `freelist` is not exposed: a driver keeps the
/// tables it frees itself.
///
/// # Invariants
///
/// `raw` is the core's gather for this call, not accessed by anyone else meanwhile.
pub struct IotlbGather<'a> {
    raw: &'a mut bindings::iommu_iotlb_gather,
}

impl<'a> IotlbGather<'a> {
    /// Wraps the gather the core passed.
    ///
    /// # Safety
    ///
    /// `raw` is a valid, initialised gather that nothing else accesses during `'a`.
    unsafe fn from_raw(raw: *mut bindings::iommu_iotlb_gather) -> Self {
        // SAFETY: valid and exclusive for `'a` (caller).
        Self { raw: unsafe { &mut *raw } }
    }

    /// The gathered range `[start, end)` and its page size, `None` if nothing is gathered.
    pub fn range(&self) -> Option<(u64, u64, usize)> {
        let g = &*self.raw;
        (g.pgsize != 0 && g.start <= g.end)
            .then(|| (g.start as u64, (g.end as u64).wrapping_add(1), g.pgsize))
    }

    /// Whether the core defers the sync to a flush queue (`queued`): never for a domain whose
    /// driver does not claim `DeferredFlush`.
    pub fn queued(&self) -> bool {
        self.raw.queued
    }

    /// Adds `[iova, iova + size)` of pages of `pgsize` bytes if the gather is empty or holds
    /// an adjacent or overlapping range of the same page size (`iommu_iotlb_gather_add_page`'s
    /// rule); `false` (nothing added) otherwise: the driver then syncs what is gathered,
    /// [`IotlbGather::reset`]s it and adds again.
    pub fn try_add(&mut self, iova: u64, size: u64, pgsize: usize) -> bool {
        let (Ok(start), Some(last)) = (usize::try_from(iova), size.checked_sub(1)) else {
            return false;
        };
        let Some(end) = usize::try_from(last).ok().and_then(|l| start.checked_add(l)) else {
            return false;
        };
        let g = &mut *self.raw;
        if g.pgsize != 0 {
            let disjoint = end.saturating_add(1) < g.start || start > g.end.saturating_add(1);
            if g.pgsize != pgsize || disjoint {
                return false;
            }
        }
        g.pgsize = pgsize;
        g.start = g.start.min(start);
        g.end = g.end.max(end);
        true
    }

    /// Empties the range (`iommu_iotlb_gather_init`'s values; `queued` and `freelist` kept).
    pub fn reset(&mut self) {
        self.raw.start = usize::MAX;
        self.raw.end = 0;
        self.raw.pgsize = 0;
    }
}

/// The driver's operations on one of its paging domains (`struct iommu_domain_ops`).
#[macros::vtable]
pub trait DomainOps: Send + Sync + Sized + 'static {
    /// The driver's per-device data (see [`IommuOps::Master`]).
    type Master: Send + Sync;

    /// Makes `dev` (its requester ID, no PASID) translate through this domain.
    fn attach_dev(&self, master: &Self::Master, dev: &Device) -> Result;

    /// Makes PASID `pasid` of `dev` translate through this domain (`set_dev_pasid`). The core
    /// has checked that the PASID is not 0, below the device's `max_pasids` and not attached
    /// in its group; the driver checks what it knows better (its own SubstreamID width).
    /// Its undo is [`IommuOps::remove_dev_pasid`].
    fn set_dev_pasid(&self, _master: &Self::Master, _dev: &Device, _pasid: u32) -> Result {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Maps `pgcount` pages of `pgsize` bytes at `iova` to `paddr` with the rights `prot`
    /// (converted from the core's `int` once, by the callback: unknown bits never get here).
    /// Returns the bytes mapped (all or, on error, none).
    fn map_pages(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: usize,
        pgcount: usize,
        prot: Prot,
    ) -> Result<usize>;

    /// Unmaps up to `pgcount` pages of `pgsize` bytes at `iova`; returns the bytes unmapped
    /// (0 for a range with nothing mapped). The translations are gone from the IOTLB when this
    /// returns, unless [`DomainOps::iotlb_sync`] is implemented to finish the job: then what
    /// is left to invalidate goes into `gather`, the caller's gather of this unmap (every
    /// `unmap_pages` call of one `iommu_unmap` gets the same one).
    fn unmap_pages(
        &self,
        iova: u64,
        pgsize: usize,
        pgcount: usize,
        gather: &mut IotlbGather<'_>,
    ) -> usize;

    /// Finishes the invalidations gathered in `gather` by earlier unmaps (`iotlb_sync`).
    fn iotlb_sync(&self, _gather: &mut IotlbGather<'_>) {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Invalidates every cached translation of the domain (`flush_iotlb_all`).
    fn flush_iotlb_all(&self) {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// The physical address `iova` translates to, 0 if unmapped.
    fn iova_to_phys(&self, iova: u64) -> u64;

    /// Makes the domain ignore No_snoop (`enforce_cache_coherency`); true if it now does.
    fn enforce_cache_coherency(&self) -> bool {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// An IOMMU driver (`struct iommu_ops`).
#[macros::vtable]
pub trait IommuOps: Sized + 'static {
    /// Per-instance data, owned by the [`Registration`].
    type Instance: Send + Sync;
    /// Per-device data, from `probe_device` to `release_device`.
    type Master: Send + Sync;
    /// The driver's paging domains.
    type Paging: DomainOps<Master = Self::Master>;

    /// Takes `dev`, whose firmware IDs (StreamIDs) for this IOMMU are `ids`, under `iommu`.
    fn probe_device(
        iommu: &Self::Instance,
        dev: &Device,
        ids: &[u32],
    ) -> Result<KBox<Self::Master>>;

    /// `dev` goes away; the core has already detached it from its domains.
    fn release_device(dev: &Device, master: KBox<Self::Master>);

    /// A new, empty paging domain usable by `dev`.
    fn domain_alloc_paging(master: &Self::Master, dev: &Device)
        -> Result<(Self::Paging, Geometry)>;

    /// Makes `dev` bypass translation (the static identity domain's `attach_dev`).
    fn attach_identity(_master: &Self::Master, _dev: &Device) -> Result {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Makes `dev`'s DMA fail (the static blocked domain's `attach_dev`).
    fn attach_blocked(_master: &Self::Master, _dev: &Device) -> Result {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Undoes [`DomainOps::set_dev_pasid`] of `domain` at PASID `pasid` of `dev`
    /// (`remove_dev_pasid`): the PASID's DMA must fault from now on. Cannot fail.
    fn remove_dev_pasid(
        _master: &Self::Master,
        _dev: &Device,
        _pasid: u32,
        _domain: &Self::Paging,
    ) {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Whether the IOMMU in front of the device of `master` has `cap`.
    fn capable(_master: &Self::Master, _cap: Capability) -> bool {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// The software-MSI window (base, length) to reserve in every domain of `master`'s device.
    fn sw_msi_region(_master: &Self::Master) -> Option<(u64, usize)> {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A driver paging domain: `struct iommu_domain` followed by the driver's data.
///
/// # Invariants
///
/// `raw` is the first field (`repr(C)`), so a `struct iommu_domain *` the core hands to a
/// callback of the paging-domain ops in [`Statics`] points at a `Domain<P>`, allocated by
/// `domain_alloc_paging_callback` as a `KBox` and freed once by `free_callback`.
#[repr(C)]
pub struct Domain<P> {
    raw: Opaque<bindings::iommu_domain>,
    data: P,
}

impl<P> Domain<P> {
    /// # Safety
    ///
    /// `ptr` must be a domain allocated by this module's `domain_alloc_paging_callback::<T>`
    /// with `T::Paging == P`, not yet freed.
    unsafe fn from_raw<'a>(ptr: *mut bindings::iommu_domain) -> &'a P {
        // SAFETY: by the type invariant `ptr` points at a live `Domain<P>`.
        unsafe { &(*ptr.cast::<Domain<P>>()).data }
    }
}

/// The C tables of an IOMMU driver: `iommu_ops`, the paging domains' `iommu_domain_ops`, and
/// the static identity and blocked domains with their ops. Declare it with
/// [`iommu_statics!`](crate::iommu_statics).
#[repr(C)]
pub struct Statics<T: IommuOps> {
    ops: bindings::iommu_ops,
    paging_ops: bindings::iommu_domain_ops,
    identity_ops: bindings::iommu_domain_ops,
    blocked_ops: bindings::iommu_domain_ops,
    identity: bindings::iommu_domain,
    blocked: bindings::iommu_domain,
    _p: PhantomData<T>,
}

// SAFETY: immutable tables of function pointers and pointers into themselves.
unsafe impl<T: IommuOps> Sync for Statics<T> {}

const fn mkdomain(ty: u32, ops: *const bindings::iommu_domain_ops) -> bindings::iommu_domain {
    // SAFETY: all-zero is a valid `iommu_domain` (NULL pointers, zero sizes).
    let mut d: bindings::iommu_domain = unsafe { core::mem::zeroed() };
    d.type_ = ty;
    d.ops = ops;
    d
}

impl<T: IommuOps> Statics<T> {
    /// Builds the tables of the static `this` (the one being initialised).
    pub const fn new(this: &'static Statics<T>) -> Self {
        // SAFETY: all-zero is a valid `iommu_ops` / `iommu_domain_ops` (no callbacks).
        let mut ops: bindings::iommu_ops = unsafe { core::mem::zeroed() };
        ops.probe_device = Some(probe_device_callback::<T>);
        ops.release_device = Some(release_device_callback::<T>);
        ops.device_group = Some(device_group_callback);
        ops.of_xlate = Some(of_xlate_callback);
        ops.domain_alloc_paging = Some(domain_alloc_paging_callback::<T>);
        if T::HAS_CAPABLE {
            ops.capable = Some(capable_callback::<T>);
        }
        if T::HAS_SW_MSI_REGION {
            ops.get_resv_regions = Some(get_resv_regions_callback::<T>);
        }
        if T::HAS_REMOVE_DEV_PASID {
            ops.remove_dev_pasid = Some(remove_dev_pasid_callback::<T>);
        }
        ops.default_domain_ops = &this.paging_ops;
        if T::HAS_ATTACH_IDENTITY {
            ops.identity_domain = &this.identity as *const _ as *mut _;
        }
        if T::HAS_ATTACH_BLOCKED {
            ops.blocked_domain = &this.blocked as *const _ as *mut _;
            // Devices being released are parked in the blocked domain.
            ops.release_domain = &this.blocked as *const _ as *mut _;
        }

        // SAFETY: as above.
        let mut paging_ops: bindings::iommu_domain_ops = unsafe { core::mem::zeroed() };
        paging_ops.attach_dev = Some(attach_paging_callback::<T>);
        paging_ops.map_pages = Some(map_pages_callback::<T>);
        paging_ops.unmap_pages = Some(unmap_pages_callback::<T>);
        paging_ops.iova_to_phys = Some(iova_to_phys_callback::<T>);
        paging_ops.free = Some(free_callback::<T>);
        if <T::Paging as DomainOps>::HAS_SET_DEV_PASID {
            paging_ops.set_dev_pasid = Some(set_dev_pasid_callback::<T>);
        }
        if <T::Paging as DomainOps>::HAS_IOTLB_SYNC {
            paging_ops.iotlb_sync = Some(iotlb_sync_callback::<T>);
        }
        if <T::Paging as DomainOps>::HAS_FLUSH_IOTLB_ALL {
            paging_ops.flush_iotlb_all = Some(flush_iotlb_all_callback::<T>);
        }
        if <T::Paging as DomainOps>::HAS_ENFORCE_CACHE_COHERENCY {
            paging_ops.enforce_cache_coherency = Some(enforce_cc_callback::<T>);
        }

        // SAFETY: as above.
        let mut identity_ops: bindings::iommu_domain_ops = unsafe { core::mem::zeroed() };
        identity_ops.attach_dev = Some(attach_identity_callback::<T>);
        // SAFETY: as above.
        let mut blocked_ops: bindings::iommu_domain_ops = unsafe { core::mem::zeroed() };
        blocked_ops.attach_dev = Some(attach_blocked_callback::<T>);

        Self {
            ops,
            paging_ops,
            identity_ops,
            blocked_ops,
            identity: mkdomain(bindings::IOMMU_DOMAIN_IDENTITY, &this.identity_ops),
            blocked: mkdomain(bindings::IOMMU_DOMAIN_BLOCKED, &this.blocked_ops),
            _p: PhantomData,
        }
    }
}

/// Declares the [`Statics`] of IOMMU driver `$t` as `static $name`.
#[macro_export]
macro_rules! iommu_statics {
    ($name:ident, $t:ty) => {
        static $name: $crate::iommu_driver::Statics<$t> =
            $crate::iommu_driver::Statics::<$t>::new(&$name);
    };
}

/// A registered IOMMU instance (`struct iommu_device`) with the driver's data.
///
/// # Invariants
///
/// While the registration exists: `raw` is added to sysfs and registered with the core with
/// the ops of `statics`; `node` is a devres node of `hwdev` holding a pointer to `self`
/// (pinned), found by `probe_device_callback::<T>`.
#[macros::pin_data(PinnedDrop)]
pub struct Registration<T: IommuOps> {
    #[pin]
    raw: Opaque<bindings::iommu_device>,
    data: T::Instance,
    hwdev: crate::types::ARef<Device>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the C part is only used by the core under its locks; `data` is `Send + Sync`.
unsafe impl<T: IommuOps> Send for Registration<T> {}
// SAFETY: as above.
unsafe impl<T: IommuOps> Sync for Registration<T> {}

/// Release function of the devres node that points at a registration (it owns nothing); its
/// address per `T` is the node's identity for `devres_find`.
///
/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn registration_node_release<T: IommuOps>(
    _dev: *mut bindings::device,
    _res: *mut c_void,
) {
}

/// Removes and frees the devres node that points at `dev`'s registration of driver `T`.
///
/// # Safety
///
/// `dev` must be valid and hold such a node (added by [`Registration::new`]); it is destroyed
/// once.
unsafe fn destroy_node<T: IommuOps>(dev: *mut bindings::device) {
    // SAFETY: valid device holding the node, identified by its release function (caller).
    unsafe {
        bindings::devres_destroy(
            dev,
            Some(registration_node_release::<T>),
            None,
            core::ptr::null_mut(),
        )
    };
}

impl<T: IommuOps> Registration<T> {
    /// Registers an IOMMU instance for hardware device `hwdev`, named `name` in sysfs
    /// (`/sys/class/iommu/<name>`), with the tables of `statics` and instance data `data`.
    /// `max_pasids` is the number of PASIDs the IOMMU translates (0: none); the core gives each
    /// device the smaller of it and the device's own (`dev->iommu->max_pasids`).
    pub fn new<'a>(
        hwdev: &'a Device,
        statics: &'static Statics<T>,
        name: &'a CStr,
        max_pasids: u32,
        data: T::Instance,
    ) -> impl PinInit<Self, Error> + 'a {
        // `data` and `hwdev` are initialised before the IOMMU is registered (the core's
        // callbacks reach `data` through the devres node). If a step of `raw` fails, its
        // closure undoes the steps before it, and the initializer drops `data` and `hwdev`.
        // (`dev` is taken here: inside the initializer `hwdev` names the initialised field.)
        let dev = hwdev.as_raw();
        crate::try_pin_init!(&this in Self {
            data,
            hwdev: hwdev.into(),
            raw <- Opaque::try_ffi_init(move |raw: *mut bindings::iommu_device| {
                // SAFETY: `raw` is valid for writes and pinned (`try_ffi_init`); all-zero is a
                // valid, unregistered `iommu_device`; `dev` is a valid device and `name` a
                // valid string (copied by the core) for the `"%s"` format.
                let r = unsafe {
                    raw.write(core::mem::zeroed());
                    (*raw).max_pasids = max_pasids;
                    bindings::iommu_device_sysfs_add(
                        raw,
                        dev,
                        core::ptr::null_mut(),
                        c_str!("%s").as_char_ptr(),
                        name.as_char_ptr(),
                    )
                };
                to_result(r)?;
                // SAFETY: a devres node sized for one pointer, released by a function that
                // owns nothing; the name is `'static`.
                let node = unsafe {
                    bindings::__devres_alloc_node(
                        Some(registration_node_release::<T>),
                        core::mem::size_of::<*const Self>(),
                        bindings::GFP_KERNEL,
                        bindings::NUMA_NO_NODE,
                        c_str!("rust-iommu-registration").as_char_ptr(),
                    )
                };
                if node.is_null() {
                    // SAFETY: added to sysfs above, removed once, here.
                    unsafe { bindings::iommu_device_sysfs_remove(raw) };
                    return Err(ENOMEM);
                }
                // SAFETY: `node` holds room for one pointer; `this` is the pinned slot being
                // initialised, which stays at this address until `drop` destroys the node.
                // Adding the node hands it to `dev`.
                unsafe {
                    node.cast::<*const Self>().write(this.as_ptr());
                    bindings::devres_add(dev, node);
                }
                // SAFETY: `raw` is initialised and pinned; `statics.ops` is `'static`.
                let r = unsafe { bindings::iommu_device_register(raw, &statics.ops, dev) };
                if r != 0 {
                    // SAFETY: the node and the sysfs entry were added above; each is undone
                    // once, here, and `drop` does not run for a failed initializer.
                    unsafe {
                        destroy_node::<T>(dev);
                        bindings::iommu_device_sysfs_remove(raw);
                    }
                    return Err(Error::from_errno(r));
                }
                Ok(())
            }),
            _pin: PhantomPinned,
        }? Error)
    }

    /// The driver's instance data.
    pub fn data(&self) -> &T::Instance {
        &self.data
    }
}

#[macros::pinned_drop]
impl<T: IommuOps> PinnedDrop for Registration<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        let dev = self.hwdev.as_raw();
        // SAFETY: registered, added to sysfs and the devres node present (type invariant);
        // each is undone once, here.
        unsafe {
            destroy_node::<T>(dev);
            bindings::iommu_device_unregister(self.raw.get());
            bindings::iommu_device_sysfs_remove(self.raw.get());
        }
    }
}

/// The registration of driver `T` serving `dev`, from its fwspec.
///
/// # Safety
///
/// `dev` must be valid. The returned reference is valid while the registration exists (see the
/// module's limits).
unsafe fn registration_of<'a, T: IommuOps>(
    dev: *mut bindings::device,
) -> Option<(&'a Registration<T>, &'a [u32])> {
    // SAFETY: valid device.
    let fwspec = unsafe { bindings::dev_iommu_fwspec_get(dev) };
    if fwspec.is_null() {
        return None;
    }
    // SAFETY: a valid fwspec, kept while the device is probed.
    let (fwnode, n) = unsafe { ((*fwspec).iommu_fwnode, (*fwspec).num_ids as usize) };
    // SAFETY: `ids` has `num_ids` entries.
    let ids = unsafe { (*fwspec).ids.as_slice(n) };
    // SAFETY: FFI; the match function compares `dev_fwnode(d)` with `fwnode`.
    let hw = unsafe {
        bindings::bus_find_device(
            core::ptr::addr_of!(bindings::platform_bus_type),
            core::ptr::null_mut(),
            fwnode as *const c_void,
            Some(bindings::device_match_fwnode),
        )
    };
    if hw.is_null() {
        return None;
    }
    // SAFETY: `hw` is referenced; the node, if any, was added by `Registration::<T>::new`.
    let node = unsafe {
        bindings::devres_find(
            hw,
            Some(registration_node_release::<T>),
            None,
            core::ptr::null_mut(),
        )
    };
    // SAFETY: drop the reference `bus_find_device` took.
    unsafe { bindings::put_device(hw) };
    if node.is_null() {
        return None;
    }
    // SAFETY: the node holds a pointer to a live, pinned registration (type invariant).
    Some((unsafe { &**node.cast::<*const Registration<T>>() }, ids))
}

/// # Safety
///
/// `dev` must be a device that `probe_device_callback::<T>` accepted and not yet released.
unsafe fn master_of<'a, T: IommuOps>(dev: *mut bindings::device) -> Option<&'a T::Master> {
    // SAFETY: valid device.
    let p = unsafe { bindings::dev_iommu_priv_get(dev) }.cast::<T::Master>();
    // SAFETY: set by `probe_device_callback::<T>` from a `KBox<T::Master>`, cleared on release.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn probe_device_callback<T: IommuOps>(
    dev: *mut bindings::device,
) -> *mut bindings::iommu_device {
    // SAFETY: the core calls `probe_device` with a valid device with a fwspec.
    let Some((reg, ids)) = (unsafe { registration_of::<T>(dev) }) else {
        return ENODEV.to_ptr();
    };
    // SAFETY: valid device.
    let d = unsafe { Device::as_ref(dev) };
    match T::probe_device(&reg.data, d, ids) {
        Ok(m) => {
            // SAFETY: valid device; taken back in `release_device_callback`.
            unsafe { bindings::dev_iommu_priv_set(dev, KBox::into_raw(m).cast()) };
            reg.raw.get()
        }
        Err(e) => e.to_ptr(),
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn release_device_callback<T: IommuOps>(dev: *mut bindings::device) {
    // SAFETY: valid device, probed by us.
    let p = unsafe { bindings::dev_iommu_priv_get(dev) }.cast::<T::Master>();
    if p.is_null() {
        return;
    }
    // SAFETY: valid device.
    unsafe { bindings::dev_iommu_priv_set(dev, core::ptr::null_mut()) };
    // SAFETY: `p` came from `KBox::into_raw` in `probe_device_callback` and is taken back once.
    let m = unsafe { KBox::from_raw(p) };
    // SAFETY: valid device.
    T::release_device(unsafe { Device::as_ref(dev) }, m);
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn device_group_callback(
    dev: *mut bindings::device,
) -> *mut bindings::iommu_group {
    // SAFETY: valid device; both functions take a reference on the returned group.
    unsafe {
        if bindings::dev_is_pci(dev) {
            bindings::pci_device_group(dev)
        } else {
            bindings::generic_device_group(dev)
        }
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn of_xlate_callback(
    dev: *mut bindings::device,
    args: *const bindings::of_phandle_args,
) -> c_int {
    // SAFETY: the core passes valid arguments.
    let (count, first) = unsafe { ((*args).args_count, (*args).args.as_ptr()) };
    if count < 1 {
        return EINVAL.to_errno();
    }
    // SAFETY: `first` points at `args_count >= 1` cells.
    unsafe { bindings::iommu_fwspec_add_ids(dev, first, 1) }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn capable_callback<T: IommuOps>(
    dev: *mut bindings::device,
    cap: bindings::iommu_cap,
) -> bool {
    let c = match cap {
        bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY => Capability::CacheCoherency,
        bindings::iommu_cap_IOMMU_CAP_NOEXEC => Capability::NoExec,
        bindings::iommu_cap_IOMMU_CAP_PRE_BOOT_PROTECTION => Capability::PreBootProtection,
        bindings::iommu_cap_IOMMU_CAP_ENFORCE_CACHE_COHERENCY => Capability::EnforceCacheCoherency,
        bindings::iommu_cap_IOMMU_CAP_DEFERRED_FLUSH => Capability::DeferredFlush,
        bindings::iommu_cap_IOMMU_CAP_DIRTY_TRACKING => Capability::DirtyTracking,
        _ => return false,
    };
    // SAFETY: the core asks about devices it probed through us.
    match unsafe { master_of::<T>(dev) } {
        Some(m) => T::capable(m, c),
        None => false,
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn get_resv_regions_callback<T: IommuOps>(
    dev: *mut bindings::device,
    head: *mut bindings::list_head,
) {
    // SAFETY: valid device.
    let d = unsafe { Device::as_ref(dev) };
    // SAFETY: the core asks about devices it probed through us.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return;
    };
    if let Some((base, len)) = T::sw_msi_region(master) {
        // SAFETY: valid device and list head.
        let r = unsafe { bindings::iommu_add_sw_msi_region(dev, head, base, len) };
        if r != 0 {
            crate::dev_err!(d, "no memory for the software MSI reserved region\n");
        }
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn domain_alloc_paging_callback<T: IommuOps>(
    dev: *mut bindings::device,
) -> *mut bindings::iommu_domain {
    // SAFETY: the core allocates paging domains for probed devices.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return ENODEV.to_ptr();
    };
    // SAFETY: valid device.
    let d = unsafe { Device::as_ref(dev) };
    let (data, geo) = match T::domain_alloc_paging(master, d) {
        Ok(x) => x,
        Err(e) => return e.to_ptr(),
    };
    // SAFETY: all-zero is a valid `iommu_domain`; the core fills type, ops and owner.
    let mut raw: bindings::iommu_domain = unsafe { core::mem::zeroed() };
    raw.pgsize_bitmap = geo.pgsize_bitmap as _;
    raw.geometry.aperture_start = 0;
    raw.geometry.aperture_end = geo.aperture_end;
    raw.geometry.force_aperture = true;
    match KBox::new(
        Domain {
            raw: Opaque::new(raw),
            data,
        },
        GFP_KERNEL,
    ) {
        // INVARIANT: a boxed `Domain<T::Paging>`, freed in `free_callback`.
        Ok(b) => KBox::into_raw(b).cast(),
        Err(_) => ENOMEM.to_ptr(),
    }
}

fn to_errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn attach_paging_callback<T: IommuOps>(
    dom: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
) -> c_int {
    // SAFETY: only devices we probed are attached to our domains.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return ENODEV.to_errno();
    };
    // SAFETY: `dom` is one of our paging domains (these ops are only on those).
    let p = unsafe { Domain::<T::Paging>::from_raw(dom) };
    // SAFETY: valid device.
    to_errno(p.attach_dev(master, unsafe { Device::as_ref(dev) }))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn attach_identity_callback<T: IommuOps>(
    _dom: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
) -> c_int {
    // SAFETY: only devices we probed are attached to our domains.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return ENODEV.to_errno();
    };
    // SAFETY: valid device.
    to_errno(T::attach_identity(master, unsafe { Device::as_ref(dev) }))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn attach_blocked_callback<T: IommuOps>(
    _dom: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
) -> c_int {
    // SAFETY: only devices we probed are attached to our domains.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return ENODEV.to_errno();
    };
    // SAFETY: valid device.
    to_errno(T::attach_blocked(master, unsafe { Device::as_ref(dev) }))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn set_dev_pasid_callback<T: IommuOps>(
    dom: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
    pasid: bindings::ioasid_t,
    old: *mut bindings::iommu_domain,
) -> c_int {
    // SAFETY: valid device.
    let d = unsafe { Device::as_ref(dev) };
    // 6.12 never replaces a PASID's domain (`old` is always NULL); refuse rather than guess.
    if !old.is_null() {
        crate::dev_err!(
            d,
            "PASID {}: replacing an attached domain is not supported\n",
            pasid
        );
        return EOPNOTSUPP.to_errno();
    }
    // SAFETY: only devices we probed are attached to our domains.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return ENODEV.to_errno();
    };
    // SAFETY: `dom` is one of our paging domains (these ops are only on those).
    let p = unsafe { Domain::<T::Paging>::from_raw(dom) };
    to_errno(p.set_dev_pasid(master, d, pasid))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn remove_dev_pasid_callback<T: IommuOps>(
    dev: *mut bindings::device,
    pasid: bindings::ioasid_t,
    dom: *mut bindings::iommu_domain,
) {
    // SAFETY: valid device.
    let d = unsafe { Device::as_ref(dev) };
    // SAFETY: only devices we probed have PASIDs attached through us.
    let Some(master) = (unsafe { master_of::<T>(dev) }) else {
        return;
    };
    // Only our paging domains have `set_dev_pasid`, but check before the cast: the core passes
    // whatever domain its caller names. Ours have the paging ops of our `iommu_ops`
    // (`default_domain_ops`, which the core installs in every domain we allocate).
    // SAFETY: a probed device has `dev->iommu` with its `iommu_device` (ours, since `master_of`
    // found our data) and that device's ops, all live while the device is probed; `dom` is a
    // valid domain or NULL.
    let ours = unsafe {
        !dom.is_null()
            && core::ptr::eq(
                (*dom).ops,
                (*(*(*(*dev).iommu).iommu_dev).ops).default_domain_ops,
            )
    };
    if !ours {
        crate::dev_err!(
            d,
            "PASID {}: remove of a domain this driver did not attach\n",
            pasid
        );
        return;
    }
    // SAFETY: one of our paging domains (its ops are ours).
    let p = unsafe { Domain::<T::Paging>::from_raw(dom) };
    T::remove_dev_pasid(master, d, pasid, p)
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn map_pages_callback<T: IommuOps>(
    dom: *mut bindings::iommu_domain,
    iova: crate::ffi::c_ulong,
    paddr: bindings::phys_addr_t,
    pgsize: usize,
    pgcount: usize,
    prot: c_int,
    _gfp: bindings::gfp_t,
    mapped: *mut usize,
) -> c_int {
    let Some(prot) = Prot::from_c(prot) else {
        crate::pr_err!("iommu map of {pgcount} x {pgsize:#x} bytes at IOVA {iova:#x} refused: prot {prot:#x} has bits no IOMMU_* flag names\n");
        return EINVAL.to_errno();
    };
    // SAFETY: one of our paging domains.
    let p = unsafe { Domain::<T::Paging>::from_raw(dom) };
    match p.map_pages(iova as u64, paddr, pgsize, pgcount, prot) {
        Ok(n) => {
            // SAFETY: the core passes a valid out pointer.
            unsafe { *mapped = n };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn unmap_pages_callback<T: IommuOps>(
    dom: *mut bindings::iommu_domain,
    iova: crate::ffi::c_ulong,
    pgsize: usize,
    pgcount: usize,
    gather: *mut bindings::iommu_iotlb_gather,
) -> usize {
    // SAFETY: one of our paging domains.
    let p = unsafe { Domain::<T::Paging>::from_raw(dom) };
    // SAFETY: the core passes its gather of this unmap (`__iommu_unmap`), on its stack and
    // used by no one else during the call.
    let mut g = unsafe { IotlbGather::from_raw(gather) };
    p.unmap_pages(iova as u64, pgsize, pgcount, &mut g)
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn iotlb_sync_callback<T: IommuOps>(
    dom: *mut bindings::iommu_domain,
    gather: *mut bindings::iommu_iotlb_gather,
) {
    // SAFETY: one of our paging domains.
    let p = unsafe { Domain::<T::Paging>::from_raw(dom) };
    // SAFETY: the core passes the gather of the unmaps to finish (`iommu_iotlb_sync`), used
    // by no one else during the call.
    let mut g = unsafe { IotlbGather::from_raw(gather) };
    p.iotlb_sync(&mut g)
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn flush_iotlb_all_callback<T: IommuOps>(dom: *mut bindings::iommu_domain) {
    // SAFETY: one of our paging domains.
    unsafe { Domain::<T::Paging>::from_raw(dom) }.flush_iotlb_all()
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn enforce_cc_callback<T: IommuOps>(dom: *mut bindings::iommu_domain) -> bool {
    // SAFETY: one of our paging domains.
    unsafe { Domain::<T::Paging>::from_raw(dom) }.enforce_cache_coherency()
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn iova_to_phys_callback<T: IommuOps>(
    dom: *mut bindings::iommu_domain,
    iova: bindings::dma_addr_t,
) -> bindings::phys_addr_t {
    // SAFETY: one of our paging domains.
    unsafe { Domain::<T::Paging>::from_raw(dom) }.iova_to_phys(iova)
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn free_callback<T: IommuOps>(dom: *mut bindings::iommu_domain) {
    // SAFETY: allocated as a `KBox<Domain<T::Paging>>` in `domain_alloc_paging_callback` and
    // freed once, here (the core calls `free` once, after every device was detached).
    drop(unsafe { KBox::from_raw(dom.cast::<Domain<T::Paging>>()) });
}

/// PCI PASID enabled by an IOMMU driver for a device it probes, as arm-smmu-v3 does in
/// `probe_device` (`pci_enable_pasid` with the device's own features, before any ATS); disabled
/// when dropped (`release_device`).
///
/// # Invariants
///
/// `dev` is a PCI device on which this value enabled PASID (`pasid_enabled` set by us).
pub struct PciPasid {
    dev: crate::types::ARef<Device>,
    pasids: u32,
}

impl PciPasid {
    /// The `pci_dev` of `dev`, if it is a PCI device.
    fn pci_dev(dev: &Device) -> Option<*mut bindings::pci_dev> {
        let raw = dev.as_raw();
        // SAFETY: `raw` is a valid device.
        if !unsafe { bindings::dev_is_pci(raw) } {
            return None;
        }
        // SAFETY: a PCI device's `struct device` is embedded in its `pci_dev`.
        Some(unsafe { crate::container_of!(raw, bindings::pci_dev, dev) }.cast_mut())
    }

    /// Enables PASID on `dev`. `Ok(None)`: not a PCI device or no PASID capability (nothing
    /// to do); an error (with a message) if the capability exists but the PCI core refuses
    /// (no end-to-end TLP prefix, ACS, or already enabled by someone else).
    pub fn enable(dev: &Device) -> Result<Option<Self>> {
        let Some(pdev) = Self::pci_dev(dev) else {
            return Ok(None);
        };
        // SAFETY: `pdev` is a valid PCI device (`dev` is referenced by the caller).
        let features = unsafe { bindings::pci_pasid_features(pdev) };
        // SAFETY: as above.
        let num = unsafe { bindings::pci_max_pasids(pdev) };
        if features < 0 || num <= 0 {
            return Ok(None);
        }
        // `pci_enable_pasid` WARNs when PASID is on already: refuse with a message instead.
        // SAFETY: as above; the bit is only changed by `pci_{enable,disable}_pasid`.
        if unsafe { (*pdev).pasid_enabled() } != 0 {
            crate::dev_err!(
                dev,
                "PASID already enabled by someone else: not using PASIDs\n"
            );
            return Err(EBUSY);
        }
        // SAFETY: as above.
        let r = unsafe { bindings::pci_enable_pasid(pdev, features) };
        if r != 0 {
            crate::dev_err!(dev, "failed to enable PASID: {}\n", r);
            return Err(Error::from_errno(r));
        }
        // INVARIANT: enabled just now, by us.
        Ok(Some(Self {
            dev: dev.into(),
            pasids: num as u32,
        }))
    }

    /// The number of PASIDs the device supports (`pci_max_pasids`, a power of two).
    pub fn pasids(&self) -> u32 {
        self.pasids
    }
}

impl Drop for PciPasid {
    fn drop(&mut self) {
        if let Some(pdev) = Self::pci_dev(&self.dev) {
            // SAFETY: a referenced PCI device on which we enabled PASID (type invariant).
            unsafe { bindings::pci_disable_pasid(pdev) };
        }
    }
}
