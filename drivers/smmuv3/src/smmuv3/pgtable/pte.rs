// SPDX-License-Identifier: GPL-2.0
//! VMSAv8-64 stage-1 descriptor layout, declared once.
//!
//! Source: Arm ARM (DDI 0487) D8.3 "Translation table descriptor formats" (table, block and
//! page descriptors) and D8.4 "Memory attributes"/"Access permissions" for the stage-1 lower
//! and upper attribute fields. The values match `io-pgtable-arm.c` (Linux 6.12, lines 67-110).
//!
//! The shared `bitfield!` macro of this crate describes multi-word structures with typed
//! accessors; a descriptor is one word whose address field depends on the translation level,
//! so this module uses a small local macro instead: `pte_fields!` declares one [`PteField`]
//! constant per field (bit range plus the Arm ARM name in the doc). It is textually scoped
//! (no `#[macro_export]`), so it never leaks into the crate that includes this code.

/// A bit range `[hi:lo]` of a 64-bit descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PteField {
    /// Most significant bit.
    pub hi: u32,
    /// Least significant bit.
    pub lo: u32,
}

impl PteField {
    /// Mask of the field in place.
    pub const fn mask(self) -> u64 {
        (u64::MAX >> (63 - (self.hi - self.lo))) << self.lo
    }

    /// `value` shifted into place and truncated to the field.
    pub const fn prep(self, value: u64) -> u64 {
        (value << self.lo) & self.mask()
    }

    /// The field extracted from `desc`, right-aligned.
    pub const fn get(self, desc: u64) -> u64 {
        (desc & self.mask()) >> self.lo
    }
}

/// Declares `PteField` constants: `NAME: hi, lo;` with doc comments. A declaration with
/// `hi < lo` or `hi > 63` fails to compile (const assertion).
macro_rules! pte_fields {
    ($($(#[$doc:meta])* $name:ident : $hi:literal, $lo:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: PteField = PteField { hi: $hi, lo: $lo };
            const _: () = assert!($hi >= $lo && $hi < 64);
        )*
    };
}

pte_fields! {
    /// bit[0]: descriptor is valid.
    VALID: 0, 0;
    /// bit[1]: at levels 0-2, 1 = table, 0 = block; at level 3 it must be 1 (page).
    TYPE: 1, 1;
    /// AttrIndx[2:0], bits[4:2]: index into MAIR (see [`super::MAIR`]).
    ATTR_INDX: 4, 2;
    /// NS, bit[5] (ignored for Non-secure accesses; never set here).
    NS: 5, 5;
    /// AP[1], bit[6]: 1 = accessible at EL0 (unprivileged) as well.
    AP_UNPRIV: 6, 6;
    /// AP[2], bit[7]: 1 = read-only.
    AP_RDONLY: 7, 7;
    /// SH[1:0], bits[9:8]: shareability (0b10 outer, 0b11 inner).
    SH: 9, 8;
    /// AF, bit[10]: access flag (always set: SMMU HTTU is not used for AF).
    AF: 10, 10;
    /// nG, bit[11]: not global, i.e. tagged with the ASID.
    NG: 11, 11;
    /// Output address / next-level table address, bits[47:12] (48-bit OA; the low bits below
    /// the level's block size are RES0 and masked out by [`oa_mask`]).
    OA: 47, 12;
    /// DBM, bit[51] (not used: no dirty tracking).
    DBM: 51, 51;
    /// Contiguous hint, bit[52] (never set).
    CONT: 52, 52;
    /// PXN, bit[53]: privileged execute-never.
    PXN: 53, 53;
    /// UXN/XN, bit[54]: unprivileged execute-never.
    UXN: 54, 54;
}

/// bits[1:0] of a table descriptor (levels 0-2) or page descriptor (level 3).
pub const TYPE_TABLE_OR_PAGE: u64 = 0b11;
/// bits[1:0] of a block descriptor (levels 1-2).
pub const TYPE_BLOCK: u64 = 0b01;

/// Shareability encodings (Arm ARM D8.4.3, `SH[1:0]`).
pub const SH_OUTER: u64 = 0b10;
/// Inner Shareable.
pub const SH_INNER: u64 = 0b11;

/// MAIR attribute indices used by [`ATTR_INDX`] (same assignment as io-pgtable-arm.c:127-130).
pub const MAIR_IDX_NC: u64 = 0;
/// Normal inner/outer write-back read/write-allocate.
pub const MAIR_IDX_CACHE: u64 = 1;
/// Device-nGnRE.
pub const MAIR_IDX_DEV: u64 = 2;
/// Normal inner non-cacheable, outer write-back.
pub const MAIR_IDX_INC_OCACHE: u64 = 3;

/// MAIR attribute bytes (Arm ARM D19 MAIR_EL1.Attr<n>; io-pgtable-arm.c:123-126).
pub const MAIR_ATTR_NC: u64 = 0x44;
/// Normal, inner and outer write-back, read/write-allocate, non-transient.
pub const MAIR_ATTR_WBRWA: u64 = 0xff;
/// Device-nGnRE.
pub const MAIR_ATTR_DEVICE: u64 = 0x04;
/// Normal, inner non-cacheable, outer write-back read/write-allocate.
pub const MAIR_ATTR_INC_OWBRWA: u64 = 0xf4;

/// Attribute bits a block keeps when it is split into smaller entries: everything but the
/// descriptor type and the output address (the Contiguous hint is never set here).
pub const fn leaf_attr_mask() -> u64 {
    !(VALID.mask() | TYPE.mask() | OA.mask())
}

/// Mask of the output-address bits of a leaf whose size is `1 << size_shift` (48-bit OA).
pub const fn oa_mask(size_shift: u32) -> u64 {
    OA.mask() & !((1u64 << size_shift) - 1)
}
