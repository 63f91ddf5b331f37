// SPDX-License-Identifier: GPL-2.0

//! Additions to [`crate::device::Device`] that 6.12's kernel crate lacks: printing with the
//! device's name (`dev_info!` and friends), the device name, its parent and driver data access
//! for bus abstractions.
//!
//! C header: [`include/linux/dev_printk.h`](srctree/include/linux/dev_printk.h)

use crate::{bindings, device::Device, str::CStr};
use core::fmt;

/// Printk levels for [`Device::printk`] (`KERN_*` as in `include/linux/kern_levels.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `KERN_EMERG`
    Emerg,
    /// `KERN_ALERT`
    Alert,
    /// `KERN_CRIT`
    Crit,
    /// `KERN_ERR`
    Err,
    /// `KERN_WARNING`
    Warning,
    /// `KERN_NOTICE`
    Notice,
    /// `KERN_INFO`
    Info,
    /// `KERN_DEBUG`
    Debug,
}

impl Level {
    fn as_kern(self) -> &'static [u8; 3] {
        match self {
            Level::Emerg => b"\x010\0",
            Level::Alert => b"\x011\0",
            Level::Crit => b"\x012\0",
            Level::Err => b"\x013\0",
            Level::Warning => b"\x014\0",
            Level::Notice => b"\x015\0",
            Level::Info => b"\x016\0",
            Level::Debug => b"\x017\0",
        }
    }
}

impl Device {
    /// Prints `args` at `level`, prefixed with the driver and device names like C's
    /// `dev_printk`. Use the [`dev_info!`](crate::dev_info) family of macros instead.
    pub fn printk(&self, level: Level, args: fmt::Arguments<'_>) {
        // SAFETY: `self` is a valid device; the level is a NUL-terminated `KERN_*` string and
        // `%pA` with a pointer to `fmt::Arguments` is the kernel's Rust formatting extension; the
        // arguments live across the call.
        unsafe {
            bindings::_dev_printk(
                level.as_kern().as_ptr().cast(),
                self.as_raw(),
                crate::c_str!("%pA").as_char_ptr(),
                (&args as *const fmt::Arguments<'_>).cast::<core::ffi::c_void>(),
            )
        };
    }

    /// The device's name (`dev_name()`).
    pub fn name(&self) -> &CStr {
        // SAFETY: `dev_name` returns a NUL-terminated string owned by the device, valid while
        // the device is (and `&self` keeps it alive); the name of a registered device is not
        // changed.
        unsafe { CStr::from_char_ptr(bindings::dev_name(self.as_raw())) }
    }

    /// The parent device, if any.
    ///
    /// # Safety
    ///
    /// `self` must stay registered (between `device_add` and `device_del`) while the result is
    /// used, e.g. in a sysfs callback of `self` or a bus callback made on it: the driver core
    /// holds its reference on the parent only for that time (`device_add` takes it,
    /// `device_del` drops it), so the parent of an unregistered device may be gone although the
    /// pointer is still set.
    pub unsafe fn parent(&self) -> Option<&Device> {
        // SAFETY: `self` is valid, so reading its parent pointer is.
        let p = unsafe { (*self.as_raw()).parent };
        if p.is_null() {
            None
        } else {
            // SAFETY: `self` is registered while the result is used (the caller's promise), so
            // the driver core holds a reference on its parent for that long.
            Some(unsafe { Device::as_ref(p) })
        }
    }

    /// The raw `struct device` pointer, for abstractions in modules of this project.
    pub fn as_raw_ptr(&self) -> *mut bindings::device {
        self.as_raw()
    }
}

/// Prints with a device prefix at an explicit [`Level`]: `dev_printk!(dev, Level::Info, ...)`.
#[macro_export]
macro_rules! dev_printk {
    ($dev:expr, $lvl:expr, $($arg:tt)+) => {
        $crate::device::Device::printk(::core::convert::AsRef::<$crate::device::Device>::as_ref($dev), $lvl, ::core::format_args!($($arg)+))
    };
}

/// Prints an emergency-level message with the device's name (`dev_emerg`).
#[macro_export]
macro_rules! dev_emerg { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Emerg, $($f)+) } }
/// Prints an alert-level message with the device's name (`dev_alert`).
#[macro_export]
macro_rules! dev_alert { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Alert, $($f)+) } }
/// Prints a critical-level message with the device's name (`dev_crit`).
#[macro_export]
macro_rules! dev_crit { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Crit, $($f)+) } }
/// Prints an error-level message with the device's name (`dev_err`).
///
/// # Examples
///
/// ```ignore
/// dev_err!(pdev, "BAR {} too small: {:#x}\n", bar, len);
/// ```
#[macro_export]
macro_rules! dev_err { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Err, $($f)+) } }
/// Prints a warning-level message with the device's name (`dev_warn`).
#[macro_export]
macro_rules! dev_warn { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Warning, $($f)+) } }
/// Prints a notice-level message with the device's name (`dev_notice`).
#[macro_export]
macro_rules! dev_notice { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Notice, $($f)+) } }
/// Prints an info-level message with the device's name (`dev_info`).
///
/// Accepts anything that is `AsRef<Device>` (a [`Device`], a `pci::Device`, ...).
///
/// # Examples
///
/// ```ignore
/// dev_info!(pdev, "edu id {:#x}\n", id);
/// ```
#[macro_export]
macro_rules! dev_info { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Info, $($f)+) } }
/// Prints a debug-level message with the device's name (always emitted, like `dev_printk` at
/// `KERN_DEBUG`; dynamic debug is not wired up).
#[macro_export]
macro_rules! dev_dbg { ($dev:expr, $($f:tt)+) => { $crate::dev_printk!($dev, $crate::device_ext::Level::Debug, $($f)+) } }

impl AsRef<Device> for Device {
    fn as_ref(&self) -> &Device {
        self
    }
}
