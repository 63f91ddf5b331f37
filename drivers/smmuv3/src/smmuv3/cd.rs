// SPDX-License-Identifier: GPL-2.0
//! Context Descriptors (IHI0070 5.4) and level-1 CD table descriptors (5.3).
//!
//! A CD holds the stage-1 translation regime of one (StreamID, SubstreamID): table base, TCR
//! fields, MAIR and ASID. In this framework each PASID gets one CD.

bitfield! {
    /// A 64-byte Context Descriptor (IHI0070 5.4), as eight little-endian words.
    pub struct Cd[8] {
        /// T0SZ: size of the TTB0 region (64 - VA bits).
        T0SZ @ 0[5:0] => t0sz, set_t0sz: u8;
        /// TG0: TTB0 granule (0 4KB, 1 64KB, 2 16KB).
        TG0 @ 0[7:6] => tg0, set_tg0: u8;
        /// IR0: TTB0 walk inner cacheability.
        IRGN0 @ 0[9:8] => irgn0, set_irgn0: u8;
        /// OR0: TTB0 walk outer cacheability.
        ORGN0 @ 0[11:10] => orgn0, set_orgn0: u8;
        /// SH0: TTB0 walk shareability.
        SH0 @ 0[13:12] => sh0, set_sh0: u8;
        /// EPD0: TTB0 walks disabled (faults); T0SZ/TG0/IR0/OR0/SH0/TTB0 are then IGNORED.
        EPD0 @ 0[14:14] => epd0, set_epd0: bool;
        /// ENDI: tables are big-endian.
        ENDI @ 0[15:15] => endi, set_endi: bool;
        /// T1SZ: size of the TTB1 region.
        T1SZ @ 0[21:16] => t1sz, set_t1sz: u8;
        /// TG1: TTB1 granule.
        TG1 @ 0[23:22] => tg1, set_tg1: u8;
        /// IR1.
        IRGN1 @ 0[25:24] => irgn1, set_irgn1: u8;
        /// OR1.
        ORGN1 @ 0[27:26] => orgn1, set_orgn1: u8;
        /// SH1.
        SH1 @ 0[29:28] => sh1, set_sh1: u8;
        /// EPD1: TTB1 walks disabled.
        EPD1 @ 0[30:30] => epd1, set_epd1: bool;
        /// V: the CD is valid.
        V @ 0[31:31] => v, set_v: bool;
        /// IPS: intermediate physical size (IDR5.OAS encoding).
        IPS @ 0[34:32] => ips, set_ips: u8;
        /// AFFD: access flag fault disable.
        AFFD @ 0[35:35] => affd, set_affd: bool;
        /// WXN: write implies execute-never.
        WXN @ 0[36:36] => wxn, set_wxn: bool;
        /// UWXN: unprivileged write implies privileged execute-never.
        UWXN @ 0[37:37] => uwxn, set_uwxn: bool;
        /// TBI: top-byte ignore for TTB0/TTB1.
        TBI @ 0[39:38] => tbi, set_tbi: u8;
        /// PAN: privileged access never.
        PAN @ 0[40:40] => pan, set_pan: bool;
        /// AA64: AArch64 translation tables.
        AA64 @ 0[41:41] => aa64, set_aa64: bool;
        /// HD: hardware dirty-state update.
        HD @ 0[42:42] => hd, set_hd: bool;
        /// HA: hardware access-flag update.
        HA @ 0[43:43] => ha, set_ha: bool;
        /// S: stage-1 faults stall.
        S @ 0[44:44] => s, set_s: bool;
        /// R: stage-1 faults are recorded.
        R @ 0[45:45] => r, set_r: bool;
        /// A: faulting transactions abort (else RAZ/WI).
        A @ 0[46:46] => a, set_a: bool;
        /// ASET: the ASID is not shared with the CPU (no broadcast TLB maintenance match).
        ASET @ 0[47:47] => aset, set_aset: bool;
        /// ASID.
        ASID @ 0[63:48] => asid, set_asid: u16;
        /// TTB0\[51:4\]: stage-1 table base (kept in place).
        TTB0 @ 1[51:4] => ttb0, set_ttb0: u64;
        /// TTB1\[51:4\].
        TTB1 @ 2[51:4] => ttb1, set_ttb1: u64;
        /// MAIR0 and MAIR1 (the MAIR_EL1 value).
        MAIR @ 3[63:0] => mair, set_mair: u64;
        /// AMAIR0 and AMAIR1.
        AMAIR @ 4[63:0] => amair, set_amair: u64;
    }
}

/// Stage-1 translation parameters for a CD (produced by the page-table code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S1Config {
    /// ASID tagging the TLB entries of this context.
    pub asid: u16,
    /// TTB0 (bits outside \[51:4\] are dropped).
    pub ttbr: u64,
    /// T0SZ.
    pub tsz: u8,
    /// TG0 (CD encoding: 0 4KB, 1 64KB, 2 16KB).
    pub tg: u8,
    /// IR0.
    pub irgn: u8,
    /// OR0.
    pub orgn: u8,
    /// SH0.
    pub sh: u8,
    /// IPS (IDR5.OAS encoding).
    pub ips: u8,
    /// MAIR value.
    pub mair: u64,
    /// Hardware access flag and dirty-state update (HA and HD).
    pub hw_dirty: bool,
    /// The master may stall on faults (CD.S).
    pub stall: bool,
}

impl Cd {
    /// An invalid CD (all zero): transactions with this SubstreamID report C_BAD_CD.
    pub const fn invalid() -> Self {
        Cd([0; 8])
    }

    /// A valid stage-1 CD translating through TTB0 as described by `cfg`; TTB1 disabled.
    pub const fn s1(cfg: &S1Config) -> Self {
        Cd([0; 8])
            .set_t0sz(cfg.tsz)
            .set_tg0(cfg.tg)
            .set_irgn0(cfg.irgn)
            .set_orgn0(cfg.orgn)
            .set_sh0(cfg.sh)
            .set_endi(cfg!(target_endian = "big"))
            .set_epd1(true)
            .set_v(true)
            .set_ips(cfg.ips)
            .set_aa64(true)
            .set_ha(cfg.hw_dirty)
            .set_hd(cfg.hw_dirty)
            .set_s(cfg.stall)
            .set_r(true)
            .set_a(true)
            .set_aset(true)
            .set_asid(cfg.asid)
            .set_ttb0(cfg.ttbr >> 4)
            .set_mair(cfg.mair)
    }

    /// A valid CD that keeps `cfg`'s ASID but faults every access (EPD0 set, no table).
    ///
    /// Used to quiesce a PASID before its page tables go away: the switch to and from the live
    /// CD is hitless because TTB0 and the TCR0 fields are IGNORED while EPD0 is set. Unless
    /// `stall_forced`, stalls and fault records are turned off so a still-running device is
    /// aborted quickly.
    pub const fn quiesced(cfg: &S1Config, stall_forced: bool) -> Self {
        let cd = Cd([0; 8])
            .set_endi(cfg!(target_endian = "big"))
            .set_epd0(true)
            .set_epd1(true)
            .set_v(true)
            .set_ips(cfg.ips)
            .set_aa64(true)
            .set_s(cfg.stall)
            .set_r(true)
            .set_a(true)
            .set_aset(true)
            .set_asid(cfg.asid)
            .set_mair(cfg.mair);
        if stall_forced {
            cd
        } else {
            cd.set_s(false).set_r(false)
        }
    }

    /// Physical address of the stage-1 table (TTB0 in place).
    pub const fn ttb0_addr(&self) -> u64 {
        self.ttb0() << 4
    }

    /// The bits the SMMU interprets given this CD's V and EPD0 (IHI0070 5.4): nothing but V
    /// when invalid; everything except the TTB0 walk parameters when EPD0 is set.
    pub fn used_bits(&self) -> [u64; 8] {
        let mut used = [0u64; 8];
        used[0] = Self::V.mask();
        if !self.v() {
            return used;
        }
        used = [u64::MAX; 8];
        if self.epd0() {
            used[0] &= !(Self::T0SZ.mask()
                | Self::TG0.mask()
                | Self::IRGN0.mask()
                | Self::ORGN0.mask()
                | Self::SH0.mask());
            used[1] &= !Self::TTB0.mask();
        }
        used
    }
}

bitfield! {
    /// A level-1 CD table descriptor (IHI0070 5.3.2): points at a leaf table of CDs.
    pub struct L1Cd[1] {
        /// V: the descriptor is valid.
        V @ 0[0:0] => v, set_v: bool;
        /// L2Ptr\[51:12\]: physical address of the leaf table (kept in place).
        L2PTR @ 0[51:12] => l2ptr, set_l2ptr: u64;
    }
}

impl L1Cd {
    /// A valid descriptor pointing at a leaf CD table at `l2_dma` (4KB aligned).
    pub const fn new(l2_dma: u64) -> Self {
        L1Cd([0]).set_v(true).set_l2ptr(l2_dma >> 12)
    }
}
