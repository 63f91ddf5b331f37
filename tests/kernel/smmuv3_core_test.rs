// SPDX-License-Identifier: GPL-2.0
//! The portable SMMUv3 driver core (`drivers/smmuv3/src/smmuv3/`) as the kernel crate compiles
//! it from the very same files as the host tests (`kernel::smmuv3`, the core the Rust SMMUv3
//! driver runs on), exercised in the guest: command encodings against golden values and a
//! stage-1 page table on kernel memory.
//!
//! The memory here is plain kernel memory with made-up bus addresses (no device walks these
//! tables); the kernel DMA-backed allocator belongs to the SMMUv3 driver glue.
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    alloc::flags::GFP_KERNEL,
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    prelude::*,
    smmuv3,
    xarray::SharedMap,
};

use smmuv3::{
    cmd::Command,
    dma::{AllocError, DmaAllocator, DmaMemory},
    pgtable::{Config, Gather, Granule, PageTable, PageTableStore, Prot},
};

module! {
    type: Smmuv3CoreTest,
    name: "smmuv3_core_test",
    author: "pasid-mdev project",
    description: "Portable SMMUv3 core compiled into the kernel",
    license: "GPL",
}

struct Smmuv3CoreTest;

/// Zeroed kernel memory standing in for a DMA block, at a made-up bus address.
struct Block {
    addr: u64,
    words: KVec<AtomicU64>,
}

impl DmaMemory for Block {
    fn dma_addr(&self) -> u64 {
        self.addr
    }
    fn size(&self) -> usize {
        self.words.len() * 8
    }
    fn read_u64(&self, offset: usize) -> u64 {
        self.words.get(offset / 8).map_or(u64::MAX, |w| w.load(Ordering::Relaxed))
    }
    fn write_u64(&self, offset: usize, value: u64) {
        if let Some(w) = self.words.get(offset / 8) {
            w.store(value, Ordering::Relaxed);
        }
    }
    fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64 {
        self.words.get(offset / 8).map_or(u64::MAX, |w| {
            w.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst)
                .unwrap_or_else(|cur| cur)
        })
    }
}

/// Hands out naturally aligned bus addresses from a private window.
struct Alloc {
    next: AtomicU64,
}

impl DmaAllocator for &Alloc {
    type Memory = Block;
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<Block, AllocError> {
        let align = align.max(8) as u64;
        let addr = self
            .next
            .fetch_add((size as u64).next_multiple_of(align) + align, Ordering::Relaxed)
            .next_multiple_of(align);
        let mut words = KVec::with_capacity(size / 8, GFP_KERNEL).map_err(|_| AllocError)?;
        for _ in 0..size / 8 {
            words.push(AtomicU64::new(0), GFP_KERNEL).map_err(|_| AllocError)?;
        }
        Ok(Block { addr, words })
    }
}

/// Page-table memory by bus address, in an XArray (index = address / 4 KiB).
struct Store(SharedMap<Block>);

impl PageTableStore<Block> for Store {
    fn insert(&self, mem: Block) -> Result<(), AllocError> {
        let index = (mem.addr >> 12) as u32;
        self.0.insert(index, mem, GFP_KERNEL).map_err(|_| AllocError)
    }
    fn get(&self, dma_addr: u64) -> Option<&Block> {
        self.0.get((dma_addr >> 12) as u32)
    }
    fn remove(&mut self, dma_addr: u64) -> Option<Block> {
        self.0.remove((dma_addr >> 12) as u32)
    }
    fn dma_wmb(&self) {}
}

fn golden(case: &Case<'_>) -> Result<(), Failed> {
    // arm-smmu-v3.h: CMDQ_OP_TLBI_NH_ASID 0x11, CMDQ_TLBI_0_ASID GENMASK_ULL(63, 48).
    let e = Command::TlbiNhAsid { asid: 0x1234, vmid: 0 }
        .encode()
        .map_err(|_| case.fail(format_args!("encode failed")))?;
    labtest_ensure!(case, e.0[0] == 0x1234_0000_0000_0011, "TLBI_NH_ASID word0 {:#x}", e.0[0]);
    labtest_ensure!(case, e.0[1] == 0, "TLBI_NH_ASID word1 {:#x}", e.0[1]);
    Ok(())
}

fn pgtable(case: &Case<'_>) -> Result<(), Failed> {
    let alloc = Alloc { next: AtomicU64::new(0x8000_0000) };
    let store = Store(case.check(
        "SharedMap::new",
        SharedMap::new(GFP_KERNEL),
    )?);
    let cfg = Config { granule: Granule::G4K, ias: 48, oas: 44, coherent_walk: true };
    let mut pt = PageTable::new(cfg, &alloc, store)
        .map_err(|e| case.fail(format_args!("PageTable::new: {e:?}")))?;
    let rw = Prot::READ | Prot::WRITE | Prot::CACHE;
    pt.map(0x1000_0000, 0x4_0000_0000, 0x20_0000, rw)
        .map_err(|e| case.fail(format_args!("map 2M: {e:?}")))?;
    pt.map(0x2000_1000, 0x5_0000_3000, 0x3000, rw)
        .map_err(|e| case.fail(format_args!("map pages: {e:?}")))?;
    labtest_ensure!(
        case,
        pt.iova_to_phys(0x1012_3456) == Some(0x4_0012_3456),
        "block lookup {:?}",
        pt.iova_to_phys(0x1012_3456)
    );
    labtest_ensure!(case, pt.iova_to_phys(0x2000_2008) == Some(0x5_0000_4008), "page lookup");
    let r = pt.map(0x2000_2000, 0x6_0000_0000, 0x1000, rw);
    labtest_ensure!(case, r.is_err(), "overlapping map accepted");
    let mut gather = Gather::new();
    let n = pt
        .unmap(0x1010_0000, 0x1000, &mut gather)
        .map_err(|e| case.fail(format_args!("unmap in block: {e:?}")))?;
    labtest_ensure!(case, n == 0x1000, "unmapped {n:#x} bytes");
    labtest_ensure!(case, pt.iova_to_phys(0x1010_0000).is_none(), "still mapped after unmap");
    labtest_ensure!(
        case,
        pt.iova_to_phys(0x1010_1000) == Some(0x4_0010_1000),
        "split lost the rest of the block"
    );
    pt.release_retired(&mut gather);
    Ok(())
}

impl kernel::Module for Smmuv3CoreTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("smmuv3_core");
        suite.run("command_golden_tlbi_nh_asid", golden);
        suite.run("stage1_pgtable_map_split_unmap", pgtable);
        suite.finish();
        Ok(Smmuv3CoreTest)
    }
}
