// SPDX-License-Identifier: GPL-2.0

//! Open Firmware (device tree) match tables.
//!
//! C header: [`include/linux/mod_devicetable.h`](srctree/include/linux/mod_devicetable.h)
//!
//! Shaped like upstream Rust-for-Linux `of::DeviceId` / `of::IdTable` (6.13+), written for 6.12:
//! a zero-terminated `of_device_id` array built at compile time, each entry carrying the index
//! of its driver information (`data = index + 1`, so that no entry's `data` is NULL).

use crate::{bindings, str::CStr};

/// An OF device ID: a `compatible` string.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct DeviceId(bindings::of_device_id);

const ZERO_ID: bindings::of_device_id = bindings::of_device_id {
    name: [0; 32],
    type_: [0; 32],
    compatible: [0; 128],
    data: core::ptr::null(),
};

impl DeviceId {
    /// Matches nodes whose `compatible` property lists `compatible`. Fails to build if the
    /// string does not fit the C field (127 bytes and the NUL).
    pub const fn new(compatible: &'static CStr) -> Self {
        let src = compatible.as_bytes_with_nul();
        assert!(src.len() <= 128, "OF compatible string too long");
        let mut id = ZERO_ID;
        let mut i = 0;
        while i < src.len() {
            id.compatible[i] = src[i] as _;
            i += 1;
        }
        Self(id)
    }
}

/// A match table with per-entry driver information, zero-terminated for the C side. Build it
/// with [`of_device_table!`](crate::of_device_table).
///
/// # Invariants
///
/// `sentinel` is all zeroes and directly follows `ids` (`repr(C)`, same element type); entry `i`
/// has `data == i + 1` (as a pointer value), indexing `info[i]`.
#[repr(C)]
pub struct IdArray<I: 'static, const N: usize> {
    ids: [bindings::of_device_id; N],
    sentinel: bindings::of_device_id,
    info: [I; N],
}

// SAFETY: the table is immutable; the `data` pointers are indices, never dereferenced.
unsafe impl<I: Sync, const N: usize> Sync for IdArray<I, N> {}

impl<I: 'static, const N: usize> IdArray<I, N> {
    /// Builds the table; entry `i` of `ids` goes with `info[i]`.
    pub const fn new(ids: [DeviceId; N], info: [I; N]) -> Self {
        let mut raw = [ZERO_ID; N];
        let mut i = 0;
        while i < N {
            raw[i] = ids[i].0;
            raw[i].data = (i + 1) as *const crate::ffi::c_void;
            i += 1;
        }
        // INVARIANT: indices set above, the sentinel is zeroed.
        Self {
            ids: raw,
            sentinel: ZERO_ID,
            info,
        }
    }

    /// A type-erased view for a driver's `OF_ID_TABLE`.
    pub const fn table(&'static self) -> IdTable<I> {
        IdTable {
            raw: &self.ids as *const _ as *const bindings::of_device_id,
            info: &self.info,
        }
    }
}

/// A reference to an [`IdArray`]: its zero-terminated C table and the driver information.
#[derive(Clone, Copy)]
pub struct IdTable<I: 'static> {
    raw: *const bindings::of_device_id,
    info: &'static [I],
}

// SAFETY: the table is immutable static data.
unsafe impl<I: Sync> Sync for IdTable<I> {}
// SAFETY: as for `Sync`.
unsafe impl<I: Sync> Send for IdTable<I> {}

impl<I: 'static> IdTable<I> {
    /// The zero-terminated C table (`of_match_table`).
    pub fn as_ptr(&self) -> *const bindings::of_device_id {
        self.raw
    }

    /// The information of the entry whose `data` field is `data` (as stored by [`IdArray`]).
    pub fn info_of(&self, data: *const crate::ffi::c_void) -> Option<&'static I> {
        (data as usize)
            .checked_sub(1)
            .and_then(|i| self.info.get(i))
    }
}

/// Defines a static OF match table with driver information.
///
/// # Examples
///
/// ```ignore
/// kernel::of_device_table!(SMMU_IDS, (), [(of::DeviceId::new(c_str!("arm,smmu-v3")), ())]);
/// ```
#[macro_export]
macro_rules! of_device_table {
    ($name:ident, $info:ty, [$(($id:expr, $data:expr)),+ $(,)?]) => {
        static $name: $crate::of::IdArray<$info, { [$(stringify!($id)),+].len() }> =
            $crate::of::IdArray::new([$($id),+], [$($data),+]);
    };
}
