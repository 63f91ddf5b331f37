// SPDX-License-Identifier: GPL-2.0
//! Page-table benchmark (`cargo bench -p smmuv3 --bench pgtable`).
//!
//! 1. Host map+unmap throughput of 4K pages and 2M blocks (4K granule), over a plain in-process
//!    memory (the simulated `physmem` is byte-addressed behind a mutex and would measure itself).
//! 2. TLBI commands and CMD_SYNCs per unmap, for this crate's gather policy and for the Linux
//!    6.12 C driver on the same table contents (replayed through `gather::LinuxModel`, with
//!    the unmap walk of `iommu.c`/`io-pgtable-arm.c` re-enacted below), with and without RIL.

use smmuv3::dma::{AllocError, DmaAllocator, DmaMemory};
use smmuv3::pgtable::{Config, Gather, Granule, InvFeatures, PageTable, Prot};
use std::cell::Cell;
use std::time::Instant;

/// Zeroed words with a fake physical address.
struct FastBlock {
    pa: u64,
    words: Box<[Cell<u64>]>,
}

impl DmaMemory for FastBlock {
    fn dma_addr(&self) -> u64 {
        self.pa
    }
    fn size(&self) -> usize {
        self.words.len() * 8
    }
    fn read_u64(&self, offset: usize) -> u64 {
        self.words[offset / 8].get()
    }
    fn write_u64(&self, offset: usize, value: u64) {
        self.words[offset / 8].set(value)
    }
    fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64 {
        let w = &self.words[offset / 8];
        let cur = w.get();
        if cur == old {
            w.set(new);
        }
        cur
    }
}

#[derive(Default)]
struct FastMem {
    next: Cell<u64>,
}

impl DmaAllocator for &FastMem {
    type Memory = FastBlock;
    fn alloc_zeroed(&self, size: usize, align: usize) -> Result<FastBlock, AllocError> {
        let pa = (self.next.get() + 0x1000_0000).next_multiple_of(align as u64);
        self.next.set(pa + size as u64 - 0x1000_0000);
        Ok(FastBlock {
            pa,
            words: vec![Cell::new(0); size / 8].into_boxed_slice(),
        })
    }
}

type FastStore = physmem::ArenaStore<FastBlock>;

type Pt<'a> = PageTable<&'a FastMem, FastStore>;

const K4: u64 = 4096;
const M2: u64 = 2 << 20;
const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);

fn new_pt(mem: &FastMem) -> Pt<'_> {
    let cfg = Config {
        granule: Granule::G4K,
        ias: 48,
        oas: 48,
        coherent_walk: true,
    };
    PageTable::new(cfg, mem, FastStore::default()).unwrap()
}

fn throughput(what: &str, size: u64, count: u64, rounds: u32) {
    let mem = FastMem::default();
    let mut pt = new_pt(&mem);
    let base = 1u64 << 40;
    let (mut tmap, mut tunmap) = (0f64, 0f64);
    let features = InvFeatures {
        ril: false,
        max_tlbi_ops: None,
    };
    let mut cmds = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..count {
            pt.map(base + i * size, (1 << 36) + i * size, size, RW)
                .unwrap();
        }
        tmap += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..count {
            let mut g = Gather::new();
            assert_eq!(pt.unmap(base + i * size, size, &mut g).unwrap(), size);
            cmds += g.plan(features).count();
            pt.release_retired(&mut g);
        }
        tunmap += t.elapsed().as_secs_f64();
    }
    let n = f64::from(rounds) * count as f64;
    println!(
        "{what:<10} map {:>8.0} ns/op ({:>6.2} M/s)   unmap+plan+release {:>8.0} ns/op ({:>6.2} M/s)   [{} ops, {} TLBI planned]",
        tmap / n * 1e9,
        n / tmap / 1e6,
        tunmap / n * 1e9,
        n / tunmap / 1e6,
        n,
        cmds
    );
}

/// The kernel benchmark's pattern (tests/kernel/smmu_bench.rs): one `map` of `size` bytes at
/// `iova` then one `unmap` of it, repeated in the same region; ns per call and tables
/// allocated per round (from the allocator's high-water mark).
fn cycle(what: &str, iova: u64, pa: u64, size: u64, rounds: u32) {
    let mem = FastMem::default();
    let mut pt = new_pt(&mem);
    // Warm-up round (the kernel benchmark does not count it either).
    pt.map(iova, pa, size, RW).unwrap();
    let mut g = Gather::new();
    pt.unmap(iova, size, &mut g).unwrap();
    pt.release_retired(&mut g);
    let before = mem.next.get();
    let (mut tmap, mut tunmap) = (0f64, 0f64);
    for _ in 0..rounds {
        let t = Instant::now();
        pt.map(iova, pa, size, RW).unwrap();
        tmap += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut g = Gather::new();
        assert_eq!(pt.unmap(iova, size, &mut g).unwrap(), size);
        pt.release_retired(&mut g);
        tunmap += t.elapsed().as_secs_f64();
    }
    let n = f64::from(rounds);
    println!(
        "{what:<12} map {:>8.0} ns   unmap+release {:>8.0} ns   tables allocated per round {:.1}",
        tmap / n * 1e9,
        tunmap / n * 1e9,
        (mem.next.get() - before) as f64 / K4 as f64 / n
    );
}

/// The Linux 6.12 replay of an unmap, shared with the QEMU cost test.
#[path = "../tests/linux_replay/mod.rs"]
mod linux_replay;
use linux_replay::linux_cost;

fn tlbi_table() {
    let base = 1u64 << 40;
    type Setup = fn(&mut Pt<'_>, u64);
    // 16M of 4K pages (the PA is misaligned by one page, so no block can form).
    let pages: Setup = |pt, base| pt.map(base, (1 << 36) + K4, 8 * M2, RW).unwrap();
    let blocks: Setup = |pt, base| pt.map(base, 1 << 36, 8 * M2, RW).unwrap();
    let cases: [(&str, Setup, u64, u64); 8] = [
        ("1 page", pages, base, K4),
        ("16 pages", pages, base, 16 * K4),
        ("512 pages, +4K", pages, base + K4, 512 * K4),
        ("512 pages = 2M table", pages, base, M2),
        ("16M of pages", pages, base, 8 * M2),
        ("2M block", blocks, base, M2),
        ("4K of 2M block", blocks, base + 5 * K4, K4),
        ("16M of blocks", blocks, base, 8 * M2),
    ];
    println!();
    println!("TLBI commands + CMD_SYNC per unmap (4K granule), this crate vs Linux 6.12 C driver");
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>14}",
        "unmap", "ours no-RIL", "C no-RIL", "ours RIL", "C RIL"
    );
    for (name, setup, iova, size) in cases {
        let mut row = Vec::new();
        for ril in [false, true] {
            let mem = FastMem::default();
            let mut pt = new_pt(&mem);
            setup(&mut pt, base);
            let c = linux_cost(&pt, iova, size, ril);
            let mut g = Gather::new();
            assert_eq!(pt.unmap(iova, size, &mut g).unwrap(), size);
            let ours = g.cost(InvFeatures {
                ril,
                max_tlbi_ops: None,
            });
            assert!(
                ours.tlbi <= c.tlbi && ours.sync <= c.sync,
                "{name}: {ours:?} > {c:?}"
            );
            row.push(format!("{} + {}", ours.tlbi, ours.sync));
            row.push(format!("{} + {}", c.tlbi, c.sync));
        }
        println!(
            "{:<22} {:>14} {:>14} {:>14} {:>14}",
            name, row[0], row[1], row[2], row[3]
        );
    }
}

fn main() {
    println!("Host map+unmap throughput, 4K granule, IAS 48 (unmap includes gather planning and table release)");
    throughput("4K pages", K4, 1 << 14, 8);
    throughput("2M blocks", M2, 1 << 12, 8);
    println!();
    println!("smmu_bench's pattern: map then unmap one range, same region, per call");
    let (iova, pa) = (0x4000_0000u64, 1u64 << 36);
    cycle("4K", iova + K4, pa + K4, K4, 20_000);
    cycle("16 x 4K", iova + K4, pa + K4, 16 * K4, 20_000);
    cycle("512 x 4K", iova + K4, pa + K4, 512 * K4, 2_000);
    cycle("2M block", iova, pa, M2, 20_000);
    tlbi_table();
}
