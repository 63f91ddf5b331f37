// SPDX-License-Identifier: GPL-2.0
//! Event queue records (IHI0070 7.3), decoded into [`Event`].
//!
//! Every 32-byte record decodes to some variant: unknown or implementation-defined event
//! numbers become [`Event::Unknown`] with the raw words, so a new SMMU revision can never make
//! the consumer fail.

bitfield! {
    /// A raw 32-byte event record. Field placement is shared by all events that carry the
    /// field (IHI0070 7.3 common fields).
    pub struct EventRecord[4] {
        /// Event number.
        ID @ 0[7:0] => id, set_id: u8;
        /// SSV: SubstreamID valid.
        SSV @ 0[11:11] => ssv, set_ssv: bool;
        /// SubstreamID.
        SSID @ 0[31:12] => ssid, set_ssid: u32;
        /// StreamID.
        SID @ 0[63:32] => sid, set_sid: u32;
        /// STAG of a stalled transaction (translation-class faults).
        STAG @ 1[15:0] => stag, set_stag: u16;
        /// Reason (F_UUT, implementation defined).
        REASON @ 1[15:0] => reason, set_reason: u16;
        /// Stall: the transaction is stalled and must be resumed or terminated.
        STALL @ 1[31:31] => stall, set_stall: bool;
        /// PnU: privileged (1) or unprivileged access.
        PNU @ 1[33:33] => pnu, set_pnu: bool;
        /// InD: instruction (1) or data access.
        IND @ 1[34:34] => ind, set_ind: bool;
        /// RnW: read (1) or write access.
        RNW @ 1[35:35] => rnw, set_rnw: bool;
        /// NSIPA: the IPA is Non-secure (Secure streams).
        NSIPA @ 1[36:36] => nsipa, set_nsipa: bool;
        /// S2: the fault happened at stage 2.
        S2 @ 1[39:39] => s2, set_s2: bool;
        /// CLASS: 0 CD fetch, 1 stage-1 table walk, 2 input address.
        CLASS @ 1[41:40] => class, set_class: u8;
        /// TTRnW: the faulting table access was a read (1) or a hardware update write.
        TTRNW @ 1[44:44] => ttrnw, set_ttrnw: bool;
        /// InputAddr\[63:0\].
        INPUT_ADDR @ 2[63:0] => input_addr, set_input_addr: u64;
        /// IPA\[51:12\] of a stage-2 fault (kept in place).
        IPA @ 3[51:12] => ipa, set_ipa: u64;
        /// FetchAddr\[55:3\] of a structure or descriptor fetch (kept in place).
        FETCH_ADDR @ 3[55:3] => fetch_addr, set_fetch_addr: u64;
    }
}

/// Event numbers (IHI0070 7.3; arm-smmu-v3.h EVT_ID_*).
pub mod id {
    /// F_UUT: unsupported upstream transaction.
    pub const F_UUT: u8 = 0x01;
    /// C_BAD_STREAMID: StreamID out of range.
    pub const C_BAD_STREAMID: u8 = 0x02;
    /// F_STE_FETCH: external abort fetching an STE.
    pub const F_STE_FETCH: u8 = 0x03;
    /// C_BAD_STE: invalid or illegal STE.
    pub const C_BAD_STE: u8 = 0x04;
    /// F_BAD_ATS_TREQ: ATS translation request not allowed.
    pub const F_BAD_ATS_TREQ: u8 = 0x05;
    /// F_STREAM_DISABLED: non-substream traffic on a stream with S1DSS terminate.
    pub const F_STREAM_DISABLED: u8 = 0x06;
    /// F_TRANSL_FORBIDDEN: ATS-translated transaction on a bypass stream.
    pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
    /// C_BAD_SUBSTREAMID: SubstreamID out of range or not allowed.
    pub const C_BAD_SUBSTREAMID: u8 = 0x08;
    /// F_CD_FETCH: external abort fetching a CD.
    pub const F_CD_FETCH: u8 = 0x09;
    /// C_BAD_CD: invalid or illegal CD.
    pub const C_BAD_CD: u8 = 0x0a;
    /// F_WALK_EABT: external abort during a table walk.
    pub const F_WALK_EABT: u8 = 0x0b;
    /// F_TRANSLATION: translation fault.
    pub const F_TRANSLATION: u8 = 0x10;
    /// F_ADDR_SIZE: address size fault.
    pub const F_ADDR_SIZE: u8 = 0x11;
    /// F_ACCESS: access flag fault.
    pub const F_ACCESS: u8 = 0x12;
    /// F_PERMISSION: permission fault.
    pub const F_PERMISSION: u8 = 0x13;
    /// F_TLB_CONFLICT: TLB conflict.
    pub const F_TLB_CONFLICT: u8 = 0x20;
    /// F_CFG_CONFLICT: configuration cache conflict.
    pub const F_CFG_CONFLICT: u8 = 0x21;
    /// E_PAGE_REQUEST: speculative page request hint.
    pub const E_PAGE_REQUEST: u8 = 0x24;
    /// F_VMS_FETCH: external abort fetching a VMS.
    pub const F_VMS_FETCH: u8 = 0x25;
}

/// The transaction a fault event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// StreamID of the requester.
    pub sid: u32,
    /// SubstreamID (PASID), when the transaction had one.
    pub ssid: Option<u32>,
    /// Read (true) or write.
    pub read: bool,
    /// Instruction fetch.
    pub instruction: bool,
    /// Privileged.
    pub privileged: bool,
    /// Input address.
    pub addr: u64,
}

/// A translation-class fault (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The faulting access.
    pub access: Access,
    /// Stage 2 (true) or stage 1.
    pub stage2: bool,
    /// CLASS: 0 CD fetch, 1 stage-1 table walk, 2 input address.
    pub class: u8,
    /// The transaction is stalled: `Some(STAG)` to pass to CMD_RESUME.
    pub stalled: Option<u16>,
    /// IPA of a stage-2 fault (bits \[51:12\]).
    pub ipa: u64,
}

/// A decoded event record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// F_UUT: unsupported upstream transaction; `reason` is implementation defined.
    UnsupportedTransaction {
        /// The rejected access.
        access: Access,
        /// Implementation-defined reason.
        reason: u16,
    },
    /// C_BAD_STREAMID: the StreamID is outside the stream table.
    BadStreamId {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
    },
    /// F_STE_FETCH: the STE at `fetch_addr` could not be read.
    SteFetch {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
        /// Address of the STE.
        fetch_addr: u64,
    },
    /// C_BAD_STE: the STE is invalid or illegal.
    BadSte {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
    },
    /// F_BAD_ATS_TREQ: ATS translation request refused.
    BadAtsTreq {
        /// The request.
        access: Access,
    },
    /// F_STREAM_DISABLED: substream-less traffic while S1DSS terminates it.
    StreamDisabled {
        /// The access.
        access: Access,
    },
    /// F_TRANSL_FORBIDDEN: translated ATS traffic on a stream that forbids it.
    TranslationForbidden {
        /// The access.
        access: Access,
    },
    /// C_BAD_SUBSTREAMID: the SubstreamID is beyond S1CDMax or not allowed.
    BadSubstreamId {
        /// StreamID.
        sid: u32,
        /// SubstreamID (always `Some`: the record has no SSV; for a transaction without one,
        /// the CD index it was given, 0).
        ssid: Option<u32>,
    },
    /// F_CD_FETCH: the CD at `fetch_addr` could not be read.
    CdFetch {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
        /// Address of the CD (or L1 CD descriptor).
        fetch_addr: u64,
    },
    /// C_BAD_CD: the CD is invalid or illegal.
    BadCd {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
    },
    /// F_WALK_EABT: external abort on a table descriptor at `fetch_addr`.
    WalkExternalAbort {
        /// The fault details.
        fault: Fault,
        /// Address of the descriptor.
        fetch_addr: u64,
    },
    /// F_TRANSLATION: no valid translation.
    Translation(Fault),
    /// F_ADDR_SIZE: address outside the configured sizes.
    AddressSize(Fault),
    /// F_ACCESS: access flag fault.
    AccessFlag(Fault),
    /// F_PERMISSION: permission fault.
    Permission(Fault),
    /// F_TLB_CONFLICT: conflicting TLB entries.
    TlbConflict {
        /// The access.
        access: Access,
    },
    /// F_CFG_CONFLICT: conflicting configuration cache entries.
    CfgConflict {
        /// StreamID.
        sid: u32,
        /// SubstreamID, if any.
        ssid: Option<u32>,
    },
    /// An event number this driver does not decode (raw words kept).
    Unknown {
        /// Event number.
        id: u8,
        /// The record.
        raw: [u64; 4],
    },
}

impl EventRecord {
    fn ssid_opt(&self) -> Option<u32> {
        if self.ssv() {
            Some(self.ssid())
        } else {
            None
        }
    }

    fn access(&self) -> Access {
        Access {
            sid: self.sid(),
            ssid: self.ssid_opt(),
            read: self.rnw(),
            instruction: self.ind(),
            privileged: self.pnu(),
            addr: self.input_addr(),
        }
    }

    fn fault(&self) -> Fault {
        Fault {
            access: self.access(),
            stage2: self.s2(),
            class: self.class(),
            stalled: if self.stall() {
                Some(self.stag())
            } else {
                None
            },
            ipa: self.ipa() << 12,
        }
    }

    /// Decodes the record. Never fails: unknown events become [`Event::Unknown`].
    pub fn decode(&self) -> Event {
        let (sid, ssid) = (self.sid(), self.ssid_opt());
        match self.id() {
            id::F_UUT => Event::UnsupportedTransaction {
                access: self.access(),
                reason: self.reason(),
            },
            id::C_BAD_STREAMID => Event::BadStreamId { sid, ssid },
            id::F_STE_FETCH => Event::SteFetch {
                sid,
                ssid,
                fetch_addr: self.fetch_addr() << 3,
            },
            id::C_BAD_STE => Event::BadSte { sid, ssid },
            id::F_BAD_ATS_TREQ => Event::BadAtsTreq {
                access: self.access(),
            },
            id::F_STREAM_DISABLED => Event::StreamDisabled {
                access: self.access(),
            },
            id::F_TRANSL_FORBIDDEN => Event::TranslationForbidden {
                access: self.access(),
            },
            // The record has no SSV (7.3.9): its SubstreamID is always the offending one.
            id::C_BAD_SUBSTREAMID => Event::BadSubstreamId {
                sid,
                ssid: Some(self.ssid()),
            },
            id::F_CD_FETCH => Event::CdFetch {
                sid,
                ssid,
                fetch_addr: self.fetch_addr() << 3,
            },
            id::C_BAD_CD => Event::BadCd { sid, ssid },
            id::F_WALK_EABT => Event::WalkExternalAbort {
                fault: self.fault(),
                fetch_addr: self.fetch_addr() << 3,
            },
            id::F_TRANSLATION => Event::Translation(self.fault()),
            id::F_ADDR_SIZE => Event::AddressSize(self.fault()),
            id::F_ACCESS => Event::AccessFlag(self.fault()),
            id::F_PERMISSION => Event::Permission(self.fault()),
            id::F_TLB_CONFLICT => Event::TlbConflict {
                access: self.access(),
            },
            id::F_CFG_CONFLICT => Event::CfgConflict { sid, ssid },
            other => Event::Unknown {
                id: other,
                raw: self.0,
            },
        }
    }
}

impl Event {
    /// The StreamID the event is about, if it names one.
    pub fn stream_id(&self) -> Option<u32> {
        match self {
            Self::UnsupportedTransaction { access, .. }
            | Self::BadAtsTreq { access }
            | Self::StreamDisabled { access }
            | Self::TranslationForbidden { access }
            | Self::TlbConflict { access } => Some(access.sid),
            Self::BadStreamId { sid, .. }
            | Self::SteFetch { sid, .. }
            | Self::BadSte { sid, .. }
            | Self::BadSubstreamId { sid, .. }
            | Self::CdFetch { sid, .. }
            | Self::BadCd { sid, .. }
            | Self::CfgConflict { sid, .. } => Some(*sid),
            Self::WalkExternalAbort { fault, .. }
            | Self::Translation(fault)
            | Self::AddressSize(fault)
            | Self::AccessFlag(fault)
            | Self::Permission(fault) => Some(fault.access.sid),
            Self::Unknown { .. } => None,
        }
    }
}
