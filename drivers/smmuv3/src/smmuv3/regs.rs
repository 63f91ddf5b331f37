// SPDX-License-Identifier: GPL-2.0
//! SMMUv3 programming-interface registers (IHI0070 chapter 6), declared once with offsets.
//!
//! Only the Non-secure registers the driver uses are declared. Page 1 registers (EVTQ and PRIQ
//! PROD/CONS) carry their absolute offset (`PAGE1 + x`), because [`super::dma::Mmio`] takes
//! offsets from the base of page 0.

/// Offset of register page 1 from page 0 (IHI0070 6.1: the SMMU has two 64KB pages).
pub const PAGE1: usize = 0x1_0000;

register! {
    /// SMMU_IDR0: features (stage support, table formats, ID sizes, coherency). Probed once.
    pub struct Idr0: u32 @ 0x0 {
        /// S2P: stage 2 translation supported.
        S2P @ [0:0] => s2p, set_s2p: bool;
        /// S1P: stage 1 translation supported.
        S1P @ [1:1] => s1p, set_s1p: bool;
        /// TTF: translation table formats (2 = AArch64, 3 = AArch32 and AArch64).
        TTF @ [3:2] => ttf, set_ttf: u8;
        /// COHACC: coherent access to tables and queues.
        COHACC @ [4:4] => cohacc, set_cohacc: bool;
        /// BTM: broadcast TLB maintenance.
        BTM @ [5:5] => btm, set_btm: bool;
        /// HTTU: hardware access flag (1) and dirty state (2) update.
        HTTU @ [7:6] => httu, set_httu: u8;
        /// HYP: EL2 StreamWorld supported.
        HYP @ [9:9] => hyp, set_hyp: bool;
        /// ATS: PCIe ATS supported.
        ATS @ [10:10] => ats, set_ats: bool;
        /// ASID16: 16-bit ASIDs (else 8).
        ASID16 @ [12:12] => asid16, set_asid16: bool;
        /// MSI: message-signalled interrupts supported.
        MSI @ [13:13] => msi, set_msi: bool;
        /// SEV: the SMMU signals WFE wake-up events.
        SEV @ [14:14] => sev, set_sev: bool;
        /// ATOS: address translation operations supported.
        ATOS @ [15:15] => atos, set_atos: bool;
        /// PRI: page request interface supported.
        PRI @ [16:16] => pri, set_pri: bool;
        /// VMID16: 16-bit VMIDs (else 8).
        VMID16 @ [18:18] => vmid16, set_vmid16: bool;
        /// CD2L: 2-level context-descriptor tables supported.
        CD2L @ [19:19] => cd2l, set_cd2l: bool;
        /// TTENDIAN: table endianness (0 mixed, 2 little, 3 big).
        TTENDIAN @ [22:21] => ttendian, set_ttendian: u8;
        /// STALL_MODEL: 0 stall and terminate, 1 terminate only, 2 stall forced.
        STALL_MODEL @ [25:24] => stall_model, set_stall_model: u8;
        /// TERM_MODEL: terminated transactions may not be aborted (RAZ/WI) if 1.
        TERM_MODEL @ [26:26] => term_model, set_term_model: bool;
        /// ST_LEVEL: stream table levels (0 linear, 1 linear and 2-level).
        ST_LEVEL @ [28:27] => st_level, set_st_level: u8;
    }
}

register! {
    /// SMMU_IDR1: table and queue sizes, StreamID and SubstreamID widths.
    pub struct Idr1: u32 @ 0x4 {
        /// SIDSIZE: StreamID bits.
        SIDSIZE @ [5:0] => sidsize, set_sidsize: u8;
        /// SSIDSIZE: SubstreamID bits (0: no substreams).
        SSIDSIZE @ [10:6] => ssidsize, set_ssidsize: u8;
        /// PRIQS: log2 of the maximum PRI queue entries.
        PRIQS @ [15:11] => priqs, set_priqs: u8;
        /// EVENTQS: log2 of the maximum event queue entries.
        EVENTQS @ [20:16] => eventqs, set_eventqs: u8;
        /// CMDQS: log2 of the maximum command queue entries.
        CMDQS @ [25:21] => cmdqs, set_cmdqs: u8;
        /// ATTR_PERMS_OVR: STE permission overrides supported.
        ATTR_PERMS_OVR @ [26:26] => attr_perms_ovr, set_attr_perms_ovr: bool;
        /// ATTR_TYPES_OVR: STE memory-type overrides (MTCFG/SHCFG/ALLOCCFG) supported.
        ATTR_TYPES_OVR @ [27:27] => attr_types_ovr, set_attr_types_ovr: bool;
        /// REL: base addresses are relative (embedded implementation).
        REL @ [28:28] => rel, set_rel: bool;
        /// QUEUES_PRESET: queue bases are fixed (embedded implementation).
        QUEUES_PRESET @ [29:29] => queues_preset, set_queues_preset: bool;
        /// TABLES_PRESET: table bases are fixed (embedded implementation).
        TABLES_PRESET @ [30:30] => tables_preset, set_tables_preset: bool;
        /// ECMDQ: enhanced command queues present.
        ECMDQ @ [31:31] => ecmdq, set_ecmdq: bool;
    }
}

register! {
    /// SMMU_IDR2: VATOS page base (unused by the driver, probed for completeness).
    pub struct Idr2: u32 @ 0x8 {
        /// BA_VATOS: base of the VATOS page in 64KB units.
        BA_VATOS @ [9:0] => ba_vatos, set_ba_vatos: u16;
    }
}

register! {
    /// SMMU_IDR3: extended features (range invalidation, hardware attribute updates).
    pub struct Idr3: u32 @ 0xc {
        /// HAD: hierarchical attribute disables supported.
        HAD @ [2:2] => had, set_had: bool;
        /// PBHA: page-based hardware attributes.
        PBHA @ [3:3] => pbha, set_pbha: bool;
        /// XNX: EL0/EL1 execute-never distinction at stage 2.
        XNX @ [4:4] => xnx, set_xnx: bool;
        /// PPS: PRI responses carry a PASID.
        PPS @ [5:5] => pps, set_pps: bool;
        /// MPAM supported.
        MPAM @ [7:7] => mpam, set_mpam: bool;
        /// FWB: stage 2 forced write-back.
        FWB @ [8:8] => fwb, set_fwb: bool;
        /// STT: small translation tables.
        STT @ [9:9] => stt, set_stt: bool;
        /// RIL: range invalidation (TLBI NUM/SCALE) supported.
        RIL @ [10:10] => ril, set_ril: bool;
        /// BBML: break-before-make level.
        BBML @ [12:11] => bbml, set_bbml: u8;
    }
}

register! {
    /// SMMU_IDR4: implementation defined.
    pub struct Idr4: u32 @ 0x10 {}
}

register! {
    /// SMMU_IDR5: output address size, granules, stall limit.
    pub struct Idr5: u32 @ 0x14 {
        /// OAS: output address size (0 32b, 1 36b, 2 40b, 3 42b, 4 44b, 5 48b, 6 52b).
        OAS @ [2:0] => oas, set_oas: u8;
        /// GRAN4K: 4KB translation granule supported.
        GRAN4K @ [4:4] => gran4k, set_gran4k: bool;
        /// GRAN16K: 16KB translation granule supported.
        GRAN16K @ [5:5] => gran16k, set_gran16k: bool;
        /// GRAN64K: 64KB translation granule supported.
        GRAN64K @ [6:6] => gran64k, set_gran64k: bool;
        /// VAX: virtual address extension (1: 52-bit VAs).
        VAX @ [11:10] => vax, set_vax: u8;
        /// STALL_MAX: maximum number of outstanding stalled transactions.
        STALL_MAX @ [31:16] => stall_max, set_stall_max: u16;
    }
}

register! {
    /// SMMU_IIDR: implementer and product identification (for errata).
    pub struct Iidr: u32 @ 0x18 {
        /// Implementer JEP106 code.
        IMPLEMENTER @ [11:0] => implementer, set_implementer: u16;
        /// Revision.
        REVISION @ [15:12] => revision, set_revision: u8;
        /// Variant.
        VARIANT @ [19:16] => variant, set_variant: u8;
        /// Product ID.
        PRODUCTID @ [31:20] => productid, set_productid: u16;
    }
}

register! {
    /// SMMU_AIDR: architecture revision (SMMUv3.x).
    pub struct Aidr: u32 @ 0x1c {
        /// ArchMinorRev: x in SMMUv3.x.
        ARCH_MINOR_REV @ [3:0] => arch_minor_rev, set_arch_minor_rev: u8;
        /// ArchMajorRev: 0 for SMMUv3.
        ARCH_MAJOR_REV @ [7:4] => arch_major_rev, set_arch_major_rev: u8;
    }
}

register! {
    /// SMMU_CR0: enables of the SMMU and its queues. Every write must be acknowledged in CR0ACK
    /// before the next one.
    pub struct Cr0: u32 @ 0x20 {
        /// SMMUEN: translation enabled (else GBPA applies).
        SMMUEN @ [0:0] => smmuen, set_smmuen: bool;
        /// PRIQEN: PRI queue enabled.
        PRIQEN @ [1:1] => priqen, set_priqen: bool;
        /// EVENTQEN: event queue enabled.
        EVENTQEN @ [2:2] => eventqen, set_eventqen: bool;
        /// CMDQEN: command queue processing enabled.
        CMDQEN @ [3:3] => cmdqen, set_cmdqen: bool;
        /// ATSCHK: ATS translated transactions are checked against the STE.
        ATSCHK @ [4:4] => atschk, set_atschk: bool;
        /// VMW: VMID wildcard for TLB invalidation.
        VMW @ [8:6] => vmw, set_vmw: u8;
    }
}

register! {
    /// SMMU_CR0ACK: mirrors CR0 once the SMMU has applied a CR0 write.
    pub struct Cr0Ack: u32 @ 0x24 {
        /// SMMUEN acknowledged.
        SMMUEN @ [0:0] => smmuen, set_smmuen: bool;
        /// PRIQEN acknowledged.
        PRIQEN @ [1:1] => priqen, set_priqen: bool;
        /// EVENTQEN acknowledged.
        EVENTQEN @ [2:2] => eventqen, set_eventqen: bool;
        /// CMDQEN acknowledged.
        CMDQEN @ [3:3] => cmdqen, set_cmdqen: bool;
        /// ATSCHK acknowledged.
        ATSCHK @ [4:4] => atschk, set_atschk: bool;
        /// VMW acknowledged.
        VMW @ [8:6] => vmw, set_vmw: u8;
    }
}

register! {
    /// SMMU_CR1: cacheability and shareability of table walks and queue accesses.
    pub struct Cr1: u32 @ 0x28 {
        /// QUEUE_IC: queue inner cacheability (0 NC, 1 WB, 2 WT).
        QUEUE_IC @ [1:0] => queue_ic, set_queue_ic: u8;
        /// QUEUE_OC: queue outer cacheability.
        QUEUE_OC @ [3:2] => queue_oc, set_queue_oc: u8;
        /// QUEUE_SH: queue shareability (0 NSH, 2 OSH, 3 ISH).
        QUEUE_SH @ [5:4] => queue_sh, set_queue_sh: u8;
        /// TABLE_IC: table inner cacheability.
        TABLE_IC @ [7:6] => table_ic, set_table_ic: u8;
        /// TABLE_OC: table outer cacheability.
        TABLE_OC @ [9:8] => table_oc, set_table_oc: u8;
        /// TABLE_SH: table shareability.
        TABLE_SH @ [11:10] => table_sh, set_table_sh: u8;
    }
}

register! {
    /// SMMU_CR2: miscellaneous controls.
    pub struct Cr2: u32 @ 0x2c {
        /// E2H: EL2 StreamWorld uses the E2H regime.
        E2H @ [0:0] => e2h, set_e2h: bool;
        /// RECINVSID: record C_BAD_STREAMID for out-of-range StreamIDs.
        RECINVSID @ [1:1] => recinvsid, set_recinvsid: bool;
        /// PTM: private TLB maintenance (ignore broadcast TLBI).
        PTM @ [2:2] => ptm, set_ptm: bool;
    }
}

register! {
    /// SMMU_GBPA: what happens to transactions while SMMUEN == 0.
    pub struct Gbpa: u32 @ 0x44 {
        /// MemAttr override.
        MEMATTR @ [3:0] => memattr, set_memattr: u8;
        /// MTCFG: use MemAttr.
        MTCFG @ [4:4] => mtcfg, set_mtcfg: bool;
        /// ALLOCCFG override.
        ALLOCCFG @ [11:8] => alloccfg, set_alloccfg: u8;
        /// SHCFG override.
        SHCFG @ [13:12] => shcfg, set_shcfg: u8;
        /// PRIVCFG override.
        PRIVCFG @ [17:16] => privcfg, set_privcfg: u8;
        /// INSTCFG override.
        INSTCFG @ [19:18] => instcfg, set_instcfg: u8;
        /// ABORT: abort incoming transactions instead of bypassing them.
        ABORT @ [20:20] => abort, set_abort: bool;
        /// Update: written 1 to request an update, reads 1 until it completes.
        UPDATE @ [31:31] => update, set_update: bool;
    }
}

register! {
    /// SMMU_IRQ_CTRL: interrupt enables (acknowledged in IRQ_CTRLACK).
    pub struct IrqCtrl: u32 @ 0x50 {
        /// GERROR_IRQEN.
        GERROR_IRQEN @ [0:0] => gerror_irqen, set_gerror_irqen: bool;
        /// PRIQ_IRQEN.
        PRIQ_IRQEN @ [1:1] => priq_irqen, set_priq_irqen: bool;
        /// EVENTQ_IRQEN.
        EVENTQ_IRQEN @ [2:2] => eventq_irqen, set_eventq_irqen: bool;
    }
}

register! {
    /// SMMU_IRQ_CTRLACK: mirrors IRQ_CTRL once applied.
    pub struct IrqCtrlAck: u32 @ 0x54 {
        /// GERROR_IRQEN acknowledged.
        GERROR_IRQEN @ [0:0] => gerror_irqen, set_gerror_irqen: bool;
        /// PRIQ_IRQEN acknowledged.
        PRIQ_IRQEN @ [1:1] => priq_irqen, set_priq_irqen: bool;
        /// EVENTQ_IRQEN acknowledged.
        EVENTQ_IRQEN @ [2:2] => eventq_irqen, set_eventq_irqen: bool;
    }
}

register! {
    /// SMMU_GERROR: global errors. A bit is active while it differs from GERRORN.
    pub struct Gerror: u32 @ 0x60 {
        /// CMDQ_ERR: the command queue stopped on an error (see CMDQ_CONS.ERR).
        CMDQ_ERR @ [0:0] => cmdq_err, set_cmdq_err: bool;
        /// EVENTQ_ABT_ERR: an event queue write aborted.
        EVENTQ_ABT_ERR @ [2:2] => eventq_abt_err, set_eventq_abt_err: bool;
        /// PRIQ_ABT_ERR: a PRI queue write aborted.
        PRIQ_ABT_ERR @ [3:3] => priq_abt_err, set_priq_abt_err: bool;
        /// MSI_CMDQ_ABT_ERR.
        MSI_CMDQ_ABT_ERR @ [4:4] => msi_cmdq_abt_err, set_msi_cmdq_abt_err: bool;
        /// MSI_EVENTQ_ABT_ERR.
        MSI_EVENTQ_ABT_ERR @ [5:5] => msi_eventq_abt_err, set_msi_eventq_abt_err: bool;
        /// MSI_PRIQ_ABT_ERR.
        MSI_PRIQ_ABT_ERR @ [6:6] => msi_priq_abt_err, set_msi_priq_abt_err: bool;
        /// MSI_GERROR_ABT_ERR.
        MSI_GERROR_ABT_ERR @ [7:7] => msi_gerror_abt_err, set_msi_gerror_abt_err: bool;
        /// SFM_ERR: the SMMU entered Service Failure Mode.
        SFM_ERR @ [8:8] => sfm_err, set_sfm_err: bool;
        /// CMDQP_ERR: an enhanced command queue error.
        CMDQP_ERR @ [9:9] => cmdqp_err, set_cmdqp_err: bool;
    }
}

register! {
    /// SMMU_GERRORN: software acknowledges a GERROR bit by toggling the same bit here.
    pub struct Gerrorn: u32 @ 0x64 {
        /// CMDQ_ERR acknowledge.
        CMDQ_ERR @ [0:0] => cmdq_err, set_cmdq_err: bool;
        /// SFM_ERR acknowledge.
        SFM_ERR @ [8:8] => sfm_err, set_sfm_err: bool;
    }
}

register! {
    /// SMMU_GERROR_IRQ_CFG0: MSI address of the global error interrupt (0 disables the MSI).
    pub struct GerrorIrqCfg0: u64 @ 0x68 {
        /// ADDR\[51:2\].
        ADDR @ [51:2] => addr, set_addr: u64;
    }
}

register! {
    /// SMMU_STRTAB_BASE: physical address of the stream table.
    pub struct StrtabBase: u64 @ 0x80 {
        /// ADDR\[51:6\] (the table is aligned to its size, at least 64 bytes).
        ADDR @ [51:6] => addr, set_addr: u64;
        /// RA: read-allocate hint.
        RA @ [62:62] => ra, set_ra: bool;
    }
}

register! {
    /// SMMU_STRTAB_BASE_CFG: stream table format and size.
    pub struct StrtabBaseCfg: u32 @ 0x88 {
        /// LOG2SIZE: log2 of the number of StreamIDs covered.
        LOG2SIZE @ [5:0] => log2size, set_log2size: u8;
        /// SPLIT: StreamID bits resolved by the level-2 tables (6, 8 or 10).
        SPLIT @ [10:6] => split, set_split: u8;
        /// FMT: 0 linear, 1 2-level.
        FMT @ [17:16] => fmt, set_fmt: u8;
    }
}

register! {
    /// SMMU_CMDQ_BASE: command queue base and size.
    pub struct CmdqBase: u64 @ 0x90 {
        /// LOG2SIZE: log2 of the number of entries.
        LOG2SIZE @ [4:0] => log2size, set_log2size: u8;
        /// ADDR\[51:5\].
        ADDR @ [51:5] => addr, set_addr: u64;
        /// RA: read-allocate hint.
        RA @ [62:62] => ra, set_ra: bool;
    }
}

register! {
    /// SMMU_CMDQ_PROD: producer index with wrap bit at bit LOG2SIZE (written by software).
    pub struct CmdqProd: u32 @ 0x98 {
        /// WR: index and wrap bit (width depends on the queue size).
        WR @ [19:0] => wr, set_wr: u32;
    }
}

register! {
    /// SMMU_CMDQ_CONS: consumer index with wrap bit, plus the error reason.
    pub struct CmdqCons: u32 @ 0x9c {
        /// RD: index and wrap bit.
        RD @ [19:0] => rd, set_rd: u32;
        /// ERR: command error reason (valid while GERROR.CMDQ_ERR is active).
        ERR @ [30:24] => err, set_err: u8;
    }
}

register! {
    /// SMMU_EVENTQ_BASE: event queue base and size.
    pub struct EvtqBase: u64 @ 0xa0 {
        /// LOG2SIZE: log2 of the number of entries.
        LOG2SIZE @ [4:0] => log2size, set_log2size: u8;
        /// ADDR\[51:5\].
        ADDR @ [51:5] => addr, set_addr: u64;
        /// WA: write-allocate hint.
        WA @ [62:62] => wa, set_wa: bool;
    }
}

register! {
    /// SMMU_EVENTQ_PROD (page 1): producer index, wrap bit and overflow flag (written by HW).
    pub struct EvtqProd: u32 @ (PAGE1 + 0xa8) {
        /// WR: index and wrap bit.
        WR @ [19:0] => wr, set_wr: u32;
        /// OVFLG: toggled by the SMMU when events were lost.
        OVFLG @ [31:31] => ovflg, set_ovflg: bool;
    }
}

register! {
    /// SMMU_EVENTQ_CONS (page 1): consumer index and overflow acknowledge.
    pub struct EvtqCons: u32 @ (PAGE1 + 0xac) {
        /// RD: index and wrap bit.
        RD @ [19:0] => rd, set_rd: u32;
        /// OVACKFLG: set equal to PROD.OVFLG to acknowledge an overflow.
        OVACKFLG @ [31:31] => ovackflg, set_ovackflg: bool;
    }
}

register! {
    /// SMMU_EVENTQ_IRQ_CFG0: MSI address of the event queue interrupt (0 disables the MSI).
    pub struct EvtqIrqCfg0: u64 @ 0xb0 {
        /// ADDR\[51:2\].
        ADDR @ [51:2] => addr, set_addr: u64;
    }
}

/// Values of the CR1 cacheability fields (arm-smmu-v3.h: "CR1 cacheability fields don't quite
/// follow the usual TCR-style encoding").
pub mod cr1_cache {
    /// Non-cacheable.
    pub const NC: u8 = 0;
    /// Write-back.
    pub const WB: u8 = 1;
    /// Write-through.
    pub const WT: u8 = 2;
}

/// Shareability encodings used by CR1, STE S1CSH/SHCFG and CMD_SYNC.MSH.
pub mod sh {
    /// Non-shareable.
    pub const NSH: u8 = 0;
    /// Outer shareable.
    pub const OSH: u8 = 2;
    /// Inner shareable.
    pub const ISH: u8 = 3;
}

/// Memory attribute encodings (MSIAttr, MemAttr).
pub mod memattr {
    /// Device-nGnRE.
    pub const DEVICE_NGNRE: u8 = 0x1;
    /// Normal, inner and outer write-back cacheable.
    pub const OIWB: u8 = 0xf;
}
