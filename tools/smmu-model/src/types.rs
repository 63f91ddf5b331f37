// SPDX-License-Identifier: GPL-2.0
//! Public value types of the model: features, transactions, results, event records, statistics.

use crate::spec::{bit, bits, event_id, pa_bits};
use std::collections::BTreeMap;
use std::fmt;

/// Deviations from the spec that reproduce QEMU 10.0's SMMUv3, for runs that must match QEMU
/// event for event. All are off by default; [`Features::qemu`] turns them on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// An event that finds the Event queue full raises GERROR.EVENTQ_ABT_ERR (QEMU) instead of
    /// being dropped with EVENTQ_PROD.OVFLG toggled (spec 7.2.1).
    pub eventq_full_is_abort: bool,
    /// C_BAD_STREAMID is recorded even when SMMU_CR2.RECINVSID == 0 (spec 7.3.3 requires it).
    pub always_record_bad_streamid: bool,
    /// An STE with S1CDMax != 0 is C_BAD_STE (QEMU) although with SSIDSIZE == 0 the field is
    /// IGNORED (spec 5.2).
    pub reject_s1cdmax: bool,
    /// A stage 2 fault on the fetch of a CD, an L1CD or a stage 1 table (CLASS = CD or TT) is
    /// recorded with RnW = 1, the direction of the fetch (QEMU), instead of the direction of
    /// the incoming transaction that caused it (7.3.12: RnW describes the incoming
    /// transaction).
    pub fetch_fault_rnw_read: bool,
}

/// Implementation choices of the modelled SMMU, reflected in the ID registers.
#[derive(Clone, Debug)]
pub struct Features {
    /// SMMU_IDR1.SIDSIZE: StreamID bits (0..=32).
    pub sidsize: u8,
    /// SMMU_IDR1.SSIDSIZE: SubstreamID bits (0..=20); 0 disables substreams.
    pub ssidsize: u8,
    /// SMMU_IDR0.ST_LEVEL == 0b01: 2-level Stream tables.
    pub two_level_st: bool,
    /// SMMU_IDR0.CD2L: 2-level CD tables.
    pub cd2l: bool,
    /// SMMU_IDR0.ASID16.
    pub asid16: bool,
    /// SMMU_IDR3.RIL: range invalidation.
    pub ril: bool,
    /// SMMU_IDR3.HAD: hierarchical attribute disable.
    pub had: bool,
    /// SMMU_IDR5.GRAN4K / GRAN16K / GRAN64K.
    pub gran4k: bool,
    pub gran16k: bool,
    pub gran64k: bool,
    /// SMMU_IDR5.OAS encoding (0 = 32 bits .. 5 = 48 bits; larger values are capped at 48).
    pub oas: u8,
    /// SMMU_IDR0.S1P.
    pub s1p: bool,
    /// SMMU_IDR0.S2P (+VMID16): stage 2 translation (STE.Config 0b110) and, with `s1p`,
    /// nested translation (0b111: the CD table and stage 1 tables fetched through stage 2).
    /// Stage 2 translations are not cached (every use walks the stage 2 tables).
    pub s2p: bool,
    /// SMMU_IDR0.MSI: CMD_SYNC with CS == SIG_IRQ writes MSIData to MSIAddress.
    pub msi: bool,
    /// SMMU_IDR1.CMDQS / EVENTQS: maximum log2 queue sizes.
    pub cmdqs: u8,
    pub eventqs: u8,
    /// Entries in the configuration cache (STEs + CDs); 0 disables caching.
    pub config_cache_capacity: usize,
    /// Entries in the IOTLB; 0 disables caching.
    pub iotlb_capacity: usize,
    pub quirks: Quirks,
}

impl Default for Features {
    /// A PASID-capable SMMUv3.1: 20-bit SubstreamIDs, 2-level stream and CD tables, all
    /// granules, 48-bit OAS, range invalidation, 256-entry caches.
    fn default() -> Self {
        Self {
            sidsize: 16,
            ssidsize: 20,
            two_level_st: true,
            cd2l: true,
            asid16: true,
            ril: true,
            had: true,
            gran4k: true,
            gran16k: true,
            gran64k: true,
            oas: 5,
            s1p: true,
            s2p: false,
            msi: false,
            cmdqs: 19,
            eventqs: 19,
            config_cache_capacity: 256,
            iotlb_capacity: 256,
            quirks: Quirks::default(),
        }
    }
}

impl Features {
    /// The ID registers and quirks of QEMU 10.0's `-machine virt,iommu=smmuv3` (stage 1):
    /// no SubstreamIDs, no 2-level CD tables, 44-bit OAS, 256-entry caches.
    pub fn qemu() -> Self {
        Self {
            ssidsize: 0,
            cd2l: false,
            oas: 4,
            quirks: Quirks {
                eventq_full_is_abort: true,
                always_record_bad_streamid: true,
                reject_s1cdmax: true,
                fetch_fault_rnw_read: true,
            },
            ..Self::default()
        }
    }

    /// Output address size in bits (capped at 48: descriptors are 48-bit).
    pub fn oas_bits(&self) -> u32 {
        pa_bits(u64::from(self.oas.min(5)))
    }
}

/// Direction of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Incoming transaction attributes (before STE.PRIVCFG/INSTCFG overrides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxnAttrs {
    /// Privileged (PnU = 1). PCIe requests without a PASID privileged bit are unprivileged.
    pub privileged: bool,
    /// Instruction fetch (InD = 1); ignored for writes.
    pub instruction: bool,
    /// PCIe No_snoop.
    pub no_snoop: bool,
}

/// Shareability of the output transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shareability {
    Non,
    Outer,
    Inner,
}

/// Output memory attributes: a MAIR-format attribute byte and a shareability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAttrs {
    /// MAIR encoding: 0b0000_dd00 Device, otherwise Normal with outer/inner nibbles.
    pub attr: u8,
    pub sh: Shareability,
}

impl MemAttrs {
    /// Attributes the model gives an incoming PCIe request (spec 13.1 leaves them to the
    /// system): Normal Write-Back Inner Shareable, or Normal Non-cacheable Outer Shareable
    /// when No_snoop is set.
    pub fn incoming(no_snoop: bool) -> Self {
        if no_snoop {
            Self {
                attr: 0x44,
                sh: Shareability::Outer,
            }
        } else {
            Self {
                attr: 0xff,
                sh: Shareability::Inner,
            }
        }
    }

    pub fn is_device(&self) -> bool {
        self.attr & 0xf0 == 0
    }

    /// Normal memory cacheable at both levels.
    pub fn is_cacheable(&self) -> bool {
        let nc = |n: u8| n == 0b0100 || n == 0;
        !self.is_device() && !nc(self.attr >> 4) && !nc(self.attr & 0xf)
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    pub attrs: MemAttrs,
    /// Whether stage 1 translated (false for bypass, S1DSS bypass and SMMUEN == 0).
    pub stage1: bool,
    /// Model-level "No_snoop is stripped" flag for this (StreamID, SubstreamID): see
    /// [`crate::SmmuModel::set_snoop_forced`].
    pub snoop_forced: bool,
}

/// A raw 32-byte event record (spec 7.3), little-endian, exactly as written to the Event queue.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event(pub [u8; 32]);

impl Event {
    pub fn from_words(w: [u64; 4]) -> Self {
        let mut b = [0u8; 32];
        for (i, v) in w.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        Self(b)
    }

    pub fn words(&self) -> [u64; 4] {
        let mut w = [0u64; 4];
        for (i, v) in w.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
            *v = u64::from_le_bytes(b);
        }
        w
    }

    /// Event number, bits [7:0].
    pub fn id(&self) -> u8 {
        self.0[0]
    }
    /// SSV, bit [11].
    pub fn ssv(&self) -> bool {
        bit(self.words()[0], 11)
    }
    /// SubstreamID, bits [31:12].
    pub fn ssid(&self) -> u32 {
        bits(self.words()[0], 31, 12) as u32
    }
    /// StreamID, bits [63:32].
    pub fn sid(&self) -> u32 {
        bits(self.words()[0], 63, 32) as u32
    }
    /// Stall, bit [95].
    pub fn stall(&self) -> bool {
        bit(self.words()[1], 31)
    }
    /// PnU, bit [97].
    pub fn pnu(&self) -> bool {
        bit(self.words()[1], 33)
    }
    /// InD, bit [98].
    pub fn ind(&self) -> bool {
        bit(self.words()[1], 34)
    }
    /// RnW, bit [99] (1 = read).
    pub fn rnw(&self) -> bool {
        bit(self.words()[1], 35)
    }
    /// S2, bit [103].
    pub fn s2(&self) -> bool {
        bit(self.words()[1], 39)
    }
    /// CLASS, bits [105:104].
    pub fn class(&self) -> u8 {
        bits(self.words()[1], 41, 40) as u8
    }
    /// InputAddr, bits [191:128].
    pub fn input_addr(&self) -> u64 {
        self.words()[2]
    }
    pub fn name(&self) -> &'static str {
        event_name(self.id())
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.words();
        write!(
            f,
            "{}[{:016x} {:016x} {:016x} {:016x}]",
            self.name(),
            w[0],
            w[1],
            w[2],
            w[3]
        )
    }
}

/// Name of an event number.
pub fn event_name(id: u8) -> &'static str {
    match id {
        event_id::F_UUT => "F_UUT",
        event_id::C_BAD_STREAMID => "C_BAD_STREAMID",
        event_id::F_STE_FETCH => "F_STE_FETCH",
        event_id::C_BAD_STE => "C_BAD_STE",
        event_id::F_BAD_ATS_TREQ => "F_BAD_ATS_TREQ",
        event_id::F_STREAM_DISABLED => "F_STREAM_DISABLED",
        event_id::F_TRANSL_FORBIDDEN => "F_TRANSL_FORBIDDEN",
        event_id::C_BAD_SUBSTREAMID => "C_BAD_SUBSTREAMID",
        event_id::F_CD_FETCH => "F_CD_FETCH",
        event_id::C_BAD_CD => "C_BAD_CD",
        event_id::F_WALK_EABT => "F_WALK_EABT",
        event_id::F_TRANSLATION => "F_TRANSLATION",
        event_id::F_ADDR_SIZE => "F_ADDR_SIZE",
        event_id::F_ACCESS => "F_ACCESS",
        event_id::F_PERMISSION => "F_PERMISSION",
        event_id::F_TLB_CONFLICT => "F_TLB_CONFLICT",
        event_id::F_CFG_CONFLICT => "F_CFG_CONFLICT",
        event_id::E_PAGE_REQUEST => "E_PAGE_REQUEST",
        _ => "UNKNOWN",
    }
}

/// A terminated transaction that produced an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The event the fault produced (whether or not it reached the Event queue).
    pub event: Event,
    /// Whether it was written to the Event queue (false: CD.R == 0, C_BAD_STREAMID without
    /// RECINVSID, queue disabled or full).
    pub recorded: bool,
}

/// Why a transaction did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// Terminated without an event (STE.Config abort, GBPA.ABORT with SMMUEN == 0).
    Aborted,
    /// Terminated with an event.
    Fault(Fault),
}

impl TranslateError {
    /// The event number, if any.
    pub fn event_id(&self) -> Option<u8> {
        match self {
            Self::Aborted => None,
            Self::Fault(f) => Some(f.event.id()),
        }
    }
}

/// A snapshot of one IOTLB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbInfo {
    pub vmid: u16,
    pub asid: u16,
    /// nG == 0 in the leaf: matches every ASID.
    pub global: bool,
    /// First input address covered (TBI-normalised).
    pub va: u64,
    /// Bytes covered (page or block size).
    pub size: u64,
    /// Level of the leaf descriptor.
    pub level: u32,
    /// Granule size the entry was walked with.
    pub granule: u64,
    pub pa: u64,
    pub perms: crate::Perms,
}

/// Counters kept by the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands consumed (including the failing one), by opcode.
    pub commands: BTreeMap<u8, u64>,
    pub syncs: u64,
    pub command_errors: u64,
    pub translations: u64,
    pub walks: u64,
    pub ste_fetches: u64,
    pub cd_fetches: u64,
    pub config_hits: u64,
    pub config_misses: u64,
    pub iotlb_hits: u64,
    pub iotlb_misses: u64,
    pub events_recorded: u64,
    /// Events not written: queue disabled, full, or recording disabled by configuration.
    pub events_dropped: u64,
}

/// Interrupts the model signalled (wired lines are counted, MSIs are written to memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqCounts {
    pub eventq: u64,
    pub gerror: u64,
    pub cmd_sync: u64,
    /// CMD_SYNC completion MSIs written (Features::msi).
    pub sync_msis: u64,
}
