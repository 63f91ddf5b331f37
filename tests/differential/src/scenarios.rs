// SPDX-License-Identifier: GPL-2.0
//! The scenario suite, written once against [`Platform`].
//!
//! The first twelve scenarios are within what stock QEMU 10.0's SMMUv3 supports (no
//! SubstreamIDs): bypass, abort, invalid STEs (C_BAD_STE, C_BAD_STREAMID), stage-1 translation
//! with 4 KiB and 64 KiB granules (pages and blocks), translation and permission faults,
//! C_BAD_CD, STE changes with and without CFGI_STE, TLB invalidation by VA and by ASID (and what
//! stays stale without it), an illegal command and its recovery, linear and 2-level stream
//! tables.
//!
//! The `ssid_*` scenarios ([`needs_pasid`]) run on the PASID platform: the lab QEMU's SMMUv3 with
//! `arm-smmuv3.ssidsize=20` and `edu-pasid` tagging its DMA with a PASID, and the model with the
//! same ID registers ([`crate::qemu_pasid_features`]): linear and 2-level CD tables (64 KB
//! leaves by the driver core, 4 KB leaves by hand), the three S1DSS cases, C_BAD_SUBSTREAMID
//! (beyond S1CDMax, invalid L1CD, stage 1 bypassed), C_BAD_CD and faults naming the PASID,
//! per-SSID CFGI_CD (a stale CD survives CFGI_CD of another SubstreamID and goes with its own),
//! CFGI_CD_ALL and CFGI_STE, and TLB entries shared by the PASIDs of one ASID.
//!
//! Each scenario declares what it must produce, where it observes it, so that a scenario that
//! went silent (or stopped moving data) on both platforms cannot "match": every drain of the
//! event queue names the events it must find ([`Ctx::events`]: event numbers and record
//! counts, `&[]` for none), the data outcomes say which bytes a buffer must hold
//! ([`Ctx::mem_is`]: copied from another buffer, its untouched pattern, or zeros), and command
//! results say whether they must succeed ([`Ctx::result_is`]). An unmet declaration is
//! recorded in the trace as [`Obs::Unmet`] ([`Trace::unmet`]), and the suite asserts there is
//! none on either side. SSID steps also declare which SubstreamID each event record names
//! ([`Ctx::events_naming`]) and whether each DMA succeeded (edu-pasid's result register). A new
//! scenario adds its name to [`NAMES`] and its function to [`run`], and declares its steps the
//! same way.

use super::{MapStore, Obs, Platform, Trace, DEV_BUF, EDU_SID};
use smmuv3::cd::{Cd, S1Config};
use smmuv3::cmd::{CmdEntry, Command};
use smmuv3::device::{Master, Smmu, SmmuConfig};
use smmuv3::dma::{DmaAllocator, DmaMemory, Mmio};
use smmuv3::event::id::{
    C_BAD_CD, C_BAD_STE, C_BAD_STREAMID, C_BAD_SUBSTREAMID, F_PERMISSION, F_STREAM_DISABLED,
    F_TRANSLATION,
};
use smmuv3::pgtable::{Config, Gather, Granule, PageTable, Prot};
use smmuv3::ste::{s1dss, s1fmt, CdTableRef, MasterOptions, Ste};
use smmuv3::store::FixedStore;

/// Scenario names, in the order [`run`] accepts them.
pub const NAMES: &[&str] = &[
    "bypass",
    "abort",
    "bad_streamid_then_l2",
    "bad_ste_invalid",
    "bad_ste_s1cdmax",
    "linear_strtab",
    "s1_4k",
    "s1_64k",
    "bad_cd",
    "ste_change_cfgi",
    "tlbi",
    "illegal_command",
    "ssid_linear_cd",
    "ssid_2level_cd",
    "ssid_2level_4k_leaves",
    "ssid_s1dss",
    "ssid_cfgi_cd",
    "ssid_tlbi",
    "nested_linear_cd",
    "nested_2level_cd",
    "nested_cd_s2_fault",
    "nested_cfgi_cd",
];

mod nested;

/// Whether scenario `name` needs the PASID platform (an SMMU with SubstreamIDs and a DMA
/// master that tags its DMA with a PASID): the `ssid_*` scenarios.
pub fn needs_pasid(name: &str) -> bool {
    name.starts_with("ssid_") || needs_nested(name)
}

/// Whether scenario `name` needs stage 2 too (the PASID platform with
/// `arm-smmuv3.stage=nested`): the `nested_*` scenarios.
pub fn needs_nested(name: &str) -> bool {
    name.starts_with("nested_")
}

type Mem<P> = <<P as Platform>::Alloc as DmaAllocator>::Memory;
type Pt<P> = PageTable<<P as Platform>::Alloc, MapStore<Mem<P>>>;
type Mst<P> = Master<Mem<P>, FixedStore<Mem<P>, 64>>;
type Drv<P> = Smmu<<P as Platform>::Mmio, <P as Platform>::Alloc>;

/// A scenario in progress: the platform, the driver and the trace.
pub struct Ctx<P: Platform> {
    /// The platform.
    pub p: P,
    /// The driver core, probed and enabled.
    pub smmu: Drv<P>,
    /// What was observed so far.
    pub trace: Trace,
    /// The step in progress, for unmet declarations.
    step: String,
}

/// What bytes of a buffer must hold ([`Ctx::mem_is`]), segment by segment.
pub enum Bytes<'a, M> {
    /// The same bytes as `buffer` from offset `at` (data that moved).
    Like(&'a M, usize),
    /// The buffer's own fill pattern for `seed` ([`Ctx::buffer`]): nothing was written there.
    Seed(u8),
    /// Zeros (e.g. what a DMA read from an aborted address gave the device).
    Zero,
}

/// Events a step must raise: (event number, records), in any order; `&[]` for none.
pub type Events<'a> = &'a [(u8, usize)];

/// Name of an event number, for messages.
fn event_name(id: u8) -> String {
    match id {
        C_BAD_STREAMID => "C_BAD_STREAMID".into(),
        C_BAD_STE => "C_BAD_STE".into(),
        C_BAD_CD => "C_BAD_CD".into(),
        F_TRANSLATION => "F_TRANSLATION".into(),
        F_PERMISSION => "F_PERMISSION".into(),
        C_BAD_SUBSTREAMID => "C_BAD_SUBSTREAMID".into(),
        F_STREAM_DISABLED => "F_STREAM_DISABLED".into(),
        other => format!("{other:#04x}"),
    }
}

/// `events` as a sorted list of (number, records), for comparing and printing.
fn tally(ids: impl IntoIterator<Item = u8>) -> Vec<(u8, usize)> {
    let mut v: Vec<(u8, usize)> = Vec::new();
    for id in ids {
        match v.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) => *n += 1,
            None => v.push((id, 1)),
        }
    }
    v.sort_unstable();
    v
}

fn show(events: &[(u8, usize)]) -> String {
    let v: Vec<String> = events
        .iter()
        .map(|(id, n)| format!("({}, {n})", event_name(*id)))
        .collect();
    format!("&[{}]", v.join(", "))
}

const EVENTQ_BASE: usize = 0xa0;
const EVENTQ_PROD: usize = 0x100a8;
const EVENTQ_CONS: usize = 0x100ac;
const GERROR: usize = 0x60;
const GERRORN: usize = 0x64;
const CMDQ_CONS: usize = 0x9c;

impl<P: Platform> Ctx<P> {
    fn new(p: P, cfg: SmmuConfig) -> Self {
        let mut smmu = Smmu::probe(p.mmio(), p.alloc(), cfg).expect("probe");
        smmu.enable().expect("enable");
        Self {
            p,
            smmu,
            trace: Trace::default(),
            step: String::from("(start)"),
        }
    }

    fn step(&mut self, s: &str) {
        self.step = s.into();
        self.trace.0.push(Obs::Step(s.into()));
    }

    fn unmet(&mut self, what: String) {
        // No platform name: both sides record the same text for the same miss.
        let why = format!("step '{}': {what}", self.step);
        self.trace.0.push(Obs::Unmet(why));
    }

    /// Drains the event queue, records the records, and checks they are the events `want`
    /// declares (each event number with its record count; `&[]`: no event at all).
    pub fn events(&mut self, want: Events<'_>) {
        self.drain_events();
        let Some(Obs::Events(recs)) = self.trace.0.last() else {
            unreachable!("drain_events records an Events observation")
        };
        let got = tally(recs.iter().map(|r| r[0]));
        let want = tally(want.iter().flat_map(|(id, n)| std::iter::repeat_n(*id, *n)));
        if got != want {
            self.unmet(format!(
                "declared events {} but the SMMU raised {}",
                show(&want),
                show(&got)
            ));
        }
    }

    /// [`Ctx::events`], and checks that every record names `ssid` the way its type does
    /// (IHI 0070 7.3): SSV = 1 and SubstreamID for a transaction with one (`Some`), SSV = 0
    /// and SubstreamID 0 without (`None`); C_BAD_SUBSTREAMID carries the SubstreamID without
    /// SSV; F_STREAM_DISABLED names neither.
    pub fn events_naming(&mut self, want: Events<'_>, ssid: Option<u32>) {
        self.events(want);
        // The records just drained (an unmet declaration may follow them).
        let Some(recs) = self.trace.0.iter().rev().find_map(|o| match o {
            Obs::Events(recs) => Some(recs),
            _ => None,
        }) else {
            unreachable!("events records an Events observation")
        };
        let mut wrong = Vec::new();
        for r in recs {
            let w0 = u64::from_le_bytes(r[..8].try_into().unwrap());
            let got = ((w0 >> 11) & 1, (w0 >> 12) & 0xf_ffff);
            let want = match (r[0], ssid) {
                (F_STREAM_DISABLED, _) | (_, None) => (0, 0),
                (C_BAD_SUBSTREAMID, Some(x)) => (0, u64::from(x)),
                (_, Some(x)) => (1, u64::from(x)),
            };
            if got != want {
                wrong.push(format!(
                    "{} with SSV {} SubstreamID {:#x} (declared SSV {} SubstreamID {:#x})",
                    event_name(r[0]),
                    got.0,
                    got.1,
                    want.0,
                    want.1
                ));
            }
        }
        if !wrong.is_empty() {
            self.unmet(format!(
                "records name the wrong SubstreamID: {}",
                wrong.join("; ")
            ));
        }
    }

    /// Records a value the scenario depends on (e.g. an STE field the driver chose) and
    /// checks it is `want`.
    fn value_is(&mut self, what: &str, got: u64, want: u64) {
        self.trace.0.push(Obs::Result(format!("{what} = {got:#x}")));
        if got != want {
            self.unmet(format!("declared {what} = {want:#x}, got {got:#x}"));
        }
    }

    /// The device writes 8 bytes from its buffer at 0 to `iova`, tagged with `pasid`; records
    /// the DMA's result and checks it succeeded (`ok`) or failed.
    fn tagged_write(&mut self, pasid: Option<u32>, iova: u64, ok: bool) {
        self.p.set_dma_pasid(pasid);
        self.p.dma_from_dev(0, iova, 8);
        let r = self.p.dma_result();
        self.p.set_dma_pasid(None);
        self.trace.0.push(Obs::Result(format!(
            "DMA PASID {pasid:?} to {iova:#x}: {r}"
        )));
        if (r == 0) != ok {
            let want = if ok { "done (0)" } else { "failed (1)" };
            self.unmet(format!("declared the DMA {want}, edu-pasid result {r}"));
        }
    }

    /// Drains the event queue raw (IHI0070 6.3.25-27: EVENTQ_BASE addr [51:5], log2size
    /// [4:0]; PROD/CONS wrap bit at log2size) and records the records.
    fn drain_events(&mut self) {
        let mmio = self.p.mmio();
        let base = mmio.read64(EVENTQ_BASE);
        let log2 = (base & 0x1f) as u32;
        let addr = base & 0x000f_ffff_ffff_ffe0;
        let mask = (2u32 << log2) - 1;
        let prod = mmio.read32(EVENTQ_PROD) & mask;
        let cons_reg = mmio.read32(EVENTQ_CONS);
        let mut cons = cons_reg & mask;
        let mut recs = Vec::new();
        while cons != prod && recs.len() < 1 << log2 {
            let idx = cons & ((1 << log2) - 1);
            let mut r = [0u8; 32];
            self.p.read_mem(addr + u64::from(idx) * 32, &mut r);
            recs.push(r);
            cons = (cons + 1) & mask;
        }
        mmio.write32(EVENTQ_CONS, cons | (cons_reg & 0x8000_0000));
        self.trace.0.push(Obs::Events(recs));
    }

    /// Records GERROR, GERRORN and CMDQ_CONS.
    pub fn regs(&mut self) {
        let m = self.p.mmio();
        self.trace.0.push(Obs::Regs {
            gerror: m.read32(GERROR),
            gerrorn: m.read32(GERRORN),
            cmdq_cons: m.read32(CMDQ_CONS),
        });
    }

    /// Records a driver call's result and checks it succeeded (`ok`) or failed (`!ok`).
    fn result_is<T: std::fmt::Debug, E: std::fmt::Debug>(&mut self, r: &Result<T, E>, ok: bool) {
        self.trace.0.push(Obs::Result(format!("{r:?}")));
        if r.is_ok() != ok {
            let want = if ok { "success" } else { "an error" };
            self.unmet(format!("declared {want}, got {r:?}"));
        }
    }

    /// Records `mem[off..]` over the segments of `want` and checks each segment holds what it
    /// declares.
    fn mem_is(&mut self, mem: &Mem<P>, off: usize, want: &[(usize, Bytes<'_, Mem<P>>)]) {
        let len = want.iter().map(|(n, _)| n).sum();
        self.mem(mem, off, len);
        let Some(Obs::Mem(got)) = self.trace.0.last() else {
            unreachable!("mem records a Mem observation")
        };
        let got = got.clone();
        let mut at = 0;
        for (n, b) in want {
            let expect: Vec<u8> = match b {
                Bytes::Like(other, from) => {
                    let mut v = Vec::new();
                    for i in (0..*n).step_by(8) {
                        v.extend_from_slice(&other.read_u64(from + i).to_le_bytes());
                    }
                    v.truncate(*n);
                    v
                }
                Bytes::Seed(seed) => (off + at..off + at + n)
                    .map(|i| pattern(*seed, i))
                    .collect(),
                Bytes::Zero => vec![0; *n],
            };
            if got[at..at + n] != expect[..] {
                let kind = match b {
                    Bytes::Like(_, from) => format!("the source bytes at {from:#x}"),
                    Bytes::Seed(seed) => format!("its untouched pattern (seed {seed:#x})"),
                    Bytes::Zero => "zeros".to_string(),
                };
                self.unmet(format!(
                    "bytes {:#x}..{:#x} declared to hold {kind}, hold {:02x?}",
                    off + at,
                    off + at + n,
                    &got[at..(at + n).min(at + 16)]
                ));
            }
            at += n;
        }
    }

    /// Records `len` bytes of `mem` from `off` (8-byte multiples).
    fn mem(&mut self, mem: &Mem<P>, off: usize, len: usize) {
        let mut v = Vec::with_capacity(len);
        for i in (0..len).step_by(8) {
            v.extend_from_slice(&mem.read_u64(off + i).to_le_bytes());
        }
        self.trace.0.push(Obs::Mem(v));
    }

    fn buffer(&self, size: usize, align: usize, seed: u8) -> Mem<P> {
        let b = self.p.alloc().alloc_zeroed(size, align).expect("alloc");
        // Patterned at the start and in the last page (large blocks stay cheap over qtest).
        let tail = size.saturating_sub(4096).max(8192.min(size));
        for i in (0..8192.min(size))
            .step_by(8)
            .chain((tail..size).step_by(8))
        {
            let mut w = [0u8; 8];
            for (j, x) in w.iter_mut().enumerate() {
                *x = pattern(seed, i + j);
            }
            b.write_u64(i, u64::from_le_bytes(w));
        }
        b
    }

    /// Moves what the device holds from `off` out to `dst` in bypass, then records it and
    /// checks it against `want` (what an earlier read DMA really fetched). Leaves the STE in
    /// bypass.
    fn reveal(&mut self, off: usize, dst: &Mem<P>, want: &[(usize, Bytes<'_, Mem<P>>)]) {
        let len = want.iter().map(|(n, _)| n).sum();
        self.smmu.set_bypass(EDU_SID).expect("bypass");
        self.p.dma_from_dev(off, dst.dma_addr(), len);
        self.mem_is(dst, 0, want);
    }

    fn finish(self) -> Trace {
        if let Err(e) = self.p.check() {
            panic!("{} platform error: {e}", self.p.name());
        }
        self.trace
    }
}

/// An empty stage-1 page table and the CD configuration that points at it with `asid`.
fn s1_table<P: Platform>(c: &Ctx<P>, granule: Granule, ias: u32, asid: u16) -> (Pt<P>, S1Config) {
    let pt = PageTable::new(
        Config {
            granule,
            ias,
            oas: 44,
            coherent_walk: true,
        },
        c.p.alloc(),
        MapStore::default(),
    )
    .expect("page table");
    let s = pt.s1_context();
    let cfg = S1Config {
        asid,
        ttbr: s.ttb0,
        tsz: s.t0sz,
        tg: s.tg0,
        irgn: s.rgn0,
        orgn: s.rgn0,
        sh: s.sh0,
        ips: s.ips,
        mair: s.mair,
        hw_dirty: false,
        stall: false,
    };
    (pt, cfg)
}

fn s1_setup<P: Platform>(
    c: &mut Ctx<P>,
    granule: Granule,
    ias: u32,
    asid: u16,
) -> (Pt<P>, Mst<P>, S1Config) {
    let (pt, cfg) = s1_table(c, granule, ias, asid);
    let mut m = c
        .smmu
        .new_master(&[EDU_SID], 0, MasterOptions::default())
        .expect("master");
    c.smmu.ensure_cd_table(&mut m).expect("cd table");
    c.smmu.write_cd(&mut m, 0, &Cd::s1(&cfg)).expect("cd 0");
    c.smmu
        .attach_cd_table(&mut m, s1dss::SSID0)
        .expect("attach");
    (pt, m, cfg)
}

/// Byte `i` of a buffer filled for `seed` ([`Ctx::buffer`]).
fn pattern(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(7))
}

const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);

fn bypass<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0x11);
    let dst = c.buffer(4096, 4096, 0);
    c.step("bypass copy");
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr() + 0x100, 0, 64);
    c.p.dma_from_dev(0, dst.dma_addr() + 0x800, 64);
    c.events(&[]);
    c.mem_is(
        &dst,
        0x7f8,
        &[
            (8, Bytes::Seed(0)),
            (64, Bytes::Like(&src, 0x100)),
            (8, Bytes::Seed(0)),
        ],
    );
}

fn abort<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0x22);
    let dst = c.buffer(4096, 4096, 0x33);
    c.step("abort STE: write dropped, read sees nothing, no event");
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 32);
    c.smmu.set_abort(EDU_SID).unwrap();
    c.p.dma_from_dev(0, dst.dma_addr(), 32);
    c.p.dma_to_dev(src.dma_addr() + 64, 32, 16);
    c.events(&[]);
    c.mem_is(&dst, 0, &[(32, Bytes::Seed(0x33))]);
    c.step("reveal device buffer");
    let out = c.buffer(4096, 4096, 0);
    c.reveal(
        0,
        &out,
        &[
            (32, Bytes::Like(&src, 0)),
            (16, Bytes::Zero),
            (16, Bytes::Zero),
        ],
    );
    c.events(&[]);
}

fn bad_streamid_then_l2<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0x44);
    c.step("no level-2 table for the StreamID: C_BAD_STREAMID");
    c.p.dma_to_dev(src.dma_addr(), 0, 8);
    c.events(&[(C_BAD_STREAMID, 2)]);
    c.step("write STE: level-2 table linked, bypass works");
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr() + 8, 8, 8);
    c.events(&[]);
    let out = c.buffer(4096, 4096, 0);
    c.reveal(0, &out, &[(8, Bytes::Zero), (8, Bytes::Like(&src, 8))]);
}

fn bad_ste_invalid<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0x55);
    let dst = c.buffer(4096, 4096, 0x66);
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 64);
    c.step("STE V=0: C_BAD_STE for read and write");
    c.smmu.write_ste(EDU_SID, &Ste([0; 8])).unwrap();
    c.p.dma_from_dev(0, dst.dma_addr(), 8);
    c.p.dma_to_dev(src.dma_addr() + 0x40, 0, 16);
    c.events(&[(C_BAD_STE, 6)]);
    c.mem_is(&dst, 0, &[(16, Bytes::Seed(0x66))]);
    c.regs();
}

fn bad_ste_s1cdmax<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0x57);
    let (_pt, m, _) = s1_setup(c, Granule::G4K, 39, 1);
    c.step("S1 STE with S1CDMax=1 on an SMMU without SubstreamIDs");
    let cd_ref = m.cd_table().unwrap().cd_ref();
    let mut ste = Ste::s1_cdtable(
        &c.smmu.features().ste_features(),
        &MasterOptions::default(),
        &cd_ref,
        s1dss::SSID0,
    );
    ste = ste.set_s1cdmax(1);
    let slot = c.smmu.stream_table().slot(EDU_SID).unwrap();
    slot.mem.write_u64(slot.offset, ste.0[0]);
    c.smmu.inv_ste(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 8);
    c.events(&[(C_BAD_STE, 2)]);
}

fn linear_strtab<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0x77);
    let dst = c.buffer(4096, 4096, 0);
    c.step("linear table before any STE write");
    c.p.dma_to_dev(src.dma_addr(), 0, 8);
    // The driver writes every STE of a linear table as abort at init: aborted, no event.
    c.events(&[]);
    c.step("bypass");
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 32);
    c.p.dma_from_dev(0, dst.dma_addr(), 32);
    c.mem_is(&dst, 0, &[(32, Bytes::Like(&src, 0))]);
    c.step("invalid STE");
    c.smmu.write_ste(EDU_SID, &Ste([0; 8])).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 8);
    c.events(&[(C_BAD_STE, 2)]);
}

fn s1_common<P: Platform>(c: &mut Ctx<P>, granule: Granule, ias: u32) {
    let g = granule.size() as usize;
    let src = c.buffer(2 * g, g, 0x88);
    let dst = c.buffer(2 * g, g, 0);
    let ro = c.buffer(g, g, 0x99);
    let (mut pt, _m, _) = s1_setup(c, granule, ias, 5);
    let base = 0x10_0000 * (g as u64 / 4096);
    pt.map(base, src.dma_addr(), 2 * g as u64, RW).unwrap();
    pt.map(base + 0x100 * g as u64, dst.dma_addr(), 2 * g as u64, RW)
        .unwrap();
    pt.map(base + 0x200 * g as u64, ro.dma_addr(), g as u64, Prot::READ)
        .unwrap();
    c.step("translated copy across a page boundary");
    c.p.dma_to_dev(base + g as u64 - 32, 0, 64);
    c.p.dma_from_dev(0, base + 0x100 * g as u64 + g as u64 - 16, 64);
    c.events(&[]);
    c.mem_is(&dst, g - 16, &[(64, Bytes::Like(&src, g - 32))]);
    c.step("unmapped IOVA: F_TRANSLATION on read and write");
    c.p.dma_to_dev(base + 0x50 * g as u64 + 0x18, 0x100, 8);
    c.p.dma_from_dev(0, base + 0x60 * g as u64 + 0x20, 8);
    c.events(&[(F_TRANSLATION, 4)]);
    c.step("read-only page: reads work, writes F_PERMISSION");
    c.p.dma_to_dev(base + 0x200 * g as u64 + 0x40, 0x200, 16);
    c.p.dma_from_dev(0, base + 0x200 * g as u64 + 0x80, 8);
    c.events(&[(F_PERMISSION, 2)]);
    c.mem_is(&ro, 0x80, &[(8, Bytes::Seed(0x99))]);
    c.step("beyond the IAS: F_TRANSLATION");
    c.p.dma_from_dev(0, 1u64 << ias, 8);
    c.events(&[(F_TRANSLATION, 2)]);
    c.step("block mapping");
    let blk = (granule == Granule::G4K).then(|| s1_block(c, &mut pt));
    c.step("device buffer");
    let out = c.buffer(4096, 4096, 0);
    // 0..64 from the translated copy, 0x100.. zeros from the unmapped read, 0x200.. the
    // read-only page, 0x300.. the block (4K only).
    let mut want = vec![
        (64, Bytes::Like(&src, g - 32)),
        (0xc0, Bytes::Zero),
        (8, Bytes::Zero),
        (0xf8, Bytes::Zero),
        (16, Bytes::Like(&ro, 0x40)),
        (0xf0, Bytes::Zero),
    ];
    match &blk {
        Some((blk, from)) => want.extend([(32, Bytes::Like(blk, *from)), (0xe0, Bytes::Zero)]),
        None => want.push((0x100, Bytes::Zero)),
    }
    c.reveal(0, &out, &want);
}

/// Maps a 2 MiB block and copies through it; returns the block's buffer and the offset the
/// device read from.
fn s1_block<P: Platform>(c: &mut Ctx<P>, pt: &mut Pt<P>) -> (Mem<P>, usize) {
    let g = 4096u64;
    let bsz = g * (g / 8);
    let blk = c.buffer(bsz as usize, bsz as usize, 0xa5);
    let biova = bsz * 3;
    pt.map(biova, blk.dma_addr(), bsz, RW).unwrap();
    assert_eq!(pt.lookup(biova).unwrap().level, 2);
    c.p.dma_to_dev(biova + bsz - 0x1000, 0x300, 32);
    c.p.dma_from_dev(0x300, biova + 0x5000, 32);
    c.events(&[]);
    let from = bsz as usize - 0x1000;
    c.mem_is(&blk, 0x5000, &[(32, Bytes::Like(&blk, from))]);
    (blk, from)
}

fn s1_4k<P: Platform>(c: &mut Ctx<P>) {
    s1_common(c, Granule::G4K, 39)
}

fn s1_64k<P: Platform>(c: &mut Ctx<P>) {
    s1_common(c, Granule::G64K, 42)
}

fn bad_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0xb1);
    c.step("S1 STE with CD 0 invalid: C_BAD_CD");
    let mut m = c
        .smmu
        .new_master(&[EDU_SID], 0, MasterOptions::default())
        .unwrap();
    c.smmu
        .attach_cd_table(&mut m, s1dss::SSID0)
        .expect("attach");
    c.p.dma_to_dev(src.dma_addr(), 0, 8);
    c.events(&[(C_BAD_CD, 2)]);
    c.step("CD 0 with EPD0 (quiesced): F_TRANSLATION without record (R=0)");
    let cfg = S1Config {
        asid: 3,
        ips: 4,
        mair: 0xff,
        ..Default::default()
    };
    c.smmu
        .write_cd(&mut m, 0, &Cd::quiesced(&cfg, false))
        .unwrap();
    c.p.dma_to_dev(0x1000, 0, 8);
    c.events(&[]);
}

fn ste_change_cfgi<P: Platform>(c: &mut Ctx<P>) {
    let src = c.buffer(4096, 4096, 0xc3);
    let dst = c.buffer(4096, 4096, 0);
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 32);
    c.step("STE changed to abort in memory, no CFGI: cached bypass still used");
    let slot = c.smmu.stream_table().slot(EDU_SID).unwrap();
    let w0 = Ste::abort().0[0];
    slot.mem.write_u64(slot.offset, w0);
    c.p.dma_from_dev(0, dst.dma_addr(), 32);
    c.events(&[]);
    c.mem_is(&dst, 0, &[(32, Bytes::Like(&src, 0))]);
    c.step("CFGI_STE: abort takes effect");
    c.smmu.inv_ste(EDU_SID).unwrap();
    c.p.dma_from_dev(0, dst.dma_addr() + 0x100, 32);
    c.events(&[]);
    c.mem_is(&dst, 0x100, &[(32, Bytes::Seed(0))]);
    c.step("STE made invalid in memory, CFGI_STE: C_BAD_STE");
    let slot = c.smmu.stream_table().slot(EDU_SID).unwrap();
    slot.mem.write_u64(slot.offset, 0);
    c.smmu.inv_ste(EDU_SID).unwrap();
    c.p.dma_from_dev(0, dst.dma_addr() + 0x200, 8);
    c.events(&[(C_BAD_STE, 2)]);
    c.mem_is(&dst, 0x200, &[(8, Bytes::Seed(0))]);
}

fn tlbi<P: Platform>(c: &mut Ctx<P>) {
    let a = c.buffer(4096, 4096, 0);
    let b = c.buffer(4096, 4096, 0);
    let other = c.buffer(4096, 4096, 0);
    let src = c.buffer(4096, 4096, 0xd7);
    let (pt, _m, _) = s1_setup(c, Granule::G4K, 39, 9);
    let iova = 0x4000_0000u64;
    pt.map(iova, a.dma_addr(), 4096, RW).unwrap();
    // A neighbour keeps the level-3 table alive across the unmap below.
    pt.map(iova + 0x1000, other.dma_addr(), 4096, RW).unwrap();
    pt.map(0x8000_0000, src.dma_addr(), 4096, RW).unwrap();
    c.p.dma_to_dev(0x8000_0000, 0, 64);
    c.step("first write: goes to A, entry cached");
    c.p.dma_from_dev(0, iova, 16);
    c.events(&[]);
    c.mem_is(&a, 0, &[(16, Bytes::Like(&src, 0))]);
    c.step("remapped to B without TLBI: stale entry still writes A");
    let mut g = Gather::new();
    assert_eq!(pt.unmap(iova, 4096, &mut g).unwrap(), 4096);
    pt.map(iova, b.dma_addr(), 4096, RW).unwrap();
    c.p.dma_from_dev(16, iova + 16, 16);
    c.events(&[]);
    c.mem_is(&a, 0, &[(32, Bytes::Like(&src, 0))]);
    c.mem_is(&b, 0, &[(32, Bytes::Seed(0))]);
    c.step("TLBI for another ASID: still stale");
    c.smmu.inv_asid(10).unwrap();
    c.p.dma_from_dev(32, iova + 32, 16);
    c.mem_is(&a, 32, &[(16, Bytes::Like(&src, 32))]);
    c.mem_is(&b, 32, &[(16, Bytes::Seed(0))]);
    c.step("TLBI_NH_VA: B now");
    c.smmu.inv_range(9, iova, 4096, 4096, true, 12).unwrap();
    c.p.dma_from_dev(48, iova + 48, 16);
    c.events(&[]);
    c.mem_is(&a, 48, &[(16, Bytes::Seed(0))]);
    c.mem_is(&b, 48, &[(16, Bytes::Like(&src, 48))]);
    c.step("unmapped without TLBI: stale B; TLBI_NH_ASID: F_TRANSLATION");
    let mut g = Gather::new();
    pt.unmap(iova, 4096, &mut g).unwrap();
    c.p.dma_from_dev(0, iova + 0x100, 8);
    c.events(&[]);
    c.mem_is(&b, 0x100, &[(8, Bytes::Like(&src, 0))]);
    c.smmu.inv_asid(9).unwrap();
    c.p.dma_from_dev(0, iova + 0x108, 8);
    c.events(&[(F_TRANSLATION, 2)]);
    c.mem_is(&b, 0x108, &[(8, Bytes::Seed(0))]);
}

fn illegal_command<P: Platform>(c: &mut Ctx<P>) {
    c.step("illegal opcode between two good commands, no sync yet");
    c.regs();
    let bad = CmdEntry::default().set_op(0x7f);
    let ok = Command::TlbiNsnhAll.encode().unwrap();
    let r = c.smmu.submit_entries(&[ok, bad, ok], false);
    c.result_is(&r, true);
    c.regs();
    c.step("sync: error reported, command skipped, queue restarted");
    let r = c.smmu.sync();
    c.result_is(&r, false);
    c.regs();
    c.step("queue works again");
    let r = c.smmu.inv_asid(3);
    c.result_is(&r, true);
    c.regs();
    c.step("CFGI_CD with SSec=1 is illegal too");
    let mut e = Command::CfgiCd {
        sid: EDU_SID,
        ssid: 0,
        leaf: true,
    }
    .encode()
    .unwrap();
    e.0[0] |= 1 << 10;
    let r = c.smmu.submit_entries(&[e], true);
    c.result_is(&r, false);
    c.regs();
    c.events(&[]);
    let _ = DEV_BUF;
}

// ---------------------------------------------------------------------------------------------
// SubstreamIDs (the PASID platform: lab QEMU's `arm-smmuv3.ssidsize=20` + edu-pasid)

/// The IOVA every PASID's domain maps (to its own page).
const SSID_IOVA: u64 = 0x1000_0000;

/// A stage-1 domain: its page table, its CD and the page it maps at [`SSID_IOVA`].
struct Dom<P: Platform> {
    pt: Pt<P>,
    cd: Cd,
    page: Mem<P>,
}

/// `n` domains with ASIDs `1..=n`, each mapping [`SSID_IOVA`] to its own page (seeds
/// `0xa0 + i`).
fn ssid_domains<P: Platform>(c: &mut Ctx<P>, n: usize) -> Vec<Dom<P>> {
    (0..n)
        .map(|i| {
            let page = c.buffer(4096, 4096, 0xa0 + i as u8);
            let (pt, cfg) = s1_table(c, Granule::G4K, 39, 1 + i as u16);
            pt.map(SSID_IOVA, page.dma_addr(), 4096, RW).unwrap();
            Dom {
                pt,
                cd: Cd::s1(&cfg),
                page,
            }
        })
        .collect()
}

/// Loads the device's buffer from a patterned buffer (seed 0x5a) through a bypass STE and
/// returns that buffer: what the device writes later are its first 8 bytes.
fn ssid_load<P: Platform>(c: &mut Ctx<P>) -> Mem<P> {
    let src = c.buffer(4096, 4096, 0x5a);
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.p.dma_to_dev(src.dma_addr(), 0, 64);
    src
}

/// edu's master with `bits` PASID bits and its CD table, CDs `cds` (SubstreamID, domain
/// index) written, the STE not yet.
fn ssid_master<P: Platform>(
    c: &mut Ctx<P>,
    bits: u32,
    doms: &[Dom<P>],
    cds: &[(u32, usize)],
) -> Mst<P> {
    let mut m = c
        .smmu
        .new_master(&[EDU_SID], bits, MasterOptions::default())
        .expect("master");
    c.smmu.ensure_cd_table(&mut m).expect("cd table");
    for &(ssid, d) in cds {
        c.smmu.write_cd(&mut m, ssid, &doms[d].cd).expect("cd");
    }
    m
}

/// The DMA tagged with `pasid` (write number `k`: to [`SSID_IOVA`] + 8k) lands in exactly
/// the page of domain `want` (`None`: in none).
fn ssid_lands<P: Platform>(
    c: &mut Ctx<P>,
    src: &Mem<P>,
    doms: &[Dom<P>],
    pasid: Option<u32>,
    k: usize,
    want: Option<usize>,
) {
    c.tagged_write(pasid, SSID_IOVA + 8 * k as u64, want.is_some());
    for (i, d) in doms.iter().enumerate() {
        let b = if want == Some(i) {
            Bytes::Like(src, 0)
        } else {
            Bytes::Seed(0xa0 + i as u8)
        };
        c.mem_is(&d.page, 8 * k, &[(8, b)]);
    }
}

/// Records the STE's S1Fmt and S1CDMax and checks they are what the scenario is about.
fn ssid_ste_is<P: Platform>(c: &mut Ctx<P>, fmt: u8, cdmax: u8) {
    let ste = c.smmu.read_ste(EDU_SID);
    c.value_is("STE.S1Fmt", u64::from(ste.s1fmt()), u64::from(fmt));
    c.value_is("STE.S1CDMax", u64::from(ste.s1cdmax()), u64::from(cdmax));
}

/// Records STE.S1DSS (bits [65:64], IHI 0070 5.2) and checks it is `want`.
fn ssid_s1dss_is<P: Platform>(c: &mut Ctx<P>, want: u8) {
    let dss = c.smmu.read_ste(EDU_SID).0[1] & 3;
    c.value_is("STE.S1DSS", dss, u64::from(want));
}

fn ssid_linear_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = ssid_domains(c, 3);
    c.step("linear CD table (4 PASID bits): CDs 0, 1, 15");
    let mut m = ssid_master(c, 4, &doms, &[(0, 0), (1, 1), (15, 2)]);
    c.smmu.attach_cd_table(&mut m, s1dss::SSID0).unwrap();
    ssid_ste_is(c, s1fmt::LINEAR, 4);
    c.step("untagged DMA through CD 0, PASIDs 1 and 15 through theirs");
    ssid_lands(c, &src, &doms, None, 0, Some(0));
    ssid_lands(c, &src, &doms, Some(1), 1, Some(1));
    ssid_lands(c, &src, &doms, Some(15), 2, Some(2));
    c.events(&[]);
    c.step("PASID 5, CD invalid: C_BAD_CD naming it");
    ssid_lands(c, &src, &doms, Some(5), 3, None);
    c.events_naming(&[(C_BAD_CD, 2)], Some(5));
    c.step("PASID 16, beyond S1CDMax: C_BAD_SUBSTREAMID");
    ssid_lands(c, &src, &doms, Some(16), 4, None);
    c.events_naming(&[(C_BAD_SUBSTREAMID, 2)], Some(16));
    c.step("PASID 15 at an unmapped IOVA: F_TRANSLATION naming it");
    c.tagged_write(Some(15), SSID_IOVA + 0x10_0000, false);
    c.events_naming(&[(F_TRANSLATION, 2)], Some(15));
    c.step("untagged at an unmapped IOVA: F_TRANSLATION without SubstreamID");
    c.tagged_write(None, SSID_IOVA + 0x20_0000, false);
    c.events_naming(&[(F_TRANSLATION, 2)], None);
}

fn ssid_2level_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = ssid_domains(c, 3);
    c.step("2-level CD table (20 PASID bits, 64 KB leaves): CDs 0, 1, 0x12345");
    // 0x12345 lies in another leaf (L1 index 0x48) than 0 and 1.
    let mut m = ssid_master(c, 20, &doms, &[(0, 0), (1, 1), (0x1_2345, 2)]);
    c.smmu.attach_cd_table(&mut m, s1dss::SSID0).unwrap();
    ssid_ste_is(c, s1fmt::L2_64K, 20);
    c.step("untagged DMA through CD 0, PASIDs 1 and 0x12345 through theirs");
    ssid_lands(c, &src, &doms, None, 0, Some(0));
    ssid_lands(c, &src, &doms, Some(1), 1, Some(1));
    ssid_lands(c, &src, &doms, Some(0x1_2345), 2, Some(2));
    c.events(&[]);
    c.step("PASID 0x12346, leaf present, CD invalid: C_BAD_CD");
    ssid_lands(c, &src, &doms, Some(0x1_2346), 3, None);
    c.events_naming(&[(C_BAD_CD, 2)], Some(0x1_2346));
    c.step("PASID 0x80000, L1 descriptor invalid: C_BAD_SUBSTREAMID");
    ssid_lands(c, &src, &doms, Some(0x8_0000), 4, None);
    c.events_naming(&[(C_BAD_SUBSTREAMID, 2)], Some(0x8_0000));
    c.step("CD 0x80000 written: its leaf linked, the PASID translates");
    c.smmu.write_cd(&mut m, 0x8_0000, &doms[1].cd).unwrap();
    ssid_lands(c, &src, &doms, Some(0x8_0000), 5, Some(1));
    c.events(&[]);
}

/// A 2-level CD table with 4 KB leaves (S1Fmt = 1; the driver core only makes 64 KB ones),
/// built by hand: S1CDMax 8, L1 entry 1 valid (SubstreamIDs 64..127), the others invalid;
/// S1DSS terminate. Then S1CDMax beyond SSIDSIZE.
fn ssid_2level_4k_leaves<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = ssid_domains(c, 1);
    let l1 = c.p.alloc().alloc_zeroed(4096, 4096).expect("alloc");
    let leaf = c.p.alloc().alloc_zeroed(4096, 4096).expect("alloc");
    for (i, w) in doms[0].cd.0.iter().enumerate() {
        leaf.write_u64(64 + i * 8, *w);
    }
    l1.write_u64(8, leaf.dma_addr() | 1);
    let table = CdTableRef {
        dma: l1.dma_addr(),
        s1fmt: s1fmt::L2_4K,
        s1cdmax: 8,
    };
    c.step("STE: 2-level CD table, 4 KB leaves, S1CDMax 8, S1DSS terminate");
    let feat = c.smmu.features().ste_features();
    let ste = Ste::s1_cdtable(&feat, &MasterOptions::default(), &table, s1dss::TERMINATE);
    c.smmu.write_ste(EDU_SID, &ste).unwrap();
    ssid_ste_is(c, s1fmt::L2_4K, 8);
    c.step("PASID 65: L1 index 1, CD 1 of the leaf");
    ssid_lands(c, &src, &doms, Some(65), 0, Some(0));
    c.events(&[]);
    c.step("PASID 5: L1 descriptor 0 invalid: C_BAD_SUBSTREAMID");
    ssid_lands(c, &src, &doms, Some(5), 1, None);
    c.events_naming(&[(C_BAD_SUBSTREAMID, 2)], Some(5));
    c.step("PASID 256, beyond S1CDMax: C_BAD_SUBSTREAMID");
    ssid_lands(c, &src, &doms, Some(256), 2, None);
    c.events_naming(&[(C_BAD_SUBSTREAMID, 2)], Some(256));
    c.step("PASID 64: CD 0 of the leaf invalid: C_BAD_CD");
    ssid_lands(c, &src, &doms, Some(64), 3, None);
    c.events_naming(&[(C_BAD_CD, 2)], Some(64));
    c.step("untagged with S1DSS terminate: F_STREAM_DISABLED");
    ssid_lands(c, &src, &doms, None, 4, None);
    c.events_naming(&[(F_STREAM_DISABLED, 2)], None);
    c.step("S1CDMax 21, above SSIDSIZE 20 (ILLEGAL, IHI 0070 5.2): C_BAD_STE naming the PASID");
    c.smmu.write_ste(EDU_SID, &ste.set_s1cdmax(21)).unwrap();
    ssid_lands(c, &src, &doms, Some(65), 5, None);
    c.events_naming(&[(C_BAD_STE, 2)], Some(65));
    ssid_lands(c, &src, &doms, None, 6, None);
    c.events_naming(&[(C_BAD_STE, 2)], None);
}

fn ssid_s1dss<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = ssid_domains(c, 2);
    let target = c.buffer(4096, 4096, 0x3c);
    let mut m = ssid_master(c, 20, &doms, &[(0, 0), (1, 1)]);
    c.step("S1DSS terminate: untagged F_STREAM_DISABLED, PASID 1 translates");
    c.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    ssid_s1dss_is(c, 0);
    ssid_lands(c, &src, &doms, None, 0, None);
    c.events_naming(&[(F_STREAM_DISABLED, 2)], None);
    ssid_lands(c, &src, &doms, Some(1), 1, Some(1));
    c.events(&[]);
    c.step("S1DSS bypass: untagged reaches the physical address, PASID 1 translates");
    c.smmu.attach_cd_table(&mut m, s1dss::BYPASS).unwrap();
    ssid_s1dss_is(c, 1);
    c.tagged_write(None, target.dma_addr() + 0x40, true);
    c.mem_is(
        &target,
        0x38,
        &[
            (8, Bytes::Seed(0x3c)),
            (8, Bytes::Like(&src, 0)),
            (8, Bytes::Seed(0x3c)),
        ],
    );
    ssid_lands(c, &src, &doms, Some(1), 2, Some(1));
    c.events(&[]);
    c.step("S1DSS SSID0: untagged through CD 0, SubstreamID 0 F_STREAM_DISABLED");
    c.smmu.attach_cd_table(&mut m, s1dss::SSID0).unwrap();
    ssid_s1dss_is(c, 2);
    ssid_lands(c, &src, &doms, None, 3, Some(0));
    ssid_lands(c, &src, &doms, Some(0), 4, None);
    c.events_naming(&[(F_STREAM_DISABLED, 2)], Some(0));
    ssid_lands(c, &src, &doms, Some(1), 5, Some(1));
    c.events(&[]);
    c.step("bypass STE: PASID-tagged DMA C_BAD_SUBSTREAMID, untagged bypasses");
    c.smmu.set_bypass(EDU_SID).unwrap();
    c.tagged_write(Some(1), target.dma_addr() + 0x80, false);
    c.events_naming(&[(C_BAD_SUBSTREAMID, 2)], Some(1));
    c.tagged_write(None, target.dma_addr() + 0x88, true);
    c.mem_is(
        &target,
        0x80,
        &[(8, Bytes::Seed(0x3c)), (8, Bytes::Like(&src, 0))],
    );
    c.step("abort STE: PASID-tagged DMA dropped, no event");
    c.smmu.set_abort(EDU_SID).unwrap();
    c.tagged_write(Some(1), target.dma_addr() + 0x90, false);
    c.events(&[]);
    c.mem_is(&target, 0x90, &[(8, Bytes::Seed(0x3c))]);
}

/// Rewrites the CD of `ssid` in memory to `cd` without any CFGI_CD: the SMMU is not told.
fn ssid_poke_cd<P: Platform>(m: &Mst<P>, ssid: u32, cd: &Cd) {
    let slot = m.cd_table().unwrap().slot(ssid).unwrap();
    for (i, w) in cd.0.iter().enumerate() {
        slot.mem.write_u64(slot.offset + i * 8, *w);
    }
}

fn ssid_cfgi_cd<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let doms = ssid_domains(c, 4);
    let mut m = ssid_master(c, 20, &doms, &[(1, 0), (2, 1)]);
    c.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    c.step("CDs 1 and 2 cached");
    ssid_lands(c, &src, &doms, Some(1), 0, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 1, Some(1));
    c.events(&[]);
    c.step("CDs 1 and 2 rewritten in memory, no CFGI_CD: both stale");
    ssid_poke_cd::<P>(&m, 1, &doms[2].cd);
    ssid_poke_cd::<P>(&m, 2, &doms[3].cd);
    ssid_lands(c, &src, &doms, Some(1), 2, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 3, Some(1));
    c.events(&[]);
    c.step("CFGI_CD(2): CD 2 goes, CD 1 stays stale");
    let r = c.smmu.inv_cd(EDU_SID, 2);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 4, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 5, Some(3));
    c.step("CFGI_CD(1): CD 1 goes too");
    let r = c.smmu.inv_cd(EDU_SID, 1);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 6, Some(2));
    ssid_lands(c, &src, &doms, Some(2), 7, Some(3));
    c.events(&[]);
    c.step("CD 1 made invalid in memory: stale; CFGI_CD(1): C_BAD_CD");
    ssid_poke_cd::<P>(&m, 1, &Cd::invalid());
    ssid_lands(c, &src, &doms, Some(1), 8, Some(2));
    c.events(&[]);
    let r = c.smmu.inv_cd(EDU_SID, 1);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(1), 9, None);
    c.events_naming(&[(C_BAD_CD, 2)], Some(1));
    c.step("CD 2 back to domain 1 in memory: stale until CFGI_CD_ALL");
    ssid_poke_cd::<P>(&m, 2, &doms[1].cd);
    ssid_lands(c, &src, &doms, Some(2), 10, Some(3));
    let r = c.smmu.submit_sync(&[Command::CfgiCdAll { sid: EDU_SID }]);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(2), 11, Some(1));
    c.events(&[]);
    c.step("CD 2 to domain 0 in memory: stale until CFGI_STE");
    ssid_poke_cd::<P>(&m, 2, &doms[0].cd);
    ssid_lands(c, &src, &doms, Some(2), 12, Some(1));
    let r = c.smmu.inv_ste(EDU_SID);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(2), 13, Some(0));
    c.events(&[]);
}

/// Remaps [`SSID_IOVA`] of domain `d` to the page of domain `to`, without any TLBI.
fn ssid_remap<P: Platform>(doms: &mut [Dom<P>], d: usize, to: usize) {
    let pa = doms[to].page.dma_addr();
    let mut g = Gather::new();
    assert_eq!(doms[d].pt.unmap(SSID_IOVA, 4096, &mut g).unwrap(), 4096);
    doms[d].pt.map(SSID_IOVA, pa, 4096, RW).unwrap();
}

/// TLB entries are the ASID's, not the SubstreamID's: PASIDs 1 and 3 share domain 0 (ASID 1),
/// PASID 2 has domain 1 (ASID 2). A remap without TLBI stays stale for every PASID of the
/// ASID (also one that never used the entry), a TLBI of one ASID leaves the other's stale.
fn ssid_tlbi<P: Platform>(c: &mut Ctx<P>) {
    let src = ssid_load(c);
    let mut doms = ssid_domains(c, 4);
    for d in &mut doms[..2] {
        // A neighbour keeps the level-3 table alive across the unmaps below.
        let pa = d.page.dma_addr();
        d.pt.map(SSID_IOVA + 0x1000, pa, 4096, RW).unwrap();
    }
    let mut m = ssid_master(c, 20, &doms, &[(1, 0), (2, 1), (3, 0)]);
    c.smmu.attach_cd_table(&mut m, s1dss::TERMINATE).unwrap();
    c.step("PASIDs 1 and 2 cache their translations");
    ssid_lands(c, &src, &doms, Some(1), 0, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 1, Some(1));
    c.events(&[]);
    c.step("both domains remapped without TLBI: stale for PASIDs 1, 2 and 3");
    ssid_remap(&mut doms, 0, 2);
    ssid_remap(&mut doms, 1, 3);
    ssid_lands(c, &src, &doms, Some(3), 2, Some(0));
    ssid_lands(c, &src, &doms, Some(1), 3, Some(0));
    ssid_lands(c, &src, &doms, Some(2), 4, Some(1));
    c.events(&[]);
    c.step("TLBI_NH_ASID(2): PASID 2 remapped, PASIDs 1 and 3 still stale");
    let r = c.smmu.inv_asid(2);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(2), 5, Some(3));
    ssid_lands(c, &src, &doms, Some(1), 6, Some(0));
    ssid_lands(c, &src, &doms, Some(3), 7, Some(0));
    c.step("TLBI_NH_VA(ASID 1): PASIDs 1 and 3 remapped");
    let r = c.smmu.inv_range(1, SSID_IOVA, 4096, 4096, true, 12);
    c.result_is(&r, true);
    ssid_lands(c, &src, &doms, Some(3), 8, Some(2));
    ssid_lands(c, &src, &doms, Some(1), 9, Some(2));
    ssid_lands(c, &src, &doms, Some(2), 10, Some(3));
    c.events(&[]);
}

/// Runs scenario `name` on `p` with the default driver configuration (2-level stream table
/// where the SMMU offers one), or a linear table for `linear_strtab`.
pub fn run<P: Platform>(name: &str, p: P) -> Trace {
    let cfg = SmmuConfig {
        force_linear_strtab: name == "linear_strtab",
        force_linear_cd: name == "ssid_linear_cd",
        ..SmmuConfig::default()
    };
    let mut c = Ctx::new(p, cfg);
    c.step(&format!("scenario {name}"));
    match name {
        "bypass" => bypass(&mut c),
        "abort" => abort(&mut c),
        "bad_streamid_then_l2" => bad_streamid_then_l2(&mut c),
        "bad_ste_invalid" => bad_ste_invalid(&mut c),
        "bad_ste_s1cdmax" => bad_ste_s1cdmax(&mut c),
        "linear_strtab" => linear_strtab(&mut c),
        "s1_4k" => s1_4k(&mut c),
        "s1_64k" => s1_64k(&mut c),
        "bad_cd" => bad_cd(&mut c),
        "ste_change_cfgi" => ste_change_cfgi(&mut c),
        "tlbi" => tlbi(&mut c),
        "illegal_command" => illegal_command(&mut c),
        "ssid_linear_cd" => ssid_linear_cd(&mut c),
        "ssid_2level_cd" => ssid_2level_cd(&mut c),
        "ssid_2level_4k_leaves" => ssid_2level_4k_leaves(&mut c),
        "ssid_s1dss" => ssid_s1dss(&mut c),
        "ssid_cfgi_cd" => ssid_cfgi_cd(&mut c),
        "ssid_tlbi" => ssid_tlbi(&mut c),
        "nested_linear_cd" => nested::nested_linear_cd(&mut c),
        "nested_2level_cd" => nested::nested_2level_cd(&mut c),
        "nested_cd_s2_fault" => nested::nested_cd_s2_fault(&mut c),
        "nested_cfgi_cd" => nested::nested_cfgi_cd(&mut c),
        other => panic!("unknown scenario {other}"),
    }
    c.step("end");
    c.regs();
    c.events(&[]);
    c.finish()
}
