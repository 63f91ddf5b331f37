// SPDX-License-Identifier: GPL-2.0

//! PCI devices and drivers.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)
//!
//! - [`Driver`]: a PCI driver with an ID table ([`pci_device_table!`](crate::pci_device_table)),
//!   `probe` returning the driver's pinned data and an optional `remove` hook; registered with
//!   [`Registration`] or the [`module_pci_driver!`](crate::module_pci_driver) macro.
//! - [`Device`]: a `struct pci_dev` in a device context ([`device::Normal`],
//!   [`device::Bound`], [`device::Core`]: the hierarchy of [`device::Device`], which
//!   `AsRef` gives in the same context). `Device<Core>` is what `probe`/`remove` see: the
//!   device is bound (or being bound) and its device lock is held, so the methods that set up
//!   device-bound resources (enable, bus master, DMA mask, IRQ vectors, PASID) are there;
//!   BAR mapping needs only `Device<Bound>`. Everything set up through them is released at
//!   unbind at the latest.
//! - [`Bar<SIZE>`]: a mapped BAR of at least `SIZE` bytes with build-time checked accessors for
//!   constant register offsets below `SIZE` and run-time checked `try_*` ones
//!   ([`crate::io::Io`]), handed out as a [`Devres<Bar>`] so it cannot be used after unbind.
//!
//! Modelled on upstream Rust-for-Linux `rust/kernel/pci.rs` (v6.16), written for 6.12.

use crate::{
    alloc::flags::GFP_KERNEL,
    bindings,
    device::{self, Bound, Core, DeviceContext, Normal},
    devres::{self, Devres},
    error::{code::*, from_result, to_result, Error, Result},
    init::PinInit,
    io::{Io, IoRaw},
    irq,
    str::CStr,
    types::{ARef, AlwaysRefCounted, Opaque},
    ThisModule,
};
use crate::ffi::{c_int, c_void};
use core::{
    marker::PhantomData,
    ops::Deref,
    ptr::{addr_of_mut, NonNull},
};

/// A PCI device (`struct pci_dev`).
///
/// # Invariants
///
/// The wrapped `pci_dev` is valid, in context `Ctx` (see [`device::Device`]): for [`Normal`]
/// because a reference count is held (through [`ARef`]) or a caller-guaranteed borrow, for
/// [`Core`] because the driver core calls `probe`/`remove` with the device referenced, bound
/// and locked.
#[repr(transparent)]
pub struct Device<Ctx: DeviceContext = Normal>(Opaque<bindings::pci_dev>, PhantomData<Ctx>);

impl<Ctx: DeviceContext> Device<Ctx> {
    fn as_raw(&self) -> *mut bindings::pci_dev {
        self.0.get()
    }

    /// # Safety
    ///
    /// `ptr` must be a valid `pci_dev` for `'a`, in context `Ctx`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::pci_dev) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper of `pci_dev`; validity is the caller's.
        unsafe { &*ptr.cast() }
    }
}

impl Device {
    /// The PCI device of a generic device, if it is one (`dev_is_pci`, then `to_pci_dev`).
    pub fn from_device(dev: &device::Device) -> Option<&Device> {
        let raw = dev.as_raw();
        // SAFETY: `raw` is a valid device.
        if !unsafe { bindings::dev_is_pci(raw) } {
            return None;
        }
        // SAFETY: it is a PCI device, so it is embedded in a `pci_dev` that lives as long as
        // the `struct device` (which `dev` keeps alive).
        Some(unsafe { Device::from_raw(container_of!(raw, bindings::pci_dev, dev).cast_mut()) })
    }

    /// Vendor ID.
    pub fn vendor_id(&self) -> u16 {
        // SAFETY: `self` is a valid `pci_dev` (type invariant); the field is immutable.
        unsafe { (*self.as_raw()).vendor }
    }

    /// Device ID.
    pub fn device_id(&self) -> u16 {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).device }
    }

    /// Revision ID.
    pub fn revision(&self) -> u8 {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).revision }
    }

    /// Length of BAR `bar` (0 if it does not exist or `bar` is not a standard BAR).
    pub fn resource_len(&self, bar: u32) -> u64 {
        if bar > 5 {
            return 0;
        }
        // SAFETY: `bar` is a standard BAR index; the device is valid.
        unsafe { bindings::pci_resource_len(self.as_raw(), bar as c_int) }
    }

    /// Size of the configuration space (256 for conventional PCI, 4096 for PCIe).
    pub fn cfg_size(&self) -> u16 {
        // SAFETY: valid device; set at enumeration.
        unsafe { (*self.as_raw()).cfg_size as u16 }
    }

    /// Checks a config access of `size` bytes at `offset`: inside the config space and
    /// naturally aligned, else `EINVAL` (the PCI core only checks the alignment).
    fn config_check(&self, offset: u16, size: u16) -> Result {
        if u32::from(offset) + u32::from(size) > u32::from(self.cfg_size()) || offset % size != 0 {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Reads a byte of configuration space.
    pub fn config_read8(&self, offset: u16) -> Result<u8> {
        self.config_check(offset, 1)?;
        let mut v = 0u8;
        // SAFETY: valid device and out pointer; the PCI core checks the offset.
        pcibios(unsafe { bindings::pci_read_config_byte(self.as_raw(), offset.into(), &mut v) })?;
        Ok(v)
    }

    /// Reads a 16-bit word of configuration space (offset 2-aligned).
    pub fn config_read16(&self, offset: u16) -> Result<u16> {
        self.config_check(offset, 2)?;
        let mut v = 0u16;
        // SAFETY: as above.
        pcibios(unsafe { bindings::pci_read_config_word(self.as_raw(), offset.into(), &mut v) })?;
        Ok(v)
    }

    /// Reads a 32-bit word of configuration space (offset 4-aligned).
    pub fn config_read32(&self, offset: u16) -> Result<u32> {
        self.config_check(offset, 4)?;
        let mut v = 0u32;
        // SAFETY: as above.
        pcibios(unsafe { bindings::pci_read_config_dword(self.as_raw(), offset.into(), &mut v) })?;
        Ok(v)
    }

    /// Writes a byte of configuration space.
    pub fn config_write8(&self, offset: u16, value: u8) -> Result {
        self.config_check(offset, 1)?;
        // SAFETY: valid device; offset checked.
        pcibios(unsafe { bindings::pci_write_config_byte(self.as_raw(), offset.into(), value) })
    }

    /// Writes a 16-bit word of configuration space.
    pub fn config_write16(&self, offset: u16, value: u16) -> Result {
        self.config_check(offset, 2)?;
        // SAFETY: valid device; offset checked.
        pcibios(unsafe { bindings::pci_write_config_word(self.as_raw(), offset.into(), value) })
    }

    /// Writes a 32-bit word of configuration space.
    pub fn config_write32(&self, offset: u16, value: u32) -> Result {
        self.config_check(offset, 4)?;
        // SAFETY: valid device; offset checked.
        pcibios(unsafe { bindings::pci_write_config_dword(self.as_raw(), offset.into(), value) })
    }

    /// Finds a standard capability (`pci_find_capability`); its config offset, if present.
    pub fn find_capability(&self, cap: u8) -> Option<u8> {
        // SAFETY: valid device.
        let off = unsafe { bindings::pci_find_capability(self.as_raw(), cap.into()) };
        if off == 0 {
            None
        } else {
            Some(off)
        }
    }

    /// Finds an extended capability (`pci_find_ext_capability`); its config offset.
    pub fn find_ext_capability(&self, cap: u16) -> Option<u16> {
        // SAFETY: valid device.
        let off = unsafe { bindings::pci_find_ext_capability(self.as_raw(), cap.into()) };
        if off == 0 {
            None
        } else {
            Some(off)
        }
    }

    /// The requester ID: bus number and devfn (`pci_dev_id`), the device's StreamID on Arm.
    pub fn requester_id(&self) -> u16 {
        // SAFETY: valid device.
        unsafe { bindings::pci_dev_id(self.as_raw()) }
    }

    /// The message (address, data) of MSI/MSI-X vector `index` as the kernel last programmed
    /// it into the device (`get_cached_msi_msg`). Behind an IOMMU DMA domain the address is an
    /// IOVA of that domain (dma-iommu's MSI cookie), not the doorbell. `ENXIO` when the device
    /// uses neither MSI nor MSI-X, `EINVAL` for a vector it does not have.
    pub fn msi_message(&self, index: u32) -> Result<(u64, u32)> {
        let (mut address, mut data) = (0u64, 0u32);
        // SAFETY: valid device; the helper checks that the vector exists and is an MSI one
        // before reading its descriptor, and writes only through the two valid pointers.
        to_result(unsafe {
            bindings::pci_cached_msi_message(self.as_raw(), index, &mut address, &mut data)
        })?;
        Ok((address, data))
    }

    /// Number of PASIDs the device supports (`pci_max_pasids`); `EOPNOTSUPP`/`EINVAL` from the
    /// PCI core when it has no PASID capability.
    pub fn max_pasids(&self) -> Result<u32> {
        // SAFETY: valid device.
        let r = unsafe { bindings::pci_max_pasids(self.as_raw()) };
        if r < 0 {
            Err(Error::from_errno(r))
        } else {
            Ok(r as u32)
        }
    }

    /// The Linux IRQ number of vector `index` allocated with
    /// [`Device::alloc_irq_vectors`] (`pci_irq_vector`).
    pub fn irq_vector(&self, index: u32) -> Result<u32> {
        // SAFETY: valid device.
        let r = unsafe { bindings::pci_irq_vector(self.as_raw(), index) };
        if r < 0 {
            Err(Error::from_errno(r))
        } else {
            Ok(r as u32)
        }
    }

    /// Whether the device is enabled.
    pub fn is_enabled(&self) -> bool {
        // SAFETY: valid device.
        unsafe { bindings::pci_is_enabled(self.as_raw()) }
    }
}

/// Converts a `PCIBIOS_*` return value of the config accessors.
fn pcibios(r: c_int) -> Result {
    // `pcibios_err_to_errno` (an inline function of <linux/pci.h>).
    match r {
        0 => Ok(()),
        0x81 => Err(ENOENT),
        0x83 => Err(ENOTTY),
        0x86 => Err(ENODEV),
        0x87 => Err(EFAULT),
        0x88 => Err(EIO),
        0x89 => Err(ENOSPC),
        r if r < 0 => to_result(r),
        _ => Err(ERANGE),
    }
}

/// Interrupt types for [`Device::alloc_irq_vectors`] (`PCI_IRQ_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqTypes(u32);

impl IrqTypes {
    /// Legacy INTx.
    pub const INTX: IrqTypes = IrqTypes(bindings::PCI_IRQ_INTX);
    /// MSI.
    pub const MSI: IrqTypes = IrqTypes(bindings::PCI_IRQ_MSI);
    /// MSI-X.
    pub const MSIX: IrqTypes = IrqTypes(bindings::PCI_IRQ_MSIX);
    /// Any type.
    pub const ALL: IrqTypes = IrqTypes(bindings::PCI_IRQ_INTX | bindings::PCI_IRQ_MSI | bindings::PCI_IRQ_MSIX);
}

impl core::ops::BitOr for IrqTypes {
    type Output = IrqTypes;
    fn bitor(self, rhs: IrqTypes) -> IrqTypes {
        IrqTypes(self.0 | rhs.0)
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn disable_device_action(p: *mut c_void) {
    // SAFETY: `p` is the `pci_dev` that `enable_device` enabled; the device is still valid
    // during its devres release.
    unsafe { bindings::pci_disable_device(p.cast()) };
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn clear_master_action(p: *mut c_void) {
    // SAFETY: as above.
    unsafe { bindings::pci_clear_master(p.cast()) };
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn free_irq_vectors_action(p: *mut c_void) {
    // SAFETY: as above; the vectors were allocated by `alloc_irq_vectors`. IRQs requested on
    // them were freed earlier (devres runs in reverse order, driver data drops before).
    unsafe { bindings::pci_free_irq_vectors(p.cast()) };
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn disable_pasid_action(p: *mut c_void) {
    // SAFETY: as above; PASID was enabled by `enable_pasid`.
    unsafe { bindings::pci_disable_pasid(p.cast()) };
}

impl Device<Bound> {
    fn as_dev(&self) -> &device::Device<Bound> {
        self.as_ref()
    }

    /// Requests BAR `bar` for `name` and maps all of it, refusing (`EINVAL`) a BAR shorter
    /// than `SIZE` bytes: the [`Bar<SIZE>`]'s build-time checked accessors reach any offset
    /// below `SIZE`. The mapping and the region are released when the returned [`Devres`] is
    /// dropped or at unbind.
    pub fn iomap_region_sized<const SIZE: usize>(
        &self,
        bar: u32,
        name: &'static CStr,
    ) -> Result<Devres<Bar<SIZE>>> {
        let bar = Bar::<SIZE>::new(self, bar, name)?;
        Devres::new(self.as_dev(), bar, GFP_KERNEL)
    }

    /// [`Device::iomap_region_sized`] with no size known at build time: only the run-time
    /// checked `try_*` accessors.
    pub fn iomap_region(&self, bar: u32, name: &'static CStr) -> Result<Devres<Bar>> {
        self.iomap_region_sized::<0>(bar, name)
    }
}

impl Device<Core> {
    /// Enables the device (`pci_enable_device`); disabled again at unbind.
    pub fn enable_device(&self) -> Result {
        // SAFETY: bound device (type invariant).
        to_result(unsafe { bindings::pci_enable_device(self.as_raw()) })?;
        // SAFETY: the action disables what was just enabled, once, at unbind; it is a function
        // of the kernel image.
        unsafe { devres::add_action_or_reset(self.as_dev(), disable_device_action, self.as_raw().cast()) }
    }

    /// Enables bus mastering (`pci_set_master`); cleared at unbind.
    pub fn set_master(&self) -> Result {
        // SAFETY: bound device.
        unsafe { bindings::pci_set_master(self.as_raw()) };
        // SAFETY: as in `enable_device`.
        unsafe { devres::add_action_or_reset(self.as_dev(), clear_master_action, self.as_raw().cast()) }
    }

    /// Sets the streaming and coherent DMA masks to `bits` address bits.
    pub fn dma_set_mask(&self, bits: u32) -> Result {
        if bits == 0 || bits > 64 {
            return Err(EINVAL);
        }
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        // SAFETY: bound device.
        to_result(unsafe { bindings::dma_set_mask_and_coherent(self.as_dev().as_raw(), mask) })
    }

    /// Allocates between `min` and `max` interrupt vectors of the allowed `types`
    /// (`pci_alloc_irq_vectors`); returns how many were allocated. Freed at unbind.
    pub fn alloc_irq_vectors(&self, min: u32, max: u32, types: IrqTypes) -> Result<u32> {
        // SAFETY: bound device; no affinity descriptor.
        let n = unsafe {
            bindings::pci_alloc_irq_vectors_affinity(self.as_raw(), min, max, types.0, core::ptr::null_mut())
        };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        // SAFETY: as in `enable_device`.
        unsafe { devres::add_action_or_reset(self.as_dev(), free_irq_vectors_action, self.as_raw().cast())? };
        Ok(n as u32)
    }

    /// Requests vector `index` with a hard-IRQ handler; see [`irq::Registration`].
    pub fn request_irq<'a, T: irq::Handler>(
        &'a self,
        index: u32,
        name: &'static CStr,
        handler: T,
    ) -> Result<impl PinInit<irq::Registration<T>, Error> + 'a> {
        let irq = self.irq_vector(index)?;
        Ok(irq::Registration::new(self.as_dev(), irq, irq::Flags::NONE, name, handler))
    }

    /// Requests vector `index` with a threaded handler; see [`irq::Registration`].
    pub fn request_threaded_irq<'a, T: irq::ThreadedHandler>(
        &'a self,
        index: u32,
        flags: irq::Flags,
        name: &'static CStr,
        handler: T,
    ) -> Result<impl PinInit<irq::Registration<T>, Error> + 'a> {
        let irq = self.irq_vector(index)?;
        Ok(irq::Registration::new_threaded(self.as_dev(), irq, flags, name, handler))
    }

    /// Enables PASID with `features` (`pci_enable_pasid`); disabled at unbind. Fails with
    /// `EINVAL` on a device without the PASID capability.
    pub fn enable_pasid(&self, features: i32) -> Result {
        // SAFETY: bound device.
        to_result(unsafe { bindings::pci_enable_pasid(self.as_raw(), features) })?;
        // SAFETY: as in `enable_device`.
        unsafe { devres::add_action_or_reset(self.as_dev(), disable_pasid_action, self.as_raw().cast()) }
    }
}

impl<Ctx: DeviceContext> AsRef<device::Device<Ctx>> for Device<Ctx> {
    fn as_ref(&self) -> &device::Device<Ctx> {
        // SAFETY: `dev` is the embedded generic device of a valid `pci_dev`, in the same
        // context.
        unsafe { device::Device::from_raw(addr_of_mut!((*self.as_raw()).dev)) }
    }
}

// SAFETY: `Device` is a transparent wrapper of a type that doesn't depend on `Device`'s generic
// argument.
crate::impl_device_context_deref!(unsafe { Device });
crate::impl_device_context_into_aref!(Device);

// SAFETY: `pci_dev_get`/`pci_dev_put` manage the reference count of the embedded device.
unsafe impl AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: a shared reference proves the count is non-zero.
        unsafe { bindings::pci_dev_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up one reference.
        unsafe { bindings::pci_dev_put(obj.cast().as_ptr()) }
    }
}

impl Device {
    /// Takes a reference that may outlive the current borrow.
    pub fn get(&self) -> ARef<Device> {
        ARef::from(self)
    }
}

// SAFETY: the PCI core synchronises the C state behind `&self` methods; the device may be
// referenced and released from any thread.
unsafe impl Send for Device {}
// SAFETY: as above.
unsafe impl Sync for Device {}

/// A requested and mapped BAR of at least `SIZE` bytes; its MMIO accessors come from
/// [`Io<SIZE>`] through `Deref`.
///
/// # Invariants
///
/// `io` describes the `pci_iomap` mapping of all of BAR `num` of `pdev`, whose region is
/// requested; both are released exactly once, in `drop`.
pub struct Bar<const SIZE: usize = 0> {
    pdev: ARef<Device>,
    io: IoRaw<SIZE>,
    num: i32,
}

impl<const SIZE: usize> Bar<SIZE> {
    fn new(pdev: &Device<Bound>, bar: u32, name: &'static CStr) -> Result<Self> {
        let len = pdev.resource_len(bar);
        if len == 0 {
            return Err(ENODEV);
        }
        let len = usize::try_from(len).map_err(|_| EINVAL)?;
        // Refuse a BAR shorter than `SIZE` before requesting anything.
        IoRaw::<SIZE>::new(0, len)?;
        // SAFETY: FFI call without preconditions on the flags value.
        let flags = unsafe { bindings::pci_resource_flags(pdev.as_raw(), bar as c_int) };
        if flags & (bindings::IORESOURCE_MEM as usize) == 0 {
            return Err(EINVAL);
        }
        let num = bar as c_int;
        // SAFETY: bound device, valid BAR index, 'static name.
        to_result(unsafe { bindings::pci_request_region(pdev.as_raw(), num, name.as_char_ptr()) })?;
        // SAFETY: region requested; a length of 0 maps the whole BAR.
        let addr = unsafe { bindings::pci_iomap(pdev.as_raw(), num, 0) };
        if addr.is_null() {
            // SAFETY: requested just above.
            unsafe { bindings::pci_release_region(pdev.as_raw(), num) };
            return Err(ENOMEM);
        }
        let io = match IoRaw::new(addr as usize, len) {
            Ok(io) => io,
            Err(e) => {
                // SAFETY: mapped and requested just above, not handed out.
                unsafe {
                    bindings::pci_iounmap(pdev.as_raw(), addr);
                    bindings::pci_release_region(pdev.as_raw(), num);
                }
                return Err(e);
            }
        };
        // INVARIANT: mapped (all `len` bytes) and requested above.
        Ok(Bar { pdev: ARef::from(pdev), io, num })
    }

    /// The BAR index.
    pub fn index(&self) -> u32 {
        self.num as u32
    }
}

impl<const SIZE: usize> Deref for Bar<SIZE> {
    type Target = Io<SIZE>;
    fn deref(&self) -> &Io<SIZE> {
        // SAFETY: the mapping lives as long as `self` (type invariant).
        unsafe { Io::from_raw(&self.io) }
    }
}

impl<const SIZE: usize> Drop for Bar<SIZE> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping and region are ours and released once.
        unsafe {
            bindings::pci_iounmap(self.pdev.as_raw(), self.io.addr() as *mut c_void);
            bindings::pci_release_region(self.pdev.as_raw(), self.num);
        }
    }
}

/// A PCI device ID (`struct pci_device_id`).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct DeviceId(bindings::pci_device_id);

impl DeviceId {
    const ANY: u32 = !0;

    /// Matches vendor and device, any subsystem (`PCI_DEVICE`).
    pub const fn from_id(vendor: u16, device: u16) -> Self {
        Self(bindings::pci_device_id {
            vendor: vendor as u32,
            device: device as u32,
            subvendor: Self::ANY,
            subdevice: Self::ANY,
            class: 0,
            class_mask: 0,
            driver_data: 0,
            override_only: 0,
        })
    }

    /// Matches a class code under a mask (`PCI_DEVICE_CLASS`).
    pub const fn from_class(class: u32, class_mask: u32) -> Self {
        Self(bindings::pci_device_id {
            vendor: Self::ANY,
            device: Self::ANY,
            subvendor: Self::ANY,
            subdevice: Self::ANY,
            class,
            class_mask,
            driver_data: 0,
            override_only: 0,
        })
    }
}

/// An ID table with per-entry driver information, zero-terminated for the C side.
/// Build it with [`pci_device_table!`](crate::pci_device_table).
///
/// # Invariants
///
/// `sentinel` is all zeroes and directly follows `ids` (`repr(C)`, same element type); entry `i`
/// has `driver_data == i`, indexing `info`.
#[repr(C)]
pub struct IdArray<I: 'static, const N: usize> {
    ids: [bindings::pci_device_id; N],
    sentinel: bindings::pci_device_id,
    info: [I; N],
}

impl<I: 'static, const N: usize> IdArray<I, N> {
    /// Builds the table; entry `i` of `ids` goes with `info[i]`.
    pub const fn new(ids: [DeviceId; N], info: [I; N]) -> Self {
        let mut raw = [DeviceId::from_id(0, 0).0; N];
        let mut i = 0;
        while i < N {
            raw[i] = ids[i].0;
            raw[i].driver_data = i as _;
            i += 1;
        }
        // INVARIANT: indices set above; the sentinel is zeroed.
        Self {
            ids: raw,
            sentinel: bindings::pci_device_id {
                vendor: 0,
                device: 0,
                subvendor: 0,
                subdevice: 0,
                class: 0,
                class_mask: 0,
                driver_data: 0,
                override_only: 0,
            },
            info,
        }
    }

    /// A type-erased view for [`Driver::ID_TABLE`].
    pub const fn table(&'static self) -> IdTable<I> {
        IdTable { raw: &self.ids as *const _ as *const bindings::pci_device_id, info: &self.info }
    }
}

/// A reference to an [`IdArray`] (its zero-terminated C table and the driver information).
pub struct IdTable<I: 'static> {
    raw: *const bindings::pci_device_id,
    info: &'static [I],
}

// SAFETY: the table is immutable static data.
unsafe impl<I: Sync> Sync for IdTable<I> {}

/// Defines a static PCI ID table with driver information for a [`Driver`].
///
/// # Examples
///
/// ```ignore
/// kernel::pci_device_table!(EDU_IDS, u32, [(pci::DeviceId::from_id(0x1234, 0x11e8), 1)]);
/// impl pci::Driver for EduDriver {
///     type IdInfo = u32;
///     const ID_TABLE: pci::IdTable<u32> = EDU_IDS.table();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! pci_device_table {
    ($name:ident, $info:ty, [$(($id:expr, $data:expr)),+ $(,)?]) => {
        static $name: $crate::pci::IdArray<$info, { [$(stringify!($id)),+].len() }> =
            $crate::pci::IdArray::new([$($id),+], [$($data),+]);
    };
}

/// A PCI driver.
///
/// `probe` returns the driver's data for the device; it is kept until the device is unbound,
/// when `remove` (if implemented) runs and the data is dropped. Resources obtained through
/// [`Device<Core>`] are released at unbind after that.
pub trait Driver: Send + Sync + 'static {
    /// Per-ID driver information.
    type IdInfo: 'static + Sync;
    /// The ID table.
    const ID_TABLE: IdTable<Self::IdInfo>;

    /// Binds the driver to `dev`, which matched an entry whose information is `info`.
    fn probe(dev: &Device<Core>, info: &Self::IdInfo) -> Result<core::pin::Pin<crate::alloc::KBox<Self>>>;

    /// Called at unbind before the data is dropped.
    fn remove(_this: core::pin::Pin<&Self>, _dev: &Device<Core>) {}
}

/// A registered PCI driver; unregistered (unbinding its devices) on drop.
///
/// # Invariants
///
/// `drv` is registered with the PCI core from initialisation until drop.
#[macros::pin_data(PinnedDrop)]
pub struct Registration<T: Driver> {
    #[pin]
    drv: Opaque<bindings::pci_driver>,
    _p: PhantomData<T>,
}

// SAFETY: the registration is only touched by the PCI core (which locks) and by `drop`.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: `&Registration` gives no access to anything.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Registers driver `T` under `name` for `module`.
    pub fn new(name: &'static CStr, module: &'static ThisModule) -> impl PinInit<Self, Error> {
        crate::try_pin_init!(Self {
            // A failed registration leaves nothing registered, and `drop` (which unregisters)
            // does not run for an initializer that failed.
            drv <- Opaque::try_ffi_init(move |drv: *mut bindings::pci_driver| {
                // SAFETY: `drv` is valid for writes and pinned (`try_ffi_init`); all-zero is a
                // valid, unregistered `pci_driver`; the callbacks, name and ID table are
                // `'static`.
                unsafe {
                    drv.write(core::mem::zeroed());
                    (*drv).name = name.as_char_ptr();
                    (*drv).id_table = T::ID_TABLE.raw;
                    (*drv).probe = Some(probe_callback::<T>);
                    (*drv).remove = Some(remove_callback::<T>);
                }
                // SAFETY: initialised above, and pinned until `drop` unregisters it.
                to_result(unsafe {
                    bindings::__pci_register_driver(drv, module.as_ptr(), name.as_char_ptr())
                })
            }),
            _p: PhantomData,
        }? Error)
    }
}

#[macros::pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // SAFETY: registered (type invariant); unregistering unbinds all devices first.
        unsafe { bindings::pci_unregister_driver(self.drv.get()) };
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn probe_callback<T: Driver>(
    pdev: *mut bindings::pci_dev,
    id: *const bindings::pci_device_id,
) -> c_int {
    from_result(|| {
        // SAFETY: the PCI core calls `probe` with a valid, locked device being bound.
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: `id` points to a matching entry (ours, or a dynamic ID copied from ours).
        let index = unsafe { (*id).driver_data };
        let info = T::ID_TABLE.info.get(index).ok_or(EINVAL)?;
        let data = T::probe(dev, info)?;
        // Taken back in `remove_callback`.
        dev.as_ref().set_drvdata(data);
        Ok(0)
    })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn remove_callback<T: Driver>(pdev: *mut bindings::pci_dev) {
    // SAFETY: the PCI core calls `remove` with a valid, locked, bound device.
    let dev = unsafe { Device::<Core>::from_raw(pdev) };
    // SAFETY: `probe_callback` stored a `Pin<KBox<T>>` (remove only follows a successful
    // probe); it is taken back exactly once, here.
    let data = unsafe { dev.as_ref().drvdata_obtain::<core::pin::Pin<crate::alloc::KBox<T>>>() };
    T::remove(data.as_ref(), dev);
    drop(data);
}

/// Declares a kernel module that registers one PCI driver.
///
/// # Examples
///
/// ```ignore
/// kernel::module_pci_driver! {
///     type: EduDriver,
///     name: "rust_edu",
///     author: "pasid-mdev project",
///     description: "edu driver",
///     license: "GPL",
/// }
/// ```
#[macro_export]
macro_rules! module_pci_driver {
    (type: $type:ty, name: $name:literal, $($rest:tt)*) => {
        struct __PciDriverModule {
            _reg: ::core::pin::Pin<$crate::alloc::KBox<$crate::pci::Registration<$type>>>,
        }

        impl $crate::Module for __PciDriverModule {
            fn init(module: &'static $crate::ThisModule) -> $crate::error::Result<Self> {
                Ok(Self {
                    _reg: $crate::alloc::KBox::pin_init(
                        $crate::pci::Registration::<$type>::new($crate::c_str!($name), module),
                        $crate::alloc::flags::GFP_KERNEL,
                    )?,
                })
            }
        }

        $crate::prelude::module! {
            type: __PciDriverModule,
            name: $name,
            $($rest)*
        }
    };
}
