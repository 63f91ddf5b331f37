// SPDX-License-Identifier: GPL-2.0
//! ARM SMMUv3 IOMMU driver in Rust, on the project's portable SMMUv3 core.
//!
//! The hardware logic (ID registers, queues, stream and CD tables, the hitless STE/CD writer,
//! stage-1 page tables and their invalidation) is `drivers/smmuv3/src/smmuv3/`, which the kernel
//! crate compiles, as [`kernel::smmuv3`], from the very files the host tests run against QEMU
//! over qtest. This file is the glue:
//!
//! - the portable core's [`Mmio`] over the `ioremap`ped register pages and its
//!   [`DmaAllocator`]/[`DmaMemory`] over zeroed page blocks ([`kernel::dma_pages`]; the SMMU
//!   must be cache coherent, see docs/rust-smmuv3.md);
//! - a platform driver (`arm,smmu-v3`) that probes and enables the SMMU, wires the event-queue
//!   and global-error interrupts and registers an IOMMU instance;
//! - the IOMMU API ([`kernel::iommu_driver`]): `probe_device`/`release_device` with the
//!   StreamIDs of the fwspec, identity and blocked domains, and stage-1 paging domains for the
//!   DMA API, VFIO and iommufd.
//!
//! # Locking
//!
//! - `Shared::hw` (spinlock): the `Smmu` (command queue, stream table, CD-table writes) and the
//!   ASID allocator. Taken from any context but hard IRQ (the interrupt handlers are threaded).
//! - `Master::core` (spinlock): a device's StreamIDs and CD table; taken before `hw`.
//! - Paging domains have no lock: map and unmap are lockless (the page table's contract,
//!   `drivers/smmuv3/src/smmuv3/pgtable`), each unmap gathers into the IOMMU core's
//!   `iommu_iotlb_gather` of that call, and `iotlb_sync` takes only `hw` (the command queue).
//!   A domain's page-table store takes its own spinlocks only to add a table or recycle one.
//! - `Shared::masters` (spinlock): StreamID -> device, for fault reports; innermost.
//!
//! Allocations made under these locks are `GFP_ATOMIC` (the DMA API maps from atomic context).
use kernel::{
    alloc::{
        flags::{GFP_ATOMIC, GFP_KERNEL},
        Flags,
    },
    c_str, dev_err, dev_info,
    device::{Core, Device},
    dma_pages::{self, ZeroedPages},
    fmt,
    io::mem::IoMem,
    iommu::{Capability, Prot},
    iommu_driver::{self, DomainOps, Geometry, IommuOps, IotlbGather},
    irq, new_spinlock, of, platform,
    prelude::*,
    smmuv3,
    str::CString,
    sync::{Arc, SpinLock},
    types::ARef,
    xarray::{AllocKind, SharedMap, XArrayMap},
};

use smmuv3::{
    asid::{AsidAllocator, AsidBits},
    cdtab::LEAF_BYTES,
    device::{Features, Smmu, SmmuConfig},
    dma::{AllocError, DmaAllocator, DmaMemory, Mmio},
    domain::{self, S1Domain},
    event::Event,
    pgtable::{Gather, Granule, LeafRange, PageTableStore},
    ste::{s1dss, MasterOptions},
    store::TableStore,
};

/// The software-MSI window reserved in every domain (the C driver's MSI_IOVA_BASE/LENGTH).
const MSI_IOVA_BASE: u64 = 0x0800_0000;
const MSI_IOVA_LENGTH: usize = 0x10_0000;
/// Register space the driver uses: page 0 and page 1 (64 KiB each).
const MMIO_LEN: usize = 0x2_0000;
/// Input address size of every paging domain (IAS, as the C driver without VAX).
const IAS: u32 = 48;

/// Zeroed DMA memory: a page block at its physical address.
struct Block(ZeroedPages);

impl DmaMemory for Block {
    fn dma_addr(&self) -> u64 {
        self.0.phys()
    }
    fn size(&self) -> usize {
        self.0.len()
    }
    fn read_u64(&self, offset: usize) -> u64 {
        self.0.read_u64(offset)
    }
    fn write_u64(&self, offset: usize, value: u64) {
        self.0.write_u64(offset, value)
    }
    fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64 {
        self.0.cmpxchg_u64(offset, old, new)
    }
    fn first_nonzero(&self, offset: usize, count: usize) -> usize {
        self.0.first_nonzero(offset, count)
    }
    fn write_run(&self, offset: usize, count: usize, first: u64, step: u64) {
        self.0.write_run(offset, count, first, step)
    }
}

/// Page-block allocator with the given flags. [`Alloc::ATOMIC`] is the core's: it allocates
/// level-2 stream tables and page tables under the spinlocks above (CD tables and leaves
/// come from [`CdPrealloc`], which allocates with [`Alloc::SLEEP`]; `ATOMIC` is only their
/// fallback).
#[derive(Clone, Copy)]
struct Alloc(Flags);

impl Alloc {
    const ATOMIC: Alloc = Alloc(GFP_ATOMIC);
    const SLEEP: Alloc = Alloc(GFP_KERNEL);
}

impl DmaAllocator for Alloc {
    type Memory = Block;
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<Block, AllocError> {
        ZeroedPages::alloc(size, align, self.0)
            .map(Block)
            .map_err(|_| AllocError)
    }
}

/// The CD-table memory one CD write may need (the table on a master's first attach, the
/// 64 KiB leaf holding a PASID's CD in a 2-level table), allocated with `GFP_KERNEL` before
/// the master's spinlock is taken and installed under it ([`CdPrealloc::install`]): a
/// fragmented system then refuses an attach only where the C driver would (it allocates them
/// with `GFP_KERNEL` too), not because an order-4 `GFP_ATOMIC` allocation failed. If another
/// attach installed a table or leaf in between, ours is a spare, freed when this is dropped
/// (callers declare it before their lock guards, so that happens after unlocking).
#[derive(Default)]
struct CdPrealloc {
    table: Option<CoreCdTable>,
    leaf: Option<Block>,
}

impl CdPrealloc {
    /// Allocates what writing the CD of `ssid` of `master` needs as things stand now.
    /// Nothing for an SSID beyond the master's width (refused later, under the lock).
    fn new(master: &Master, ssid: u32) -> Result<Self> {
        let (bits, need_table, need_leaf) = {
            let st = master.state.lock();
            let c = &st.core;
            (c.ssid_bits(), c.cd_table().is_none(), c.cd_leaf_needed(ssid))
        };
        if u64::from(ssid) >= 1u64 << bits {
            return Ok(Self::default());
        }
        let table = if need_table {
            // The master's bits already respect the SMMU's CD2L (at most 10 without it).
            Some(CoreCdTable::new(&Alloc::SLEEP, bits, true).map_err(core_err)?)
        } else {
            None
        };
        let leaf = if need_leaf {
            Some(Alloc::SLEEP.alloc_zeroed(LEAF_BYTES, LEAF_BYTES).map_err(|_| ENOMEM)?)
        } else {
            None
        };
        Ok(Self { table, leaf })
    }

    /// Installs in `m` (under its master's lock) what it still lacks; the rest stays here.
    fn install(&mut self, m: &mut CoreMaster, ssid: u32) {
        if let Some(t) = self.table.take() {
            if let Err(t) = m.install_cd_table(t) {
                self.table = Some(t);
            }
        }
        if let Some(l) = self.leaf.take() {
            if let Err(l) = m.add_cd_leaf(ssid, l) {
                self.leaf = Some(l);
            }
        }
    }
}

/// The SMMU's register pages, mapped with at least [`MMIO_LEN`] bytes.
struct Regs(IoMem<MMIO_LEN>);

impl Mmio for Regs {
    // The offsets are the core's register constants (its `register!` accessors and
    // `write_ack` are always inlined, like these), so the build-time checked accessors: an
    // offset outside the `MMIO_LEN` mapped at probe, or misaligned, fails the build.
    #[inline(always)]
    fn read32(&self, offset: usize) -> u32 {
        self.0.read32(offset)
    }
    #[inline(always)]
    fn write32(&self, offset: usize, value: u32) {
        self.0.write32(value, offset)
    }
    #[inline(always)]
    fn read64(&self, offset: usize) -> u64 {
        self.0.read64(offset)
    }
    #[inline(always)]
    fn write64(&self, offset: usize, value: u64) {
        self.0.write64(value, offset)
    }
}

/// A paging domain's tables, found by physical address without a lock: map and unmap take
/// none (docs/rust-smmuv3.md, "Lockless map and unmap").
///
/// `tables` ([`SharedMap`], index = address >> 12) grows through `&self` (the XArray's own
/// lock, taken only when a table is added) and is read with a lock-free `xa_load` (or a hit in
/// its last few look-ups). No table leaves it while the domain lives: a table an unmap
/// unlinked goes, once its invalidation completed, to `free` for the next map that needs one.
/// So every address a walk can reach stays mapped, even for a caller that maps and unmaps
/// overlapping ranges concurrently against the IOMMU API's contract; the memory is freed when
/// the domain is. `free` is taken only when a table is allocated or given back.
struct PtStore {
    tables: SharedMap<Block>,
    free: Pin<KBox<SpinLock<FreeList>>>,
}

/// Addresses of recycled tables: the first `len` entries of `slots` (the slots stay
/// allocated for the next recycle; `KVec` has no `pop`).
struct FreeList {
    slots: KVec<u64>,
    len: usize,
}

fn pt_index(addr: u64) -> Option<u32> {
    u32::try_from(addr >> 12).ok()
}

impl PtStore {
    fn new() -> Result<Self> {
        Ok(Self {
            tables: SharedMap::new(GFP_KERNEL)?,
            free: KBox::pin_init(
                new_spinlock!(
                    FreeList {
                        slots: KVec::new(),
                        len: 0
                    },
                    "smmuv3_pt_free"
                ),
                GFP_KERNEL,
            )?,
        })
    }
}

impl PageTableStore<Block> for PtStore {
    fn insert(&self, mem: Block) -> Result<(), AllocError> {
        let index = pt_index(mem.dma_addr()).ok_or(AllocError)?;
        self.tables
            .insert(index, mem, GFP_ATOMIC)
            .map_err(|_| AllocError)
    }
    #[inline]
    fn get(&self, dma_addr: u64) -> Option<&Block> {
        self.tables
            .get(pt_index(dma_addr)?)
            .filter(|b| b.dma_addr() == dma_addr)
    }
    fn remove(&mut self, dma_addr: u64) -> Option<Block> {
        self.tables.remove(pt_index(dma_addr)?)
    }
    fn recycle(&self, dma_addr: u64) {
        // Without room in the list the table just stays unused until the domain is freed.
        let mut f = self.free.lock();
        let n = f.len;
        match f.slots.get_mut(n) {
            Some(slot) => *slot = dma_addr,
            None => {
                if f.slots.push(dma_addr, GFP_ATOMIC).is_err() {
                    return;
                }
            }
        }
        f.len = n + 1;
    }
    fn reuse(&self) -> Option<u64> {
        let mut f = self.free.lock();
        let n = f.len.checked_sub(1)?;
        f.len = n;
        f.slots.get(n).copied()
    }
    fn dma_wmb(&self) {
        dma_pages::dma_wmb()
    }
}

/// Level-2 tables (stream table: one per 256 StreamIDs in use; CD tables: one per 1024
/// SSIDs) by level-1 index, on the heap: a handful per SMMU or device, so a linear scan. Keeps
/// `Smmu` and every `Master` small (an inline `FixedStore` made 9 KiB stack frames).
#[derive(Default)]
struct L2Store(KVec<(u32, Block)>);

impl TableStore<Block> for L2Store {
    fn get(&self, key: u32) -> Option<&Block> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, b)| b)
    }
    fn insert(&mut self, key: u32, value: Block) -> Result<(), Block> {
        // Reserve first so that a failure can hand the block back; `push` then cannot fail.
        if self.0.reserve(1, GFP_ATOMIC).is_err() {
            return Err(value);
        }
        let _ = self.0.push((key, value), GFP_ATOMIC);
        Ok(())
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

type CoreSmmu = Smmu<Regs, Alloc, L2Store>;
type CoreMaster = smmuv3::device::Master<Block, L2Store>;
type CoreDomain = S1Domain<Alloc, PtStore>;
type CoreCdTable = smmuv3::cdtab::CdTable<Block, L2Store>;

fn core_err(e: smmuv3::error::Error) -> Error {
    Error::from_errno(-e.errno())
}

fn domain_err(e: domain::DomainError) -> Error {
    Error::from_errno(-e.errno())
}

/// The hardware state under `Shared::hw`.
struct Hw {
    smmu: CoreSmmu,
    asids: KBox<AsidAllocator>,
}

/// One SMMU, shared by its devices, domains and interrupt handlers.
#[pin_data]
struct Shared {
    #[pin]
    hw: SpinLock<Hw>,
    #[pin]
    masters: SpinLock<XArrayMap<ARef<Device>>>,
    features: Features,
    dev: ARef<Device>,
}

impl Shared {
    /// Logs an event record, naming the device behind its StreamID.
    fn report(&self, e: &Event) {
        let sid = e.stream_id();
        let who: Option<ARef<Device>> = sid.and_then(|s| self.masters.lock().get(s).cloned());
        let name = who.as_ref().map(|d| d.name());
        let name = name.unwrap_or(c_str!("unknown device"));
        match e {
            Event::Translation(f)
            | Event::AddressSize(f)
            | Event::AccessFlag(f)
            | Event::Permission(f)
            | Event::WalkExternalAbort { fault: f, .. } => {
                let kind = match e {
                    Event::Translation(_) => "translation fault",
                    Event::AddressSize(_) => "address size fault",
                    Event::AccessFlag(_) => "access flag fault",
                    Event::Permission(_) => "permission fault",
                    _ => "walk external abort",
                };
                dev_err!(
                    &*self.dev,
                    "{} by {}: StreamID {:#x} SSID {} IOVA {:#x} ({}{})\n",
                    kind,
                    name,
                    f.access.sid,
                    Ssid(f.access.ssid),
                    f.access.addr,
                    if f.access.read { "read" } else { "write" },
                    if f.stage2 { ", stage 2" } else { "" },
                );
            }
            // Configuration errors of one (StreamID, SSID): a PASID with no domain gives
            // C_BAD_CD, one beyond the CD table C_BAD_SUBSTREAMID.
            Event::BadCd { sid, ssid }
            | Event::BadSubstreamId { sid, ssid }
            | Event::BadSte { sid, ssid }
            | Event::CfgConflict { sid, ssid } => {
                let what = match e {
                    Event::BadCd { .. } => "no valid CD (no domain at this SSID)",
                    Event::BadSubstreamId { .. } => "SSID beyond the device's CD table",
                    Event::BadSte { .. } => "invalid STE",
                    _ => "configuration cache conflict",
                };
                dev_err!(
                    &*self.dev,
                    "{} by {}: StreamID {:#x} SSID {}\n",
                    what,
                    name,
                    sid,
                    Ssid(*ssid)
                );
            }
            _ => dev_err!(
                &*self.dev,
                "event for {} (StreamID {:?}): {:?}\n",
                name,
                sid,
                e
            ),
        }
    }
}

/// A SubstreamID for fault reports: the number, or "none" for a transaction without PASID.
struct Ssid(Option<u32>);

impl core::fmt::Display for Ssid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s:#x}"),
            None => f.write_str("none"),
        }
    }
}

/// Event-queue interrupt: drains and reports the events.
struct EventIrq(Arc<Shared>);

impl irq::ThreadedHandler for EventIrq {
    fn handle_threaded(&self) -> irq::IrqReturn {
        // Reported in full: the first few events of a burst (a faulting DMA of edu gives one
        // event per 4-byte write); the rest are counted. The queue is drained completely
        // (bounded) so that the next event raises the interrupt again.
        const REPORT_MAX: usize = 8;
        const ROUNDS: u32 = 64;
        let mut shown = KVec::new();
        let (mut total, mut overflow) = (0u64, false);
        for _ in 0..ROUNDS {
            let drain = {
                let mut hw = self.0.hw.lock();
                hw.smmu.poll_events(64, |e| {
                    if shown.len() < REPORT_MAX {
                        // Reported after the lock is dropped; without memory, only counted.
                        let _ = shown.push(e, GFP_ATOMIC);
                    }
                })
            };
            total += u64::from(drain.events);
            overflow |= drain.overflow;
            if drain.events == 0 {
                break;
            }
        }
        for e in &shown {
            self.0.report(e);
        }
        let rest = total.saturating_sub(shown.len() as u64);
        if rest != 0 {
            dev_err!(
                &*self.0.dev,
                "{} more events in this burst not shown\n",
                rest
            );
        }
        if overflow {
            dev_err!(&*self.0.dev, "event queue overflow: events were lost\n");
        }
        if total == 0 {
            irq::IrqReturn::None
        } else {
            irq::IrqReturn::Handled
        }
    }
}

/// Global-error interrupt: acknowledges and reports the errors.
struct GerrorIrq(Arc<Shared>);

impl irq::ThreadedHandler for GerrorIrq {
    fn handle_threaded(&self) -> irq::IrqReturn {
        let r = self.0.hw.lock().smmu.handle_gerror();
        match r {
            Ok(0) => irq::IrqReturn::None,
            Ok(active) => {
                dev_err!(&*self.0.dev, "global error {:#x} (acknowledged)\n", active);
                irq::IrqReturn::Handled
            }
            Err(e) => {
                dev_err!(&*self.0.dev, "fatal global error, SMMU disabled: {:?}\n", e);
                irq::IrqReturn::Handled
            }
        }
    }
}

/// What a device's transactions without PASID go to (its RID domain).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rid {
    Blocked,
    Identity,
    Paging,
}

/// A device's translation state, under `Master::state`.
struct MasterState {
    core: CoreMaster,
    rid: Rid,
    /// PASID -> the domain attached there (its address: compared, never dereferenced).
    pasids: XArrayMap<usize>,
    /// Entries in `pasids`: while non-zero the STEs point at the CD table even when the RID
    /// domain is identity or blocked (S1DSS = BYPASS / TERMINATE), as the C driver does.
    npasids: u32,
}

/// Per-device state (`dev_iommu_priv`).
struct Master {
    smmu: Arc<Shared>,
    state: Pin<KBox<SpinLock<MasterState>>>,
    /// PCI PASID, enabled at probe when both the device and the SMMU have SubstreamIDs;
    /// disabled when the master is dropped (after `release_device` blocked its streams).
    _pasid: Option<iommu_driver::PciPasid>,
}

impl Master {
    /// Makes the device's transactions without PASID bypass translation (`identity`) or
    /// abort, then clears CD 0 so the CD table names no domain that might be freed next. With
    /// PASIDs attached the STEs keep the CD table (S1DSS = BYPASS / TERMINATE).
    fn set_plain(&self, bypass: bool) -> Result {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut hw = self.smmu.hw.lock();
        if st.npasids > 0 {
            let dss = if bypass {
                s1dss::BYPASS
            } else {
                s1dss::TERMINATE
            };
            hw.smmu
                .attach_cd_table(&mut st.core, dss)
                .map_err(core_err)?;
        } else {
            set_plain_stes(&mut hw.smmu, &st.core, bypass)?;
        }
        st.rid = if bypass { Rid::Identity } else { Rid::Blocked };
        hw.smmu.clear_cd(&mut st.core, 0).map_err(core_err)?;
        Ok(())
    }
}

/// Points every StreamID of `m` at the bypass or the abort STE.
fn set_plain_stes(smmu: &mut CoreSmmu, m: &CoreMaster, bypass: bool) -> Result {
    for &sid in m.sids() {
        let r = if bypass {
            smmu.set_bypass(sid)
        } else {
            smmu.set_abort(sid)
        };
        r.map_err(core_err)?;
    }
    Ok(())
}

/// A stage-1 paging domain.
///
/// No lock: maps and unmaps of disjoint ranges run concurrently (see the module's "Locking");
/// attach, detach and PASID changes read only the domain's CD fields, which never change, and
/// the core frees the domain (`drop`, `&mut self`) only after every device left it.
struct Paging {
    smmu: Arc<Shared>,
    /// `None` only while being destroyed.
    dom: Option<CoreDomain>,
}

fn size_of_pages(pgsize: usize, pgcount: usize) -> Result<u64> {
    let size = pgsize.checked_mul(pgcount).ok_or(EINVAL)?;
    u64::try_from(size).map_err(|_| EINVAL)
}

#[vtable]
impl DomainOps for Paging {
    type Master = Master;

    fn attach_dev(&self, master: &Master, dev: &Device) -> Result {
        if !Arc::ptr_eq(&master.smmu, &self.smmu) {
            dev_err!(dev, "attach: the domain belongs to another SMMU\n");
            return Err(EINVAL);
        }
        let cd = self.dom.as_ref().ok_or(EBUSY)?.cd();
        let mut pre = CdPrealloc::new(master, 0)?;
        let mut guard = master.state.lock();
        let st = &mut *guard;
        pre.install(&mut st.core, 0);
        let mut hw = self.smmu.hw.lock();
        hw.smmu.ensure_cd_table(&mut st.core).map_err(core_err)?;
        hw.smmu.write_cd(&mut st.core, 0, &cd).map_err(core_err)?;
        hw.smmu
            .attach_cd_table(&mut st.core, s1dss::SSID0)
            .map_err(core_err)?;
        st.rid = Rid::Paging;
        Ok(())
    }

    fn set_dev_pasid(&self, master: &Master, dev: &Device, pasid: u32) -> Result {
        if !Arc::ptr_eq(&master.smmu, &self.smmu) {
            dev_err!(dev, "PASID {}: the domain belongs to another SMMU\n", pasid);
            return Err(EINVAL);
        }
        let cd = self.dom.as_ref().ok_or(EBUSY)?.cd();
        let key = self as *const Self as usize;
        let mut pre = CdPrealloc::new(master, pasid)?;
        let mut guard = master.state.lock();
        let st = &mut *guard;
        let bits = st.core.ssid_bits();
        if pasid == 0 || u64::from(pasid) >= 1u64 << bits {
            dev_err!(
                dev,
                "PASID {:#x} refused: the device has {}-bit SubstreamIDs here (PASID 0 is the RID's)\n",
                pasid,
                bits
            );
            return Err(EINVAL);
        }
        if let Some(&other) = st.pasids.get(pasid) {
            dev_err!(
                dev,
                "PASID {:#x} refused: {} domain is attached there already\n",
                pasid,
                if other == key { "this" } else { "another" }
            );
            return Err(EBUSY);
        }
        st.pasids.insert(pasid, key, GFP_ATOMIC)?;
        pre.install(&mut st.core, pasid);
        let mut hw = self.smmu.hw.lock();
        let r = attach_pasid_cd(&mut hw.smmu, st, pasid, &cd);
        if let Err(e) = r {
            dev_err!(dev, "PASID {:#x}: attach failed: {:?}\n", pasid, e);
            // Leave nothing behind that names the domain.
            let _ = hw.smmu.clear_cd(&mut st.core, pasid);
            st.pasids.remove(pasid);
            return Err(core_err(e));
        }
        st.npasids += 1;
        Ok(())
    }

    fn map_pages(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: usize,
        pgcount: usize,
        prot: Prot,
    ) -> Result<usize> {
        let size = size_of_pages(pgsize, pgcount)?;
        let dom = self.dom.as_ref().ok_or(EBUSY)?;
        match dom.map(iova, paddr, size, prot) {
            Ok(()) => Ok(size as usize),
            Err(e) => {
                let err = domain_err(e);
                if err != ENOMEM {
                    dev_err!(
                        &*self.smmu.dev,
                        "map of {:#x} bytes at IOVA {:#x} -> {:#x} refused: {:?}\n",
                        size,
                        iova,
                        paddr,
                        e
                    );
                }
                Err(err)
            }
        }
    }

    fn unmap_pages(
        &self,
        iova: u64,
        pgsize: usize,
        pgcount: usize,
        gather: &mut IotlbGather<'_>,
    ) -> usize {
        let Ok(size) = size_of_pages(pgsize, pgcount) else {
            return 0;
        };
        let Some(dom) = self.dom.as_ref() else {
            return 0;
        };
        self.unmap_gathered(dom, iova, size, gather)
    }

    fn iotlb_sync(&self, gather: &mut IotlbGather<'_>) {
        if let Some(dom) = self.dom.as_ref() {
            self.sync_gather(dom, gather);
        }
    }

    fn flush_iotlb_all(&self) {
        if let Some(d) = self.dom.as_ref() {
            // The whole ASID. Unmaps in flight keep their own gathers and sync them.
            if let Err(e) = d.inv_asid(&mut self.smmu.hw.lock().smmu) {
                dev_err!(
                    &*self.smmu.dev,
                    "TLB invalidation of ASID {} failed: {:?}\n",
                    d.asid(),
                    e
                );
            }
        }
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        self.dom
            .as_ref()
            .and_then(|d| d.page_table().iova_to_phys(iova))
            .unwrap_or(0)
    }
}

impl Paging {
    /// The body of `unmap_pages`, in a frame of its own (the per-call [`Gather`] is ~0.6 KiB).
    ///
    /// The page table clears the range into a gather of this call. What an unmap usually
    /// leaves, one run of leaves of one size, goes into the core's `gather` (merged with the
    /// earlier calls of the same unmap, or after syncing them when it cannot be, the rule of
    /// `iommu_iotlb_gather_add_page`), for `iotlb_sync`: one range TLBI and one CMD_SYNC per
    /// unmap. Anything else (a table unlinked, whose walk must be invalidated before it is
    /// recycled; a split block; a flush queue) is invalidated here and now, as io-pgtable-arm
    /// flushes a walk before freeing a table.
    #[inline(never)]
    fn unmap_gathered(
        &self,
        dom: &CoreDomain,
        iova: u64,
        size: u64,
        gather: &mut IotlbGather<'_>,
    ) -> usize {
        let mut g = Gather::new();
        let unmapped = match dom.unmap_into(iova, size, &mut g) {
            Ok(n) => n as usize,
            Err(e) => {
                dev_err!(
                    &*self.smmu.dev,
                    "unmap of {:#x} bytes at IOVA {:#x} failed: {:?}\n",
                    size,
                    iova,
                    e
                );
                0
            }
        };
        if g.is_empty() && g.retired_tables() == 0 {
            return unmapped;
        }
        match g.leaf_range() {
            Some(r) if !gather.queued() => {
                let pgsize = 1usize << r.step_shift;
                if !gather.try_add(r.start, r.size, pgsize) {
                    self.sync_gather(dom, gather);
                    // An empty gather takes any range.
                    let _ = gather.try_add(r.start, r.size, pgsize);
                }
            }
            _ => {
                if let Err(e) = dom.flush_gather(&mut self.smmu.hw.lock().smmu, &mut g) {
                    // The unlinked tables stay out of use (the store keeps them until the
                    // domain is freed).
                    dev_err!(
                        &*self.smmu.dev,
                        "TLB invalidation of an unmap at IOVA {:#x} failed: {:?}\n",
                        iova,
                        e
                    );
                }
            }
        }
        unmapped
    }

    /// Invalidates what `gather` holds (one range of leaves: its TLBIs and one CMD_SYNC, under
    /// the command-queue lock only) and empties it.
    #[inline(never)]
    fn sync_gather(&self, dom: &CoreDomain, gather: &mut IotlbGather<'_>) {
        let Some((start, end, pgsize)) = gather.range() else {
            return;
        };
        gather.reset();
        let granule = dom.page_table().config().granule;
        let r = LeafRange {
            start,
            size: end.wrapping_sub(start),
            step_shift: pgsize.trailing_zeros(),
        };
        let mut g = Gather::from_leaf_range(granule, r);
        if let Err(e) = dom.flush_gather(&mut self.smmu.hw.lock().smmu, &mut g) {
            dev_err!(
                &*self.smmu.dev,
                "TLB invalidation after unmap of [{:#x}, {:#x}) failed: {:?}\n",
                start,
                end,
                e
            );
        }
    }
}


impl Drop for Paging {
    fn drop(&mut self) {
        // The core frees a domain only once no device is attached to it.
        let Some(d) = self.dom.take() else {
            return;
        };
        let mut guard = self.smmu.hw.lock();
        let hw = &mut *guard;
        if let Err((d, e)) = d.destroy(&mut hw.smmu, &mut hw.asids) {
            // The TLB may still hold its translations: its tables must not be reused. Keeping
            // them (and the ASID) allocated is the safe failure.
            dev_err!(
                &*self.smmu.dev,
                "domain teardown failed, ASID {} leaked: {:?}\n",
                d.asid(),
                e
            );
            core::mem::forget(d);
        }
    }
}

/// Writes `cd` at `pasid` (the CD table and its leaf allocated on first use) and, for the
/// device's first PASID while its RID domain is identity or blocked, makes the STEs point at
/// the CD table with S1DSS = BYPASS / TERMINATE (with a paging RID domain they already do).
fn attach_pasid_cd(
    smmu: &mut CoreSmmu,
    st: &mut MasterState,
    pasid: u32,
    cd: &smmuv3::cd::Cd,
) -> core::result::Result<(), smmuv3::error::Error> {
    smmu.ensure_cd_table(&mut st.core)?;
    smmu.write_cd(&mut st.core, pasid, cd)?;
    let dss = match st.rid {
        Rid::Paging => return Ok(()),
        Rid::Identity => s1dss::BYPASS,
        Rid::Blocked => s1dss::TERMINATE,
    };
    if st.npasids == 0 {
        smmu.attach_cd_table(&mut st.core, dss)?;
    }
    Ok(())
}

/// The IOMMU driver.
struct Smmuv3;

kernel::iommu_statics!(SMMUV3_OPS, Smmuv3);

#[vtable]
impl IommuOps for Smmuv3 {
    type Instance = Arc<Shared>;
    type Master = Master;
    type Paging = Paging;

    fn probe_device(smmu: &Arc<Shared>, dev: &Device, ids: &[u32]) -> Result<KBox<Master>> {
        // PCI PASID first, as the C driver (before ATS; outside the spinlocks: config space).
        // A device whose PASID cannot be enabled still works without PASIDs (message printed).
        let pasid = if smmu.features.ssid_bits > 0 {
            iommu_driver::PciPasid::enable(dev).unwrap_or(None)
        } else {
            None
        };
        // The core bounds this by the SMMU's SSIDSIZE and, without 2-level CD tables, by the
        // largest linear table: S1CDMax.
        let dev_bits = pasid.as_ref().map_or(0, |p| p.pasids().ilog2());
        let core = {
            let mut hw = smmu.hw.lock();
            let m = hw
                .smmu
                .new_master(ids, dev_bits, MasterOptions::default())
                .map_err(|e| {
                    dev_err!(
                        dev,
                        "StreamIDs {:?} not usable with this SMMU: {:?}\n",
                        ids,
                        e
                    );
                    core_err(e)
                })?;
            // Until the core attaches a domain, the streams abort (allocates level-2 tables).
            for &sid in ids {
                hw.smmu.set_abort(sid).map_err(core_err)?;
            }
            m
        };
        let state = MasterState {
            core,
            rid: Rid::Blocked,
            pasids: XArrayMap::new(AllocKind::Alloc, GFP_KERNEL)?,
            npasids: 0,
        };
        let master = Master {
            smmu: smmu.clone(),
            state: KBox::pin_init(new_spinlock!(state, "smmuv3_master"), GFP_KERNEL)?,
            _pasid: pasid,
        };
        let mut list = smmu.masters.lock();
        for &sid in ids {
            // A StreamID shared by two devices (PCI aliases) names the first one in reports.
            if list.get(sid).is_none() {
                list.insert(sid, dev.into(), GFP_ATOMIC)?;
            }
        }
        drop(list);
        Ok(KBox::new(master, GFP_KERNEL)?)
    }

    fn release_device(dev: &Device, master: KBox<Master>) {
        {
            // Plain abort STEs whatever is attached: the CD table goes with the master (a
            // CFGI_STE also drops the stream's cached CDs).
            let st = master.state.lock();
            if st.npasids != 0 {
                dev_err!(
                    dev,
                    "released with {} PASIDs still attached: blocking them\n",
                    st.npasids
                );
            }
            let mut hw = master.smmu.hw.lock();
            if let Err(e) = set_plain_stes(&mut hw.smmu, &st.core, false) {
                dev_err!(
                    dev,
                    "could not block the device's streams on release: {:?}\n",
                    e
                );
            }
        }
        let st = master.state.lock();
        let mut list = master.smmu.masters.lock();
        for &sid in st.core.sids() {
            if list
                .get(sid)
                .is_some_and(|d| core::ptr::eq::<Device>(&**d, dev))
            {
                drop(list.remove(sid));
            }
        }
        // Dropping `master` disables PCI PASID, after its streams were made to abort.
    }

    fn remove_dev_pasid(master: &Master, dev: &Device, pasid: u32, domain: &Paging) {
        let key = domain as *const Paging as usize;
        let mut guard = master.state.lock();
        let st = &mut *guard;
        if st.pasids.get(pasid) != Some(&key) {
            dev_err!(
                dev,
                "PASID {:#x}: remove of a domain that is not attached there\n",
                pasid
            );
            return;
        }
        let mut hw = master.smmu.hw.lock();
        if let Err(e) = hw.smmu.clear_cd(&mut st.core, pasid) {
            // The CD may still name the domain, which the core frees next: cut the streams.
            dev_err!(
                dev,
                "PASID {:#x}: clearing its CD failed ({:?}): blocking the device\n",
                pasid,
                e
            );
            let _ = set_plain_stes(&mut hw.smmu, &st.core, false);
        }
        st.pasids.remove(pasid);
        st.npasids -= 1;
        if st.npasids == 0 && st.rid != Rid::Paging {
            // The last PASID went: back to the plain bypass / abort STE (the C driver too).
            if let Err(e) = set_plain_stes(&mut hw.smmu, &st.core, st.rid == Rid::Identity) {
                dev_err!(dev, "could not restore the device's STEs: {:?}\n", e);
            }
        }
    }

    fn domain_alloc_paging(master: &Master, _dev: &Device) -> Result<(Paging, Geometry)> {
        let smmu = &master.smmu;
        let f = smmu.features;
        let granule = [Granule::G4K, Granule::G64K, Granule::G16K]
            .into_iter()
            .find(|g| f.pgsize_bitmap & g.size() != 0)
            .ok_or(ENODEV)?;
        let cfg = domain::page_table_config(&f, granule).map_err(domain_err)?;
        let paging = Paging {
            smmu: smmu.clone(),
            dom: Some(new_core_domain(smmu, cfg)?),
        };
        let geo = Geometry {
            pgsize_bitmap: granule.pgsize_bitmap() & f.pgsize_bitmap,
            aperture_end: (1u64 << IAS) - 1,
        };
        Ok((paging, geo))
    }

    fn attach_identity(master: &Master, _dev: &Device) -> Result {
        master.set_plain(true)
    }

    fn attach_blocked(master: &Master, _dev: &Device) -> Result {
        master.set_plain(false)
    }

    fn capable(master: &Master, cap: Capability) -> bool {
        match cap {
            // A coherent TCU taken to imply coherent TBUs (IDR0.COHACC), as the C driver.
            Capability::CacheCoherency => master.smmu.features.coherent,
            Capability::NoExec => true,
            // SMMUv3 cannot make PCIe No_snoop transactions snoop, and 6.12 has no firmware
            // flag saying the root complex does (docs/rust-smmuv3.md): no
            // `EnforceCacheCoherency`, no `enforce_cache_coherency` op. No `DeferredFlush`:
            // every unmap is invalidated by its own `iotlb_sync` (strict).
            _ => false,
        }
    }

    fn sw_msi_region(_master: &Master) -> Option<(u64, usize)> {
        Some((MSI_IOVA_BASE, MSI_IOVA_LENGTH))
    }
}

/// A domain's page table (root allocated) and ASID. In a frame of its own: the core's
/// `S1Domain` (its gather and page-table walk cache) is built on the stack before it moves
/// into the domain's lock, and with the registration code around it went over the 2 KiB
/// stack-frame rule (`tools/lab/framecheck.sh`).
#[inline(never)]
fn new_core_domain(smmu: &Shared, cfg: smmuv3::pgtable::Config) -> Result<CoreDomain> {
    let store = PtStore::new()?;
    let mut hw = smmu.hw.lock();
    S1Domain::new(
        cfg,
        Alloc::ATOMIC,
        store,
        &mut hw.asids,
        domain::inv_features(&smmu.features),
    )
    .map_err(domain_err)
}

/// The bound platform device: its IOMMU registration and interrupts.
struct SmmuDriver {
    _iommu: Pin<KBox<iommu_driver::Registration<Smmuv3>>>,
    _evtq: Pin<KBox<irq::Registration<EventIrq>>>,
    _gerror: Pin<KBox<irq::Registration<GerrorIrq>>>,
}

kernel::of_device_table!(
    SMMU_OF_IDS,
    (),
    [(of::DeviceId::new(c_str!("arm,smmu-v3")), ())]
);

impl platform::Driver for SmmuDriver {
    type IdInfo = ();
    const OF_ID_TABLE: of::IdTable<()> = SMMU_OF_IDS.table();
    // Client devices hold StreamIDs in this instance: no sysfs unbind (as the C driver).
    const SUPPRESS_BIND_ATTRS: bool = true;

    fn probe(pdev: &platform::Device<Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        // The core's `Smmu` is built and moved to the heap in frames of its own (see
        // `start_smmu`): here only the registrations.
        let dev: &Device<Core> = pdev.as_ref();
        let shared = start_smmu(pdev)?;
        let evtq_irq = pdev.irq_by_name(c_str!("eventq")).inspect_err(|_| {
            dev_err!(dev, "no \"eventq\" interrupt\n");
        })?;
        let gerror_irq = pdev.irq_by_name(c_str!("gerror")).inspect_err(|_| {
            dev_err!(dev, "no \"gerror\" interrupt\n");
        })?;
        let evtq = KBox::pin_init(
            irq::Registration::new_threaded(
                dev,
                evtq_irq,
                irq::Flags::ONESHOT,
                c_str!("arm-smmu-v3-rust-evtq"),
                EventIrq(shared.clone()),
            ),
            GFP_KERNEL,
        )?;
        let gerror = KBox::pin_init(
            irq::Registration::new_threaded(
                dev,
                gerror_irq,
                irq::Flags::ONESHOT,
                c_str!("arm-smmu-v3-rust-gerror"),
                GerrorIrq(shared.clone()),
            ),
            GFP_KERNEL,
        )?;

        let name = CString::try_from_fmt(fmt!("smmu3.{}", dev.name()))?;
        // IDR1.SSIDSIZE: what the IOMMU core lets a device use at most (`max_pasids`).
        let ssid_bits = shared.features.ssid_bits;
        let max_pasids = if ssid_bits == 0 { 0 } else { 1u32 << ssid_bits };
        let iommu = KBox::pin_init(
            iommu_driver::Registration::new(dev, &SMMUV3_OPS, &name, max_pasids, shared),
            GFP_KERNEL,
        )?;
        Ok(KBox::pin(
            Self {
                _iommu: iommu,
                _evtq: evtq,
                _gerror: gerror,
            },
            GFP_KERNEL,
        )?)
    }
}

/// Maps the registers, probes the SMMU (ID registers, queues, stream table) and enables it.
#[inline(never)]
fn enable_smmu(pdev: &platform::Device<Core>) -> Result<CoreSmmu> {
    let dev: &Device<Core> = pdev.as_ref();
    let regs = pdev.ioremap_resource_sized::<MMIO_LEN>(0).inspect_err(|e| {
        dev_err!(
            dev,
            "register space (needs {:#x} bytes) not mappable: {:?}\n",
            MMIO_LEN,
            e
        );
    })?;
    let cfg = SmmuConfig {
        irqs: true,
        ..SmmuConfig::default()
    };
    let mut smmu = CoreSmmu::probe(Regs(regs), Alloc::ATOMIC, cfg).map_err(|e| {
        dev_err!(dev, "probe failed: {:?}\n", e);
        core_err(e)
    })?;
    let f = *smmu.features();
    if !f.coherent {
        // Table memory is plain cached pages (see docs/rust-smmuv3.md).
        dev_err!(
            dev,
            "non-coherent SMMUs (IDR0.COHACC = 0) are not supported yet\n"
        );
        return Err(ENODEV);
    }
    smmu.enable().map_err(|e| {
        dev_err!(dev, "enable failed: {:?}\n", e);
        core_err(e)
    })?;
    dev_info!(
    dev,
    "SMMUv3.{} (Rust): {}-bit StreamIDs ({} stream table), {}-bit SSIDs, {}-bit ASIDs, OAS {}, RIL {}, page sizes {:#x}\n",
    f.arch_minor,
    f.sid_bits,
    if f.two_level_strtab { "2-level" } else { "linear" },
    f.ssid_bits,
    f.asid_bits,
    f.oas,
    f.ril,
    f.pgsize_bitmap,
    );
    Ok(smmu)
}

/// Wraps the enabled SMMU in [`Shared`] (on the heap).
///
/// `probe` is split in three frames that never nest with each other's locals: [`enable_smmu`]
/// (the core's probe and enable), this (moves the `Smmu` value into the heap) and the
/// registrations in `probe`. Together they went over the 2 KiB stack-frame rule
/// (`tools/lab/framecheck.sh`).
#[inline(never)]
fn start_smmu(pdev: &platform::Device<Core>) -> Result<Arc<Shared>> {
    let dev: &Device<Core> = pdev.as_ref();
    let smmu = enable_smmu(pdev)?;
    let f = *smmu.features();

    // 8 KiB bitmap: written straight into the heap block.
    let asids = KBox::<AsidAllocator>::new_uninit(GFP_KERNEL)?
        .write(AsidAllocator::new(AsidBits::from_asid16(f.asid_bits == 16)));
    let masters = XArrayMap::new(AllocKind::Alloc, GFP_KERNEL)?;
    Arc::pin_init(
        pin_init!(Shared {
            hw <- new_spinlock!(Hw { smmu, asids }, "smmuv3_hw"),
            masters <- new_spinlock!(masters, "smmuv3_masters"),
            features: f,
            dev: dev.into(),
        }),
        GFP_KERNEL,
    )
}

kernel::module_platform_driver! {
    type: SmmuDriver,
    name: "arm_smmu_v3_rust",
    author: "pasid-mdev project",
    description: "ARM SMMUv3 IOMMU driver in Rust",
    license: "GPL",
}
