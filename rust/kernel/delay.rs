// SPDX-License-Identifier: GPL-2.0

//! Sleeping delays.
//!
//! C header: [`include/linux/delay.h`](srctree/include/linux/delay.h)

/// Sleeps for at least `ms` milliseconds (`msleep`). Process context only.
pub fn msleep(ms: u32) {
    // SAFETY: `msleep` has no preconditions beyond a sleepable context.
    unsafe { crate::bindings::msleep(ms) };
}
