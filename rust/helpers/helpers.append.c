/* Project overlay: helpers for the abstractions in rust/kernel/. */
#include "ida.c"
#include "xarray.c"
#include "device.c"
#include "dma.c"
#include "io.c"
#include "pci.c"
#include "iommu.c"
#include "iommu_driver.c"
