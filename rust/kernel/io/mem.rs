// SPDX-License-Identifier: GPL-2.0

//! An owned `ioremap` mapping of a device's memory resource.
//!
//! C header: [`include/linux/io.h`](srctree/include/linux/io.h)
//!
//! Follows upstream's `rust/kernel/io/mem.rs` (v6.16: `IoMem<SIZE>`, unmapped on drop,
//! dereferencing to [`Io<SIZE>`]); obtained from `platform::Device::ioremap_resource_sized`
//! (upstream: `IoRequest::iomap_sized`).

use crate::{
    bindings,
    error::{code::ENOMEM, Result},
    io::{Io, IoRaw},
};
use core::{ffi::c_void, ops::Deref};

/// An `ioremap`ped memory range of at least `SIZE` bytes.
///
/// # Invariants
///
/// `io` describes an `ioremap` mapping owned by this value and unmapped exactly once, in
/// `drop`.
pub struct IoMem<const SIZE: usize = 0> {
    io: IoRaw<SIZE>,
}

impl<const SIZE: usize> IoMem<SIZE> {
    /// Maps `len` bytes of a device's registers at physical address `start`, a range the
    /// firmware describes (`ioremap` itself refuses RAM); `EINVAL` if `len < SIZE`.
    pub(crate) fn new(start: u64, len: usize) -> Result<Self> {
        // Checked before mapping, so a short range maps nothing.
        IoRaw::<SIZE>::new(0, len)?;
        // SAFETY: FFI call mapping a physical range described by the firmware.
        let addr = unsafe { bindings::ioremap(start, len) };
        if addr.is_null() {
            return Err(ENOMEM);
        }
        match IoRaw::new(addr as usize, len) {
            // INVARIANT: mapped just above, unmapped only in `drop`.
            Ok(io) => Ok(IoMem { io }),
            Err(e) => {
                // SAFETY: mapped just above and not handed out.
                unsafe { bindings::iounmap(addr) };
                Err(e)
            }
        }
    }
}

impl<const SIZE: usize> Deref for IoMem<SIZE> {
    type Target = Io<SIZE>;

    fn deref(&self) -> &Io<SIZE> {
        // SAFETY: the mapping lives as long as `self` (type invariant).
        unsafe { Io::from_raw(&self.io) }
    }
}

impl<const SIZE: usize> Drop for IoMem<SIZE> {
    fn drop(&mut self) {
        // SAFETY: mapped by `ioremap` and owned (type invariant).
        unsafe { bindings::iounmap(self.io.addr() as *mut c_void) };
    }
}
