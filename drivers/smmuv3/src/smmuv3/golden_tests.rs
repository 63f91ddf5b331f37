// SPDX-License-Identifier: GPL-2.0
//! Golden-value tests: every expected value is a literal taken from the Arm SMMUv3
//! architecture specification (IHI0070) field tables or from Linux 6.12's
//! `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h` / `arm-smmu-v3-test.c`, never computed by the
//! code under test. Composite values were worked out by hand from those definitions; the
//! comment next to each names its source.

use super::cd::{Cd, L1Cd, S1Config};
use super::cmd::{op, CmdEntry, Command, SyncCs, TlbiRange};
use super::event::{id, Event, EventRecord};
use super::regs::*;
use super::ste::{s1dss, s1fmt, CdTableRef, L1Std, MasterOptions, S2Config, Ste, SteFeatures};

#[test]
fn register_offsets() {
    // arm-smmu-v3.h ARM_SMMU_* offsets.
    assert_eq!(Idr0::OFFSET, 0x0);
    assert_eq!(Idr1::OFFSET, 0x4);
    assert_eq!(Idr3::OFFSET, 0xc);
    assert_eq!(Idr5::OFFSET, 0x14);
    assert_eq!(Iidr::OFFSET, 0x18);
    assert_eq!(Cr0::OFFSET, 0x20);
    assert_eq!(Cr0Ack::OFFSET, 0x24);
    assert_eq!(Cr1::OFFSET, 0x28);
    assert_eq!(Cr2::OFFSET, 0x2c);
    assert_eq!(Gbpa::OFFSET, 0x44);
    assert_eq!(IrqCtrl::OFFSET, 0x50);
    assert_eq!(IrqCtrlAck::OFFSET, 0x54);
    assert_eq!(Gerror::OFFSET, 0x60);
    assert_eq!(Gerrorn::OFFSET, 0x64);
    assert_eq!(GerrorIrqCfg0::OFFSET, 0x68);
    assert_eq!(StrtabBase::OFFSET, 0x80);
    assert_eq!(StrtabBaseCfg::OFFSET, 0x88);
    assert_eq!(CmdqBase::OFFSET, 0x90);
    assert_eq!(CmdqProd::OFFSET, 0x98);
    assert_eq!(CmdqCons::OFFSET, 0x9c);
    assert_eq!(EvtqBase::OFFSET, 0xa0);
    assert_eq!(EvtqIrqCfg0::OFFSET, 0xb0);
    // arm-smmu-v3.h: ARM_SMMU_EVTQ_PROD 0xa8 / _CONS 0xac are written through smmu->page1,
    // which is base + SZ_64K (IHI0070 6.1: page 1 at offset 0x10000).
    assert_eq!(EvtqProd::OFFSET, 0x100a8);
    assert_eq!(EvtqCons::OFFSET, 0x100ac);
    // IHI0070 6.3.4: SMMU_AIDR at 0x1c.
    assert_eq!(Aidr::OFFSET, 0x1c);
}

#[test]
fn idr_field_masks() {
    // arm-smmu-v3.h IDR0_*.
    assert_eq!(Idr0::ST_LEVEL.mask(), 0x1800_0000); // GENMASK(28, 27)
    assert_eq!(Idr0::STALL_MODEL.mask(), 0x0300_0000); // GENMASK(25, 24)
    assert_eq!(Idr0::TTENDIAN.mask(), 0x0060_0000); // GENMASK(22, 21)
    assert_eq!(Idr0::CD2L.mask(), 1 << 19);
    assert_eq!(Idr0::VMID16.mask(), 1 << 18);
    assert_eq!(Idr0::PRI.mask(), 1 << 16);
    assert_eq!(Idr0::SEV.mask(), 1 << 14);
    assert_eq!(Idr0::MSI.mask(), 1 << 13);
    assert_eq!(Idr0::ASID16.mask(), 1 << 12);
    assert_eq!(Idr0::ATS.mask(), 1 << 10);
    assert_eq!(Idr0::HYP.mask(), 1 << 9);
    assert_eq!(Idr0::HTTU.mask(), 0xc0); // GENMASK(7, 6)
    assert_eq!(Idr0::COHACC.mask(), 1 << 4);
    assert_eq!(Idr0::TTF.mask(), 0xc); // GENMASK(3, 2)
    assert_eq!(Idr0::S1P.mask(), 1 << 1);
    assert_eq!(Idr0::S2P.mask(), 1 << 0);
    // arm-smmu-v3.h IDR1_*.
    assert_eq!(Idr1::TABLES_PRESET.mask(), 1 << 30);
    assert_eq!(Idr1::QUEUES_PRESET.mask(), 1 << 29);
    assert_eq!(Idr1::REL.mask(), 1 << 28);
    assert_eq!(Idr1::ATTR_TYPES_OVR.mask(), 1 << 27);
    assert_eq!(Idr1::CMDQS.mask(), 0x03e0_0000); // GENMASK(25, 21)
    assert_eq!(Idr1::EVENTQS.mask(), 0x001f_0000); // GENMASK(20, 16)
    assert_eq!(Idr1::PRIQS.mask(), 0xf800); // GENMASK(15, 11)
    assert_eq!(Idr1::SSIDSIZE.mask(), 0x7c0); // GENMASK(10, 6)
    assert_eq!(Idr1::SIDSIZE.mask(), 0x3f); // GENMASK(5, 0)

    // arm-smmu-v3.h IDR3_RIL (1 << 10).
    assert_eq!(Idr3::RIL.mask(), 0x400);
    // arm-smmu-v3.h IDR5_*.
    assert_eq!(Idr5::STALL_MAX.mask(), 0xffff_0000); // GENMASK(31, 16)
    assert_eq!(Idr5::GRAN64K.mask(), 1 << 6);
    assert_eq!(Idr5::GRAN16K.mask(), 1 << 5);
    assert_eq!(Idr5::GRAN4K.mask(), 1 << 4);
    assert_eq!(Idr5::VAX.mask(), 0xc00); // GENMASK(11, 10)
    assert_eq!(Idr5::OAS.mask(), 0x7); // GENMASK(2, 0)

    // arm-smmu-v3.h IIDR_*.
    assert_eq!(Iidr::PRODUCTID.mask(), 0xfff0_0000);
    assert_eq!(Iidr::IMPLEMENTER.mask(), 0xfff);
}

#[test]
fn control_register_fields() {
    // arm-smmu-v3.h CR0_*.
    assert_eq!(Cr0::ATSCHK.mask(), 1 << 4);
    assert_eq!(Cr0::CMDQEN.mask(), 1 << 3);
    assert_eq!(Cr0::EVENTQEN.mask(), 1 << 2);
    assert_eq!(Cr0::PRIQEN.mask(), 1 << 1);
    assert_eq!(Cr0::SMMUEN.mask(), 1 << 0);
    // arm-smmu-v3.h CR1_*: TABLE_SH GENMASK(11,10), TABLE_OC (9,8), TABLE_IC (7,6),
    // QUEUE_SH (5,4), QUEUE_OC (3,2), QUEUE_IC (1,0).
    assert_eq!(Cr1::TABLE_SH.mask(), 0xc00);
    assert_eq!(Cr1::TABLE_OC.mask(), 0x300);
    assert_eq!(Cr1::TABLE_IC.mask(), 0xc0);
    assert_eq!(Cr1::QUEUE_SH.mask(), 0x30);
    assert_eq!(Cr1::QUEUE_OC.mask(), 0xc);
    assert_eq!(Cr1::QUEUE_IC.mask(), 0x3);
    // arm_smmu_device_reset(): CR1 = ISH/WB/WB for tables and queues. ARM_SMMU_SH_ISH = 3,
    // CR1_CACHE_WB = 1: 3<<10 | 1<<8 | 1<<6 | 3<<4 | 1<<2 | 1 = 0xd75.
    let cr1 = Cr1(0)
        .set_table_sh(sh::ISH)
        .set_table_oc(cr1_cache::WB)
        .set_table_ic(cr1_cache::WB)
        .set_queue_sh(sh::ISH)
        .set_queue_oc(cr1_cache::WB)
        .set_queue_ic(cr1_cache::WB);
    assert_eq!(cr1.0, 0xd75);
    // arm-smmu-v3.h CR2_PTM (1 << 2), CR2_RECINVSID (1 << 1), CR2_E2H (1 << 0).
    assert_eq!(Cr2(0).set_ptm(true).set_recinvsid(true).0, 0x6);
    assert_eq!(Cr2(0).set_e2h(true).0, 0x1);
    // arm-smmu-v3.h GBPA_UPDATE (1 << 31), GBPA_ABORT (1 << 20).
    assert_eq!(Gbpa(0).set_update(true).set_abort(true).0, 0x8010_0000);
    // arm-smmu-v3.h IRQ_CTRL_EVTQ_IRQEN (1 << 2), PRIQ (1 << 1), GERROR (1 << 0).
    assert_eq!(
        IrqCtrl(0).set_eventq_irqen(true).set_gerror_irqen(true).0,
        0x5
    );
    assert_eq!(IrqCtrl::PRIQ_IRQEN.mask(), 0x2);
    // arm-smmu-v3.h GERROR_*; GERROR_ERR_MASK 0x1fd is the union of the error bits.
    let all = Gerror(0)
        .set_sfm_err(true)
        .set_msi_gerror_abt_err(true)
        .set_msi_priq_abt_err(true)
        .set_msi_eventq_abt_err(true)
        .set_msi_cmdq_abt_err(true)
        .set_priq_abt_err(true)
        .set_eventq_abt_err(true)
        .set_cmdq_err(true);
    assert_eq!(all.0, 0x1fd);
    // arm-smmu-v3.h STRTAB_BASE_RA (1UL << 62), STRTAB_BASE_ADDR_MASK GENMASK_ULL(51, 6).
    assert_eq!(StrtabBase::RA.mask(), 1 << 62);
    assert_eq!(StrtabBase::ADDR.mask(), 0x000f_ffff_ffff_ffc0);
    // arm-smmu-v3.h STRTAB_BASE_CFG_FMT GENMASK(17,16), _SPLIT GENMASK(10,6),
    // _LOG2SIZE GENMASK(5,0); FMT_2LVL = 1.
    assert_eq!(StrtabBaseCfg::FMT.mask(), 0x3_0000);
    assert_eq!(StrtabBaseCfg::SPLIT.mask(), 0x7c0);
    assert_eq!(StrtabBaseCfg::LOG2SIZE.mask(), 0x3f);
    // arm_smmu_write_strtab(): 2-level, SPLIT 8, LOG2SIZE 16: 1<<16 | 8<<6 | 16 = 0x10210.
    assert_eq!(
        StrtabBaseCfg(0).set_fmt(1).set_split(8).set_log2size(16).0,
        0x1_0210
    );
    // arm-smmu-v3.h Q_BASE_RWA (1UL << 62), Q_BASE_ADDR_MASK GENMASK_ULL(51, 5),
    // Q_BASE_LOG2SIZE GENMASK(4, 0).
    assert_eq!(CmdqBase::RA.mask(), 1 << 62);
    assert_eq!(CmdqBase::ADDR.mask(), 0x000f_ffff_ffff_ffe0);
    assert_eq!(CmdqBase::LOG2SIZE.mask(), 0x1f);
    assert_eq!(EvtqBase::WA.mask(), 1 << 62);
    assert_eq!(EvtqBase::ADDR.mask(), 0x000f_ffff_ffff_ffe0);
    // arm-smmu-v3.h CMDQ_CONS_ERR GENMASK(30, 24).
    assert_eq!(CmdqCons::ERR.mask(), 0x7f00_0000);
    // arm-smmu-v3.h Q_OVERFLOW_FLAG (1U << 31) for EVTQ PROD/CONS.
    assert_eq!(EvtqProd::OVFLG.mask(), 0x8000_0000);
    assert_eq!(EvtqCons::OVACKFLG.mask(), 0x8000_0000);
}

#[test]
fn ste_field_masks() {
    // arm-smmu-v3.h STRTAB_STE_0_*.
    assert_eq!(Ste::V.mask(), 0x1);
    assert_eq!(Ste::CONFIG.mask(), 0xe); // GENMASK_ULL(3, 1)
    assert_eq!(Ste::S1FMT.mask(), 0x30); // GENMASK_ULL(5, 4)
    assert_eq!(Ste::S1CONTEXTPTR.mask(), 0x000f_ffff_ffff_ffc0); // GENMASK_ULL(51, 6)
    assert_eq!(Ste::S1CDMAX.mask(), 0xf800_0000_0000_0000); // GENMASK_ULL(63, 59)

    // arm-smmu-v3.h STRTAB_STE_1_*.
    assert_eq!(Ste::S1DSS.mask(), 0x3);
    assert_eq!(Ste::S1CIR.mask(), 0xc);
    assert_eq!(Ste::S1COR.mask(), 0x30);
    assert_eq!(Ste::S1CSH.mask(), 0xc0);
    assert_eq!(Ste::S1STALLD.mask(), 1 << 27);
    assert_eq!(Ste::EATS.mask(), 0x3000_0000); // GENMASK_ULL(29, 28)
    assert_eq!(Ste::STRW.mask(), 0xc000_0000); // GENMASK_ULL(31, 30)
    assert_eq!(Ste::SHCFG.mask(), 0x3000_0000_0000); // GENMASK_ULL(45, 44)

    // IHI0070 5.2 STE word 1 bits [99:96] MemAttr, [100] MTCFG, [104:101] ALLOCCFG.
    assert_eq!(Ste::MEMATTR.mask(), 0xf_0000_0000);
    assert_eq!(Ste::MTCFG.mask(), 0x10_0000_0000);
    assert_eq!(Ste::ALLOCCFG.mask(), 0x1e0_0000_0000);
    // arm-smmu-v3.h STRTAB_STE_2_*; the VTCR fields sit at STRTAB_STE_2_VTCR GENMASK(50, 32).
    assert_eq!(Ste::S2VMID.mask(), 0xffff);
    assert_eq!(Ste::S2T0SZ.mask(), 0x3f_0000_0000);
    assert_eq!(Ste::S2SL0.mask(), 0xc0_0000_0000);
    assert_eq!(Ste::S2IR0.mask(), 0x300_0000_0000);
    assert_eq!(Ste::S2OR0.mask(), 0xc00_0000_0000);
    assert_eq!(Ste::S2SH0.mask(), 0x3000_0000_0000);
    assert_eq!(Ste::S2TG.mask(), 0xc000_0000_0000);
    assert_eq!(Ste::S2PS.mask(), 0x7_0000_0000_0000);
    assert_eq!(Ste::S2AA64.mask(), 1 << 51);
    assert_eq!(Ste::S2ENDI.mask(), 1 << 52);
    assert_eq!(Ste::S2PTW.mask(), 1 << 54);
    assert_eq!(Ste::S2S.mask(), 1 << 57);
    assert_eq!(Ste::S2R.mask(), 1 << 58);
    // arm-smmu-v3.h STRTAB_STE_3_S2TTB_MASK GENMASK_ULL(51, 4).
    assert_eq!(Ste::S2TTB.mask(), 0x000f_ffff_ffff_fff0);
    // arm-smmu-v3.h STRTAB_L1_DESC_SPAN GENMASK_ULL(4, 0), _L2PTR_MASK GENMASK_ULL(51, 6).
    assert_eq!(L1Std::SPAN.mask(), 0x1f);
    assert_eq!(L1Std::L2PTR.mask(), 0x000f_ffff_ffff_ffc0);
    // arm_smmu_write_strtab_l1_desc(): Span = STRTAB_SPLIT + 1 = 9, L2Ptr in place.
    assert_eq!(L1Std::new(0x8765_4000, 8).0[0], 0x8765_4009);
}

#[test]
fn ste_golden_entries() {
    // arm_smmu_make_abort_ste(): V | CFG_ABORT(0).
    assert_eq!(Ste::abort().0, [0x1, 0, 0, 0, 0, 0, 0, 0]);
    // arm_smmu_make_bypass_ste() with ARM_SMMU_FEAT_ATTR_TYPES_OVR (as in the KUnit suite):
    // V | CFG_BYPASS(4) << 1 = 0x9; SHCFG_INCOMING(1) << 44.
    let feat = SteFeatures {
        attr_types_ovr: true,
        stalls: true,
        e2h: false,
    };
    assert_eq!(
        Ste::bypass(&feat).0,
        [0x9, 0x1000_0000_0000, 0, 0, 0, 0, 0, 0]
    );
    let no_ovr = SteFeatures {
        attr_types_ovr: false,
        ..feat
    };
    assert_eq!(Ste::bypass(&no_ovr).0, [0x9, 0, 0, 0, 0, 0, 0, 0]);

    // arm-smmu-v3-test.c arm_smmu_test_make_cdtable_ste(): cdtab_dma 0xF0F0F0F0F0F0,
    // s1cdmax 0xFF (FIELD_PREP truncates to 0x1f), s1fmt 64K_L2 (2), ATS, features STALLS |
    // ATTR_TYPES_OVR, not stall-enabled. Word 0: V | 5<<1 | 2<<4 | (dma & GENMASK(51,6)) |
    // 0x1f<<59 = 0xf800f0f0f0f0f0eb. Word 1 (S1DSS_SSID0): 2 | WBRA<<2 | WBRA<<4 | ISH<<6 |
    // S1STALLD (1<<27) | EATS_TRANS<<28 = 0x180000d6.
    let master = MasterOptions {
        ats: true,
        stall: false,
    };
    let cdref = CdTableRef {
        dma: 0xF0F0_F0F0_F0F0,
        s1fmt: s1fmt::L2_64K,
        s1cdmax: 0xff,
    };
    let ste = Ste::s1_cdtable(&feat, &master, &cdref, s1dss::SSID0);
    assert_eq!(
        ste.0,
        [0xf800_f0f0_f0f0_f0eb, 0x1800_00d6, 0, 0, 0, 0, 0, 0]
    );
    // S1DSS_BYPASS additionally sets SHCFG_INCOMING: 0x1000180000d5.
    let ste = Ste::s1_cdtable(&feat, &master, &cdref, s1dss::BYPASS);
    assert_eq!(ste.0[1], 0x1000_1800_00d5);

    // arm-smmu-v3-test.c arm_smmu_test_make_s2_ste(): vttbr 0xdaedbeefdeadbeef, ps 1, tg 2,
    // sh 3, orgn 1, irgn 2, sl 3, tsz 4, ATS. Word 0: V | CFG_S2_TRANS(6)<<1 = 0xd. Word 1:
    // EATS_TRANS<<28 | SHCFG_INCOMING<<44. Word 2: VTCR (4 | 3<<6 | 2<<8 | 1<<10 | 3<<12 |
    // 2<<14 | 1<<16) << 32 | S2AA64 | S2PTW | S2R = 0x0449b6c400000000. Word 3: vttbr &
    // GENMASK(51, 4) = 0xdbeefdeadbee0.
    let s2 = S2Config {
        vmid: 0,
        tsz: 4,
        sl: 3,
        irgn: 2,
        orgn: 1,
        sh: 3,
        tg: 2,
        ps: 1,
        vttbr: 0xdaed_beef_dead_beef,
    };
    let ste = Ste::s2(&feat, &master, &s2);
    assert_eq!(
        ste.0,
        [
            0xd,
            0x1000_1000_0000,
            0x0449_b6c4_0000_0000,
            0x000d_beef_dead_bee0,
            0,
            0,
            0,
            0
        ]
    );
}

#[test]
fn cd_field_masks_and_golden() {
    // arm-smmu-v3.h CTXDESC_CD_0_*.
    assert_eq!(Cd::T0SZ.mask(), 0x3f);
    assert_eq!(Cd::TG0.mask(), 0xc0);
    assert_eq!(Cd::IRGN0.mask(), 0x300);
    assert_eq!(Cd::ORGN0.mask(), 0xc00);
    assert_eq!(Cd::SH0.mask(), 0x3000);
    assert_eq!(Cd::EPD0.mask(), 1 << 14);
    assert_eq!(Cd::ENDI.mask(), 1 << 15);
    assert_eq!(Cd::EPD1.mask(), 1 << 30);
    assert_eq!(Cd::V.mask(), 1 << 31);
    assert_eq!(Cd::IPS.mask(), 0x7_0000_0000); // GENMASK_ULL(34, 32)
    assert_eq!(Cd::TBI.mask() & (1 << 38), 1 << 38); // CTXDESC_CD_0_TCR_TBI0
    assert_eq!(Cd::AA64.mask(), 1 << 41);
    assert_eq!(Cd::HD.mask(), 1 << 42);
    assert_eq!(Cd::HA.mask(), 1 << 43);
    assert_eq!(Cd::S.mask(), 1 << 44);
    assert_eq!(Cd::R.mask(), 1 << 45);
    assert_eq!(Cd::A.mask(), 1 << 46);
    assert_eq!(Cd::ASET.mask(), 1 << 47);
    assert_eq!(Cd::ASID.mask(), 0xffff_0000_0000_0000);
    // arm-smmu-v3.h CTXDESC_CD_1_TTB0_MASK GENMASK_ULL(51, 4).
    assert_eq!(Cd::TTB0.mask(), 0x000f_ffff_ffff_fff0);
    // IHI0070 5.4: AFFD bit 35, MAIR0/1 in word 3.
    assert_eq!(Cd::AFFD.mask(), 1 << 35);
    assert_eq!(Cd::MAIR.word, 3);
    // arm-smmu-v3.h CTXDESC_L1_DESC_V (1UL << 0), CTXDESC_L1_DESC_L2PTR_MASK GENMASK(51, 12).
    assert_eq!(L1Cd::V.mask(), 1);
    assert_eq!(L1Cd::L2PTR.mask(), 0x000f_ffff_ffff_f000);
    assert_eq!(L1Cd::new(0x1234_5000).0[0], 0x1234_5001);

    // arm-smmu-v3-test.c arm_smmu_test_make_s1_cd(asid 1997): ttbr 0xdaedbeefdeadbeef, ips 1,
    // tg 2, sh 3, orgn 1, irgn 2, tsz 4, mair 0xabcdef012345678. arm_smmu_make_s1_cd() gives
    // word 0 = 4 | 2<<6 | 2<<8 | 1<<10 | 3<<12 | EPD1 | V | 1<<32 | AA64 | R | A | ASET |
    // 1997<<48 = 0x07cde201c0003684, word 1 = 0xdbeefdeadbee0, word 3 = MAIR.
    let cfg = S1Config {
        asid: 1997,
        ttbr: 0xdaed_beef_dead_beef,
        tsz: 4,
        tg: 2,
        irgn: 2,
        orgn: 1,
        sh: 3,
        ips: 1,
        mair: 0x0abc_def0_1234_5678,
        hw_dirty: false,
        stall: false,
    };
    assert_eq!(
        Cd::s1(&cfg).0,
        [
            0x07cd_e201_c000_3684,
            0x000d_beef_dead_bee0,
            0,
            0x0abc_def0_1234_5678,
            0,
            0,
            0,
            0
        ]
    );
}

fn enc(c: Command) -> [u64; 2] {
    c.encode().unwrap().0
}

#[test]
fn command_opcodes() {
    // arm-smmu-v3.h CMDQ_OP_*.
    assert_eq!(op::PREFETCH_CFG, 0x1);
    assert_eq!(op::CFGI_STE, 0x3);
    assert_eq!(op::CFGI_STE_RANGE, 0x4); // CMDQ_OP_CFGI_ALL
    assert_eq!(op::CFGI_CD, 0x5);
    assert_eq!(op::CFGI_CD_ALL, 0x6);
    assert_eq!(op::TLBI_NH_ASID, 0x11);
    assert_eq!(op::TLBI_NH_VA, 0x12);
    assert_eq!(op::TLBI_EL2_ALL, 0x20);
    assert_eq!(op::TLBI_EL2_ASID, 0x21);
    assert_eq!(op::TLBI_EL2_VA, 0x22);
    assert_eq!(op::TLBI_S12_VMALL, 0x28);
    assert_eq!(op::TLBI_S2_IPA, 0x2a);
    assert_eq!(op::TLBI_NSNH_ALL, 0x30);
    assert_eq!(op::ATC_INV, 0x40);
    assert_eq!(op::PRI_RESP, 0x41);
    assert_eq!(op::RESUME, 0x44);
    assert_eq!(op::CMD_SYNC, 0x46);
    // IHI0070 4.x: CMD_TLBI_NH_ALL 0x10, CMD_PREFETCH_ADDR 0x02, CMD_STALL_TERM 0x45.
    assert_eq!(op::TLBI_NH_ALL, 0x10);
    assert_eq!(op::PREFETCH_ADDR, 0x2);
    assert_eq!(op::STALL_TERM, 0x45);
}

#[test]
fn command_field_masks() {
    // arm-smmu-v3.h CMDQ_* field definitions.
    assert_eq!(CmdEntry::OP.mask(), 0xff);
    assert_eq!(CmdEntry::SSV.mask(), 1 << 11);
    assert_eq!(CmdEntry::SSID.mask(), 0xffff_f000); // CMDQ_CFGI_0_SSID GENMASK(31, 12)
    assert_eq!(CmdEntry::SID.mask(), 0xffff_ffff_0000_0000);
    assert_eq!(CmdEntry::TLBI_NUM.mask(), 0x1_f000); // GENMASK(16, 12)
    assert_eq!(CmdEntry::TLBI_SCALE.mask(), 0x1f0_0000); // GENMASK(24, 20)
    assert_eq!(CmdEntry::TLBI_VMID.mask(), 0xffff_0000_0000);
    assert_eq!(CmdEntry::TLBI_ASID.mask(), 0xffff_0000_0000_0000);
    assert_eq!(CmdEntry::LEAF.mask(), 1);
    assert_eq!(CmdEntry::TLBI_TTL.mask(), 0x300);
    assert_eq!(CmdEntry::TLBI_TG.mask(), 0xc00);
    assert_eq!(CmdEntry::ADDR.mask(), 0xffff_ffff_ffff_f000); // CMDQ_TLBI_1_VA_MASK
    assert_eq!(CmdEntry::CFGI_RANGE.mask(), 0x1f);
    assert_eq!(CmdEntry::ATC_GLOBAL.mask(), 1 << 9);
    assert_eq!(CmdEntry::ATC_SIZE.mask(), 0x3f);
    assert_eq!(CmdEntry::SYNC_CS.mask(), 0x3000);
    assert_eq!(CmdEntry::SYNC_MSH.mask(), 0xc0_0000);
    assert_eq!(CmdEntry::SYNC_MSIATTR.mask(), 0xf00_0000);
    assert_eq!(CmdEntry::SYNC_MSIDATA.mask(), 0xffff_ffff_0000_0000);
    assert_eq!(CmdEntry::SYNC_MSIADDR.mask(), 0x000f_ffff_ffff_fffc); // GENMASK_ULL(51, 2)
}

#[test]
fn command_golden_encodings() {
    // arm_smmu_cmdq_build_cmd(CMD_SYNC, no MSI): 0x46 | CS_SEV(2)<<12 | ISH(3)<<22 |
    // OIWB(0xf)<<24 = 0x0fc02046.
    assert_eq!(enc(Command::sync()), [0x0fc0_2046, 0]);
    // CS_IRQ (1) with an MSI address (bits [51:2]) and data [63:32].
    assert_eq!(
        enc(Command::Sync {
            cs: SyncCs::Msi {
                addr: 0x8000_1004,
                data: 7
            }
        }),
        [0x0000_0007_0fc0_1046, 0x8000_1004]
    );
    // CFGI_STE sid 0x1234 leaf: SID<<32 | 3; word 1 LEAF.
    assert_eq!(
        enc(Command::CfgiSte {
            sid: 0x1234,
            leaf: true
        }),
        [0x0000_1234_0000_0003, 1]
    );
    // CFGI_ALL: op 4, CMDQ_CFGI_1_RANGE = 31.
    assert_eq!(enc(Command::cfgi_all()), [0x4, 0x1f]);
    // CFGI_CD sid 5 ssid 3 leaf: 5<<32 | 3<<12 | 5.
    assert_eq!(
        enc(Command::CfgiCd {
            sid: 5,
            ssid: 3,
            leaf: true
        }),
        [0x0000_0005_0000_3005, 1]
    );
    // CFGI_CD_ALL sid 7.
    assert_eq!(
        enc(Command::CfgiCdAll { sid: 7 }),
        [0x0000_0007_0000_0006, 0]
    );
    // PREFETCH_CFG sid 0x42.
    assert_eq!(
        enc(Command::PrefetchCfg {
            sid: 0x42,
            ssid: None
        }),
        [0x0000_0042_0000_0001, 0]
    );
    // TLBI_NH_ASID asid 1997 (0x7cd) vmid 0: ASID<<48 | 0x11.
    assert_eq!(
        enc(Command::TlbiNhAsid {
            asid: 1997,
            vmid: 0
        }),
        [0x07cd_0000_0000_0011, 0]
    );
    // TLBI_NH_VA asid 0x10, addr 0x12345000, leaf, NUM 3, SCALE 1, TG 1 (4KB), TTL 3:
    // word 0 = 0x10<<48 | 1<<20 | 3<<12 | 0x12; word 1 = addr | 1<<10 | 3<<8 | 1.
    let r = TlbiRange {
        num: 3,
        scale: 1,
        tg: 1,
        ttl: 3,
    };
    assert_eq!(
        enc(Command::TlbiNhVa {
            asid: 0x10,
            vmid: 0,
            addr: 0x1234_5000,
            leaf: true,
            range: r
        }),
        [0x0010_0000_0010_3012, 0x1234_5701]
    );
    // TLBI_NSNH_ALL, TLBI_EL2_ALL: opcode only.
    assert_eq!(enc(Command::TlbiNsnhAll), [0x30, 0]);
    assert_eq!(enc(Command::TlbiEl2All), [0x20, 0]);
    // TLBI_S12_VMALL vmid 3: VMID<<32 | 0x28.
    assert_eq!(
        enc(Command::TlbiS12Vmall { vmid: 3 }),
        [0x0000_0003_0000_0028, 0]
    );
    // ATC_INV sid 2 ssid 9 addr 0x40000 size ATC_INV_SIZE_ALL (52): 2<<32 | 9<<12 | SSV |
    // 0x40; word 1 = addr | 52.
    assert_eq!(
        enc(Command::AtcInv {
            sid: 2,
            ssid: Some(9),
            addr: 0x40000,
            size: 52,
            global: false
        }),
        [0x0000_0002_0000_9840, 0x4_0034]
    );
    // Values that do not fit are refused rather than truncated.
    assert!(Command::CfgiCd {
        sid: 0,
        ssid: 1 << 20,
        leaf: true
    }
    .encode()
    .is_err());
    assert!(Command::CfgiSteRange { sid: 0, range: 32 }
        .encode()
        .is_err());
}

#[test]
fn event_ids() {
    // arm-smmu-v3.h EVT_ID_*.
    assert_eq!(id::F_TRANSLATION, 0x10);
    assert_eq!(id::F_ADDR_SIZE, 0x11);
    assert_eq!(id::F_ACCESS, 0x12);
    assert_eq!(id::F_PERMISSION, 0x13);
    // IHI0070 7.3.2-7.3.21 event numbers.
    assert_eq!(id::F_UUT, 0x01);
    assert_eq!(id::C_BAD_STREAMID, 0x02);
    assert_eq!(id::F_STE_FETCH, 0x03);
    assert_eq!(id::C_BAD_STE, 0x04);
    assert_eq!(id::F_BAD_ATS_TREQ, 0x05);
    assert_eq!(id::F_STREAM_DISABLED, 0x06);
    assert_eq!(id::F_TRANSL_FORBIDDEN, 0x07);
    assert_eq!(id::C_BAD_SUBSTREAMID, 0x08);
    assert_eq!(id::F_CD_FETCH, 0x09);
    assert_eq!(id::C_BAD_CD, 0x0a);
    assert_eq!(id::F_WALK_EABT, 0x0b);
    assert_eq!(id::F_TLB_CONFLICT, 0x20);
    assert_eq!(id::F_CFG_CONFLICT, 0x21);
    // arm-smmu-v3.h EVTQ_* field positions.
    assert_eq!(EventRecord::SSV.mask(), 1 << 11);
    assert_eq!(EventRecord::SSID.mask(), 0xffff_f000);
    assert_eq!(EventRecord::SID.mask(), 0xffff_ffff_0000_0000);
    assert_eq!(EventRecord::STAG.mask(), 0xffff);
    assert_eq!(EventRecord::STALL.mask(), 1 << 31);
    assert_eq!(EventRecord::PNU.mask(), 1 << 33);
    assert_eq!(EventRecord::IND.mask(), 1 << 34);
    assert_eq!(EventRecord::RNW.mask(), 1 << 35);
    assert_eq!(EventRecord::S2.mask(), 1 << 39);
    assert_eq!(EventRecord::CLASS.mask(), 0x300_0000_0000);
    assert_eq!(EventRecord::TTRNW.mask(), 1 << 44); // EVTQ_1_TT_READ
    assert_eq!(EventRecord::IPA.mask(), 0x000f_ffff_ffff_f000); // EVTQ_3_IPA

    // IHI0070 7.3.4: FetchAddr[55:3] at record bits [247:195].
    assert_eq!(EventRecord::FETCH_ADDR.mask(), 0x00ff_ffff_ffff_fff8);
}

#[test]
fn event_golden_decoding() {
    // F_TRANSLATION (0x10), StreamID 0x10, SSV, SubstreamID 5, Stall, STAG 0x77, PnU, RnW
    // (read), CLASS IN (2), InputAddr 0xdead0000 — laid out per IHI0070 7.3.12 by hand.
    let rec = EventRecord([0x0000_0010_0000_5810, 0x0000_020a_8000_0077, 0xdead_0000, 0]);
    let ev = rec.decode();
    match ev {
        Event::Translation(f) => {
            assert_eq!(f.access.sid, 0x10);
            assert_eq!(f.access.ssid, Some(5));
            assert!(f.access.read && f.access.privileged && !f.access.instruction);
            assert_eq!(f.access.addr, 0xdead_0000);
            assert_eq!(f.stalled, Some(0x77));
            assert!(!f.stage2);
            assert_eq!(f.class, 2);
        }
        other => panic!("wrong decode {other:?}"),
    }
    assert_eq!(ev.stream_id(), Some(0x10));
    // F_PERMISSION stage 2 with IPA 0x4000_3000, no SSV.
    let rec = EventRecord([0x0000_0003_0000_0013, 1 << 39, 0x1000, 0x4000_3000]);
    match rec.decode() {
        Event::Permission(f) => {
            assert!(f.stage2);
            assert_eq!(f.ipa, 0x4000_3000);
            assert_eq!(f.access.ssid, None);
            assert!(!f.access.read); // RnW = 0: write
        }
        other => panic!("wrong decode {other:?}"),
    }
    // C_BAD_SUBSTREAMID (0x08), StreamID 9, SubstreamID 0x10: no SSV in this record (7.3.9).
    let rec = EventRecord([0x0000_0009_0001_0008, 0, 0, 0]);
    assert_eq!(
        rec.decode(),
        Event::BadSubstreamId {
            sid: 9,
            ssid: Some(0x10)
        }
    );
    // C_BAD_CD (0x0a), StreamID 9, SubstreamID 0x1234 with SSV.
    let rec = EventRecord([0x0000_0009_0123_480a, 0, 0, 0]);
    assert_eq!(
        rec.decode(),
        Event::BadCd {
            sid: 9,
            ssid: Some(0x1234)
        }
    );
    // F_STE_FETCH (0x03) with FetchAddr 0x8000_0040 in word 3 [55:3].
    let rec = EventRecord([0x0000_0001_0000_0003, 0, 0, 0x8000_0040]);
    assert_eq!(
        rec.decode(),
        Event::SteFetch {
            sid: 1,
            ssid: None,
            fetch_addr: 0x8000_0040
        }
    );
    // C_BAD_STREAMID (0x02).
    let rec = EventRecord([0x0001_0000_0000_0002, 0, 0, 0]);
    assert_eq!(
        rec.decode(),
        Event::BadStreamId {
            sid: 0x1_0000,
            ssid: None
        }
    );
    // F_WALK_EABT (0x0b): fetch address kept.
    let rec = EventRecord([0x0b, 1 << 40, 0x5000, 0x9000_1238]);
    match rec.decode() {
        Event::WalkExternalAbort { fault, fetch_addr } => {
            assert_eq!(fetch_addr, 0x9000_1238);
            assert_eq!(fault.class, 1);
        }
        other => panic!("wrong decode {other:?}"),
    }
    // Unknown and IMPLEMENTATION DEFINED numbers (IHI0070: 0xE0-0xEF) never fail.
    for id in [0x00u8, 0x0c, 0x22, 0x7f, 0xe0, 0xff] {
        let raw = [id as u64 | 0xabcd_0000_0000_0000, 1, 2, 3];
        let ev = EventRecord(raw).decode();
        if id == 0x22 || id == 0x7f || id == 0 || id == 0x0c || id >= 0xe0 {
            assert_eq!(ev, Event::Unknown { id, raw });
        }
    }
}

#[test]
fn field_helpers() {
    let f = super::bitfield::Field::new(0, 7, 4);
    assert_eq!(f.mask(), 0xf0);
    assert_eq!(f.get(0xab), 0xa);
    assert_eq!(f.put(0xab, 0x5), 0x5b);
    assert!(f.fits(0xf) && !f.fits(0x10));
    // Out-of-range values are truncated by setters (never a panic).
    assert_eq!(Ste::default().set_config(0xff).config(), 0x7);
}

#[test]
fn domain_invalidation_golden_encodings() {
    use super::domain::tlbi_command;
    use super::pgtable::{Granule, Invalidation};
    let e = |i| enc(tlbi_command(0x2a, i));
    // arm_smmu_cmdq_build_cmd() CMDQ_OP_TLBI_NH_VA (arm-smmu-v3.c:274-284) with the fields of
    // arm-smmu-v3.h:395-403 (NUM [16:12], SCALE [24:20], ASID [63:48]; LEAF bit 0, TTL [9:8],
    // TG [11:10], VA [63:12]). Without RIL __arm_smmu_tlb_inv_range() leaves NUM, SCALE, TG
    // and TTL zero (arm-smmu-v3.c:2175 is skipped): ASID 0x2a << 48 | 0x12; addr | LEAF.
    assert_eq!(
        e(Invalidation::Va {
            iova: 0x7f_1234_5000,
            leaf: true
        }),
        [0x002a_0000_0000_0012, 0x7f_1234_5001]
    );
    // Non-leaf, no range: word 1 is the address alone.
    assert_eq!(
        e(Invalidation::Va {
            iova: 0x4000_0000,
            leaf: false
        }),
        [0x002a_0000_0000_0012, 0x4000_0000]
    );
    // RIL, 64K granule (tg = 16: TG = (16 - 10) / 2 = 3, arm-smmu-v3.c:2182), non-leaf
    // (TTL 0), 6 pages = NUM field 2 (num - 1, line 2215) at SCALE 1 (line 2211):
    // word 0 = 0x2a << 48 | 1 << 20 | 2 << 12 | 0x12; word 1 = addr | 3 << 10.
    assert_eq!(
        e(Invalidation::Range {
            iova: 0x1_0000_0000,
            granule: Granule::G64K,
            scale: 1,
            num: 3,
            ttl: 0,
            leaf: false
        }),
        [0x002a_0000_0010_2012, 0x1_0000_0c00]
    );
    // RIL, 16K granule (TG 2), leaf 32M blocks: TTL = 4 - ((25 - 3) / (14 - 3)) = 2
    // (line 2193); one block of 2^11 pages: SCALE 11, NUM field 0.
    // word 0 = 0x2a << 48 | 11 << 20 | 0x12; word 1 = addr | 2 << 10 | 2 << 8 | LEAF.
    assert_eq!(
        e(Invalidation::Range {
            iova: 0x200_0000,
            granule: Granule::G16K,
            scale: 11,
            num: 1,
            ttl: 2,
            leaf: true
        }),
        [0x002a_0000_00b0_0012, 0x200_0a01]
    );
    // CMDQ_OP_TLBI_NH_ASID (arm-smmu-v3.c:295-299; opcode 0x11, arm-smmu-v3.h:514): ASID
    // [63:48], VMID 0.
    assert_eq!(e(Invalidation::Asid), [0x002a_0000_0000_0011, 0]);
}
