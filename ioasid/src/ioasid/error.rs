// SPDX-License-Identifier: GPL-2.0
//! Errors of the PASID allocator, each with its Linux errno.

use core::fmt;

/// Linux errno values used by this crate (asm-generic numbering, as on arm64 and x86).
pub mod errno {
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Value too large for defined data type.
    pub const EOVERFLOW: i32 = 75;
    /// Quota exceeded.
    pub const EDQUOT: i32 = 122;
}

/// Everything that can go wrong. [`Error::to_errno`] gives the negative Linux errno,
/// [`Error::as_str`] (and `Display`) a message that names the problem.
///
/// | variant | errno |
/// |---|---|
/// | [`InvalidWidth`](Error::InvalidWidth), [`InvalidReserved`](Error::InvalidReserved), [`InvalidSetLimit`](Error::InvalidSetLimit), [`InvalidRange`](Error::InvalidRange), [`InvalidQuota`](Error::InvalidQuota), [`UnbalancedPut`](Error::UnbalancedPut) | `EINVAL` |
/// | [`NoSpace`](Error::NoSpace), [`NoSetSpace`](Error::NoSetSpace) | `ENOSPC` |
/// | [`QuotaExceeded`](Error::QuotaExceeded) | `EDQUOT` |
/// | [`PasidNotFound`](Error::PasidNotFound), [`SetNotFound`](Error::SetNotFound), [`NoAllocator`](Error::NoAllocator), [`SubscriptionNotFound`](Error::SubscriptionNotFound) | `ENOENT` |
/// | [`NotOwner`](Error::NotOwner) | `EACCES` |
/// | [`NoMemory`](Error::NoMemory) | `ENOMEM` |
/// | [`AllocatorRegistered`](Error::AllocatorRegistered), [`SpaceInUse`](Error::SpaceInUse) | `EBUSY` |
/// | [`RefOverflow`](Error::RefOverflow) | `EOVERFLOW` |
/// | [`AllocatorFault`](Error::AllocatorFault) | `EIO` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The configured PASID width is 0 or more than 20 bits (`EINVAL`).
    InvalidWidth,
    /// A reserved range is empty, reaches past the PASID space, or there are more than
    /// [`MAX_RESERVED_RANGES`](super::MAX_RESERVED_RANGES) of them (`EINVAL`).
    InvalidReserved,
    /// The configured maximum number of sets is 0 or more than
    /// [`MAX_KEY_SET_INDEX`](super::MAX_KEY_SET_INDEX) (`EINVAL`).
    InvalidSetLimit,
    /// An allocation range has `min > max` or reaches past the PASID space (`EINVAL`).
    InvalidRange,
    /// A set quota is 0 or larger than the PASID space (`EINVAL`).
    InvalidQuota,
    /// `put` on a PASID that holds no reference taken with `get` (`EINVAL`).
    UnbalancedPut,
    /// No allocatable PASID is free in the requested range (`ENOSPC`).
    NoSpace,
    /// No set ID is free (`ENOSPC`).
    NoSetSpace,
    /// The set already uses its whole quota (`EDQUOT`).
    QuotaExceeded,
    /// The PASID is not allocated, already freed, or being released (`ENOENT`).
    PasidNotFound,
    /// The set does not exist (never created, or torn down) (`ENOENT`).
    SetNotFound,
    /// No custom allocator is registered (`ENOENT`).
    NoAllocator,
    /// No free notifier is subscribed under this ID (`ENOENT`).
    SubscriptionNotFound,
    /// The PASID belongs to another set (`EACCES`).
    NotOwner,
    /// Out of memory in the storage or in a custom allocator (`ENOMEM`).
    NoMemory,
    /// A custom allocator is already registered (`EBUSY`).
    AllocatorRegistered,
    /// A custom allocator cannot be registered while PASIDs are live (`EBUSY`).
    SpaceInUse,
    /// The PASID reference count would overflow (`EOVERFLOW`).
    RefOverflow,
    /// The custom allocator returned a PASID outside the request, reserved, or already
    /// live (`EIO`).
    AllocatorFault,
}

impl Error {
    /// The negative Linux errno for this error.
    pub const fn to_errno(self) -> i32 {
        use errno::*;
        -match self {
            Error::InvalidWidth
            | Error::InvalidReserved
            | Error::InvalidSetLimit
            | Error::InvalidRange
            | Error::InvalidQuota
            | Error::UnbalancedPut => EINVAL,
            Error::NoSpace | Error::NoSetSpace => ENOSPC,
            Error::QuotaExceeded => EDQUOT,
            Error::PasidNotFound
            | Error::SetNotFound
            | Error::NoAllocator
            | Error::SubscriptionNotFound => ENOENT,
            Error::NotOwner => EACCES,
            Error::NoMemory => ENOMEM,
            Error::AllocatorRegistered | Error::SpaceInUse => EBUSY,
            Error::RefOverflow => EOVERFLOW,
            Error::AllocatorFault => EIO,
        }
    }

    /// A one-line description naming the problem (no trailing newline).
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::InvalidWidth => "ioasid: PASID width must be 1 to 20 bits",
            Error::InvalidReserved => {
                "ioasid: reserved PASID range is empty, outside the PASID space, or one too many"
            }
            Error::InvalidSetLimit => "ioasid: maximum number of sets must be 1 to 2^20 - 1",
            Error::InvalidRange => {
                "ioasid: PASID range is empty (min > max) or reaches past the PASID space"
            }
            Error::InvalidQuota => "ioasid: set quota must be 1 to the size of the PASID space",
            Error::UnbalancedPut => "ioasid: PASID put without a matching get",
            Error::NoSpace => "ioasid: no free PASID in the requested range",
            Error::NoSetSpace => "ioasid: no free PASID set ID",
            Error::QuotaExceeded => "ioasid: PASID set quota exceeded",
            Error::PasidNotFound => "ioasid: PASID not allocated, already freed, or releasing",
            Error::SetNotFound => "ioasid: PASID set does not exist",
            Error::NoAllocator => "ioasid: no custom PASID allocator registered",
            Error::SubscriptionNotFound => "ioasid: no free notifier with this subscription ID",
            Error::NotOwner => "ioasid: PASID belongs to another set",
            Error::NoMemory => "ioasid: out of memory",
            Error::AllocatorRegistered => "ioasid: a custom PASID allocator is already registered",
            Error::SpaceInUse => {
                "ioasid: cannot register a custom PASID allocator while PASIDs are live"
            }
            Error::RefOverflow => "ioasid: PASID reference count overflow",
            Error::AllocatorFault => {
                "ioasid: custom allocator returned a PASID outside the request, reserved, or live"
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed operation that hands back the value it was given (so that the caller can drop it
/// outside its lock, or retry).
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected<T> {
    /// Why the operation failed.
    pub error: Error,
    /// The value passed to the operation, unchanged.
    pub value: T,
}

impl<T> Rejected<T> {
    /// Pairs `error` with the value the operation did not consume.
    pub const fn new(error: Error, value: T) -> Self {
        Rejected { error, value }
    }
}

impl<T> From<Rejected<T>> for Error {
    fn from(r: Rejected<T>) -> Error {
        r.error
    }
}
