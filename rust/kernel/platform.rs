// SPDX-License-Identifier: GPL-2.0

//! Platform devices and drivers.
//!
//! C header: [`include/linux/platform_device.h`](srctree/include/linux/platform_device.h)
//!
//! - [`Driver`]: a platform driver matched through an OF table ([`crate::of::IdTable`]),
//!   `probe` returning the driver's pinned data, an optional `remove`; registered with
//!   [`Registration`] or [`module_platform_driver!`](crate::module_platform_driver).
//! - [`Device`]: a `struct platform_device` in a device context ([`device::Normal`],
//!   [`device::Bound`], [`device::Core`], the hierarchy of [`device::Device`]);
//!   `Device<Core>` (inside `probe`/`remove`) maps memory resources ([`IoMem`]) and looks up
//!   wired interrupts.
//!
//! Shaped like upstream Rust-for-Linux `rust/kernel/platform.rs` (v6.16), written for 6.12.

use crate::ffi::c_int;
use crate::{
    bindings,
    device::{self, Core, DeviceContext, Normal},
    error::{code::*, from_result, to_result, Error, Result},
    init::PinInit,
    io::mem::IoMem,
    of,
    str::CStr,
    types::Opaque,
    ThisModule,
};
use core::{marker::PhantomData, ptr::addr_of_mut};

/// A platform device (`struct platform_device`).
///
/// # Invariants
///
/// The wrapped `platform_device` is valid for the lifetime of the reference, in context `Ctx`
/// (see [`device::Device`]): for [`Core`] the driver core is running `probe`/`remove` on it
/// with its device lock held.
#[repr(transparent)]
pub struct Device<Ctx: DeviceContext = Normal>(Opaque<bindings::platform_device>, PhantomData<Ctx>);

impl<Ctx: DeviceContext> Device<Ctx> {
    fn as_raw(&self) -> *mut bindings::platform_device {
        self.0.get()
    }

    /// # Safety
    ///
    /// `ptr` must be a valid `platform_device` for `'a`, in context `Ctx`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::platform_device) -> &'a Self {
        // SAFETY: transparent wrapper; validity is the caller's.
        unsafe { &*ptr.cast() }
    }
}

impl<Ctx: DeviceContext> AsRef<device::Device<Ctx>> for Device<Ctx> {
    fn as_ref(&self) -> &device::Device<Ctx> {
        // SAFETY: the embedded `struct device` is valid, in the same context, as long as the
        // platform device is.
        unsafe { device::Device::from_raw(addr_of_mut!((*self.as_raw()).dev)) }
    }
}

// SAFETY: `Device` is a transparent wrapper of a type that doesn't depend on `Device`'s generic
// argument.
crate::impl_device_context_deref!(unsafe { Device });

impl Device<Core> {
    /// Maps memory resource `index` (`platform_get_resource` + `ioremap`), refusing it
    /// (`EINVAL`) if it is shorter than `SIZE` bytes: the returned [`IoMem<SIZE>`]'s
    /// build-time checked accessors reach any offset below `SIZE`.
    pub fn ioremap_resource_sized<const SIZE: usize>(&self, index: u32) -> Result<IoMem<SIZE>> {
        // SAFETY: valid device (type invariant).
        let res = unsafe {
            bindings::platform_get_resource(self.as_raw(), bindings::IORESOURCE_MEM, index)
        };
        if res.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: a resource of the device, valid while it exists.
        let (start, end) = unsafe { ((*res).start, (*res).end) };
        let len = end
            .checked_sub(start)
            .and_then(|l| l.checked_add(1))
            .ok_or(EINVAL)?;
        let len = usize::try_from(len).map_err(|_| EINVAL)?;
        IoMem::new(start, len)
    }

    /// The Linux IRQ number of the wired interrupt named `name` (`interrupt-names`), or
    /// `ENXIO` if the device has none by that name.
    pub fn irq_by_name(&self, name: &CStr) -> Result<u32> {
        // SAFETY: valid device, NUL-terminated name.
        let irq = unsafe {
            bindings::platform_get_irq_byname_optional(self.as_raw(), name.as_char_ptr())
        };
        if irq < 0 {
            return Err(Error::from_errno(irq));
        }
        u32::try_from(irq).map_err(|_| EINVAL)
    }
}

/// A platform driver.
///
/// `probe` returns the driver's data for the device; it is kept until the device is unbound,
/// when `remove` (if implemented) runs and the data is dropped.
pub trait Driver: Send + Sync + 'static {
    /// Per-ID driver information.
    type IdInfo: 'static + Sync;
    /// The OF match table.
    const OF_ID_TABLE: of::IdTable<Self::IdInfo>;
    /// Whether sysfs `bind`/`unbind` is disabled (`suppress_bind_attrs`): an IOMMU driver
    /// that its clients depend on sets it, like the C SMMU drivers.
    const SUPPRESS_BIND_ATTRS: bool = false;

    /// Binds the driver to `dev`, which matched an entry whose information is `info`.
    fn probe(
        dev: &Device<Core>,
        info: &Self::IdInfo,
    ) -> Result<core::pin::Pin<crate::alloc::KBox<Self>>>;

    /// Called at unbind before the data is dropped.
    fn remove(_this: core::pin::Pin<&Self>, _dev: &Device<Core>) {}
}

/// A registered platform driver; unregistered (unbinding its devices) on drop.
///
/// # Invariants
///
/// `drv` is registered with the driver core from initialisation until drop.
#[macros::pin_data(PinnedDrop)]
pub struct Registration<T: Driver> {
    #[pin]
    drv: Opaque<bindings::platform_driver>,
    _p: PhantomData<T>,
}

// SAFETY: the registration is only touched by the driver core (which locks) and by `drop`.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: `&Registration` gives no access to anything.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Registers driver `T` under `name` for `module`.
    pub fn new(name: &'static CStr, module: &'static ThisModule) -> impl PinInit<Self, Error> {
        crate::try_pin_init!(Self {
            // A failed registration leaves nothing registered, and `drop` (which unregisters)
            // does not run for an initializer that failed.
            drv <- Opaque::try_ffi_init(move |drv: *mut bindings::platform_driver| {
                // SAFETY: `drv` is valid for writes and pinned (`try_ffi_init`); all-zero is a
                // valid, unregistered `platform_driver`; the callbacks, name and match table
                // are `'static`.
                unsafe {
                    drv.write(core::mem::zeroed());
                    (*drv).driver.name = name.as_char_ptr();
                    (*drv).driver.of_match_table = T::OF_ID_TABLE.as_ptr();
                    (*drv).driver.suppress_bind_attrs = T::SUPPRESS_BIND_ATTRS;
                    (*drv).probe = Some(probe_callback::<T>);
                    (*drv).__bindgen_anon_1.remove = Some(remove_callback::<T>);
                }
                // SAFETY: initialised above, and pinned until `drop` unregisters it.
                to_result(unsafe { bindings::__platform_driver_register(drv, module.as_ptr()) })
            }),
            _p: PhantomData,
        }? Error)
    }
}

#[macros::pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // SAFETY: registered (type invariant); unregistering unbinds all devices first.
        unsafe { bindings::platform_driver_unregister(self.drv.get()) };
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn probe_callback<T: Driver>(pdev: *mut bindings::platform_device) -> c_int {
    from_result(|| {
        // SAFETY: the driver core calls `probe` with a valid, locked device being bound.
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: valid device.
        let data = unsafe { bindings::device_get_match_data(addr_of_mut!((*pdev).dev)) };
        let info = T::OF_ID_TABLE.info_of(data).ok_or(ENODEV)?;
        let data = T::probe(dev, info)?;
        // Taken back in `remove_callback`.
        dev.as_ref().set_drvdata(data);
        Ok(0)
    })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn remove_callback<T: Driver>(pdev: *mut bindings::platform_device) {
    // SAFETY: the driver core calls `remove` with a valid, locked, bound device.
    let dev = unsafe { Device::<Core>::from_raw(pdev) };
    // SAFETY: `probe_callback` stored a `Pin<KBox<T>>` (remove only follows a successful
    // probe); it is taken back exactly once, here.
    let data = unsafe { dev.as_ref().drvdata_obtain::<core::pin::Pin<crate::alloc::KBox<T>>>() };
    T::remove(data.as_ref(), dev);
    drop(data);
}

/// Declares a kernel module (or built-in driver) that registers one platform driver.
#[macro_export]
macro_rules! module_platform_driver {
    // `name` is a `tt`: a `literal` fragment would reach `module!` wrapped in an invisible
    // group, which its string parser refuses.
    (type: $type:ty, name: $name:tt, $($rest:tt)*) => {
        struct __PlatformDriverModule {
            _reg: ::core::pin::Pin<$crate::alloc::KBox<$crate::platform::Registration<$type>>>,
        }

        impl $crate::Module for __PlatformDriverModule {
            fn init(module: &'static $crate::ThisModule) -> $crate::error::Result<Self> {
                Ok(Self {
                    _reg: $crate::alloc::KBox::pin_init(
                        $crate::platform::Registration::<$type>::new($crate::c_str!($name), module),
                        $crate::alloc::flags::GFP_KERNEL,
                    )?,
                })
            }
        }

        $crate::prelude::module! {
            type: __PlatformDriverModule,
            name: $name,
            $($rest)*
        }
    };
}
