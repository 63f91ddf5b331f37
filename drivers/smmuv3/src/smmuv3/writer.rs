// SPDX-License-Identifier: GPL-2.0
//! Hitless updates of live STEs and CDs.
//!
//! The SMMU reads an entry (64 bytes) with only 64-bit single-copy atomicity, and may cache it
//! until told otherwise (CFGI_STE / CFGI_CD followed by CMD_SYNC). Rewriting a live entry word
//! by word could therefore expose a mix of old and new configuration. The rule used here
//! (the same one as Linux's `arm_smmu_write_entry`, derived from the IGNORED semantics of the
//! spec) is:
//!
//! 1. Write every bit the *current* configuration ignores to its target value (one sync).
//! 2. If now exactly one word still differs in bits the target uses, write it in a single
//!    64-bit store (one sync): that store is the atomic switch. Then clear leftovers that the
//!    target ignores (one sync, if any).
//! 3. If several words differ in used bits, no single store can switch atomically: write V=0
//!    (breaking the entry, one sync), fill words 1..7 (one sync), then write word 0 with V=1
//!    (one sync).
//!
//! Every step that changed memory is followed by exactly one [`EntryIo::sync`], and a step that
//! changed nothing costs nothing, which keeps the sync count minimal for each transition.

use super::error::{Error, Result};

/// Number of 64-bit words in an STE or a CD.
pub const ENTRY_WORDS: usize = 8;

/// Access to one live entry and the invalidation that makes a change visible to the SMMU.
pub trait EntryIo {
    /// Reads word `i` (< 8) of the entry as the SMMU would see it.
    fn read(&self, i: usize) -> u64;
    /// Writes word `i` (< 8) with a single 64-bit store.
    fn write(&mut self, i: usize, value: u64);
    /// Makes all previous writes visible to the SMMU and waits for it (CFGI_* + CMD_SYNC).
    fn sync(&mut self) -> Result<()>;
}

/// What an update cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Number of [`EntryIo::sync`] calls.
    pub syncs: u32,
    /// Whether the entry went through V=0 (transactions may have faulted meanwhile).
    pub breaking: bool,
}

/// Computes the used-bits mask of an entry value.
pub type UsedFn = fn(&[u64; ENTRY_WORDS]) -> [u64; ENTRY_WORDS];

/// Writes words `range` of `target` into `io`; syncs once if anything changed.
fn set_words(
    io: &mut impl EntryIo,
    target: &[u64; ENTRY_WORDS],
    range: core::ops::Range<usize>,
    stats: &mut UpdateStats,
) -> Result<bool> {
    let mut changed = false;
    for i in range {
        if let Some(&t) = target.get(i) {
            if io.read(i) != t {
                io.write(i, t);
                changed = true;
            }
        }
    }
    if changed {
        stats.syncs += 1;
        io.sync()?;
    }
    Ok(changed)
}

/// Updates the entry behind `io` to `target` without the SMMU ever observing a configuration
/// that is neither the old nor the new one (or, when unavoidable, an invalid entry).
///
/// Returns [`Error::InvalidArgument`] without writing anything if `target` sets bits that its
/// own configuration ignores: such bits could never be cleaned up hitlessly later.
pub fn write_entry(
    io: &mut impl EntryIo,
    target: &[u64; ENTRY_WORDS],
    used: UsedFn,
) -> Result<UpdateStats> {
    let mut cur = [0u64; ENTRY_WORDS];
    for (i, w) in cur.iter_mut().enumerate() {
        *w = io.read(i);
    }
    let cur_used = used(&cur);
    let target_used = used(target);
    let mut staged = [0u64; ENTRY_WORDS];
    let mut diff: u32 = 0;
    for i in 0..ENTRY_WORDS {
        if target[i] & !target_used[i] != 0 {
            return Err(Error::InvalidArgument);
        }
        // Bits the current configuration ignores may take their new value right away.
        staged[i] = (cur[i] & cur_used[i]) | (target[i] & !cur_used[i]);
        if staged[i] & target_used[i] != target[i] {
            diff |= 1 << i;
        }
    }

    let mut stats = UpdateStats::default();
    if diff.count_ones() == 1 {
        let critical = diff.trailing_zeros() as usize;
        // The critical word is written whole in the next step; staging it would cost a sync.
        staged[critical] = cur[critical];
        set_words(io, &staged, 0..ENTRY_WORDS, &mut stats)?;
        set_words(io, target, critical..critical + 1, &mut stats)?;
        set_words(io, target, 0..ENTRY_WORDS, &mut stats)?;
    } else if diff != 0 {
        staged[0] = 0;
        stats.breaking = true;
        set_words(io, &staged, 0..1, &mut stats)?;
        set_words(io, target, 1..ENTRY_WORDS, &mut stats)?;
        set_words(io, target, 0..1, &mut stats)?;
    } else {
        // Only ignored bits differ: one pass, one sync if anything changed.
        set_words(io, target, 0..ENTRY_WORDS, &mut stats)?;
    }
    Ok(stats)
}

/// [`UsedFn`] for STEs.
pub fn ste_used(words: &[u64; ENTRY_WORDS]) -> [u64; ENTRY_WORDS] {
    super::ste::Ste(*words).used_bits()
}

/// [`UsedFn`] for CDs.
pub fn cd_used(words: &[u64; ENTRY_WORDS]) -> [u64; ENTRY_WORDS] {
    super::cd::Cd(*words).used_bits()
}
