// SPDX-License-Identifier: GPL-2.0
//! Counts the commands an SMMUv3 driver issues, by opcode, read from the SMMU's command queue
//! itself: the same instrument for the C `arm-smmu-v3` and the project's Rust driver (both
//! queues have the architecture's format, IHI 0070 3.5 and 4), so it needs nothing from either.
//! Included by the modules that count with `#[path = "common/cmdq.rs"] mod cmdq;`.
//!
//! How: the SMMU is the one available device-tree node compatible with `arm,smmu-v3`; its
//! registers are mapped a second time, read-only (`kernel::hwobserve::MmioView`), and
//! `SMMU_CMDQ_BASE` gives the queue's RAM (`RamView`, refused unless it is System RAM; and only
//! with `IDR0.COHACC`, where the CPU's cached view of the queue is the SMMU's). A count reads
//! `SMMU_CMDQ_PROD` before and after an operation and decodes the entries in between: every
//! entry the driver published (the C driver's lock-free queue publishes PROD only once the
//! entries below it are written; the Rust driver has one producer at a time) in that window.
//!
//! Limits, checked where they can be:
//! - PROD is an index plus one wrap bit, so a count sees the distance modulo two queue lengths.
//!   A span across the ring's end is counted (two pieces); a span longer than the queue is
//!   refused ([`CountError::Lapped`]: its first entries were overwritten), and so is a span
//!   whose entries the producer overtook while they were read ([`CountError::Overwritten`]).
//!   More than two queue lengths in one window cannot be seen: count single operations that
//!   issue far fewer commands than the queue holds (the Rust driver's queue has 256 entries,
//!   the C driver's 2^18 on QEMU).
//! - Commands of other activity in the window are counted too: [`Cmdq::count_stable`] repeats
//!   a measurement until two in a row agree (other activity only ever adds entries).
#![allow(dead_code)]

use core::fmt;
use kernel::{
    c_str,
    error::Error,
    hwobserve::{MmioView, RamView},
};

// Registers (IHI 0070 6.3): page 0.
const IDR0: usize = 0x0;
const CR0: usize = 0x20;
const CMDQ_BASE: usize = 0x90;
const CMDQ_PROD: usize = 0x98;
const CMDQ_CONS: usize = 0x9c;
const IDR0_COHACC: u32 = 1 << 4;
const CR0_CMDQEN: u32 = 1 << 3;
/// `CMDQ_BASE.ADDR`, bits [51:5].
const BASE_ADDR_MASK: u64 = ((1 << 52) - 1) & !0x1f;
/// Bytes per command.
const ENTRY: usize = 16;
/// Widest PROD/CONS index (`LOG2SIZE` <= 19, IHI 0070 6.3.26).
const MAX_SHIFT: u32 = 19;

/// Opcodes (IHI 0070 4.1, "Commands overview"), transcribed from the specification and not
/// taken from `drivers/smmuv3`: the counter is the oracle for that driver as well.
pub(crate) mod op {
    pub(crate) const PREFETCH_CONFIG: u8 = 0x01;
    pub(crate) const PREFETCH_ADDR: u8 = 0x02;
    pub(crate) const CFGI_STE: u8 = 0x03;
    pub(crate) const CFGI_STE_RANGE: u8 = 0x04;
    pub(crate) const CFGI_CD: u8 = 0x05;
    pub(crate) const CFGI_CD_ALL: u8 = 0x06;
    pub(crate) const CFGI_VMS_PIDM: u8 = 0x07;
    pub(crate) const TLBI_NH_ALL: u8 = 0x10;
    pub(crate) const TLBI_NH_ASID: u8 = 0x11;
    pub(crate) const TLBI_NH_VA: u8 = 0x12;
    pub(crate) const TLBI_NH_VAA: u8 = 0x13;
    pub(crate) const TLBI_EL3_ALL: u8 = 0x18;
    pub(crate) const TLBI_EL3_VA: u8 = 0x1a;
    pub(crate) const TLBI_EL2_ALL: u8 = 0x20;
    pub(crate) const TLBI_EL2_ASID: u8 = 0x21;
    pub(crate) const TLBI_EL2_VA: u8 = 0x22;
    pub(crate) const TLBI_EL2_VAA: u8 = 0x23;
    pub(crate) const TLBI_S12_VMALL: u8 = 0x28;
    pub(crate) const TLBI_S2_IPA: u8 = 0x2a;
    pub(crate) const TLBI_NSNH_ALL: u8 = 0x30;
    pub(crate) const ATC_INV: u8 = 0x40;
    pub(crate) const PRI_RESP: u8 = 0x41;
    pub(crate) const RESUME: u8 = 0x44;
    pub(crate) const STALL_TERM: u8 = 0x45;
    pub(crate) const CMD_SYNC: u8 = 0x46;
}

/// The opcodes counted by name, with the names printed.
const NAMED: [(u8, &str); 25] = [
    (op::PREFETCH_CONFIG, "PREFETCH_CONFIG"),
    (op::PREFETCH_ADDR, "PREFETCH_ADDR"),
    (op::CFGI_STE, "CFGI_STE"),
    (op::CFGI_STE_RANGE, "CFGI_STE_RANGE"),
    (op::CFGI_CD, "CFGI_CD"),
    (op::CFGI_CD_ALL, "CFGI_CD_ALL"),
    (op::CFGI_VMS_PIDM, "CFGI_VMS_PIDM"),
    (op::TLBI_NH_ALL, "TLBI_NH_ALL"),
    (op::TLBI_NH_ASID, "TLBI_NH_ASID"),
    (op::TLBI_NH_VA, "TLBI_NH_VA"),
    (op::TLBI_NH_VAA, "TLBI_NH_VAA"),
    (op::TLBI_EL3_ALL, "TLBI_EL3_ALL"),
    (op::TLBI_EL3_VA, "TLBI_EL3_VA"),
    (op::TLBI_EL2_ALL, "TLBI_EL2_ALL"),
    (op::TLBI_EL2_ASID, "TLBI_EL2_ASID"),
    (op::TLBI_EL2_VA, "TLBI_EL2_VA"),
    (op::TLBI_EL2_VAA, "TLBI_EL2_VAA"),
    (op::TLBI_S12_VMALL, "TLBI_S12_VMALL"),
    (op::TLBI_S2_IPA, "TLBI_S2_IPA"),
    (op::TLBI_NSNH_ALL, "TLBI_NSNH_ALL"),
    (op::ATC_INV, "ATC_INV"),
    (op::PRI_RESP, "PRI_RESP"),
    (op::RESUME, "RESUME"),
    (op::STALL_TERM, "STALL_TERM"),
    (op::CMD_SYNC, "CMD_SYNC"),
];

/// Queue entries by opcode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    by_op: [u32; NAMED.len()],
    /// Entries whose opcode the specification does not define (a corrupt entry).
    unknown: u32,
    /// The first such opcode, for the message.
    first_unknown: u8,
}

impl Default for Counts {
    fn default() -> Self {
        Self { by_op: [0; NAMED.len()], unknown: 0, first_unknown: 0 }
    }
}

impl Counts {
    fn add(&mut self, opcode: u8) {
        match NAMED.iter().position(|(o, _)| *o == opcode) {
            Some(i) => self.by_op[i] += 1,
            None => {
                if self.unknown == 0 {
                    self.first_unknown = opcode;
                }
                self.unknown += 1;
            }
        }
    }

    /// Adds `other`'s entries (a total over several counts).
    pub(crate) fn add_all(&mut self, other: &Counts) {
        for (a, b) in self.by_op.iter_mut().zip(other.by_op.iter()) {
            *a += b;
        }
        if self.unknown == 0 {
            self.first_unknown = other.first_unknown;
        }
        self.unknown += other.unknown;
    }

    /// Entries of opcode `opcode`.
    pub(crate) fn get(&self, opcode: u8) -> u32 {
        NAMED
            .iter()
            .position(|(o, _)| *o == opcode)
            .map_or(0, |i| self.by_op[i])
    }

    /// All entries.
    pub(crate) fn entries(&self) -> u32 {
        self.by_op.iter().sum::<u32>() + self.unknown
    }

    /// CMD_SYNCs.
    pub(crate) fn syncs(&self) -> u32 {
        self.get(op::CMD_SYNC)
    }

    /// Commands other than CMD_SYNC.
    pub(crate) fn commands(&self) -> u32 {
        self.entries() - self.syncs()
    }

    /// TLB invalidations (opcodes 0x10-0x3f).
    pub(crate) fn tlbis(&self) -> u32 {
        self.sum(|o| (0x10..0x40).contains(&o))
    }

    /// Configuration invalidations (CFGI_*).
    pub(crate) fn cfgis(&self) -> u32 {
        self.sum(|o| (op::CFGI_STE..=op::CFGI_VMS_PIDM).contains(&o))
    }

    fn sum(&self, f: impl Fn(u8) -> bool) -> u32 {
        NAMED
            .iter()
            .zip(self.by_op.iter())
            .filter(|((o, _), _)| f(*o))
            .map(|(_, n)| n)
            .sum()
    }

    /// Adds `n` entries of `opcode` for each `(opcode, n)` of `ops`.
    pub(crate) fn add_ops(&mut self, ops: &[(u8, u32)]) {
        for &(o, n) in ops {
            for _ in 0..n {
                self.add(o);
            }
        }
    }

    /// Counts of `ops` (opcode, n).
    pub(crate) fn of(ops: &[(u8, u32)]) -> Self {
        let mut c = Counts::default();
        c.add_ops(ops);
        c
    }

    /// Whether the counts are exactly `want` (opcode, count), every opcode not named being 0.
    pub(crate) fn is(&self, want: &[(u8, u32)]) -> bool {
        *self == Counts::of(want)
    }
}

/// `1 CMD_SYNC + 1 TLBI_NH_VA`, or `none`.
impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        // CMD_SYNC first, then the rest in opcode order.
        let order = core::iter::once(NAMED.len() - 1).chain(0..NAMED.len() - 1);
        for i in order {
            let n = self.by_op[i];
            if n > 0 {
                write!(f, "{}{n} {}", if first { "" } else { " + " }, NAMED[i].1)?;
                first = false;
            }
        }
        if self.unknown > 0 {
            write!(
                f,
                "{}{} of unknown opcodes (first {:#x})",
                if first { "" } else { " + " },
                self.unknown,
                self.first_unknown
            )?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Why a count could not be made.
pub(crate) enum CountError {
    /// The SMMU or its queue could not be observed (what, errno).
    Setup(&'static str, Error),
    /// Reading a register or an entry failed.
    Read(&'static str, Error),
    /// More entries than the queue holds between the two PROD reads: the first were overwritten.
    Lapped { prod0: u32, prod1: u32, span: u32, size: u32 },
    /// The producer overtook the entries while they were read.
    Overwritten { prod0: u32, prod_now: u32, size: u32 },
    /// Repeated measurements never agreed twice in a row (the last one, and the number of
    /// entries of the one before).
    Unstable { tries: u32, last: Counts, before: u32 },
    /// The measured operation itself failed.
    Op(&'static str, Error),
}

impl fmt::Display for CountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Setup(what, e) => write!(f, "cannot observe the SMMU's command queue: {what}: {e:?}"),
            Self::Read(what, e) => write!(f, "reading {what} failed: {e:?}"),
            Self::Lapped { prod0, prod1, span, size } => write!(
                f,
                "the command queue went round between the snapshots (PROD {prod0:#x} -> {prod1:#x}: \
                 {span} entries, the queue holds {size}): its oldest entries were overwritten, \
                 cannot count (count a shorter operation)"
            ),
            Self::Overwritten { prod0, prod_now, size } => write!(
                f,
                "the command queue went round while its entries were read (PROD {prod0:#x} -> \
                 {prod_now:#x}, {size} entries): cannot count"
            ),
            Self::Unstable { tries, last, before } => write!(
                f,
                "{tries} measurements never agreed twice in a row (the last: {last}; the one \
                 before: {before} entries): other commands on the SMMU during the measurement?"
            ),
            Self::Op(what, e) => write!(f, "{what} failed: {e:?}"),
        }
    }
}

/// Entries from PROD value `p0` to `p1` in a queue of `2^shift` entries (PROD: index in bits
/// [shift-1:0], wrap bit `shift`, higher bits ignored); [`CountError::Lapped`] if more than the
/// queue holds.
pub(crate) fn span(p0: u32, p1: u32, shift: u32) -> Result<u32, CountError> {
    let mask = (2u32 << shift) - 1;
    let n = p1.wrapping_sub(p0) & mask;
    let size = 1u32 << shift;
    if n > size {
        return Err(CountError::Lapped { prod0: p0, prod1: p1, span: n, size });
    }
    Ok(n)
}

/// The command queue of the system's SMMUv3, observed read-only.
pub(crate) struct Cmdq {
    regs: MmioView,
    queue: RamView,
    shift: u32,
}

impl Cmdq {
    /// Finds the SMMU and maps its registers and its command queue.
    pub(crate) fn open() -> Result<Self, CountError> {
        let regs = MmioView::of_compatible(c_str!("arm,smmu-v3"), CMDQ_CONS + 4)
            .map_err(|e| CountError::Setup("the one available 'arm,smmu-v3' device-tree node's registers", e))?;
        let rd = |what, off| regs.read32(off).map_err(|e| CountError::Read(what, e));
        if rd("IDR0", IDR0)? & IDR0_COHACC == 0 {
            return Err(CountError::Setup(
                "IDR0.COHACC = 0 (a non-coherent SMMU's queue is not what the CPU's cache shows)",
                kernel::error::code::ENODEV,
            ));
        }
        if rd("CR0", CR0)? & CR0_CMDQEN == 0 {
            return Err(CountError::Setup(
                "CR0.CMDQEN = 0 (no driver has enabled the command queue)",
                kernel::error::code::ENODEV,
            ));
        }
        let base = regs
            .read64(CMDQ_BASE)
            .map_err(|e| CountError::Read("CMDQ_BASE", e))?;
        let shift = (base & 0x1f) as u32;
        if shift > MAX_SHIFT {
            return Err(CountError::Setup("CMDQ_BASE.LOG2SIZE above 19", kernel::error::code::EINVAL));
        }
        let queue = RamView::new(base & BASE_ADDR_MASK, ENTRY << shift)
            .map_err(|e| CountError::Setup("the queue named by CMDQ_BASE (not System RAM?)", e))?;
        Ok(Self { regs, queue, shift })
    }

    /// Entries the queue holds.
    pub(crate) fn size(&self) -> u32 {
        1 << self.shift
    }

    /// Physical addresses of the registers and of the queue.
    pub(crate) fn where_(&self) -> (u64, u64) {
        (self.regs.phys(), self.queue.phys())
    }

    /// `SMMU_CMDQ_PROD` now.
    pub(crate) fn prod(&self) -> Result<u32, CountError> {
        self.regs
            .read32(CMDQ_PROD)
            .map_err(|e| CountError::Read("CMDQ_PROD", e))
    }

    /// Whether the entries from `p0` to `p1` cross the ring's end (index wraps to 0).
    pub(crate) fn crosses_end(&self, p0: u32, p1: u32) -> bool {
        let idx = |p: u32| p & (self.size() - 1);
        span(p0, p1, self.shift).is_ok_and(|n| n > 0 && idx(p0) + n > self.size())
    }

    /// The entries the queue received between PROD values `p0` and `p1`, by opcode.
    #[inline(never)]
    pub(crate) fn between(&self, p0: u32, p1: u32) -> Result<Counts, CountError> {
        let n = span(p0, p1, self.shift)?;
        let mut c = Counts::default();
        for i in 0..n {
            let idx = (p0.wrapping_add(i) & (self.size() - 1)) as usize;
            let w = self
                .queue
                .read_u64(idx * ENTRY)
                .map_err(|e| CountError::Read("a command queue entry", e))?;
            c.add(w as u8);
        }
        // Entries p0.. stay as they were until the producer passes p0 + size.
        let now = self.prod()?;
        match span(p0, now, self.shift) {
            Ok(m) if m >= n => Ok(c),
            _ => Err(CountError::Overwritten { prod0: p0, prod_now: now, size: self.size() }),
        }
    }

    /// Runs `f` and counts the entries the queue received meanwhile.
    #[inline(never)]
    pub(crate) fn count<T>(&self, f: impl FnOnce() -> T) -> Result<(Counts, T), CountError> {
        let p0 = self.prod()?;
        let r = f();
        let p1 = self.prod()?;
        Ok((self.between(p0, p1)?, r))
    }

    /// Repeats `measure` (which sets up, then [`Cmdq::count`]s one operation) until two
    /// results in a row agree, at most 6 times; returns the agreed counts and the number of
    /// measurements it took. A window in which anything else issued commands shows more
    /// entries than a clean one, so two equal counts in a row are taken as clean.
    #[inline(never)]
    pub(crate) fn count_stable(
        &self,
        mut measure: impl FnMut() -> Result<Counts, CountError>,
    ) -> Result<(Counts, u32), CountError> {
        const TRIES: u32 = 6;
        let mut prev = measure()?;
        let mut tries = 1;
        loop {
            let c = measure()?;
            tries += 1;
            if c == prev {
                return Ok((c, tries));
            }
            if tries >= TRIES {
                return Err(CountError::Unstable { tries, last: c, before: prev.entries() });
            }
            prev = c;
        }
    }
}

/// The SMMUv3 driver this kernel was built with, for per-driver expectations.
pub(crate) const DRIVER: &str = if cfg!(CONFIG_ARM_SMMU_V3) {
    "arm-smmu-v3 (C)"
} else if cfg!(CONFIG_ARM_SMMU_V3_RUST) {
    "Rust SMMUv3"
} else {
    "no SMMUv3 driver"
};

/// Whether this kernel has the C `arm-smmu-v3` driver (else the Rust one).
pub(crate) const C_DRIVER: bool = cfg!(CONFIG_ARM_SMMU_V3);
