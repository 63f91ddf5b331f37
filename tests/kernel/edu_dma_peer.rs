// SPDX-License-Identifier: GPL-2.0
//! The unmediated peer of `bench:mdev_copy_driver_time` (`tools/guest/labtest/src/bench.rs`):
//! the same edu DMA of one page that one `edu_mdev` copy piece does (page -> edu buffer ->
//! page), by the simplest kernel path: `dma_map_page` of a source and a destination page,
//! program edu both ways, `dma_unmap_page` (and free). No validation, no VFIO pinning, no
//! worker, no mediation. edu's own DMA time (a fixed 100 ms timer) is excluded the way the
//! driver excludes it: the sleeps between status polls are counted apart.
//!
//! The pages are kernel pages allocated before the timed part: the peer has no user memory to
//! pin, so the driver's `vfio_pin_pages`/unpin cost has no counterpart here (the bench prints
//! it beside the ratio). Runs in the module phase of labtest, before `edu_mdev` binds edu, in
//! the same boot; its figures are a `labtest-bench: edu_dma_peer:` line with `key=value`
//! pairs that the user-space bench reads back.
use kernel::{
    alloc::flags::GFP_KERNEL,
    delay::msleep,
    device::Core,
    dma::{DataDirection, PageMapping},
    labtest::{Case, Failed, Suite},
    labtest_ensure,
    page::Page,
    pci,
    prelude::*,
    time::Ktime,
};

module! {
    type: EduDmaPeer,
    name: "edu_dma_peer",
    author: "pasid-mdev project",
    description: "Benchmark peer: one unmediated edu DMA of a page each way",
    license: "GPL",
}

#[path = "common/edu.rs"]
#[macro_use]
mod edu;
#[path = "common/timing.rs"]
mod timing;
use timing::{median, since};

const ROUNDS: usize = 21;
const PAGE: usize = 4096;

/// Times one edu DMA: (ns spent programming edu and reading the status that shows it done,
/// ns waiting: the sleeps and the status reads that found edu still busy). The driver sleeps
/// until edu's completion interrupt instead of polling, so polls that only find edu busy are
/// waiting here, not programming.
fn timed_dma(case: &Case<'_>, bar: &edu::Bar, src: u64, dst: u64, cmd: u64) -> Result<(u64, u64), Failed> {
    let t0 = Ktime::ktime_get();
    bar.write64(src, edu::DMA_SRC);
    bar.write64(dst, edu::DMA_DST);
    bar.write64(PAGE as u64, edu::DMA_COUNT);
    bar.write64(cmd, edu::DMA_CMD);
    let program = since(t0);
    let mut waited = 0;
    for _ in 0..600 {
        let t = Ktime::ktime_get();
        let c = bar.read64(edu::DMA_CMD);
        if c & edu::DMA_START == 0 {
            return Ok((program + since(t), waited));
        }
        msleep(5);
        waited += since(t);
    }
    Err(case.fail(format_args!("edu DMA did not complete in 3 s")))
}

fn cases(suite: &mut Suite, dev: &pci::Device<Core>, bar: &edu::Bar) {
    let d: &kernel::device::Device = dev.as_ref();
    suite.run("page_round_trip_timed", |case| {
        let (mut total, mut map, mut program, mut unmap) = ([0u64; ROUNDS], [0u64; ROUNDS], [0u64; ROUNDS], [0u64; ROUNDS]);
        let mut wait = 0u64;
        for i in 0..ROUNDS {
            let pattern: [u8; 64] = core::array::from_fn(|j| (j as u8).wrapping_mul(13) ^ i as u8);
            let src = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
            let dst = case.check("alloc_page", Page::alloc_page(GFP_KERNEL).map_err(Into::into))?;
            for off in (0..PAGE).step_by(64) {
                // SAFETY: 64 readable bytes, inside the page.
                case.check("write_raw", unsafe { src.write_raw(pattern.as_ptr(), off, 64) })?;
            }
            let t0 = Ktime::ktime_get();
            let s = case.check("map src", PageMapping::new(d, src, 0, PAGE, DataDirection::ToDevice))?;
            let mut m = case.check("map dst", PageMapping::new(d, dst, 0, PAGE, DataDirection::FromDevice))?;
            map[i] = since(t0);
            let (p1, w1) = timed_dma(case, bar, s.dma_addr(), edu::DMA_BUF, edu::DMA_START)?;
            let (p2, w2) = timed_dma(case, bar, edu::DMA_BUF, m.dma_addr(), edu::DMA_START | edu::DMA_TO_RAM)?;
            program[i] = p1 + p2;
            wait += w1 + w2;
            // The bytes are checked outside the timed part (the driver does not read them).
            let mut back = [0u8; 64];
            // SAFETY: 64 writable bytes, inside the page.
            let r = m.with_cpu(|p, _, _| unsafe { p.read_raw(back.as_mut_ptr(), PAGE - 64, 64) });
            case.check("read_raw", r)?;
            labtest_ensure!(case, back == pattern, "round {i}: the page came back as {:?}", &back[..8]);
            let t1 = Ktime::ktime_get();
            drop(s);
            drop(m);
            unmap[i] = since(t1);
            total[i] = map[i] + program[i] + unmap[i];
        }
        pr_info!(
            "labtest-bench: edu_dma_peer: rounds={ROUNDS} per_page_ns={} map_ns={} program_ns={} unmap_free_ns={} wait_ms={} (medians; one 4 KiB page to edu and back, dma_map/unmap of kernel pages, no pin, no mediation)\n",
            median(&mut total),
            median(&mut map),
            median(&mut program),
            median(&mut unmap),
            wait / ROUNDS as u64 / 1_000_000
        );
        Ok(())
    });
}

edu_suite_module!(EduDmaPeer, driver: "edu_dma_peer", suite: "edu_dma_peer", cases: cases);
