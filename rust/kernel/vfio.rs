// SPDX-License-Identifier: GPL-2.0

//! VFIO devices for emulated-IOMMU (mediated) drivers, and the VFIO device uAPI.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h)
//!
//! - [`Device<T>`]: a `struct vfio_device` with the driver's data `T` embedded after it in the
//!   same allocation (`_vfio_alloc_device`), initialised in place with pin-init. Reference
//!   counted ([`ARef`]); `T` is dropped from the `release` callback when the last reference
//!   goes.
//! - [`Registration<T>`]: `vfio_register_emulated_iommu_dev`; unregistered on drop (which waits
//!   for users to close the device).
//! - [`DeviceOps`]: the callbacks (open/close, read/write, ioctl, mmap, request, dma_unmap); the
//!   iommufd callbacks are the `vfio_iommufd_emulated_*` helpers.
//! - [`Device::pin_pages`] / [`PinnedPages`] and [`Device::dma_read`] / [`Device::dma_write`]: mediated DMA into the
//!   user's I/O address space.
//! - [`uapi`]: typed, validated `VFIO_DEVICE_*` ioctl arguments.

#[path = "vfio_pci.rs"]
pub mod pci;

use crate::{
    bindings, device,
    error::{code::*, from_err_ptr, from_result, to_result, Error, Result},
    init::PinInit,
    types::{ARef, AlwaysRefCounted, Opaque},
    uaccess::{UserSlice, UserSliceReader, UserSliceWriter},
};
use crate::ffi::{c_char, c_int, c_long, c_uint, c_ulong};
use core::{
    ops::Deref,
    ptr::{addr_of_mut, NonNull},
};

/// A virtual memory area being mmapped (`struct vm_area_struct`), valid for the `mmap` call.
#[repr(transparent)]
pub struct VmArea(Opaque<bindings::vm_area_struct>);

impl VmArea {
    /// First user address.
    pub fn start(&self) -> usize {
        // SAFETY: valid for the duration of the `mmap` callback.
        unsafe { (*self.0.get()).__bindgen_anon_1.__bindgen_anon_1.vm_start }
    }

    /// End user address (exclusive).
    pub fn end(&self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.0.get()).__bindgen_anon_1.__bindgen_anon_1.vm_end }
    }

    /// Offset into the file, in pages.
    pub fn pgoff(&self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.0.get()).vm_pgoff }
    }

    /// The raw pointer, for C mm APIs.
    pub fn as_raw(&self) -> *mut bindings::vm_area_struct {
        self.0.get()
    }
}

/// Callbacks of a VFIO device with an emulated IOMMU.
///
/// A driver that calls [`Device::pin_pages`] must unpin everything in the range given to
/// [`DeviceOps::dma_unmap`] before returning from it.
pub trait DeviceOps: Sized + Send + Sync + 'static {
    /// Name of the ops (`vfio_device_ops.name`).
    const NAME: &'static crate::str::CStr;

    /// First open of the device by a user.
    fn open_device(_dev: &Device<Self>) -> Result {
        Ok(())
    }
    /// Last close.
    fn close_device(_dev: &Device<Self>) {}
    /// `read(2)` at `offset`; returns the number of bytes written into `buf`.
    fn read(_dev: &Device<Self>, _buf: UserSliceWriter, _offset: u64) -> Result<usize> {
        Err(EINVAL)
    }
    /// `write(2)` at `offset`; returns the number of bytes consumed from `buf`.
    fn write(_dev: &Device<Self>, _buf: UserSliceReader, _offset: u64) -> Result<usize> {
        Err(EINVAL)
    }
    /// Device ioctls (`VFIO_DEVICE_*`); see [`uapi`].
    fn ioctl(_dev: &Device<Self>, _cmd: u32, _arg: usize) -> Result<isize> {
        Err(ENOTTY)
    }
    /// `mmap(2)` of a region.
    fn mmap(_dev: &Device<Self>, _vma: &VmArea) -> Result {
        Err(EINVAL)
    }
    /// The core asks the driver to release the device (e.g. unregistration is waiting).
    fn request(_dev: &Device<Self>, _count: u32) {}
    /// The user unmapped `iova..iova+length`: unpin pages pinned in it.
    fn dma_unmap(dev: &Device<Self>, iova: u64, length: u64);
}

/// A VFIO device with driver data `T`.
///
/// # Invariants
///
/// Lives in an allocation made by `_vfio_alloc_device` with `ops == Self::OPS`; `vdev` is
/// initialised by it; `data` is initialised iff `data_ready` is true; the allocation is freed by
/// the VFIO core after `release`, which drops `data`. Reference counted through the embedded
/// `struct device`. `parent` is null or the parent given to [`Device::new`] with a reference
/// of ours on it, dropped in `release`: the driver core references a device's parent only
/// while the device is registered, and the VFIO core not at all.
#[repr(C)]
pub struct Device<T: DeviceOps> {
    vdev: Opaque<bindings::vfio_device>,
    parent: *mut bindings::device,
    data_ready: bool,
    data: T,
}

impl<T: DeviceOps> Device<T> {
    const OPS: bindings::vfio_device_ops = {
        // SAFETY: all-zero is a valid `vfio_device_ops` (all callbacks `None`).
        let mut ops: bindings::vfio_device_ops = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
        ops.name = T::NAME.as_char_ptr().cast_mut();
        ops.release = Some(release_cb::<T>);
        ops.bind_iommufd = Some(bindings::vfio_iommufd_emulated_bind);
        ops.unbind_iommufd = Some(bindings::vfio_iommufd_emulated_unbind);
        ops.attach_ioas = Some(bindings::vfio_iommufd_emulated_attach_ioas);
        ops.detach_ioas = Some(bindings::vfio_iommufd_emulated_detach_ioas);
        ops.open_device = Some(open_cb::<T>);
        ops.close_device = Some(close_cb::<T>);
        ops.read = Some(read_cb::<T>);
        ops.write = Some(write_cb::<T>);
        ops.ioctl = Some(ioctl_cb::<T>);
        ops.mmap = Some(mmap_cb::<T>);
        ops.request = Some(request_cb::<T>);
        ops.dma_unmap = Some(dma_unmap_cb::<T>);
        ops
    };

    /// Allocates a VFIO device whose parent is `parent` and initialises its data in place.
    pub fn new(parent: &device::Device, init: impl PinInit<T, Error>) -> Result<ARef<Self>> {
        crate::build_assert!(core::mem::align_of::<Self>() <= 8, "vfio devices are kvzalloc'ed");
        // SAFETY: `parent` is valid; `OPS` is promoted to a 'static constant.
        let p = from_err_ptr(unsafe {
            bindings::_vfio_alloc_device(core::mem::size_of::<Self>(), parent.as_raw(), &Self::OPS)
        })?;
        let this = p.cast::<Self>();
        // SAFETY: `this` is the new, zeroed allocation; `parent` is valid and the reference
        // taken here is dropped by `release_cb` (type invariant), also on the error path below.
        unsafe {
            bindings::get_device(parent.as_raw());
            addr_of_mut!((*this).parent).write(parent.as_raw());
        }
        // SAFETY: the allocation is `size_of::<Self>()` zeroed bytes with `vdev` at offset 0
        // (`repr(C)`); `data` is not initialised yet (`data_ready` is false from kvzalloc) and
        // does not move (the allocation is never moved).
        match unsafe { init.__pinned_init(addr_of_mut!((*this).data)) } {
            Ok(()) => {
                // SAFETY: `this` is valid; nothing else sees it yet.
                unsafe { addr_of_mut!((*this).data_ready).write(true) };
                // SAFETY: we own the initial reference of the new device.
                Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(this)) })
            }
            Err(e) => {
                // SAFETY: drop the only reference; `release` skips the uninitialised data.
                unsafe { bindings::put_device(addr_of_mut!((*p).device)) };
                Err(e)
            }
        }
    }

    /// The raw `vfio_device`.
    pub fn as_raw(&self) -> *mut bindings::vfio_device {
        self.vdev.get()
    }

    /// # Safety
    ///
    /// `vdev` must be the `vfio_device` of a live `Device<T>` with initialised data.
    unsafe fn from_raw<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `vdev` is at offset 0 of `Device<T>` (`repr(C)`).
        unsafe { &*vdev.cast::<Self>() }
    }

    /// The parent device (the `dev` given to [`Device::new`]), valid as long as this device is
    /// (it holds a reference on it).
    pub fn parent(&self) -> &device::Device {
        // SAFETY: set to the parent at allocation with a reference of ours that is dropped only
        // in `release`, after the last reference to `self` (type invariant).
        unsafe { device::Device::as_ref(self.parent) }
    }

    /// The VFIO device's own `struct device`.
    pub fn device(&self) -> &device::Device {
        // SAFETY: embedded in a live `vfio_device`.
        unsafe { device::Device::as_ref(addr_of_mut!((*self.as_raw()).device)) }
    }

    /// Whether a user has the device open (the emulated IOMMU is usable only then).
    pub fn is_open(&self) -> bool {
        // SAFETY: valid device; a racy read, as `vfio_assert_device_open` does.
        unsafe { core::ptr::read_volatile(addr_of_mut!((*self.as_raw()).open_count)) != 0 }
    }

    fn pin_raw(&self, iova: u64, npage: usize, prot: crate::iommu::Prot) -> Result<crate::alloc::KVec<*mut bindings::page>> {
        if npage == 0 || npage > 512 || iova % crate::page::PAGE_SIZE as u64 != 0 {
            return Err(EINVAL);
        }
        // The C side WARNs (and fails) when the device is not open: refuse quietly instead.
        if !self.is_open() {
            return Err(ENODEV);
        }
        let mut pages = crate::alloc::KVec::with_capacity(npage, crate::alloc::flags::GFP_KERNEL)?;
        // SAFETY: `pages` has room for `npage` pointers; the core validates the rest.
        let n = unsafe {
            bindings::vfio_pin_pages(self.as_raw(), iova, npage as c_int, prot.to_c(), pages.as_mut_ptr())
        };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        if n as usize != npage {
            // SAFETY: `n` pages were pinned at `iova`.
            unsafe { bindings::vfio_unpin_pages(self.as_raw(), iova, n) };
            return Err(EFAULT);
        }
        // SAFETY: the core filled `npage` entries.
        unsafe { pages.set_len(npage) };
        Ok(pages)
    }

    /// Pins `npage` pages of the user's I/O address space from `iova` (`vfio_pin_pages`) for
    /// the duration of a borrow of the device; unpinned when the result is dropped. `ENODEV`
    /// if the device is not open.
    pub fn pin_pages(&self, iova: u64, npage: usize, prot: crate::iommu::Prot) -> Result<PinnedPages<'_, T>> {
        let pages = self.pin_raw(iova, npage, prot)?;
        // INVARIANT: pinned above.
        Ok(PinnedPages { dev: self, iova, pages })
    }

    /// Pins pages for as long as the driver keeps the result (e.g. in its device state). The
    /// driver must drop it from [`DeviceOps::dma_unmap`] for a range that covers it, and in
    /// [`DeviceOps::close_device`] at the latest (it holds a device reference, so a pin that is
    /// never dropped leaks the device).
    pub fn pin_pages_owned(self: &ARef<Self>, iova: u64, npage: usize, prot: crate::iommu::Prot) -> Result<OwnedPinnedPages<T>> {
        let pages = self.pin_raw(iova, npage, prot)?;
        // INVARIANT: pinned above.
        Ok(OwnedPinnedPages { dev: self.clone(), iova, pages })
    }

    /// Reads (`write == false`) or writes `buf` at `iova` of the user's I/O address space
    /// (`vfio_dma_rw`).
    pub fn dma_read(&self, iova: u64, buf: &mut [u8]) -> Result {
        if !self.is_open() {
            return Err(ENODEV);
        }
        // SAFETY: `buf` is valid for writes of its length.
        to_result(unsafe {
            bindings::vfio_dma_rw(self.as_raw(), iova, buf.as_mut_ptr().cast(), buf.len(), false)
        })
    }

    /// Writes `buf` at `iova` of the user's I/O address space (`vfio_dma_rw`).
    pub fn dma_write(&self, iova: u64, buf: &[u8]) -> Result {
        if !self.is_open() {
            return Err(ENODEV);
        }
        // SAFETY: `buf` is valid for reads; `vfio_dma_rw` does not write it when `write`.
        to_result(unsafe {
            bindings::vfio_dma_rw(self.as_raw(), iova, buf.as_ptr().cast_mut().cast(), buf.len(), true)
        })
    }
}

impl<T: DeviceOps> Deref for Device<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

// SAFETY: the embedded `struct device` is the reference count.
unsafe impl<T: DeviceOps> AlwaysRefCounted for Device<T> {
    fn inc_ref(&self) {
        // SAFETY: a shared reference proves the count is non-zero.
        unsafe { bindings::get_device(addr_of_mut!((*self.as_raw()).device)) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up one reference (`vfio_put_device`).
        unsafe { bindings::put_device(addr_of_mut!((*obj.as_ref().as_raw()).device)) };
    }
}

// SAFETY: `T: Send + Sync`; the C part is synchronised by the VFIO core.
unsafe impl<T: DeviceOps> Send for Device<T> {}
// SAFETY: as above.
unsafe impl<T: DeviceOps> Sync for Device<T> {}

/// Pages pinned with [`Device::pin_pages`]; unpinned on drop.
///
/// # Invariants
///
/// `pages.len()` pages at `iova` are pinned on `dev` and unpinned exactly once, in `drop`.
pub struct PinnedPages<'a, T: DeviceOps> {
    dev: &'a Device<T>,
    iova: u64,
    pages: crate::alloc::KVec<*mut bindings::page>,
}

impl<T: DeviceOps> PinnedPages<'_, T> {
    /// Number of pinned pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page is pinned (never: `pin_pages` rejects 0).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The first IOVA.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Physical address of page `i`.
    pub fn phys(&self, i: usize) -> Option<u64> {
        // SAFETY: pinned pages are valid (type invariant).
        self.pages.get(i).map(|&p| unsafe { bindings::page_to_phys(p) })
    }
}

impl<T: DeviceOps> PinnedPages<'_, T> {
    /// Maps pinned page `i` for DMA by `dev` (`dma_map_page`), typically the parent device of
    /// a mediated device that moves the data with its own DMA engine. The mapping borrows the
    /// pin, so it is unmapped (on drop) before the page can be unpinned.
    pub fn dma_map(&self, i: usize, dev: &device::Device, dir: crate::dma::DataDirection) -> Result<PinnedPageDma<'_>> {
        let page = *self.pages.get(i).ok_or(EINVAL)?;
        // SAFETY: `page` is pinned (type invariant) and stays so while the result borrows
        // `self`; `dev` is a valid device.
        let addr = unsafe {
            bindings::dma_map_page_attrs(dev.as_raw(), page, 0, crate::page::PAGE_SIZE, dir.into(), 0)
        };
        // SAFETY: valid device.
        if unsafe { bindings::dma_mapping_error(dev.as_raw(), addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above.
        Ok(PinnedPageDma { dev: dev.into(), addr, dir, _pin: core::marker::PhantomData })
    }
}

/// A pinned page mapped for DMA with [`PinnedPages::dma_map`]; unmapped on drop.
///
/// # Invariants
///
/// `addr` is the `dma_map_page` mapping of a whole pinned page for `dev` in direction `dir`,
/// unmapped exactly once, in `drop`, while the page is still pinned (the `'a` borrow).
pub struct PinnedPageDma<'a> {
    dev: crate::types::ARef<device::Device>,
    addr: crate::dma::DmaAddr,
    dir: crate::dma::DataDirection,
    _pin: core::marker::PhantomData<&'a ()>,
}

impl PinnedPageDma<'_> {
    /// The device address of the page.
    pub fn dma_addr(&self) -> crate::dma::DmaAddr {
        self.addr
    }
}

impl Drop for PinnedPageDma<'_> {
    fn drop(&mut self) {
        // SAFETY: mapped (type invariant), unmapped once, here.
        unsafe {
            bindings::dma_unmap_page_attrs(self.dev.as_raw(), self.addr, crate::page::PAGE_SIZE, self.dir.into(), 0)
        };
    }
}

impl<T: DeviceOps> Drop for PinnedPages<'_, T> {
    fn drop(&mut self) {
        // SAFETY: pinned (type invariant), unpinned once.
        unsafe { bindings::vfio_unpin_pages(self.dev.as_raw(), self.iova, self.pages.len() as c_int) };
    }
}

/// Pages pinned with [`Device::pin_pages_owned`]; unpinned on drop.
///
/// # Invariants
///
/// `pages.len()` pages at `iova` are pinned on `dev` and unpinned exactly once, in `drop`.
pub struct OwnedPinnedPages<T: DeviceOps> {
    dev: ARef<Device<T>>,
    iova: u64,
    pages: crate::alloc::KVec<*mut bindings::page>,
}

// SAFETY: the page pointers are pinned pages (plain references); unpinning works from any
// thread.
unsafe impl<T: DeviceOps> Send for OwnedPinnedPages<T> {}
// SAFETY: `&self` methods only read.
unsafe impl<T: DeviceOps> Sync for OwnedPinnedPages<T> {}

impl<T: DeviceOps> OwnedPinnedPages<T> {
    /// The first IOVA.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Number of pinned pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page is pinned (never).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether the pinned range intersects `iova..iova + length`.
    pub fn overlaps(&self, iova: u64, length: u64) -> bool {
        let end = self.iova + (self.pages.len() * crate::page::PAGE_SIZE) as u64;
        iova < end && self.iova < iova.saturating_add(length)
    }

    /// Physical address of page `i`.
    pub fn phys(&self, i: usize) -> Option<u64> {
        // SAFETY: pinned pages are valid (type invariant).
        self.pages.get(i).map(|&p| unsafe { bindings::page_to_phys(p) })
    }
}

impl<T: DeviceOps> Drop for OwnedPinnedPages<T> {
    fn drop(&mut self) {
        // SAFETY: pinned (type invariant), unpinned once.
        unsafe { bindings::vfio_unpin_pages(self.dev.as_raw(), self.iova, self.pages.len() as c_int) };
    }
}

/// The ranges of a device's I/O address space that users are unmapping right now: a driver that
/// pins pages on a user's request refuses to pin in them.
///
/// type1 (`vfio_dma_do_unmap`) calls [`DeviceOps::dma_unmap`] of every device in the container
/// with its lock dropped, takes the lock again and checks that nothing is pinned in the mapping;
/// while something is, it calls the devices again, and after 10 such rounds it `BUG()`s. So
/// returning from `dma_unmap` with nothing pinned is not enough: a pin of the range after the
/// callback returned but before type1 removed the mapping (a copy the same user starts from
/// another thread, or one another device of the container was still running) makes it retry,
/// and a user who keeps doing that crashes the host. iommufd blocks new pins of an area being
/// unmapped itself (`prevent_access`); the fence is harmless there.
///
/// [`UnmapFence::begin`], called from `dma_unmap`, fences the range until the task that is
/// unmapping returns to user space (a `task_work`), which is after type1 or iommufd removed the
/// mapping: a later `MAP_DMA` of the same IOVAs by that user is never fenced. If the task
/// cannot run a `task_work` (a kernel thread, an allocation failure), the range stays fenced
/// until [`UnmapFence::clear`] (the driver calls it when the device is closed).
pub struct UnmapFence {
    inner: crate::sync::Arc<FenceInner>,
}

struct FenceState {
    /// `(first IOVA, end, id)` of each fenced range.
    ranges: crate::alloc::KVec<(u64, u64, u64)>,
    next_id: u64,
    /// A range could not be recorded (allocation failure): everything is fenced until `clear`.
    all: bool,
}

#[macros::pin_data]
struct FenceInner {
    #[pin]
    state: crate::sync::Mutex<FenceState>,
}

impl FenceState {
    fn remove(&mut self, id: u64) {
        let v = self.ranges.as_mut_slice();
        if let Some(i) = v.iter().position(|r| r.2 == id) {
            let last = v.len() - 1;
            v.swap(i, last);
            // SAFETY: shrinks by one; the element left behind is `Copy` (nothing to drop).
            unsafe { self.ranges.set_len(last) };
        }
    }
}

impl FenceInner {
    fn lift(&self, id: u64) {
        self.state.lock().remove(id);
    }
}

/// The `task_work` that lifts one fenced range.
///
/// # Invariants
///
/// `head` is the first field (`repr(C)`): the `callback_head` pointer `task_work` hands back is
/// the pointer to this `KBox`ed object.
#[repr(C)]
struct FenceWork {
    head: bindings::callback_head,
    fence: crate::sync::Arc<FenceInner>,
    id: u64,
}

/// # Safety
///
/// Called only by `task_work_run` with the `head` of a `FenceWork` queued by `UnmapFence::begin`.
unsafe extern "C" fn fence_work_run(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the first field of a `KBox<FenceWork>` leaked by `begin` (type
    // invariant); `task_work` runs it once, so the box is taken back exactly once.
    let work = unsafe { crate::alloc::KBox::from_raw(head.cast::<FenceWork>()) };
    work.fence.lift(work.id);
}

impl UnmapFence {
    /// A fence with no range fenced.
    pub fn new() -> Result<Self> {
        use crate::init::InPlaceInit;
        let inner = crate::sync::Arc::pin_init(
            crate::pin_init!(FenceInner {
                state <- crate::new_mutex!(
                    FenceState { ranges: crate::alloc::KVec::new(), next_id: 0, all: false },
                    "vfio::UnmapFence"
                ),
            }),
            crate::alloc::flags::GFP_KERNEL,
        )?;
        Ok(Self { inner })
    }

    /// Fences `iova..iova + length` until the calling task returns to user space (see the type
    /// documentation). Call it from [`DeviceOps::dma_unmap`] before waiting for the pins.
    pub fn begin(&self, iova: u64, length: u64) {
        let gfp = crate::alloc::flags::GFP_KERNEL;
        let mut st = self.inner.state.lock();
        let id = st.next_id;
        st.next_id += 1;
        if st.ranges.push((iova, iova.saturating_add(length), id), gfp).is_err() {
            st.all = true;
            return;
        }
        drop(st);
        // SAFETY: `current` is always a valid task.
        let task = unsafe { bindings::get_current() };
        // SAFETY: as above; `flags` of the current task is read by the task itself.
        if unsafe { (*task).flags } & bindings::PF_KTHREAD != 0 {
            // A kernel thread never returns to user space: fenced until `clear`.
            return;
        }
        let work = FenceWork {
            // SAFETY: all-zero is a valid, unqueued `callback_head`.
            head: unsafe { core::mem::zeroed() },
            fence: self.inner.clone(),
            id,
        };
        let Ok(work) = crate::alloc::KBox::new(work, gfp) else {
            // Fenced until `clear`.
            return;
        };
        let p = crate::alloc::KBox::into_raw(work);
        // SAFETY: `p` is a live `FenceWork` we own; `init_task_work` sets only `func`; the
        // current task is live; on success `task_work` owns `p` until `fence_work_run`.
        let r = unsafe {
            (*p).head.func = Some(fence_work_run);
            bindings::task_work_add(task, addr_of_mut!((*p).head), bindings::task_work_notify_mode_TWA_RESUME)
        };
        if r != 0 {
            // The task is exiting: nothing will run the work, the range stays until `clear`.
            // SAFETY: not queued, so still ours.
            drop(unsafe { crate::alloc::KBox::from_raw(p) });
        }
    }

    /// Whether `iova..iova + length` intersects a fenced range.
    pub fn blocks(&self, iova: u64, length: u64) -> bool {
        let end = iova.saturating_add(length);
        let st = self.inner.state.lock();
        st.all || st.ranges.iter().any(|&(a, b, _)| iova < b && a < end)
    }

    /// Lifts every fence (the device was closed: nothing of the old user is pinned any more).
    pub fn clear(&self) {
        let mut st = self.inner.state.lock();
        // SAFETY: truncation; the elements are `Copy` (nothing to drop).
        unsafe { st.ranges.set_len(0) };
        st.all = false;
    }
}

/// What a driver that pins user pages for its own DMA needs so that `dma_unmap` can always
/// complete: an [`UnmapFence`] and a count of the scopes that may hold pins.
///
/// A driver pins only through a [`PinScope`] ([`PinGate::scope`]), which refuses fenced ranges
/// (`EFAULT`) and is counted while the pins it made live; [`PinGate::unmap`], called from
/// [`DeviceOps::dma_unmap`], fences the range first and then waits until every scope that was
/// live ends, so when it returns nothing is pinned in the range and nothing will be until the
/// unmapping task returns to user space (see [`UnmapFence`] for why both are needed with
/// type1). Scopes begun after the wait started (which see the fence) are not waited for, so a
/// device that keeps pinning cannot starve an unmap: scopes are counted in two epochs and a
/// wait flips the epoch, then waits for the old one to drain.
///
/// The wait is a condition variable, not a lock held across the pins, and lockdep does not
/// follow it. type1 calls `dma_unmap` holding `device_list_lock`, the pins and unpins a scope
/// covers take `iommu->lock`, and type1's `register_device` (another device of the container
/// being opened) takes `device_list_lock` under `iommu->lock`: the unpin type1 asks for from the
/// callback closes that cycle whoever does it, the callback itself included. As a lock the
/// gate made lockdep report the cycle through it (the minimal sample on the debug kernel); the
/// deadlock it describes is type1's (`docs/sample-mdev.md`, "type1's lock cycle") and stays
/// possible when another device of the container is opened or closed while an unmap waits for
/// a DMA in flight.
#[macros::pin_data]
pub struct PinGate {
    fence: UnmapFence,
    #[pin]
    state: crate::sync::Mutex<GateState>,
    /// Notified when an epoch's last scope ends.
    #[pin]
    drained: crate::sync::CondVar,
    /// Held by a waiter: one epoch flip at a time (never taken under a scope).
    #[pin]
    waiting: crate::sync::Mutex<()>,
}

/// Live scopes per epoch, and the epoch new scopes join.
struct GateState {
    live: [usize; 2],
    epoch: usize,
}

impl PinGate {
    /// A gate with nothing fenced.
    pub fn new() -> impl PinInit<Self, Error> {
        crate::try_pin_init!(Self {
            fence: UnmapFence::new()?,
            state <- crate::new_mutex!(GateState { live: [0; 2], epoch: 0 }, "vfio::PinGate::state"),
            drained <- crate::new_condvar!("vfio::PinGate::drained"),
            waiting <- crate::new_mutex!((), "vfio::PinGate::waiting"),
        }? Error)
    }

    /// Holds off [`PinGate::unmap`] until the scope, and every pin made through it, is dropped.
    /// Keep a scope short (a piece of work): an unmap waits for it.
    pub fn scope(&self) -> PinScope<'_> {
        let mut st = self.state.lock();
        let epoch = st.epoch;
        st.live[epoch] += 1;
        PinScope { gate: self, epoch }
    }

    /// For [`DeviceOps::dma_unmap`]: fences `iova..iova + length`, then waits until every scope
    /// (which may hold pins) that was live ends.
    pub fn unmap(&self, iova: u64, length: u64) {
        self.fence.begin(iova, length);
        self.wait_idle();
    }

    /// Waits until every scope live when it was called has ended: for a reset that must return
    /// with none of the device's pins, and so none of its DMA, left (a scope begun meanwhile
    /// must see the reset itself, e.g. a generation the driver bumped before calling this).
    pub fn wait_idle(&self) {
        let _one = self.waiting.lock();
        let mut st = self.state.lock();
        let old = st.epoch;
        st.epoch ^= 1;
        while st.live[old] != 0 {
            self.drained.wait(&mut st);
        }
    }

    /// Whether the pages holding the `len` bytes at `iova` can be pinned with `prot` now
    /// (pins, then unpins them): for a device model that refuses a command before moving a
    /// byte when part of it is unmapped. `EINVAL` for an empty or wrapping range or one of
    /// more than 512 pages, `EFAULT` in a fenced range, the pinning error otherwise.
    pub fn pinnable<T: DeviceOps>(&self, dev: &Device<T>, iova: u64, len: u64, prot: crate::iommu::Prot) -> Result {
        self.scope().pinnable(dev, iova, len, prot)
    }

    /// Lifts every fence (the device was closed: nothing of the old user is pinned any more).
    pub fn clear(&self) {
        self.fence.clear();
    }
}

/// The first page and the number of pages holding `len` bytes at `iova`; `EINVAL` for an
/// empty or wrapping range, or one of more than 512 pages (`vfio_pin_pages`' limit).
pub fn page_span(iova: u64, len: u64) -> Result<(u64, usize)> {
    let page = crate::page::PAGE_SIZE as u64;
    let last = iova.checked_add(len.checked_sub(1).ok_or(EINVAL)?).ok_or(EINVAL)?;
    let first = iova & !(page - 1);
    let npage = usize::try_from((last & !(page - 1)) / page - first / page + 1).map_err(|_| EINVAL)?;
    if npage > 512 {
        return Err(EINVAL);
    }
    Ok((first, npage))
}

/// A [`PinGate`] held: pins made through it hold off unmaps until they and the scope drop.
pub struct PinScope<'a> {
    gate: &'a PinGate,
    /// The epoch it is counted in.
    epoch: usize,
}

impl PinScope<'_> {
    /// `EFAULT` if part of `iova..iova + length` is being unmapped (fenced).
    pub fn check(&self, iova: u64, length: u64) -> Result {
        if self.gate.fence.blocks(iova, length) {
            return Err(EFAULT);
        }
        Ok(())
    }

    /// [`Device::pin_pages`] unless part of the range is being unmapped (`EFAULT`); the pins
    /// cannot outlive the scope.
    pub fn pin<'b, T: DeviceOps>(
        &'b self,
        dev: &'b Device<T>,
        iova: u64,
        npage: usize,
        prot: crate::iommu::Prot,
    ) -> Result<PinnedPages<'b, T>> {
        let length = (npage as u64).saturating_mul(crate::page::PAGE_SIZE as u64);
        self.check(iova, length)?;
        dev.pin_pages(iova, npage, prot)
    }

    /// [`PinGate::pinnable`] inside this scope.
    pub fn pinnable<T: DeviceOps>(&self, dev: &Device<T>, iova: u64, len: u64, prot: crate::iommu::Prot) -> Result {
        let (first, npage) = page_span(iova, len)?;
        self.pin(dev, first, npage, prot).map(drop)
    }
}

impl Drop for PinScope<'_> {
    fn drop(&mut self) {
        let mut st = self.gate.state.lock();
        st.live[self.epoch] -= 1;
        if st.live[self.epoch] == 0 {
            self.gate.drained.notify_all();
        }
    }
}

/// A registered emulated-IOMMU VFIO device; unregistered on drop.
///
/// # Invariants
///
/// `dev` is registered with `vfio_register_emulated_iommu_dev` until drop.
pub struct Registration<T: DeviceOps> {
    dev: ARef<Device<T>>,
}

impl<T: DeviceOps> Registration<T> {
    /// Registers `dev` (`vfio_register_emulated_iommu_dev`): a device node appears.
    pub fn new(dev: &ARef<Device<T>>) -> Result<Self> {
        // SAFETY: valid, initialised device.
        to_result(unsafe { bindings::vfio_register_emulated_iommu_dev(dev.as_raw()) })?;
        // INVARIANT: registered above.
        Ok(Self { dev: dev.clone() })
    }

    /// The device.
    pub fn device(&self) -> &ARef<Device<T>> {
        &self.dev
    }
}

impl<T: DeviceOps> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant). Waits until users closed the device.
        unsafe { bindings::vfio_unregister_group_dev(self.dev.as_raw()) };
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn release_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device) {
    let this = vdev.cast::<Device<T>>();
    // SAFETY: last reference gone; the core frees the allocation after this returns. The data
    // is dropped only if it was initialised, the parent reference only if it was taken (type
    // invariant).
    unsafe {
        if *addr_of_mut!((*this).data_ready) {
            core::ptr::drop_in_place(addr_of_mut!((*this).data));
        }
        let parent = *addr_of_mut!((*this).parent);
        if !parent.is_null() {
            bindings::put_device(parent);
        }
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn open_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device) -> c_int {
    // SAFETY: callbacks only run on registered devices, whose data is initialised.
    let d = unsafe { Device::<T>::from_raw(vdev) };
    from_result(|| T::open_device(d).map(|()| 0))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn close_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device) {
    // SAFETY: as in `open_cb`.
    T::close_device(unsafe { Device::<T>::from_raw(vdev) })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn read_cb<T: DeviceOps>(
    vdev: *mut bindings::vfio_device,
    buf: *mut c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: as in `open_cb`.
    let d = unsafe { Device::<T>::from_raw(vdev) };
    from_result(|| {
        // SAFETY: `ppos` is valid for the call.
        let pos = unsafe { *ppos };
        let n = T::read(d, UserSlice::new(buf as usize, count).writer(), pos as u64)?;
        let n = n.min(count);
        // SAFETY: as above.
        unsafe { *ppos = pos + n as bindings::loff_t };
        Ok(n as isize)
    })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn write_cb<T: DeviceOps>(
    vdev: *mut bindings::vfio_device,
    buf: *const c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: as in `open_cb`.
    let d = unsafe { Device::<T>::from_raw(vdev) };
    from_result(|| {
        // SAFETY: `ppos` is valid for the call.
        let pos = unsafe { *ppos };
        let n = T::write(d, UserSlice::new(buf as usize, count).reader(), pos as u64)?;
        let n = n.min(count);
        // SAFETY: as above.
        unsafe { *ppos = pos + n as bindings::loff_t };
        Ok(n as isize)
    })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn ioctl_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: as in `open_cb`.
    let d = unsafe { Device::<T>::from_raw(vdev) };
    from_result(|| T::ioctl(d, cmd, arg).map(|v| v as c_long))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn mmap_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device, vma: *mut bindings::vm_area_struct) -> c_int {
    // SAFETY: as in `open_cb`; `vma` is valid for the call and `VmArea` is transparent.
    let (d, v) = unsafe { (Device::<T>::from_raw(vdev), &*vma.cast::<VmArea>()) };
    from_result(|| T::mmap(d, v).map(|()| 0))
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn request_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device, count: c_uint) {
    // SAFETY: as in `open_cb`.
    T::request(unsafe { Device::<T>::from_raw(vdev) }, count)
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn dma_unmap_cb<T: DeviceOps>(vdev: *mut bindings::vfio_device, iova: u64, length: u64) {
    // SAFETY: as in `open_cb`.
    T::dma_unmap(unsafe { Device::<T>::from_raw(vdev) }, iova, length)
}

/// Typed, validated VFIO device ioctl arguments (`include/uapi/linux/vfio.h`).
///
/// Requests are read from user memory as the bindgen structures (`bindings::vfio_*`): the first
/// `minsz` bytes (`offsetofend` of the last field the ioctl requires, as the C handlers copy), the
/// rest zero. `argsz` is checked against `minsz`; replies are the same structures, written back
/// truncated to the user's `argsz`, as the VFIO ABI requires. The `parse`/`encode` functions work
/// on the structures so they can be tested without user memory; the `from_user`/`to_user`
/// wrappers use [`UserSlice`] only.
pub mod uapi {
    use super::*;
    use crate::alloc::{flags::GFP_KERNEL, KVec};
    use crate::types::{AsBytes, FromBytes};
    use core::mem::{offset_of, size_of, MaybeUninit};

    const VFIO_BASE: u32 = 100;
    const fn vfio_io(nr: u32) -> u32 {
        crate::ioctl::_IO(b';' as u32, VFIO_BASE + nr)
    }
    /// `VFIO_DEVICE_GET_INFO`
    pub const DEVICE_GET_INFO: u32 = vfio_io(7);
    /// `VFIO_DEVICE_GET_REGION_INFO`
    pub const DEVICE_GET_REGION_INFO: u32 = vfio_io(8);
    /// `VFIO_DEVICE_GET_IRQ_INFO`
    pub const DEVICE_GET_IRQ_INFO: u32 = vfio_io(9);
    /// `VFIO_DEVICE_SET_IRQS`
    pub const DEVICE_SET_IRQS: u32 = vfio_io(10);
    /// `VFIO_DEVICE_RESET`
    pub const DEVICE_RESET: u32 = vfio_io(11);

    /// `VFIO_DEVICE_FLAGS_RESET`
    pub const DEVICE_FLAGS_RESET: u32 = bindings::VFIO_DEVICE_FLAGS_RESET;
    /// `VFIO_DEVICE_FLAGS_PCI`
    pub const DEVICE_FLAGS_PCI: u32 = bindings::VFIO_DEVICE_FLAGS_PCI;
    /// `VFIO_REGION_INFO_FLAG_READ`
    pub const REGION_READ: u32 = bindings::VFIO_REGION_INFO_FLAG_READ;
    /// `VFIO_REGION_INFO_FLAG_WRITE`
    pub const REGION_WRITE: u32 = bindings::VFIO_REGION_INFO_FLAG_WRITE;
    /// `VFIO_REGION_INFO_FLAG_MMAP`
    pub const REGION_MMAP: u32 = bindings::VFIO_REGION_INFO_FLAG_MMAP;
    /// `VFIO_REGION_INFO_FLAG_CAPS`
    pub const REGION_CAPS: u32 = bindings::VFIO_REGION_INFO_FLAG_CAPS;
    /// `VFIO_IRQ_INFO_EVENTFD`
    pub const IRQ_INFO_EVENTFD: u32 = bindings::VFIO_IRQ_INFO_EVENTFD;
    /// `VFIO_IRQ_INFO_MASKABLE`
    pub const IRQ_INFO_MASKABLE: u32 = bindings::VFIO_IRQ_INFO_MASKABLE;
    /// `VFIO_IRQ_INFO_AUTOMASKED`
    pub const IRQ_INFO_AUTOMASKED: u32 = bindings::VFIO_IRQ_INFO_AUTOMASKED;
    /// `VFIO_IRQ_INFO_NORESIZE`
    pub const IRQ_INFO_NORESIZE: u32 = bindings::VFIO_IRQ_INFO_NORESIZE;
    const SET_DATA_NONE: u32 = bindings::VFIO_IRQ_SET_DATA_NONE;
    const SET_DATA_BOOL: u32 = bindings::VFIO_IRQ_SET_DATA_BOOL;
    const SET_DATA_EVENTFD: u32 = bindings::VFIO_IRQ_SET_DATA_EVENTFD;
    const SET_ACTION_MASK: u32 = bindings::VFIO_IRQ_SET_ACTION_MASK;
    const SET_ACTION_UNMASK: u32 = bindings::VFIO_IRQ_SET_ACTION_UNMASK;
    const SET_ACTION_TRIGGER: u32 = bindings::VFIO_IRQ_SET_ACTION_TRIGGER;
    const SET_DATA_MASK: u32 = SET_DATA_NONE | SET_DATA_BOOL | SET_DATA_EVENTFD;
    const SET_ACTION_MASK_ALL: u32 = SET_ACTION_MASK | SET_ACTION_UNMASK | SET_ACTION_TRIGGER;
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`
    pub const CAP_SPARSE_MMAP: u16 = bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16;
    /// `VFIO_REGION_INFO_CAP_TYPE`
    pub const CAP_TYPE: u16 = bindings::VFIO_REGION_INFO_CAP_TYPE as u16;

    /// `struct vfio_device_info`
    pub type DeviceInfoArg = bindings::vfio_device_info;
    /// `struct vfio_region_info`
    pub type RegionInfoArg = bindings::vfio_region_info;
    /// `struct vfio_irq_info`
    pub type IrqInfoArg = bindings::vfio_irq_info;
    /// `struct vfio_irq_set` (the fixed header; the data follows it)
    pub type IrqSetArg = bindings::vfio_irq_set;

    /// `minsz` of `VFIO_DEVICE_GET_INFO`: up to `num_irqs` (`cap_offset` came later).
    pub const DEVICE_INFO_MINSZ: usize = offset_of!(DeviceInfoArg, num_irqs) + size_of::<u32>();
    /// `minsz` of `VFIO_DEVICE_GET_REGION_INFO`: up to `offset`, the whole structure.
    pub const REGION_INFO_MINSZ: usize = offset_of!(RegionInfoArg, offset) + size_of::<u64>();
    /// `minsz` of `VFIO_DEVICE_GET_IRQ_INFO`: up to `count`, the whole structure.
    pub const IRQ_INFO_MINSZ: usize = offset_of!(IrqInfoArg, count) + size_of::<u32>();
    /// `minsz` of `VFIO_DEVICE_SET_IRQS`: up to `count`; the data follows.
    pub const IRQ_SET_MINSZ: usize = offset_of!(IrqSetArg, count) + size_of::<u32>();

    // The replies are written byte for byte: no padding may leak kernel memory (`AsBytes`).
    crate::static_assert!(size_of::<DeviceInfoArg>() == 6 * 4);
    crate::static_assert!(size_of::<RegionInfoArg>() == 4 * 4 + 2 * 8);
    crate::static_assert!(size_of::<IrqInfoArg>() == 4 * 4);
    crate::static_assert!(size_of::<IrqSetArg>() == IRQ_SET_MINSZ);
    crate::static_assert!(size_of::<bindings::vfio_info_cap_header>() == 2 + 2 + 4);
    crate::static_assert!(size_of::<bindings::vfio_region_sparse_mmap_area>() == 2 * 8);
    crate::static_assert!(offset_of!(bindings::vfio_region_info_cap_sparse_mmap, areas) == 8 + 8);

    // SAFETY: `repr(C)` structures of integers only (and, for `vfio_irq_set`, a zero-sized
    // trailing array): every bit pattern is valid; no interior mutability.
    unsafe impl FromBytes for DeviceInfoArg {}
    // SAFETY: as above.
    unsafe impl FromBytes for RegionInfoArg {}
    // SAFETY: as above.
    unsafe impl FromBytes for IrqInfoArg {}
    // SAFETY: as above.
    unsafe impl FromBytes for IrqSetArg {}
    // SAFETY: integers only and no padding (sizes asserted above): every byte is initialised.
    unsafe impl AsBytes for DeviceInfoArg {}
    // SAFETY: as above.
    unsafe impl AsBytes for RegionInfoArg {}
    // SAFETY: as above.
    unsafe impl AsBytes for IrqInfoArg {}
    // SAFETY: as above.
    unsafe impl AsBytes for bindings::vfio_info_cap_header {}
    // SAFETY: as above.
    unsafe impl AsBytes for bindings::vfio_region_sparse_mmap_area {}

    /// The bytes of `v` (6.12's `AsBytes` has no `as_bytes` yet).
    fn bytes_of<T: AsBytes>(v: &T) -> &[u8] {
        // SAFETY: `v` is valid for reads of its size, and every byte of an `AsBytes` value is
        // initialised.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
    }

    /// A `T` from the first `minsz` bytes of `bytes`, the rest zero, as C copies `minsz` bytes
    /// into a zeroed structure. `EINVAL` if `bytes` is shorter than `minsz` or `minsz` longer
    /// than `T`.
    pub fn from_prefix<T: FromBytes>(bytes: &[u8], minsz: usize) -> Result<T> {
        let src = bytes.get(..minsz).ok_or(EINVAL)?;
        if minsz > size_of::<T>() {
            return Err(EINVAL);
        }
        let mut v = MaybeUninit::<T>::zeroed();
        // SAFETY: `v` has room for `size_of::<T>() >= minsz` bytes; the regions do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), v.as_mut_ptr().cast::<u8>(), minsz) };
        // SAFETY: every byte is initialised (zeroed, then partly copied) and any bytes are a
        // valid `T` (`FromBytes`).
        Ok(unsafe { v.assume_init() })
    }

    /// Reads a `T` from the first `minsz` bytes at user address `arg`, the rest zero.
    pub fn read_user<T: FromBytes>(arg: usize, minsz: usize) -> Result<T> {
        if minsz > size_of::<T>() {
            return Err(EINVAL);
        }
        let mut v = MaybeUninit::<T>::zeroed();
        // SAFETY: `v` is `size_of::<T>() >= minsz` bytes, writable; `MaybeUninit<u8>` has no
        // validity requirement.
        let dst = unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<MaybeUninit<u8>>(), minsz) };
        UserSlice::new(arg, minsz).reader().read_raw(dst)?;
        // SAFETY: as in `from_prefix`.
        Ok(unsafe { v.assume_init() })
    }

    /// Writes `reply` truncated to the user's `argsz`.
    pub fn write_user(arg: usize, argsz: u32, reply: &[u8]) -> Result {
        let n = reply.len().min(argsz as usize);
        UserSlice::new(arg, n).writer().write_slice(&reply[..n])
    }

    /// Checks `argsz` against `minsz`; returns it.
    pub fn check_argsz(argsz: u32, minsz: usize) -> Result<u32> {
        if (argsz as usize) < minsz {
            return Err(EINVAL);
        }
        Ok(argsz)
    }

    /// `VFIO_DEVICE_GET_INFO` reply.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DeviceInfo {
        /// `VFIO_DEVICE_FLAGS_*`
        pub flags: u32,
        /// Number of regions.
        pub num_regions: u32,
        /// Number of IRQ indices.
        pub num_irqs: u32,
    }

    impl DeviceInfo {
        /// Validates the request; returns the user's `argsz`.
        pub fn parse(req: &DeviceInfoArg) -> Result<u32> {
            check_argsz(req.argsz, DEVICE_INFO_MINSZ)
        }

        /// Encodes the reply (no capabilities).
        pub fn encode(&self, argsz: u32) -> DeviceInfoArg {
            DeviceInfoArg {
                argsz: argsz.max(size_of::<DeviceInfoArg>() as u32),
                flags: self.flags,
                num_regions: self.num_regions,
                num_irqs: self.num_irqs,
                ..Default::default()
            }
        }

        /// Handles `VFIO_DEVICE_GET_INFO` with user argument `arg`.
        pub fn reply_to_user(&self, arg: usize) -> Result<isize> {
            let argsz = Self::parse(&read_user(arg, DEVICE_INFO_MINSZ)?)?;
            write_user(arg, argsz, bytes_of(&self.encode(argsz)))?;
            Ok(0)
        }
    }

    /// A region-info capability chain under construction.
    pub struct CapChain {
        bytes: KVec<u8>,
        /// Offset in `bytes` and contents of the last header, linked to the next one added.
        last: Option<(usize, bindings::vfio_info_cap_header)>,
    }

    impl CapChain {
        /// An empty chain.
        pub fn new() -> Self {
            Self { bytes: KVec::new(), last: None }
        }

        /// Appends a capability (`struct vfio_info_cap_header` + `payload`, 8-byte aligned).
        pub fn add(&mut self, id: u16, version: u16, payload: &[u8]) -> Result {
            const HDR: usize = size_of::<bindings::vfio_info_cap_header>();
            let start = self.bytes.len();
            let len = (HDR + payload.len()).checked_add(7).ok_or(EINVAL)? & !7;
            // Offsets count from the start of the info structure the chain follows.
            let off = u32::try_from(size_of::<RegionInfoArg>() + start).map_err(|_| EINVAL)?;
            self.bytes.extend_with(len, 0, GFP_KERNEL)?;
            let hdr = bindings::vfio_info_cap_header { id, version, next: 0 };
            self.bytes[start..start + HDR].copy_from_slice(bytes_of(&hdr));
            self.bytes[start + HDR..start + HDR + payload.len()].copy_from_slice(payload);
            if let Some((prev, mut prev_hdr)) = self.last.take() {
                prev_hdr.next = off;
                self.bytes[prev..prev + HDR].copy_from_slice(bytes_of(&prev_hdr));
            }
            self.last = Some((start, hdr));
            Ok(())
        }

        /// Whether the chain is empty.
        pub fn is_empty(&self) -> bool {
            self.bytes.is_empty()
        }

        /// The encoded chain (to follow a `vfio_region_info`).
        pub fn as_bytes(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl Default for CapChain {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Builds the payload of a `VFIO_REGION_INFO_CAP_SPARSE_MMAP` capability (the part of
    /// `struct vfio_region_info_cap_sparse_mmap` after its header).
    pub fn sparse_mmap_payload(areas: &[(u64, u64)]) -> Result<KVec<u8>> {
        const HDR: usize = size_of::<bindings::vfio_info_cap_header>();
        let first = offset_of!(bindings::vfio_region_info_cap_sparse_mmap, areas) - HDR;
        let nr = offset_of!(bindings::vfio_region_info_cap_sparse_mmap, nr_areas) - HDR;
        let nr_areas = u32::try_from(areas.len()).map_err(|_| EINVAL)?;
        let mut v = KVec::with_capacity(first + areas.len() * size_of::<bindings::vfio_region_sparse_mmap_area>(), GFP_KERNEL)?;
        v.extend_with(first, 0, GFP_KERNEL)?;
        v[nr..nr + 4].copy_from_slice(&nr_areas.to_ne_bytes());
        for &(offset, size) in areas {
            v.extend_from_slice(bytes_of(&bindings::vfio_region_sparse_mmap_area { offset, size }), GFP_KERNEL)?;
        }
        Ok(v)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegionInfoRequest {
        /// The user's `argsz`.
        pub argsz: u32,
        /// Region index, checked against the device's region count.
        pub index: u32,
    }

    impl RegionInfoRequest {
        /// Validates the request against `num_regions`.
        pub fn parse(req: &RegionInfoArg, num_regions: u32) -> Result<Self> {
            let argsz = check_argsz(req.argsz, REGION_INFO_MINSZ)?;
            if req.index >= num_regions {
                return Err(EINVAL);
            }
            Ok(Self { argsz, index: req.index })
        }

        /// Reads and validates the request from user memory.
        pub fn from_user(arg: usize, num_regions: u32) -> Result<Self> {
            Self::parse(&read_user(arg, REGION_INFO_MINSZ)?, num_regions)
        }
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` reply.
    pub struct RegionInfo<'a> {
        /// `VFIO_REGION_INFO_FLAG_*` (`CAPS` is added when there are capabilities).
        pub flags: u32,
        /// Region size.
        pub size: u64,
        /// Offset of the region in the device file.
        pub offset: u64,
        /// Capabilities.
        pub caps: Option<&'a CapChain>,
    }

    impl RegionInfo<'_> {
        /// Encodes the reply for `req`. If the capabilities do not fit in the user's `argsz`,
        /// only the fixed part is returned with `argsz` set to the size needed and
        /// `cap_offset` 0 (the VFIO convention).
        pub fn encode(&self, req: &RegionInfoRequest) -> Result<KVec<u8>> {
            const FIXED: usize = size_of::<RegionInfoArg>();
            let caps = self.caps.map(|c| c.as_bytes()).unwrap_or(&[]);
            let needed = FIXED + caps.len();
            let fits = (req.argsz as usize) >= needed;
            let mut flags = self.flags;
            if !caps.is_empty() {
                flags |= REGION_CAPS;
            }
            let info = RegionInfoArg {
                argsz: u32::try_from(needed.max(req.argsz as usize)).map_err(|_| EINVAL)?,
                flags,
                index: req.index,
                cap_offset: if fits && !caps.is_empty() { FIXED as u32 } else { 0 },
                size: self.size,
                offset: self.offset,
            };
            let mut b = KVec::with_capacity(if fits { needed } else { FIXED }, GFP_KERNEL)?;
            b.extend_from_slice(bytes_of(&info), GFP_KERNEL)?;
            if fits {
                b.extend_from_slice(caps, GFP_KERNEL)?;
            }
            Ok(b)
        }

        /// Writes the reply for `req` to user memory at `arg`.
        pub fn reply_to_user(&self, req: &RegionInfoRequest, arg: usize) -> Result<isize> {
            let b = self.encode(req)?;
            write_user(arg, req.argsz.max(size_of::<RegionInfoArg>() as u32), &b)?;
            Ok(0)
        }
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IrqInfoRequest {
        /// The user's `argsz`.
        pub argsz: u32,
        /// IRQ index, checked against the device's IRQ index count.
        pub index: u32,
    }

    impl IrqInfoRequest {
        /// Validates the request against `num_irqs`.
        pub fn parse(req: &IrqInfoArg, num_irqs: u32) -> Result<Self> {
            let argsz = check_argsz(req.argsz, IRQ_INFO_MINSZ)?;
            if req.index >= num_irqs {
                return Err(EINVAL);
            }
            Ok(Self { argsz, index: req.index })
        }

        /// Reads and validates the request from user memory.
        pub fn from_user(arg: usize, num_irqs: u32) -> Result<Self> {
            Self::parse(&read_user(arg, IRQ_INFO_MINSZ)?, num_irqs)
        }

        /// Encodes the reply.
        pub fn encode(&self, flags: u32, count: u32) -> IrqInfoArg {
            IrqInfoArg { argsz: self.argsz, flags, index: self.index, count }
        }

        /// Writes the reply to user memory at `arg`.
        pub fn reply_to_user(&self, arg: usize, flags: u32, count: u32) -> Result<isize> {
            write_user(arg, self.argsz, bytes_of(&self.encode(flags, count)))?;
            Ok(0)
        }
    }

    /// The action of a `VFIO_DEVICE_SET_IRQS`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum IrqAction {
        /// `VFIO_IRQ_SET_ACTION_MASK`
        Mask,
        /// `VFIO_IRQ_SET_ACTION_UNMASK`
        Unmask,
        /// `VFIO_IRQ_SET_ACTION_TRIGGER`
        Trigger,
    }

    /// The data of a `VFIO_DEVICE_SET_IRQS`.
    #[derive(Debug, PartialEq, Eq)]
    pub enum IrqSetData {
        /// `VFIO_IRQ_SET_DATA_NONE`
        None,
        /// `VFIO_IRQ_SET_DATA_BOOL`: one byte per vector.
        Bool(KVec<bool>),
        /// `VFIO_IRQ_SET_DATA_EVENTFD`: one fd per vector; -1 tears the trigger down.
        Eventfd(KVec<i32>),
    }

    /// A validated `VFIO_DEVICE_SET_IRQS`.
    #[derive(Debug, PartialEq, Eq)]
    pub struct IrqSet {
        /// IRQ index.
        pub index: u32,
        /// First vector.
        pub start: u32,
        /// Number of vectors (0 with `DATA_NONE` + `TRIGGER` means "disable all").
        pub count: u32,
        /// Action.
        pub action: IrqAction,
        /// Data.
        pub data: IrqSetData,
    }

    impl IrqSet {
        /// Validates the fixed header (as `vfio_set_irqs_validate_and_prepare` does) for a
        /// device with `num_irqs` indices whose index `i` has `irq_count(i)` vectors; returns
        /// the size of the data that follows it.
        pub fn check_header(hdr: &IrqSetArg, num_irqs: u32, irq_count: impl Fn(u32) -> u32) -> Result<usize> {
            let argsz = check_argsz(hdr.argsz, IRQ_SET_MINSZ)?;
            let (flags, index, start, count) = (hdr.flags, hdr.index, hdr.start, hdr.count);
            if flags & !(SET_DATA_MASK | SET_ACTION_MASK_ALL) != 0
                || (flags & SET_DATA_MASK).count_ones() != 1
                || (flags & SET_ACTION_MASK_ALL).count_ones() != 1
                || index >= num_irqs
            {
                return Err(EINVAL);
            }
            let max = irq_count(index);
            if start >= max && !(start == 0 && count == 0) || start.checked_add(count).ok_or(EINVAL)? > max {
                return Err(EINVAL);
            }
            let elem = match flags & SET_DATA_MASK {
                SET_DATA_BOOL => 1,
                SET_DATA_EVENTFD => 4,
                _ => 0,
            };
            let size = elem * count as usize;
            if elem != 0 && (count == 0 || (argsz as usize) < IRQ_SET_MINSZ + size) {
                return Err(EINVAL);
            }
            Ok(size)
        }

        /// Parses a whole request: the header and the `data` that followed it.
        pub fn parse(hdr: &IrqSetArg, data: &[u8], num_irqs: u32, irq_count: impl Fn(u32) -> u32) -> Result<Self> {
            let size = Self::check_header(hdr, num_irqs, irq_count)?;
            let data = data.get(..size).ok_or(EINVAL)?;
            let action = match hdr.flags & SET_ACTION_MASK_ALL {
                SET_ACTION_MASK => IrqAction::Mask,
                SET_ACTION_UNMASK => IrqAction::Unmask,
                _ => IrqAction::Trigger,
            };
            let data = match hdr.flags & SET_DATA_MASK {
                SET_DATA_BOOL => {
                    let mut v = KVec::with_capacity(size, GFP_KERNEL)?;
                    for &b in data {
                        v.push(b != 0, GFP_KERNEL)?;
                    }
                    IrqSetData::Bool(v)
                }
                SET_DATA_EVENTFD => {
                    let mut v = KVec::with_capacity(size / 4, GFP_KERNEL)?;
                    for c in data.chunks_exact(4) {
                        v.push(i32::from_ne_bytes([c[0], c[1], c[2], c[3]]), GFP_KERNEL)?;
                    }
                    IrqSetData::Eventfd(v)
                }
                _ => IrqSetData::None,
            };
            Ok(Self { index: hdr.index, start: hdr.start, count: hdr.count, action, data })
        }

        /// Reads and validates a request from user memory: the header once, then the data that
        /// follows it (as C's `memdup_user(arg + minsz, data_size)`), so nothing is read twice.
        pub fn from_user(arg: usize, num_irqs: u32, irq_count: impl Fn(u32) -> u32 + Copy) -> Result<Self> {
            let hdr: IrqSetArg = read_user(arg, IRQ_SET_MINSZ)?;
            let size = Self::check_header(&hdr, num_irqs, irq_count)?;
            let mut data = KVec::new();
            data.extend_with(size, 0, GFP_KERNEL)?;
            UserSlice::new(arg.checked_add(IRQ_SET_MINSZ).ok_or(EFAULT)?, size).reader().read_slice(&mut data)?;
            Self::parse(&hdr, &data, num_irqs, irq_count)
        }
    }
}
