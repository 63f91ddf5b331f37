/* Project overlay: helpers for the abstractions in rust/kernel/. */
#include "ida.c"
#include "xarray.c"
#include "rcu.c"
