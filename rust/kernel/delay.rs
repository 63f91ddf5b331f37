// SPDX-License-Identifier: GPL-2.0

//! Sleeping delays.
//!
//! C header: [`include/linux/delay.h`](srctree/include/linux/delay.h)

/// Sleeps for at least `ms` milliseconds (`msleep`). Process context only.
pub fn msleep(ms: u32) {
    // SAFETY: `msleep` has no preconditions beyond a sleepable context.
    unsafe { crate::bindings::msleep(ms) };
}

/// Calls `op` until `cond` holds for its result, sleeping `sleep_ms` (at least 1) between
/// calls, and gives up with `ETIMEDOUT` after sleeping `timeout_ms` in all. Returns the
/// result that satisfied `cond`; an error of `op` ends the poll at once. Process context only.
///
/// The shape of upstream's `kernel::io::poll::read_poll_timeout` (v6.17), with milliseconds
/// instead of `time::Delta` (6.12 has no `Delta`); the timeout counts sleeps, not wall time.
pub fn read_poll_timeout<T>(
    mut op: impl FnMut() -> crate::error::Result<T>,
    mut cond: impl FnMut(&T) -> bool,
    sleep_ms: u32,
    timeout_ms: u32,
) -> crate::error::Result<T> {
    let sleep_ms = sleep_ms.max(1);
    let mut slept = 0u32;
    loop {
        let v = op()?;
        if cond(&v) {
            return Ok(v);
        }
        if slept >= timeout_ms {
            return Err(crate::error::code::ETIMEDOUT);
        }
        msleep(sleep_ms);
        slept = slept.saturating_add(sleep_ms);
    }
}
