// SPDX-License-Identifier: GPL-2.0
//! Hitless updates of live STEs and CDs.
//!
//! The SMMU reads an entry (64 bytes) with only 64-bit single-copy atomicity, and may cache it
//! until told otherwise (CFGI_STE / CFGI_CD followed by CMD_SYNC). Rewriting a live entry word
//! by word could therefore expose a mix of old and new configuration. The rule used here
//! (the same one as Linux's `arm_smmu_write_entry`, derived from the IGNORED semantics of the
//! spec) is:
//!
//! 1. Write every bit the *current* configuration ignores to its target value (one sync).
//! 2. If now exactly one word still differs in bits the target uses, write it in a single
//!    64-bit store (one sync): that store is the atomic switch. Then clear leftovers that the
//!    target ignores (one sync, if any).
//! 3. If several words differ in used bits, no single store can switch atomically: write V=0
//!    (breaking the entry, one sync), fill words 1..7 (one sync), then write word 0 with V=1
//!    (one sync).
//!
//! Every step that changed memory is followed by exactly one [`EntryIo::sync`], and a step that
//! changed nothing costs nothing, which keeps the sync count minimal for each transition.

use super::error::{Error, Result};

/// Number of 64-bit words in an STE or a CD.
pub const ENTRY_WORDS: usize = 8;

/// Access to one live entry and the invalidation that makes a change visible to the SMMU.
pub trait EntryIo {
    /// Reads word `i` (< 8) of the entry as the SMMU would see it.
    fn read(&self, i: usize) -> u64;
    /// Writes word `i` (< 8) with a single 64-bit store.
    fn write(&mut self, i: usize, value: u64);
    /// Makes all previous writes visible to the SMMU and waits for it (CFGI_* + CMD_SYNC).
    fn sync(&mut self) -> Result<()>;
}

/// What an update cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Number of [`EntryIo::sync`] calls.
    pub syncs: u32,
    /// Whether the entry went through V=0 (transactions may have faulted meanwhile).
    pub breaking: bool,
}

/// Computes the used-bits mask of an entry value.
pub type UsedFn = fn(&[u64; ENTRY_WORDS]) -> [u64; ENTRY_WORDS];

/// Writes words `range` of `target` into `io`; syncs once if anything changed.
fn set_words(
    io: &mut impl EntryIo,
    target: &[u64; ENTRY_WORDS],
    range: core::ops::Range<usize>,
    stats: &mut UpdateStats,
) -> Result<bool> {
    let mut changed = false;
    for i in range {
        if let Some(&t) = target.get(i) {
            if io.read(i) != t {
                io.write(i, t);
                changed = true;
            }
        }
    }
    if changed {
        stats.syncs += 1;
        io.sync()?;
    }
    Ok(changed)
}

/// Updates the entry behind `io` to `target` without the SMMU ever observing a configuration
/// that is neither the old nor the new one (or, when unavoidable, an invalid entry).
///
/// Returns [`Error::InvalidArgument`] without writing anything if `target` sets bits that its
/// own configuration ignores: such bits could never be cleaned up hitlessly later.
pub fn write_entry(
    io: &mut impl EntryIo,
    target: &[u64; ENTRY_WORDS],
    used: UsedFn,
) -> Result<UpdateStats> {
    let mut cur = [0u64; ENTRY_WORDS];
    for (i, w) in cur.iter_mut().enumerate() {
        *w = io.read(i);
    }
    let cur_used = used(&cur);
    let target_used = used(target);
    let mut staged = [0u64; ENTRY_WORDS];
    let mut diff: u32 = 0;
    for i in 0..ENTRY_WORDS {
        if target[i] & !target_used[i] != 0 {
            return Err(Error::InvalidArgument);
        }
        // Bits the current configuration ignores may take their new value right away.
        staged[i] = (cur[i] & cur_used[i]) | (target[i] & !cur_used[i]);
        if staged[i] & target_used[i] != target[i] {
            diff |= 1 << i;
        }
    }

    let mut stats = UpdateStats::default();
    if diff.count_ones() == 1 {
        let critical = diff.trailing_zeros() as usize;
        // The critical word is written whole in the next step; staging it would cost a sync.
        staged[critical] = cur[critical];
        set_words(io, &staged, 0..ENTRY_WORDS, &mut stats)?;
        set_words(io, target, critical..critical + 1, &mut stats)?;
        set_words(io, target, 0..ENTRY_WORDS, &mut stats)?;
    } else if diff != 0 {
        staged[0] = 0;
        stats.breaking = true;
        set_words(io, &staged, 0..1, &mut stats)?;
        set_words(io, target, 1..ENTRY_WORDS, &mut stats)?;
        set_words(io, target, 0..1, &mut stats)?;
    } else {
        // Only ignored bits differ: one pass, one sync if anything changed.
        set_words(io, target, 0..ENTRY_WORDS, &mut stats)?;
    }
    Ok(stats)
}

/// [`UsedFn`] for STEs.
pub fn ste_used(words: &[u64; ENTRY_WORDS]) -> [u64; ENTRY_WORDS] {
    super::ste::Ste(*words).used_bits()
}

/// [`UsedFn`] for CDs.
pub fn cd_used(words: &[u64; ENTRY_WORDS]) -> [u64; ENTRY_WORDS] {
    super::cd::Cd(*words).used_bits()
}

/// Host tests: every transition case of Linux 6.12's KUnit suite
/// (`arm-smmu-v3-test.c`, `arm_smmu_v3_test_cases`) with its expected sync count and hitless
/// property, run against our writer and our STE/CD constructors.
#[cfg(test)]
mod tests {
    use super::super::cd::{Cd, S1Config};
    use super::super::ste::{s1dss, s1fmt, CdTableRef, MasterOptions, S2Config, Ste, SteFeatures};
    use super::*;

    /// An entry in host memory that checks, at every sync, that the SMMU would see either the
    /// initial or the target configuration (or an invalid entry, which is recorded).
    struct Recorder {
        entry: [u64; 8],
        init: [u64; 8],
        target: [u64; 8],
        used: UsedFn,
        syncs: u32,
        invalid_written: bool,
    }

    fn differs(entry: &[u64; 8], used: &[u64; 8], other: &[u64; 8]) -> bool {
        // arm-smmu-v3-test.c arm_smmu_entry_differs_in_used_bits().
        (0..8).any(|i| entry[i] & used[i] != other[i])
    }

    impl EntryIo for Recorder {
        fn read(&self, i: usize) -> u64 {
            self.entry[i]
        }
        fn write(&mut self, i: usize, value: u64) {
            self.entry[i] = value;
        }
        fn sync(&mut self) -> Result<()> {
            self.syncs += 1;
            if self.entry[0] == 0 {
                self.invalid_written = true;
            } else {
                let used = (self.used)(&self.entry);
                assert!(
                    !(differs(&self.entry, &used, &self.init)
                        && differs(&self.entry, &used, &self.target)),
                    "torn entry visible: {:x?}",
                    self.entry
                );
            }
            Ok(())
        }
    }

    fn expect(used: UsedFn, cur: [u64; 8], target: [u64; 8], syncs: u32, hitless: bool) {
        let mut r = Recorder {
            entry: cur,
            init: cur,
            target,
            used,
            syncs: 0,
            invalid_written: false,
        };
        let st = write_entry(&mut r, &target, used).unwrap();
        assert_eq!(r.entry, target, "final value");
        assert_eq!(r.syncs, syncs, "sync count");
        assert_eq!(st.syncs, syncs);
        // KUnit's "hitless" means no sync ever saw V = 0; an update from or to an invalid
        // entry is therefore never hitless even though it needs no breaking step.
        assert_eq!(r.invalid_written, !hitless, "hitless");
        if st.breaking {
            assert!(r.invalid_written);
        }
    }

    fn ste(cur: &Ste, target: &Ste, syncs: u32) {
        expect(ste_used, cur.0, target.0, syncs, true);
    }

    // arm-smmu-v3-test.c: `smmu.features = ARM_SMMU_FEAT_STALLS | ARM_SMMU_FEAT_ATTR_TYPES_OVR`.
    const FEAT: SteFeatures = SteFeatures {
        attr_types_ovr: true,
        stalls: true,
        e2h: false,
    };
    const ATS: MasterOptions = MasterOptions {
        ats: true,
        stall: false,
    };
    const STALL: MasterOptions = MasterOptions {
        ats: false,
        stall: true,
    };
    // arm-smmu-v3-test.c fake_cdtab_dma_addr.
    const CDTAB: u64 = 0xF0F0_F0F0_F0F0;

    fn bypass() -> Ste {
        Ste::bypass(&FEAT)
    }

    fn abort() -> Ste {
        Ste::abort()
    }

    // arm_smmu_test_make_cdtable_ste(): s1cdmax 0xFF, s1fmt 64K_L2.
    fn cdtable(dss: u8, dma: u64, m: MasterOptions) -> Ste {
        let cd = CdTableRef {
            dma,
            s1fmt: s1fmt::L2_64K,
            s1cdmax: 0xff,
        };
        Ste::s1_cdtable(&FEAT, &m, &cd, dss)
    }

    // arm_smmu_test_make_s2_ste().
    fn s2(m: MasterOptions) -> Ste {
        let cfg = S2Config {
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
        Ste::s2(&FEAT, &m, &cfg)
    }

    #[test]
    fn ste_bypass_to_abort() {
        ste(&bypass(), &abort(), 2);
    }

    #[test]
    fn ste_abort_to_bypass() {
        ste(&abort(), &bypass(), 2);
    }

    #[test]
    fn ste_cdtable_to_abort() {
        ste(&cdtable(s1dss::SSID0, CDTAB, ATS), &abort(), 2);
    }

    #[test]
    fn ste_abort_to_cdtable() {
        ste(&abort(), &cdtable(s1dss::SSID0, CDTAB, ATS), 2);
    }

    #[test]
    fn ste_cdtable_to_bypass() {
        ste(&cdtable(s1dss::SSID0, CDTAB, ATS), &bypass(), 3);
    }

    #[test]
    fn ste_bypass_to_cdtable() {
        ste(&bypass(), &cdtable(s1dss::SSID0, CDTAB, ATS), 3);
    }

    #[test]
    fn ste_cdtable_s1dss_change() {
        let a = cdtable(s1dss::SSID0, CDTAB, ATS);
        let b = cdtable(s1dss::BYPASS, CDTAB, ATS);
        ste(&a, &b, 1);
        ste(&b, &a, 1);
    }

    #[test]
    fn ste_s1dssbypass_to_stebypass() {
        ste(&cdtable(s1dss::BYPASS, CDTAB, ATS), &bypass(), 2);
    }

    #[test]
    fn ste_stebypass_to_s1dssbypass() {
        ste(&bypass(), &cdtable(s1dss::BYPASS, CDTAB, ATS), 2);
    }

    #[test]
    fn ste_s2_to_abort() {
        ste(&s2(ATS), &abort(), 2);
    }

    #[test]
    fn ste_abort_to_s2() {
        ste(&abort(), &s2(ATS), 2);
    }

    #[test]
    fn ste_s2_to_bypass() {
        ste(&s2(ATS), &bypass(), 2);
    }

    #[test]
    fn ste_bypass_to_s2() {
        ste(&bypass(), &s2(ATS), 2);
    }

    #[test]
    fn ste_s1_to_s2() {
        ste(&cdtable(s1dss::SSID0, CDTAB, ATS), &s2(ATS), 3);
    }

    #[test]
    fn ste_s2_to_s1() {
        ste(&s2(ATS), &cdtable(s1dss::SSID0, CDTAB, ATS), 3);
    }

    #[test]
    fn ste_non_hitless() {
        // Changing the CD table pointer and S1DSS together forces V=0.
        let a = cdtable(s1dss::SSID0, CDTAB, ATS);
        let b = cdtable(s1dss::BYPASS, 0x4B_4B4B_4B4B, ATS);
        expect(ste_used, a.0, b.0, 3, false);
        let mut r = Recorder {
            entry: a.0,
            init: a.0,
            target: b.0,
            used: ste_used,
            syncs: 0,
            invalid_written: false,
        };
        assert!(write_entry(&mut r, &b.0, ste_used).unwrap().breaking);
    }

    #[test]
    fn ste_s1_to_s2_stall() {
        ste(&cdtable(s1dss::SSID0, CDTAB, STALL), &s2(STALL), 3);
    }

    #[test]
    fn ste_s2_to_s1_stall() {
        ste(&s2(STALL), &cdtable(s1dss::SSID0, CDTAB, STALL), 3);
    }

    // arm_smmu_test_make_s1_cd().
    fn s1_cd(asid: u16) -> Cd {
        Cd::s1(&S1Config {
            asid,
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
        })
    }

    // arm_smmu_make_sva_cd() with an mm (48-bit VA, 4KB pages, WBWA, inner shareable) and
    // without one (the "release" CD that faults everything).
    fn sva_cfg(asid: u16) -> S1Config {
        S1Config {
            asid,
            ttbr: 0xdaed_beef_dead_beef,
            tsz: 16,
            tg: 0,
            irgn: 1,
            orgn: 1,
            sh: 3,
            ips: 5,
            mair: 0x0000_00ff_4404_ff44,
            hw_dirty: false,
            stall: false,
        }
    }

    #[test]
    fn cd_s1_clear() {
        let a = Cd::invalid();
        let b = s1_cd(1997);
        expect(cd_used, a.0, b.0, 2, false);
        expect(cd_used, b.0, a.0, 2, false);
    }

    #[test]
    fn cd_s1_change_asid() {
        let a = s1_cd(778);
        let b = s1_cd(1997);
        expect(cd_used, a.0, b.0, 1, true);
        expect(cd_used, b.0, a.0, 1, true);
    }

    #[test]
    fn cd_sva_clear() {
        let a = Cd::invalid();
        let b = Cd::s1(&sva_cfg(1997));
        expect(cd_used, a.0, b.0, 2, false);
        expect(cd_used, b.0, a.0, 2, false);
    }

    #[test]
    fn cd_sva_release() {
        let a = Cd::s1(&sva_cfg(1997));
        let b = Cd::quiesced(&sva_cfg(1997), false);
        expect(cd_used, a.0, b.0, 2, true);
        expect(cd_used, b.0, a.0, 2, true);
    }

    #[test]
    fn unchanged_entry_costs_nothing() {
        let a = cdtable(s1dss::SSID0, CDTAB, ATS);
        expect(ste_used, a.0, a.0, 0, true);
    }

    #[test]
    fn target_with_ignored_bits_is_refused() {
        // An abort STE that also carries S2TTB: the bits could never be cleaned hitlessly.
        let bad = Ste::abort().set_s2ttb(0x1234);
        let mut r = Recorder {
            entry: Ste::abort().0,
            init: Ste::abort().0,
            target: bad.0,
            used: ste_used,
            syncs: 0,
            invalid_written: false,
        };
        assert_eq!(
            write_entry(&mut r, &bad.0, ste_used),
            Err(Error::InvalidArgument)
        );
        assert_eq!(r.syncs, 0);
        assert_eq!(r.entry, Ste::abort().0);
    }

    /// Every ordered pair of a set of STEs (and of CDs): the writer always ends on the target,
    /// never exposes a torn entry (checked by `Recorder` at each sync), goes through V=0 only
    /// when at least two qwords differ in used bits, and costs at most three syncs.
    #[test]
    fn all_pairs_are_safe() {
        let no_ovr = SteFeatures {
            attr_types_ovr: false,
            stalls: false,
            e2h: false,
        };
        let cd_other = CdTableRef {
            dma: 0x8000_0000,
            s1fmt: s1fmt::LINEAR,
            s1cdmax: 0,
        };
        let stes = [
            Ste::default(),
            abort(),
            bypass(),
            Ste::bypass(&no_ovr),
            cdtable(s1dss::SSID0, CDTAB, ATS),
            cdtable(s1dss::BYPASS, CDTAB, ATS),
            cdtable(s1dss::TERMINATE, CDTAB, STALL),
            Ste::s1_cdtable(&no_ovr, &MasterOptions::default(), &cd_other, s1dss::SSID0),
            s2(ATS),
            s2(STALL),
        ];
        for a in &stes {
            for b in &stes {
                let mut r = Recorder {
                    entry: a.0,
                    init: a.0,
                    target: b.0,
                    used: ste_used,
                    syncs: 0,
                    invalid_written: false,
                };
                let st = write_entry(&mut r, &b.0, ste_used).unwrap();
                assert_eq!(r.entry, b.0);
                assert!(st.syncs <= 3, "{a:?} -> {b:?}: {st:?}");
                // A change confined to one qword is always a single atomic store.
                let words = (0..8).filter(|&i| a.0[i] != b.0[i]).count();
                if words <= 1 {
                    assert!(!st.breaking && st.syncs <= 1, "{a:?} -> {b:?}: {st:?}");
                }
                if a == b {
                    assert_eq!(st.syncs, 0);
                }
            }
        }
        let cds = [
            Cd::invalid(),
            s1_cd(1),
            s1_cd(2),
            Cd::s1(&sva_cfg(1)),
            Cd::quiesced(&sva_cfg(1), false),
            Cd::quiesced(&sva_cfg(1), true),
        ];
        for a in &cds {
            for b in &cds {
                let mut r = Recorder {
                    entry: a.0,
                    init: a.0,
                    target: b.0,
                    used: cd_used,
                    syncs: 0,
                    invalid_written: false,
                };
                let st = write_entry(&mut r, &b.0, cd_used).unwrap();
                assert_eq!(r.entry, b.0);
                assert!(st.syncs <= 3);
            }
        }
    }
}
