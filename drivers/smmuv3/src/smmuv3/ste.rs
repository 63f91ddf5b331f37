// SPDX-License-Identifier: GPL-2.0
//! Stream Table Entries (IHI0070 5.2) and level-1 stream table descriptors (5.1).
//!
//! An STE tells the SMMU what to do with one StreamID: abort, bypass, or translate through a
//! context-descriptor table (stage 1) and/or a stage-2 table. The constructors here build
//! complete target entries; [`super::writer`] installs them hitlessly, which needs
//! [`Ste::used_bits`]: the bits the SMMU reads given the entry's own configuration.

bitfield! {
    /// A 64-byte Stream Table Entry (IHI0070 5.2), as eight little-endian words.
    pub struct Ste[8] {
        /// V: the entry is valid (word 0 bit 0).
        V @ 0[0:0] => v, set_v: bool;
        /// Config: 0b000 abort, 0b100 bypass, 0b101 S1 only, 0b110 S2 only, 0b111 nested.
        CONFIG @ 0[3:1] => config, set_config: u8;
        /// S1Fmt: CD table format (0 linear, 1 2-level 4KB leaves, 2 2-level 64KB leaves).
        S1FMT @ 0[5:4] => s1fmt, set_s1fmt: u8;
        /// S1ContextPtr\[51:6\]: physical address of the CD table (kept in place, not shifted).
        S1CONTEXTPTR @ 0[51:6] => s1contextptr, set_s1contextptr: u64;
        /// S1CDMax: log2 of the number of CDs (SubstreamID bits); 0 means one CD, no SSIDs.
        S1CDMAX @ 0[63:59] => s1cdmax, set_s1cdmax: u8;
        /// S1DSS: what a transaction without SubstreamID does (0 terminate, 1 bypass, 2 CD 0).
        S1DSS @ 1[1:0] => s1dss, set_s1dss: u8;
        /// S1CIR: inner cacheability of CD fetches and stage-1 walks.
        S1CIR @ 1[3:2] => s1cir, set_s1cir: u8;
        /// S1COR: outer cacheability of CD fetches and stage-1 walks.
        S1COR @ 1[5:4] => s1cor, set_s1cor: u8;
        /// S1CSH: shareability of CD fetches and stage-1 walks.
        S1CSH @ 1[7:6] => s1csh, set_s1csh: u8;
        /// S1STALLD: stage-1 stall disable (only meaningful when stalls are supported).
        S1STALLD @ 1[27:27] => s1stalld, set_s1stalld: bool;
        /// EATS: ATS handling (0 abort, 1 full translation, 2 split-stage).
        EATS @ 1[29:28] => eats, set_eats: u8;
        /// STRW: StreamWorld (0 NS-EL1, 2 EL2 / EL2-E2H).
        STRW @ 1[31:30] => strw, set_strw: u8;
        /// MemAttr: memory type override, used when MTCFG == 1.
        MEMATTR @ 1[35:32] => memattr, set_memattr: u8;
        /// MTCFG: replace the incoming memory type by MemAttr.
        MTCFG @ 1[36:36] => mtcfg, set_mtcfg: bool;
        /// ALLOCCFG: allocation hint override.
        ALLOCCFG @ 1[40:37] => alloccfg, set_alloccfg: u8;
        /// SHCFG: shareability override (1: use incoming).
        SHCFG @ 1[45:44] => shcfg, set_shcfg: u8;
        /// NSCFG: security override (Secure streams only).
        NSCFG @ 1[47:46] => nscfg, set_nscfg: u8;
        /// PRIVCFG: privilege override.
        PRIVCFG @ 1[49:48] => privcfg, set_privcfg: u8;
        /// INSTCFG: instruction/data override.
        INSTCFG @ 1[51:50] => instcfg, set_instcfg: u8;
        /// S2VMID: VMID tagging stage-2 (and, for NS-EL1, stage-1) TLB entries.
        S2VMID @ 2[15:0] => s2vmid, set_s2vmid: u16;
        /// S2T0SZ: stage-2 input size (64 - IPA bits).
        S2T0SZ @ 2[37:32] => s2t0sz, set_s2t0sz: u8;
        /// S2SL0: stage-2 starting level.
        S2SL0 @ 2[39:38] => s2sl0, set_s2sl0: u8;
        /// S2IR0: stage-2 walk inner cacheability.
        S2IR0 @ 2[41:40] => s2ir0, set_s2ir0: u8;
        /// S2OR0: stage-2 walk outer cacheability.
        S2OR0 @ 2[43:42] => s2or0, set_s2or0: u8;
        /// S2SH0: stage-2 walk shareability.
        S2SH0 @ 2[45:44] => s2sh0, set_s2sh0: u8;
        /// S2TG: stage-2 granule (0 4KB, 1 64KB, 2 16KB).
        S2TG @ 2[47:46] => s2tg, set_s2tg: u8;
        /// S2PS: stage-2 output size (IDR5.OAS encoding).
        S2PS @ 2[50:48] => s2ps, set_s2ps: u8;
        /// S2AA64: stage-2 tables are AArch64.
        S2AA64 @ 2[51:51] => s2aa64, set_s2aa64: bool;
        /// S2ENDI: stage-2 tables are big-endian.
        S2ENDI @ 2[52:52] => s2endi, set_s2endi: bool;
        /// S2AFFD: stage-2 access flag fault disable.
        S2AFFD @ 2[53:53] => s2affd, set_s2affd: bool;
        /// S2PTW: stage-2 protected table walk.
        S2PTW @ 2[54:54] => s2ptw, set_s2ptw: bool;
        /// S2HD: stage-2 hardware dirty update.
        S2HD @ 2[55:55] => s2hd, set_s2hd: bool;
        /// S2HA: stage-2 hardware access flag update.
        S2HA @ 2[56:56] => s2ha, set_s2ha: bool;
        /// S2S: stage-2 faults stall.
        S2S @ 2[57:57] => s2s, set_s2s: bool;
        /// S2R: stage-2 faults are recorded.
        S2R @ 2[58:58] => s2r, set_s2r: bool;
        /// S2TTB\[51:4\]: stage-2 table base (kept in place).
        S2TTB @ 3[51:4] => s2ttb, set_s2ttb: u64;
    }
}

/// STE.Config values (IHI0070 5.2, arm-smmu-v3.h STRTAB_STE_0_CFG_*).
pub mod config {
    /// Abort all transactions, no event.
    pub const ABORT: u8 = 0b000;
    /// Bypass both stages.
    pub const BYPASS: u8 = 0b100;
    /// Stage 1 translates, stage 2 bypassed.
    pub const S1_TRANS: u8 = 0b101;
    /// Stage 1 bypassed, stage 2 translates.
    pub const S2_TRANS: u8 = 0b110;
    /// Both stages translate.
    pub const NESTED: u8 = 0b111;
}

/// STE.S1Fmt values.
pub mod s1fmt {
    /// Linear CD table.
    pub const LINEAR: u8 = 0;
    /// 2-level CD table with 4KB (64-entry) leaves.
    pub const L2_4K: u8 = 1;
    /// 2-level CD table with 64KB (1024-entry) leaves.
    pub const L2_64K: u8 = 2;
}

/// STE.S1DSS values.
pub mod s1dss {
    /// Transactions without SubstreamID are terminated.
    pub const TERMINATE: u8 = 0;
    /// Transactions without SubstreamID bypass stage 1.
    pub const BYPASS: u8 = 1;
    /// Transactions without SubstreamID use CD 0 (and SubstreamID 0 is then illegal).
    pub const SSID0: u8 = 2;
}

/// STE.EATS values.
pub mod eats {
    /// ATS translation requests are aborted.
    pub const ABORT: u8 = 0;
    /// Full ATS translation.
    pub const TRANS: u8 = 1;
    /// Split-stage ATS.
    pub const S1CHK: u8 = 2;
}

/// STE.STRW values.
pub mod strw {
    /// Non-secure EL1 StreamWorld.
    pub const NSEL1: u8 = 0;
    /// EL2 (or EL2-E2H) StreamWorld.
    pub const EL2: u8 = 2;
}

/// STE.SHCFG values.
pub mod shcfg {
    /// Non-shareable.
    pub const NSH: u8 = 0;
    /// Use the incoming shareability.
    pub const INCOMING: u8 = 1;
    /// Outer shareable.
    pub const OSH: u8 = 2;
    /// Inner shareable.
    pub const ISH: u8 = 3;
}

/// STE.S1CIR / S1COR cacheability values.
pub mod s1cache {
    /// Non-cacheable.
    pub const NC: u8 = 0;
    /// Write-back, read-allocate.
    pub const WBRA: u8 = 1;
    /// Write-through.
    pub const WT: u8 = 2;
    /// Write-back, no read-allocate.
    pub const WB: u8 = 3;
}

/// SMMU properties that change how STEs are built (from the probed features).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteFeatures {
    /// IDR1.ATTR_TYPES_OVR: SHCFG is implemented, so bypass STEs ask for incoming shareability.
    pub attr_types_ovr: bool,
    /// IDR0.STALL_MODEL allows stalls: S1STALLD must be set for masters that cannot stall.
    pub stalls: bool,
    /// The EL2-E2H StreamWorld is in use (CR2.E2H): STRW = EL2.
    pub e2h: bool,
}

/// Per-master options of an STE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MasterOptions {
    /// The master uses PCIe ATS (EATS = TRANS).
    pub ats: bool,
    /// The master can tolerate stalled transactions.
    pub stall: bool,
}

/// Where the CD table of a stage-1 STE lives and how it is shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdTableRef {
    /// Physical address of the (level-1 or linear) CD table.
    pub dma: u64,
    /// STE.S1Fmt.
    pub s1fmt: u8,
    /// STE.S1CDMax (SubstreamID bits of the table).
    pub s1cdmax: u8,
}

/// Stage-2 translation parameters (the VTCR-like fields of STE word 2 and S2TTB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S2Config {
    /// VMID.
    pub vmid: u16,
    /// S2T0SZ.
    pub tsz: u8,
    /// S2SL0.
    pub sl: u8,
    /// S2IR0.
    pub irgn: u8,
    /// S2OR0.
    pub orgn: u8,
    /// S2SH0.
    pub sh: u8,
    /// S2TG.
    pub tg: u8,
    /// S2PS.
    pub ps: u8,
    /// Stage-2 table base (VTTBR-like; bits outside \[51:4\] are dropped).
    pub vttbr: u64,
}

impl Ste {
    /// An STE that aborts every transaction of the stream (the initial state of every entry).
    pub const fn abort() -> Self {
        Ste([0; 8]).set_v(true).set_config(config::ABORT)
    }

    /// An STE that lets the stream's transactions through untranslated.
    pub const fn bypass(feat: &SteFeatures) -> Self {
        let ste = Ste([0; 8]).set_v(true).set_config(config::BYPASS);
        if feat.attr_types_ovr {
            ste.set_shcfg(shcfg::INCOMING)
        } else {
            ste
        }
    }

    /// An STE that translates through the CD table `cd` at stage 1, with `s1dss` deciding the
    /// fate of transactions that carry no SubstreamID.
    pub const fn s1_cdtable(
        feat: &SteFeatures,
        master: &MasterOptions,
        cd: &CdTableRef,
        s1dss_val: u8,
    ) -> Self {
        let mut ste = Ste([0; 8])
            .set_v(true)
            .set_config(config::S1_TRANS)
            .set_s1fmt(cd.s1fmt)
            .set_s1contextptr(cd.dma >> 6)
            .set_s1cdmax(cd.s1cdmax)
            .set_s1dss(s1dss_val)
            .set_s1cir(s1cache::WBRA)
            .set_s1cor(s1cache::WBRA)
            .set_s1csh(super::regs::sh::ISH)
            .set_s1stalld(feat.stalls && !master.stall)
            .set_eats(if master.ats { eats::TRANS } else { eats::ABORT });
        if feat.attr_types_ovr && s1dss_val == s1dss::BYPASS {
            ste = ste.set_shcfg(shcfg::INCOMING);
        }
        if feat.e2h {
            ste = ste.set_strw(strw::EL2);
        } else {
            // VMID 0 tags stage-1 TLB entries of NS-EL1 streams without stage 2.
            ste = ste.set_strw(strw::NSEL1).set_s2vmid(0);
        }
        ste
    }

    /// An STE that translates at stage 2 only, with the tables described by `s2`.
    pub const fn s2(feat: &SteFeatures, master: &MasterOptions, s2: &S2Config) -> Self {
        let mut ste = Ste([0; 8])
            .set_v(true)
            .set_config(config::S2_TRANS)
            .set_eats(if master.ats { eats::TRANS } else { eats::ABORT });
        if feat.attr_types_ovr {
            ste = ste.set_shcfg(shcfg::INCOMING);
        }
        ste.set_s2vmid(s2.vmid)
            .set_s2t0sz(s2.tsz)
            .set_s2sl0(s2.sl)
            .set_s2ir0(s2.irgn)
            .set_s2or0(s2.orgn)
            .set_s2sh0(s2.sh)
            .set_s2tg(s2.tg)
            .set_s2ps(s2.ps)
            .set_s2aa64(true)
            .set_s2ptw(true)
            .set_s2s(master.stall)
            .set_s2r(true)
            .set_s2ttb(s2.vttbr >> 4)
    }

    /// Physical address of the CD table (S1ContextPtr in place).
    pub const fn cd_table_addr(&self) -> u64 {
        self.s1contextptr() << 6
    }

    /// The bits the SMMU interprets given this entry's own V/Config/S1DSS (IHI0070 5.2 and
    /// 13.5). Bits outside the mask are IGNORED, so they may change while the entry is live.
    pub fn used_bits(&self) -> [u64; 8] {
        let mut used = [0u64; 8];
        used[0] = Self::V.mask();
        if !self.v() {
            return used;
        }
        used[0] |= Self::CONFIG.mask();
        let cfg = self.config();
        let attr_override =
            Self::SHCFG.mask() | Self::MTCFG.mask() | Self::MEMATTR.mask() | Self::ALLOCCFG.mask();
        if cfg & 0b001 != 0 {
            // Stage 1 translates.
            used[0] |= Self::S1FMT.mask() | Self::S1CONTEXTPTR.mask() | Self::S1CDMAX.mask();
            used[1] |= Self::S1DSS.mask()
                | Self::S1CIR.mask()
                | Self::S1COR.mask()
                | Self::S1CSH.mask()
                | Self::S1STALLD.mask()
                | Self::STRW.mask()
                | Self::EATS.mask();
            used[2] |= Self::S2VMID.mask();
            // IHI0070 13.5: with S1DSS == bypass, non-substream traffic takes the overrides.
            if self.s1dss() == s1dss::BYPASS {
                used[1] |= attr_override;
            }
        }
        if cfg & 0b010 != 0 {
            // Stage 2 translates.
            used[1] |= Self::EATS.mask() | attr_override;
            used[2] |= Self::S2VMID.mask()
                | Self::S2T0SZ.mask()
                | Self::S2SL0.mask()
                | Self::S2IR0.mask()
                | Self::S2OR0.mask()
                | Self::S2SH0.mask()
                | Self::S2TG.mask()
                | Self::S2PS.mask()
                | Self::S2AA64.mask()
                | Self::S2ENDI.mask()
                | Self::S2AFFD.mask()
                | Self::S2PTW.mask()
                | Self::S2HD.mask()
                | Self::S2HA.mask()
                | Self::S2S.mask()
                | Self::S2R.mask();
            used[3] |= Self::S2TTB.mask();
        }
        if cfg == config::BYPASS {
            used[1] |= attr_override;
        }
        used
    }
}

bitfield! {
    /// A level-1 stream table descriptor (IHI0070 5.1.2): points at a level-2 array of STEs.
    pub struct L1Std[1] {
        /// Span: log2(number of STEs in the level-2 table) + 1; 0 means invalid.
        SPAN @ 0[4:0] => span, set_span: u8;
        /// L2Ptr\[51:6\]: physical address of the level-2 table (kept in place).
        L2PTR @ 0[51:6] => l2ptr, set_l2ptr: u64;
    }
}

impl L1Std {
    /// A descriptor pointing at a level-2 table of `1 << split` STEs at `l2_dma`.
    pub const fn new(l2_dma: u64, split: u8) -> Self {
        L1Std([0])
            .set_span(split.wrapping_add(1))
            .set_l2ptr(l2_dma >> 6)
    }
}
