// SPDX-License-Identifier: GPL-2.0

//! Read-only observation of hardware that another driver owns: the registers of a
//! device-tree device and RAM that driver shares with its device (an IOMMU's command queue),
//! for test instruments that must neither depend on nor disturb the driver under test.
//!
//! C headers: [`include/linux/of_address.h`](srctree/include/linux/of_address.h),
//! [`include/linux/io.h`](srctree/include/linux/io.h) (`memremap`),
//! [`include/linux/uaccess.h`](srctree/include/linux/uaccess.h) (`copy_from_kernel_nofault`)
//!
//! - [`MmioView`]: a second `ioremap` of the first `reg` range of the one available DT node
//!   with a given `compatible` (the driver's own mapping and its `request_mem_region` are left
//!   alone); only 32- and 64-bit **reads**. Reading a register with read side effects (a FIFO
//!   pop, a clear-on-read status) would disturb the driver: the caller names the registers,
//!   and must read only side-effect-free ones (an SMMUv3's ID, PROD/CONS and BASE registers
//!   are).
//! - [`RamView`]: a view of a physical range that must be System RAM in its entirety (checked:
//!   `EINVAL` otherwise, so a garbage address read from a register is refused instead of
//!   mapped), read 64 bits at a time with `copy_from_kernel_nofault`. The memory belongs to
//!   someone else and may change or be freed at any time: a read returns whatever the word
//!   holds (any bit pattern is a valid `u64`) or `EFAULT` if the page is no longer mapped
//!   (`DEBUG_PAGEALLOC` unmaps freed pages), never a kernel fault. Only meaningful for memory
//!   the CPU sees coherently with the device (a cache-coherent master): the caller checks that.

use crate::{
    bindings,
    error::{code::*, Result},
    io::mem::IoMem,
    str::CStr,
};
use core::ffi::c_void;

/// The registers of a device-tree device, mapped a second time, read-only (the mapping's write
/// accessors are not exposed).
pub struct MmioView {
    io: IoMem,
    phys: u64,
}

/// What [`MmioView::of_compatible`] found: the number of available nodes and the first one's
/// `reg` 0 range.
struct Found {
    nodes: u32,
    range: Option<(u64, u64)>,
}

/// Counts the available nodes compatible with `compatible` and takes the `reg` 0 range of the
/// first (`for_each_compatible_node`: each step drops the reference of the node before).
fn find_compatible(compatible: &CStr) -> Found {
    let mut found = Found { nodes: 0, range: None };
    let compat = compatible.as_char_ptr();
    // SAFETY: FFI call; NULL `from` starts at the root; a valid NUL-terminated string.
    let mut np = unsafe { bindings::of_find_compatible_node(core::ptr::null_mut(), core::ptr::null(), compat) };
    while !np.is_null() {
        // SAFETY: `np` is a node we hold a reference on (returned by the iteration).
        if unsafe { bindings::of_device_is_available(np) } {
            found.nodes += 1;
            if found.range.is_none() {
                let mut res = bindings::resource::default();
                // SAFETY: valid node, `res` is a writable `struct resource`.
                if unsafe { bindings::of_address_to_resource(np, 0, &mut res) } == 0 {
                    found.range = Some((res.start, res.end));
                }
            }
        }
        // SAFETY: drops the reference on `np` and returns the next match with a reference.
        np = unsafe { bindings::of_find_compatible_node(np, core::ptr::null(), compat) };
    }
    found
}

impl MmioView {
    /// Maps `reg` 0 of the one available device-tree node compatible with `compatible`:
    /// `ENODEV` if there is none, `E2BIG` if there are several (the caller cannot tell which
    /// one it wants), `EINVAL` if its range is shorter than `min_len` or absent.
    pub fn of_compatible(compatible: &CStr, min_len: usize) -> Result<Self> {
        let found = find_compatible(compatible);
        match found.nodes {
            0 => return Err(ENODEV),
            1 => {}
            _ => return Err(E2BIG),
        }
        let (start, end) = found.range.ok_or(EINVAL)?;
        let len = end
            .checked_sub(start)
            .and_then(|l| l.checked_add(1))
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(EINVAL)?;
        if len < min_len {
            return Err(EINVAL);
        }
        Ok(Self { io: IoMem::new(start, len)?, phys: start })
    }

    /// Physical address of the mapped registers.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Reads the 32-bit register at `offset` (`EINVAL` if outside or misaligned).
    pub fn read32(&self, offset: usize) -> Result<u32> {
        self.io.try_read32(offset)
    }

    /// Reads the 64-bit register at `offset` (`EINVAL` if outside or misaligned).
    pub fn read64(&self, offset: usize) -> Result<u64> {
        self.io.try_read64(offset)
    }
}

/// A read-only view of System RAM that someone else owns, by physical address.
///
/// # Invariants
///
/// `virt` is the `memremap(MEMREMAP_WB)` address of `phys..phys + len`, a range that was
/// entirely System RAM when mapped (so `memremap` returned its linear-map address), unmapped
/// exactly once, in `drop`.
pub struct RamView {
    virt: usize,
    phys: u64,
    len: usize,
}

// SAFETY: reads only, through `copy_from_kernel_nofault`, which is safe from any thread.
unsafe impl Send for RamView {}
// SAFETY: as above.
unsafe impl Sync for RamView {}

impl RamView {
    /// Views `len` bytes of RAM at `phys`: `EINVAL` unless the whole range is System RAM
    /// (checked before mapping: `memremap` would WARN on a range that is partly RAM).
    pub fn new(phys: u64, len: usize) -> Result<Self> {
        if len == 0 {
            return Err(EINVAL);
        }
        phys.checked_add(len as u64).ok_or(EINVAL)?;
        // SAFETY: FFI call; only looks the range up in the resource tree.
        let r = unsafe {
            bindings::region_intersects(
                phys,
                len,
                bindings::IORESOURCE_SYSTEM_RAM as _,
                bindings::IORES_DESC_NONE as _,
            )
        };
        if r != bindings::REGION_INTERSECTS as i32 {
            return Err(EINVAL);
        }
        // SAFETY: FFI call on a range that is System RAM (checked above).
        let virt = unsafe { bindings::memremap(phys, len, bindings::MEMREMAP_WB as _) };
        if virt.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above, RAM.
        Ok(Self { virt: virt as usize, phys, len })
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length of the view in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty (never: `new` refuses zero lengths).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the 64-bit word at `offset` (8-aligned, inside the view: `EINVAL` otherwise) as
    /// the CPU sees it now; `EFAULT` if the page is not mapped any more.
    pub fn read_u64(&self, offset: usize) -> Result<u64> {
        let end = offset.checked_add(8).ok_or(EINVAL)?;
        if end > self.len || offset % 8 != 0 {
            return Err(EINVAL);
        }
        let mut v: u64 = 0;
        // SAFETY: `v` is a writable 8-byte destination; the source is inside the mapping (type
        // invariant, bounds checked above) and `copy_from_kernel_nofault` turns a fault on it
        // into an error instead of an oops. The owner may write the word concurrently: the
        // copy is an aligned 64-bit load (single-copy atomic on 64-bit architectures), and any
        // value is a valid `u64`.
        let r = unsafe {
            bindings::copy_from_kernel_nofault(
                (&mut v as *mut u64).cast(),
                (self.virt + offset) as *const c_void,
                8,
            )
        };
        if r != 0 {
            return Err(EFAULT);
        }
        Ok(v)
    }
}

impl Drop for RamView {
    fn drop(&mut self) {
        // SAFETY: mapped by `memremap` and owned (type invariant).
        unsafe { bindings::memunmap(self.virt as *mut c_void) };
    }
}
