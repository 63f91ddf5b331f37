// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/xarray.rs: inline functions and lock macros of <linux/xarray.h>. */

#include <linux/xarray.h>

void rust_helper_xa_init_flags(struct xarray *xa, gfp_t flags)
{
	xa_init_flags(xa, flags);
}

void rust_helper_xa_lock(struct xarray *xa)
{
	xa_lock(xa);
}

void rust_helper_xa_unlock(struct xarray *xa)
{
	xa_unlock(xa);
}

bool rust_helper_xa_is_err(const void *entry)
{
	return xa_is_err(entry);
}

int rust_helper_xa_err(void *entry)
{
	return xa_err(entry);
}
