// SPDX-License-Identifier: GPL-2.0
//! Stage 1 VMSAv8-64 translation table walk (Arm ARM D8, as referenced by spec 3.4 and 5.4).
//!
//! 4KB, 16KB and 64KB granules, 48-bit descriptors (no FEAT_LPA/LPA2), start level from TxSZ,
//! table/block/page descriptors, hierarchical permissions (unless HADx), Access flag (no HTTU),
//! Address Size checks against the CD's effective IPS for table and output addresses.
//!
//! Stage 2 (Arm ARM D8, spec 3.4 and 5.2): the same descriptor formats with S2AP, start level
//! from S2SL0, up to 16 concatenated start-level tables. In a nested configuration every stage
//! 1 table address (TTBx included) is an IPA that stage 2 translates first; a stage 2 fault
//! there is reported with CLASS = TT.

use crate::config::{Cd, S2Cfg, TableCfg};
use crate::spec::{bit, bits};
use physmem::PhysMem;

/// The fault a walk or a permission check ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WalkFault {
    Translation,
    AddrSize,
    Access,
    Permission,
}

/// Why a stage 1 walk stopped: a stage 1 fault, or a stage 2 fault on the IPA of one of its
/// tables (nested configurations only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WalkError {
    S1(WalkFault),
    S2 { fault: WalkFault, ipa: u64 },
}

impl From<WalkFault> for WalkError {
    fn from(f: WalkFault) -> Self {
        Self::S1(f)
    }
}

/// A stage 2 translation: the page or block holding an IPA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct S2Entry {
    /// Output address of the IPA.
    pub pa: u64,
}

/// Walks the stage 2 tables of `s2` for `ipa` (a `write` or a read). Checks, in QEMU's order
/// (the architecture gives them no order among themselves for one descriptor): IPA within
/// S2T0SZ, descriptor validity, Access flag (unless S2AFFD), S2AP[7:6] (bit 6 read, bit 7
/// write), output address within the effective S2PS.
pub(crate) fn walk_s2(
    mem: &PhysMem,
    s2: &S2Cfg,
    ipa: u64,
    write: bool,
) -> Result<S2Entry, WalkFault> {
    let g = s2.granule;
    let stride = g - 3;
    let inputsize = 64 - s2.tsz;
    if ipa >> inputsize != 0 {
        return Err(WalkFault::Translation);
    }
    let mut level = s2.start_level;
    // The start level resolves every IPA bit above it: with concatenated tables more than
    // `stride` bits. The (concatenated) start table is aligned to its size.
    let start_bits = inputsize - level_lsb(g, level);
    let mut base = s2.ttb & !((8u64 << start_bits) - 1);
    loop {
        let lsb = level_lsb(g, level);
        let nbits = if level == s2.start_level {
            start_bits
        } else {
            stride
        };
        let index = (ipa >> lsb) & ((1u64 << nbits) - 1);
        let desc = mem.read_u64(base + index * 8);
        let is_leaf = match desc & 3 {
            0b01 => {
                if level == 3 || !block_allowed(g, level) {
                    return Err(WalkFault::Translation);
                }
                true
            }
            0b11 => level == 3,
            _ => return Err(WalkFault::Translation),
        };
        if !is_leaf {
            base = desc & oa_mask(g);
            level += 1;
            continue;
        }
        if !bit(desc, 10) && !s2.affd {
            return Err(WalkFault::Access);
        }
        let allowed = if write { bit(desc, 7) } else { bit(desc, 6) };
        if !allowed {
            return Err(WalkFault::Permission);
        }
        let oa = desc & oa_mask(lsb);
        if oa >> s2.ps_bits != 0 {
            return Err(WalkFault::AddrSize);
        }
        return Ok(S2Entry {
            pa: oa | (ipa & ((1u64 << lsb) - 1)),
        });
    }
}

/// The PA of a stage 1 table at `addr`: `addr` itself, or its stage 2 translation (a read)
/// when nesting.
fn table_pa(mem: &PhysMem, s2: Option<&S2Cfg>, addr: u64) -> Result<u64, WalkError> {
    match s2 {
        None => Ok(addr),
        Some(s2) => walk_s2(mem, s2, addr, false)
            .map(|e| e.pa)
            .map_err(|fault| WalkError::S2 { fault, ipa: addr }),
    }
}

/// Stage 1 permissions of a translation, combined over the leaf and its table descriptors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    /// AP[2] or APTable[1]: no write at any privilege.
    pub read_only: bool,
    /// AP[1] and not APTable[0]: accessible to unprivileged (EL0) transactions.
    pub el0: bool,
    /// UXN or UXNTable.
    pub uxn: bool,
    /// PXN or PXNTable.
    pub pxn: bool,
}

/// Post-STE-override attributes of the transaction being translated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Acc {
    pub write: bool,
    pub privileged: bool,
    pub instruction: bool,
}

/// A cached stage 1 translation (one IOTLB entry).
#[derive(Clone, Debug)]
pub(crate) struct TlbEntry {
    pub vmid: u16,
    pub asid: u16,
    /// nG == 0: matches every ASID (of the VMID).
    pub global: bool,
    /// Input address of the first byte (in the TBI-normalised VA space).
    pub va: u64,
    /// log2 of the page or block size.
    pub size_log2: u32,
    /// Level of the leaf descriptor.
    pub level: u32,
    /// log2 of the granule the entry was walked with.
    pub granule: u32,
    pub pa: u64,
    pub perms: Perms,
    /// MAIR attribute byte selected by AttrIndx.
    pub attr: u8,
    /// SH[1:0] of the leaf.
    pub sh: u8,
}

impl TlbEntry {
    pub fn covers(&self, va: u64) -> bool {
        (va ^ self.va) >> self.size_log2 == 0
    }
    /// True when `[start, end]` overlaps the entry.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        let last = self.va | ((1u64 << self.size_log2) - 1);
        self.va <= end && start <= last
    }
}

/// Whether the access is permitted by stage 1 permissions (Arm ARM D8.4, with the SMMU's
/// CD.PAN and CD.WXN; EL0-writable regions are treated as PXN).
pub(crate) fn permits(p: &Perms, cd: &Cd, a: &Acc) -> bool {
    if a.write && p.read_only {
        return false;
    }
    if !a.privileged {
        if !p.el0 || (a.instruction && p.uxn) {
            return false;
        }
    } else if a.instruction {
        if p.pxn || (p.el0 && !p.read_only) {
            return false;
        }
    } else if cd.pan && p.el0 {
        return false;
    }
    !(a.instruction && cd.wxn && !p.read_only)
}

/// Lowest input-address bit resolved by a lookup at `level`.
fn level_lsb(granule: u32, level: u32) -> u32 {
    granule + (granule - 3) * (3 - level)
}

/// Whether a block descriptor is allowed at `level` with 48-bit output addresses.
fn block_allowed(granule: u32, level: u32) -> bool {
    match granule {
        12 => level == 1 || level == 2,
        _ => level == 2,
    }
}

/// Mask of bits `[47:lsb]`: the output/next-level address of a 48-bit descriptor.
fn oa_mask(lsb: u32) -> u64 {
    ((1u64 << 48) - 1) & !((1u64 << lsb) - 1)
}

/// Walks `tt` for `va` (already range-checked against TxSZ by the caller); with `s2`, the
/// table addresses are IPAs translated by that stage 2 and the entry's `pa` is an IPA.
pub(crate) fn walk(
    mem: &PhysMem,
    cd: &Cd,
    tt: &TableCfg,
    va: u64,
    acc: &Acc,
    vmid: u16,
    s2: Option<&S2Cfg>,
) -> Result<TlbEntry, WalkError> {
    let g = tt.granule;
    let stride = g - 3;
    let inputsize = 64 - tt.tsz;
    let mut level = 4 - (inputsize - 4) / stride;
    // The start-level table is aligned to its size; bits below are treated as zero.
    let start_bits = inputsize - level_lsb(g, level);
    let mut base = tt.ttb & !((8u64 << start_bits) - 1);
    let mut perms = Perms::default();
    let (mut ap_table_ro, mut ap_table_no_el0, mut uxn_table, mut pxn_table) =
        (false, false, false, false);
    loop {
        let lsb = level_lsb(g, level);
        let nbits = if lsb + stride > inputsize {
            inputsize - lsb
        } else {
            stride
        };
        let index = (va >> lsb) & ((1u64 << nbits) - 1);
        let desc = mem.read_u64(table_pa(mem, s2, base)? + index * 8);
        let is_leaf = match desc & 3 {
            0b01 => {
                if level == 3 || !block_allowed(g, level) {
                    return Err(WalkFault::Translation.into());
                }
                true
            }
            0b11 => level == 3,
            _ => return Err(WalkFault::Translation.into()),
        };
        if !is_leaf {
            let next = desc & oa_mask(g);
            if next >> cd.ips_bits != 0 {
                return Err(WalkFault::AddrSize.into());
            }
            if !tt.had {
                ap_table_no_el0 |= bit(desc, 61);
                ap_table_ro |= bit(desc, 62);
                uxn_table |= bit(desc, 60);
                pxn_table |= bit(desc, 59);
            }
            base = next;
            level += 1;
            continue;
        }
        let oa = desc & oa_mask(lsb);
        if oa >> cd.ips_bits != 0 {
            return Err(WalkFault::AddrSize.into());
        }
        // Access flag (AF[10]); HTTU is not implemented, so AF == 0 faults unless CD.AFFD.
        if !bit(desc, 10) && !cd.affd {
            return Err(WalkFault::Access.into());
        }
        perms.read_only = bit(desc, 7) || ap_table_ro;
        perms.el0 = bit(desc, 6) && !ap_table_no_el0;
        perms.uxn = bit(desc, 54) || uxn_table;
        perms.pxn = bit(desc, 53) || pxn_table;
        if !permits(&perms, cd, acc) {
            return Err(WalkFault::Permission.into());
        }
        let attr_idx = bits(desc, 4, 2);
        return Ok(TlbEntry {
            vmid,
            asid: cd.asid,
            global: !bit(desc, 11),
            va: va & !((1u64 << lsb) - 1),
            size_log2: lsb,
            level,
            granule: g,
            pa: oa,
            perms,
            attr: (cd.mair >> (8 * attr_idx)) as u8,
            sh: bits(desc, 9, 8) as u8,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_geometry() {
        // 4KB, 48-bit: level 0 resolves VA[47:39].
        assert_eq!(level_lsb(12, 0), 39);
        assert_eq!(level_lsb(12, 3), 12);
        // 16KB: level 0 resolves VA[47] only, level 1 VA[46:36].
        assert_eq!(level_lsb(14, 1), 36);
        // 64KB: level 1 resolves VA[47:42].
        assert_eq!(level_lsb(16, 1), 42);
        assert!(!block_allowed(12, 0));
        assert!(block_allowed(12, 1));
        assert!(!block_allowed(16, 1));
    }

    fn s2(ttb: u64) -> S2Cfg {
        // 4KB granule, 40-bit IPA (S2T0SZ 24) from level 1: two concatenated level 1 tables.
        S2Cfg {
            tsz: 24,
            start_level: 1,
            granule: 12,
            ps_bits: 40,
            ttb,
            affd: false,
            record: true,
        }
    }

    #[test]
    fn s2_concatenated_start_tables_block_and_s2ap() {
        let mem = PhysMem::new(0x4000_0000, 1 << 20);
        let ttb = 0x4000_0000;
        // IPA 0x80_4000_0000: IPA[39] selects the second table, index 1 there (8 KB table).
        let ro_block = 0x4000_0000 | 0b01 | (0b01 << 6) | (1 << 10);
        mem.write_u64(ttb + 4096 + 8, ro_block);
        let e = walk_s2(&mem, &s2(ttb), 0x80_4000_1234, false).unwrap();
        assert_eq!(e.pa, 0x4000_1234);
        // S2AP = 0b01: read only.
        assert_eq!(
            walk_s2(&mem, &s2(ttb), 0x80_4000_1234, true),
            Err(WalkFault::Permission)
        );
        // AF = 0 faults before the permission check unless S2AFFD.
        mem.write_u64(ttb + 4096 + 8, ro_block & !(1 << 10));
        assert_eq!(
            walk_s2(&mem, &s2(ttb), 0x80_4000_0000, true),
            Err(WalkFault::Access)
        );
        let affd = S2Cfg {
            affd: true,
            ..s2(ttb)
        };
        assert!(walk_s2(&mem, &affd, 0x80_4000_0000, false).is_ok());
        // Beyond the 40-bit IPA space, and an invalid descriptor.
        assert_eq!(
            walk_s2(&mem, &s2(ttb), 1 << 40, false),
            Err(WalkFault::Translation)
        );
        assert_eq!(
            walk_s2(&mem, &s2(ttb), 0x4000_0000, false),
            Err(WalkFault::Translation)
        );
    }
}
