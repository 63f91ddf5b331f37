// SPDX-License-Identifier: GPL-2.0
//! Bugs planted into a platform by wrappers, to show the differential suite catches bugs of
//! the "field at the wrong offset" kind. The model and QEMU themselves are untouched.
//!
//! * [`Misdecoding`] with a [`CmdBug`]: the SMMU decodes a command field wrongly: the ASID of
//!   TLBI_NH_ASID / TLBI_NH_VA one bit off (IHI0070 4.4.1/4.4.2), or the SubstreamID of
//!   CFGI_CD ignored (every CD of the StreamID dropped) or read as 0 (4.3.3). Emulated by
//!   rewriting each such command in the queue, as the buggy decoder would read it, just before
//!   the CMDQ_PROD write reaches the SMMU; works on the model ([`model_with`]) and on QEMU
//!   ([`qemu_with`]).
//! * [`EventAddrOffset`]: the model encodes InputAddr of an event record in bytes 24..31 (where
//!   the IPA belongs) instead of 16..23 (IHI0070 7.3.12). Emulated by swapping those words in
//!   every event record read from memory.
//!
//! And one planted silence, for either platform: [`Silenced`] hides every event record (its
//! register page reports the event queue empty). Run on both sides, the traces still agree
//! (nothing to compare is a match), which is why every scenario declares its events: the
//! declarations are what catch it.

use super::{ModelPlatform, Platform, QemuPlatform, EDU_SID};
use physmem::PhysMem;
use smmu_model::SmmuModel;
use smmuv3::dma::Mmio;
use std::sync::{Arc, Mutex};

const CMDQ_BASE: usize = 0x90;
const CMDQ_PROD: usize = 0x98;
const OP_CFGI_CD: u64 = 0x05;
const OP_CFGI_CD_ALL: u64 = 0x06;
const OP_TLBI_NH_ASID: u64 = 0x11;
const OP_TLBI_NH_VA: u64 = 0x12;

/// Raw access to the memory the command queue lives in (guest RAM over qtest, or the
/// model's memory), for rewriting commands before the SMMU reads them.
pub trait QueueMem: Clone {
    /// Reads the 64-bit word at `pa`.
    fn read_u64(&self, pa: u64) -> u64;
    /// Writes the 64-bit word at `pa`.
    fn write_u64(&self, pa: u64, v: u64);
}

impl QueueMem for PhysMem {
    fn read_u64(&self, pa: u64) -> u64 {
        PhysMem::read_u64(self, pa)
    }
    fn write_u64(&self, pa: u64, v: u64) {
        PhysMem::write_u64(self, pa, v)
    }
}

impl QueueMem for qtest::Qtest {
    fn read_u64(&self, pa: u64) -> u64 {
        self.readq(pa).expect("qtest readq")
    }
    fn write_u64(&self, pa: u64, v: u64) {
        self.writeq(pa, v).expect("qtest writeq")
    }
}

/// A command decoder bug: word 0 of a command as the buggy decoder reads it (`None`: it
/// reads this command right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdBug {
    /// TLBI_NH_ASID / TLBI_NH_VA: the ASID from bits \[63:49\] instead of \[63:48\] (IHI 0070
    /// 4.4.1/4.4.2), one bit off.
    TlbiAsidOffset,
    /// CFGI_CD: the SubstreamID (bits \[31:12\], 4.3.3) ignored, every CD of the StreamID
    /// dropped (as CFGI_CD_ALL): over-invalidation, harmless to a driver, but a CD that must
    /// stay stale does not.
    CfgiCdAllSsids,
    /// CFGI_CD: the SubstreamID read as 0: CD 0 is dropped instead of the one named.
    CfgiCdSsidZero,
}

impl CmdBug {
    fn misread(self, w0: u64) -> Option<u64> {
        let op = w0 & 0xff;
        match self {
            CmdBug::TlbiAsidOffset if matches!(op, OP_TLBI_NH_ASID | OP_TLBI_NH_VA) => {
                let wrong_asid = (w0 >> 49) & 0x7fff;
                Some((w0 & 0x0000_ffff_ffff_ffff) | wrong_asid << 48)
            }
            CmdBug::CfgiCdAllSsids if op == OP_CFGI_CD => {
                Some((w0 & 0xffff_ffff_0000_0000) | OP_CFGI_CD_ALL)
            }
            CmdBug::CfgiCdSsidZero if op == OP_CFGI_CD => Some(w0 & !(0xf_ffff << 12)),
            _ => None,
        }
    }
}

/// A register page whose SMMU decodes some commands wrongly ([`CmdBug`]). Emulated by
/// rewriting each such command in the queue, as the buggy decoder would read it, just before
/// the CMDQ_PROD write reaches the SMMU.
#[derive(Clone)]
pub struct MisdecodingMmio<M, Q> {
    inner: M,
    mem: Q,
    bug: CmdBug,
    prod: Arc<Mutex<u32>>,
    /// Commands rewritten so far (shared by the clones; a plant that never fired proves
    /// nothing).
    pub rewritten: Arc<Mutex<u64>>,
}

impl<M: Mmio, Q: QueueMem> MisdecodingMmio<M, Q> {
    fn rewrite(&self, new_prod: u32) {
        let base = self.inner.read64(CMDQ_BASE);
        let log2 = (base & 0x1f) as u32;
        let addr = base & 0x000f_ffff_ffff_ffe0;
        let mask = (2u32 << log2) - 1;
        let mut p = self.prod.lock().unwrap();
        let mut i = *p & mask;
        let end = new_prod & mask;
        while i != end {
            let at = addr + u64::from(i & ((1 << log2) - 1)) * 16;
            if let Some(w0) = self.bug.misread(self.mem.read_u64(at)) {
                self.mem.write_u64(at, w0);
                *self.rewritten.lock().unwrap() += 1;
            }
            i = (i + 1) & mask;
        }
        *p = new_prod;
    }
}

impl<M: Mmio, Q: QueueMem> Mmio for MisdecodingMmio<M, Q> {
    fn read32(&self, offset: usize) -> u32 {
        self.inner.read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        if offset == CMDQ_PROD {
            self.rewrite(value);
        }
        if offset == CMDQ_PROD + 4 {
            // CMDQ_CONS written by the driver at init: the queue starts there.
            *self.prod.lock().unwrap() = value;
        }
        self.inner.write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        self.inner.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.inner.write64(offset, value)
    }
}

/// Platform `P` with the command decoder bug `bug` ([`MisdecodingMmio`]).
pub struct Misdecoding<P: Platform, Q> {
    inner: P,
    mmio: MisdecodingMmio<P::Mmio, Q>,
}

impl<P: Platform, Q: QueueMem> Misdecoding<P, Q> {
    /// Plants `bug` into `inner`, whose command queue memory `mem` reaches.
    pub fn new(inner: P, mem: Q, bug: CmdBug) -> Self {
        let mmio = MisdecodingMmio {
            inner: inner.mmio(),
            mem,
            bug,
            prod: Arc::default(),
            rewritten: Arc::default(),
        };
        Self { inner, mmio }
    }
}

/// The model platform of scenario `name` with `bug`.
pub fn model_with(name: &str, bug: CmdBug) -> Misdecoding<ModelPlatform, PhysMem> {
    let p = ModelPlatform::for_scenario(name);
    let mem = p.mem.clone();
    Misdecoding::new(p, mem, bug)
}

/// The QEMU platform of scenario `name` with `bug`.
pub fn qemu_with(name: &str, bug: CmdBug) -> Misdecoding<QemuPlatform, qtest::Qtest> {
    let p = QemuPlatform::for_scenario(name);
    let qt = p.qtest();
    Misdecoding::new(p, qt, bug)
}

impl<P: Platform, Q: QueueMem> Platform for Misdecoding<P, Q> {
    type Mmio = MisdecodingMmio<P::Mmio, Q>;
    type Alloc = P::Alloc;
    fn name(&self) -> &'static str {
        "misdecoding"
    }
    fn mmio(&self) -> Self::Mmio {
        self.mmio.clone()
    }
    fn alloc(&self) -> Self::Alloc {
        self.inner.alloc()
    }
    fn dma_to_dev(&mut self, iova: u64, off: usize, len: usize) {
        self.inner.dma_to_dev(iova, off, len)
    }
    fn dma_from_dev(&mut self, off: usize, iova: u64, len: usize) {
        self.inner.dma_from_dev(off, iova, len)
    }
    fn read_mem(&self, pa: u64, buf: &mut [u8]) {
        self.inner.read_mem(pa, buf)
    }
    fn set_dma_pasid(&mut self, pasid: Option<u32>) {
        self.inner.set_dma_pasid(pasid)
    }
    fn dma_result(&self) -> u32 {
        self.inner.dma_result()
    }
    fn check(&self) -> Result<(), String> {
        self.inner.check()
    }
}

/// The model platform whose event records carry InputAddr in the wrong word.
#[derive(Default)]
pub struct EventAddrOffset {
    inner: ModelPlatform,
}

impl EventAddrOffset {
    /// Wraps the model platform of scenario `name` ([`ModelPlatform::for_scenario`]).
    pub fn for_scenario(name: &str) -> Self {
        Self {
            inner: ModelPlatform::for_scenario(name),
        }
    }
}

impl Platform for EventAddrOffset {
    type Mmio = SmmuModel;
    type Alloc = PhysMem;
    fn name(&self) -> &'static str {
        "model+event-addr-offset-bug"
    }
    fn mmio(&self) -> Self::Mmio {
        self.inner.mmio()
    }
    fn alloc(&self) -> Self::Alloc {
        self.inner.alloc()
    }
    fn dma_to_dev(&mut self, iova: u64, off: usize, len: usize) {
        self.inner.dma_to_dev(iova, off, len)
    }
    fn dma_from_dev(&mut self, off: usize, iova: u64, len: usize) {
        self.inner.dma_from_dev(off, iova, len)
    }
    fn read_mem(&self, pa: u64, buf: &mut [u8]) {
        self.inner.read_mem(pa, buf);
        // Only the raw event drain reads whole 32-byte records; check it is one of ours.
        if buf.len() == 32 && u32::from_le_bytes(buf[4..8].try_into().unwrap()) == EDU_SID {
            let (a, b) = buf[16..32].split_at_mut(8);
            a.swap_with_slice(b);
        }
    }
    fn set_dma_pasid(&mut self, pasid: Option<u32>) {
        self.inner.set_dma_pasid(pasid)
    }
    fn dma_result(&self) -> u32 {
        self.inner.dma_result()
    }
}

const EVENTQ_PROD: usize = 0x100a8;
const EVENTQ_CONS: usize = 0x100ac;

/// A register page whose event queue always reads empty (PROD reads as CONS).
#[derive(Clone)]
pub struct SilentMmio<M>(M);

impl<M: Mmio> Mmio for SilentMmio<M> {
    fn read32(&self, offset: usize) -> u32 {
        match offset {
            EVENTQ_PROD => self.0.read32(EVENTQ_CONS),
            _ => self.0.read32(offset),
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        self.0.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.0.write64(offset, value)
    }
}

/// Platform `P` with every event hidden ([`SilentMmio`]).
pub struct Silenced<P>(pub P);

impl<P: Platform> Platform for Silenced<P> {
    type Mmio = SilentMmio<P::Mmio>;
    type Alloc = P::Alloc;
    fn name(&self) -> &'static str {
        "silenced"
    }
    fn mmio(&self) -> Self::Mmio {
        SilentMmio(self.0.mmio())
    }
    fn alloc(&self) -> Self::Alloc {
        self.0.alloc()
    }
    fn dma_to_dev(&mut self, iova: u64, off: usize, len: usize) {
        self.0.dma_to_dev(iova, off, len)
    }
    fn dma_from_dev(&mut self, off: usize, iova: u64, len: usize) {
        self.0.dma_from_dev(off, iova, len)
    }
    fn read_mem(&self, pa: u64, buf: &mut [u8]) {
        self.0.read_mem(pa, buf)
    }
    fn set_dma_pasid(&mut self, pasid: Option<u32>) {
        self.0.set_dma_pasid(pasid)
    }
    fn dma_result(&self) -> u32 {
        self.0.dma_result()
    }
    fn check(&self) -> Result<(), String> {
        self.0.check()
    }
}
