// SPDX-License-Identifier: GPL-2.0

//! DMA: coherent allocations and streaming mappings of pages.
//!
//! C header: [`include/linux/dma-mapping.h`](srctree/include/linux/dma-mapping.h)
//!
//! - [`CoherentAllocation<T>`]: `count` elements of `T` from `dma_alloc_coherent`, freed on
//!   drop. CPU access goes through bounds-checked, volatile element/byte accessors (the device
//!   may write the memory at any time, so no Rust reference to it is ever handed out).
//! - [`PageMapping`]: an owned [`Page`] mapped with `dma_map_page`, unmapped on drop (before the
//!   page is freed).
//! - [`BlockMapping`]: the first bytes of a physically contiguous [`ZeroedPages`] block mapped
//!   with one `dma_map_page` (a buffer larger than a page), unmapped on drop; it borrows the
//!   block, which therefore outlives the mapping.
//!
//! Both keep a reference on their device. They should be dropped before the device's driver
//! unbinds (keep them in the driver data); the DMA API tolerates a free after unbind.

use crate::{
    alloc::Flags,
    bindings,
    device::{Bound, Device},
    dma_pages::ZeroedPages,
    error::{code::*, Result},
    page::{Page, PAGE_SIZE},
    types::{ARef, AsBytes, FromBytes},
};

/// A device (bus) address.
pub type DmaAddr = bindings::dma_addr_t;

/// The physical address of `page` (`page_to_phys`), e.g. to map it into an IOMMU domain.
pub fn page_to_phys(page: &Page) -> u64 {
    // SAFETY: `page` is a valid allocated page.
    unsafe { bindings::page_to_phys(page.as_ptr()) }
}

/// Direction of a streaming mapping (C `enum dma_data_direction`), upstream's name and values.
///
/// Upstream also has `None` (`DMA_NONE`); it is left out here because every mapping call
/// of this module would `BUG()` on it (`valid_dma_direction`), so safe code must not be able to
/// pass it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
// The C compiler picks the enum's integer type; the casts keep the discriminants `u32` whichever.
#[allow(clippy::unnecessary_cast)]
pub enum DataDirection {
    /// `DMA_BIDIRECTIONAL`
    Bidirectional = bindings::dma_data_direction_DMA_BIDIRECTIONAL as u32,
    /// `DMA_TO_DEVICE`: the device reads.
    ToDevice = bindings::dma_data_direction_DMA_TO_DEVICE as u32,
    /// `DMA_FROM_DEVICE`: the device writes.
    FromDevice = bindings::dma_data_direction_DMA_FROM_DEVICE as u32,
}

impl From<DataDirection> for bindings::dma_data_direction {
    fn from(direction: DataDirection) -> Self {
        // CAST: the discriminants are the C values (above), which are small and non-negative.
        direction as u32 as Self
    }
}

/// Coherent DMA memory for `count` values of `T`.
///
/// # Invariants
///
/// `cpu_addr` and `dma_handle` are the result of a successful `dma_alloc_coherent` of
/// `count * size_of::<T>()` (non-zero) bytes for `dev`, freed exactly once, in `drop`.
///
/// # Examples
///
/// ```ignore
/// let buf = CoherentAllocation::<u32>::alloc_coherent(pdev.as_ref(), 1024, GFP_KERNEL)?;
/// buf.write(0, 0xdead_beef)?;
/// device_dma_from(buf.dma_handle());
/// assert!(buf.read(1024).is_err()); // out of bounds
/// ```
pub struct CoherentAllocation<T: AsBytes + FromBytes> {
    dev: ARef<Device>,
    dma_handle: DmaAddr,
    count: usize,
    cpu_addr: *mut T,
}

// SAFETY: the allocation may be used and freed from any thread; the accessors are volatile.
unsafe impl<T: AsBytes + FromBytes + Send> Send for CoherentAllocation<T> {}
// SAFETY: `&self` accessors do volatile element accesses only.
unsafe impl<T: AsBytes + FromBytes + Sync> Sync for CoherentAllocation<T> {}

impl<T: AsBytes + FromBytes> CoherentAllocation<T> {
    /// Allocates coherent memory for `count` values of `T` (zeroed: `__GFP_ZERO` is implied by
    /// the DMA API on all architectures this project uses). Only while `dev` is bound to a
    /// driver (upstream's shape): the allocation belongs to the binding and should be dropped
    /// before the driver unbinds.
    pub fn alloc_coherent(dev: &Device<Bound>, count: usize, gfp: Flags) -> Result<Self> {
        let size = core::mem::size_of::<T>().checked_mul(count).ok_or(EOVERFLOW)?;
        if size == 0 {
            return Err(EINVAL);
        }
        let mut handle: DmaAddr = 0;
        // SAFETY: valid device and out pointer.
        let p = unsafe { bindings::dma_alloc_coherent(dev.as_raw(), size, &mut handle, gfp.as_raw()) };
        if p.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: allocated just above.
        Ok(Self { dev: dev.into(), dma_handle: handle, count, cpu_addr: p.cast() })
    }

    /// The device address of the first element.
    pub fn dma_handle(&self) -> DmaAddr {
        self.dma_handle
    }

    /// The device address of element `index`; `EINVAL` out of bounds.
    pub fn dma_handle_at(&self, index: usize) -> Result<DmaAddr> {
        if index >= self.count {
            return Err(EINVAL);
        }
        Ok(self.dma_handle + (index * core::mem::size_of::<T>()) as DmaAddr)
    }

    /// Number of elements.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.count * core::mem::size_of::<T>()
    }

    /// Reads element `index` (volatile); `EINVAL` out of bounds.
    pub fn read(&self, index: usize) -> Result<T> {
        if index >= self.count {
            return Err(EINVAL);
        }
        // SAFETY: in bounds of the allocation (type invariant); any bit pattern is a valid `T`
        // (`FromBytes`); volatile because the device may write concurrently.
        Ok(unsafe { self.cpu_addr.add(index).read_volatile() })
    }

    /// Writes element `index` (volatile); `EINVAL` out of bounds.
    pub fn write(&self, index: usize, value: T) -> Result {
        if index >= self.count {
            return Err(EINVAL);
        }
        // SAFETY: in bounds; the memory is ours and only accessed with volatile operations.
        unsafe { self.cpu_addr.add(index).write_volatile(value) };
        Ok(())
    }

    /// Copies `out.len()` bytes starting at byte `offset` out of the buffer.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> Result {
        let end = offset.checked_add(out.len()).ok_or(EINVAL)?;
        if end > self.size() {
            return Err(EINVAL);
        }
        let base = self.cpu_addr.cast::<u8>();
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `offset + i < size`, inside the allocation.
            *b = unsafe { base.add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` into the buffer at byte `offset`.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result {
        let end = offset.checked_add(data.len()).ok_or(EINVAL)?;
        if end > self.size() {
            return Err(EINVAL);
        }
        let base = self.cpu_addr.cast::<u8>();
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `offset + i < size`, inside the allocation.
            unsafe { base.add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }
}

impl<T: AsBytes + FromBytes> Drop for CoherentAllocation<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this is the allocation's only free.
        unsafe {
            bindings::dma_free_coherent(
                self.dev.as_raw(),
                self.size(),
                self.cpu_addr.cast(),
                self.dma_handle,
            )
        };
    }
}

/// A page mapped for streaming DMA; unmapped on drop, then the page is freed.
///
/// # Invariants
///
/// `addr` is the successful `dma_map_page` mapping of `len` bytes at `offset` of `page` for
/// `dev` in direction `dir`; it is unmapped exactly once, in `drop`, before `page` is dropped.
pub struct PageMapping {
    dev: ARef<Device>,
    page: Page,
    addr: DmaAddr,
    offset: usize,
    len: usize,
    dir: DataDirection,
}

impl PageMapping {
    /// Maps `len` bytes at `offset` of `page` for `dev` (`dma_map_page`).
    pub fn new(dev: &Device, page: Page, offset: usize, len: usize, dir: DataDirection) -> Result<Self> {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if len == 0 || end > PAGE_SIZE {
            return Err(EINVAL);
        }
        // SAFETY: valid device; `page` is an allocated page we own; range checked above.
        let addr = unsafe {
            bindings::dma_map_page_attrs(dev.as_raw(), page.as_ptr(), offset, len, dir.into(), 0)
        };
        // SAFETY: valid device.
        if unsafe { bindings::dma_mapping_error(dev.as_raw(), addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above.
        Ok(Self { dev: dev.into(), page, addr, offset, len, dir })
    }

    /// The device address of the mapping.
    pub fn dma_addr(&self) -> DmaAddr {
        self.addr
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: `new` rejects `len == 0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the CPU ownership (`dma_sync_single_for_cpu`) and runs `f` on the page.
    pub fn with_cpu<R>(&mut self, f: impl FnOnce(&mut Page, usize, usize) -> R) -> R {
        // SAFETY: mapped (type invariant).
        unsafe {
            bindings::dma_sync_single_for_cpu(self.dev.as_raw(), self.addr, self.len, self.dir.into())
        };
        let r = f(&mut self.page, self.offset, self.len);
        // SAFETY: as above; ownership goes back to the device.
        unsafe {
            bindings::dma_sync_single_for_device(self.dev.as_raw(), self.addr, self.len, self.dir.into())
        };
        r
    }
}

impl Drop for PageMapping {
    fn drop(&mut self) {
        // SAFETY: by the type invariant, unmapped exactly once, here, before `page` is freed.
        unsafe {
            bindings::dma_unmap_page_attrs(self.dev.as_raw(), self.addr, self.len, self.dir.into(), 0)
        };
    }
}

/// The first `len` bytes of a [`ZeroedPages`] block mapped for streaming DMA with one
/// `dma_map_page` of its first page (the DMA API maps a physically contiguous range that
/// starts in that page); unmapped on drop.
///
/// # Invariants
///
/// `addr` is the successful `dma_map_page` mapping of the first `len` bytes of `block` for
/// `dev` in direction `dir`; it is unmapped exactly once, in `drop`, while `block` is still
/// borrowed (so still allocated).
pub struct BlockMapping<'a> {
    dev: ARef<Device>,
    block: &'a ZeroedPages,
    addr: DmaAddr,
    len: usize,
    dir: DataDirection,
}

impl<'a> BlockMapping<'a> {
    /// Maps the first `len` bytes of `block` for `dev` (`EINVAL` if `len` is 0 or longer than
    /// the block; `ENOMEM` if the DMA API cannot map it).
    pub fn new(dev: &Device, block: &'a ZeroedPages, len: usize, dir: DataDirection) -> Result<Self> {
        if len == 0 || len > block.len() {
            return Err(EINVAL);
        }
        // SAFETY: valid device; the block is an allocated, physically contiguous run of pages
        // starting at its first page, at least `len` bytes long (checked above), and stays
        // allocated while borrowed.
        let addr = unsafe {
            bindings::dma_map_page_attrs(dev.as_raw(), block.first_page(), 0, len, dir.into(), 0)
        };
        // SAFETY: valid device.
        if unsafe { bindings::dma_mapping_error(dev.as_raw(), addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above.
        Ok(Self { dev: dev.into(), block, addr, len, dir })
    }

    /// The device address of the mapping.
    pub fn dma_addr(&self) -> DmaAddr {
        self.addr
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: `new` rejects `len == 0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped block.
    pub fn block(&self) -> &'a ZeroedPages {
        self.block
    }
}

impl Drop for BlockMapping<'_> {
    fn drop(&mut self) {
        // SAFETY: mapped (type invariant), unmapped exactly once, here, while the block is
        // still borrowed.
        unsafe {
            bindings::dma_unmap_page_attrs(self.dev.as_raw(), self.addr, self.len, self.dir.into(), 0)
        };
    }
}
