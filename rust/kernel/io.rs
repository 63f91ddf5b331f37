// SPDX-License-Identifier: GPL-2.0

//! Memory-mapped I/O.
//!
//! C header: [`include/asm-generic/io.h`](srctree/include/asm-generic/io.h)
//!
//! Follows upstream's `rust/kernel/io.rs` (v6.16): an [`Io<SIZE>`] is a mapped MMIO region
//! of at least `SIZE` bytes (its actual length, [`Io::maxsize`], is known at run time). Two
//! families of accessors:
//!
//! - `read32(offset)`/`write32(value, offset)` (and 8/16/64, `_relaxed`): the offset is
//!   checked at build time against `SIZE` and the access width's alignment
//!   ([`build_assert!`](crate::build_assert)): a register offset that is a constant and lies
//!   outside the region, or is misaligned, fails the build instead of reading the wrong
//!   register. Infallible. For drivers whose register offsets are constants.
//! - `try_read32(offset)`/`try_write32(value, offset)`: checked at run time against
//!   [`Io::maxsize`]; `EINVAL` for an offset out of bounds or misaligned, without touching the
//!   device. For offsets computed at run time (from a guest, a table, a loop).
//!
//! Owners of a mapping ([`crate::pci::Bar`], [`mem::IoMem`]) hand out `&Io<SIZE>` only while
//! the mapping exists.

use crate::{
    bindings, build_assert,
    error::{code::EINVAL, Result},
};
use core::ffi::c_void;

pub mod mem;

/// The raw description of an MMIO region (address and length) of at least `SIZE` bytes.
///
/// By itself it guarantees nothing about the mapping; its owner turns it into an [`Io`] with
/// [`Io::from_raw`] while the mapping exists.
pub struct IoRaw<const SIZE: usize = 0> {
    addr: usize,
    maxsize: usize,
}

impl<const SIZE: usize> IoRaw<SIZE> {
    /// Describes `maxsize` bytes at `addr`; `EINVAL` if that is less than `SIZE`.
    pub fn new(addr: usize, maxsize: usize) -> Result<Self> {
        if maxsize < SIZE {
            return Err(EINVAL);
        }
        Ok(Self { addr, maxsize })
    }

    /// The base address.
    #[inline(always)]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The length in bytes.
    #[inline]
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }
}

/// A mapped MMIO region of at least `SIZE` bytes, with build-time and run-time checked
/// accessors.
///
/// # Invariants
///
/// `addr()..addr() + maxsize()` is a valid `__iomem` mapping for as long as the `Io` exists,
/// and `maxsize() >= SIZE`.
///
/// # Examples
///
/// ```ignore
/// // BAR0 of a device with 256 bytes of registers:
/// let bar = pdev.iomap_region_sized::<0x100>(0, c_str!("my_driver"))?;
/// let io = bar.access(pdev.as_ref())?;
/// let id = io.read32(0x00); // checked when building
/// io.write32(1, 0x20);
/// let r = io.try_read32(guest_offset)?; // checked when running
/// ```
#[repr(transparent)]
pub struct Io<const SIZE: usize = 0>(IoRaw<SIZE>);

macro_rules! define_read {
    ($(#[$attr:meta])* $name:ident, $try_name:ident, $c_fn:ident -> $ty:ty) => {
        #[doc = concat!("Reads a `", stringify!($ty), "` at `offset`, checked at build time \
            against `SIZE` and the width's alignment (the offset must be a constant).")]
        $(#[$attr])*
        #[inline(always)]
        pub fn $name(&self, offset: usize) -> $ty {
            let addr = self.io_addr_assert::<$ty>(offset);
            // SAFETY: `addr` is inside the mapping (build-time check against `SIZE`, which is
            // at most the mapping's length by the type invariant) and naturally aligned.
            unsafe { bindings::$c_fn(addr as *const c_void) }
        }

        #[doc = concat!("Reads a `", stringify!($ty), "` at `offset`; `EINVAL` if it is out \
            of bounds or misaligned.")]
        $(#[$attr])*
        pub fn $try_name(&self, offset: usize) -> Result<$ty> {
            let addr = self.io_addr::<$ty>(offset)?;
            // SAFETY: `io_addr` checked that `addr` is inside the mapping (type invariant)
            // and naturally aligned.
            Ok(unsafe { bindings::$c_fn(addr as *const c_void) })
        }
    };
}

macro_rules! define_write {
    ($(#[$attr:meta])* $name:ident, $try_name:ident, $c_fn:ident <- $ty:ty) => {
        #[doc = concat!("Writes a `", stringify!($ty), "` at `offset`, checked at build time \
            against `SIZE` and the width's alignment (the offset must be a constant).")]
        $(#[$attr])*
        #[inline(always)]
        pub fn $name(&self, value: $ty, offset: usize) {
            let addr = self.io_addr_assert::<$ty>(offset);
            // SAFETY: as for the build-time checked read.
            unsafe { bindings::$c_fn(value, addr as *mut c_void) }
        }

        #[doc = concat!("Writes a `", stringify!($ty), "` at `offset`; `EINVAL` if it is out \
            of bounds or misaligned.")]
        $(#[$attr])*
        pub fn $try_name(&self, value: $ty, offset: usize) -> Result {
            let addr = self.io_addr::<$ty>(offset)?;
            // SAFETY: as for the run-time checked read.
            unsafe { bindings::$c_fn(value, addr as *mut c_void) };
            Ok(())
        }
    };
}

impl<const SIZE: usize> Io<SIZE> {
    /// Gives the accessors of the mapping `raw` describes.
    ///
    /// # Safety
    ///
    /// `raw.addr()..raw.addr() + raw.maxsize()` must be a valid `__iomem` mapping for as long
    /// as the returned reference lives.
    pub unsafe fn from_raw(raw: &IoRaw<SIZE>) -> &Self {
        // SAFETY: `Io` is a transparent wrapper of `IoRaw`; the mapping is the caller's
        // promise (and `IoRaw::new` checked `maxsize >= SIZE`).
        unsafe { &*core::ptr::from_ref(raw).cast::<Self>() }
    }

    /// The mapped address (for C APIs that take an `__iomem` pointer).
    #[inline(always)]
    pub fn addr(&self) -> usize {
        self.0.addr()
    }

    /// The length of the mapping in bytes (at least `SIZE`).
    #[inline]
    pub fn maxsize(&self) -> usize {
        self.0.maxsize()
    }

    /// Whether an access of a `U` at `offset` fits in `size` bytes and is naturally aligned.
    #[inline(always)]
    const fn offset_valid<U>(offset: usize, size: usize) -> bool {
        let type_size = core::mem::size_of::<U>();
        match offset.checked_add(type_size) {
            Some(end) => end <= size && offset % type_size == 0,
            None => false,
        }
    }

    #[inline]
    fn io_addr<U>(&self, offset: usize) -> Result<usize> {
        if !Self::offset_valid::<U>(offset, self.maxsize()) {
            return Err(EINVAL);
        }
        self.addr().checked_add(offset).ok_or(EINVAL)
    }

    // Always inlined, like the accessors that call it: `build_assert!` is proven only where the
    // constant offset is visible (a build without MIR inlining, such as clippy's, would
    // otherwise keep the check and fail at modpost).
    #[inline(always)]
    fn io_addr_assert<U>(&self, offset: usize) -> usize {
        build_assert!(Self::offset_valid::<U>(offset, SIZE));
        self.addr() + offset
    }

    define_read!(read8, try_read8, readb -> u8);
    define_read!(read16, try_read16, readw -> u16);
    define_read!(read32, try_read32, readl -> u32);
    define_read!(read64, try_read64, readq -> u64);
    define_read!(read32_relaxed, try_read32_relaxed, readl_relaxed -> u32);
    define_read!(read64_relaxed, try_read64_relaxed, readq_relaxed -> u64);

    define_write!(write8, try_write8, writeb <- u8);
    define_write!(write16, try_write16, writew <- u16);
    define_write!(write32, try_write32, writel <- u32);
    define_write!(write64, try_write64, writeq <- u64);
    define_write!(write32_relaxed, try_write32_relaxed, writel_relaxed <- u32);
    define_write!(write64_relaxed, try_write64_relaxed, writeq_relaxed <- u64);
}
