// SPDX-License-Identifier: GPL-2.0
//! I/O Address Space ID (PASID) allocator.
//!
//! One system-wide PASID space of 1 to 20 bits ([`Config`]), with PASID 0
//! ([`RID_PASID`]) and optional ranges reserved. PASIDs are allocated to **sets**: an owner
//! (a VM, an mdev parent, an SVA process) with a quota. Each PASID carries private data that
//! only its set can look up, and reference counts; subscribers are told when a PASID is
//! released, before it can be allocated again. A platform may register a custom allocator that
//! picks the PASIDs (paravirtualised guests).
//!
//! Layers:
//!
//! * [`IoasidCore`]: the whole state, with `&mut self` operations that the caller serialises.
//!   Releasing PASIDs is two-phase ([`ReleaseChain`], [`Release`]) so that notifications can
//!   run with the lock dropped.
//! * [`Ioasid`]: `IoasidCore` behind a state lock plus notifier subscriptions behind a
//!   notifier lock, with `&self` operations; it documents the concurrency contract.
//!
//! Platforms plug in storage ([`IdStore`]: an allocating XArray in the kernel), locks
//! ([`Lock`]), custom allocators ([`PasidAllocator`]) and notifiers ([`FreeNotifier`]) through
//! the associated types of [`Backend`] and [`Platform`].
//!
//! PASID life cycle: `alloc` → [`Active`](PasidState::Active) (one allocation reference,
//! `get` adds references) → `free` drops the allocation reference: unfindable at once →
//! [`Freed`](PasidState::Freed) while `get` references remain → the last reference goes →
//! [`Releasing`](PasidState::Releasing) (notifiers run) → erased, allocatable again.

mod config;
mod debugfs;
mod dense;
mod error;
mod hooks;
mod locked;
mod lookup;
mod state;
mod store;

pub use config::{Config, DEFAULT_MAX_SETS, MAX_PASID_BITS, MAX_RESERVED_RANGES, RID_PASID};
pub use dense::{BlockMemory, DenseStore, BLOCK, BLOCK_SHIFT, MAX_DENSE_BITS};
pub use error::{errno, Error, Rejected};
pub use hooks::{FreeNotifier, Lock, NoAllocator, PasidAllocator};
pub use locked::{Ioasid, Notifiers, Platform, Subscription, SubscriptionId};
pub use lookup::{HotReader, HotTable, Lookup, LookupReader, NoLookup, MAX_KEY_SET_INDEX};
pub use state::{
    Backend, IoasidCore, Owner, OwnerKind, Pasid, PasidEntry, PasidInfo, PasidState, Release,
    ReleaseChain, SetEntry, SetId, SetInfo, Teardown,
};
pub use store::{IdStore, StoreError};
