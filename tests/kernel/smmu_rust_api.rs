// SPDX-License-Identifier: GPL-2.0
//! Guest test of the Rust SMMUv3 driver (`drivers/smmuv3/linux/`, flavours `release`, `debug`)
//! through the IOMMU API on edu: the stale-translation oracle (remap an IOVA to another page and
//! DMA: QEMU keeps stale IOTLB entries, so a missing TLBI sends the DMA to the old page), bad
//! input answered with an errno and no WARN (overlapping map, map beyond the input address
//! size, unmap of nothing), and a DMA to an unmapped IOVA that must fault (reported by the
//! driver's event-queue handler, naming the device, StreamID and IOVA) without touching memory.
//!
//! And the lockless map/unmap: two workers hammer disjoint ranges of one paging domain that
//! share its tables (one of them unmapping whole tables next to the other's pages) for about a
//! second, each checking its own translations as it goes, then every page is checked.
//!
//! The C driver is not tested here: io-pgtable-arm WARNs on an overlapping map by design.
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    alloc::flags::{__GFP_ZERO, GFP_KERNEL},
    device::Core,
    dma::{page_to_phys, CoherentAllocation},
    error::code::{EEXIST, EINVAL},
    iommu::{Domain, Prot},
    labtest::{Case, Failed, Suite},
    labtest_ensure, new_condvar, new_mutex,
    page::Page,
    pci, pin_init,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    time::{ktime_ms_delta, Ktime},
    workqueue,
};

module! {
    type: SmmuRustApi,
    name: "smmu_rust_api",
    author: "pasid-mdev project",
    description: "Guest test: the Rust SMMUv3 driver through the IOMMU API",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;

const IOVA: u64 = 0x20_0000;
const LEN: usize = 64;

/// Reads the first `LEN` bytes of `page`.
fn head(case: &Case<'_>, page: &Page) -> Result<[u8; LEN], Failed> {
    let mut b = [0u8; LEN];
    // SAFETY: `LEN` writable bytes, inside the page.
    case.check("read_raw", unsafe { page.read_raw(b.as_mut_ptr(), 0, LEN) })?;
    Ok(b)
}

/// A zeroed page.
fn zeroed_page(case: &Case<'_>) -> Result<Page, Failed> {
    case.check(
        "alloc_page",
        Page::alloc_page(GFP_KERNEL | __GFP_ZERO).map_err(Into::into),
    )
}

/// edu writes the first `LEN` bytes of its buffer to `iova`.
fn dma_to(case: &Case<'_>, bar: &edu::Bar, iova: u64) -> Result<(), Failed> {
    edu::dma(
        case,
        bar,
        edu::DMA_BUF,
        iova,
        LEN as u64,
        edu::DMA_START | edu::DMA_TO_RAM,
    )
}

/// Fills edu's DMA buffer with `pattern` through the DMA API (the device's default domain).
fn load_edu(
    case: &Case<'_>,
    dev: &kernel::device::Device<kernel::device::Bound>,
    bar: &edu::Bar,
    pattern: &[u8; LEN],
) -> Result<(), Failed> {
    let src = case.check(
        "alloc",
        CoherentAllocation::<u8>::alloc_coherent(dev, 4096, GFP_KERNEL),
    )?;
    case.check("write_bytes", src.write_bytes(0, pattern))?;
    edu::dma(
        case,
        bar,
        src.dma_handle(),
        edu::DMA_BUF,
        LEN as u64,
        edu::DMA_START,
    )
}

/// The race case's span: 4 MiB of pages from 2 MiB below a 1 GiB boundary (tables at levels
/// 1, 2 and 3 shared by both workers), and worker 0's 2 MiB below it (a whole level-3 table,
/// unlinked by each of its unmaps, next to the span's first level-3 table).
const SPAN: u64 = (3 << 30) - (2 << 20);
const SPAN_PAGES: u64 = 1024;
const WHOLE: u64 = SPAN - (2 << 20);
/// How long the workers run, and the most rounds they do (the debug kernel is slower).
const RACE_MS: i64 = 1000;
const RACE_ROUNDS: u32 = 100_000;

/// The physical address worker pages get (never used for DMA: the domain is attached to
/// nothing; distinct per page so a mix-up shows).
fn race_pa(iova: u64) -> u64 {
    0x40_0000_0000 + iova
}

#[pin_data]
struct Race {
    dom: Arc<Domain>,
    errors: AtomicU32,
    rounds: [AtomicU32; 2],
    #[pin]
    done: Mutex<u32>,
    #[pin]
    cv: CondVar,
}

impl Race {
    /// Maps (`map`) or unmaps one page of the span and checks the result, counting mistakes.
    fn page(&self, iova: u64, map: bool) {
        let ok = if map {
            self.dom
                .map(iova, race_pa(iova), 4096, Prot::READ | Prot::WRITE, GFP_KERNEL)
                .is_ok()
                && self.dom.iova_to_phys(iova) == Some(race_pa(iova))
        } else {
            self.dom.unmap(iova, 4096) == 4096 && self.dom.iova_to_phys(iova).is_none()
        };
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Worker `w`: its interleaved pages of the span (page i is worker i % 2's), every round
    /// mapped then unmapped in two passes; worker 0 also maps its whole 2 MiB as 8-page runs
    /// and unmaps it in one call (the level-3 table unlinked and recycled).
    fn work(&self, w: u64) {
        let t0 = Ktime::ktime_get();
        let mut r = 0;
        while r < RACE_ROUNDS && ktime_ms_delta(Ktime::ktime_get(), t0) < RACE_MS {
            let mine = (0..SPAN_PAGES).filter(|i| i % 2 == w);
            for i in mine.clone() {
                self.page(SPAN + i * 4096, true);
            }
            if w == 0 {
                for k in 0..64 {
                    let iova = WHOLE + k * 8 * 4096;
                    let rw = Prot::READ | Prot::WRITE;
                    if self.dom.map(iova, race_pa(iova), 8 * 4096, rw, GFP_KERNEL).is_err() {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if self.dom.unmap(WHOLE, 2 << 20) != 2 << 20 {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            for i in mine.clone().filter(|i| (i / 2 + u64::from(r)) % 2 == 0) {
                self.page(SPAN + i * 4096, false);
            }
            for i in mine.filter(|i| (i / 2 + u64::from(r)) % 2 != 0) {
                self.page(SPAN + i * 4096, false);
            }
            r += 1;
        }
        if let Some(c) = self.rounds.get(w as usize) {
            c.store(r, Ordering::Relaxed);
        }
        // The last round leaves the odd pages of each worker mapped, for the final check.
        for i in (0..SPAN_PAGES).filter(|i| i % 2 == w && (i / 2) % 2 == 1) {
            self.page(SPAN + i * 4096, true);
        }
        *self.done.lock() += 1;
        self.cv.notify_all();
    }
}

fn race_case(suite: &mut Suite, d: &kernel::device::Device) {
    suite.run("concurrent_map_unmap_disjoint_ranges_sharing_tables", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let race = case.check(
            "Arc::pin_init",
            Arc::pin_init(
                pin_init!(Race {
                    dom,
                    errors: AtomicU32::new(0),
                    rounds: [AtomicU32::new(0), AtomicU32::new(0)],
                    done <- new_mutex!(0),
                    cv <- new_condvar!(),
                }),
                GFP_KERNEL,
            ),
        )?;
        for w in 0..2u64 {
            let r = race.clone();
            let spawned =
                workqueue::system_unbound().try_spawn(GFP_KERNEL, move || r.work(w));
            case.check("try_spawn", spawned.map_err(Into::into))?;
        }
        let mut done = race.done.lock();
        while *done < 2 {
            race.cv.wait(&mut done);
        }
        drop(done);
        let errors = race.errors.load(Ordering::Relaxed);
        let rounds = [0, 1].map(|w| race.rounds[w].load(Ordering::Relaxed));
        labtest_ensure!(case, errors == 0, "{errors} wrong results in rounds {rounds:?}");
        labtest_ensure!(case, rounds.iter().all(|&r| r > 0), "a worker did nothing: {rounds:?}");
        // Every page of the span: the odd pages of each worker mapped to their own address,
        // the rest (and worker 0's whole 2 MiB) unmapped.
        let mut wrong = 0u32;
        for i in 0..SPAN_PAGES {
            let iova = SPAN + i * 4096;
            let want = ((i / 2) % 2 == 1).then(|| race_pa(iova));
            if race.dom.iova_to_phys(iova) != want {
                wrong += 1;
            }
        }
        for k in 0..512u64 {
            if race.dom.iova_to_phys(WHOLE + k * 4096).is_some() {
                wrong += 1;
            }
        }
        labtest_ensure!(case, wrong == 0, "{wrong} pages translate wrongly after the race");
        kernel::pr_info!(
            "labtest-info: smmu_rust_api: race rounds {:?} in about {} ms\n",
            rounds,
            RACE_MS
        );
        // Dropping the domain frees every table (kmemleak on the debug kernel).
        Ok(())
    });
}

fn cases(suite: &mut Suite, dev: &pci::Device<Core>, bar: &edu::Bar) {
    race_case(suite, dev.as_ref());
    let d: &kernel::device::Device<kernel::device::Bound> = dev.as_ref();
    let rw = Prot::READ | Prot::WRITE;
    suite.run("stale_translation_oracle_remap", |case| {
        let pattern: [u8; LEN] = core::array::from_fn(|i| (i as u8) ^ 0xa5);
        load_edu(case, d, bar, &pattern)?;
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        let b = zeroed_page(case)?;
        case.check(
            "map A",
            dom.map(IOVA, page_to_phys(&a), 4096, rw, GFP_KERNEL),
        )?;
        let att = case.check("attach_device", dom.attach_device(d))?;
        dma_to(case, bar, IOVA)?;
        labtest_ensure!(case, head(case, &a)? == pattern, "first DMA missed page A");
        // SAFETY: `LEN` readable bytes from a zeroed array, inside the page.
        case.check("zero A", unsafe {
            a.write_raw([0u8; LEN].as_ptr(), 0, LEN)
        })?;
        let n = dom.unmap(IOVA, 4096);
        labtest_ensure!(case, n == 4096, "unmapped {n}");
        case.check(
            "map B",
            dom.map(IOVA, page_to_phys(&b), 4096, rw, GFP_KERNEL),
        )?;
        dma_to(case, bar, IOVA)?;
        let (ha, hb) = (head(case, &a)?, head(case, &b)?);
        labtest_ensure!(
            case,
            ha == [0u8; LEN],
            "stale translation: the DMA after the remap reached the old page"
        );
        labtest_ensure!(
            case,
            hb == pattern,
            "the DMA after the remap missed the new page: {:?}",
            &hb[..8]
        );
        drop(att);
        Ok(())
    });
    suite.run("bad_input_gets_errno_not_warn", |case| {
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        let pa = page_to_phys(&a);
        case.check("map", dom.map(IOVA, pa, 4096, rw, GFP_KERNEL))?;
        let r = dom.map(IOVA, pa, 4096, rw, GFP_KERNEL);
        labtest_ensure!(case, r == Err(EEXIST), "overlapping map: {r:?}");
        let r = dom.map(IOVA - 0x1000, pa, 0x2000, rw, GFP_KERNEL);
        labtest_ensure!(case, r.is_err(), "map straddling a mapping accepted");
        labtest_ensure!(
            case,
            dom.iova_to_phys(IOVA - 0x1000).is_none(),
            "failed map left a translation"
        );
        let r = dom.map(1 << 48, pa, 4096, rw, GFP_KERNEL);
        labtest_ensure!(
            case,
            r.is_err(),
            "map beyond the 48-bit input size accepted"
        );
        let n = dom.unmap(IOVA + 0x10_0000, 4096);
        labtest_ensure!(case, n == 0, "unmap of nothing returned {n}");
        labtest_ensure!(case, dom.iova_to_phys(IOVA) == Some(pa), "mapping lost");
        Ok(())
    });
    suite.run("unaligned_unknown_prot_and_beyond_aperture_refused", |case| {
        // Who refuses what (docs/rust-smmuv3.md, "Bad input at the IOMMU API"): the IOMMU
        // core the unaligned ranges (`unaligned: ...`, EINVAL / 0 bytes), the overlay's
        // `map_pages` callback a prot with bits no IOMMU_* flag names, the driver an unmap
        // beyond its 48-bit input range. An errno or 0 bytes, a message, no WARN, nothing mapped.
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        let pa = page_to_phys(&a);
        case.check("map", dom.map(IOVA, pa, 4096, rw, GFP_KERNEL))?;
        let other = IOVA + 0x1_0000;
        for (what, iova, phys, size) in [
            ("IOVA", other + 0x800, pa, 4096),
            ("physical address", other, pa + 0x800, 4096),
            ("size", other, pa, 0x1800),
        ] {
            let r = dom.map(iova, phys, size, rw, GFP_KERNEL);
            labtest_ensure!(case, r == Err(EINVAL), "map with an unaligned {what}: {r:?}");
        }
        // Bit 6 is no IOMMU_* flag (IOMMU_PRIV is bit 5): refused, not masked off and mapped.
        let r = dom.map(other, pa, 4096, Prot(1 << 6) | rw, GFP_KERNEL);
        labtest_ensure!(case, r == Err(EINVAL), "map with unknown prot bit 6: {r:?}");
        labtest_ensure!(case, dom.iova_to_phys(other).is_none(), "a refused map left a translation");
        let n = dom.unmap(IOVA + 0x800, 4096);
        labtest_ensure!(case, n == 0, "unaligned unmap returned {n}");
        let n = dom.unmap(1 << 48, 4096);
        labtest_ensure!(case, n == 0, "unmap beyond the 48-bit input size returned {n}");
        labtest_ensure!(case, dom.iova_to_phys(IOVA) == Some(pa), "mapping lost");
        Ok(())
    });
    suite.run("dma_to_unmapped_iova_faults_and_writes_nothing", |case| {
        let pattern: [u8; LEN] = core::array::from_fn(|i| (i as u8) ^ 0x5a);
        load_edu(case, d, bar, &pattern)?;
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        let a = zeroed_page(case)?;
        case.check("map", dom.map(IOVA, page_to_phys(&a), 4096, rw, GFP_KERNEL))?;
        let att = case.check("attach_device", dom.attach_device(d))?;
        // One page above the mapping: F_TRANSLATION, reported by the driver.
        dma_to(case, bar, IOVA + 0x1000)?;
        labtest_ensure!(
            case,
            head(case, &a)? == [0u8; LEN],
            "faulting DMA wrote the neighbouring page"
        );
        // The device still works through the mapping afterwards.
        dma_to(case, bar, IOVA)?;
        labtest_ensure!(
            case,
            head(case, &a)? == pattern,
            "DMA after the fault missed"
        );
        drop(att);
        Ok(())
    });
}

edu_suite_module!(SmmuRustApi, driver: "smmu_rust_api", suite: "smmu_rust_api", cases: cases);
