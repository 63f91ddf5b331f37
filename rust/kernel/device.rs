// SPDX-License-Identifier: GPL-2.0

//! Generic devices that are part of the kernel's driver model.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h)
//!
//! Project overlay: replaces 6.12's `device.rs` with the shape of upstream's (v6.16/v6.17
//! `rust/kernel/device.rs`): [`Device`] is generic over a [`DeviceContext`] ([`Normal`],
//! [`Bound`], [`Core`]; `Core` derefs to `Bound` derefs to `Normal`), bus devices
//! (`pci::Device<Ctx>`, `platform::Device<Ctx>`) follow the same hierarchy with
//! [`impl_device_context_deref!`](crate::impl_device_context_deref) and give their generic
//! device through `AsRef<Device<Ctx>>`. What 6.12's own files use (`Device::as_ref(ptr)`,
//! `get_device`, `as_raw`) is kept. Printing (`dev_info!` and the rest, `Device::pr_*`) and
//! driver data (`set_drvdata`/`drvdata_obtain`) are folded in here as upstream has them.

use crate::{
    bindings,
    str::CStr,
    types::{ARef, ForeignOwnable, Opaque},
};
use core::{fmt, marker::PhantomData, ptr};

/// A reference-counted device (`struct device`), seen in the context `Ctx`.
///
/// A `&Device<Ctx>` is only ever made by code that can vouch for `Ctx` for the life of the
/// reference: the bus abstractions hand out `&Device<Core>` (through their bus device) for the
/// duration of `probe`/`remove`, and [`Bound`] references only where the device is known to be
/// bound to its driver. Only `Device<Normal>` (the default) is reference counted
/// ([`ARef<Device>`]); the other contexts are scoped borrows.
///
/// # Invariants
///
/// A `Device` instance represents a valid `struct device` created by the C portion of the
/// kernel, kept alive by a reference count (for [`ARef<Device>`]) or by the scope the borrow
/// was made in. For `Device<Bound>` (and `Device<Core>`), the device is bound to a driver for
/// as long as the reference exists; for `Device<Core>`, the driver core is also running a bus
/// callback on it with its device lock held.
///
/// `bindings::device::release` is valid to be called from any thread, hence `ARef<Device>` can
/// be dropped from any thread.
#[repr(transparent)]
pub struct Device<Ctx: DeviceContext = Normal>(Opaque<bindings::device>, PhantomData<Ctx>);

impl Device {
    /// Creates a new reference-counted abstraction instance of an existing `struct device`
    /// pointer.
    ///
    /// # Safety
    ///
    /// Callers must ensure that `ptr` is valid, non-null, and has a non-zero reference count,
    /// i.e. it must be ensured that the reference count of the C `struct device` `ptr` points
    /// to can't drop to zero, for the duration of this function call.
    ///
    /// It must also be ensured that `bindings::device::release` can be called from any thread.
    pub unsafe fn get_device(ptr: *mut bindings::device) -> ARef<Self> {
        // SAFETY: By the safety requirements ptr is valid.
        unsafe { Self::from_raw(ptr) }.into()
    }

    /// Convert a raw C `struct device` pointer to a `&'a Device` (6.12's name for
    /// [`Device::from_raw`], kept for the 6.12 files that call it).
    ///
    /// # Safety
    ///
    /// As for [`Device::from_raw`].
    pub unsafe fn as_ref<'a>(ptr: *mut bindings::device) -> &'a Self {
        // SAFETY: Guaranteed by the safety requirements of the function.
        unsafe { Self::from_raw(ptr) }
    }

    /// Treats `self` as bound to its driver.
    ///
    /// # Safety
    ///
    /// The device must stay bound to its driver for as long as the returned reference lives.
    pub unsafe fn as_bound(&self) -> &Device<Bound> {
        let ptr: *const Self = self;
        // SAFETY: `Device<Bound>` wraps the same type transparently; the caller vouches for
        // the context.
        unsafe { &*ptr.cast::<Device<Bound>>() }
    }

    /// The raw `struct device` pointer, for abstractions in modules of this project.
    pub fn as_raw_ptr(&self) -> *mut bindings::device {
        self.as_raw()
    }

    /// The parent device, if any.
    ///
    /// # Safety
    ///
    /// `self` must stay registered (between `device_add` and `device_del`) while the result is
    /// used, e.g. in a sysfs callback of `self` or a bus callback made on it: the driver core
    /// holds its reference on the parent only for that time (`device_add` takes it,
    /// `device_del` drops it), so the parent of an unregistered device may be gone although
    /// the pointer is still set.
    pub unsafe fn parent(&self) -> Option<&Device> {
        // SAFETY: `self` is valid, so reading its parent pointer is.
        let p = unsafe { (*self.as_raw()).parent };
        if p.is_null() {
            None
        } else {
            // SAFETY: `self` is registered while the result is used (the caller's promise), so
            // the driver core holds a reference on its parent for that long.
            Some(unsafe { Device::from_raw(p) })
        }
    }
}

impl Device<Core> {
    /// Stores the bound driver's private data (`dev_set_drvdata`), for bus abstractions.
    pub(crate) fn set_drvdata(&self, data: impl ForeignOwnable) {
        // SAFETY: `self.as_raw()` is a valid device (type invariant).
        unsafe { bindings::dev_set_drvdata(self.as_raw(), data.into_foreign().cast_mut().cast()) }
    }

    /// Takes back the private data stored by [`Device::set_drvdata`].
    ///
    /// # Safety
    ///
    /// Must be called once, after a [`Device::set_drvdata`] with the same type `T`.
    pub(crate) unsafe fn drvdata_obtain<T: ForeignOwnable>(&self) -> T {
        // SAFETY: `self.as_raw()` is a valid device (type invariant).
        let ptr = unsafe { bindings::dev_get_drvdata(self.as_raw()) };
        // SAFETY: `ptr` came from `into_foreign` of a `T` in `set_drvdata` and is taken back
        // once (the caller's promise).
        unsafe { T::from_foreign(ptr.cast_const()) }
    }
}

impl<Ctx: DeviceContext> Device<Ctx> {
    /// Obtain the raw `struct device *`.
    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.0.get()
    }

    /// Convert a raw C `struct device` pointer to a `&'a Device<Ctx>`.
    ///
    /// # Safety
    ///
    /// Callers must ensure that `ptr` is valid, non-null, and has a non-zero reference count
    /// for the duration of this call and of the returned reference, and that the device is in
    /// context `Ctx` for that long.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::device) -> &'a Self {
        // SAFETY: Guaranteed by the safety requirements of the function.
        unsafe { &*ptr.cast() }
    }

    /// The device's name (`dev_name()`).
    pub fn name(&self) -> &CStr {
        // SAFETY: `dev_name` returns a NUL-terminated string owned by the device, valid while
        // the device is (and `&self` keeps it alive); the name of a registered device is not
        // changed.
        unsafe { CStr::from_char_ptr(bindings::dev_name(self.as_raw())) }
    }

    /// Prints an emergency-level message prefixed with device information ([`dev_emerg!`]).
    ///
    /// [`dev_emerg!`]: crate::dev_emerg
    pub fn pr_emerg(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x010\0", args)
    }

    /// Prints an alert-level message ([`dev_alert!`]).
    ///
    /// [`dev_alert!`]: crate::dev_alert
    pub fn pr_alert(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x011\0", args)
    }

    /// Prints a critical-level message ([`dev_crit!`]).
    ///
    /// [`dev_crit!`]: crate::dev_crit
    pub fn pr_crit(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x012\0", args)
    }

    /// Prints an error-level message ([`dev_err!`]).
    ///
    /// [`dev_err!`]: crate::dev_err
    pub fn pr_err(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x013\0", args)
    }

    /// Prints a warning-level message ([`dev_warn!`]).
    ///
    /// [`dev_warn!`]: crate::dev_warn
    pub fn pr_warn(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x014\0", args)
    }

    /// Prints a notice-level message ([`dev_notice!`]).
    ///
    /// [`dev_notice!`]: crate::dev_notice
    pub fn pr_notice(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x015\0", args)
    }

    /// Prints an info-level message ([`dev_info!`]).
    ///
    /// [`dev_info!`]: crate::dev_info
    pub fn pr_info(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x016\0", args)
    }

    /// Prints a debug-level message ([`dev_dbg!`]; always emitted, dynamic debug is not wired
    /// up).
    ///
    /// [`dev_dbg!`]: crate::dev_dbg
    pub fn pr_dbg(&self, args: fmt::Arguments<'_>) {
        self.printk(b"\x017\0", args)
    }

    /// Prints `args` at `klevel` (a `KERN_*` string) with the driver and device names, like
    /// C's `dev_printk`.
    fn printk(&self, klevel: &'static [u8; 3], args: fmt::Arguments<'_>) {
        // SAFETY: `self` is a valid device; `klevel` is a NUL-terminated `KERN_*` string and
        // `%pA` with a pointer to `fmt::Arguments` is the kernel's Rust formatting extension;
        // the arguments live across the call.
        unsafe {
            bindings::_dev_printk(
                klevel.as_ptr().cast(),
                self.as_raw(),
                crate::c_str!("%pA").as_char_ptr(),
                ptr::from_ref(&args).cast::<core::ffi::c_void>(),
            )
        };
    }
}

impl<Ctx: DeviceContext> AsRef<Device<Ctx>> for Device<Ctx> {
    fn as_ref(&self) -> &Device<Ctx> {
        self
    }
}

// SAFETY: `Device` is a transparent wrapper of a type that doesn't depend on `Device`'s generic
// argument.
crate::impl_device_context_deref!(unsafe { Device });
crate::impl_device_context_into_aref!(Device);

// SAFETY: Instances of `Device` are always reference-counted.
unsafe impl crate::types::AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: The existence of a shared reference guarantees that the refcount is non-zero.
        unsafe { bindings::get_device(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: ptr::NonNull<Self>) {
        // SAFETY: The safety requirements guarantee that the refcount is non-zero.
        unsafe { bindings::put_device(obj.cast().as_ptr()) }
    }
}

// SAFETY: As by the type invariant `Device` can be sent to any thread.
unsafe impl Send for Device {}

// SAFETY: `Device` can be shared among threads because all immutable methods are protected by
// the synchronization in `struct device`.
unsafe impl Sync for Device {}

/// Marker trait for the context or scope of a (bus specific) device.
///
/// The hierarchy: [`Core`] => [`Bound`] => [`Normal`]; a reference in one context dereferences
/// to the ones after it. The guarantee of a context comes from the scope the reference is made
/// in, never from the device itself.
pub trait DeviceContext: private::Sealed {}

/// The default context: no guarantee beyond the device's existence. The only context that is
/// reference counted.
pub struct Normal;

/// The context of a bus device in a bus callback (`probe`, `remove`): bound (or being bound),
/// its device lock held. Methods only a bus callback may call are implemented for
/// `Device<Core>`.
pub struct Core;

/// The device is bound to a driver for the whole life of a `&Device<Bound>`. What relies on a
/// binding ([`Devres`](crate::devres::Devres), `request_irq`) takes one.
pub struct Bound;

mod private {
    pub trait Sealed {}

    impl Sealed for super::Bound {}
    impl Sealed for super::Core {}
    impl Sealed for super::Normal {}
}

impl DeviceContext for Bound {}
impl DeviceContext for Core {}
impl DeviceContext for Normal {}

/// # Safety
///
/// The type given as `$device` must be a transparent wrapper of a type that doesn't depend on
/// the generic argument of `$device`.
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_device_context_deref {
    (unsafe { $device:ident, $src:ty => $dst:ty }) => {
        impl ::core::ops::Deref for $device<$src> {
            type Target = $device<$dst>;

            fn deref(&self) -> &Self::Target {
                let ptr: *const Self = self;

                // CAST: `$device<$src>` and `$device<$dst>` transparently wrap the same type by
                // the safety requirement of the macro.
                let ptr = ptr.cast::<Self::Target>();

                // SAFETY: `ptr` was derived from `&self`.
                unsafe { &*ptr }
            }
        }
    };
}

/// Implements [`core::ops::Deref`] for the allowed [`DeviceContext`] conversions of a (bus
/// specific) device: `Core` to `Bound`, `Bound` to `Normal`.
///
/// # Safety
///
/// The type given as `$device` must be a transparent wrapper of a type that doesn't depend on
/// the generic argument of `$device`.
#[macro_export]
macro_rules! impl_device_context_deref {
    (unsafe { $device:ident }) => {
        // SAFETY: This macro has the exact same safety requirement as
        // `__impl_device_context_deref!`.
        $crate::__impl_device_context_deref!(unsafe {
            $device,
            $crate::device::Core => $crate::device::Bound
        });

        // SAFETY: This macro has the exact same safety requirement as
        // `__impl_device_context_deref!`.
        $crate::__impl_device_context_deref!(unsafe {
            $device,
            $crate::device::Bound => $crate::device::Normal
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __impl_device_context_into_aref {
    ($src:ty, $device:tt) => {
        impl ::core::convert::From<&$device<$src>> for $crate::types::ARef<$device> {
            fn from(dev: &$device<$src>) -> Self {
                (&**dev).into()
            }
        }
    };
}

/// Implements [`core::convert::From`], such that all `&Device<Ctx>` can be converted to an
/// `ARef<Device>`.
#[macro_export]
macro_rules! impl_device_context_into_aref {
    ($device:tt) => {
        $crate::__impl_device_context_into_aref!($crate::device::Core, $device);
        $crate::__impl_device_context_into_aref!($crate::device::Bound, $device);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! dev_printk {
    ($method:ident, $dev:expr, $($f:tt)*) => {
        $crate::device::Device::$method(
            ::core::convert::AsRef::as_ref($dev),
            ::core::format_args!($($f)*),
        )
    };
}

/// Prints an emergency-level message with the device's name (`dev_emerg`).
///
/// Takes anything that is `AsRef` of a [`Device`] in some context (a [`Device`], a
/// `pci::Device<Core>`, ...).
#[macro_export]
macro_rules! dev_emerg {
    ($($f:tt)*) => { $crate::dev_printk!(pr_emerg, $($f)*) }
}

/// Prints an alert-level message with the device's name (`dev_alert`).
#[macro_export]
macro_rules! dev_alert {
    ($($f:tt)*) => { $crate::dev_printk!(pr_alert, $($f)*) }
}

/// Prints a critical-level message with the device's name (`dev_crit`).
#[macro_export]
macro_rules! dev_crit {
    ($($f:tt)*) => { $crate::dev_printk!(pr_crit, $($f)*) }
}

/// Prints an error-level message with the device's name (`dev_err`).
///
/// # Examples
///
/// ```ignore
/// dev_err!(pdev, "BAR {} too small: {:#x}\n", bar, len);
/// ```
#[macro_export]
macro_rules! dev_err {
    ($($f:tt)*) => { $crate::dev_printk!(pr_err, $($f)*) }
}

/// Prints a warning-level message with the device's name (`dev_warn`).
#[macro_export]
macro_rules! dev_warn {
    ($($f:tt)*) => { $crate::dev_printk!(pr_warn, $($f)*) }
}

/// Prints a notice-level message with the device's name (`dev_notice`).
#[macro_export]
macro_rules! dev_notice {
    ($($f:tt)*) => { $crate::dev_printk!(pr_notice, $($f)*) }
}

/// Prints an info-level message with the device's name (`dev_info`).
///
/// # Examples
///
/// ```ignore
/// dev_info!(pdev, "edu id {:#x}\n", id);
/// ```
#[macro_export]
macro_rules! dev_info {
    ($($f:tt)*) => { $crate::dev_printk!(pr_info, $($f)*) }
}

/// Prints a debug-level message with the device's name (`dev_dbg`; always emitted, dynamic
/// debug is not wired up).
#[macro_export]
macro_rules! dev_dbg {
    ($($f:tt)*) => { $crate::dev_printk!(pr_dbg, $($f)*) }
}
