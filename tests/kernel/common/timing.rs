// SPDX-License-Identifier: GPL-2.0
//! Timing helpers of the benchmark test modules (`edu_dma_peer`, `smmu_bench`): included with
//! `#[path = "common/timing.rs"] mod timing;`.

use kernel::time::Ktime;

/// Nanoseconds since `t` (0 if the clock went backwards).
pub(crate) fn since(t: Ktime) -> u64 {
    (Ktime::ktime_get() - t).to_ns().max(0) as u64
}

/// The median of `v` (sorts it).
pub(crate) fn median<const N: usize>(v: &mut [u64; N]) -> u64 {
    v.sort_unstable();
    v[N / 2]
}
