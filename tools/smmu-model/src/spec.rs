// SPDX-License-Identifier: GPL-2.0
//! Encodings taken from the Arm SMMUv3 architecture specification (IHI 0070, "the spec").
//!
//! Everything in this module was written from the spec's register, structure, command and event
//! descriptions; section numbers are given next to each group. None of it is shared with the
//! driver crate: the model must be able to disagree with the driver.

/// Extracts bits `[hi:lo]` (inclusive) of `v`.
pub const fn bits(v: u64, hi: u32, lo: u32) -> u64 {
    (v >> lo) & (u64::MAX >> (63 - (hi - lo)))
}

/// Bit `n` of `v`.
pub const fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// Register offsets (spec chapter 6, "Memory map and registers"). Page 1 starts at 0x10000.
pub mod reg {
    pub const IDR0: usize = 0x00;
    pub const IDR1: usize = 0x04;
    pub const IDR2: usize = 0x08;
    pub const IDR3: usize = 0x0c;
    pub const IDR4: usize = 0x10;
    pub const IDR5: usize = 0x14;
    pub const IIDR: usize = 0x18;
    pub const AIDR: usize = 0x1c;
    pub const CR0: usize = 0x20;
    pub const CR0ACK: usize = 0x24;
    pub const CR1: usize = 0x28;
    pub const CR2: usize = 0x2c;
    pub const STATUSR: usize = 0x40;
    pub const GBPA: usize = 0x44;
    pub const AGBPA: usize = 0x48;
    pub const IRQ_CTRL: usize = 0x50;
    pub const IRQ_CTRLACK: usize = 0x54;
    pub const GERROR: usize = 0x60;
    pub const GERRORN: usize = 0x64;
    pub const GERROR_IRQ_CFG0: usize = 0x68;
    pub const GERROR_IRQ_CFG1: usize = 0x70;
    pub const GERROR_IRQ_CFG2: usize = 0x74;
    pub const STRTAB_BASE: usize = 0x80;
    pub const STRTAB_BASE_CFG: usize = 0x88;
    pub const CMDQ_BASE: usize = 0x90;
    pub const CMDQ_PROD: usize = 0x98;
    pub const CMDQ_CONS: usize = 0x9c;
    pub const EVENTQ_BASE: usize = 0xa0;
    pub const EVENTQ_IRQ_CFG0: usize = 0xb0;
    pub const EVENTQ_IRQ_CFG1: usize = 0xb8;
    pub const EVENTQ_IRQ_CFG2: usize = 0xbc;
    pub const PRIQ_BASE: usize = 0xc0;
    /// Offset of register page 1.
    pub const PAGE1: usize = 0x10000;
    pub const EVENTQ_PROD: usize = PAGE1 + 0xa8;
    pub const EVENTQ_CONS: usize = PAGE1 + 0xac;
    pub const PRIQ_PROD: usize = PAGE1 + 0xc8;
    pub const PRIQ_CONS: usize = PAGE1 + 0xcc;
}

/// SMMU_IDR0 fields (6.3.1).
pub mod idr0 {
    pub const S2P: u32 = 1 << 0;
    pub const S1P: u32 = 1 << 1;
    /// TTF[3:2] = 0b10: AArch64 tables only.
    pub const TTF_AA64: u32 = 0b10 << 2;
    pub const COHACC: u32 = 1 << 4;
    pub const ASID16: u32 = 1 << 12;
    pub const MSI: u32 = 1 << 13;
    pub const VMID16: u32 = 1 << 18;
    pub const CD2L: u32 = 1 << 19;
    /// TTENDIAN[22:21] = 0b10: little-endian only.
    pub const TTENDIAN_LE: u32 = 0b10 << 21;
    /// STALL_MODEL[25:24] = 0b01: stall not supported.
    pub const STALL_MODEL_NONE: u32 = 0b01 << 24;
    /// TERM_MODEL: terminated transactions always abort (CD.A must be 1).
    pub const TERM_MODEL: u32 = 1 << 26;
    /// ST_LEVEL[28:27] = 0b01: 2-level Stream table supported.
    pub const ST_LEVEL_2LVL: u32 = 0b01 << 27;
}

/// SMMU_IDR3 fields (6.3.4).
pub mod idr3 {
    pub const HAD: u32 = 1 << 2;
    pub const RIL: u32 = 1 << 10;
    /// BBML[12:11] = 0b10: break-before-make level 2.
    pub const BBML2: u32 = 0b10 << 11;
}

/// SMMU_IDR5 fields (6.3.6).
pub mod idr5 {
    pub const GRAN4K: u32 = 1 << 4;
    pub const GRAN16K: u32 = 1 << 5;
    pub const GRAN64K: u32 = 1 << 6;
}

/// SMMU_CR0 fields (6.3.9).
pub mod cr0 {
    pub const SMMUEN: u32 = 1 << 0;
    pub const PRIQEN: u32 = 1 << 1;
    pub const EVENTQEN: u32 = 1 << 2;
    pub const CMDQEN: u32 = 1 << 3;
    pub const ATSCHK: u32 = 1 << 4;
    /// All defined bits (SMMUEN, PRIQEN, EVENTQEN, CMDQEN, ATSCHK, VMW[8:6]).
    pub const DEFINED: u32 = 0x1df;
}

/// SMMU_CR2 fields (6.3.12).
pub mod cr2 {
    pub const RECINVSID: u32 = 1 << 1;
}

/// SMMU_GBPA fields (6.3.14).
pub mod gbpa {
    pub const ABORT: u32 = 1 << 20;
    pub const UPDATE: u32 = 1 << 31;
    /// Reset value: SHCFG = 0b01 (use incoming), everything else 0 (as QEMU).
    pub const RESET: u32 = 0b01 << 12;
}

/// SMMU_IRQ_CTRL fields (6.3.16).
pub mod irq_ctrl {
    pub const GERROR_IRQEN: u32 = 1 << 0;
    pub const PRIQ_IRQEN: u32 = 1 << 1;
    pub const EVENTQ_IRQEN: u32 = 1 << 2;
}

/// SMMU_GERROR fields (6.3.18).
pub mod gerror {
    pub const CMDQ_ERR: u32 = 1 << 0;
    pub const EVENTQ_ABT_ERR: u32 = 1 << 2;
    pub const PRIQ_ABT_ERR: u32 = 1 << 3;
    pub const MSI_CMDQ_ABT_ERR: u32 = 1 << 4;
    pub const MSI_EVENTQ_ABT_ERR: u32 = 1 << 5;
    pub const MSI_PRIQ_ABT_ERR: u32 = 1 << 6;
    pub const MSI_GERROR_ABT_ERR: u32 = 1 << 7;
    pub const SFM_ERR: u32 = 1 << 8;
    pub const CMDQP_ERR: u32 = 1 << 9;
}

/// Queue base/pointer layout (6.3.25-6.3.31): BASE = {RA/WA[62], ADDR[51:5], LOG2SIZE[4:0]},
/// PROD/CONS = {index[log2size-1:0], wrap[log2size]}, CMDQ_CONS.ERR[30:24],
/// EVENTQ_PROD.OVFLG[31], EVENTQ_CONS.OVACKFLG[31].
pub mod queue {
    pub const ADDR_MASK: u64 = ((1 << 52) - 1) & !0x1f;
    pub const LOG2SIZE_MASK: u64 = 0x1f;
    pub const CONS_ERR_SHIFT: u32 = 24;
    pub const CONS_ERR_MASK: u32 = 0x7f << CONS_ERR_SHIFT;
    pub const OVFLG: u32 = 1 << 31;
}

/// STRTAB_BASE / STRTAB_BASE_CFG (6.3.23, 6.3.24).
pub mod strtab {
    /// STRTAB_BASE.ADDR[51:6].
    pub const ADDR_MASK: u64 = ((1 << 52) - 1) & !0x3f;
    /// STRTAB_BASE_CFG.FMT[17:16] = 0b01: 2-level.
    pub const FMT_2LVL: u64 = 1;
}

/// Command opcodes (chapter 4).
pub mod op {
    pub const PREFETCH_CONFIG: u8 = 0x01;
    pub const PREFETCH_ADDR: u8 = 0x02;
    pub const CFGI_STE: u8 = 0x03;
    /// CFGI_STE_RANGE; with Range == 31 this is CFGI_ALL (4.3.6).
    pub const CFGI_STE_RANGE: u8 = 0x04;
    pub const CFGI_CD: u8 = 0x05;
    pub const CFGI_CD_ALL: u8 = 0x06;
    pub const TLBI_NH_ALL: u8 = 0x10;
    pub const TLBI_NH_ASID: u8 = 0x11;
    pub const TLBI_NH_VA: u8 = 0x12;
    pub const TLBI_NH_VAA: u8 = 0x13;
    pub const TLBI_EL3_ALL: u8 = 0x18;
    pub const TLBI_EL3_VA: u8 = 0x1a;
    pub const TLBI_EL2_ALL: u8 = 0x20;
    pub const TLBI_EL2_ASID: u8 = 0x21;
    pub const TLBI_EL2_VA: u8 = 0x22;
    pub const TLBI_EL2_VAA: u8 = 0x23;
    pub const TLBI_S12_VMALL: u8 = 0x28;
    pub const TLBI_S2_IPA: u8 = 0x2a;
    pub const TLBI_NSNH_ALL: u8 = 0x30;
    pub const ATC_INV: u8 = 0x40;
    pub const PRI_RESP: u8 = 0x41;
    pub const RESUME: u8 = 0x44;
    pub const STALL_TERM: u8 = 0x45;
    pub const CMD_SYNC: u8 = 0x46;
}

/// CMDQ_CONS.ERR codes (4.7.3).
pub mod cerror {
    pub const NONE: u8 = 0;
    pub const ILL: u8 = 1;
    pub const ABT: u8 = 2;
    pub const ATC_INV_SYNC: u8 = 3;
}

/// Event record type numbers (7.3).
pub mod event_id {
    pub const F_UUT: u8 = 0x01;
    pub const C_BAD_STREAMID: u8 = 0x02;
    pub const F_STE_FETCH: u8 = 0x03;
    pub const C_BAD_STE: u8 = 0x04;
    pub const F_BAD_ATS_TREQ: u8 = 0x05;
    pub const F_STREAM_DISABLED: u8 = 0x06;
    pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
    pub const C_BAD_SUBSTREAMID: u8 = 0x08;
    pub const F_CD_FETCH: u8 = 0x09;
    pub const C_BAD_CD: u8 = 0x0a;
    pub const F_WALK_EABT: u8 = 0x0b;
    pub const F_TRANSLATION: u8 = 0x10;
    pub const F_ADDR_SIZE: u8 = 0x11;
    pub const F_ACCESS: u8 = 0x12;
    pub const F_PERMISSION: u8 = 0x13;
    pub const F_TLB_CONFLICT: u8 = 0x20;
    pub const F_CFG_CONFLICT: u8 = 0x21;
    pub const E_PAGE_REQUEST: u8 = 0x24;
}

/// Event record CLASS values (7.3, common fields).
pub mod class {
    pub const CD: u8 = 0b00;
    pub const TT: u8 = 0b01;
    pub const IN: u8 = 0b10;
}

/// Maps an address-size encoding (IDR5.OAS, CD.IPS) to a number of bits (6.3.6, 5.4).
pub const fn pa_bits(enc: u64) -> u32 {
    match enc {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}
