// SPDX-License-Identifier: GPL-2.0
//! The PASID space: width and reserved ranges.

use core::ops::RangeInclusive;

use super::{Error, Pasid};

/// Widest PASID space: PCIe PASIDs and Arm SMMUv3 SubstreamIDs have 20 bits.
pub const MAX_PASID_BITS: u32 = 20;

/// Most reserved ranges a [`Config`] may name (PASID 0 is reserved on top of these).
pub const MAX_RESERVED_RANGES: usize = 8;

/// Default for [`Config::max_sets`].
pub const DEFAULT_MAX_SETS: u32 = 1 << 16;

/// The PASID reserved for DMA without PASID (the requester ID's own address space).
pub const RID_PASID: Pasid = 0;

/// How to set up the system-wide PASID space.
#[derive(Debug, Clone)]
pub struct Config<'a> {
    /// Width of the PASID space in bits, `1..=MAX_PASID_BITS`: PASIDs are
    /// `0..=(1 << pasid_bits) - 1`.
    pub pasid_bits: u32,
    /// PASIDs never handed out, besides [`RID_PASID`]. Each range must be non-empty and inside
    /// the space; ranges may overlap. At most [`MAX_RESERVED_RANGES`].
    pub reserved: &'a [RangeInclusive<Pasid>],
    /// Most sets alive at once (set indices are `1..=max_sets`); 1 to
    /// [`MAX_KEY_SET_INDEX`](super::MAX_KEY_SET_INDEX).
    pub max_sets: u32,
}

impl Config<'static> {
    /// A `pasid_bits` wide space with only PASID 0 reserved and [`DEFAULT_MAX_SETS`] sets.
    pub const fn new(pasid_bits: u32) -> Self {
        Config {
            pasid_bits,
            reserved: &[],
            max_sets: DEFAULT_MAX_SETS,
        }
    }
}

impl<'a> Config<'a> {
    /// Replaces the reserved ranges.
    pub const fn with_reserved<'b>(self, reserved: &'b [RangeInclusive<Pasid>]) -> Config<'b> {
        Config {
            pasid_bits: self.pasid_bits,
            reserved,
            max_sets: self.max_sets,
        }
    }

    /// Replaces the set limit.
    pub const fn with_max_sets(self, max_sets: u32) -> Self {
        Config { max_sets, ..self }
    }
}

/// A validated PASID space: the largest PASID and the sorted, merged reserved ranges
/// (including `0..=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Space {
    bits: u32,
    max: Pasid,
    capacity: u32,
    /// `(start, end)` inclusive, sorted by start, disjoint and not adjacent.
    reserved: [(Pasid, Pasid); MAX_RESERVED_RANGES + 1],
    nr_reserved: usize,
}

impl Space {
    pub(super) fn new(config: &Config<'_>) -> Result<Space, Error> {
        if config.pasid_bits == 0 || config.pasid_bits > MAX_PASID_BITS {
            return Err(Error::InvalidWidth);
        }
        if config.max_sets == 0 {
            return Err(Error::InvalidSetLimit);
        }
        if config.reserved.len() > MAX_RESERVED_RANGES {
            return Err(Error::InvalidReserved);
        }
        let max: Pasid = (1u32 << config.pasid_bits) - 1;
        let mut ranges = [(0u32, 0u32); MAX_RESERVED_RANGES + 1];
        let mut n = 1usize; // ranges[0] is RID_PASID.
        for r in config.reserved {
            let (start, end) = (*r.start(), *r.end());
            if start > end || end > max {
                return Err(Error::InvalidReserved);
            }
            if let Some(slot) = ranges.get_mut(n) {
                *slot = (start, end);
                n += 1;
            }
        }
        let list = ranges.get_mut(..n).unwrap_or(&mut []);
        list.sort_unstable();
        // Merge overlapping and adjacent ranges in place.
        let mut out = 0usize;
        for i in 0..list.len() {
            let cur = list[i];
            if i > 0 {
                let last = list[out];
                if cur.0 <= last.1.saturating_add(1) {
                    list[out].1 = last.1.max(cur.1);
                    continue;
                }
                out += 1;
            }
            list[out] = cur;
        }
        let nr_reserved = if list.is_empty() { 0 } else { out + 1 };
        let mut space = Space {
            bits: config.pasid_bits,
            max,
            capacity: 0,
            reserved: ranges,
            nr_reserved,
        };
        // Merged ranges are disjoint and inside 0..=max, so the sum is at most max + 1.
        let reserved: u32 = space
            .ranges()
            .iter()
            .map(|&(s, e)| (e - s).saturating_add(1))
            .fold(0u32, u32::saturating_add);
        space.capacity = (max + 1).saturating_sub(reserved);
        Ok(space)
    }

    /// Width of the space in bits.
    pub(super) fn bits(&self) -> u32 {
        self.bits
    }

    /// The largest PASID of the space.
    pub(super) fn max(&self) -> Pasid {
        self.max
    }

    /// Number of PASIDs that can be allocated (the space minus the reserved PASIDs).
    pub(super) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The merged reserved ranges, ascending.
    pub(super) fn ranges(&self) -> &[(Pasid, Pasid)] {
        self.reserved.get(..self.nr_reserved).unwrap_or(&[])
    }

    /// Whether `pasid` is reserved.
    pub(super) fn is_reserved(&self, pasid: Pasid) -> bool {
        self.ranges().iter().any(|&(s, e)| s <= pasid && pasid <= e)
    }

    /// Calls `f` on the maximal sub-ranges of `min..=max` that contain no reserved PASID, in
    /// ascending order, until it returns `Some`.
    #[inline]
    pub(super) fn for_each_free_range<R>(
        &self,
        min: Pasid,
        max: Pasid,
        mut f: impl FnMut(Pasid, Pasid) -> Option<R>,
    ) -> Option<R> {
        let mut lo = min;
        for &(s, e) in self.ranges() {
            if e < lo {
                continue;
            }
            if s > max {
                break;
            }
            if s > lo {
                if let Some(r) = f(lo, s - 1) {
                    return Some(r);
                }
            }
            lo = e.checked_add(1)?;
            if lo > max {
                return None;
            }
        }
        if lo <= max {
            f(lo, max)
        } else {
            None
        }
    }
}
