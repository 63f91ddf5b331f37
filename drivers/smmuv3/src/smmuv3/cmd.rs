// SPDX-License-Identifier: GPL-2.0
//! Command queue entries (IHI0070 chapter 4).
//!
//! [`Command`] is what the driver wants done; [`Command::encode`] turns it into the 16-byte
//! queue entry [`CmdEntry`], rejecting values that do not fit their fields rather than silently
//! truncating them (a truncated StreamID would invalidate someone else's configuration).

use super::error::{Error, Result};

bitfield! {
    /// A 16-byte command queue entry. Commands overlay different fields on the same bits; each
    /// field documents the commands that use it.
    pub struct CmdEntry[2] {
        /// Opcode (all commands).
        OP @ 0[7:0] => op, set_op: u8;
        /// ATC_INV: Global (invalidate all SubstreamIDs' ATC entries).
        ATC_GLOBAL @ 0[9:9] => atc_global, set_atc_global: bool;
        /// SSV: SubstreamID valid (PREFETCH_CFG, ATC_INV, PRI_RESP).
        SSV @ 0[11:11] => ssv, set_ssv: bool;
        /// SubstreamID (CFGI_CD, PREFETCH_CFG, ATC_INV, PRI_RESP).
        SSID @ 0[31:12] => ssid, set_ssid: u32;
        /// StreamID (PREFETCH_CFG, CFGI_STE(_RANGE), CFGI_CD(_ALL), ATC_INV, PRI_RESP, RESUME).
        SID @ 0[63:32] => sid, set_sid: u32;
        /// TLBI_*: NUM, number of 2^SCALE-page blocks minus one (range invalidation).
        TLBI_NUM @ 0[16:12] => tlbi_num, set_tlbi_num: u8;
        /// TLBI_*: SCALE, log2 of the block size in pages (range invalidation).
        TLBI_SCALE @ 0[24:20] => tlbi_scale, set_tlbi_scale: u8;
        /// TLBI_*: VMID.
        TLBI_VMID @ 0[47:32] => tlbi_vmid, set_tlbi_vmid: u16;
        /// TLBI_*: ASID.
        TLBI_ASID @ 0[63:48] => tlbi_asid, set_tlbi_asid: u16;
        /// CMD_SYNC: CS, completion signal (0 none, 1 MSI/IRQ, 2 SEV).
        SYNC_CS @ 0[13:12] => sync_cs, set_sync_cs: u8;
        /// CMD_SYNC: MSH, shareability of the completion MSI write.
        SYNC_MSH @ 0[23:22] => sync_msh, set_sync_msh: u8;
        /// CMD_SYNC: MSIAttr, memory type of the completion MSI write.
        SYNC_MSIATTR @ 0[27:24] => sync_msiattr, set_sync_msiattr: u8;
        /// CMD_SYNC: MSIData written on completion.
        SYNC_MSIDATA @ 0[63:32] => sync_msidata, set_sync_msidata: u32;
        /// RESUME: Resp (0 terminate, 1 retry, 2 abort).
        RESUME_RESP @ 0[13:12] => resume_resp, set_resume_resp: u8;
        /// CFGI_STE, CFGI_CD, TLBI_*_VA: Leaf (only the last level / the entry itself).
        LEAF @ 1[0:0] => leaf, set_leaf: bool;
        /// CFGI_STE_RANGE: Range, invalidates 2^(Range+1) StreamIDs (31: all).
        CFGI_RANGE @ 1[4:0] => cfgi_range, set_cfgi_range: u8;
        /// PREFETCH_CFG / PREFETCH_ADDR: Size.
        PREFETCH_SIZE @ 1[4:0] => prefetch_size, set_prefetch_size: u8;
        /// TLBI_*_VA: TTL, level of the leaf entries (0: unknown).
        TLBI_TTL @ 1[9:8] => tlbi_ttl, set_tlbi_ttl: u8;
        /// TLBI_*_VA: TG, granule of the range (0 none, 1 4KB, 2 16KB, 3 64KB).
        TLBI_TG @ 1[11:10] => tlbi_tg, set_tlbi_tg: u8;
        /// TLBI_*_VA, ATC_INV, PREFETCH_ADDR: Address\[63:12\] (kept in place).
        ADDR @ 1[63:12] => addr, set_addr: u64;
        /// ATC_INV: Size, log2 of the span in 4KB pages.
        ATC_SIZE @ 1[5:0] => atc_size, set_atc_size: u8;
        /// CMD_SYNC: MSIAddress\[51:2\] (kept in place).
        SYNC_MSIADDR @ 1[51:2] => sync_msiaddr, set_sync_msiaddr: u64;
        /// RESUME: STAG of the stalled transaction.
        RESUME_STAG @ 1[15:0] => resume_stag, set_resume_stag: u16;
    }
}

/// Command opcodes (IHI0070 4.x; arm-smmu-v3.h CMDQ_OP_*).
pub mod op {
    /// CMD_PREFETCH_CONFIG.
    pub const PREFETCH_CFG: u8 = 0x01;
    /// CMD_PREFETCH_ADDR.
    pub const PREFETCH_ADDR: u8 = 0x02;
    /// CMD_CFGI_STE.
    pub const CFGI_STE: u8 = 0x03;
    /// CMD_CFGI_STE_RANGE (CFGI_ALL is this with Range = 31).
    pub const CFGI_STE_RANGE: u8 = 0x04;
    /// CMD_CFGI_CD.
    pub const CFGI_CD: u8 = 0x05;
    /// CMD_CFGI_CD_ALL.
    pub const CFGI_CD_ALL: u8 = 0x06;
    /// CMD_TLBI_NH_ALL.
    pub const TLBI_NH_ALL: u8 = 0x10;
    /// CMD_TLBI_NH_ASID.
    pub const TLBI_NH_ASID: u8 = 0x11;
    /// CMD_TLBI_NH_VA.
    pub const TLBI_NH_VA: u8 = 0x12;
    /// CMD_TLBI_NH_VAA.
    pub const TLBI_NH_VAA: u8 = 0x13;
    /// CMD_TLBI_EL2_ALL.
    pub const TLBI_EL2_ALL: u8 = 0x20;
    /// CMD_TLBI_EL2_ASID.
    pub const TLBI_EL2_ASID: u8 = 0x21;
    /// CMD_TLBI_EL2_VA.
    pub const TLBI_EL2_VA: u8 = 0x22;
    /// CMD_TLBI_S12_VMALL.
    pub const TLBI_S12_VMALL: u8 = 0x28;
    /// CMD_TLBI_S2_IPA.
    pub const TLBI_S2_IPA: u8 = 0x2a;
    /// CMD_TLBI_NSNH_ALL.
    pub const TLBI_NSNH_ALL: u8 = 0x30;
    /// CMD_ATC_INV.
    pub const ATC_INV: u8 = 0x40;
    /// CMD_PRI_RESP.
    pub const PRI_RESP: u8 = 0x41;
    /// CMD_RESUME.
    pub const RESUME: u8 = 0x44;
    /// CMD_STALL_TERM.
    pub const STALL_TERM: u8 = 0x45;
    /// CMD_SYNC.
    pub const CMD_SYNC: u8 = 0x46;
}

/// Completion signal of a CMD_SYNC (CMD_SYNC.CS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCs {
    /// No signal: completion is observed by CONS moving past the CMD_SYNC.
    None,
    /// Write `msidata` to `msiaddr` (the MSI doubles as a completion flag in memory).
    Msi {
        /// Address of the MSI write (bits \[51:2\]).
        addr: u64,
        /// Data written.
        data: u32,
    },
    /// Send a WFE wake-up event (the default: the CPU may wait in WFE, we poll CONS).
    Sev,
}

/// Range and level hints of a TLBI_*_VA (IHI0070 4.4.1.1). All zero means "one page, level
/// unknown", valid on every SMMU; NUM/SCALE need IDR3.RIL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlbiRange {
    /// NUM: number of blocks minus one.
    pub num: u8,
    /// SCALE: log2 of the block size in pages.
    pub scale: u8,
    /// TG: granule (0 no range, 1 4KB, 2 16KB, 3 64KB).
    pub tg: u8,
    /// TTL: level of the leaf entries (needs TG != 0).
    pub ttl: u8,
}

/// A command the driver issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Prefetch the configuration of a stream (a hint).
    PrefetchCfg {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
    },
    /// Invalidate the cached STE of one stream (and with `leaf == false` the L1 descriptor).
    CfgiSte {
        /// StreamID.
        sid: u32,
        /// Only the STE itself.
        leaf: bool,
    },
    /// Invalidate the STEs of 2^(range+1) StreamIDs aligned on that size (31: all).
    CfgiSteRange {
        /// Any StreamID inside the range.
        sid: u32,
        /// log2(count) - 1.
        range: u8,
    },
    /// Invalidate the cached CD of one (StreamID, SubstreamID).
    CfgiCd {
        /// StreamID.
        sid: u32,
        /// SubstreamID.
        ssid: u32,
        /// Only the CD itself (not the L1 CD descriptor).
        leaf: bool,
    },
    /// Invalidate every cached CD of one stream.
    CfgiCdAll {
        /// StreamID.
        sid: u32,
    },
    /// Invalidate all non-hypervisor stage-1 TLB entries of a VMID.
    TlbiNhAll {
        /// VMID.
        vmid: u16,
    },
    /// Invalidate the stage-1 TLB entries of one ASID.
    TlbiNhAsid {
        /// ASID.
        asid: u16,
        /// VMID (0 for NS-EL1 streams without stage 2).
        vmid: u16,
    },
    /// Invalidate stage-1 TLB entries of one ASID by address (or address range).
    TlbiNhVa {
        /// ASID.
        asid: u16,
        /// VMID.
        vmid: u16,
        /// Virtual address (bits \[63:12\] used).
        addr: u64,
        /// Only leaf entries (the walk cache is untouched).
        leaf: bool,
        /// Range and level hints.
        range: TlbiRange,
    },
    /// Invalidate all EL2 TLB entries.
    TlbiEl2All,
    /// Invalidate the stage-1 and stage-2 entries of a VMID.
    TlbiS12Vmall {
        /// VMID.
        vmid: u16,
    },
    /// Invalidate all non-secure, non-hypervisor TLB entries.
    TlbiNsnhAll,
    /// Invalidate a device's ATC.
    AtcInv {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if the invalidation is per-PASID.
        ssid: Option<u32>,
        /// Address (bits \[63:12\] used, aligned to the span).
        addr: u64,
        /// log2 of the span in 4KB pages (52: everything).
        size: u8,
        /// All SubstreamIDs.
        global: bool,
    },
    /// Resume or terminate a stalled transaction.
    Resume {
        /// StreamID.
        sid: u32,
        /// STAG from the fault event.
        stag: u16,
        /// 0 terminate, 1 retry, 2 abort.
        resp: u8,
    },
    /// Wait for completion of every earlier command.
    Sync {
        /// Completion signal.
        cs: SyncCs,
    },
}

fn check(field: super::bitfield::Field, v: u64) -> Result<()> {
    if field.fits(v) {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

impl Command {
    /// The opcode of the command.
    pub const fn opcode(&self) -> u8 {
        match self {
            Self::PrefetchCfg { .. } => op::PREFETCH_CFG,
            Self::CfgiSte { .. } => op::CFGI_STE,
            Self::CfgiSteRange { .. } => op::CFGI_STE_RANGE,
            Self::CfgiCd { .. } => op::CFGI_CD,
            Self::CfgiCdAll { .. } => op::CFGI_CD_ALL,
            Self::TlbiNhAll { .. } => op::TLBI_NH_ALL,
            Self::TlbiNhAsid { .. } => op::TLBI_NH_ASID,
            Self::TlbiNhVa { .. } => op::TLBI_NH_VA,
            Self::TlbiEl2All => op::TLBI_EL2_ALL,
            Self::TlbiS12Vmall { .. } => op::TLBI_S12_VMALL,
            Self::TlbiNsnhAll => op::TLBI_NSNH_ALL,
            Self::AtcInv { .. } => op::ATC_INV,
            Self::Resume { .. } => op::RESUME,
            Self::Sync { .. } => op::CMD_SYNC,
        }
    }

    /// CFGI_ALL: invalidate every cached STE (CFGI_STE_RANGE with Range = 31).
    pub const fn cfgi_all() -> Self {
        Self::CfgiSteRange { sid: 0, range: 31 }
    }

    /// The CMD_SYNC the driver uses: SEV completion, MSI attributes as Linux programs them.
    pub const fn sync() -> Self {
        Self::Sync { cs: SyncCs::Sev }
    }

    /// Encodes the command into a queue entry.
    ///
    /// Fails with [`Error::InvalidArgument`] if a value does not fit its field.
    pub fn encode(&self) -> Result<CmdEntry> {
        let e = CmdEntry::default().set_op(self.opcode());
        let e = match *self {
            Self::PrefetchCfg { sid, ssid } => {
                let e = e.set_sid(sid);
                match ssid {
                    Some(s) => {
                        check(CmdEntry::SSID, s.into())?;
                        e.set_ssv(true).set_ssid(s)
                    }
                    None => e,
                }
            }
            Self::CfgiSte { sid, leaf } => e.set_sid(sid).set_leaf(leaf),
            Self::CfgiSteRange { sid, range } => {
                check(CmdEntry::CFGI_RANGE, range.into())?;
                e.set_sid(sid).set_cfgi_range(range)
            }
            Self::CfgiCd { sid, ssid, leaf } => {
                check(CmdEntry::SSID, ssid.into())?;
                e.set_sid(sid).set_ssid(ssid).set_leaf(leaf)
            }
            Self::CfgiCdAll { sid } => e.set_sid(sid),
            Self::TlbiNhAll { vmid } => e.set_tlbi_vmid(vmid),
            Self::TlbiNhAsid { asid, vmid } => e.set_tlbi_asid(asid).set_tlbi_vmid(vmid),
            Self::TlbiNhVa {
                asid,
                vmid,
                addr,
                leaf,
                range,
            } => {
                check(CmdEntry::TLBI_NUM, range.num.into())?;
                check(CmdEntry::TLBI_SCALE, range.scale.into())?;
                check(CmdEntry::TLBI_TG, range.tg.into())?;
                check(CmdEntry::TLBI_TTL, range.ttl.into())?;
                e.set_tlbi_asid(asid)
                    .set_tlbi_vmid(vmid)
                    .set_tlbi_num(range.num)
                    .set_tlbi_scale(range.scale)
                    .set_leaf(leaf)
                    .set_tlbi_ttl(range.ttl)
                    .set_tlbi_tg(range.tg)
                    .set_addr(addr >> 12)
            }
            Self::TlbiEl2All | Self::TlbiNsnhAll => e,
            Self::TlbiS12Vmall { vmid } => e.set_tlbi_vmid(vmid),
            Self::AtcInv {
                sid,
                ssid,
                addr,
                size,
                global,
            } => {
                check(CmdEntry::ATC_SIZE, size.into())?;
                let e = e
                    .set_sid(sid)
                    .set_atc_global(global)
                    .set_atc_size(size)
                    .set_addr(addr >> 12);
                match ssid {
                    Some(s) => {
                        check(CmdEntry::SSID, s.into())?;
                        e.set_ssv(true).set_ssid(s)
                    }
                    None => e,
                }
            }
            Self::Resume { sid, stag, resp } => {
                check(CmdEntry::RESUME_RESP, resp.into())?;
                e.set_sid(sid).set_resume_resp(resp).set_resume_stag(stag)
            }
            Self::Sync { cs } => {
                let e = e
                    .set_sync_msh(super::regs::sh::ISH)
                    .set_sync_msiattr(super::regs::memattr::OIWB);
                match cs {
                    SyncCs::None => e.set_sync_cs(0),
                    SyncCs::Msi { addr, data } => e
                        .set_sync_cs(1)
                        .set_sync_msidata(data)
                        .set_sync_msiaddr(addr >> 2),
                    SyncCs::Sev => e.set_sync_cs(2),
                }
            }
        };
        Ok(e)
    }
}

/// Splits the invalidation of `[iova, iova + size)` of one ASID into TLBI_NH_VA commands.
///
/// `pgshift` is log2 of the smallest page size of the tables (12, 14 or 16) and `granule` the
/// size of the entries being invalidated (a page or block size, or the page size when
/// unknown). With `ril` (IDR3.RIL) each command covers up to 32 blocks of 2^SCALE pages and
/// carries the leaf level as TTL; without it one command per `granule` is produced. Commands
/// are handed to `emit` in address order; the first error stops the split. A range needing a
/// SCALE above 31 fails to encode: invalidate the whole ASID instead.
#[allow(clippy::too_many_arguments)]
pub fn tlbi_va_range(
    asid: u16,
    vmid: u16,
    iova: u64,
    size: u64,
    granule: u64,
    leaf: bool,
    pgshift: u32,
    ril: bool,
    mut emit: impl FnMut(Command) -> Result<()>,
) -> Result<()> {
    if size == 0 {
        return Ok(());
    }
    if !matches!(pgshift, 12 | 14 | 16) || !granule.is_power_of_two() {
        return Err(Error::InvalidArgument);
    }
    let end = iova.checked_add(size).ok_or(Error::InvalidArgument)?;
    let granule_shift = granule.trailing_zeros();
    if granule_shift < pgshift {
        return Err(Error::InvalidArgument);
    }
    let mut range = TlbiRange::default();
    let mut pages = 0u64;
    if ril {
        // Round a partial last page up: it still holds a translation.
        pages = size.div_ceil(1u64 << pgshift);
        // TG: 4KB -> 1, 16KB -> 2, 64KB -> 3.
        range.tg = ((pgshift - 10) / 2) as u8;
        if leaf {
            // Each level resolves (pgshift - 3) bits; level 3 maps pages.
            let bits_per_level = pgshift - 3;
            let levels_up = (granule_shift - pgshift) / bits_per_level;
            range.ttl = 3u32.saturating_sub(levels_up) as u8;
        } else if pages & 31 == 1 {
            // NUM = 0 and SCALE = 0 with TTL = 0 would be an unranged command on some
            // implementations' errata; round up to two pages like Linux does.
            pages += 1;
        }
    }
    let mut addr = iova;
    while addr < end {
        let step = if ril {
            if pages == 0 {
                break;
            }
            let scale = pages.trailing_zeros();
            let num = (pages >> scale) & 31;
            range.scale = scale as u8;
            range.num = (num as u8).wrapping_sub(1);
            pages -= num << scale;
            // A shift of 64 or more (a range beyond the address space) ends the walk; the
            // oversized SCALE has already been refused by `emit`'s encoding.
            num.checked_shl(scale + pgshift).unwrap_or(0)
        } else {
            granule
        };
        emit(Command::TlbiNhVa {
            asid,
            vmid,
            addr,
            leaf,
            range,
        })?;
        addr = match addr.checked_add(step) {
            Some(a) if step != 0 => a,
            _ => break,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn split(size: u64, granule: u64, leaf: bool, pgshift: u32, ril: bool) -> Vec<Command> {
        let mut v = Vec::new();
        tlbi_va_range(1, 0, 0x4000_0000, size, granule, leaf, pgshift, ril, |c| {
            v.push(c);
            Ok(())
        })
        .unwrap();
        v
    }

    fn ranges(v: &[Command]) -> Vec<(u64, TlbiRange)> {
        v.iter()
            .map(|c| match c {
                Command::TlbiNhVa { addr, range, .. } => (*addr, *range),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn tlbi_split_without_ril_is_per_granule() {
        let r = ranges(&split(3 << 12, 1 << 12, true, 12, false));
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].0, 0x4000_2000);
        assert_eq!(r[0].1, TlbiRange::default());
        // A 2MB block unmapped as one entry: one command.
        assert_eq!(split(2 << 20, 2 << 20, true, 12, false).len(), 1);
        assert!(split(0, 4096, true, 12, false).is_empty());
    }

    #[test]
    fn tlbi_split_with_ril_follows_the_binary_decomposition() {
        // 33 pages = 1 + 32: (NUM 0, SCALE 0) then (NUM 0, SCALE 5), TG 4KB, TTL 3.
        let r = ranges(&split(33 << 12, 1 << 12, true, 12, true));
        let t = |num, scale| TlbiRange {
            num,
            scale,
            tg: 1,
            ttl: 3,
        };
        assert_eq!(r, [(0x4000_0000, t(0, 0)), (0x4000_1000, t(0, 5))]);
        // 31 pages: one command, NUM 30.
        let r = ranges(&split(31 << 12, 1 << 12, true, 12, true));
        assert_eq!(r, [(0x4000_0000, t(30, 0))]);
        // Non-leaf single page: rounded to two pages (SCALE 1, NUM 0), TTL 0 (level unknown),
        // so NUM = SCALE = TTL = 0 never occurs (as in Linux).
        let r = ranges(&split(1 << 12, 1 << 12, false, 12, true));
        assert_eq!(
            r,
            [(
                0x4000_0000,
                TlbiRange {
                    num: 0,
                    scale: 1,
                    tg: 1,
                    ttl: 0
                }
            )]
        );
        // 64KB granule, 512MB block: TG 3, TTL 2, 8192 pages = SCALE 13.
        let r = ranges(&split(512 << 20, 512 << 20, true, 16, true));
        assert_eq!(
            r,
            [(
                0x4000_0000,
                TlbiRange {
                    num: 0,
                    scale: 13,
                    tg: 3,
                    ttl: 2
                }
            )]
        );
        // A partial page still invalidates that page.
        assert_eq!(split(100, 1 << 12, true, 12, true).len(), 1);
    }

    #[test]
    fn tlbi_split_refuses_bad_parameters_without_panicking() {
        let ok = |_c: Command| Ok(());
        assert!(tlbi_va_range(1, 0, 0, 4096, 4096, true, 13, true, ok).is_err());
        assert!(tlbi_va_range(1, 0, 0, 4096, 3000, true, 12, true, ok).is_err());
        assert!(tlbi_va_range(1, 0, u64::MAX - 10, 4096, 4096, true, 12, true, ok).is_err());
        // The whole address space: SCALE would exceed 31, so encoding fails instead of looping.
        let enc = |c: Command| c.encode().map(|_| ());
        let r = tlbi_va_range(1, 0, 0, u64::MAX, 4096, true, 12, true, enc);
        assert_eq!(r, Err(Error::InvalidArgument));
    }
}
