// SPDX-License-Identifier: GPL-2.0
//! Shared rig for the QEMU tests: one QEMU (`virt`, SMMUv3, edu with a full DMA mask), the
//! driver's `Smmu` on it, a stage-1 master for edu, and [`HwMmio`], a register-page wrapper
//! that sits between the driver and QEMU's SMMU.
//!
//! `HwMmio` sees every CMDQ_PROD write, reads the commands just published from the queue in
//! guest RAM (base and size from CMDQ_BASE, read back from QEMU) and
//! * logs them (what the hardware actually received, independently of the driver's counters);
//! * while a [`Tamper`] rule is armed, drops matching commands (overwritten by a CMD_SYNC with
//!   CS = NONE, a no-op) or corrupts them (opcode 0x7f, illegal), before QEMU sees PROD move.
//!
//! It can also hide SMMU_IDR3.RIL so the driver runs without range invalidation. The driver
//! code under test is unchanged: only what reaches the hardware differs.
#![allow(dead_code)]

use qtest::{Edu, GuestRam, GuestRamBlock, Machine, QemuConfig, SmmuMmio};
use smmuv3::asid::{AsidAllocator, AsidBits};
use smmuv3::device::{Master, Smmu, SmmuConfig};
use smmuv3::dma::{DmaMemory, Mmio};
use smmuv3::domain::{self, S1Domain};
use smmuv3::event::Event;
use smmuv3::pgtable::Granule;
use smmuv3::ste::MasterOptions;
use smmuv3::store::FixedStore;
use std::cell::RefCell;
use std::rc::Rc;

/// SMMU_CMDQ_BASE, _PROD (IHI 0070 6.3.24-26), SMMU_IDR3 (6.3.4, RIL = bit 10).
const CMDQ_BASE: usize = 0x90;
const CMDQ_PROD: usize = 0x98;
const IDR1: usize = 0x4;
const IDR3: usize = 0xc;
const IDR3_RIL: u32 = 1 << 10;
/// CMD_SYNC with CS = NONE (IHI 0070 4.7.3): completes nothing observable.
pub const NOP: [u64; 2] = [0x46, 0];

/// What to do with a command a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace by a no-op: the SMMU never sees the command.
    Drop,
    /// Replace the opcode by 0x7f: the SMMU raises CERROR_ILL on it.
    Corrupt,
}

/// A rule: `action` for every command whose word 0 has `op` as opcode and, if `sid` or `asid`
/// is given, that StreamID (word 0 [63:32]) / ASID (word 0 [63:48]).
#[derive(Debug, Clone, Copy)]
pub struct Tamper {
    pub op: u8,
    pub sid: Option<u32>,
    pub asid: Option<u16>,
    pub action: Action,
    /// Stop after this many matches (None: all while armed).
    pub limit: Option<usize>,
}

impl Tamper {
    pub fn drop_op(op: u8) -> Self {
        Self {
            op,
            sid: None,
            asid: None,
            action: Action::Drop,
            limit: None,
        }
    }

    fn matches(&self, c: &[u64; 2]) -> bool {
        (c[0] & 0xff) as u8 == self.op
            && self.sid.is_none_or(|s| (c[0] >> 32) as u32 == s)
            && self.asid.is_none_or(|a| (c[0] >> 48) as u16 == a)
    }
}

#[derive(Default)]
pub struct HwState {
    /// Commands the SMMU received, in order (after tampering).
    pub seen: Vec<[u64; 2]>,
    /// Commands dropped or corrupted (as the driver wrote them).
    pub tampered: Vec<[u64; 2]>,
    pub rule: Option<Tamper>,
    pub hide_ril: bool,
    /// Report this SMMU_IDR1.SIDSIZE ([5:0]) instead of QEMU's 16 (a linear stream table
    /// for 16 bits is 65536 STEs, 10 s of qtest writes).
    pub sid_bits: Option<u32>,
    last_prod: Option<u32>,
}

impl HwState {
    /// How many received commands have opcode `op`.
    pub fn count(&self, op: u8) -> usize {
        self.seen
            .iter()
            .filter(|c| (c[0] & 0xff) as u8 == op)
            .count()
    }
}

#[derive(Clone)]
pub struct HwMmio {
    inner: SmmuMmio,
    pub st: Rc<RefCell<HwState>>,
}

impl HwMmio {
    pub fn new(inner: SmmuMmio) -> Self {
        Self {
            inner,
            st: Rc::default(),
        }
    }

    /// Logs and tampers with the entries between the last PROD and `prod`.
    fn intercept(&self, prod: u32) {
        let mut st = self.st.borrow_mut();
        let Some(mut p) = st.last_prod.replace(prod) else {
            return; // the initial PROD write (queue empty)
        };
        let base = self.inner.read64(CMDQ_BASE);
        let log2 = (base & 0x1f) as u32;
        let addr = base & 0x000f_ffff_ffff_ffe0;
        let qt = self.inner.qtest();
        let mask = (2u32 << log2) - 1; // index + wrap bit
        while p != prod {
            let slot = addr + u64::from(p & ((1 << log2) - 1)) * 16;
            let c = [qt.readq(slot).unwrap(), qt.readq(slot + 8).unwrap()];
            let mut got = c;
            if let Some(rule) = st.rule.filter(|r| r.matches(&c)) {
                got = match rule.action {
                    Action::Drop => NOP,
                    Action::Corrupt => [(c[0] & !0xff) | 0x7f, c[1]],
                };
                qt.writeq(slot, got[0]).unwrap();
                qt.writeq(slot + 8, got[1]).unwrap();
                st.tampered.push(c);
                if let Some(l) = rule.limit {
                    st.rule = (l > 1).then_some(Tamper {
                        limit: Some(l - 1),
                        ..rule
                    });
                }
            }
            st.seen.push(got);
            p = (p + 1) & mask;
        }
    }
}

impl Mmio for HwMmio {
    fn read32(&self, offset: usize) -> u32 {
        let v = self.inner.read32(offset);
        let st = self.st.borrow();
        match offset {
            IDR3 if st.hide_ril => v & !IDR3_RIL,
            IDR1 => st.sid_bits.map_or(v, |b| (v & !0x3f) | b),
            _ => v,
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        if offset == CMDQ_PROD {
            self.intercept(value);
        }
        self.inner.write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        self.inner.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.inner.write64(offset, value)
    }
}

/// `PageTableStore` over guest RAM blocks.
pub type RamStore = physmem::ArenaStore<GuestRamBlock>;

pub type Dom = S1Domain<GuestRam, RamStore>;
pub type QSmmu = Smmu<HwMmio, GuestRam>;
pub type QMaster = Master<GuestRamBlock, FixedStore<GuestRamBlock, 64>>;

/// One QEMU with the driver enabled on its SMMU. Field order = drop order: the `Smmu` is
/// disabled before QEMU goes away.
pub struct Rig {
    pub smmu: QSmmu,
    pub asids: AsidAllocator,
    pub hw: Rc<RefCell<HwState>>,
    pub edu: Edu,
    pub sid: u32,
    pub ram: GuestRam,
    pub m: Machine,
}

/// Starts QEMU and enables the SMMU with `cfg`; `None` when QEMU is missing and
/// `LAB_NO_QEMU=1` says to skip (a failure otherwise: `qtest::require_qemu`).
#[track_caller]
pub fn rig(cfg: SmmuConfig, hide_ril: bool) -> Option<Rig> {
    rig_with(cfg, hide_ril, None)
}

/// [`rig`], with IDR1.SIDSIZE reported as `sid_bits` if given.
#[track_caller]
pub fn rig_with(cfg: SmmuConfig, hide_ril: bool, sid_bits: Option<u32>) -> Option<Rig> {
    rig_on(cfg, hide_ril, sid_bits, false)
}

/// SubstreamID bits of the SMMU in [`rig_pasid`] (the most the lab QEMU offers).
pub const PASID_SSID_BITS: u32 = 20;

/// [`rig`] on the lab QEMU's PASID platform: an SMMU with 20-bit SubstreamIDs and 2-level CD
/// tables (`arm-smmuv3.ssidsize=20`) and `edu-pasid` with PASID Enable set; `Rig::edu` is it.
#[track_caller]
pub fn rig_pasid(cfg: SmmuConfig) -> Option<Rig> {
    rig_on(cfg, false, None, true)
}

/// [`rig_pasid`] with stage 2 as well (`arm-smmuv3.stage=nested`: SMMU_IDR0.S1P and S2P), for
/// nested STEs.
#[track_caller]
pub fn rig_pasid_nested(cfg: SmmuConfig) -> Option<Rig> {
    rig_start(cfg, false, None, true, true)
}

#[track_caller]
fn rig_on(cfg: SmmuConfig, hide_ril: bool, sid_bits: Option<u32>, pasid: bool) -> Option<Rig> {
    rig_start(cfg, hide_ril, sid_bits, pasid, false)
}

#[track_caller]
fn rig_start(
    cfg: SmmuConfig,
    hide_ril: bool,
    sid_bits: Option<u32>,
    pasid: bool,
    nested: bool,
) -> Option<Rig> {
    qtest::require_qemu()?;
    let mut qc = if pasid {
        QemuConfig::default()
            .devices(["edu-pasid,dma_mask=0xffffffffffffffff"])
            .arg("-global")
            .arg(&format!("arm-smmuv3.ssidsize={PASID_SSID_BITS}"))
    } else {
        QemuConfig::default().devices(["edu,dma_mask=0xffffffffffffffff"])
    };
    if nested {
        qc = qc.arg("-global").arg("arm-smmuv3.stage=nested");
    }
    let m = Machine::start(&qc).expect("start QEMU");
    let edu = if pasid { m.edu_pasid() } else { m.edu() }.unwrap();
    let sid = edu.stream_id();
    let ram = m.ram().clone();
    let mmio = HwMmio::new(m.smmu());
    mmio.st.borrow_mut().hide_ril = hide_ril;
    mmio.st.borrow_mut().sid_bits = sid_bits;
    let hw = mmio.st.clone();
    let mut smmu = Smmu::probe(mmio, ram.clone(), cfg).unwrap();
    smmu.enable().unwrap();
    let asids = AsidAllocator::new(AsidBits::from_asid16(smmu.features().asid_bits == 16));
    m.qtest().check().unwrap();
    Some(Rig {
        smmu,
        asids,
        hw,
        edu,
        sid,
        ram,
        m,
    })
}

impl Rig {
    /// A new empty stage-1 domain with `granule`.
    pub fn domain(&mut self, granule: Granule) -> Dom {
        let f = *self.smmu.features();
        let cfg = domain::page_table_config(&f, granule).unwrap();
        S1Domain::new(
            cfg,
            self.ram.clone(),
            RamStore::default(),
            &mut self.asids,
            domain::inv_features(&f),
        )
        .unwrap()
    }

    /// edu's master, attached to stage 1 with CD 0 = `dom`'s CD (written before the STE).
    pub fn attach(&mut self, dom: &Dom) -> QMaster {
        let mut master = self
            .smmu
            .new_master(&[self.sid], 0, MasterOptions::default())
            .unwrap();
        self.smmu.ensure_cd_table(&mut master).unwrap();
        self.smmu.write_cd(&mut master, 0, &dom.cd()).unwrap();
        self.smmu
            .attach_cd_table(&mut master, smmuv3::ste::s1dss::SSID0)
            .unwrap();
        master
    }

    /// Loads `data` into edu's buffer at 0 through a bypass STE, then aborts the stream again
    /// (before any test translation exists).
    pub fn load_edu(&mut self, data: &[u8]) {
        let src = self.buf(4096, 4096);
        src.write_bytes(0, data).unwrap();
        self.smmu.set_bypass(self.sid).unwrap();
        self.edu
            .dma_to_edu(src.dma_addr(), 0, data.len() as u64)
            .unwrap();
        self.smmu.set_abort(self.sid).unwrap();
    }

    /// A page-aligned, zeroed guest RAM buffer of `size` bytes.
    pub fn buf(&self, size: usize, align: usize) -> GuestRamBlock {
        let b = self.ram.alloc(size, align).unwrap();
        b.fill(0, size, 0).unwrap();
        b
    }

    /// Drains the event queue.
    pub fn events(&mut self) -> Vec<Event> {
        let mut evs = Vec::new();
        self.smmu.poll_events(256, |e| evs.push(e));
        evs
    }

    /// Arms `rule` (replacing any other).
    pub fn arm(&self, rule: Tamper) {
        self.hw.borrow_mut().rule = Some(rule);
    }

    /// Disarms and returns the commands the rule tampered with.
    pub fn disarm(&self) -> Vec<[u64; 2]> {
        let mut st = self.hw.borrow_mut();
        st.rule = None;
        std::mem::take(&mut st.tampered)
    }

    /// Reads `len` bytes of `b` at `off`.
    pub fn read(b: &GuestRamBlock, off: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        b.read_bytes(off, &mut v).unwrap();
        v
    }

    /// Checks that no error was swallowed by the traits.
    pub fn check(&self) {
        self.m.qtest().check().unwrap();
    }
}

/// Asserts that `evs` is non-empty and holds only F_TRANSLATION records of `sid` whose input
/// addresses lie in `[lo, hi)` and whose direction is `read`.
pub fn assert_translation_faults(evs: &[Event], sid: u32, lo: u64, hi: u64, read: bool) {
    assert!(!evs.is_empty(), "expected F_TRANSLATION events");
    for e in evs {
        match e {
            Event::Translation(f) => {
                assert_eq!(f.access.sid, sid, "{f:?}");
                assert_eq!(f.access.ssid, None, "{f:?}");
                assert!(
                    (lo..hi).contains(&f.access.addr),
                    "{f:?} not in {lo:#x}..{hi:#x}"
                );
                assert_eq!(f.access.read, read, "{f:?}");
                assert!(!f.stage2, "{f:?}");
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}
