// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/sync_ext.rs: inlines of <linux/completion.h> (upstream has the same
 * helper in rust/helpers/completion.c since v6.16). */

#include <linux/completion.h>

void rust_helper_init_completion(struct completion *x)
{
	init_completion(x);
}

/* reinit_completion() under the completion's wait-queue lock, which complete() and
 * complete_all() take too: race-free against them, so Rust can offer it on a shared reference
 * (re-arming a completion an interrupt handler signals). Not upstream. */
void rust_helper_reinit_completion_locked(struct completion *x)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&x->wait.lock, flags);
	reinit_completion(x);
	raw_spin_unlock_irqrestore(&x->wait.lock, flags);
}
