// SPDX-License-Identifier: GPL-2.0
//! Errors of the SMMUv3 driver core, each with the errno the kernel glue reports.

use super::dma::AllocError;

/// Why a command-queue error was raised (SMMU_CMDQ_CONS.ERR, IHI0070 7.1 "Command errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdErrorKind {
    /// CERROR_NONE (0): the error flag was set without a reason.
    None,
    /// CERROR_ILL (1): illegal or unsupported command; it was replaced by a CMD_SYNC.
    Illegal,
    /// CERROR_ABT (2): abort on command fetch; the fetch is retried.
    Abort,
    /// CERROR_ATC_INV_SYNC (3): ATC invalidation completion timeout.
    AtcInvSync,
    /// Any other (implementation defined) code.
    Other(u8),
}

impl CmdErrorKind {
    /// Decodes SMMU_CMDQ_CONS.ERR.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Self::None,
            1 => Self::Illegal,
            2 => Self::Abort,
            3 => Self::AtcInvSync,
            c => Self::Other(c),
        }
    }
}

/// The command the SMMU refused, as reported by command-queue error recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdError {
    /// Reason from SMMU_CMDQ_CONS.ERR.
    pub kind: CmdErrorKind,
    /// Queue index (without wrap bit) of the failing command.
    pub index: u32,
    /// The raw failing command as read back from the queue.
    pub command: [u64; 2],
}

/// Errors returned by the driver core.
///
/// Every variant documents the errno the kernel glue turns it into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// DMA or host memory could not be allocated. `ENOMEM`.
    NoMemory,
    /// A bounded register poll expired (CONS not advancing, CR0ACK not matching, GBPA stuck).
    /// `ETIMEDOUT`.
    Timeout,
    /// An argument is outside what the hardware or the table supports (StreamID beyond
    /// SIDSIZE, SubstreamID beyond the CD table, field value too wide). `EINVAL`.
    InvalidArgument,
    /// The SMMU lacks a feature the driver requires (no AArch64 tables, no stage 1, embedded
    /// implementation, queue too small). `ENODEV`.
    Unsupported,
    /// The SMMU rejected a command; it has been skipped and the queue restarted. `EIO`.
    Command(CmdError),
    /// A fixed-capacity host-side table is full. `ENOSPC`.
    NoSpace,
    /// The entry is in a state that forbids the operation (e.g. no CD table installed). `EBUSY`.
    Busy,
    /// The SMMU entered Service Failure Mode or reported a fatal global error. `EIO`.
    Fatal(u32),
}

impl Error {
    /// The positive errno value the kernel glue returns (negated) for this error.
    pub const fn errno(&self) -> i32 {
        match self {
            Self::NoMemory => 12,        // ENOMEM
            Self::Timeout => 110,        // ETIMEDOUT
            Self::InvalidArgument => 22, // EINVAL
            Self::Unsupported => 19,     // ENODEV
            Self::Command(_) => 5,       // EIO
            Self::NoSpace => 28,         // ENOSPC
            Self::Busy => 16,            // EBUSY
            Self::Fatal(_) => 5,         // EIO
        }
    }

    /// A short description for the kernel log line.
    pub const fn describe(&self) -> &'static str {
        match self {
            Self::NoMemory => "out of DMA memory",
            Self::Timeout => "SMMU register poll timed out",
            Self::InvalidArgument => "argument out of range",
            Self::Unsupported => "SMMU lacks a required feature",
            Self::Command(_) => "SMMU rejected a command",
            Self::NoSpace => "host table full",
            Self::Busy => "entry busy",
            Self::Fatal(_) => "SMMU global error",
        }
    }
}

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Self {
        Self::NoMemory
    }
}

/// Result alias of the driver core.
pub type Result<T, E = Error> = core::result::Result<T, E>;
