// SPDX-License-Identifier: GPL-2.0
//! A scripted SMMUv3 register stub for host tests of the driver core.
//!
//! It is not a model: it only does what the queue and enable logic need to be exercised —
//! CR0/IRQ_CTRL acknowledgement, GBPA update completion, a command consumer that advances CONS
//! a configurable number of entries per CONS read (to create back-pressure), command-error
//! injection through GERROR/CMDQ_CONS.ERR, and an event producer. Offsets and field positions
//! are written out here from IHI0070 chapter 6, independently of the driver's declarations.
//! Memory is `physmem::PhysMem`, read the way the SMMU would.
#![allow(dead_code)]

use physmem::PhysMem;
use smmuv3::dma::Mmio;
use std::cell::RefCell;
use std::collections::HashMap;

pub const IDR0: usize = 0x0;
pub const IDR1: usize = 0x4;
pub const IDR3: usize = 0xc;
pub const IDR5: usize = 0x14;
pub const CR0: usize = 0x20;
pub const CR0ACK: usize = 0x24;
pub const CR1: usize = 0x28;
pub const CR2: usize = 0x2c;
pub const GBPA: usize = 0x44;
pub const IRQ_CTRL: usize = 0x50;
pub const IRQ_CTRLACK: usize = 0x54;
pub const GERROR: usize = 0x60;
pub const GERRORN: usize = 0x64;
pub const STRTAB_BASE: usize = 0x80;
pub const STRTAB_BASE_CFG: usize = 0x88;
pub const CMDQ_BASE: usize = 0x90;
pub const CMDQ_PROD: usize = 0x98;
pub const CMDQ_CONS: usize = 0x9c;
pub const EVTQ_BASE: usize = 0xa0;
pub const EVTQ_PROD: usize = 0x100a8;
pub const EVTQ_CONS: usize = 0x100ac;

/// IDR values resembling QEMU's virt SMMUv3 with PASIDs: S1P, S2P, TTF AArch64, COHACC,
/// ASID16, VMID16, CD2L, ST_LEVEL 2-level, TTENDIAN little.
pub const QEMU_LIKE_IDR0: u32 =
    1 | 1 << 1 | 2 << 2 | 1 << 4 | 1 << 12 | 1 << 18 | 1 << 19 | 2 << 21 | 1 << 27;
/// SIDSIZE 16, SSIDSIZE 20, EVENTQS 19, CMDQS 19.
pub const QEMU_LIKE_IDR1: u32 = 16 | 20 << 6 | 19 << 16 | 19 << 21;
/// OAS 44 bits, 4KB and 64KB granules.
pub const QEMU_LIKE_IDR5: u32 = 4 | 1 << 4 | 1 << 6;

#[derive(Default)]
struct State {
    regs: HashMap<usize, u64>,
    /// Commands consumed, in order (raw words).
    log: Vec<[u64; 2]>,
    /// Commands the consumer may execute per CONS read (None: all).
    rate: Option<usize>,
    /// Opcodes that raise CERROR_ILL.
    illegal: Vec<u8>,
    /// Raise this CONS.ERR code once, on the next command consumed.
    fail_once: Option<u32>,
    cr0_stuck: bool,
    gbpa_stuck: bool,
    reads: u64,
}

/// The stub; clone the `PhysMem` handle given to the driver's allocator into it.
pub struct FakeSmmu {
    mem: PhysMem,
    st: RefCell<State>,
}

impl FakeSmmu {
    pub fn new(mem: PhysMem, idr0: u32, idr1: u32, idr3: u32, idr5: u32) -> Self {
        let mut st = State::default();
        st.regs.insert(IDR0, idr0 as u64);
        st.regs.insert(IDR1, idr1 as u64);
        st.regs.insert(IDR3, idr3 as u64);
        st.regs.insert(IDR5, idr5 as u64);
        Self {
            mem,
            st: RefCell::new(st),
        }
    }

    pub fn qemu_like(mem: PhysMem) -> Self {
        Self::new(mem, QEMU_LIKE_IDR0, QEMU_LIKE_IDR1, 0, QEMU_LIKE_IDR5)
    }

    pub fn reg(&self, off: usize) -> u64 {
        self.st.borrow().regs.get(&off).copied().unwrap_or(0)
    }

    pub fn set_reg(&self, off: usize, v: u64) {
        self.st.borrow_mut().regs.insert(off, v);
    }

    pub fn set_rate(&self, rate: Option<usize>) {
        self.st.borrow_mut().rate = rate;
    }

    pub fn set_illegal(&self, ops: &[u8]) {
        self.st.borrow_mut().illegal = ops.to_vec();
    }

    pub fn fail_once(&self, code: u32) {
        self.st.borrow_mut().fail_once = Some(code);
    }

    pub fn set_cr0_stuck(&self, v: bool) {
        self.st.borrow_mut().cr0_stuck = v;
    }

    /// Consumed commands so far.
    pub fn log(&self) -> Vec<[u64; 2]> {
        self.st.borrow().log.clone()
    }

    /// Opcodes of the consumed commands.
    pub fn opcodes(&self) -> Vec<u8> {
        self.st
            .borrow()
            .log
            .iter()
            .map(|c| (c[0] & 0xff) as u8)
            .collect()
    }

    pub fn clear_log(&self) {
        self.st.borrow_mut().log.clear();
    }

    fn cmdq_geometry(st: &State) -> (u64, u32) {
        let base = st.regs.get(&CMDQ_BASE).copied().unwrap_or(0);
        (base & 0x000f_ffff_ffff_ffe0, (base & 0x1f) as u32)
    }

    /// Runs the command consumer: called on every CONS read.
    fn consume(&self) {
        let mut st = self.st.borrow_mut();
        let cr0 = st.regs.get(&CR0).copied().unwrap_or(0);
        if cr0 & (1 << 3) == 0 {
            return; // CMDQEN clear
        }
        let gerror = st.regs.get(&GERROR).copied().unwrap_or(0);
        let gerrorn = st.regs.get(&GERRORN).copied().unwrap_or(0);
        if (gerror ^ gerrorn) & 1 != 0 {
            return; // stopped on an unacknowledged command error
        }
        let (base, log2) = Self::cmdq_geometry(&st);
        let n = 1u32 << log2;
        let mask = (n << 1) - 1;
        let prod = st.regs.get(&CMDQ_PROD).copied().unwrap_or(0) as u32 & mask;
        let mut cons = st.regs.get(&CMDQ_CONS).copied().unwrap_or(0) as u32 & mask;
        let mut done = 0;
        while cons != prod && st.rate.is_none_or(|r| done < r) {
            let idx = (cons & (n - 1)) as u64;
            let cmd = [
                self.mem.read_u64(base + idx * 16),
                self.mem.read_u64(base + idx * 16 + 8),
            ];
            let op = (cmd[0] & 0xff) as u8;
            let err = if let Some(code) = st.fail_once.take() {
                Some(code)
            } else if st.illegal.contains(&op) {
                Some(1)
            } else {
                None
            };
            if let Some(code) = err {
                st.regs.insert(CMDQ_CONS, (cons | code << 24) as u64);
                st.regs.insert(GERROR, gerror ^ 1);
                return;
            }
            st.log.push(cmd);
            cons = (cons + 1) & mask;
            done += 1;
        }
        st.regs.insert(CMDQ_CONS, cons as u64);
    }

    fn evtq_geometry(&self) -> (u64, u32) {
        let base = self.reg(EVTQ_BASE);
        (base & 0x000f_ffff_ffff_ffe0, (base & 0x1f) as u32)
    }

    /// Writes an event record as the SMMU would (drops it if the queue is full, toggling
    /// the overflow flag). Returns whether it was written.
    pub fn inject_event(&self, rec: [u64; 4]) -> bool {
        let (base, log2) = self.evtq_geometry();
        let n = 1u32 << log2;
        let mask = (n << 1) - 1;
        let prod_reg = self.reg(EVTQ_PROD) as u32;
        let prod = prod_reg & mask;
        let cons = self.reg(EVTQ_CONS) as u32 & mask;
        let full = (prod & (n - 1)) == (cons & (n - 1)) && prod != cons;
        if full {
            self.set_reg(EVTQ_PROD, (prod_reg ^ 0x8000_0000) as u64);
            return false;
        }
        let idx = (prod & (n - 1)) as u64;
        for (i, w) in rec.iter().enumerate() {
            self.mem.write_u64(base + idx * 32 + i as u64 * 8, *w);
        }
        let prod = (prod + 1) & mask;
        self.set_reg(EVTQ_PROD, ((prod_reg & 0x8000_0000) | prod) as u64);
        true
    }

    pub fn reads(&self) -> u64 {
        self.st.borrow().reads
    }
}

impl Mmio for FakeSmmu {
    fn read32(&self, offset: usize) -> u32 {
        self.st.borrow_mut().reads += 1;
        if offset == CMDQ_CONS {
            self.consume();
        }
        self.reg(offset) as u32
    }

    fn write32(&self, offset: usize, value: u32) {
        let mut st = self.st.borrow_mut();
        match offset {
            CR0 => {
                st.regs.insert(CR0, value as u64);
                if !st.cr0_stuck {
                    st.regs.insert(CR0ACK, value as u64);
                }
            }
            IRQ_CTRL => {
                st.regs.insert(IRQ_CTRL, value as u64);
                st.regs.insert(IRQ_CTRLACK, value as u64);
            }
            GBPA => {
                let v = if st.gbpa_stuck {
                    value
                } else {
                    value & !0x8000_0000
                };
                st.regs.insert(GBPA, v as u64);
            }
            EVTQ_CONS => {
                st.regs.insert(EVTQ_CONS, value as u64);
            }
            _ => {
                st.regs.insert(offset, value as u64);
            }
        }
    }

    fn read64(&self, offset: usize) -> u64 {
        self.st.borrow_mut().reads += 1;
        self.reg(offset)
    }

    fn write64(&self, offset: usize, value: u64) {
        self.st.borrow_mut().regs.insert(offset, value);
    }
}

/// Lets a test keep a handle on the stub while the driver owns "the" Mmio.
impl Mmio for &FakeSmmu {
    fn read32(&self, offset: usize) -> u32 {
        (*self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (*self).write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        (*self).read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        (*self).write64(offset, value)
    }
}
