// SPDX-License-Identifier: GPL-2.0
//! Stage-1 VMSAv8-64 page tables for SMMUv3 context descriptors.
//!
//! Authority: Arm ARM (DDI 0487) D8 "The AArch64 Virtual Memory System Architecture"
//! (translation granules, start level, descriptor formats) and the SMMUv3 spec (IHI 0070) 5.4
//! (CD.TTB0/T0SZ/TG0/IPS/MAIR0). Policy choices follow Linux 6.12 `io-pgtable-arm.c` so that a
//! domain behaves like the C driver's; the code is written from the specs.
//!
//! # Shape
//!
//! * Granules 4K, 16K and 64K; input address size ([`Config::ias`]) 25..=48 bits (T0SZ 16..=39),
//!   which fixes the start level and number of levels exactly like the PE does (D8.2.7); no
//!   concatenation (stage 1 has none). Output address size ([`Config::oas`]) one of the IPS
//!   values 32, 36, 40, 42, 44, 48.
//! * Leaves: pages at level 3 and blocks where the 48-bit OA formats allow them: 4K: 1G
//!   (level 1) and 2M (level 2); 16K: 32M (level 2); 64K: 512M (level 2).
//! * Memory: every table comes from a [`DmaAllocator`] (non-root tables: one granule, aligned
//!   to the granule; root: its own size rounded up to 64 bytes, naturally aligned). Tables are
//!   found again from the addresses in descriptors through a caller-provided [`PageTableStore`]
//!   (the portable rules forbid `alloc`; the kernel backs it with an XArray, host tests with a
//!   `HashMap`).
//!
//! # Updates and invalidation
//!
//! [`PageTable::map`] and [`PageTable::unmap`] are all-or-nothing as far as translations go:
//! * `map` makes two passes over the range: the first checks it for existing leaves
//!   (`EEXIST`) while allocating every missing table, the second writes the leaves. A range
//!   inside one level-2 entry (the common DMA-API case) takes one walk: its leaves are in one
//!   table, whose run is checked whole before any of it is written. If the
//!   first fails (`EEXIST` or `ENOMEM`), nothing was mapped; tables allocated so far stay
//!   linked but empty, like the tables an `unmap` leaves empty (see "Freeing"): a later `map`
//!   reuses them, a covering `unmap` or the drop of the page table reclaims them. `map` never needs a TLB invalidation (it only fills invalid
//!   entries; the SMMU does not cache invalid entries, IHI 0070 3.17 / Arm ARM D8.16).
//! * `unmap` first splits the blocks that straddle either end of the range into tables of the
//!   next level (translation-preserving, so `ENOMEM` here leaves every translation intact),
//!   then clears every leaf inside the range. What must be invalidated is recorded in a
//!   [`Gather`]; see [`gather`] for the neutral [`Invalidation`] list it turns into.
//! * Freeing: a table is freed only when an `unmap` covers its whole span (the range
//!   contains every address the table translates), like io-pgtable-arm.c, whose
//!   `__arm_lpae_unmap` frees a table only when the unmap size equals the entry's block size
//!   (line 646) and never scans a partly-unmapped table for emptiness. A table that an
//!   `unmap` merely leaves empty stays linked (a valid table descriptor over invalid entries
//!   translates nothing, so no walk invalidation is owed) and the next `map` below it reuses
//!   it without allocating: map/unmap cycles in one region allocate nothing. The cost is the
//!   C driver's too: empty tables stay allocated until a covering `unmap` or the drop of the
//!   page table, and a block-sized `map` over such a table is made of next-level leaves (C
//!   would first free the table, which needs a synchronous walk invalidation `map` cannot
//!   issue here) until a covering `unmap` removes the table.
//!   A freed table is unlinked and a non-leaf (walk-cache) invalidation of its span is added
//!   to the gather. Its memory is **not**
//!   freed yet: the SMMU may still hold a walk-cache entry pointing at it, so it is queued on
//!   the gather ("retired") and freed by [`PageTable::release_retired`], which the caller must
//!   call only after the gather's invalidations have completed (CMD_SYNC consumed). The root
//!   table is never freed before the page table is dropped. Dropping the page table drops the
//!   store and therefore every table, retired or not.
//! * Cost: every descriptor access goes through the table's [`DmaMemory`], found from its
//!   address in the [`PageTableStore`]; the loops over the entries of one table look the table
//!   up once per run of leaves (`map_run`, `clear_run`), not once per descriptor.
//! * Block splitting replaces the block descriptor by a table descriptor in one 64-bit store,
//!   like io-pgtable-arm.c (`arm_lpae_split_blk_unmap`, line 584); no break-before-make.
//!
//! # Concurrency (no lock, like io-pgtable-arm)
//!
//! [`PageTable::map`], [`PageTable::unmap`] and [`PageTable::release_retired_shared`] take
//! `&self` and may run concurrently from any number of threads, **provided no two of them act
//! on overlapping IOVA ranges at the same time** (the contract of the Linux IOMMU API, which
//! io-pgtable-arm relies on too: the DMA-API IOVA allocator, VFIO type1 and iommufd never map
//! or unmap overlapping ranges concurrently). Disjoint ranges may share tables:
//! * a missing table is installed with a compare-and-swap of its parent descriptor
//!   ([`DmaMemory::cmpxchg_u64`]); of two maps racing to install the same table, the loser
//!   gives its fresh table back to the store ([`PageTableStore::recycle`]) and descends into
//!   the winner's. A block split and a covering unmap's unlink are compare-and-swaps too, so a
//!   table is unlinked (and retired) at most once per link;
//! * leaves are plain single-copy-atomic stores: only the caller that owns a range writes its
//!   leaves;
//! * a table descriptor is followed through [`PageTableStore::get`], which must find tables
//!   without a lock that excludes other callers, and refuses any address that is not one of its
//!   own tables (`EIO`, never a wild access);
//! * walk state is per call, except the walk cache (the `walk` field of `PageTable`), which is
//!   a set of atomic words, each one (prefix, table) pair, emptied by every unlink;
//! * tables unlinked by an unmap are queued on that call's [`Gather`] and handed back to the
//!   store only after its invalidation completed: [`PageTable::release_retired_shared`]
//!   recycles them (the store keeps owning them until it is dropped, see below), the `&mut`
//!   [`PageTable::release_retired`] frees them.
//!
//! **A caller that breaks the contract** (overlapping map/unmap at the same time) gets what the
//! C driver gives it, wrong translations **for that page table's own overlapping ranges**
//! (a leaf lost, a table leaked until the page table is dropped, a translation through a table
//! that was unlinked), but nothing worse: every table the walks can reach stays owned by the
//! store until the page table is dropped (recycled tables included), every table descriptor
//! the code writes names one of the store's tables, and a descriptor that does not is refused
//! by the store. So no table is used after it was freed and no memory outside the store is
//! read or written, whatever the interleaving.

pub mod gather;
pub mod pte;

pub use gather::{Gather, InvFeatures, Invalidation, LeafRange, Plan, TlbiCost};

use core::sync::atomic::{AtomicU64, Ordering};

use super::dma::{DmaAllocator, DmaMemory};
use pte::*;

/// Errors of the page-table code. [`PgtableError::errno`] gives the errno for the kernel glue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgtableError {
    /// Misaligned address or size, zero size, protection without read or write, or an
    /// unsupported configuration. `EINVAL`.
    InvalidArgument,
    /// The IOVA range does not fit the input address size, or the physical range does not fit
    /// the output address size. `ERANGE`, like `arm_lpae_map_pages()` (io-pgtable-arm.c:528),
    /// so that callers can tell "not addressable by this table" from a malformed request.
    OutOfRange,
    /// Part of the IOVA range is already mapped. `EEXIST` (io-pgtable-arm.c:335, 437).
    Exists,
    /// Table memory, or room in the [`PageTableStore`], could not be obtained. `ENOMEM`.
    NoMemory,
    /// A table descriptor points at memory the [`PageTableStore`] does not know: the tables were
    /// corrupted (a bug, or someone else wrote them). `EIO`.
    Corrupted,
}

impl PgtableError {
    /// The positive errno value the kernel glue returns (negated) for this error.
    pub const fn errno(&self) -> i32 {
        match self {
            Self::InvalidArgument => 22, // EINVAL
            Self::OutOfRange => 34,      // ERANGE
            Self::Exists => 17,          // EEXIST
            Self::NoMemory => 12,        // ENOMEM
            Self::Corrupted => 5,        // EIO
        }
    }
}

/// Translation granule (Arm ARM D8.2 "Translation granules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granule {
    /// 4KB granule: 9 bits per level.
    G4K,
    /// 16KB granule: 11 bits per level.
    G16K,
    /// 64KB granule: 13 bits per level.
    G64K,
}

impl Granule {
    /// log2 of the granule size.
    pub const fn shift(self) -> u32 {
        match self {
            Self::G4K => 12,
            Self::G16K => 14,
            Self::G64K => 16,
        }
    }

    /// The granule size in bytes.
    pub const fn size(self) -> u64 {
        1 << self.shift()
    }

    /// Index bits resolved per level (a table holds `granule / 8` descriptors).
    pub const fn bits_per_level(self) -> u32 {
        self.shift() - 3
    }

    /// log2 of the span of one entry at `level` (0..=3).
    pub const fn level_shift(self, level: u32) -> u32 {
        self.shift() + (3 - level) * self.bits_per_level()
    }

    /// Whether a leaf may be placed at `level` with a 48-bit OA (Arm ARM D8.3.1 tables
    /// D8-14..16): level 3 pages always; 4K blocks at levels 1-2; 16K and 64K at level 2.
    pub const fn leaf_allowed(self, level: u32) -> bool {
        matches!((self, level), (_, 3) | (_, 2) | (Self::G4K, 1))
    }

    /// The level (1..=3) whose entries span `1 << shift` bytes, if any.
    pub const fn level_of_shift(self, shift: u32) -> Option<u32> {
        let mut level = 1;
        while level <= 3 {
            if self.level_shift(level) == shift {
                return Some(level);
            }
            level += 1;
        }
        None
    }

    /// CD.TG0 / TCR_EL1.TG0 encoding (Arm ARM D19: 0b00 4KB, 0b01 64KB, 0b10 16KB).
    pub const fn tg0(self) -> u8 {
        match self {
            Self::G4K => 0b00,
            Self::G64K => 0b01,
            Self::G16K => 0b10,
        }
    }

    /// TG field of a range TLBI command (IHI 0070 4.4.1.1: 0b01 4KB, 0b10 16KB, 0b11 64KB).
    pub const fn tlbi_tg(self) -> u8 {
        match self {
            Self::G4K => 1,
            Self::G16K => 2,
            Self::G64K => 3,
        }
    }

    /// Page sizes this granule can map, as a bitmap like Linux's `pgsize_bitmap`
    /// (io-pgtable-arm.c:854-890, 48-bit OA).
    pub const fn pgsize_bitmap(self) -> u64 {
        match self {
            Self::G4K => (1 << 12) | (1 << 21) | (1 << 30),
            Self::G16K => (1 << 14) | (1 << 25),
            Self::G64K => (1 << 16) | (1 << 29),
        }
    }
}

/// Linux-compatible protection flags: the one definition is `super::prot` (shared with the
/// aux-domain policy and the kernel crate's `kernel::iommu::Prot`).
pub use super::prot::Prot;

/// MAIR value for CD.MAIR0 matching the attribute indices used by the descriptors: index 0
/// Normal non-cacheable (0x44), 1 Normal write-back RW-allocate (0xff), 2 Device-nGnRE
/// (0x04), 3 inner non-cacheable/outer write-back (0xf4). Same as io-pgtable-arm.c:1014-1021.
pub const MAIR: u64 = (MAIR_ATTR_NC << (8 * MAIR_IDX_NC))
    | (MAIR_ATTR_WBRWA << (8 * MAIR_IDX_CACHE))
    | (MAIR_ATTR_DEVICE << (8 * MAIR_IDX_DEV))
    | (MAIR_ATTR_INC_OWBRWA << (8 * MAIR_IDX_INC_OCACHE));

/// Stage-1 descriptor bits for `prot`, without type and address. Mirrors
/// `arm_lpae_prot_to_pte()` for ARM_64_LPAE_S1 (io-pgtable-arm.c:445-509): nG, AP[2] for
/// read-only, AP[1] unless privileged, AttrIndx (MMIO > CACHE > non-cacheable), SH inner for
/// cacheable else outer, UXN|PXN for NOEXEC, AF.
pub const fn prot_to_attrs(prot: Prot) -> u64 {
    let mut pte = NG.prep(1) | AF.prep(1);
    if !prot.contains(Prot::WRITE) && prot.contains(Prot::READ) {
        pte |= AP_RDONLY.prep(1);
    }
    if !prot.contains(Prot::PRIV) {
        pte |= AP_UNPRIV.prep(1);
    }
    if prot.contains(Prot::MMIO) {
        pte |= ATTR_INDX.prep(MAIR_IDX_DEV);
    } else if prot.contains(Prot::CACHE) {
        pte |= ATTR_INDX.prep(MAIR_IDX_CACHE);
    } else {
        pte |= ATTR_INDX.prep(MAIR_IDX_NC);
    }
    if prot.contains(Prot::CACHE) {
        pte |= SH.prep(SH_INNER);
    } else {
        pte |= SH.prep(SH_OUTER);
    }
    if prot.contains(Prot::NOEXEC) {
        pte |= UXN.prep(1) | PXN.prep(1);
    }
    pte
}

/// Where a [`PageTable`] keeps the memory blocks of its non-root tables, keyed by DMA address.
///
/// Descriptors hold physical addresses; this is how the code gets back from one to the
/// [`DmaMemory`] that reads and writes that table. The kernel implements it over an XArray
/// indexed by `dma_addr >> granule_shift`, host tests over a `HashMap`.
///
/// `insert`, `get`, `recycle` and `reuse` take `&self` and are called concurrently by
/// concurrent maps and unmaps (see the module documentation, "Concurrency"): `get` must not
/// wait for them (the kernel's store is an RCU look-up; a host store may lock inside itself).
/// Blocks leave the store only through `remove` (`&mut self`) or its drop, which is what makes
/// the references `get` hands out valid for as long as the store is borrowed.
pub trait PageTableStore<M: DmaMemory> {
    /// Takes ownership of `mem`. On failure the block is dropped (freed) and `Err` returned;
    /// the page table reports `ENOMEM`.
    fn insert(&self, mem: M) -> Result<(), super::dma::AllocError>;
    /// The block whose [`DmaMemory::dma_addr`] is `dma_addr`; `None` for any address that is
    /// not the start of one of the store's blocks.
    fn get(&self, dma_addr: u64) -> Option<&M>;
    /// Removes and returns the block whose DMA address is `dma_addr` (dropping it frees it).
    fn remove(&mut self, dma_addr: u64) -> Option<M>;
    /// Takes back a table that is unlinked and no longer walked by the SMMU (or was never
    /// linked), for [`PageTableStore::reuse`]. The store keeps owning it. The default keeps it
    /// until the store is dropped.
    fn recycle(&self, dma_addr: u64) {
        let _ = dma_addr;
    }
    /// A recycled table to use again (its contents are stale: the page table zeroes it), or
    /// `None` to allocate a new one. The same table must not be handed out twice per recycle.
    fn reuse(&self) -> Option<u64> {
        None
    }
    /// `dma_wmb()`: every earlier write to table memory is observable by the SMMU before any
    /// later one. Called between filling a new table and publishing its table descriptor.
    fn dma_wmb(&self);
}

/// Page-table geometry requested by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Translation granule.
    pub granule: Granule,
    /// Input (IOVA) address size in bits, 25..=48 (CD.T0SZ = 64 - ias).
    pub ias: u32,
    /// Output (physical) address size in bits: 32, 36, 40, 42, 44 or 48 (CD.IPS).
    pub oas: u32,
    /// Whether the SMMU's table walks are cache coherent (SMMU_IDR0.COHACC): selects the walk
    /// attributes reported in [`S1Context`].
    pub coherent_walk: bool,
}

/// Values the CD needs to use this page table (SMMUv3 IHI 0070 5.4, TCR_EL1 encodings).
/// The command/CD layer encodes them; nothing here knows the CD layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S1Context {
    /// CD.TTB0: physical address of the root table.
    pub ttb0: u64,
    /// CD.T0SZ = 64 - IAS.
    pub t0sz: u8,
    /// CD.TG0 (0b00 4K, 0b01 64K, 0b10 16K).
    pub tg0: u8,
    /// CD.IPS (0b000 32 bits, 0b001 36, 0b010 40, 0b011 42, 0b100 44, 0b101 48).
    pub ips: u8,
    /// CD.SH0: 0b11 inner shareable for coherent walks, else 0b10 outer shareable.
    pub sh0: u8,
    /// CD.IR0 and CD.OR0: 0b01 write-back read/write-allocate for coherent walks, else 0b00
    /// non-cacheable (io-pgtable-arm.c:958-972).
    pub rgn0: u8,
    /// CD.MAIR0: [`MAIR`].
    pub mair: u64,
    /// First level of the walk (0..=3), implied by T0SZ and TG0.
    pub start_level: u8,
}

/// A stage-1 page table. `A` provides table memory, `S` remembers it (see [`PageTableStore`]).
pub struct PageTable<A: DmaAllocator, S: PageTableStore<A::Memory>> {
    alloc: A,
    store: S,
    root: A::Memory,
    cfg: Config,
    start_level: u32,
    /// Number of descriptors in the root table.
    root_entries: u64,
    /// Walk cache of `map`: `walk[l]` packs (IOVA >> span shift of a level-`l - 1` entry,
    /// address of the level-`l` table that entry points at) into one atomic word
    /// ([`walk_pack`]), for the tables the last maps descended into. `map` starts at the
    /// deepest cached table whose span covers its range instead of at the root (a DMA-API map
    /// of one page: one table, not four). An entry is valid while that table stays linked
    /// there: tables are unlinked only by a covering `unmap` (`clear_level`), which empties
    /// the cache; nothing else replaces a table descriptor (a map descends into an existing
    /// table, a split only replaces block descriptors). Concurrent callers on disjoint ranges
    /// cannot unlink a table whose span covers another caller's range (that unmap would
    /// overlap it), so a cached entry they use cannot go stale under them; one word per entry,
    /// so it is never torn.
    walk: [AtomicU64; 4],
}

/// Packs a walk-cache entry: valid bit 63, the prefix (at most 27 bits: IOVA >> 21 of a 48-bit
/// IAS) in bits 36..63, the table address >> 12 (at most 36 bits: 48-bit OA) in bits 0..36.
/// `None` if the values do not fit (the entry is then simply not cached).
#[inline]
fn walk_pack(prefix: u64, table: u64) -> Option<u64> {
    if prefix >> 27 != 0 || table >> 48 != 0 || table & 0xfff != 0 {
        return None;
    }
    Some(1 << 63 | prefix << 36 | table >> 12)
}

/// The (prefix, table) of a valid walk-cache word.
#[inline]
fn walk_unpack(w: u64) -> Option<(u64, u64)> {
    (w >> 63 != 0).then_some(((w >> 36) & ((1 << 27) - 1), (w & ((1 << 36) - 1)) << 12))
}

/// What a map pass does (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
enum MapPass {
    /// Fail with `EEXIST` if a leaf would overlap an existing one, and allocate every missing
    /// table on the way (may fail with `ENOMEM`).
    Prepare,
    /// Write the leaves (every table exists and every leaf slot is invalid).
    Commit,
    /// Both in one walk, for a range inside one level-2 entry (see [`PageTable::map`]).
    Single,
}

/// Arguments of one map request, threaded through the recursion.
#[derive(Clone, Copy)]
struct MapReq {
    iova: u64,
    paddr: u64,
    attrs: u64,
}

/// Computes the start level and root entry count for `cfg` (Arm ARM D8.2.7: the start level
/// is the one whose span covers all remaining input bits), or `None` if unsupported.
fn geometry(cfg: &Config) -> Option<(u32, u64)> {
    if !(25..=48).contains(&cfg.ias) || !matches!(cfg.oas, 32 | 36 | 40 | 42 | 44 | 48) {
        return None;
    }
    let g = cfg.granule;
    let va_bits = cfg.ias - g.shift();
    let levels = va_bits.div_ceil(g.bits_per_level());
    if !(1..=4).contains(&levels) {
        return None;
    }
    let start_level = 4 - levels;
    let root_bits = va_bits - g.bits_per_level() * (levels - 1);
    Some((start_level, 1u64 << root_bits))
}

impl<A: DmaAllocator, S: PageTableStore<A::Memory>> PageTable<A, S> {
    /// Creates an empty page table (allocates the root table).
    pub fn new(cfg: Config, alloc: A, store: S) -> Result<Self, PgtableError> {
        let (start_level, root_entries) = geometry(&cfg).ok_or(PgtableError::InvalidArgument)?;
        let root_size = (root_entries as usize * 8).max(64);
        let root = alloc
            .alloc_zeroed(root_size, root_size)
            .map_err(|_| PgtableError::NoMemory)?;
        Ok(Self {
            alloc,
            store,
            root,
            cfg,
            start_level,
            root_entries,
            walk: [const { AtomicU64::new(0) }; 4],
        })
    }

    /// The configuration this table was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The first level of the walk (0..=3).
    pub fn start_level(&self) -> u32 {
        self.start_level
    }

    /// Physical address of the root table (CD.TTB0).
    pub fn root_addr(&self) -> u64 {
        self.root.dma_addr()
    }

    /// The store holding the non-root tables (for statistics and tests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Everything the CD needs for this table.
    pub fn s1_context(&self) -> S1Context {
        let ips = match self.cfg.oas {
            32 => 0b000,
            36 => 0b001,
            40 => 0b010,
            42 => 0b011,
            44 => 0b100,
            _ => 0b101,
        };
        S1Context {
            ttb0: self.root.dma_addr(),
            t0sz: (64 - self.cfg.ias) as u8,
            tg0: self.cfg.granule.tg0(),
            ips,
            sh0: if self.cfg.coherent_walk {
                SH_INNER as u8
            } else {
                SH_OUTER as u8
            },
            rgn0: if self.cfg.coherent_walk { 0b01 } else { 0b00 },
            mair: MAIR,
            start_level: self.start_level as u8,
        }
    }

    /// Number of descriptors in a table at `level`.
    #[inline]
    fn entries(&self, level: u32) -> u64 {
        if level == self.start_level {
            self.root_entries
        } else {
            1 << self.cfg.granule.bits_per_level()
        }
    }

    /// Byte offset of the descriptor for `va` in a table at `level`.
    #[inline]
    fn offset(&self, va: u64, level: u32) -> usize {
        let idx = (va >> self.cfg.granule.level_shift(level)) & (self.entries(level) - 1);
        (idx * 8) as usize
    }

    /// The memory of the table at `pa` (the root or one from the store).
    fn table(&self, pa: u64) -> Result<&A::Memory, PgtableError> {
        if pa == self.root.dma_addr() {
            return Ok(&self.root);
        }
        self.store.get(pa).ok_or(PgtableError::Corrupted)
    }

    fn read(&self, table: u64, level: u32, va: u64) -> Result<u64, PgtableError> {
        Ok(self.table(table)?.read_u64(self.offset(va, level)))
    }

    /// Kind of a descriptor found at `level`.
    fn kind(desc: u64, level: u32) -> Kind {
        match (desc & 0b11, level) {
            (TYPE_TABLE_OR_PAGE, 3) => Kind::Leaf,
            (TYPE_TABLE_OR_PAGE, _) => Kind::Table(desc & OA.mask()),
            // Level-3 0b01 is reserved and, like level-0 blocks (no LPA2), never written here.
            (TYPE_BLOCK, 1 | 2) => Kind::Leaf,
            _ => Kind::Invalid,
        }
    }

    /// Leaf descriptor for `pa` at `level` with attribute bits `attrs`.
    fn leaf_desc(&self, pa: u64, level: u32, attrs: u64) -> u64 {
        let ty = if level == 3 {
            TYPE_TABLE_OR_PAGE
        } else {
            TYPE_BLOCK
        };
        (attrs & leaf_attr_mask()) | (pa & oa_mask(self.cfg.granule.level_shift(level))) | ty
    }

    /// A non-root table filled with `fill(index)`, not linked yet: a recycled one from the
    /// store (zeroed here), else a new zeroed one, registered in the store.
    fn new_table(&self, fill: impl Fn(u64) -> u64) -> Result<u64, PgtableError> {
        let g = self.cfg.granule.size() as usize;
        let n = g as u64 / 8;
        let fill_in = |mem: &A::Memory, zero: bool| {
            for i in 0..n {
                let d = fill(i);
                if d != 0 || zero {
                    mem.write_u64((i * 8) as usize, d);
                }
            }
        };
        if let Some(pa) = self.store.reuse() {
            match self.store.get(pa) {
                Some(mem) if mem.size() >= g => {
                    fill_in(mem, true);
                    return Ok(pa);
                }
                // Not a table of this granule: leave it to the store.
                _ => {}
            }
        }
        let mem = self
            .alloc
            .alloc_zeroed(g, g)
            .map_err(|_| PgtableError::NoMemory)?;
        let pa = mem.dma_addr();
        fill_in(&mem, false);
        self.store.insert(mem).map_err(|_| PgtableError::NoMemory)?;
        Ok(pa)
    }

    /// Publishes the fresh table `next` in the entry of `table` (level `level`) for `va` if
    /// that entry still holds `old`: `dma_wmb` (the table's contents before its link), then a
    /// compare-and-swap. Returns the entry's value: `old` if `next` was linked, else what
    /// another caller put there first, in which case `next` goes back to the store.
    fn install(
        &self,
        table: u64,
        level: u32,
        va: u64,
        old: u64,
        next: u64,
    ) -> Result<u64, PgtableError> {
        self.store.dma_wmb();
        let prev =
            self.table(table)?
                .cmpxchg_u64(self.offset(va, level), old, next | TYPE_TABLE_OR_PAGE);
        if prev != old {
            self.store.recycle(next);
        }
        Ok(prev)
    }

    /// Checks `[iova, iova + size)` against the IAS and alignment rules.
    fn check_iova(&self, iova: u64, size: u64) -> Result<u64, PgtableError> {
        let gmask = self.cfg.granule.size() - 1;
        if size == 0 || (iova | size) & gmask != 0 {
            return Err(PgtableError::InvalidArgument);
        }
        let end = iova.checked_add(size).ok_or(PgtableError::OutOfRange)?;
        if end > 1u64 << self.cfg.ias {
            return Err(PgtableError::OutOfRange);
        }
        Ok(end)
    }

    /// Maps `[iova, iova + size)` to `[paddr, paddr + size)` with `prot`, using the largest
    /// leaves the alignment of `iova` and `paddr` allows.
    ///
    /// Errors: `EINVAL` for misalignment (to the granule), zero size or a `prot` without
    /// `READ`/`WRITE`; `ERANGE` outside IAS/OAS; `EEXIST` if any part is mapped; `ENOMEM`.
    /// On error no translation was added (see the module documentation).
    pub fn map(&self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result<(), PgtableError> {
        let end = self.check_iova(iova, size)?;
        if paddr & (self.cfg.granule.size() - 1) != 0 {
            return Err(PgtableError::InvalidArgument);
        }
        if !prot.contains(Prot::READ) && !prot.contains(Prot::WRITE) {
            return Err(PgtableError::InvalidArgument);
        }
        let pend = paddr.checked_add(size).ok_or(PgtableError::OutOfRange)?;
        if pend > 1u64 << self.cfg.oas {
            return Err(PgtableError::OutOfRange);
        }
        let req = MapReq {
            iova,
            paddr,
            attrs: prot_to_attrs(prot),
        };
        let (table, level) = self.walk_start(iova, end, false);
        // The common case, as io-pgtable-arm's `arm_lpae_init_pte`: the walk cache gave the
        // table holding the whole range as leaves of its level (a page or a run of pages in a
        // level-3 table, a block in a level-2 table). One check loop, one store loop, no
        // descent; anything else (a kept table under a block-sized range, an existing leaf:
        // `EEXIST`) takes the general path below.
        let g = self.cfg.granule;
        let lsize = 1u64 << g.level_shift(level);
        if g.leaf_allowed(level) && (iova | size | paddr) & (lsize - 1) == 0 {
            let mem = self.table(table)?;
            let off = self.offset(iova, level);
            let n = (size >> g.level_shift(level)) as usize;
            if mem.first_nonzero(off, n) == n {
                mem.write_run(off, n, self.leaf_desc(paddr, level, req.attrs), lsize);
                return Ok(());
            }
        }
        // A range inside one level-2 entry has its leaves in one table (level 3), or is that
        // entry (a level-2 block); every level above has one entry on its path. `map_run`
        // checks a table's whole run before writing it, so a single walk that checks then
        // writes the bottom run is still all-or-nothing, with half the table look-ups.
        let l2 = self.cfg.granule.level_shift(2);
        if self.start_level <= 2 && iova >> l2 != (end - 1) >> l2 {
            for pass in [MapPass::Prepare, MapPass::Commit] {
                self.map_level(table, level, iova, end, &req, pass)?;
            }
            return Ok(());
        }
        self.map_level(table, level, iova, end, &req, MapPass::Single)
    }

    /// Where a walk for `[iova, end)` may start: the deepest table of the walk cache whose
    /// span covers the range, else the root (see [`PageTable::walk`]).
    #[inline]
    ///
    /// With `partial`, a table whose whole span the range covers is not a start (an unmap
    /// must unlink it from its parent's entry, so it starts above).
    fn walk_start(&self, iova: u64, end: u64, partial: bool) -> (u64, u32) {
        let g = self.cfg.granule;
        let mut level = 3;
        while level > self.start_level {
            let cached = self
                .walk
                .get(level as usize)
                .and_then(|w| walk_unpack(w.load(Ordering::Acquire)));
            if let Some((prefix, table)) = cached {
                let s = g.level_shift(level - 1);
                let whole = iova & ((1 << s) - 1) == 0 && end - iova == 1 << s;
                if iova >> s == prefix && (end - 1) >> s == prefix && !(partial && whole) {
                    return (table, level);
                }
            }
            level -= 1;
        }
        (self.root.dma_addr(), self.start_level)
    }

    /// Records in the walk cache that `table` (level `level`) is the one below the entry
    /// of level `level - 1` translating `va`.
    #[inline]
    fn remember_walk(&self, level: u32, va: u64, table: u64) {
        let s = self.cfg.granule.level_shift(level - 1);
        if let (Some(w), Some(v)) = (self.walk.get(level as usize), walk_pack(va >> s, table)) {
            // Release, paired with `walk_start`'s `Acquire`: a caller that finds the table
            // here also sees what was written to it before it was remembered.
            w.store(v, Ordering::Release);
        }
    }

    /// Empties the walk cache (a table was unlinked).
    fn forget_walks(&self) {
        for w in &self.walk {
            w.store(0, Ordering::Relaxed);
        }
    }

    fn map_level(
        &self,
        table: u64,
        level: u32,
        start: u64,
        end: u64,
        req: &MapReq,
        pass: MapPass,
    ) -> Result<(), PgtableError> {
        let lsize = 1u64 << self.cfg.granule.level_shift(level);
        let mut va = start;
        loop {
            // The entries that need no table and no descent, with one table look-up.
            let desc;
            (va, desc) = self.map_run(table, level, va, end, req, pass)?;
            if va >= end {
                return Ok(());
            }
            let entry_start = va & !(lsize - 1);
            let chunk_end = end.min(entry_start + lsize);
            match Self::kind(desc, level) {
                // `map_run` stops at a leaf with `EEXIST`: not reached.
                Kind::Leaf => return Err(PgtableError::Exists),
                Kind::Table(next) => {
                    self.remember_walk(level + 1, va, next);
                    self.map_level(next, level + 1, va, chunk_end, req, pass)?
                }
                // `map_run` stops at an invalid entry only when it needs a table.
                Kind::Invalid => match pass {
                    MapPass::Prepare | MapPass::Single => {
                        if level >= 3 {
                            return Err(PgtableError::Corrupted);
                        }
                        let fresh = self.new_table(|_| 0)?;
                        let next = match self.install(table, level, va, desc, fresh)? {
                            // Linked.
                            prev if prev == desc => fresh,
                            // Another map (of a disjoint range under the same entry) linked
                            // its table first: use that one.
                            prev => match Self::kind(prev, level) {
                                Kind::Table(t) => t,
                                // Only a caller overlapping this range can have put a leaf
                                // here.
                                Kind::Leaf => return Err(PgtableError::Exists),
                                Kind::Invalid => return Err(PgtableError::Corrupted),
                            },
                        };
                        self.remember_walk(level + 1, va, next);
                        self.map_level(next, level + 1, va, chunk_end, req, pass)?;
                    }
                    // Prepare created every table the commit needs.
                    MapPass::Commit => return Err(PgtableError::Corrupted),
                },
            }
            va = chunk_end;
        }
    }

    /// The loop of [`Self::map_level`] over the entries of `table` from `va` that need neither
    /// a new table nor a descent: invalid entries where a leaf fits (written by the commit
    /// pass). The table is looked up once. Returns where it stopped and the descriptor there:
    /// `end` (descriptor 0), or the first entry the caller must handle (a table descriptor,
    /// or an invalid entry that needs a table). `EEXIST` at a leaf.
    fn map_run(
        &self,
        table: u64,
        level: u32,
        va: u64,
        end: u64,
        req: &MapReq,
        pass: MapPass,
    ) -> Result<(u64, u64), PgtableError> {
        let g = self.cfg.granule;
        let shift = g.level_shift(level);
        let lsize = 1u64 << shift;
        let mem = self.table(table)?;
        // Loop invariants, hoisted: the output address is `va + delta` (mod 2^64); a leaf can
        // go at this level only if `pa` shares `va`'s alignment to the entry size; its
        // descriptor is `template | pa` (the `leaf_desc` of `pa`).
        let delta = req.paddr.wrapping_sub(req.iova);
        let leaf_ok = g.leaf_allowed(level) && delta & (lsize - 1) == 0;
        let template = self.leaf_desc(0, level, req.attrs);
        let oa = oa_mask(shift);
        // Walks [va, stop) (writing the leaves if `write`) up to the first entry the caller
        // must handle.
        let scan = move |mut va: u64, stop: u64, write: bool| -> Result<(u64, u64), PgtableError> {
            let mut off = self.offset(va, level);
            if !write && leaf_ok && va & (lsize - 1) == 0 {
                // The whole entries from `va` that hold zero take leaves: skip them in one
                // tight loop (the common case: all of them), the loop below goes on from
                // the first one that is not zero.
                let n = ((stop - va) >> shift) as usize;
                let k = mem.first_nonzero(off, n);
                va += (k as u64) << shift;
                off += k * 8;
            }
            while va < stop {
                let desc = mem.read_u64(off);
                match Self::kind(desc, level) {
                    Kind::Leaf => return Err(PgtableError::Exists),
                    Kind::Table(_) => return Ok((va, desc)),
                    Kind::Invalid => {
                        // A leaf fits where the range covers the entry whole.
                        if !(leaf_ok && va & (lsize - 1) == 0 && end - va >= lsize) {
                            return Ok((va, desc));
                        }
                        if write {
                            mem.write_u64(off, template | (va.wrapping_add(delta) & oa));
                        }
                    }
                }
                // The range stays inside this table (the caller's entry): no wrap of `off`.
                va += lsize;
                off += 8;
            }
            Ok((va, 0))
        };
        // Writes the leaves of [va, stop) (whole entries, every one known invalid). The
        // output addresses stay below 2^OAS (checked by `map`), so consecutive descriptors
        // differ by `lsize` with no carry into the attribute bits.
        let fill = |va: u64, stop: u64| {
            let n = ((stop - va) >> shift) as usize;
            let first = template | (va.wrapping_add(delta) & oa);
            mem.write_run(self.offset(va, level), n, first, lsize);
        };
        match pass {
            MapPass::Prepare => scan(va, end, false),
            // At the last level every entry of the run takes a leaf, and the prepare pass read
            // each one invalid: no need to read them again. Above it, table descriptors (kept
            // empty tables included) must be found to descend into them.
            MapPass::Commit if level == 3 => {
                fill(va, end);
                Ok((end, 0))
            }
            MapPass::Commit => scan(va, end, true),
            // Check the whole run first (EEXIST before any write), then write what it found.
            MapPass::Single => {
                let stop = scan(va, end, false)?;
                // Every entry of [va, stop) was just read invalid and takes a leaf: one check
                // loop, one store loop, like io-pgtable-arm's `arm_lpae_init_pte`.
                fill(va, stop.0);
                Ok(stop)
            }
        }
    }

    /// Unmaps every leaf inside `[iova, iova + size)` and returns the number of bytes that
    /// were mapped there (0 if nothing was, like Linux). Holes inside the range are skipped
    /// (Linux stops at the first hole instead).
    ///
    /// Blocks straddling the ends of the range are split first (allocating tables, so this can
    /// fail with `ENOMEM`, in which case nothing was unmapped; the gather may already describe
    /// the split blocks, which is harmless over-invalidation). Everything that must be
    /// invalidated, and every table that must be freed after invalidation, is added to
    /// `gather`.
    ///
    /// Errors: `EINVAL` for misalignment or zero size, `ERANGE` beyond the IAS, `ENOMEM`.
    pub fn unmap(&self, iova: u64, size: u64, gather: &mut Gather) -> Result<u64, PgtableError> {
        let end = self.check_iova(iova, size)?;
        gather.set_granule(self.cfg.granule);
        let mut split = [None, None];
        let mut res = self.split_at(iova, &mut split[0]);
        if res.is_ok() && end < 1u64 << self.cfg.ias {
            res = self.split_at(end, &mut split[1]);
        }
        if let Err(e) = res {
            // Nothing is unmapped, but split blocks now have smaller-grained copies: have
            // their old entries invalidated anyway.
            for s in split.iter().flatten() {
                gather.add(s.start, s.size, s.shift, s.level as u8, true);
            }
            return Err(e);
        }
        // From the deepest cached table under which the range lies (a table the range covers
        // whole is unlinked by its parent, so the walk starts above it).
        let (table, level) = self.walk_start(iova, end, true);
        let ctx = ClearCtx { split };
        let unmapped = self.clear_level(table, level, iova, end, &ctx, gather)?;
        Ok(unmapped)
    }

    /// Splits every block that contains `addr` without starting at it, top-down, so that `addr`
    /// becomes a leaf boundary. Translation-preserving. `first` receives the largest block
    /// split (even if a later split fails).
    ///
    /// The walk starts at the deepest cached table covering `addr`: every entry above it is a
    /// table (the walk cache's invariant), so no block there. Under a cached level-3 table
    /// there is nothing to split at all (a DMA-API unmap of a page walks one table, not nine).
    fn split_at(&self, addr: u64, first: &mut Option<Split>) -> Result<(), PgtableError> {
        let g = self.cfg.granule;
        let (mut table, mut level) = self.walk_start(addr, addr + 1, false);
        while level < 3 {
            let lshift = g.level_shift(level);
            let lsize = 1u64 << lshift;
            if addr & (lsize - 1) == 0 {
                // An entry of this level, and any below it, starts at `addr` or ends before
                // it: nothing to split (a block-aligned unmap reads no descriptor here).
                break;
            }
            let desc = self.read(table, level, addr)?;
            match Self::kind(desc, level) {
                Kind::Invalid => break,
                Kind::Table(next) => table = next,
                Kind::Leaf => {
                    let entry_start = addr & !(lsize - 1);
                    if entry_start == addr {
                        break;
                    }
                    let sub = level + 1;
                    let sub_size = 1u64 << g.level_shift(sub);
                    let base = desc & oa_mask(lshift);
                    let next = self.new_table(|i| {
                        let ty = if sub == 3 {
                            TYPE_TABLE_OR_PAGE
                        } else {
                            TYPE_BLOCK
                        };
                        (desc & leaf_attr_mask()) | ((base + i * sub_size) & OA.mask()) | ty
                    })?;
                    if self.install(table, level, addr, desc, next)? != desc {
                        // The block changed under us: only a caller overlapping this range
                        // can have done it. Look at the entry again.
                        continue;
                    }
                    if first.is_none() {
                        *first = Some(Split {
                            start: entry_start,
                            size: lsize,
                            shift: lshift,
                            level,
                        });
                    }
                    table = next;
                }
            }
            level += 1;
        }
        Ok(())
    }

    /// Clears the leaves in `[start, end)` below `table` and returns the bytes unmapped.
    /// A table is unlinked and retired only when the range covers its whole span (see the
    /// module documentation, "Freeing").
    fn clear_level(
        &self,
        table: u64,
        level: u32,
        start: u64,
        end: u64,
        ctx: &ClearCtx,
        gather: &mut Gather,
    ) -> Result<u64, PgtableError> {
        let lsize = 1u64 << self.cfg.granule.level_shift(level);
        let mut unmapped = 0u64;
        let mut va = start;
        loop {
            // The leaves and holes, with one table look-up.
            let desc;
            (va, desc) = self.clear_run(table, level, va, end, ctx, gather, &mut unmapped)?;
            if va >= end {
                return Ok(unmapped);
            }
            let entry_start = va & !(lsize - 1);
            let entry_end = entry_start + lsize;
            let chunk_end = end.min(entry_end);
            let Kind::Table(next) = Self::kind(desc, level) else {
                // `clear_run` stops only at a table descriptor.
                return Err(PgtableError::Corrupted);
            };
            unmapped += self.clear_level(next, level + 1, va, chunk_end, ctx, gather)?;
            if va == entry_start && chunk_end == entry_end {
                // Unlinked once: if the entry changed meanwhile (only a caller overlapping this
                // range can change it), the table is not ours to retire.
                let off = self.offset(va, level);
                if self.table(table)?.cmpxchg_u64(off, desc, 0) == desc {
                    // The walk cache may name the unlinked table or tables below it.
                    self.forget_walks();
                    gather.add_walk(entry_start, lsize, self.cfg.granule.shift());
                    self.retire(next, gather)?;
                }
            }
            va = chunk_end;
        }
    }

    /// The loop of [`Self::clear_level`] over the invalid entries and leaves of `table` from
    /// `va` (a leaf inside the range is covered whole after `split_at`), looking the table up
    /// once. Returns where it stopped and the descriptor there: `end` (descriptor 0) or the
    /// first table descriptor.
    #[allow(clippy::too_many_arguments)]
    fn clear_run(
        &self,
        table: u64,
        level: u32,
        mut va: u64,
        end: u64,
        ctx: &ClearCtx,
        gather: &mut Gather,
        unmapped: &mut u64,
    ) -> Result<(u64, u64), PgtableError> {
        let lshift = self.cfg.granule.level_shift(level);
        let lsize = 1u64 << lshift;
        let mem = self.table(table)?;
        // Leaves cleared back to back with the same TTL go to the gather as one range.
        let mut run: Option<(u64, u64, u8)> = None;
        let flush = |run: Option<(u64, u64, u8)>, gather: &mut Gather| {
            if let Some((start, size, ttl)) = run {
                gather.add(start, size, lshift, ttl, true);
            }
        };
        let mut off = self.offset(va, level);
        while va < end {
            let entry_start = va & !(lsize - 1);
            let chunk_end = end.min(entry_start + lsize);
            let desc = mem.read_u64(off);
            match Self::kind(desc, level) {
                Kind::Invalid => {}
                Kind::Leaf if va == entry_start && chunk_end == entry_start + lsize => {
                    mem.write_u64(off, 0);
                    let ttl = if ctx.in_split(entry_start) {
                        0
                    } else {
                        level as u8
                    };
                    run = match run {
                        Some((start, size, t)) if t == ttl && start + size == entry_start => {
                            Some((start, size + lsize, t))
                        }
                        other => {
                            flush(other, gather);
                            Some((entry_start, lsize, ttl))
                        }
                    };
                    *unmapped += lsize;
                }
                Kind::Leaf => {
                    flush(run, gather);
                    return Err(PgtableError::Corrupted);
                }
                Kind::Table(_) => {
                    flush(run, gather);
                    return Ok((va, desc));
                }
            }
            // The range stays inside this table (the caller's entry): no wrap of `off`.
            va = chunk_end;
            off += 8;
        }
        flush(run, gather);
        Ok((va, 0))
    }

    /// Queues an unlinked table on the gather's retired list. The link lives in descriptor 0
    /// of the retired table itself, with bit 0 clear so that a stale walk sees an invalid
    /// descriptor; bit 1 marks "there is a next table".
    fn retire(&self, pa: u64, gather: &mut Gather) -> Result<(), PgtableError> {
        let t = self.table(pa)?;
        let link = match gather.retired {
            Some(next) => (next & OA.mask()) | 0b10,
            None => 0,
        };
        t.write_u64(0, link);
        gather.retired = Some(pa);
        gather.retired_count += 1;
        Ok(())
    }

    /// Frees the tables `gather` retired and empties the gather. Call only once every
    /// invalidation from `gather.plan(..)` has completed (CMD_SYNC consumed): until then the
    /// SMMU may still walk those tables. Returns the number of tables freed.
    pub fn release_retired(&mut self, gather: &mut Gather) -> usize {
        let store = &mut self.store;
        Self::walk_retired(gather, |pa| store.remove(pa).map(|m| m.read_u64(0)))
    }

    /// [`PageTable::release_retired`] for concurrent callers: the retired tables go back to
    /// the store ([`PageTableStore::recycle`]) for later maps, instead of being freed (a
    /// caller breaking the range contract may still hold one; see the module documentation).
    pub fn release_retired_shared(&self, gather: &mut Gather) -> usize {
        Self::walk_retired(gather, |pa| {
            let link = self.store.get(pa)?.read_u64(0);
            self.store.recycle(pa);
            Some(link)
        })
    }

    /// Follows the retired list of `gather` (at most its count of tables: a caller breaking
    /// the range contract may have written into a retired table, link included), giving each
    /// table to `take`, which returns its descriptor 0 (the link) or `None` for an address the
    /// store does not know. Empties the gather; returns the number of tables taken.
    fn walk_retired(gather: &mut Gather, mut take: impl FnMut(u64) -> Option<u64>) -> usize {
        let mut next = gather.retired.take();
        let mut freed = 0;
        while let Some(pa) = next {
            if freed >= gather.retired_count {
                break;
            }
            let Some(link) = take(pa) else {
                break;
            };
            next = if link & 0b11 == 0b10 {
                Some(link & OA.mask())
            } else {
                None
            };
            freed += 1;
        }
        gather.reset();
        freed
    }

    /// The physical address `iova` translates to, or `None` if it is not mapped.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.lookup(iova).map(|l| l.paddr)
    }

    /// The leaf translating `iova`: output address, level, and descriptor.
    pub fn lookup(&self, iova: u64) -> Option<Leaf> {
        if self.cfg.ias < 64 && iova >> self.cfg.ias != 0 {
            return None;
        }
        let g = self.cfg.granule;
        // From the deepest cached table covering `iova` (the DMA API looks up every page it
        // unmaps: `iommu_dma_unmap_page`).
        let (mut table, mut level) = self.walk_start(iova, iova + 1, false);
        loop {
            let desc = self.read(table, level, iova).ok()?;
            match Self::kind(desc, level) {
                Kind::Invalid => return None,
                Kind::Leaf => {
                    let lshift = g.level_shift(level);
                    let off = iova & ((1u64 << lshift) - 1);
                    return Some(Leaf {
                        paddr: (desc & oa_mask(lshift)) | off,
                        level,
                        desc,
                    });
                }
                Kind::Table(next) => {
                    if level >= 3 {
                        return None;
                    }
                    table = next;
                    level += 1;
                }
            }
        }
    }
}

/// A leaf found by [`PageTable::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Output address for the looked-up IOVA.
    pub paddr: u64,
    /// Level of the leaf (3 = page).
    pub level: u32,
    /// The raw descriptor.
    pub desc: u64,
}

/// A block split by `unmap` (the largest one at one end of the range).
#[derive(Clone, Copy)]
struct Split {
    start: u64,
    size: u64,
    shift: u32,
    level: u32,
}

/// What `clear_level` needs to know about the current unmap.
struct ClearCtx {
    split: [Option<Split>; 2],
}

impl ClearCtx {
    /// Whether `va` lies in a block split by this unmap (its old entry may be cached at the
    /// block's level, so no TTL hint may be given for it).
    fn in_split(&self, va: u64) -> bool {
        self.split
            .iter()
            .flatten()
            .any(|s| va >= s.start && va - s.start < s.size)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Invalid,
    Leaf,
    Table(u64),
}
