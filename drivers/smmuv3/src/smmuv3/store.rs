// SPDX-License-Identifier: GPL-2.0
//! CPU-side bookkeeping for lazily allocated level-2 tables.
//!
//! The SMMU finds a level-2 stream table or CD leaf through a descriptor in DMA memory, but the
//! driver must keep the [`super::dma::DmaMemory`] handle that owns it (to write entries and to
//! free it). Portable code has no `alloc`, so the container comes in through [`TableStore`]:
//! the kernel glue can back it with a `KVec` or an XArray, host tools use [`FixedStore`].

/// A map from a level-1 index to the object that owns the level-2 table behind it.
pub trait TableStore<T> {
    /// The object stored for `key`, if any.
    fn get(&self, key: u32) -> Option<&T>;
    /// Stores `value` for `key` (not present yet). Gives the value back if there is no room,
    /// so the caller can free the DMA memory before reporting [`super::error::Error::NoSpace`].
    fn insert(&mut self, key: u32, value: T) -> Result<(), T>;
    /// Number of stored objects.
    fn len(&self) -> usize;
    /// Whether nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fixed-capacity [`TableStore`] held inline (no allocation): at most `N` level-2 tables.
///
/// Lookup is a linear scan, fine for the handful of PCI buses or PASID leaves a mediated-device
/// host uses; the kernel glue may provide a scalable store instead.
pub struct FixedStore<T, const N: usize> {
    slots: [Option<(u32, T)>; N],
    len: usize,
}

impl<T, const N: usize> Default for FixedStore<T, N> {
    fn default() -> Self {
        Self {
            slots: [const { None }; N],
            len: 0,
        }
    }
}

impl<T, const N: usize> TableStore<T> for FixedStore<T, N> {
    fn get(&self, key: u32) -> Option<&T> {
        self.slots
            .iter()
            .take(self.len)
            .flatten()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn insert(&mut self, key: u32, value: T) -> Result<(), T> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = Some((key, value));
                self.len += 1;
                Ok(())
            }
            None => Err(value),
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_store_fills_and_refuses() {
        let mut s: FixedStore<u32, 2> = FixedStore::default();
        assert!(s.is_empty());
        assert_eq!(s.insert(7, 70), Ok(()));
        assert_eq!(s.insert(3, 30), Ok(()));
        assert_eq!(s.insert(9, 90), Err(90));
        assert_eq!((s.get(7), s.get(3), s.get(9)), (Some(&70), Some(&30), None));
        assert_eq!(s.len(), 2);
    }
}
