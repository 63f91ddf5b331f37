// SPDX-License-Identifier: GPL-2.0
//! Declarative bit-field layouts: the one place where every register and in-memory structure
//! of the SMMU is described.
//!
//! Hand-written shifts and masks are where encodings go wrong, so every layout in this crate is
//! declared once with `bitfield!` (structures made of 64-bit words: STE, CD,
//! commands, event records) or `register!` (one MMIO register with its
//! offset). Each field gets
//!
//! - an associated [`Field`] constant (upper case) describing word, bit range and doc, used by
//!   code that reasons about masks (the "used bits" of the hitless update) and by tests,
//! - a typed getter (`name()`), and
//! - a typed builder-style setter (`set_name(value) -> Self`) that masks the value to the field
//!   width (it never panics; [`Field::fits`] lets callers check a value first).
//!
//! The macros take the getter and setter names explicitly because `core`-only `macro_rules!`
//! cannot paste identifiers. They are textually scoped (no `#[macro_export]`, which would land in
//! the root of whatever crate includes this code) and expand to `super::bitfield::Field` and
//! `super::dma::Mmio`, so they are only used from sibling modules of this one.

/// A bit range `[hi:lo]` inside word `word` of a structure or register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Index of the 64-bit word (0 for registers).
    pub word: usize,
    /// Most significant bit of the field inside the word.
    pub hi: u32,
    /// Least significant bit of the field inside the word.
    pub lo: u32,
}

impl Field {
    /// A field covering bits `[hi:lo]` of word `word`.
    ///
    /// The macros only build fields with `hi >= lo` and `hi < 64`; a malformed declaration is
    /// rejected at compile time by the `const` assertion the macros emit.
    pub const fn new(word: usize, hi: u32, lo: u32) -> Self {
        Self { word, hi, lo }
    }

    /// Number of bits in the field.
    pub const fn width(&self) -> u32 {
        self.hi.wrapping_sub(self.lo).wrapping_add(1)
    }

    /// Whether the declaration is well formed (checked at compile time by the macros).
    pub const fn is_valid(&self) -> bool {
        self.hi >= self.lo && self.hi < 64
    }

    /// Mask of the field's bits, in place inside the word.
    pub const fn mask(&self) -> u64 {
        if !self.is_valid() {
            return 0;
        }
        (u64::MAX >> (63 - (self.hi - self.lo))) << self.lo
    }

    /// Extracts the field from `word` (right-aligned).
    pub const fn get(&self, word: u64) -> u64 {
        if !self.is_valid() {
            return 0;
        }
        (word & self.mask()) >> self.lo
    }

    /// Returns `word` with the field replaced by `value` (truncated to the field width).
    pub const fn put(&self, word: u64, value: u64) -> u64 {
        if !self.is_valid() {
            return word;
        }
        (word & !self.mask()) | ((value << self.lo) & self.mask())
    }

    /// Whether `value` fits into the field without truncation.
    pub const fn fits(&self, value: u64) -> bool {
        self.is_valid() && (value & !(self.mask() >> self.lo)) == 0
    }
}

/// Converts a right-aligned field value to the declared field type.
macro_rules! __smmuv3_from_bits {
    (bool, $v:expr) => {
        $v != 0
    };
    ($t:ty, $v:expr) => {
        $v as $t
    };
}

/// Declares a structure of `N` little-endian 64-bit words and its fields.
///
/// ```ignore
/// bitfield! {
///     /// Doc of the structure.
///     pub struct Ste[8] {
///         /// STE.V: the entry is valid.
///         V @ 0[0:0] => v, set_v: bool;
///         /// STE.Config.
///         CONFIG @ 0[3:1] => config, set_config: u8;
///     }
/// }
/// ```
macro_rules! bitfield {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident [$n:literal] {
            $(
                $(#[$fmeta:meta])*
                $cname:ident @ $word:literal [$hi:literal : $lo:literal]
                    => $get:ident, $set:ident : $ty:tt;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Default)]
        $vis struct $name(pub [u64; $n]);

        #[allow(dead_code, clippy::unnecessary_cast)]
        impl $name {
            /// Number of 64-bit words in the structure.
            pub const WORDS: usize = $n;
            $(
                $(#[$fmeta])*
                pub const $cname: super::bitfield::Field =
                    <super::bitfield::Field>::new($word, $hi, $lo);
            )*
            /// Every declared field, by name (for diagnostics and layout checks).
            pub const FIELDS: &'static [(&'static str, super::bitfield::Field)] =
                &[$((stringify!($cname), Self::$cname)),*];

            $(
                $(#[$fmeta])*
                #[inline]
                pub const fn $get(&self) -> $ty {
                    __smmuv3_from_bits!($ty, Self::$cname.get(self.0[$word]))
                }

                #[doc = concat!("Returns a copy with [`Self::", stringify!($cname),
                    "`] set to `value` (truncated to the field width).")]
                #[inline]
                #[must_use]
                pub const fn $set(mut self, value: $ty) -> Self {
                    self.0[$word] = Self::$cname.put(self.0[$word], value as u64);
                    self
                }
            )*
        }

        const _: () = {
            $(assert!($hi >= $lo && $hi < 64 && $word < $n);)*
        };

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}[", stringify!($name))?;
                for (i, w) in self.0.iter().enumerate() {
                    if i != 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{:#018x}", w)?;
                }
                write!(f, "]")
            }
        }
    };
}

/// Declares an MMIO register (32 or 64 bits wide) at a fixed offset, and its fields.
///
/// ```ignore
/// register! {
///     /// SMMU_CR0.
///     pub struct Cr0: u32 @ 0x20 {
///         /// Enables the SMMU.
///         SMMUEN @ [0:0] => smmuen, set_smmuen: bool;
///     }
/// }
/// ```
///
/// The offset is one token: a literal or a parenthesised expression such as `(PAGE1 + 0xa8)`.
/// Besides the field accessors, a register gets `OFFSET`, `read(&impl Mmio)` and
/// `write(self, &impl Mmio)`, which use the access width of the declared storage type.
macro_rules! register {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident : $st:tt @ $off:tt {
            $(
                $(#[$fmeta:meta])*
                $cname:ident @ [$hi:literal : $lo:literal] => $get:ident, $set:ident : $ty:tt;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
        $vis struct $name(pub $st);

        #[allow(dead_code, clippy::unnecessary_cast)]
        impl $name {
            /// Byte offset of the register from the base of the SMMU register file.
            pub const OFFSET: usize = $off;
            $(
                $(#[$fmeta])*
                pub const $cname: super::bitfield::Field =
                    <super::bitfield::Field>::new(0, $hi, $lo);
            )*
            /// Every declared field, by name (for diagnostics and layout checks).
            pub const FIELDS: &'static [(&'static str, super::bitfield::Field)] =
                &[$((stringify!($cname), Self::$cname)),*];

            /// Reads the register.
            // Always inlined: the offset stays a constant at the `Mmio` call (a kernel
            // `Mmio` checks it when building).
            #[inline(always)]
            pub fn read<M: super::dma::Mmio>(mmio: &M) -> Self {
                Self(register!(@read $st, mmio, $off))
            }

            /// Writes the register.
            #[inline(always)]
            pub fn write<M: super::dma::Mmio>(self, mmio: &M) {
                register!(@write $st, mmio, $off, self.0)
            }

            $(
                $(#[$fmeta])*
                #[inline]
                pub const fn $get(&self) -> $ty {
                    __smmuv3_from_bits!($ty, Self::$cname.get(self.0 as u64))
                }

                #[doc = concat!("Returns a copy with [`Self::", stringify!($cname),
                    "`] set to `value` (truncated to the field width).")]
                #[inline]
                #[must_use]
                pub const fn $set(mut self, value: $ty) -> Self {
                    self.0 = Self::$cname.put(self.0 as u64, value as u64) as $st;
                    self
                }
            )*
        }

        const _: () = {
            $(assert!($hi >= $lo && $hi < <$st>::BITS);)*
        };
    };
    (@read u32, $m:expr, $off:expr) => { $m.read32($off) };
    (@read u64, $m:expr, $off:expr) => { $m.read64($off) };
    (@write u32, $m:expr, $off:expr, $v:expr) => { $m.write32($off, $v) };
    (@write u64, $m:expr, $off:expr, $v:expr) => { $m.write64($off, $v) };
}
