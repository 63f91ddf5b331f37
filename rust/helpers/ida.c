// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/ida.rs. */

#include <linux/idr.h>

void rust_helper_ida_init(struct ida *ida)
{
	ida_init(ida);
}
