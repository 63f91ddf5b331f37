// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/sync_ext.rs: inlines of <linux/completion.h> (upstream has the same
 * helper in rust/helpers/completion.c since v6.16). */

#include <linux/completion.h>

void rust_helper_init_completion(struct completion *x)
{
	init_completion(x);
}
