// SPDX-License-Identifier: GPL-2.0
//! The command queue producer and the event queue consumer (IHI0070 3.5, 6.3.2x).
//!
//! Both queues are circular arrays in DMA memory of `2^shift` entries, indexed by PROD/CONS
//! registers holding an index plus a wrap bit (bit `shift`): equal index with equal wrap means
//! empty, equal index with different wrap means full. The driver is the only producer of the
//! command queue (callers serialise access through `&mut`), so the shadow PROD is exact and
//! only CONS has to be read back.
//!
//! Nothing here sleeps: waits are bounded register polls ([`Poll`]) that end in
//! [`Error::Timeout`].

use super::cmd::{CmdEntry, Command};
use super::dma::{DmaAllocator, DmaMemory, Mmio};
use super::error::{CmdError, CmdErrorKind, Error, Result};
use super::event::EventRecord;
use super::regs::{CmdqBase, CmdqCons, CmdqProd, EvtqBase, EvtqCons, EvtqProd, Gerror, Gerrorn};

/// Size of a command queue entry in bytes.
pub const CMD_BYTES: usize = 16;
/// Size of an event queue entry in bytes.
pub const EVT_BYTES: usize = 32;
/// Largest queue the driver allocates (log2 entries), whatever IDR1 allows: 64KB of commands.
pub const MAX_QUEUE_SHIFT: u32 = 12;

/// Index arithmetic of a queue of `2^shift` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    shift: u32,
}

impl Ring {
    /// A ring of `2^shift` entries (`shift` is capped to 19, the widest PROD/CONS field).
    pub const fn new(shift: u32) -> Self {
        Self {
            shift: if shift > 19 { 19 } else { shift },
        }
    }

    /// log2 of the number of entries.
    pub const fn shift(&self) -> u32 {
        self.shift
    }

    /// Number of entries.
    pub const fn entries(&self) -> u32 {
        1 << self.shift
    }

    /// Index part of a PROD/CONS value.
    pub const fn idx(&self, p: u32) -> u32 {
        p & (self.entries() - 1)
    }

    /// Wrap bit of a PROD/CONS value.
    pub const fn wrap(&self, p: u32) -> u32 {
        p & self.entries()
    }

    /// Index and wrap bit (drops flags such as CONS.ERR or PROD.OVFLG).
    pub const fn pos(&self, p: u32) -> u32 {
        p & ((self.entries() << 1) - 1)
    }

    /// `p` advanced by `n` entries, wrap bit toggling on overflow of the index.
    pub const fn advance(&self, p: u32, n: u32) -> u32 {
        self.pos(self.pos(p).wrapping_add(n))
    }

    /// Number of entries between CONS and PROD.
    pub const fn used(&self, prod: u32, cons: u32) -> u32 {
        let (p, c) = (self.idx(prod), self.idx(cons));
        if self.wrap(prod) == self.wrap(cons) {
            p.wrapping_sub(c)
        } else {
            self.entries().wrapping_sub(c).wrapping_add(p)
        }
    }

    /// Free entries.
    pub const fn space(&self, prod: u32, cons: u32) -> u32 {
        self.entries().saturating_sub(self.used(prod, cons))
    }

    /// Queue full.
    pub const fn is_full(&self, prod: u32, cons: u32) -> bool {
        self.idx(prod) == self.idx(cons) && self.wrap(prod) != self.wrap(cons)
    }

    /// Queue empty.
    pub const fn is_empty(&self, prod: u32, cons: u32) -> bool {
        self.pos(prod) == self.pos(cons)
    }
}

/// A bounded poll: how many register reads a wait may take before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Maximum number of polls of the awaited register.
    pub limit: u32,
}

impl Default for Poll {
    /// A generous bound: about a second of MMIO reads on real hardware, instant on QEMU.
    fn default() -> Self {
        Self { limit: 1_000_000 }
    }
}

/// Counters of the command queue, for the command/sync cost figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CmdqStats {
    /// Commands written to the queue, CMD_SYNCs included.
    pub commands: u64,
    /// CMD_SYNCs written.
    pub syncs: u64,
    /// PROD register writes (each publishes a batch).
    pub prod_writes: u64,
    /// CONS register reads while waiting.
    pub cons_polls: u64,
    /// Times the producer found the queue full and had to wait.
    pub full_waits: u64,
    /// Command errors recovered from.
    pub errors: u64,
}

/// The command queue: a DMA ring plus the shadow PROD and last-read CONS.
pub struct CmdQueue<D: DmaMemory> {
    mem: D,
    ring: Ring,
    prod: u32,
    cons: u32,
    poll: Poll,
    stats: CmdqStats,
}

/// Allocates a naturally aligned ring, halving it while allocation fails (down to 2 entries).
fn alloc_ring<A: DmaAllocator>(alloc: &A, shift: u32, entry: usize) -> Result<(A::Memory, Ring)> {
    let mut shift = shift.min(MAX_QUEUE_SHIFT);
    loop {
        let bytes = entry << shift;
        // Natural alignment; IHI0070 also requires at least 32 bytes.
        match alloc.alloc_zeroed(bytes, bytes.max(32)) {
            Ok(mem) if mem.size() >= bytes => return Ok((mem, Ring::new(shift))),
            Ok(_) => return Err(Error::NoMemory),
            Err(_) if shift > 1 => shift -= 1,
            Err(e) => return Err(e.into()),
        }
    }
}

impl<D: DmaMemory> CmdQueue<D> {
    /// Allocates a queue of up to `2^shift` entries (smaller if memory is short).
    pub fn new<A: DmaAllocator<Memory = D>>(alloc: &A, shift: u32, poll: Poll) -> Result<Self> {
        let (mem, ring) = alloc_ring(alloc, shift, CMD_BYTES)?;
        Ok(Self {
            mem,
            ring,
            prod: 0,
            cons: 0,
            poll,
            stats: CmdqStats::default(),
        })
    }

    /// The index arithmetic of this queue.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// The SMMU_CMDQ_BASE value describing this queue.
    pub fn base_reg(&self) -> CmdqBase {
        CmdqBase(0)
            .set_ra(true)
            .set_addr(self.mem.dma_addr() >> 5)
            .set_log2size(self.ring.shift() as u8)
    }

    /// The shadow PROD (index and wrap) to program before enabling the queue.
    pub fn prod(&self) -> u32 {
        self.prod
    }

    /// Counters so far.
    pub fn stats(&self) -> CmdqStats {
        self.stats
    }

    /// Physical address of the ring.
    pub fn dma_addr(&self) -> u64 {
        self.mem.dma_addr()
    }

    fn write_entry(&mut self, e: &CmdEntry) {
        let off = self.ring.idx(self.prod) as usize * CMD_BYTES;
        self.mem.write_u64(off, e.0[0]);
        self.mem.write_u64(off + 8, e.0[1]);
        self.prod = self.ring.advance(self.prod, 1);
        self.stats.commands += 1;
    }

    fn publish<M: Mmio>(&mut self, mmio: &M) {
        // writel semantics: the entries written above are visible before PROD moves.
        CmdqProd(self.prod).write(mmio);
        self.stats.prod_writes += 1;
    }

    /// Reads CONS and, if the SMMU stopped on a command error, recovers from it.
    fn refresh_cons<M: Mmio>(&mut self, mmio: &M, err: &mut Option<CmdError>) -> Result<()> {
        self.stats.cons_polls += 1;
        let cons = CmdqCons::read(mmio);
        self.cons = self.ring.pos(cons.0);
        // Everything published was consumed: no command error can be pending (the SMMU stops
        // at an erroneous command until GERRORN acknowledges it, IHI 0070 7.1), and a service
        // failure would have stopped consumption. Skipping the two GERROR reads here makes a
        // CMD_SYNC that completes at once cost one register read, like the C driver's CONS
        // poll (which leaves GERROR to its interrupt handler).
        if self.ring.is_empty(self.prod, self.cons) {
            return Ok(());
        }
        let active = Gerror::read(mmio).0 ^ Gerrorn::read(mmio).0;
        if active & (Gerror::SFM_ERR.mask() as u32) != 0 {
            return Err(Error::Fatal(active));
        }
        if active & (Gerror::CMDQ_ERR.mask() as u32) != 0 {
            let e = self.skip_error(mmio, cons);
            if err.is_none() {
                *err = Some(e);
            }
        }
        Ok(())
    }

    /// Handles GERROR.CMDQ_ERR: reports the command at CONS and, for an illegal command,
    /// replaces it with a CMD_SYNC so the queue can make progress; then acknowledges the error
    /// by toggling GERRORN.CMDQ_ERR, which restarts command processing.
    fn skip_error<M: Mmio>(&mut self, mmio: &M, cons: CmdqCons) -> CmdError {
        let kind = CmdErrorKind::from_code(cons.err());
        let index = self.ring.idx(cons.0);
        let off = index as usize * CMD_BYTES;
        let command = [self.mem.read_u64(off), self.mem.read_u64(off + 8)];
        match kind {
            // Fetch aborts are retried; an ATC timeout leaves CONS on the CMD_SYNC, which is
            // simply re-executed.
            CmdErrorKind::Abort | CmdErrorKind::AtcInvSync | CmdErrorKind::None => {}
            CmdErrorKind::Illegal | CmdErrorKind::Other(_) => {
                if let Ok(sync) = Command::sync().encode() {
                    self.mem.write_u64(off, sync.0[0]);
                    self.mem.write_u64(off + 8, sync.0[1]);
                }
            }
        }
        let gerrorn = Gerrorn::read(mmio);
        let cmdq_bit = Gerrorn::CMDQ_ERR.mask() as u32;
        Gerrorn(gerrorn.0 ^ cmdq_bit).write(mmio);
        // Rewriting the unchanged PROD is harmless and restarts implementations that only look
        // at the queue when PROD is written (QEMU's model does).
        self.publish(mmio);
        self.stats.errors += 1;
        CmdError {
            kind,
            index,
            command,
        }
    }

    /// Waits for at least `n` free entries, publishing what is pending first (the SMMU cannot
    /// consume commands it has not been told about).
    fn wait_space<M: Mmio>(&mut self, mmio: &M, n: u32, err: &mut Option<CmdError>) -> Result<()> {
        if self.ring.space(self.prod, self.cons) >= n {
            return Ok(());
        }
        self.stats.full_waits += 1;
        self.publish(mmio);
        for _ in 0..self.poll.limit {
            self.refresh_cons(mmio, err)?;
            if self.ring.space(self.prod, self.cons) >= n {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    /// Writes `cmds` (and a CMD_SYNC if `sync`), publishes them with one PROD write when they
    /// fit, and with `sync` waits until the SMMU has consumed everything.
    ///
    /// Returns [`Error::Command`] if the SMMU rejected one of the commands (after recovering and
    /// completing the rest), [`Error::Timeout`] if the SMMU stops consuming.
    pub fn submit<M: Mmio>(&mut self, mmio: &M, cmds: &[CmdEntry], sync: bool) -> Result<()> {
        let mut err = None;
        for c in cmds {
            self.wait_space(mmio, 1, &mut err)?;
            self.write_entry(c);
        }
        if sync {
            let s = Command::sync().encode()?;
            self.wait_space(mmio, 1, &mut err)?;
            self.write_entry(&s);
            self.stats.syncs += 1;
        }
        self.publish(mmio);
        if sync {
            self.wait_consumed(mmio, &mut err)?;
        }
        match err {
            Some(e) => Err(Error::Command(e)),
            None => Ok(()),
        }
    }

    /// Polls CONS until every published command has been consumed.
    fn wait_consumed<M: Mmio>(&mut self, mmio: &M, err: &mut Option<CmdError>) -> Result<()> {
        for _ in 0..self.poll.limit {
            self.refresh_cons(mmio, err)?;
            if self.ring.is_empty(self.prod, self.cons) {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }
}

/// Maximum commands in one [`CmdBatch`] (like Linux's CMDQ_BATCH_ENTRIES on 64-bit).
pub const BATCH_ENTRIES: usize = 64;

/// Commands collected to be published together (one PROD write, at most one CMD_SYNC).
pub struct CmdBatch {
    entries: [CmdEntry; BATCH_ENTRIES],
    len: usize,
}

impl Default for CmdBatch {
    fn default() -> Self {
        Self {
            entries: [CmdEntry::default(); BATCH_ENTRIES],
            len: 0,
        }
    }
}

impl CmdBatch {
    /// Appends an encoded command; `false` if the batch is full.
    pub fn push(&mut self, e: CmdEntry) -> bool {
        match self.entries.get_mut(self.len) {
            Some(slot) => {
                *slot = e;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The collected commands.
    pub fn as_slice(&self) -> &[CmdEntry] {
        self.entries.get(..self.len).unwrap_or(&[])
    }

    /// Number of collected commands.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the collected commands.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Result of draining the event queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventDrain {
    /// Records read.
    pub events: u32,
    /// The SMMU reported an overflow (records were lost) since the last drain.
    pub overflow: bool,
}

/// The event queue: a DMA ring written by the SMMU, consumed by the driver.
pub struct EventQueue<D: DmaMemory> {
    mem: D,
    ring: Ring,
    cons: u32,
    /// Overflow flag value last acknowledged (CONS.OVACKFLG).
    ovack: bool,
}

impl<D: DmaMemory> EventQueue<D> {
    /// Allocates a queue of up to `2^shift` entries (smaller if memory is short).
    pub fn new<A: DmaAllocator<Memory = D>>(alloc: &A, shift: u32) -> Result<Self> {
        let (mem, ring) = alloc_ring(alloc, shift, EVT_BYTES)?;
        Ok(Self {
            mem,
            ring,
            cons: 0,
            ovack: false,
        })
    }

    /// The index arithmetic of this queue.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// The SMMU_EVENTQ_BASE value describing this queue.
    pub fn base_reg(&self) -> EvtqBase {
        EvtqBase(0)
            .set_wa(true)
            .set_addr(self.mem.dma_addr() >> 5)
            .set_log2size(self.ring.shift() as u8)
    }

    /// The CONS value to program before enabling the queue.
    pub fn cons(&self) -> u32 {
        self.cons
    }

    /// Reads up to `max` records between CONS and PROD, handing each to `f`, then publishes the
    /// new CONS (acknowledging an overflow if PROD.OVFLG toggled).
    pub fn drain<M: Mmio>(
        &mut self,
        mmio: &M,
        max: u32,
        mut f: impl FnMut(EventRecord),
    ) -> EventDrain {
        let prod = EvtqProd::read(mmio);
        let overflow = prod.ovflg() != self.ovack;
        let mut out = EventDrain {
            events: 0,
            overflow,
        };
        while out.events < max && !self.ring.is_empty(prod.0, self.cons) {
            let off = self.ring.idx(self.cons) as usize * EVT_BYTES;
            let mut rec = EventRecord::default();
            for (i, w) in rec.0.iter_mut().enumerate() {
                *w = self.mem.read_u64(off + i * 8);
            }
            f(rec);
            self.cons = self.ring.advance(self.cons, 1);
            out.events += 1;
        }
        if out.events != 0 || overflow {
            self.ovack = prod.ovflg();
            EvtqCons(0)
                .set_rd(self.cons)
                .set_ovackflg(self.ovack)
                .write(mmio);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_index_and_wrap() {
        let r = Ring::new(3);
        assert_eq!(r.entries(), 8);
        assert_eq!(r.advance(7, 1), 0b1000, "index wraps to 0, wrap bit set");
        assert_eq!(r.advance(0b1111, 1), 0, "second lap clears the wrap bit");
        assert_eq!(r.advance(6, 4), 0b1010);
        assert!(r.is_empty(3, 3) && !r.is_full(3, 3));
        assert!(r.is_full(0b1011, 0b0011) && !r.is_empty(0b1011, 0b0011));
        assert_eq!(r.used(0b1001, 0b0110), 3);
        assert_eq!(r.space(0b1001, 0b0110), 5);
        assert_eq!(r.used(5, 2), 3);
        // Flags above the wrap bit (CONS.ERR, PROD.OVFLG) are ignored.
        assert_eq!(r.pos(0x8000_0000 | 0x0700_0000 | 0b1010), 0b1010);
        assert!(r.is_empty(0x8000_0005, 5));
        // Oversized shifts are capped, never overflow.
        assert_eq!(Ring::new(40).shift(), 19);
    }

    #[test]
    fn batch_is_bounded() {
        let mut b = CmdBatch::default();
        for _ in 0..BATCH_ENTRIES {
            assert!(b.push(CmdEntry::default()));
        }
        assert!(!b.push(CmdEntry::default()));
        assert_eq!(b.len(), BATCH_ENTRIES);
        b.clear();
        assert!(b.is_empty() && b.as_slice().is_empty());
    }
}
