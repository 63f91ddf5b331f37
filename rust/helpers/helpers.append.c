/* Project overlay: helpers for the abstractions in rust/kernel/. */
#include "xarray.c"
