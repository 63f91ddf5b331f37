// SPDX-License-Identifier: GPL-2.0
//! Errors of the auxiliary-domain layer over the SMMUv3 driver core: the policy's
//! [`policy::Error`] with the core's [`DomainError`] (page table, ASID, command queue) as the
//! backend error.

use super::policy::{self, BackendError};
use super::smmuv3::asid::AsidError;
use super::smmuv3::domain::DomainError;
use super::smmuv3::error::Error as SmmuError;
use super::smmuv3::pgtable::PgtableError;

pub use super::policy::Unsupported;

/// Errors returned by the layer; see [`policy::Error`] for the variants and errnos.
pub type Error = policy::Error<DomainError>;

/// Result alias of the layer.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl BackendError for DomainError {
    fn errno(&self) -> i32 {
        DomainError::errno(self)
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Pgtable(_) => "page-table error",
            Self::Asid(_) => "ASID allocation failed",
            Self::Smmu(e) => e.describe(),
        }
    }
}

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        Self::Backend(e)
    }
}

impl From<SmmuError> for Error {
    fn from(e: SmmuError) -> Self {
        Self::Backend(e.into())
    }
}

impl From<PgtableError> for Error {
    fn from(e: PgtableError) -> Self {
        Self::Backend(e.into())
    }
}

impl From<AsidError> for Error {
    fn from(e: AsidError) -> Self {
        Self::Backend(e.into())
    }
}
