// SPDX-License-Identifier: GPL-2.0
//! What the Linux 6.12 C driver would issue for an unmap of the current contents of a
//! `PageTable`: the calls io-pgtable-arm.c makes into the gather, replayed through
//! `smmuv3::pgtable::gather::LinuxModel`. The same re-enactment as `benches/pgtable.rs`,
//! generic over the page table's memory.
#![allow(dead_code)]

use smmuv3::dma::DmaAllocator;
use smmuv3::pgtable::gather::LinuxModel;
use smmuv3::pgtable::{PageTable, PageTableStore, TlbiCost};

/// `iommu_pgsize()` (iommu.c:2391-2448) for `iova == paddr`: page size and count.
pub fn iommu_pgsize(bitmap: u64, iova: u64, size: u64) -> (u64, u64) {
    let fls = 63 - size.leading_zeros();
    let mut pgsizes = bitmap & (u64::MAX >> (63 - fls));
    if iova != 0 {
        pgsizes &= u64::MAX >> (63 - iova.trailing_zeros());
    }
    let idx = 63 - pgsizes.leading_zeros();
    let mut size = size;
    let bigger = bitmap & !(u64::MAX >> (63 - idx));
    if bigger != 0 {
        let next = 1u64 << bigger.trailing_zeros();
        let offset = next - (iova & (next - 1));
        if offset.checked_add(next).is_some_and(|e| e <= size) {
            size = offset;
        }
    }
    (1 << idx, size >> idx)
}

/// Replays Linux's `iommu_unmap()` over the current contents of `pt` (read only): the calls
/// io-pgtable-arm.c's `__arm_lpae_unmap()` (lines 644-704) makes into the gather, then the
/// final `iommu_iotlb_sync()`.
pub fn linux_cost<A: DmaAllocator, S: PageTableStore<A::Memory>>(
    pt: &PageTable<A, S>,
    iova: u64,
    size: u64,
    ril: bool,
) -> TlbiCost {
    let g = pt.config().granule;
    let mut m = LinuxModel::new(ril, g);
    let per_table = 1u64 << g.bits_per_level();
    let (mut va, mut done) = (iova, 0);
    while done < size {
        let (pgsize, count) = iommu_pgsize(g.pgsize_bitmap(), va, size - done);
        let level = (0..4)
            .find(|&l| g.level_shift(l) == pgsize.trailing_zeros())
            .unwrap();
        let idx = (va >> g.level_shift(level)) & (per_table - 1);
        let n = count.min(per_table - idx);
        let mut i = 0;
        while i < n {
            let a = va + i * pgsize;
            match pt.lookup(a) {
                None => break,
                // A table below this level: cleared, walk flushed at once (line 678).
                Some(l) if l.level > level => m.flush_walk(a, pgsize, g.size()),
                // A leaf here, or a bigger block split around it (split_blk_unmap, line 636).
                Some(_) => {}
            }
            i += 1;
        }
        for j in 0..i {
            m.add_page(va + j * pgsize, pgsize);
        }
        if i == 0 {
            break;
        }
        va += i * pgsize;
        done += i * pgsize;
    }
    m.finish()
}
