// SPDX-License-Identifier: GPL-2.0
//! File access from a test module, as user space would do it (sysfs reads and writes). Included
//! with `#[path = "common/kfile.rs"] mod kfile;`.
#![allow(dead_code)]

use kernel::{alloc::flags::GFP_KERNEL, bindings, prelude::*, str::CStr};

/// Writes `data` to the file at `path` (e.g. an mdev type's `create`).
pub(crate) fn sysfs_write(path: &CStr, data: &[u8]) -> Result {
    // SAFETY: NUL-terminated path; O_WRONLY.
    let f = unsafe { bindings::filp_open(path.as_char_ptr(), 1, 0) };
    let f = kernel::error::from_err_ptr(f)?;
    let mut pos: bindings::loff_t = 0;
    // SAFETY: `f` is an open file; `data` is a kernel buffer of its length.
    let r = unsafe { bindings::kernel_write(f, data.as_ptr().cast(), data.len(), &mut pos) };
    // SAFETY: closes the file opened above.
    unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
    if r < 0 {
        Err(kernel::error::Error::from_errno(r as i32))
    } else {
        Ok(())
    }
}

/// Opens the file at `path` read-only and closes it: `Ok` if it exists and opens (for files
/// the kernel cannot `kernel_read`, such as `seq_file`s without `read_iter`).
pub(crate) fn file_opens(path: &CStr) -> Result {
    // SAFETY: NUL-terminated path; O_RDONLY.
    let f = kernel::error::from_err_ptr(unsafe { bindings::filp_open(path.as_char_ptr(), 0, 0) })?;
    // SAFETY: closes the file opened above.
    unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
    Ok(())
}

/// Reads up to 256 bytes of the file at `path`.
pub(crate) fn sysfs_read(path: &CStr) -> Result<KVec<u8>> {
    // SAFETY: NUL-terminated path; O_RDONLY.
    let f = kernel::error::from_err_ptr(unsafe { bindings::filp_open(path.as_char_ptr(), 0, 0) })?;
    let mut buf = KVec::new();
    buf.extend_with(256, 0u8, GFP_KERNEL)?;
    let mut pos: bindings::loff_t = 0;
    // SAFETY: `f` is open; `buf` has 256 writable bytes.
    let r = unsafe { bindings::kernel_read(f, buf.as_mut_ptr().cast(), buf.len(), &mut pos) };
    // SAFETY: closes the file opened above.
    unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
    if r < 0 {
        return Err(kernel::error::Error::from_errno(r as i32));
    }
    let mut out = KVec::new();
    out.extend_from_slice(&buf[..r as usize], GFP_KERNEL)?;
    Ok(out)
}

