// SPDX-License-Identifier: GPL-2.0
//! Differential check of `tools/smmu-model` against QEMU 10.0's SMMUv3.
//!
//! One scenario suite ([`scenarios`]) is written against the small [`Platform`] trait: an SMMU
//! register page ([`Mmio`]), a DMA allocator, a DMA master (QEMU's edu device, StreamID 8) that
//! copies between memory at an IOVA and its 4 KiB buffer, and raw memory access. Every
//! scenario drives the SMMU through the portable driver core (`smmuv3::device::Smmu`) and
//! records a [`Trace`] of observations: raw 32-byte event records (drained straight from the
//! event queue, not decoded by the driver), SMMU_GERROR/GERRORN/CMDQ_CONS values, command
//! results and memory bytes. The same scenario run on [`QemuPlatform`] and on [`ModelPlatform`]
//! (`Features::qemu()`) must give identical traces, observation for observation, and each run
//! must meet the scenario's own declarations of the events and data it produces (a scenario
//! gone silent on both sides would otherwise match).
//!
//! [`planted`] holds wrappers that plant a bug in a platform (a field decoded or encoded at the
//! wrong bit offset, a command field ignored, events silenced) to show that the suite catches
//! such bugs.

use physmem::PhysMem;
use smmu_model::{Access, Features, Quirks, SmmuModel, TxnAttrs};
use smmuv3::dma::{DmaAllocator, Mmio};
use std::fmt;

pub mod planted;
pub mod scenarios;

/// StreamID of the DMA master on both platforms (edu at 00:01.0 on QEMU's `virt`).
pub const EDU_SID: u32 = 8;
/// Size of the DMA master's buffer.
pub const DEV_BUF: usize = 4096;
/// Base of the memory handed out by both allocators (QEMU `virt` RAM + 2 MiB, see qtest docs),
/// so that physical addresses agree too when the scenario allocates in the same order.
pub const RAM_BASE: u64 = 0x4020_0000;
/// Size of that memory.
pub const RAM_SIZE: u64 = 254 << 20;

/// What a scenario needs from a platform.
pub trait Platform {
    /// The SMMU register page.
    type Mmio: Mmio + Clone;
    /// Memory for tables, queues and DMA buffers.
    type Alloc: DmaAllocator + Clone;
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// The SMMU register page (page 1 at 0x10000).
    fn mmio(&self) -> Self::Mmio;
    /// The allocator.
    fn alloc(&self) -> Self::Alloc;
    /// The DMA master copies `len` bytes from bus address `iova` into its buffer at `off`.
    fn dma_to_dev(&mut self, iova: u64, off: usize, len: usize);
    /// The DMA master copies `len` bytes from its buffer at `off` to bus address `iova`.
    fn dma_from_dev(&mut self, off: usize, iova: u64, len: usize);
    /// Reads physical memory.
    fn read_mem(&self, pa: u64, buf: &mut [u8]);
    /// Tags the DMA master's following DMAs with PASID `pasid` (`None`: untagged). Only the
    /// SubstreamID platforms ([`scenarios::needs_pasid`]) can.
    fn set_dma_pasid(&mut self, pasid: Option<u32>);
    /// What the last DMA did, as edu-pasid's result register says: 0 done, 1 failed (some
    /// piece was not translated).
    fn dma_result(&self) -> u32;
    /// Anything the platform wants to report after a run (e.g. a swallowed qtest error).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// One observation.
#[derive(Clone, PartialEq, Eq)]
pub enum Obs {
    /// A step label, so that diffs say where they happened.
    Step(String),
    /// Raw event records drained from the event queue.
    Events(Vec<[u8; 32]>),
    /// SMMU_GERROR, SMMU_GERRORN, SMMU_CMDQ_CONS.
    Regs {
        gerror: u32,
        gerrorn: u32,
        cmdq_cons: u32,
    },
    /// A driver call's result, formatted.
    Result(String),
    /// Memory contents.
    Mem(Vec<u8>),
    /// A declaration of the scenario that this run did not meet (see [`scenarios`]).
    Unmet(String),
}

impl fmt::Debug for Obs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obs::Step(s) => write!(f, "step {s}"),
            Obs::Events(evs) => {
                write!(f, "{} events [", evs.len())?;
                for e in evs {
                    let w: Vec<String> = e
                        .chunks(8)
                        .map(|c| format!("{:016x}", u64::from_le_bytes(c.try_into().unwrap())))
                        .collect();
                    write!(f, " ({})", w.join(" "))?;
                }
                write!(f, " ]")
            }
            Obs::Regs {
                gerror,
                gerrorn,
                cmdq_cons,
            } => write!(
                f,
                "GERROR {gerror:#x} GERRORN {gerrorn:#x} CMDQ_CONS {cmdq_cons:#x}"
            ),
            Obs::Result(r) => write!(f, "result {r}"),
            Obs::Mem(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                write!(f, "mem {hex}")
            }
            Obs::Unmet(why) => write!(f, "UNMET {why}"),
        }
    }
}

/// The observations of one scenario run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace(pub Vec<Obs>);

impl Trace {
    /// The first difference between two traces, described, or `None` if they are equal.
    pub fn diff(&self, other: &Trace) -> Option<String> {
        let mut step = String::from("(start)");
        for (i, (a, b)) in self.0.iter().zip(&other.0).enumerate() {
            if let Obs::Step(s) = a {
                step.clone_from(s);
            }
            if a != b {
                return Some(format!(
                    "observation {i} (in step {step}) differs:\n  left:  {a:?}\n  right: {b:?}"
                ));
            }
        }
        if self.0.len() != other.0.len() {
            return Some(format!(
                "lengths differ: {} vs {} observations",
                self.0.len(),
                other.0.len()
            ));
        }
        None
    }

    /// The scenario's declarations this run did not meet.
    pub fn unmet(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|o| match o {
                Obs::Unmet(why) => Some(why.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Number of event records in the trace.
    pub fn event_count(&self) -> usize {
        self.0
            .iter()
            .map(|o| match o {
                Obs::Events(e) => e.len(),
                _ => 0,
            })
            .sum()
    }
}

/// The page-table store for the driver's stage-1 tables (shared by concurrent callers, see
/// `physmem::ArenaStore`).
pub type MapStore<M> = physmem::ArenaStore<M>;

// ---------------------------------------------------------------------------------------------
// QEMU

/// SubstreamID bits of the SMMU on the PASID platforms (the lab QEMU's
/// `arm-smmuv3.ssidsize=20`, the most it offers).
pub const SSID_BITS: u8 = 20;

/// QEMU 10.0 `virt,iommu=smmuv3` over qtest, edu as the DMA master; or, on the PASID platform,
/// the lab QEMU's SMMUv3 with SubstreamIDs and `edu-pasid` (`docs/pasid-device.md`).
pub struct QemuPlatform {
    m: qtest::Machine,
    edu: qtest::Edu,
    pasid: bool,
}

impl QemuPlatform {
    /// Starts a QEMU (a test calls `qtest::require_qemu` first: without QEMU this panics).
    pub fn start() -> Self {
        Self::start_on(false)
    }

    /// Starts the lab QEMU's PASID platform: `-global arm-smmuv3.ssidsize=20` and
    /// `edu-pasid` (PASID Enable set) as the DMA master, at the same StreamID.
    pub fn start_pasid() -> Self {
        Self::start_on(true)
    }

    /// The platform scenario `name` runs on ([`scenarios::needs_pasid`],
    /// [`scenarios::needs_nested`]).
    pub fn for_scenario(name: &str) -> Self {
        Self::start_with(scenarios::needs_pasid(name), scenarios::needs_nested(name))
    }

    /// The qtest connection (raw guest memory access, e.g. for [`planted`] wrappers).
    pub fn qtest(&self) -> qtest::Qtest {
        self.m.qtest().clone()
    }

    fn start_on(pasid: bool) -> Self {
        Self::start_with(pasid, false)
    }

    /// `nested`: the SMMU also implements stage 2 (`arm-smmuv3.stage=nested`: S1P and S2P).
    fn start_with(pasid: bool, nested: bool) -> Self {
        let mut cfg = if pasid {
            qtest::QemuConfig::default()
                .devices(["edu-pasid,dma_mask=0xffffffffffffffff"])
                .arg("-global")
                .arg(&format!("arm-smmuv3.ssidsize={SSID_BITS}"))
        } else {
            qtest::QemuConfig::default().devices(["edu,dma_mask=0xffffffffffffffff"])
        };
        if nested {
            cfg = cfg.arg("-global").arg("arm-smmuv3.stage=nested");
        }
        let m = qtest::Machine::start(&cfg).expect("start QEMU");
        let edu = if pasid { m.edu_pasid() } else { m.edu() }.expect("edu");
        assert_eq!(edu.stream_id(), EDU_SID);
        Self { m, edu, pasid }
    }
}

impl Platform for QemuPlatform {
    type Mmio = qtest::SmmuMmio;
    type Alloc = qtest::GuestRam;
    fn name(&self) -> &'static str {
        "qemu"
    }
    fn mmio(&self) -> Self::Mmio {
        self.m.smmu()
    }
    fn alloc(&self) -> Self::Alloc {
        self.m.ram().clone()
    }
    fn dma_to_dev(&mut self, iova: u64, off: usize, len: usize) {
        self.edu
            .dma_to_edu(iova, off as u64, len as u64)
            .expect("edu DMA");
    }
    fn dma_from_dev(&mut self, off: usize, iova: u64, len: usize) {
        self.edu
            .dma_from_edu(off as u64, iova, len as u64)
            .expect("edu DMA");
    }
    fn read_mem(&self, pa: u64, buf: &mut [u8]) {
        self.m.qtest().read(pa, buf).expect("qtest read");
    }
    fn set_dma_pasid(&mut self, pasid: Option<u32>) {
        assert!(
            self.pasid,
            "PASID-tagged DMA needs the PASID platform (edu-pasid)"
        );
        self.edu.set_dma_pasid(pasid).expect("edu-pasid PASID");
    }
    fn dma_result(&self) -> u32 {
        assert!(self.pasid, "only edu-pasid reports DMA results");
        self.edu.dma_result().expect("edu-pasid result")
    }
    fn check(&self) -> Result<(), String> {
        self.m.qtest().check().map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// `tools/smmu-model` with `Features::qemu()`, and a DMA master that moves data the way QEMU's
/// edu does through QEMU's memory API: the transfer is split where a translation ends (the
/// 4 KiB piece containing the address, the smallest granule), and an address the SMMU does
/// not translate is accessed as unassigned memory in 4-byte pieces, each translated (and so
/// faulting, and recorded) again. Reads from such pieces return zeros, writes are dropped.
/// DMAs carry the PASID last set as their SubstreamID; a DMA with an untranslated piece has
/// result 1 (edu-pasid: `pci_dma_rw` gives a decode error).
pub struct ModelPlatform {
    /// The SMMU model.
    pub smmu: SmmuModel,
    /// Its memory.
    pub mem: PhysMem,
    buf: Vec<u8>,
    pasid: Option<u32>,
    result: u32,
}

/// The model's features for the lab QEMU's PASID platform: QEMU's, with `SSID_BITS`-bit
/// SubstreamIDs and 2-level CD tables (`arm-smmuv3.ssidsize` sets IDR1.SSIDSIZE and IDR0.CD2L)
/// and S1CDMax honoured (QEMU rejects S1CDMax != 0 only without SubstreamIDs).
pub fn qemu_pasid_features() -> Features {
    let q = Features::qemu();
    Features {
        ssidsize: SSID_BITS,
        cd2l: true,
        quirks: Quirks {
            reject_s1cdmax: false,
            ..q.quirks
        },
        ..q
    }
}

/// The model's features for the lab QEMU's nested PASID platform: [`qemu_pasid_features`] with
/// stage 2 (`arm-smmuv3.stage=nested` sets SMMU_IDR0.S2P next to S1P).
pub fn qemu_nested_features() -> Features {
    Features {
        s2p: true,
        ..qemu_pasid_features()
    }
}

/// Size of an access to unassigned memory in QEMU's memory core (one fault per piece).
pub const UNASSIGNED_PIECE: u64 = 4;

impl ModelPlatform {
    /// A model with QEMU's features.
    pub fn new() -> Self {
        Self::with_features(Features::qemu())
    }

    /// A model with other features.
    pub fn with_features(f: Features) -> Self {
        let mem = PhysMem::new(RAM_BASE, RAM_SIZE);
        Self {
            smmu: SmmuModel::new(mem.clone(), f),
            mem,
            buf: vec![0; DEV_BUF],
            pasid: None,
            result: 0,
        }
    }

    /// The model platform scenario `name` runs on ([`scenarios::needs_pasid`],
    /// [`scenarios::needs_nested`]).
    pub fn for_scenario(name: &str) -> Self {
        if scenarios::needs_nested(name) {
            Self::with_features(qemu_nested_features())
        } else if scenarios::needs_pasid(name) {
            Self::with_features(qemu_pasid_features())
        } else {
            Self::new()
        }
    }

    fn transfer(&mut self, iova: u64, off: usize, len: usize, write: bool) {
        self.result = 0;
        let mut done = 0usize;
        while done < len {
            let a = iova + done as u64;
            let access = if write { Access::Write } else { Access::Read };
            match self
                .smmu
                .translate(EDU_SID, self.pasid, a, access, TxnAttrs::default())
            {
                Ok(t) => {
                    let n = ((4096 - a % 4096) as usize).min(len - done);
                    let b = &mut self.buf[off + done..off + done + n];
                    if write {
                        self.mem.write(t.pa, b);
                    } else {
                        self.mem.read(t.pa, b);
                    }
                    done += n;
                }
                Err(_) => {
                    self.result = 1;
                    let n = ((UNASSIGNED_PIECE - a % UNASSIGNED_PIECE) as usize).min(len - done);
                    if !write {
                        self.buf[off + done..off + done + n].fill(0);
                    }
                    done += n;
                }
            }
        }
    }
}

impl Default for ModelPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform for ModelPlatform {
    type Mmio = SmmuModel;
    type Alloc = PhysMem;
    fn name(&self) -> &'static str {
        "model"
    }
    fn mmio(&self) -> Self::Mmio {
        self.smmu.clone()
    }
    fn alloc(&self) -> Self::Alloc {
        self.mem.clone()
    }
    fn dma_to_dev(&mut self, iova: u64, off: usize, len: usize) {
        self.transfer(iova, off, len, false)
    }
    fn dma_from_dev(&mut self, off: usize, iova: u64, len: usize) {
        self.transfer(iova, off, len, true)
    }
    fn read_mem(&self, pa: u64, buf: &mut [u8]) {
        self.mem.read(pa, buf)
    }
    fn set_dma_pasid(&mut self, pasid: Option<u32>) {
        self.pasid = pasid;
    }
    fn dma_result(&self) -> u32 {
        self.result
    }
}
