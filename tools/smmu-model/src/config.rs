// SPDX-License-Identifier: GPL-2.0
//! Stream table and Context descriptor decoding and validation (spec 5.1-5.5, 3.3).

use crate::spec::{bit, bits, event_id, pa_bits};
use crate::Features;

/// STE.Config (5.2) as the model acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SteConfig {
    /// 0b0xx: report abort to the device, no event.
    Abort,
    /// 0b100: stage 1 and stage 2 bypass.
    Bypass,
    /// 0b101: stage 1 translates, stage 2 bypass.
    Stage1,
    /// 0b110: stage 1 bypass, stage 2 translates (needs SMMU_IDR0.S2P).
    Stage2,
    /// 0b111: stage 1 then stage 2 ("nested"); the CD table, L1CD and stage 1 table
    /// addresses are IPAs, translated by stage 2 (3.3.3, 3.4).
    Nested,
}

impl SteConfig {
    /// Stage 1 translates (Config[0]).
    pub fn s1(self) -> bool {
        matches!(self, Self::Stage1 | Self::Nested)
    }
}

/// The stage 2 fields of an STE (5.2: S2T0SZ, S2SL0, S2TG, S2PS, S2AFFD, S2R, S2TTB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct S2Cfg {
    /// S2T0SZ: the IPA space is 2^(64 - tsz) bytes.
    pub tsz: u32,
    /// Start level of the walk, from S2SL0 and the granule (Arm ARM D8 "VTCR_EL2.SL0").
    pub start_level: u32,
    /// log2 of the granule: 12, 14 or 16.
    pub granule: u32,
    /// Effective S2PS in bits: MIN(S2PS, SMMU_IDR5.OAS), at most 48 below 64KB granules.
    pub ps_bits: u32,
    /// S2TTB[51:4].
    pub ttb: u64,
    /// S2AFFD: an Access flag of 0 does not fault.
    pub affd: bool,
    /// S2R: stage 2 faults are recorded.
    pub record: bool,
}

/// A decoded, valid STE.
#[derive(Clone, Debug)]
pub(crate) struct Ste {
    pub config: SteConfig,
    /// S1ContextPtr[55:6].
    pub s1_context_ptr: u64,
    /// S1Fmt[5:4] with 0b11 folded into 0b00 ("Reserved, behaves as 0b00").
    pub s1_fmt: u8,
    /// S1CDMax[63:59], 0 when SMMU_IDR1.SSIDSIZE == 0 (the field is IGNORED then).
    pub s1_cd_max: u8,
    /// S1DSS[65:64] with 0b11 folded into 0b00 ("Reserved, behaves as 0b00").
    pub s1_dss: u8,
    /// MemAttr[99:96], MTCFG[100], SHCFG[109:108], PRIVCFG[113:112], INSTCFG[115:114].
    pub mem_attr: u8,
    pub mtcfg: bool,
    pub shcfg: u8,
    pub privcfg: u8,
    pub instcfg: u8,
    /// S2VMID[143:128] when stage 2 is implemented, else 0 (5.2: VMID tags TLB entries).
    pub vmid: u16,
    /// Stage 2 configuration when Config[1] (stage 2 translates).
    pub s2: Option<S2Cfg>,
}

/// One translation table (TTB0 or TTB1) of a CD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableCfg {
    /// TxSZ, 16..=39.
    pub tsz: u32,
    /// log2 of the granule: 12, 14 or 16.
    pub granule: u32,
    /// Table base, TTBx[51:4].
    pub ttb: u64,
    /// HADx: hierarchical attributes disabled.
    pub had: bool,
}

/// A decoded, valid CD.
#[derive(Clone, Debug)]
pub(crate) struct Cd {
    /// `None` when EPDx == 1.
    pub tt: [Option<TableCfg>; 2],
    pub tbi: [bool; 2],
    /// Effective IPS in bits: MIN(CD.IPS, SMMU_IDR5.OAS).
    pub ips_bits: u32,
    pub asid: u16,
    pub affd: bool,
    /// CD.R: record translation-related faults.
    pub record: bool,
    pub pan: bool,
    pub wxn: bool,
    pub mair: u64,
}

/// Why a configuration lookup failed: the event to record (no event for a silent abort).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CfgError {
    /// Event number from [`event_id`]; for C_BAD_SUBSTREAMID the SubstreamID to report.
    Event { id: u8, ssid: Option<u32> },
}

fn bad(id: u8) -> CfgError {
    CfgError::Event { id, ssid: None }
}

/// Decodes and validates the eight STE words (5.2, 5.2.2 "Validity of STE").
pub(crate) fn decode_ste(f: &Features, w: &[u64; 8]) -> Result<Ste, CfgError> {
    if !bit(w[0], 0) {
        return Err(bad(event_id::C_BAD_STE));
    }
    let cfg = bits(w[0], 3, 1);
    let config = match cfg {
        0b100 => SteConfig::Bypass,
        0b101 => SteConfig::Stage1,
        // 0b0xx: "Reserved (behaves as 0b000)".
        0b000..=0b011 => SteConfig::Abort,
        // 0b11x: ILLEGAL when S2P == 0.
        _ if !f.s2p => return Err(bad(event_id::C_BAD_STE)),
        0b110 => SteConfig::Stage2,
        _ => SteConfig::Nested,
    };
    let mut ste = Ste {
        config,
        s1_context_ptr: w[0] & (((1 << 56) - 1) & !0x3f),
        s1_fmt: 0,
        s1_cd_max: 0,
        s1_dss: 0,
        mem_attr: bits(w[1], 35, 32) as u8,
        mtcfg: bit(w[1], 36),
        shcfg: bits(w[1], 45, 44) as u8,
        privcfg: bits(w[1], 49, 48) as u8,
        instcfg: bits(w[1], 51, 50) as u8,
        vmid: if f.s2p { bits(w[2], 15, 0) as u16 } else { 0 },
        s2: None,
    };
    if matches!(config, SteConfig::Stage2 | SteConfig::Nested) {
        ste.s2 = Some(decode_s2(f, w)?);
    }
    if !config.s1() {
        // All S1* fields are IGNORED when stage 1 bypasses.
        return Ok(ste);
    }
    if !f.s1p {
        return Err(bad(event_id::C_BAD_STE));
    }
    // STRW[95:94]: only NS-EL1 (0b00) is usable with SMMU_IDR0.HYP == 0 on the Non-secure
    // programming interface; the others are ILLEGAL or Reserved here.
    if bits(w[1], 31, 30) != 0 {
        return Err(bad(event_id::C_BAD_STE));
    }
    // S1STALLD[91]: stall is not supported (IDR0.STALL_MODEL == 0b01). QEMU treats a set
    // S1STALLD as C_BAD_STE and the model follows it.
    if bit(w[1], 27) {
        return Err(bad(event_id::C_BAD_STE));
    }
    let cd_max = bits(w[0], 63, 59) as u8;
    if f.quirks.reject_s1cdmax && cd_max != 0 {
        return Err(bad(event_id::C_BAD_STE));
    }
    if f.ssidsize != 0 {
        // "The allowable range is 0 to SMMU_IDR1.SSIDSIZE inclusive. Other values are ILLEGAL."
        if cd_max > f.ssidsize {
            return Err(bad(event_id::C_BAD_STE));
        }
        ste.s1_cd_max = cd_max;
    }
    if ste.s1_cd_max != 0 {
        let fmt = bits(w[0], 5, 4) as u8;
        ste.s1_fmt = if fmt == 0b11 { 0 } else { fmt };
        if ste.s1_fmt != 0 && !f.cd2l {
            return Err(bad(event_id::C_BAD_STE));
        }
        let dss = bits(w[1], 1, 0) as u8;
        ste.s1_dss = if dss == 0b11 { 0 } else { dss };
    }
    Ok(ste)
}

/// Decodes and validates the stage 2 fields of an STE (5.2, "S2T0SZ" ... "S2TTB", and the
/// ILLEGAL combinations of 5.2.2): AArch64 tables only, a supported granule, S2SL0 and S2T0SZ
/// giving at most 16 concatenated start-level tables, S2TTB within the effective S2PS, no
/// big-endian tables (TTENDIAN), no stall (S2S), as QEMU checks them.
fn decode_s2(f: &Features, w: &[u64; 8]) -> Result<S2Cfg, CfgError> {
    let illegal = Err(bad(event_id::C_BAD_STE));
    let vtcr = w[2];
    // S2AA64[179], S2ENDI[180], S2S[185].
    if !bit(vtcr, 51) || bit(vtcr, 52) || bit(vtcr, 57) {
        return illegal;
    }
    let granule = match bits(vtcr, 47, 46) {
        0b00 if f.gran4k => 12,
        0b01 if f.gran64k => 16,
        0b10 if f.gran16k => 14,
        _ => return illegal,
    };
    let sl0 = bits(vtcr, 39, 38) as u32;
    if sl0 == 0b11 {
        return illegal;
    }
    let start_level = if granule == 12 {
        2 - sl0 as i32
    } else {
        3 - sl0 as i32
    };
    let tsz = bits(vtcr, 37, 32) as u32;
    let mut ps_bits = pa_bits(bits(vtcr, 50, 48)).min(f.oas_bits());
    if granule != 16 {
        ps_bits = ps_bits.min(48);
    }
    let min_tsz = if granule == 16 {
        64 - ps_bits
    } else {
        (64 - ps_bits).max(16)
    };
    if tsz > 39 || tsz < min_tsz || start_level < 0 {
        return illegal;
    }
    let start_level = start_level as u32;
    // Bits the start level resolves beyond one table: at most 4 (16 concatenated tables).
    let lsb = granule + (granule - 3) * (3 - start_level);
    let inputsize = 64 - tsz;
    if inputsize < lsb || inputsize - lsb > (granule - 3) + 4 {
        return illegal;
    }
    let ttb = w[3] & (((1 << 52) - 1) & !0xf);
    if ttb >> ps_bits != 0 {
        return illegal;
    }
    Ok(S2Cfg {
        tsz,
        start_level,
        granule,
        ps_bits,
        ttb,
        affd: bit(vtcr, 53),
        record: bit(vtcr, 58),
    })
}

/// Decodes and validates the eight CD words (5.4, 5.4.2 "Validity of CD").
pub(crate) fn decode_cd(f: &Features, w: &[u64; 8]) -> Result<Cd, CfgError> {
    let c = w[0];
    let illegal = Err(bad(event_id::C_BAD_CD));
    // V[31], AA64[41] (only VMSAv8-64 tables are implemented: IDR0.TTF == 0b10).
    if !bit(c, 31) || !bit(c, 41) {
        return illegal;
    }
    // A[46] must be 1 with TERM_MODEL == 1; S[44] must be 0 without stall support (as QEMU).
    if !bit(c, 46) || bit(c, 44) {
        return illegal;
    }
    // HD[42], HA[43]: ILLEGAL with SMMU_IDR0.HTTU == 0b00.
    if bit(c, 42) || bit(c, 43) {
        return illegal;
    }
    let asid = bits(c, 63, 48) as u16;
    if !f.asid16 && asid > 0xff {
        return illegal;
    }
    let ips_bits = pa_bits(bits(c, 34, 32)).min(f.oas_bits());
    let mut cd = Cd {
        tt: [None, None],
        tbi: [bit(c, 38), bit(c, 39)],
        ips_bits,
        asid,
        affd: bit(c, 35),
        record: bit(c, 45),
        pan: bit(c, 40),
        wxn: bit(c, 36),
        mair: w[3],
    };
    // Per table: (TxSZ, TGx, EPDx, TTBx word, TGx encoding is different for TTB1).
    let tables = [
        (bits(c, 5, 0), bits(c, 7, 6), bit(c, 14), w[1], false),
        (bits(c, 21, 16), bits(c, 23, 22), bit(c, 30), w[2], true),
    ];
    for (i, &(tsz, tg, epd, ttbw, is_tt1)) in tables.iter().enumerate() {
        if epd {
            continue;
        }
        // ENDI[15]: ILLEGAL to select big-endian with TTENDIAN == 0b10 unless both EPDs are set.
        if bit(c, 15) {
            return illegal;
        }
        // T0SZ/T1SZ: with IDR3.STT == 0 the valid range is 16..=39; out of range is ILLEGAL in
        // SMMUv3.1 and later.
        if !(16..=39).contains(&tsz) {
            return illegal;
        }
        let granule = match (is_tt1, tg) {
            (false, 0b00) | (true, 0b10) => 12,
            (false, 0b01) | (true, 0b11) => 16,
            (false, 0b10) | (true, 0b01) => 14,
            _ => return illegal,
        };
        let supported = match granule {
            12 => f.gran4k,
            14 => f.gran16k,
            _ => f.gran64k,
        };
        if !supported {
            return illegal;
        }
        let ttb = ttbw & (((1 << 52) - 1) & !0xf);
        // "ILLEGAL for the address in this field to be outside the range described by the CD's
        // effective IPS value", and outside 48 bits for granules below 64KB.
        if ttb >> ips_bits != 0 || (granule < 16 && ttb >> 48 != 0) {
            return illegal;
        }
        cd.tt[i] = Some(TableCfg {
            tsz: tsz as u32,
            granule,
            ttb,
            had: f.had && bit(ttbw, 1),
        });
    }
    Ok(cd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_config_aborts_and_s2_is_bad() {
        let f = Features::default();
        let mut w = [0u64; 8];
        w[0] = 1 | (0b010 << 1);
        assert_eq!(decode_ste(&f, &w).unwrap().config, SteConfig::Abort);
        w[0] = 1 | (0b110 << 1);
        assert_eq!(decode_ste(&f, &w).err(), Some(bad(event_id::C_BAD_STE)));
    }

    #[test]
    fn cd_tsz_range_is_checked() {
        let f = Features::default();
        let mut w = [0u64; 8];
        // V, AA64, A, T0SZ = 40 (too small a region), TG0 = 4K, EPD1.
        w[0] = (1 << 31) | (1 << 41) | (1 << 46) | 40 | (1 << 30);
        assert!(decode_cd(&f, &w).is_err());
        w[0] = (w[0] & !0x3f) | 25;
        assert!(decode_cd(&f, &w).is_ok());
    }
}
