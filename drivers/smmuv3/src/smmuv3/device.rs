// SPDX-License-Identifier: GPL-2.0
//! The SMMU instance: probe, reset/enable, STE and CD installation, invalidation, events.
//!
//! [`Smmu`] owns the register page ([`Mmio`]), the allocator, the command and event queues and
//! the stream table. Every method takes `&mut self`: the caller provides the lock (the kernel
//! glue wraps the `Smmu` in a mutex), which also makes the driver the single producer of the
//! command queue.

use super::cd::Cd;
use super::cdtab::{self, CdTable};
use super::cmd::{self, CmdEntry, Command};
use super::dma::{DmaAllocator, DmaMemory, Mmio};
use super::error::{Error, Result};
use super::event::Event;
use super::queue::{CmdBatch, CmdQueue, CmdqStats, EventQueue, Poll};
use super::regs::{
    cr1_cache, sh, Aidr, CmdqCons, Cr0, Cr0Ack, Cr1, Cr2, EvtqCons, EvtqProd, Gbpa, Gerror,
    Gerrorn, Idr0, Idr1, Idr3, Idr5, Iidr, IrqCtrl, IrqCtrlAck,
};
use super::ste::{s1dss, MasterOptions, Ste, SteFeatures};
use super::store::{FixedStore, TableStore};
use super::strtab::{StreamTable, STRTAB_SPLIT};
use super::writer::{self, EntryIo, UpdateStats};

/// What the SMMU can do, decoded from the ID registers once at probe time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Stage-1 translation (IDR0.S1P).
    pub s1: bool,
    /// Stage-2 translation (IDR0.S2P).
    pub s2: bool,
    /// 2-level stream tables (IDR0.ST_LEVEL), and enough StreamID bits to want them.
    pub two_level_strtab: bool,
    /// 2-level CD tables (IDR0.CD2L).
    pub two_level_cd: bool,
    /// StreamID bits (IDR1.SIDSIZE).
    pub sid_bits: u32,
    /// SubstreamID bits (IDR1.SSIDSIZE).
    pub ssid_bits: u32,
    /// ASID bits: 16 with IDR0.ASID16, else 8.
    pub asid_bits: u32,
    /// VMID bits: 16 with IDR0.VMID16, else 8.
    pub vmid_bits: u32,
    /// Range invalidation (IDR3.RIL).
    pub ril: bool,
    /// Page and block sizes of the supported granules (IDR5.GRAN*).
    pub pgsize_bitmap: u64,
    /// Output address size in bits (IDR5.OAS).
    pub oas: u32,
    /// 52-bit input addresses (IDR5.VAX).
    pub vax52: bool,
    /// log2 of the largest command queue (IDR1.CMDQS).
    pub cmdq_shift: u32,
    /// log2 of the largest event queue (IDR1.EVENTQS).
    pub evtq_shift: u32,
    /// Coherent table and queue access (IDR0.COHACC).
    pub coherent: bool,
    /// MSIs (IDR0.MSI).
    pub msi: bool,
    /// WFE wake-up events (IDR0.SEV).
    pub sev: bool,
    /// EL2 StreamWorld (IDR0.HYP).
    pub hyp: bool,
    /// PCIe ATS (IDR0.ATS).
    pub ats: bool,
    /// PCIe PRI (IDR0.PRI).
    pub pri: bool,
    /// Stalling faults possible (IDR0.STALL_MODEL 0 or 2).
    pub stalls: bool,
    /// Stalls are forced (IDR0.STALL_MODEL 2).
    pub stall_force: bool,
    /// STE memory-type overrides (IDR1.ATTR_TYPES_OVR).
    pub attr_types_ovr: bool,
    /// Hardware access-flag update (IDR0.HTTU >= 1).
    pub hw_access: bool,
    /// Hardware dirty-state update (IDR0.HTTU == 2).
    pub hw_dirty: bool,
    /// Broadcast TLB maintenance (IDR0.BTM).
    pub btm: bool,
    /// SMMUv3.x minor revision (AIDR).
    pub arch_minor: u8,
    /// SMMU_IIDR, for errata decisions by the caller.
    pub iidr: u32,
}

impl Features {
    /// Decodes the ID registers, refusing SMMUs this driver cannot drive: no stage 1, no
    /// AArch64 tables, embedded (preset/relative) implementations, big-endian-only tables, or
    /// a command queue too small for a batch plus a CMD_SYNC.
    pub fn decode(
        idr0: Idr0,
        idr1: Idr1,
        idr3: Idr3,
        idr5: Idr5,
        aidr: Aidr,
        iidr: Iidr,
    ) -> Result<Self> {
        if !idr0.s1p() || idr0.ttf() & 0b10 == 0 {
            return Err(Error::Unsupported);
        }
        // Mixed (0) or little-endian (2) tables; we only write little-endian.
        if !matches!(idr0.ttendian(), 0 | 2) {
            return Err(Error::Unsupported);
        }
        if idr1.tables_preset() || idr1.queues_preset() || idr1.rel() {
            return Err(Error::Unsupported);
        }
        let cmdq_shift = idr1.cmdqs() as u32;
        if cmdq_shift < 2 {
            return Err(Error::Unsupported);
        }
        let sid_bits = idr1.sidsize() as u32;
        let mut pgsize_bitmap = 0u64;
        if idr5.gran4k() {
            pgsize_bitmap |= (1 << 12) | (1 << 21) | (1 << 30);
        }
        if idr5.gran16k() {
            pgsize_bitmap |= (1 << 14) | (1 << 25);
        }
        if idr5.gran64k() {
            pgsize_bitmap |= (1 << 16) | (1 << 29);
        }
        let oas = match idr5.oas() {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            6 => 52,
            // 5, and reserved values (truncated like Linux does).
            _ => 48,
        };
        Ok(Self {
            s1: idr0.s1p(),
            s2: idr0.s2p(),
            two_level_strtab: idr0.st_level() == 1 && sid_bits > STRTAB_SPLIT,
            two_level_cd: idr0.cd2l(),
            sid_bits,
            ssid_bits: idr1.ssidsize() as u32,
            asid_bits: if idr0.asid16() { 16 } else { 8 },
            vmid_bits: if idr0.vmid16() { 16 } else { 8 },
            ril: idr3.ril(),
            pgsize_bitmap,
            oas,
            vax52: idr5.vax() == 1,
            cmdq_shift,
            evtq_shift: idr1.eventqs() as u32,
            coherent: idr0.cohacc(),
            msi: idr0.msi(),
            sev: idr0.sev(),
            hyp: idr0.hyp(),
            ats: idr0.ats(),
            pri: idr0.pri(),
            stalls: matches!(idr0.stall_model(), 0 | 2),
            stall_force: idr0.stall_model() == 2,
            attr_types_ovr: idr1.attr_types_ovr(),
            hw_access: idr0.httu() >= 1,
            hw_dirty: idr0.httu() == 2,
            btm: idr0.btm(),
            arch_minor: aidr.arch_minor_rev(),
            iidr: iidr.0,
        })
    }

    /// The STE-building properties implied by these features.
    pub fn ste_features(&self) -> SteFeatures {
        SteFeatures {
            attr_types_ovr: self.attr_types_ovr,
            stalls: self.stalls,
            e2h: false,
        }
    }
}

/// Driver choices, with defaults suited to the mediated-device framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmmuConfig {
    /// Bound of every register poll.
    pub poll: Poll,
    /// Largest command queue to allocate (log2 entries; capped by IDR1.CMDQS).
    pub cmdq_shift: u32,
    /// Largest event queue to allocate (log2 entries; capped by IDR1.EVENTQS).
    pub evtq_shift: u32,
    /// Use a linear stream table even if 2-level is supported.
    pub force_linear_strtab: bool,
    /// Use linear CD tables only (caps SubstreamIDs at 1024).
    pub force_linear_cd: bool,
    /// Make GBPA abort, so nothing bypasses while the SMMU is disabled.
    pub gbpa_abort: bool,
    /// Enable the event queue and global error interrupts (else the caller polls).
    pub irqs: bool,
}

impl Default for SmmuConfig {
    fn default() -> Self {
        Self {
            poll: Poll::default(),
            cmdq_shift: 8,
            evtq_shift: 7,
            force_linear_strtab: false,
            force_linear_cd: false,
            gbpa_abort: true,
            irqs: false,
        }
    }
}

/// Counters for the command/sync cost figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Command queue counters (commands, syncs, PROD writes, polls, errors).
    pub cmdq: CmdqStats,
    /// STE updates performed.
    pub ste_updates: u64,
    /// CD updates performed.
    pub cd_updates: u64,
    /// Updates that had to go through V=0.
    pub breaking_updates: u64,
    /// Event records read.
    pub events: u64,
    /// Event queue overflows seen.
    pub event_overflows: u64,
}

/// Most StreamIDs one master may have.
pub const MAX_MASTER_SIDS: usize = 4;

/// A device behind the SMMU: its StreamIDs and, once it uses PASIDs, its CD table.
pub struct Master<D: DmaMemory, S: TableStore<D>> {
    sids: [u32; MAX_MASTER_SIDS],
    nsids: usize,
    ssid_bits: u32,
    opts: MasterOptions,
    cd_table: Option<CdTable<D, S>>,
}

impl<D: DmaMemory, S: TableStore<D>> Master<D, S> {
    /// The master's StreamIDs.
    pub fn sids(&self) -> &[u32] {
        self.sids.get(..self.nsids).unwrap_or(&[])
    }

    /// SubstreamID bits of its CD table (S1CDMax).
    pub fn ssid_bits(&self) -> u32 {
        self.ssid_bits
    }

    /// Its CD table, once allocated.
    pub fn cd_table(&self) -> Option<&CdTable<D, S>> {
        self.cd_table.as_ref()
    }

    /// Its STE options.
    pub fn options(&self) -> MasterOptions {
        self.opts
    }

    /// Whether writing the CD of `ssid` needs a CD-table leaf that does not exist yet: its
    /// table is (or, not allocated yet, will be) 2-level and that leaf is missing.
    pub fn cd_leaf_needed(&self, ssid: u32) -> bool {
        match &self.cd_table {
            Some(t) => t.leaf_missing(ssid),
            None => self.ssid_bits > cdtab::L2_SHIFT,
        }
    }

    /// Installs `table` as the master's CD table, allocated by the caller beforehand (outside
    /// its locks) with [`CdTable::new`]`(alloc, self.ssid_bits(), true)` (the bits already
    /// respect the SMMU's CD2L: at most 10 without it, a linear table). Gives it back when the
    /// master has a table already (another attach installed one first: the caller frees the
    /// spare) or its width is not the master's.
    pub fn install_cd_table(
        &mut self,
        table: CdTable<D, S>,
    ) -> core::result::Result<(), CdTable<D, S>> {
        if self.cd_table.is_some() || table.ssid_bits() != self.ssid_bits {
            return Err(table);
        }
        self.cd_table = Some(table);
        Ok(())
    }

    /// Adds a leaf for the CD of `ssid` to the master's CD table ([`CdTable::add_leaf`]);
    /// gives it back if there is no table or the leaf exists already.
    pub fn add_cd_leaf(&mut self, ssid: u32, leaf: D) -> core::result::Result<(), D> {
        match self.cd_table.as_mut() {
            Some(t) => t.add_leaf(ssid, leaf),
            None => Err(leaf),
        }
    }
}

/// STE update target for the hitless writer: sync = CFGI_STE + CMD_SYNC.
struct SteIo<'a, M: Mmio, D: DmaMemory> {
    mmio: &'a M,
    mem: &'a D,
    offset: usize,
    cmdq: &'a mut CmdQueue<D>,
    sid: u32,
    leaf: bool,
}

impl<M: Mmio, D: DmaMemory> EntryIo for SteIo<'_, M, D> {
    fn read(&self, i: usize) -> u64 {
        self.mem.read_u64(self.offset + i * 8)
    }
    fn write(&mut self, i: usize, value: u64) {
        self.mem.write_u64(self.offset + i * 8, value)
    }
    fn sync(&mut self) -> Result<()> {
        let c = Command::CfgiSte {
            sid: self.sid,
            leaf: self.leaf,
        }
        .encode()?;
        // A freshly linked level-1 descriptor needs one non-leaf invalidation.
        self.leaf = true;
        self.cmdq.submit(self.mmio, &[c], true)
    }
}

/// CD update target for the hitless writer: sync = CFGI_CD per StreamID + CMD_SYNC.
struct CdIo<'a, M: Mmio, D: DmaMemory> {
    mmio: &'a M,
    mem: &'a D,
    offset: usize,
    cmdq: &'a mut CmdQueue<D>,
    sids: &'a [u32],
    ssid: u32,
}

impl<M: Mmio, D: DmaMemory> EntryIo for CdIo<'_, M, D> {
    fn read(&self, i: usize) -> u64 {
        self.mem.read_u64(self.offset + i * 8)
    }
    fn write(&mut self, i: usize, value: u64) {
        self.mem.write_u64(self.offset + i * 8, value)
    }
    fn sync(&mut self) -> Result<()> {
        cfgi_cd_sync(self.mmio, self.cmdq, self.sids, self.ssid, true)
    }
}

fn cfgi_cd_sync<M: Mmio, D: DmaMemory>(
    mmio: &M,
    cmdq: &mut CmdQueue<D>,
    sids: &[u32],
    ssid: u32,
    leaf: bool,
) -> Result<()> {
    let mut batch = CmdBatch::default();
    for &sid in sids {
        if !batch.push(Command::CfgiCd { sid, ssid, leaf }.encode()?) {
            cmdq.submit(mmio, batch.as_slice(), false)?;
            batch.clear();
            batch.push(Command::CfgiCd { sid, ssid, leaf }.encode()?);
        }
    }
    cmdq.submit(mmio, batch.as_slice(), true)
}

/// Polls `ack` until it reads `value`.
///
/// Always inlined, so `reg` and `ack` reach the `Mmio` calls as the callers' constants (the
/// kernel driver's `Mmio` checks register offsets when building).
#[inline(always)]
fn write_ack<M: Mmio>(mmio: &M, poll: Poll, reg: usize, ack: usize, value: u32) -> Result<()> {
    mmio.write32(reg, value);
    for _ in 0..poll.limit {
        if mmio.read32(ack) == value {
            return Ok(());
        }
    }
    Err(Error::Timeout)
}

/// Above this many per-page TLBIs (without range invalidation) the whole ASID is invalidated
/// instead (Linux's CMDQ_MAX_TLBI_OPS for 4KB pages).
pub const MAX_TLBI_OPS: u64 = 512;

/// An SMMUv3 instance.
///
/// Dropping it disables the SMMU (CR0 = 0) before the queues and tables are freed, so the
/// hardware never walks memory that has been given back; masters' CD tables must likewise be
/// detached before they are dropped.
pub struct Smmu<M: Mmio, A: DmaAllocator, S = FixedStore<<A as DmaAllocator>::Memory, 64>>
where
    S: TableStore<A::Memory>,
{
    mmio: M,
    alloc: A,
    cfg: SmmuConfig,
    features: Features,
    cmdq: CmdQueue<A::Memory>,
    evtq: EventQueue<A::Memory>,
    strtab: StreamTable<A::Memory, S>,
    enabled: u32,
    stats: Stats,
}

impl<M: Mmio, A: DmaAllocator, S: TableStore<A::Memory> + Default> Smmu<M, A, S> {
    /// Reads the ID registers and allocates the queues and the stream table. The hardware is
    /// not written; call [`Smmu::enable`] next.
    pub fn probe(mmio: M, alloc: A, cfg: SmmuConfig) -> Result<Self> {
        let features = Features::decode(
            Idr0::read(&mmio),
            Idr1::read(&mmio),
            Idr3::read(&mmio),
            Idr5::read(&mmio),
            Aidr::read(&mmio),
            Iidr::read(&mmio),
        )?;
        let cmdq = CmdQueue::new(&alloc, cfg.cmdq_shift.min(features.cmdq_shift), cfg.poll)?;
        let evtq = EventQueue::new(&alloc, cfg.evtq_shift.min(features.evtq_shift))?;
        let two_level = features.two_level_strtab && !cfg.force_linear_strtab;
        let strtab = StreamTable::new(&alloc, features.sid_bits, two_level)?;
        Ok(Self {
            mmio,
            alloc,
            cfg,
            features,
            cmdq,
            evtq,
            strtab,
            enabled: 0,
            stats: Stats::default(),
        })
    }

    /// Creates a master with StreamIDs `sids` that may use `master_ssid_bits` PASID bits.
    /// No hardware state changes until it is attached.
    pub fn new_master(
        &self,
        sids: &[u32],
        master_ssid_bits: u32,
        opts: MasterOptions,
    ) -> Result<Master<A::Memory, S>> {
        if sids.is_empty() || sids.len() > MAX_MASTER_SIDS {
            return Err(Error::InvalidArgument);
        }
        let mut m = Master {
            sids: [0; MAX_MASTER_SIDS],
            nsids: sids.len(),
            ssid_bits: cdtab::s1cdmax(
                master_ssid_bits,
                self.features.ssid_bits,
                self.features.two_level_cd && !self.cfg.force_linear_cd,
            ),
            opts,
            cd_table: None,
        };
        for (d, &s) in m.sids.iter_mut().zip(sids) {
            if (s as u64) >= self.strtab.num_sids() {
                return Err(Error::InvalidArgument);
            }
            *d = s;
        }
        Ok(m)
    }

    /// Allocates `master`'s CD table if it has none yet, without touching any STE, so that CDs
    /// (CD 0 in particular) can be written before the STEs point at the table.
    pub fn ensure_cd_table(&mut self, master: &mut Master<A::Memory, S>) -> Result<()> {
        if master.cd_table.is_none() {
            let cd2l = self.features.two_level_cd && !self.cfg.force_linear_cd;
            master.cd_table = Some(CdTable::new(&self.alloc, master.ssid_bits, cd2l)?);
        }
        Ok(())
    }

    /// Attaches `master` to stage-1 translation through its CD table (allocated on first use):
    /// every StreamID gets an S1 STE; traffic without PASID uses CD 0 (`s1dss::SSID0`),
    /// bypasses (`s1dss::BYPASS`) or is terminated (`s1dss::TERMINATE`). With `SSID0`, write
    /// CD 0 first ([`Smmu::ensure_cd_table`], [`Smmu::write_cd`]) or PASID-less traffic
    /// reports C_BAD_CD until it exists.
    pub fn attach_cd_table(&mut self, master: &mut Master<A::Memory, S>, dss: u8) -> Result<()> {
        self.ensure_cd_table(master)?;
        let cd_ref = match &master.cd_table {
            Some(t) => t.cd_ref(),
            None => return Err(Error::Busy),
        };
        let feat = self.features.ste_features();
        let ste = Ste::s1_cdtable(&feat, &master.opts, &cd_ref, dss);
        for &sid in master.sids() {
            self.write_ste(sid, &ste)?;
        }
        Ok(())
    }
}

impl<M: Mmio, A: DmaAllocator, S: TableStore<A::Memory>> Smmu<M, A, S> {
    /// The decoded ID registers.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            cmdq: self.cmdq.stats(),
            ..self.stats
        }
    }

    /// The register page (for the caller's diagnostics; the driver owns its programming).
    pub fn mmio(&self) -> &M {
        &self.mmio
    }

    /// The stream table (for inspection).
    pub fn stream_table(&self) -> &StreamTable<A::Memory, S> {
        &self.strtab
    }

    fn cr0_write(&mut self, value: u32) -> Result<()> {
        write_ack(
            &self.mmio,
            self.cfg.poll,
            Cr0::OFFSET,
            Cr0Ack::OFFSET,
            value,
        )?;
        self.enabled = value;
        Ok(())
    }

    /// Requests a GBPA change and waits for GBPA.Update to clear.
    fn update_gbpa(&mut self, abort: bool) -> Result<()> {
        let poll = self.cfg.poll;
        let wait = |m: &M| -> Result<Gbpa> {
            for _ in 0..poll.limit {
                let g = Gbpa::read(m);
                if !g.update() {
                    return Ok(g);
                }
            }
            Err(Error::Timeout)
        };
        let g = wait(&self.mmio)?;
        g.set_abort(abort).set_update(true).write(&self.mmio);
        wait(&self.mmio).map(|_| ())
    }

    /// Resets and enables the SMMU (IHI0070 3.x initialisation, same order as Linux): disable,
    /// program CR1/CR2, stream table, command queue; enable the command queue and invalidate
    /// all cached configuration and TLBs; program and enable the event queue; interrupts;
    /// finally SMMUEN. Every CR0 write waits for CR0ACK.
    pub fn enable(&mut self) -> Result<()> {
        if Cr0::read(&self.mmio).smmuen() || self.cfg.gbpa_abort {
            self.update_gbpa(true)?;
        }
        self.cr0_write(0)?;
        Cr1(0)
            .set_table_sh(sh::ISH)
            .set_table_oc(cr1_cache::WB)
            .set_table_ic(cr1_cache::WB)
            .set_queue_sh(sh::ISH)
            .set_queue_oc(cr1_cache::WB)
            .set_queue_ic(cr1_cache::WB)
            .write(&self.mmio);
        Cr2(0).set_ptm(true).set_recinvsid(true).write(&self.mmio);
        let (base, base_cfg) = self.strtab.base_regs();
        base.write(&self.mmio);
        base_cfg.write(&self.mmio);

        self.cmdq.base_reg().write(&self.mmio);
        self.mmio
            .write32(super::regs::CmdqProd::OFFSET, self.cmdq.prod());
        self.mmio.write32(CmdqCons::OFFSET, self.cmdq.prod());
        let mut cr0 = Cr0(0).set_cmdqen(true);
        self.cr0_write(cr0.0)?;

        self.submit_sync(&[Command::cfgi_all()])?;
        if self.features.hyp {
            self.submit_sync(&[Command::TlbiEl2All])?;
        }
        self.submit_sync(&[Command::TlbiNsnhAll])?;

        self.evtq.base_reg().write(&self.mmio);
        EvtqProd(self.evtq.cons()).write(&self.mmio);
        EvtqCons(self.evtq.cons()).write(&self.mmio);
        cr0 = cr0.set_eventqen(true);
        self.cr0_write(cr0.0)?;

        let irq = IrqCtrl(0)
            .set_gerror_irqen(self.cfg.irqs)
            .set_eventq_irqen(self.cfg.irqs);
        write_ack(
            &self.mmio,
            self.cfg.poll,
            IrqCtrl::OFFSET,
            IrqCtrlAck::OFFSET,
            irq.0,
        )?;

        cr0 = cr0.set_smmuen(true);
        self.cr0_write(cr0.0)
    }

    /// Disables translation and the queues (CR0 = 0); incoming traffic then follows GBPA.
    pub fn disable(&mut self) -> Result<()> {
        self.cr0_write(0)
    }

    /// Issues `cmds` followed by one CMD_SYNC and waits for their completion.
    // Never inlined, like every function that holds a `CmdBatch` (1 KiB): its callers' frames
    // stay small (kernel stacks; see docs/rust-smmuv3.md). The call costs nothing next to the
    // MMIO writes and the CMD_SYNC wait it is followed by.
    #[inline(never)]
    pub fn submit_sync(&mut self, cmds: &[Command]) -> Result<()> {
        let mut batch = CmdBatch::default();
        for c in cmds {
            self.batch_add(&mut batch, c)?;
        }
        self.batch_submit(&mut batch)
    }

    /// Issues `cmds` without waiting (they complete before the next CMD_SYNC).
    // Never inlined: holds a `CmdBatch` (see `submit_sync`).
    #[inline(never)]
    pub fn submit(&mut self, cmds: &[Command]) -> Result<()> {
        let mut batch = CmdBatch::default();
        for c in cmds {
            self.batch_add(&mut batch, c)?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.cmdq.submit(&self.mmio, batch.as_slice(), false)
    }

    /// Adds a command to `batch`, publishing the batch (without sync) first if it is full.
    pub fn batch_add(&mut self, batch: &mut CmdBatch, c: &Command) -> Result<()> {
        let e: CmdEntry = c.encode()?;
        if !batch.push(e) {
            self.cmdq.submit(&self.mmio, batch.as_slice(), false)?;
            batch.clear();
            batch.push(e);
        }
        Ok(())
    }

    /// Publishes `batch` with a CMD_SYNC and waits; the batch is emptied.
    pub fn batch_submit(&mut self, batch: &mut CmdBatch) -> Result<()> {
        let r = self.cmdq.submit(&self.mmio, batch.as_slice(), true);
        batch.clear();
        r
    }

    /// Issues pre-encoded queue entries (followed by a CMD_SYNC and a wait if `sync`). For
    /// commands [`Command`] does not model, and for tests that inject malformed commands.
    pub fn submit_entries(&mut self, entries: &[CmdEntry], sync: bool) -> Result<()> {
        self.cmdq.submit(&self.mmio, entries, sync)
    }

    /// Waits for every command issued so far (a lone CMD_SYNC).
    pub fn sync(&mut self) -> Result<()> {
        self.cmdq.submit(&self.mmio, &[], true)
    }

    /// Hitlessly installs `target` as the STE of `sid` (allocating its level-2 table if
    /// needed), issuing CFGI_STE + CMD_SYNC after each step.
    pub fn write_ste(&mut self, sid: u32, target: &Ste) -> Result<UpdateStats> {
        let Self {
            mmio,
            alloc,
            strtab,
            cmdq,
            stats,
            ..
        } = self;
        let linked = strtab.prepare(alloc, sid)?;
        let slot = strtab.slot(sid).ok_or(Error::InvalidArgument)?;
        let mut io = SteIo {
            mmio,
            mem: slot.mem,
            offset: slot.offset,
            cmdq,
            sid,
            leaf: !linked,
        };
        let st = writer::write_entry(&mut io, &target.0, writer::ste_used)?;
        stats.ste_updates += 1;
        if st.breaking {
            stats.breaking_updates += 1;
        }
        Ok(st)
    }

    /// Reads back the STE of `sid`.
    pub fn read_ste(&self, sid: u32) -> Ste {
        self.strtab.read(sid)
    }

    /// Makes `sid` abort all traffic.
    pub fn set_abort(&mut self, sid: u32) -> Result<UpdateStats> {
        self.write_ste(sid, &Ste::abort())
    }

    /// Makes `sid` bypass translation.
    pub fn set_bypass(&mut self, sid: u32) -> Result<UpdateStats> {
        let ste = Ste::bypass(&self.features.ste_features());
        self.write_ste(sid, &ste)
    }

    /// Hitlessly writes `target` as the CD of `ssid` in `master`'s CD table (allocating its
    /// leaf if needed), issuing CFGI_CD for every StreamID of the master + CMD_SYNC per step.
    pub fn write_cd(
        &mut self,
        master: &mut Master<A::Memory, S>,
        ssid: u32,
        target: &Cd,
    ) -> Result<UpdateStats> {
        let Self {
            mmio,
            alloc,
            cmdq,
            stats,
            ..
        } = self;
        let sids = master.sids.get(..master.nsids).unwrap_or(&[]);
        let table = master.cd_table.as_mut().ok_or(Error::Busy)?;
        if table.prepare(alloc, ssid)? {
            // The SMMU may hold the invalid L1 descriptor in its cache.
            cfgi_cd_sync(mmio, cmdq, sids, ssid, false)?;
        }
        let slot = table.slot(ssid).ok_or(Error::InvalidArgument)?;
        let mut io = CdIo {
            mmio,
            mem: slot.mem,
            offset: slot.offset,
            cmdq,
            sids,
            ssid,
        };
        let st = writer::write_entry(&mut io, &target.0, writer::cd_used)?;
        stats.cd_updates += 1;
        if st.breaking {
            stats.breaking_updates += 1;
        }
        Ok(st)
    }

    /// Invalidates the CD of `ssid` (V = 0); its TLB entries must be invalidated separately.
    pub fn clear_cd(
        &mut self,
        master: &mut Master<A::Memory, S>,
        ssid: u32,
    ) -> Result<UpdateStats> {
        match master.cd_table.as_ref().map(|t| t.slot(ssid).is_some()) {
            Some(true) => self.write_cd(master, ssid, &Cd::invalid()),
            // Never written: nothing to clear.
            _ => Ok(UpdateStats::default()),
        }
    }

    /// Detaches `master`: all its StreamIDs abort. The CD table stays allocated.
    pub fn detach(&mut self, master: &Master<A::Memory, S>) -> Result<()> {
        for &sid in master.sids() {
            self.set_abort(sid)?;
        }
        Ok(())
    }

    /// CFGI_STE + CMD_SYNC for one stream.
    pub fn inv_ste(&mut self, sid: u32) -> Result<()> {
        self.submit_sync(&[Command::CfgiSte { sid, leaf: true }])
    }

    /// CFGI_CD + CMD_SYNC for one (StreamID, SubstreamID).
    pub fn inv_cd(&mut self, sid: u32, ssid: u32) -> Result<()> {
        self.submit_sync(&[Command::CfgiCd {
            sid,
            ssid,
            leaf: true,
        }])
    }

    /// Invalidates all TLB entries of `asid` (TLBI_NH_ASID + CMD_SYNC).
    pub fn inv_asid(&mut self, asid: u16) -> Result<()> {
        self.submit_sync(&[Command::TlbiNhAsid { asid, vmid: 0 }])
    }

    /// Invalidates the TLB entries of `asid` covering `[iova, iova + size)`: `granule` is the
    /// size of the (leaf) entries removed, `pgshift` the page size of the tables. Uses range
    /// commands when IDR3.RIL allows, falls back to TLBI_NH_ASID for very large ranges, and
    /// ends with one CMD_SYNC.
    pub fn inv_range(
        &mut self,
        asid: u16,
        iova: u64,
        size: u64,
        granule: u64,
        leaf: bool,
        pgshift: u32,
    ) -> Result<()> {
        let ril = self.features.ril;
        if !ril && granule != 0 && size / granule > MAX_TLBI_OPS {
            return self.inv_asid(asid);
        }
        let mut batch = CmdBatch::default();
        cmd::tlbi_va_range(asid, 0, iova, size, granule, leaf, pgshift, ril, |c| {
            self.batch_add(&mut batch, &c)
        })?;
        self.batch_submit(&mut batch)
    }

    /// Reads up to `max` pending events, decoded, into `f`. Returns how many were read and
    /// whether the queue overflowed since the last call.
    pub fn poll_events(&mut self, max: u32, mut f: impl FnMut(Event)) -> super::queue::EventDrain {
        let d = self.evtq.drain(&self.mmio, max, |r| f(r.decode()));
        self.stats.events += d.events as u64;
        if d.overflow {
            self.stats.event_overflows += 1;
        }
        d
    }

    /// Checks SMMU_GERROR: acknowledges every active error and returns the active bits.
    /// Command errors are handled (and acknowledged) by the command queue at its next wait, and
    /// Service
    /// Failure Mode disables the SMMU and reports [`Error::Fatal`].
    pub fn handle_gerror(&mut self) -> Result<u32> {
        let gerror = Gerror::read(&self.mmio);
        let gerrorn = Gerrorn::read(&self.mmio);
        let active = (gerror.0 ^ gerrorn.0) & 0x3fd;
        if active == 0 {
            return Ok(0);
        }
        // CMDQ_ERR is left to the command queue, which must skip the bad command first.
        let ack = active & !(Gerror::CMDQ_ERR.mask() as u32);
        Gerrorn(gerrorn.0 ^ ack).write(&self.mmio);
        if active & (Gerror::SFM_ERR.mask() as u32) != 0 {
            let _ = self.disable();
            return Err(Error::Fatal(active));
        }
        Ok(active)
    }
}

impl<M: Mmio, A: DmaAllocator, S: TableStore<A::Memory>> Drop for Smmu<M, A, S> {
    fn drop(&mut self) {
        if self.enabled != 0 {
            // Nothing to report to: a timeout here leaves the SMMU as the hardware decides.
            let _ = self.disable();
        }
    }
}

impl<M: Mmio, A: DmaAllocator, S: TableStore<A::Memory>> Smmu<M, A, S> {
    /// The S1DSS value making PASID-less traffic use CD 0 (the requester-ID context).
    pub const DSS_SSID0: u8 = s1dss::SSID0;
}
