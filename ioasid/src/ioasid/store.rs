// SPDX-License-Identifier: GPL-2.0
//! The ID-indexed storage the allocator keeps PASIDs, sets and subscriptions in.

/// Why a [`IdStore`] operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Memory for the entry (or the index node) could not be allocated. `xa_alloc`/`xa_insert`
    /// returning `-ENOMEM`, or the entry's `KBox` allocation failing.
    NoMemory,
    /// [`IdStore::alloc`]: every ID in the range is in use (`xa_alloc` returning `-EBUSY`).
    Full,
    /// [`IdStore::insert`]: the ID is in use (`xa_insert` returning `-EBUSY`).
    Occupied,
}

/// A map from `u32` IDs to values of type `T` that can also pick the ID itself.
///
/// This is the shape of an allocating kernel XArray (`DEFINE_XARRAY_ALLOC`) holding boxed
/// entries: [`alloc`](IdStore::alloc) is `xa_alloc` with `XA_LIMIT(min, max)`,
/// [`insert`](IdStore::insert) is `xa_insert`, [`get`](IdStore::get) is `xa_load`,
/// [`remove`](IdStore::remove) is `xa_erase`, [`next`](IdStore::next) is `xa_find`.
///
/// The allocator calls every method with its state lock held (see the crate documentation),
/// so an implementation needs no locking of its own; the kernel one may still use the XArray's
/// internal lock, which nests inside the allocator's lock. Methods must not call back into the
/// allocator.
///
/// On failure, `alloc` and `insert` drop `value` and leave the store unchanged. (The allocator
/// only stores bookkeeping that it can rebuild; caller-owned data is put into the entry after
/// it is stored, so it never gets lost in a failed store operation.)
pub trait IdStore<T> {
    /// Stores `value` at the lowest ID in `min..=max` (inclusive; `min <= max` is guaranteed by
    /// the caller) that holds no entry and returns that ID.
    ///
    /// Errors: [`StoreError::Full`] if every ID in the range is taken, [`StoreError::NoMemory`]
    /// if memory ran out.
    fn alloc(&mut self, min: u32, max: u32, value: T) -> Result<u32, StoreError>;

    /// Stores `value` at `id`, which must hold no entry.
    ///
    /// Errors: [`StoreError::Occupied`] if `id` holds an entry, [`StoreError::NoMemory`].
    fn insert(&mut self, id: u32, value: T) -> Result<(), StoreError>;

    /// The entry at `id`.
    fn get(&self, id: u32) -> Option<&T>;

    /// The entry at `id`, for update in place.
    fn get_mut(&mut self, id: u32) -> Option<&mut T>;

    /// Removes the entry at `id` and returns it (the ID becomes free for `alloc`/`insert`).
    fn remove(&mut self, id: u32) -> Option<T>;

    /// The entry with the lowest ID that is `>= from`, for ordered iteration.
    fn next(&self, from: u32) -> Option<(u32, &T)>;
}

/// Iterates over the entries of `store` in ascending ID order.
pub(super) fn for_each<T, S: IdStore<T> + ?Sized, E>(
    store: &S,
    mut f: impl FnMut(u32, &T) -> Result<(), E>,
) -> Result<(), E> {
    let mut from = 0u32;
    while let Some((id, value)) = store.next(from) {
        f(id, value)?;
        match id.checked_add(1) {
            Some(n) => from = n,
            None => break,
        }
    }
    Ok(())
}
