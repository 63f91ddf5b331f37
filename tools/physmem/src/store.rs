// SPDX-License-Identifier: GPL-2.0
//! [`ArenaStore`]: a host [`PageTableStore`] that concurrent maps and unmaps can share.

use smmuv3::dma::{AllocError, DmaMemory};
use smmuv3::pgtable::PageTableStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Tables in write-once slots, found by DMA address through a locked index.
///
/// `insert` and `get` take `&self` (the page table's lockless contract): a slot is filled once
/// and only emptied through `&mut self` (`remove`), so the `&M` that `get` returns stays valid
/// while the store is borrowed, without any unsafe code. The index lock is the host double's
/// own business (the kernel's store is an RCU look-up). Recycled tables wait in a pool for
/// [`PageTableStore::reuse`].
pub struct ArenaStore<M> {
    slots: Box<[OnceLock<M>]>,
    next: AtomicUsize,
    index: Mutex<HashMap<u64, usize>>,
    pool: Mutex<Vec<u64>>,
    rendezvous: Option<Rendezvous>,
}

/// Holds the threads that are about to add a table until `n` of them are (or 2 ms passed):
/// concurrent maps then all sit between reading an entry and installing a table there, the
/// window a compare-and-swap must close, instead of taking turns on a loaded host.
struct Rendezvous {
    n: usize,
    /// (threads waiting, generation).
    state: Mutex<(usize, u64)>,
    cv: Condvar,
}

impl<M> Default for ArenaStore<M> {
    fn default() -> Self {
        Self::with_capacity(1 << 16)
    }
}

impl<M> ArenaStore<M> {
    /// A store with room for `n` inserts (`insert` fails with `ENOMEM` beyond).
    pub fn with_capacity(n: usize) -> Self {
        Self {
            slots: (0..n).map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
            index: Mutex::new(HashMap::new()),
            pool: Mutex::new(Vec::new()),
            rendezvous: None,
        }
    }

    /// A store whose table additions wait for each other, `n` threads at a time (see
    /// `Rendezvous`): for tests of concurrent maps.
    pub fn with_rendezvous(n: usize) -> Self {
        Self {
            rendezvous: Some(Rendezvous {
                n,
                state: Mutex::new((0, 0)),
                cv: Condvar::new(),
            }),
            ..Self::default()
        }
    }

    fn meet(&self) {
        let Some(r) = &self.rendezvous else {
            return;
        };
        let mut st = r.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = st.1;
        st.0 += 1;
        if st.0 >= r.n {
            *st = (0, generation + 1);
            r.cv.notify_all();
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(2);
        while st.1 == generation {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.0 -= 1;
                return;
            }
            st =
                r.cv.wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<u64, usize>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tables held, recycled ones included.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// Whether no table is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tables waiting in the recycling pool.
    pub fn pooled(&self) -> usize {
        self.pool().len()
    }
}

impl<M: DmaMemory> PageTableStore<M> for ArenaStore<M> {
    fn insert(&self, mem: M) -> Result<(), AllocError> {
        self.meet();
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let pa = mem.dma_addr();
        let slot = self.slots.get(i).ok_or(AllocError)?;
        slot.set(mem).map_err(|_| AllocError)?;
        self.index().insert(pa, i);
        Ok(())
    }
    fn get(&self, dma_addr: u64) -> Option<&M> {
        let i = *self.index().get(&dma_addr)?;
        self.slots.get(i)?.get()
    }
    fn remove(&mut self, dma_addr: u64) -> Option<M> {
        let i = self.index().remove(&dma_addr)?;
        self.pool().retain(|&p| p != dma_addr);
        self.slots.get_mut(i)?.take()
    }
    fn recycle(&self, dma_addr: u64) {
        if self.index().contains_key(&dma_addr) {
            self.pool().push(dma_addr);
        }
    }
    fn reuse(&self) -> Option<u64> {
        self.meet();
        self.pool().pop()
    }
    fn dma_wmb(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}
