// SPDX-License-Identifier: GPL-2.0
//! Test rig: hand-encoded STE/CD/descriptor/command words, each with the spec section it comes
//! from, and a "software" that programs the model only through its registers and memory.
//! Nothing here comes from the driver crate or from the model's own encoders.
#![allow(dead_code)]

use physmem::PhysMem;
use smmu_model::{Access, Event, Features, SmmuModel, TranslateError, Translation, TxnAttrs};
use smmuv3::dma::Mmio;

// ---- Registers (IHI 0070 6.2 register map) ----
pub const IDR0: usize = 0x00;
pub const IDR1: usize = 0x04;
pub const IDR3: usize = 0x0c;
pub const IDR5: usize = 0x14;
pub const CR0: usize = 0x20;
pub const CR0ACK: usize = 0x24;
pub const CR2: usize = 0x2c;
pub const GBPA: usize = 0x44;
pub const IRQ_CTRL: usize = 0x50;
pub const GERROR: usize = 0x60;
pub const GERRORN: usize = 0x64;
pub const STRTAB_BASE: usize = 0x80;
pub const STRTAB_BASE_CFG: usize = 0x88;
pub const CMDQ_BASE: usize = 0x90;
pub const CMDQ_PROD: usize = 0x98;
pub const CMDQ_CONS: usize = 0x9c;
pub const EVENTQ_BASE: usize = 0xa0;
pub const EVENTQ_PROD: usize = 0x100a8;
pub const EVENTQ_CONS: usize = 0x100ac;

// CR0 (6.3.9): SMMUEN[0], EVENTQEN[2], CMDQEN[3].
pub const SMMUEN: u32 = 1;
pub const EVENTQEN: u32 = 1 << 2;
pub const CMDQEN: u32 = 1 << 3;

// ---- STE (5.2) ----
/// V[0] = 1, Config[3:1] = 0b100: bypass both stages.
pub fn ste_bypass() -> [u64; 8] {
    [1 | (0b100 << 1), 0, 0, 0, 0, 0, 0, 0]
}
/// V[0] = 1, Config[3:1] = 0b000: abort, no event.
pub fn ste_abort() -> [u64; 8] {
    [1, 0, 0, 0, 0, 0, 0, 0]
}
/// V[0] = 1, Config = 0b101 (stage 1 translate), S1Fmt[5:4], S1ContextPtr[55:6],
/// S1CDMax[63:59]; word 1: S1DSS[65:64].
pub fn ste_s1(cd_ptr: u64, cd_max: u64, fmt: u64, dss: u64) -> [u64; 8] {
    [
        1 | (0b101 << 1) | (fmt << 4) | cd_ptr | (cd_max << 59),
        dss,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
}

// ---- CD (5.4) ----
/// TG0 encodings (5.4): 0b00 4KB, 0b01 64KB, 0b10 16KB.
pub fn tg0(granule: u32) -> u64 {
    match granule {
        12 => 0b00,
        16 => 0b01,
        _ => 0b10,
    }
}
/// MAIR (CD words 3): Attr0 = 0xff Normal WB, Attr1 = 0x04 Device-nGnRE, Attr2 = 0x44 Normal NC.
pub const MAIR: u64 = 0x44_04_ff;

/// A valid AArch64 CD: T0SZ[5:0], TG0[7:6], IR0[9:8] = OR0[11:10] = 0b01, SH0[13:12] = 0b11,
/// EPD1[30] = 1, V[31] = 1, IPS[34:32] = 0b101 (48 bits), AA64[41] = 1, R[45] = 1, A[46] = 1,
/// ASID[63:48]; TTB0 in word 1 bits [51:4]; MAIR in word 3.
pub fn cd(ttb0: u64, t0sz: u64, granule: u32, asid: u16) -> [u64; 8] {
    let w0 = t0sz
        | (tg0(granule) << 6)
        | (0b01 << 8)
        | (0b01 << 10)
        | (0b11 << 12)
        | (1 << 30)
        | (1 << 31)
        | (0b101 << 32)
        | (1 << 41)
        | (1 << 45)
        | (1 << 46)
        | (u64::from(asid) << 48);
    [w0, ttb0, 0, MAIR, 0, 0, 0, 0]
}
/// CD.IPS[34:32] replaced.
pub fn cd_with_ips(mut c: [u64; 8], ips: u64) -> [u64; 8] {
    c[0] = (c[0] & !(0b111 << 32)) | (ips << 32);
    c
}
/// CD.R[45] (record faults) cleared.
pub fn cd_no_record(mut c: [u64; 8]) -> [u64; 8] {
    c[0] &= !(1 << 45);
    c
}
/// CD.AFFD[35] set.
pub fn cd_affd(mut c: [u64; 8]) -> [u64; 8] {
    c[0] |= 1 << 35;
    c
}
/// L1CD (5.3): V[0], L2Ptr[55:12].
pub fn l1cd(l2: u64) -> u64 {
    l2 | 1
}
/// L1STD (5.1): Span[4:0], L2Ptr[55:6].
pub fn l1std(l2: u64, span: u64) -> u64 {
    l2 | span
}

// ---- Translation table descriptors (Arm ARM D8.3, VMSAv8-64) ----
/// Table descriptor: bits[1:0] = 0b11, next-level address.
pub fn table(addr: u64) -> u64 {
    addr | 0b11
}
/// Lower attributes of a leaf: AttrIndx[4:2] = 0, SH[9:8] = 0b11, AF[10] = 1, nG[11] = 1,
/// AP[7:6] = 0b01 (read/write at EL0 and EL1).
pub const LEAF_RW: u64 = (0b11 << 8) | (1 << 10) | (1 << 11) | (0b01 << 6);
/// AP[7:6] = 0b11: read-only at EL0 and EL1.
pub const LEAF_RO: u64 = (0b11 << 8) | (1 << 10) | (1 << 11) | (0b11 << 6);
/// Page (level 3, bits[1:0] = 0b11) or block (levels 1-2, bits[1:0] = 0b01).
pub fn leaf(pa: u64, attrs: u64, level: u32) -> u64 {
    pa | attrs | if level == 3 { 0b11 } else { 0b01 }
}

// ---- Commands (chapter 4): [word0, word1] ----
/// CMD_CFGI_STE 0x03: StreamID[63:32], Leaf[64].
pub fn cfgi_ste(sid: u32) -> [u64; 2] {
    [0x03 | (u64::from(sid) << 32), 1]
}
/// CMD_CFGI_STE_RANGE 0x04 with Range[68:64] = 31: CMD_CFGI_ALL.
pub fn cfgi_all() -> [u64; 2] {
    [0x04, 31]
}
/// CMD_CFGI_CD 0x05: SubstreamID[31:12], StreamID[63:32], Leaf[64].
pub fn cfgi_cd(sid: u32, ssid: u32) -> [u64; 2] {
    [0x05 | (u64::from(ssid) << 12) | (u64::from(sid) << 32), 1]
}
/// CMD_CFGI_CD_ALL 0x06: StreamID[63:32].
pub fn cfgi_cd_all(sid: u32) -> [u64; 2] {
    [0x06 | (u64::from(sid) << 32), 0]
}
/// CMD_TLBI_NH_ALL 0x10.
pub fn tlbi_nh_all() -> [u64; 2] {
    [0x10, 0]
}
/// CMD_TLBI_NH_ASID 0x11: ASID[63:48].
pub fn tlbi_nh_asid(asid: u16) -> [u64; 2] {
    [0x11 | (u64::from(asid) << 48), 0]
}
/// CMD_TLBI_NH_VA 0x12: ASID[63:48], Leaf[64], Address[127:76] = VA[63:12].
pub fn tlbi_nh_va(asid: u16, va: u64) -> [u64; 2] {
    [0x12 | (u64::from(asid) << 48), (va & !0xfff) | 1]
}
/// CMD_TLBI_NH_VA with a range: NUM[16:12], SCALE[24:20], TTL[73:72], TG[75:74].
pub fn tlbi_nh_va_range(asid: u16, va: u64, tg: u64, num: u64, scale: u64, ttl: u64) -> [u64; 2] {
    [
        0x12 | (num << 12) | (scale << 20) | (u64::from(asid) << 48),
        (va & !0xfff) | (tg << 10) | (ttl << 8) | 1,
    ]
}
/// CMD_TLBI_NSNH_ALL 0x30.
pub fn tlbi_nsnh_all() -> [u64; 2] {
    [0x30, 0]
}
/// CMD_SYNC 0x46, CS[13:12] = SIG_NONE.
pub fn sync() -> [u64; 2] {
    [0x46, 0]
}

/// Base addresses used by the rig.
pub const STRTAB: u64 = 0x1000_0000;
pub const CMDQ: u64 = 0x1100_0000;
pub const EVTQ: u64 = 0x1200_0000;
pub const HEAP: u64 = 0x2000_0000;

/// Software side of a test: memory, the model, and a bump allocator for tables.
pub struct Rig {
    pub mem: PhysMem,
    pub smmu: SmmuModel,
    next: u64,
    cmd_log2: u32,
    evt_log2: u32,
    st_log2: u32,
}

impl Rig {
    /// Linear Stream table of 2^8 STEs, 16-entry command queue, 16-entry event queue,
    /// RECINVSID set, SMMU enabled.
    pub fn new(f: Features) -> Self {
        Self::with_queues(f, 4, 4)
    }

    pub fn with_queues(f: Features, cmd_log2: u32, evt_log2: u32) -> Self {
        let mem = PhysMem::new(0, 1 << 40);
        let smmu = SmmuModel::new(mem.clone(), f);
        let mut r = Self {
            mem,
            smmu,
            next: HEAP,
            cmd_log2,
            evt_log2,
            st_log2: 8,
        };
        let s = &r.smmu;
        s.write64(STRTAB_BASE, STRTAB);
        // STRTAB_BASE_CFG (6.3.24): LOG2SIZE[5:0], FMT[17:16] = 0 linear.
        s.write32(STRTAB_BASE_CFG, 8);
        // CMDQ_BASE/EVENTQ_BASE (6.3.25/6.3.28): ADDR[51:5] | LOG2SIZE[4:0].
        s.write64(CMDQ_BASE, CMDQ | u64::from(cmd_log2));
        s.write32(CMDQ_PROD, 0);
        s.write32(CMDQ_CONS, 0);
        s.write64(EVENTQ_BASE, EVTQ | u64::from(evt_log2));
        s.write32(EVENTQ_PROD, 0);
        s.write32(EVENTQ_CONS, 0);
        // CR2.RECINVSID[1].
        s.write32(CR2, 1 << 1);
        s.write32(CR0, SMMUEN | EVENTQEN | CMDQEN);
        r.st_log2 = 8;
        r
    }

    /// Switches to a 2-level Stream table: STRTAB_BASE_CFG.FMT = 0b01, SPLIT[10:6], LOG2SIZE.
    pub fn two_level_strtab(&mut self, log2size: u32, split: u32) {
        self.smmu
            .write32(STRTAB_BASE_CFG, (1 << 16) | (split << 6) | log2size);
        self.st_log2 = log2size;
    }

    pub fn alloc(&mut self, size: u64, align: u64) -> u64 {
        let a = self.next.next_multiple_of(align);
        self.next = a + size;
        a
    }

    pub fn write_words(&self, addr: u64, w: &[u64]) {
        for (i, v) in w.iter().enumerate() {
            self.mem.write_u64(addr + i as u64 * 8, *v);
        }
    }

    /// Writes the STE for `sid` in the linear Stream table.
    pub fn set_ste(&self, sid: u32, ste: [u64; 8]) {
        self.write_words(STRTAB + u64::from(sid) * 64, &ste);
    }

    /// A CD table of 2^log2 entries (linear), returning its address.
    pub fn cd_table(&mut self, log2: u32) -> u64 {
        let size = 64u64 << log2;
        self.alloc(size, size)
    }

    /// Queues `cmds` and rings CMDQ_PROD once.
    pub fn cmds(&self, cmds: &[[u64; 2]]) {
        let m = (1u32 << (self.cmd_log2 + 1)) - 1;
        let mut prod = self.smmu.read32(CMDQ_PROD) & m;
        for c in cmds {
            let idx = u64::from(prod & ((1 << self.cmd_log2) - 1));
            self.write_words(CMDQ + idx * 16, c);
            prod = (prod + 1) & m;
        }
        self.smmu.write32(CMDQ_PROD, prod);
    }

    /// CMDQ_CONS index+wrap bits.
    pub fn cons(&self) -> u32 {
        self.smmu.read32(CMDQ_CONS) & ((1 << (self.cmd_log2 + 1)) - 1)
    }

    /// Reads new event records through EVENTQ_PROD/CONS, as a driver would.
    pub fn events(&self) -> Vec<Event> {
        let m = (1u32 << (self.evt_log2 + 1)) - 1;
        let prod = self.smmu.read32(EVENTQ_PROD);
        let mut cons = self.smmu.read32(EVENTQ_CONS);
        let mut out = Vec::new();
        while cons & m != prod & m {
            let idx = u64::from(cons & ((1 << self.evt_log2) - 1));
            let mut b = [0u8; 32];
            self.mem.read(EVTQ + idx * 32, &mut b);
            out.push(Event(b));
            cons = (cons & !m) | ((cons + 1) & m);
        }
        self.smmu.write32(EVENTQ_CONS, cons);
        out
    }

    pub fn read(
        &self,
        sid: u32,
        ssid: Option<u32>,
        va: u64,
    ) -> Result<Translation, TranslateError> {
        self.smmu
            .translate(sid, ssid, va, Access::Read, TxnAttrs::default())
    }

    pub fn write(
        &self,
        sid: u32,
        ssid: Option<u32>,
        va: u64,
    ) -> Result<Translation, TranslateError> {
        self.smmu
            .translate(sid, ssid, va, Access::Write, TxnAttrs::default())
    }

    /// Allocates the start-level table for a granule and T0SZ (aligned to its size, min 64B).
    pub fn new_pt(&mut self, granule: u32, t0sz: u32) -> Pt {
        let stride = granule - 3;
        let inputsize = 64 - t0sz;
        let start = 4 - (inputsize - 4) / stride;
        let lsb = granule + stride * (3 - start);
        let size = (8u64 << (inputsize - lsb)).max(64);
        let root = self.alloc(size, size);
        Pt {
            root,
            granule,
            t0sz,
            start,
        }
    }

    /// Maps `va` with a leaf at `level` (Arm ARM D8.2 lookup geometry), making tables as needed.
    pub fn map(&mut self, pt: &Pt, va: u64, pa: u64, attrs: u64, level: u32) {
        let stride = pt.granule - 3;
        let inputsize = 64 - pt.t0sz;
        let mut table_addr = pt.root;
        let mut l = pt.start;
        loop {
            let lsb = pt.granule + stride * (3 - l);
            let nbits = (inputsize - lsb).min(stride);
            let idx = (va >> lsb) & ((1 << nbits) - 1);
            let slot = table_addr + idx * 8;
            if l == level {
                self.mem.write_u64(slot, leaf(pa, attrs, level));
                return;
            }
            let d = self.mem.read_u64(slot);
            table_addr = if d & 3 == 3 {
                d & 0x0000_ffff_ffff_f000 & !((1 << pt.granule) - 1)
            } else {
                let t = self.alloc(1 << pt.granule, 1 << pt.granule);
                self.mem.write_u64(slot, table(t));
                t
            };
            l += 1;
        }
    }

    /// Overwrites the leaf for `va` (which must be mapped at `level`).
    pub fn set_leaf(&mut self, pt: &Pt, va: u64, desc: u64, level: u32) {
        let stride = pt.granule - 3;
        let inputsize = 64 - pt.t0sz;
        let mut table_addr = pt.root;
        let mut l = pt.start;
        loop {
            let lsb = pt.granule + stride * (3 - l);
            let nbits = (inputsize - lsb).min(stride);
            let idx = (va >> lsb) & ((1 << nbits) - 1);
            let slot = table_addr + idx * 8;
            if l == level {
                self.mem.write_u64(slot, desc);
                return;
            }
            table_addr = self.mem.read_u64(slot) & 0x0000_ffff_ffff_f000 & !((1 << pt.granule) - 1);
            l += 1;
        }
    }

    /// A stage 1 stream `sid` with one CD (S1CDMax = 0) using a fresh 4KB/48-bit table.
    pub fn simple_s1(&mut self, sid: u32, asid: u16) -> Pt {
        let pt = self.new_pt(12, 16);
        let cdt = self.cd_table(0);
        self.write_words(cdt, &cd(pt.root, 16, 12, asid));
        self.set_ste(sid, ste_s1(cdt, 0, 0, 0));
        pt
    }
}

/// A stage 1 translation table under construction.
pub struct Pt {
    pub root: u64,
    pub granule: u32,
    pub t0sz: u32,
    pub start: u32,
}
