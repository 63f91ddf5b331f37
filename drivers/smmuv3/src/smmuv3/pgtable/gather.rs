// SPDX-License-Identifier: GPL-2.0
//! Invalidation gathering: what an unmap leaves for the command layer to invalidate.
//!
//! # Interface with the command layer
//!
//! [`super::PageTable::unmap`] records into a [`Gather`] which IOVA ranges lost (or changed)
//! leaf entries, at which level, and whether walk-cache entries must go too (a table was
//! unlinked). [`Gather::plan`] turns that into a list of neutral [`Invalidation`]s for one
//! ASID, given the SMMU's features ([`InvFeatures`]). The command layer maps each to exactly
//! one command and ends the batch with one CMD_SYNC:
//!
//! * [`Invalidation::Va`] → `CMD_TLBI_NH_VA` (or `CMD_TLBI_EL2_VA` with E2H) with the domain's
//!   ASID, `Addr = iova`, `Leaf = leaf`, `TG = 0`, `TTL = 0`, `NUM = SCALE = 0`.
//! * [`Invalidation::Range`] (only produced when `SMMU_IDR3.RIL == 1`) → the same command with
//!   `TG = granule.tlbi_tg()` (0b01 4K, 0b10 16K, 0b11 64K), `SCALE = scale`, `NUM = num - 1`,
//!   `TTL = ttl` (0: no hint, 1..=3: all leaves of the range are at that level), `Leaf = leaf`.
//!   It covers `num << (scale + granule_shift)` bytes from `iova`.
//! * [`Invalidation::Asid`] → `CMD_TLBI_NH_ASID` (or `CMD_TLBI_EL2_ASID`) for the ASID.
//!
//! ATC invalidations (ATS) are not part of this list; the caller adds them for the range.
//! After the CMD_SYNC completes, [`super::PageTable::release_retired`] frees the tables the
//! unmap unlinked and empties the gather.
//!
//! # Policy (mirrors arm-smmu-v3.c of Linux 6.12, never more commands)
//!
//! * No RIL: one `Va` per entry removed, at the entry's level (a 2M block costs one command,
//!   like `iommu_iotlb_gather_add_page()` with `pgsize = 2M` then `__arm_smmu_tlb_inv_range()`
//!   stepping by the granule, arm-smmu-v3.c:2197-2230). When that would be
//!   `max_tlbi_ops` (`CMDQ_MAX_TLBI_OPS = 1 << (PAGE_SHIFT - 3)`, arm-smmu-v3-sva.c:125, 143)
//!   commands or more, a single `Asid` replaces them.
//! * RIL: each recorded range becomes the same `NUM`/`SCALE` chunks the C loop produces
//!   (arm-smmu-v3.c:2175-2228), including its non-leaf quirk of never sending a lone
//!   `NUM = 0, SCALE = 0` range (lines 2194-2195). Ranges too large to encode (`SCALE > 31`) fall
//!   back to `Asid`.
//! * One sync per gather. The C driver syncs once per `iotlb_sync()` and additionally every
//!   time the page size changes or the range becomes disjoint (include/linux/iommu.h:934-936)
//!   and after every table it frees (`tlb_flush_walk`, io-pgtable-arm.c:678).
//! * A gather holds up to [`GATHER_ITEMS`] disjoint ranges; beyond that it degrades to `Asid`.
//!
//! TTL hints: a leaf range carries its level as TTL, except for ranges inside a block that the
//! same unmap split (the old block entry may still be cached at the block's level, so the hint
//! is dropped) and for non-leaf (walk) invalidations, which use TTL 0 like the C driver.

use super::Granule;

/// Capacity of a [`Gather`] in disjoint ranges.
pub const GATHER_ITEMS: usize = 16;

/// `CMDQ_TLBI_RANGE_NUM_MAX` (arm-smmu-v3.h:396): largest NUM+1 of a range command.
const RANGE_NUM_MAX: u64 = 31;

/// One recorded range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Item {
    start: u64,
    size: u64,
    /// log2 of the size of the entries removed (the per-VA step).
    step_shift: u32,
    /// TTL hint (0 = none, 1..=3 = level of every leaf in the range).
    ttl: u8,
    leaf: bool,
}

/// A range of leaves of one size (see [`Gather::leaf_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRange {
    /// First IOVA.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// log2 of the leaves' size (the page size of `iommu_iotlb_gather`).
    pub step_shift: u32,
}

/// What one or more unmaps of one page table left to invalidate, plus the tables they
/// unlinked (freed by [`super::PageTable::release_retired`]). Use one gather per page table.
#[derive(Debug, Clone)]
pub struct Gather {
    items: [Item; GATHER_ITEMS],
    len: usize,
    /// Too many ranges: invalidate the whole ASID.
    all: bool,
    granule: Option<Granule>,
    /// Head of the retired-table list (see `PageTable::retire`).
    pub(super) retired: Option<u64>,
    pub(super) retired_count: usize,
}

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

impl Gather {
    /// An empty gather.
    pub const fn new() -> Self {
        Self {
            items: [Item {
                start: 0,
                size: 0,
                step_shift: 0,
                ttl: 0,
                leaf: false,
            }; GATHER_ITEMS],
            len: 0,
            all: false,
            granule: None,
            retired: None,
            retired_count: 0,
        }
    }

    /// Whether nothing needs invalidating.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.all
    }

    /// Whether the gather degraded to a whole-ASID invalidation.
    pub fn is_whole_asid(&self) -> bool {
        self.all
    }

    /// Number of tables waiting for [`super::PageTable::release_retired`].
    pub fn retired_tables(&self) -> usize {
        self.retired_count
    }

    /// Forgets the recorded ranges (not the retired tables: those belong to the page table).
    pub(super) fn reset(&mut self) {
        let granule = self.granule;
        *self = Self::new();
        self.granule = granule;
    }

    pub(super) fn set_granule(&mut self, g: Granule) {
        self.granule = Some(g);
    }

    /// The gather's content if it is exactly one range of leaves whose TTL is their level (no
    /// walk invalidation, no split block, not the whole ASID, no retired table): what the
    /// IOMMU core's `iommu_iotlb_gather` (start, end, page size) can carry to `iotlb_sync`.
    pub fn leaf_range(&self) -> Option<LeafRange> {
        if self.all || self.len != 1 || self.retired_count != 0 {
            return None;
        }
        let it = self.items.first()?;
        let level = self.granule?.level_of_shift(it.step_shift)?;
        (it.leaf && u32::from(it.ttl) == level).then_some(LeafRange {
            start: it.start,
            size: it.size,
            step_shift: it.step_shift,
        })
    }

    /// A gather holding the leaves of `r` (TTL: their level), the reverse of
    /// [`Gather::leaf_range`].
    pub fn from_leaf_range(granule: Granule, r: LeafRange) -> Self {
        let mut g = Self::new();
        g.granule = Some(granule);
        let ttl = granule.level_of_shift(r.step_shift).unwrap_or(0) as u8;
        g.add(r.start, r.size, r.step_shift, ttl, true);
        g
    }

    /// Requests a whole-ASID invalidation (e.g. after changing many entries).
    pub fn add_whole_asid(&mut self) {
        self.all = true;
        self.len = 0;
    }

    /// Records `[start, start + size)` of entries of `1 << step_shift` bytes.
    pub(super) fn add(&mut self, start: u64, size: u64, step_shift: u32, ttl: u8, leaf: bool) {
        if self.all {
            return;
        }
        let new = Item {
            start,
            size,
            step_shift,
            ttl,
            leaf,
        };
        // Merge with the previous range when contiguous with the same step. Differing leaf or
        // TTL merge to the weaker form (non-leaf, no hint): still correct, and never more
        // commands than two ranges would need.
        if let Some(last) = self.len.checked_sub(1).and_then(|i| self.items.get_mut(i)) {
            if last.step_shift == step_shift && last.start.checked_add(last.size) == Some(start) {
                last.size += size;
                last.leaf &= leaf;
                if last.ttl != ttl || !last.leaf {
                    last.ttl = 0;
                }
                return;
            }
        }
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = new;
                self.len += 1;
            }
            None => self.add_whole_asid(),
        }
    }

    /// Records that the table mapping `[start, start + size)` was unlinked: walk-cache entries
    /// for that span must go. One non-leaf invalidation of any address inside the span does
    /// it (Arm ARM D8.16: a non-leaf TLBI by VA removes cached entries of every level used to
    /// translate that VA), so an overlapping recorded range is made non-leaf (same command
    /// count); if there is none, a one-granule non-leaf range is added.
    pub(super) fn add_walk(&mut self, start: u64, size: u64, granule_shift: u32) {
        if self.all {
            return;
        }
        let end = start.saturating_add(size);
        let mut found = false;
        for it in self.items.iter_mut().take(self.len) {
            if it.start < end && start < it.start.saturating_add(it.size) {
                it.leaf = false;
                it.ttl = 0;
                found = true;
            }
        }
        if !found {
            self.add(start, 1 << granule_shift, granule_shift, 0, false);
        }
    }

    /// The invalidations to issue for this gather on an SMMU with `features`.
    pub fn plan(&self, features: InvFeatures) -> Plan<'_> {
        let tg = self.granule.map_or(12, Granule::shift);
        let max_ops = features.max_tlbi_ops.unwrap_or(1u64 << (tg - 3));
        let mode = if self.all {
            Mode::Asid
        } else if self.len == 0 {
            Mode::Done
        } else if features.ril {
            let too_big = self
                .items
                .iter()
                .take(self.len)
                .any(|it| (it.size >> tg) >> 32 != 0);
            if too_big {
                Mode::Asid
            } else {
                Mode::Range
            }
        } else {
            let ops = self
                .items
                .iter()
                .take(self.len)
                .fold(0u64, |acc, it| acc.saturating_add(it.size >> it.step_shift));
            if ops >= max_ops {
                Mode::Asid
            } else {
                Mode::Va
            }
        };
        let mut plan = Plan {
            g: self,
            tg,
            mode,
            item: 0,
            cursor: 0,
            end: 0,
            pages: 0,
        };
        plan.load_item();
        plan
    }

    /// Commands and syncs [`Gather::plan`] issues.
    pub fn cost(&self, features: InvFeatures) -> TlbiCost {
        let tlbi = self.plan(features).count() as u64;
        TlbiCost {
            tlbi,
            sync: u64::from(tlbi != 0),
        }
    }
}

/// SMMU features the invalidation policy depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvFeatures {
    /// SMMU_IDR3.RIL: range invalidation supported.
    pub ril: bool,
    /// Per-VA command count from which a whole-ASID invalidation is used instead (no RIL).
    /// `None`: `granule / 8`, i.e. `CMDQ_MAX_TLBI_OPS` when the granule is the CPU page size.
    pub max_tlbi_ops: Option<u64>,
}

/// One TLB invalidation command, independent of its encoding (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Invalidate by VA (no range, no TTL) in the domain's ASID.
    Va {
        /// Address (granule aligned).
        iova: u64,
        /// Leaf only (keep walk caches).
        leaf: bool,
    },
    /// Range invalidation (RIL): `num << (scale + granule.shift())` bytes from `iova`.
    Range {
        /// First address.
        iova: u64,
        /// Translation granule (the TG field).
        granule: Granule,
        /// SCALE, 0..=31.
        scale: u8,
        /// Number of `2^scale` page chunks, 1..=31 (NUM field = num - 1).
        num: u8,
        /// TTL hint: 0 none, else the level of every leaf in the range.
        ttl: u8,
        /// Leaf only.
        leaf: bool,
    },
    /// Invalidate every entry of the ASID.
    Asid,
}

impl Invalidation {
    /// Bytes covered (`None` for the whole ASID).
    pub fn size(&self) -> Option<u64> {
        match self {
            Self::Va { .. } => None,
            Self::Range {
                granule,
                scale,
                num,
                ..
            } => Some(u64::from(*num) << (u32::from(*scale) + granule.shift())),
            Self::Asid => None,
        }
    }
}

/// Number of TLBI commands and CMD_SYNCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlbiCost {
    /// TLBI commands.
    pub tlbi: u64,
    /// CMD_SYNC commands.
    pub sync: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Done,
    Asid,
    Va,
    Range,
}

/// Iterator over the [`Invalidation`]s of a [`Gather`] (see [`Gather::plan`]).
pub struct Plan<'a> {
    g: &'a Gather,
    tg: u32,
    mode: Mode,
    item: usize,
    cursor: u64,
    end: u64,
    /// Pages left in the current item (range mode).
    pages: u64,
}

impl Plan<'_> {
    fn cur(&self) -> Option<Item> {
        self.g
            .items
            .get(self.item)
            .copied()
            .filter(|_| self.item < self.g.len)
    }

    fn load_item(&mut self) {
        if let Some(it) = self.cur() {
            self.cursor = it.start;
            self.end = it.start.saturating_add(it.size);
            self.pages = it.size >> self.tg;
            // arm-smmu-v3.c:2194: a non-leaf range never goes out as NUM = SCALE = 0.
            if !it.leaf && self.pages & RANGE_NUM_MAX == 1 {
                self.pages += 1;
            }
        }
    }

    fn next_item(&mut self) {
        self.item += 1;
        self.load_item();
    }
}

impl Iterator for Plan<'_> {
    type Item = Invalidation;

    fn next(&mut self) -> Option<Invalidation> {
        loop {
            match self.mode {
                Mode::Done => return None,
                Mode::Asid => {
                    self.mode = Mode::Done;
                    return Some(Invalidation::Asid);
                }
                Mode::Va => {
                    let it = self.cur()?;
                    if self.cursor >= self.end {
                        self.next_item();
                        continue;
                    }
                    let iova = self.cursor;
                    self.cursor = self.cursor.saturating_add(1u64 << it.step_shift);
                    return Some(Invalidation::Va {
                        iova,
                        leaf: it.leaf,
                    });
                }
                Mode::Range => {
                    let it = self.cur()?;
                    if self.cursor >= self.end || self.pages == 0 {
                        self.next_item();
                        continue;
                    }
                    let scale = self.pages.trailing_zeros();
                    let num = (self.pages >> scale) & RANGE_NUM_MAX;
                    self.pages -= num << scale;
                    let iova = self.cursor;
                    self.cursor = self.cursor.saturating_add(num << (scale + self.tg));
                    let granule = self.g.granule.unwrap_or(Granule::G4K);
                    return Some(Invalidation::Range {
                        iova,
                        granule,
                        scale: scale as u8,
                        num: num as u8,
                        ttl: it.ttl,
                        leaf: it.leaf,
                    });
                }
            }
        }
    }
}

/// Model of what the Linux 6.12 C driver issues, for comparison (benchmarks, tests): the
/// `iommu_iotlb_gather` of include/linux/iommu.h plus the SMMUv3 flush callbacks, without ATS.
///
/// Feed it the calls io-pgtable-arm.c makes during an unmap (`add_page` for
/// `io_pgtable_tlb_add_page`, `flush_walk` for `io_pgtable_tlb_flush_walk`), then `finish`
/// for the final `iommu_iotlb_sync()` of `iommu_unmap()` (iommu.c:2601-2602).
#[derive(Debug, Clone, Copy)]
pub struct LinuxModel {
    ril: bool,
    /// log2 of the smallest page size (`__ffs(pgsize_bitmap)`, arm-smmu-v3.c:2177).
    tg: u32,
    start: u64,
    end: u64,
    pgsize: u64,
    /// What was issued so far.
    pub cost: TlbiCost,
}

impl LinuxModel {
    /// A model for an SMMU with or without RIL and a page table with granule `granule`.
    pub const fn new(ril: bool, granule: Granule) -> Self {
        Self {
            ril,
            tg: granule.shift(),
            start: u64::MAX,
            end: 0,
            pgsize: 0,
            cost: TlbiCost { tlbi: 0, sync: 0 },
        }
    }

    /// TLBI commands of one `__arm_smmu_tlb_inv_range()` (arm-smmu-v3.c:2162-2231); the batch
    /// submit adds one CMD_SYNC (line 2230, `arm_smmu_cmdq_batch_submit` at 966-971; a full
    /// batch of 64 is issued without sync, line 950-953).
    pub fn range_cmds(&self, iova: u64, size: u64, granule: u64, leaf: bool) -> u64 {
        if size == 0 {
            return 0;
        }
        let end = iova.saturating_add(size);
        let mut iova = iova;
        let mut n = 0;
        if self.ril {
            let mut pages = size >> self.tg;
            if !leaf && pages & RANGE_NUM_MAX == 1 {
                pages += 1;
            }
            while iova < end && pages != 0 {
                let scale = pages.trailing_zeros();
                let num = (pages >> scale) & RANGE_NUM_MAX;
                pages -= num << scale;
                iova = iova.saturating_add(num << (scale + self.tg));
                n += 1;
            }
        } else {
            let step = granule.max(1);
            n = size.div_ceil(step);
        }
        n
    }

    fn inv_range(&mut self, iova: u64, size: u64, granule: u64, leaf: bool) {
        let n = self.range_cmds(iova, size, granule, leaf);
        if n != 0 {
            self.cost.tlbi += n;
            self.cost.sync += 1;
        }
    }

    /// `iommu_iotlb_sync()` → `arm_smmu_iotlb_sync()` (arm-smmu-v3.c:3171-3181).
    pub fn sync(&mut self) {
        if self.pgsize != 0 {
            let size = self.end - self.start + 1;
            self.inv_range(self.start, size, self.pgsize, true);
        }
        self.start = u64::MAX;
        self.end = 0;
        self.pgsize = 0;
    }

    /// `iommu_iotlb_gather_add_page()` (include/linux/iommu.h:925-940).
    pub fn add_page(&mut self, iova: u64, size: u64) {
        let last = iova + size - 1;
        let disjoint = self.end != 0 && (last + 1 < self.start || iova > self.end + 1);
        if (self.pgsize != 0 && self.pgsize != size) || disjoint {
            self.sync();
        }
        self.pgsize = size;
        self.start = self.start.min(iova);
        self.end = self.end.max(last);
    }

    /// `arm_smmu_tlb_inv_walk()` (arm-smmu-v3.c:2286-2290): a non-leaf range, synced at once.
    pub fn flush_walk(&mut self, iova: u64, size: u64, granule: u64) {
        self.inv_range(iova, size, granule, false);
    }

    /// The final `iommu_iotlb_sync()`; returns the total.
    pub fn finish(&mut self) -> TlbiCost {
        self.sync();
        self.cost
    }
}
