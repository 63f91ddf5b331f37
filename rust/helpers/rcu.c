// SPDX-License-Identifier: GPL-2.0
/* Helpers for lockless readers in rust/kernel/xarray.rs (6.12 has no Rust RCU helpers). */

#include <linux/rcupdate.h>

void rust_helper_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rust_helper_rcu_read_unlock(void)
{
	rcu_read_unlock();
}
