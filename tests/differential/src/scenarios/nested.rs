// SPDX-License-Identifier: GPL-2.0
//! The `nested_*` scenarios ([`super::needs_nested`]): nested translation (STE.Config = 0b111)
//! on the PASID platform with stage 2 (`arm-smmuv3.stage=nested`, the model with
//! [`crate::qemu_nested_features`]), where the CD table is found by its IPA.
//!
//! Stage 2 ([`S2`], built by hand: the driver core has no stage 2 page tables) maps RAM at
//! IPA = PA (1 GiB block: the driver's stage 1 tables stay where the driver put them) and a
//! window at IPA = PA + [`IPA_OFFSET`] in 2 MiB blocks. The CD tables (linear, and 2-level
//! with L1CD and leaves) are built by hand in that window and named by their IPAs
//! (S1ContextPtr, L1CD.L2Ptr); each domain's stage 1 maps [`SSID_IOVA`] to its page's IPA
//! in the window, so a DMA lands where stage 1 then stage 2 say. An IPA outside both regions
//! is not mapped. A stage 2 fault declares its S2, CLASS and IPA ([`Ctx::s2_faults_are`]).

use super::*;
use smmuv3::event::id::F_TRANSLATION;
use smmuv3::ste::{config, S2Config};

/// IPA - PA in the stage 2 window.
const IPA_OFFSET: u64 = 1 << 32;
/// Base (IPA and PA) of the RAM stage 2 maps one to one: `virt`'s RAM.
const RAM_IPA: u64 = 0x4000_0000;
/// IPAs from here are not mapped by stage 2.
const UNMAPPED_IPA: u64 = 0x2_0000_0000;
/// VMID of the nested STEs.
const VMID: u16 = 1;
/// Stage 2 block descriptor (Arm ARM D8.3): block, MemAttr Normal WB, S2AP read/write,
/// Inner Shareable, AF.
const S2_BLOCK: u64 = 0b01 | (0xf << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10);
/// Stage 2 table descriptor.
const S2_TABLE: u64 = 0b11;
/// CLASS values of fault records (IHI 0070 7.3.12).
const CLASS_CD: u64 = 0b00;
const CLASS_TT: u64 = 0b01;
const CLASS_IN: u64 = 0b10;

/// A stage 2 translation table: 4 KB granule, 39-bit IPA (S2T0SZ 25), start level 1.
struct S2<P: Platform> {
    l1: Mem<P>,
    /// Level 2 table of the window (IPA `RAM_IPA + IPA_OFFSET` + 1 GiB).
    window: Mem<P>,
    record: bool,
}

impl<P: Platform> S2<P> {
    fn new(c: &Ctx<P>) -> Self {
        let l1 = c.p.alloc().alloc_zeroed(4096, 4096).expect("alloc");
        let window = c.p.alloc().alloc_zeroed(4096, 4096).expect("alloc");
        l1.write_u64(8 * (RAM_IPA >> 30) as usize, RAM_IPA | S2_BLOCK);
        l1.write_u64(
            8 * ((RAM_IPA + IPA_OFFSET) >> 30) as usize,
            window.dma_addr() | S2_TABLE,
        );
        let s2 = Self {
            l1,
            window,
            record: true,
        };
        for k in 0..512 {
            let pa = RAM_IPA + (k << 21);
            s2.map_2m(pa + IPA_OFFSET, Some(pa));
        }
        s2
    }

    /// Points the window's 2 MiB block at `ipa` to `pa` (`None`: unmapped).
    fn map_2m(&self, ipa: u64, pa: Option<u64>) {
        let k = ((ipa - RAM_IPA - IPA_OFFSET) >> 21) as usize;
        assert!(k < 512, "IPA {ipa:#x} outside the window");
        self.window
            .write_u64(8 * k, pa.map_or(0, |pa| (pa & !0x1f_ffff) | S2_BLOCK));
    }

    fn config(&self) -> S2Config {
        S2Config {
            vmid: VMID,
            tsz: 25,
            sl: 1,
            irgn: 1,
            orgn: 1,
            sh: 3,
            tg: 0,
            ps: 2,
            vttbr: self.l1.dma_addr(),
        }
    }
}

/// The IPA of `pa` in the window.
fn ipa(pa: u64) -> u64 {
    pa + IPA_OFFSET
}

/// A nested STE: stage 1 through the CD table `table` (an IPA), S1DSS `dss`, stage 2 `s2`.
fn nested_ste<P: Platform>(c: &Ctx<P>, s2: &S2<P>, table: &CdTableRef, dss: u8) -> Ste {
    let feat = c.smmu.features().ste_features();
    let o = MasterOptions::default();
    let s1 = Ste::s1_cdtable(&feat, &o, table, dss);
    let s2ste = Ste::s2(&feat, &o, &s2.config()).set_s2r(s2.record);
    let mut w = s1.0;
    w[2] = s2ste.0[2];
    w[3] = s2ste.0[3];
    Ste(w).set_config(config::NESTED)
}

/// Writes the nested STE and records its Config, S1Fmt and S1CDMax.
fn attach<P: Platform>(c: &mut Ctx<P>, s2: &S2<P>, table: &CdTableRef, dss: u8) {
    let ste = nested_ste(c, s2, table, dss);
    c.smmu.write_ste(EDU_SID, &ste).expect("STE");
    let got = c.smmu.read_ste(EDU_SID);
    c.value_is(
        "STE.Config",
        u64::from(got.config()),
        u64::from(config::NESTED),
    );
    ssid_ste_is(c, table.s1fmt, table.s1cdmax);
}

/// `n` domains with ASIDs `1..=n`, each mapping [`SSID_IOVA`] to the IPA of its own page
/// (seeds `0xa0 + i`, as [`ssid_domains`]).
fn nested_domains<P: Platform>(c: &mut Ctx<P>, n: usize) -> Vec<Dom<P>> {
    (0..n)
        .map(|i| {
            let page = c.buffer(4096, 4096, 0xa0 + i as u8);
            let (pt, cfg) = s1_table(c, Granule::G4K, 39, 1 + i as u16);
            pt.map(SSID_IOVA, ipa(page.dma_addr()), 4096, RW).unwrap();
            Dom {
                pt,
                cd: Cd::s1(&cfg),
                page,
            }
        })
        .collect()
}

/// Writes `cd` at byte `off` of `table`.
fn put_cd<P: Platform>(table: &Mem<P>, off: usize, cd: &Cd) {
    for (i, w) in cd.0.iter().enumerate() {
        table.write_u64(off + i * 8, *w);
    }
}

impl<P: Platform> Ctx<P> {
    /// Checks that every record just drained (the last [`Obs::Events`]) is a stage 2 fault
    /// (S2 = 1, bit 103) of `class` (CLASS [105:104]) at `ipa` (IPA[51:12], bits [243:204];
    /// bits [203:192] RES0), with InputAddr (bits [191:128]) within the 8-byte DMA at
    /// `input`: IHI 0070 7.3.12-16.
    fn s2_faults_are(&mut self, class: u64, ipa: u64, input: u64) {
        let Some(recs) = self.trace.0.iter().rev().find_map(|o| match o {
            Obs::Events(recs) => Some(recs.clone()),
            _ => None,
        }) else {
            unreachable!("events records an Events observation")
        };
        let want = (1, class, ipa & 0x000f_ffff_ffff_f000);
        for r in recs {
            let w: Vec<u64> = r
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let got = ((w[1] >> 39) & 1, (w[1] >> 40) & 3, w[3]);
            if got != want || !(input..input + 8).contains(&w[2]) {
                self.unmet(format!(
                    "declared S2 {} CLASS {} InputAddr {input:#x}+0..8 IPA word {:#x}, got S2 {} \
                     CLASS {} InputAddr {:#x} IPA word {:#x}",
                    want.0, want.1, want.2, got.0, got.1, w[2], got.2
                ));
            }
        }
    }
}

/// A linear CD table (S1CDMax 4) at an IPA: CDs 0, 1 and 15 of three domains; untagged DMA
/// (S1DSS = SSID0) and PASIDs 1 and 15 land where stage 1 then stage 2 say; a stage 2 fault
/// on the output IPA is CLASS = IN.
pub(super) fn nested_linear_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = nested_domains(c, 3);
    let s2 = S2::new(c);
    let table = c.p.alloc().alloc_zeroed(1024, 1024).expect("alloc");
    for (ssid, d) in [(0, 0), (1, 1), (15, 2)] {
        put_cd::<P>(&table, ssid * 64, &doms[d].cd);
    }
    c.step("nested STE: linear CD table at IPA = PA + 4 GiB, S1CDMax 4, S1DSS SSID0");
    let cdt = CdTableRef {
        dma: ipa(table.dma_addr()),
        s1fmt: s1fmt::LINEAR,
        s1cdmax: 4,
    };
    attach(c, &s2, &cdt, s1dss::SSID0);
    c.step("untagged DMA through CD 0, PASIDs 1 and 15 through theirs (S1 then S2)");
    ssid_lands(c, &src, &doms, None, 0, Some(0));
    ssid_lands(c, &src, &doms, Some(1), 1, Some(1));
    ssid_lands(c, &src, &doms, Some(15), 2, Some(2));
    c.events(&[]);
    c.step("PASID 5, CD invalid (fetched through S2): C_BAD_CD naming it");
    ssid_lands(c, &src, &doms, Some(5), 3, None);
    c.events_naming(&[(C_BAD_CD, 2)], Some(5));
    c.step("PASID 15: stage 1 output IPA not mapped by S2: F_TRANSLATION S2 CLASS IN");
    let out = UNMAPPED_IPA + 0x5000;
    doms[2]
        .pt
        .map(SSID_IOVA + 0x1000, out, 4096, RW)
        .expect("map");
    c.tagged_write(Some(15), SSID_IOVA + 0x1000, false);
    c.events_naming(&[(F_TRANSLATION, 2)], Some(15));
    c.s2_faults_are(CLASS_IN, out, SSID_IOVA + 0x1000);
}

/// A 2-level CD table (64 KB leaves, S1CDMax 20) whose L1 table and leaves are found by their
/// IPAs; an L1CD naming a leaf IPA that S2 does not map faults with CLASS = CD at the CD's IPA.
pub(super) fn nested_2level_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = nested_domains(c, 3);
    let s2 = S2::new(c);
    let l1 = c.p.alloc().alloc_zeroed(8192, 8192).expect("alloc");
    let leaf0 = c.p.alloc().alloc_zeroed(65536, 4096).expect("alloc");
    let leaf48 = c.p.alloc().alloc_zeroed(65536, 4096).expect("alloc");
    put_cd::<P>(&leaf0, 0, &doms[0].cd);
    put_cd::<P>(&leaf0, 64, &doms[1].cd);
    // 0x12345: L1 index 0x48, CD 0x345 of its leaf.
    put_cd::<P>(&leaf48, 0x345 * 64, &doms[2].cd);
    l1.write_u64(0, ipa(leaf0.dma_addr()) | 1);
    l1.write_u64(0x48 * 8, ipa(leaf48.dma_addr()) | 1);
    // L1 index 0x50 names a leaf at an IPA stage 2 does not map.
    let hole = UNMAPPED_IPA + 0x10_0000;
    l1.write_u64(0x50 * 8, hole | 1);
    c.step("nested STE: 2-level CD table at IPAs (L1 and leaves), 64 KB leaves, S1CDMax 20");
    let cdt = CdTableRef {
        dma: ipa(l1.dma_addr()),
        s1fmt: s1fmt::L2_64K,
        s1cdmax: 20,
    };
    attach(c, &s2, &cdt, s1dss::SSID0);
    c.step("untagged DMA through CD 0, PASIDs 1 and 0x12345 through theirs");
    ssid_lands(c, &src, &doms, None, 0, Some(0));
    ssid_lands(c, &src, &doms, Some(1), 1, Some(1));
    ssid_lands(c, &src, &doms, Some(0x1_2345), 2, Some(2));
    c.events(&[]);
    c.step("PASID 0x8000f, L1 descriptor invalid: C_BAD_SUBSTREAMID");
    ssid_lands(c, &src, &doms, Some(0x8_000f), 3, None);
    c.events_naming(&[(C_BAD_SUBSTREAMID, 2)], Some(0x8_000f));
    c.step("PASID 0x14003: leaf IPA not mapped by S2: F_TRANSLATION S2 CLASS CD at the CD's IPA");
    ssid_lands(c, &src, &doms, Some(0x1_4003), 4, None);
    c.events_naming(&[(F_TRANSLATION, 2)], Some(0x1_4003));
    c.s2_faults_are(CLASS_CD, hole + 3 * 64, SSID_IOVA + 8 * 4);
}

/// Stage 2 faults on the CD fetch: the CD table (linear) or the L1 table (2-level) at an
/// IPA stage 2 does not map, for untagged DMA through CD 0 and for a PASID; S2R = 0 hides
/// them; a CD whose TTB0 IPA is not mapped faults with CLASS = TT. Nothing is cached by a
/// failed fetch: mapping the IPA makes the DMA go through without any invalidation.
pub(super) fn nested_cd_s2_fault<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = nested_domains(c, 2);
    let mut s2 = S2::new(c);
    let table = c.p.alloc().alloc_zeroed(1024, 1024).expect("alloc");
    put_cd::<P>(&table, 0, &doms[0].cd);
    put_cd::<P>(&table, 3 * 64, &doms[1].cd);
    let tip = ipa(table.dma_addr());
    let cdt = CdTableRef {
        dma: tip,
        s1fmt: s1fmt::LINEAR,
        s1cdmax: 4,
    };
    c.step("the 2 MiB holding the CD table unmapped at S2 before the first fetch");
    s2.map_2m(tip, None);
    attach(c, &s2, &cdt, s1dss::SSID0);
    c.step("untagged (CD 0): F_TRANSLATION S2 CLASS CD, IPA = S1ContextPtr");
    ssid_lands(c, &src, &doms, None, 0, None);
    c.events_naming(&[(F_TRANSLATION, 2)], None);
    c.s2_faults_are(CLASS_CD, tip, SSID_IOVA);
    c.step("PASID 3: F_TRANSLATION S2 CLASS CD naming it, IPA of CD 3 (bits [11:0] dropped)");
    ssid_lands(c, &src, &doms, Some(3), 1, None);
    c.events_naming(&[(F_TRANSLATION, 2)], Some(3));
    c.s2_faults_are(CLASS_CD, tip + 3 * 64, SSID_IOVA + 8);
    c.step("S2R = 0: the same faults are not recorded");
    s2.record = false;
    attach(c, &s2, &cdt, s1dss::SSID0);
    ssid_lands(c, &src, &doms, Some(3), 2, None);
    c.events(&[]);
    s2.record = true;
    attach(c, &s2, &cdt, s1dss::SSID0);
    c.step("the CD table's IPA mapped: no invalidation needed, nothing was cached");
    s2.map_2m(tip, Some(table.dma_addr()));
    ssid_lands(c, &src, &doms, None, 3, Some(0));
    ssid_lands(c, &src, &doms, Some(3), 4, Some(1));
    c.events(&[]);

    c.step("2-level: the L1 table at an unmapped IPA: CLASS CD at the L1CD's IPA");
    let l1_ipa = UNMAPPED_IPA + 0x20_0000;
    let cdt2 = CdTableRef {
        dma: l1_ipa,
        s1fmt: s1fmt::L2_64K,
        s1cdmax: 20,
    };
    attach(c, &s2, &cdt2, s1dss::SSID0);
    ssid_lands(c, &src, &doms, Some(0x1_2345), 5, None);
    c.events_naming(&[(F_TRANSLATION, 2)], Some(0x1_2345));
    c.s2_faults_are(CLASS_CD, l1_ipa + 0x48 * 8, SSID_IOVA + 8 * 5);

    c.step("CD 5 with TTB0 at an unmapped IPA: F_TRANSLATION S2 CLASS TT at TTB0");
    let ttb = UNMAPPED_IPA + 0x40_0000;
    // Domain 1's CD with ASID 9 (nothing cached for it) and TTB0[51:4] (CD word 1) = ttb.
    let mut bad = Cd(doms[1].cd.0);
    bad.0[0] = (bad.0[0] & !(0xffff << 48)) | (9 << 48);
    bad.0[1] = (bad.0[1] & !0x000f_ffff_ffff_fff0) | ttb;
    put_cd::<P>(&table, 5 * 64, &bad);
    attach(c, &s2, &cdt, s1dss::SSID0);
    ssid_lands(c, &src, &doms, Some(5), 6, None);
    c.events_naming(&[(F_TRANSLATION, 2)], Some(5));
    c.s2_faults_are(CLASS_TT, ttb, SSID_IOVA + 8 * 6);
}

/// Per-SSID CFGI_CD under nesting: stale CDs stay until CFGI_CD of their SubstreamID; a
/// stage 2 change of the CD table's IPA is not seen by cached CDs, not even after
/// TLBI_S12_VMALL (TLB invalidation does not touch the configuration cache); CFGI_CD of one
/// SubstreamID then fetches that CD through the new stage 2 mapping.
pub(super) fn nested_cfgi_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = nested_domains(c, 4);
    let s2 = S2::new(c);
    // Two 2 MiB regions: the CD table in A, a copy with other CDs at the same offset in B.
    let a = c.p.alloc().alloc_zeroed(2 << 20, 2 << 20).expect("alloc");
    let b = c.p.alloc().alloc_zeroed(2 << 20, 2 << 20).expect("alloc");
    put_cd::<P>(&a, 64, &doms[0].cd);
    put_cd::<P>(&a, 128, &doms[1].cd);
    put_cd::<P>(&b, 64, &doms[2].cd);
    put_cd::<P>(&b, 128, &doms[3].cd);
    let cdt = CdTableRef {
        dma: ipa(a.dma_addr()),
        s1fmt: s1fmt::LINEAR,
        s1cdmax: 4,
    };
    attach(c, &s2, &cdt, s1dss::TERMINATE);
    c.step("CDs 1 and 2 cached (fetched through S2 from A)");
    ssid_lands(c, &src, &doms, Some(1), 0, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 1, Some(1));
    c.events(&[]);
    c.step("CDs 1 and 2 rewritten in A, no CFGI_CD: both stale");
    put_cd::<P>(&a, 64, &doms[1].cd);
    put_cd::<P>(&a, 128, &doms[0].cd);
    ssid_lands(c, &src, &doms, Some(1), 2, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 3, Some(1));
    c.step("CFGI_CD(2): CD 2 refetched, CD 1 stays stale");
    let r = c.smmu.inv_cd(EDU_SID, 2);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 4, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 5, Some(0));
    c.step("CFGI_CD(1): CD 1 refetched");
    let r = c.smmu.inv_cd(EDU_SID, 1);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 6, Some(1));
    c.events(&[]);
    c.step("S2 maps the CD table's IPA to B, no invalidation: cached CDs 1 and 2 stay");
    s2.map_2m(ipa(a.dma_addr()), Some(b.dma_addr()));
    ssid_lands(c, &src, &doms, Some(1), 7, Some(1));
    ssid_lands(c, &src, &doms, Some(2), 8, Some(0));
    c.step("TLBI_S12_VMALL: TLB entries go, the cached CDs stay");
    let r = c.smmu.submit_sync(&[Command::TlbiS12Vmall { vmid: VMID }]);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 9, Some(1));
    ssid_lands(c, &src, &doms, Some(2), 10, Some(0));
    c.step("CFGI_CD(1): CD 1 fetched through the new S2 mapping (from B), CD 2 still stale");
    let r = c.smmu.inv_cd(EDU_SID, 1);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 11, Some(2));
    ssid_lands(c, &src, &doms, Some(2), 12, Some(0));
    c.step("CFGI_CD(2): CD 2 from B too");
    let r = c.smmu.inv_cd(EDU_SID, 2);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(2), 13, Some(3));
    c.events(&[]);
}
