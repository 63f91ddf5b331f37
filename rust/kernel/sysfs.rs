// SPDX-License-Identifier: GPL-2.0

//! sysfs device attributes implemented in Rust.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h) (`device_attribute`,
//! `device_create_file`).
//!
//! An attribute is a type implementing [`AttributeOps`], turned into a static
//! [`DeviceAttribute`] with [`device_attribute!`](crate::device_attribute), and added to a
//! device with [`create_file`]; the returned [`File`] removes it on drop. `device_remove_file`
//! waits for running `show`/`store` calls, so no callback runs after the `File` is dropped.

use crate::{
    bindings, device::Device,
    error::{code::*, to_result, Result},
    str::CStr,
    types::ARef,
};
use core::{cell::UnsafeCell, fmt};

/// Output buffer of a sysfs `show` (one page).
pub struct Buffer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Buffer<'a> {
    /// Wraps a page-sized `show` buffer.
    ///
    /// # Safety
    ///
    /// `buf` must be valid for writes of `PAGE_SIZE` bytes for `'a`.
    pub unsafe fn from_raw(buf: *mut u8) -> Self {
        // SAFETY: the caller's contract.
        Self { buf: unsafe { core::slice::from_raw_parts_mut(buf, crate::page::PAGE_SIZE) }, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }
}

impl fmt::Write for Buffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the NUL sysfs adds; truncation is an error, as in `sysfs_emit`.
        let room = self.buf.len().saturating_sub(self.pos + 1);
        let n = s.len().min(room);
        self.buf[self.pos..self.pos + n].copy_from_slice(&s.as_bytes()[..n]);
        self.pos += n;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The callbacks of a device attribute.
pub trait AttributeOps: 'static {
    /// Writes the attribute's value.
    fn show(dev: &Device, out: &mut Buffer<'_>) -> Result;
    /// Parses a write; the default refuses writes (make the attribute read-only instead).
    fn store(_dev: &Device, _input: &[u8]) -> Result {
        Err(EACCES)
    }
}

/// A static device attribute (`struct device_attribute`).
///
/// # Invariants
///
/// `attr.attr.name` is a `'static` C string; `show`/`store` are `A`'s trampolines. The C side
/// only reads it.
#[repr(transparent)]
pub struct DeviceAttribute(UnsafeCell<bindings::device_attribute>);

// SAFETY: never written after construction (sysfs only reads attributes).
unsafe impl Sync for DeviceAttribute {}

impl DeviceAttribute {
    /// Builds an attribute named `name` with permissions `mode` (e.g. `0o444`, `0o644`) whose
    /// callbacks are `A`'s. Use through [`device_attribute!`](crate::device_attribute).
    pub const fn new<A: AttributeOps>(name: &'static CStr, mode: u16, writable: bool) -> Self {
        // SAFETY: all-zero is a valid `device_attribute`.
        let mut a: bindings::device_attribute = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
        a.attr.name = name.as_char_ptr();
        a.attr.mode = mode;
        a.show = Some(show_cb::<A>);
        if writable {
            a.store = Some(store_cb::<A>);
        }
        Self(UnsafeCell::new(a))
    }
}

/// Defines a static [`DeviceAttribute`] for an [`AttributeOps`] type.
///
/// # Examples
///
/// ```ignore
/// struct Pasid;
/// impl kernel::sysfs::AttributeOps for Pasid {
///     fn show(dev: &Device, out: &mut kernel::sysfs::Buffer<'_>) -> Result {
///         writeln!(out, "{}", 5).map_err(|_| EINVAL)
///     }
/// }
/// kernel::device_attribute!(PASID_ATTR, Pasid, "pasid", 0o444);
/// let file = kernel::sysfs::create_file(dev, &PASID_ATTR)?; // removed when `file` drops
/// ```
#[macro_export]
macro_rules! device_attribute {
    ($name:ident, $ops:ty, $file:literal, $mode:expr) => {
        static $name: $crate::sysfs::DeviceAttribute = $crate::sysfs::DeviceAttribute::new::<$ops>(
            $crate::c_str!($file),
            $mode,
            ($mode) & 0o222 != 0,
        );
    };
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn show_cb<A: AttributeOps>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut crate::ffi::c_char,
) -> isize {
    // SAFETY: sysfs calls `show` with a live device and a PAGE_SIZE buffer.
    let (d, mut out) = unsafe { (Device::as_ref(dev), Buffer::from_raw(buf.cast())) };
    match A::show(d, &mut out) {
        Ok(()) => out.pos as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn store_cb<A: AttributeOps>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *const crate::ffi::c_char,
    count: usize,
) -> isize {
    // SAFETY: sysfs calls `store` with a live device and `count` readable bytes.
    let (d, input) = unsafe { (Device::as_ref(dev), core::slice::from_raw_parts(buf.cast::<u8>(), count)) };
    match A::store(d, input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// An attribute file on a device; removed on drop.
///
/// # Invariants
///
/// `attr` was added to `dev` by `device_create_file` and is removed exactly once, in `drop`.
pub struct File {
    dev: ARef<Device>,
    attr: &'static DeviceAttribute,
}

/// Adds `attr` to `dev` (`device_create_file`).
pub fn create_file(dev: &Device, attr: &'static DeviceAttribute) -> Result<File> {
    // SAFETY: valid device; `attr` is static.
    to_result(unsafe { bindings::device_create_file(dev.as_raw(), attr.0.get()) })?;
    // INVARIANT: added above.
    Ok(File { dev: dev.into(), attr })
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: added (type invariant); waits for running callbacks.
        unsafe { bindings::device_remove_file(self.dev.as_raw(), self.attr.0.get()) };
    }
}
