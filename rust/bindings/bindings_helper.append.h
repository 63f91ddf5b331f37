/* Project overlay: headers and constants for the abstractions in rust/kernel/. */
#include <linux/idr.h>
#include <linux/rcupdate.h>
#include <linux/xarray.h>

const gfp_t RUST_CONST_HELPER_XA_FLAGS_ALLOC = XA_FLAGS_ALLOC;
const gfp_t RUST_CONST_HELPER_XA_FLAGS_ALLOC1 = XA_FLAGS_ALLOC1;
const xa_mark_t RUST_CONST_HELPER_XA_PRESENT = XA_PRESENT;
