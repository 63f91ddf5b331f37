/* Project overlay: headers and constants for the abstractions in rust/kernel/. */
#include <linux/idr.h>
#include <linux/rcupdate.h>
#include <linux/xarray.h>

const gfp_t RUST_CONST_HELPER_XA_FLAGS_ALLOC = XA_FLAGS_ALLOC;
const gfp_t RUST_CONST_HELPER_XA_FLAGS_ALLOC1 = XA_FLAGS_ALLOC1;
const xa_mark_t RUST_CONST_HELPER_XA_PRESENT = XA_PRESENT;
#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/pci.h>
#include <linux/pci-ats.h>
#include <linux/rcupdate.h>

#include <linux/delay.h>
#include <linux/iommu.h>
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/mdev.h>
#include <linux/vfio.h>
#include <linux/debugfs.h>
#include <linux/mman.h>
#include <linux/seq_file.h>
#include <linux/fdtable.h>
#include <linux/mod_devicetable.h>
#include <linux/of.h>
#include <linux/platform_device.h>
#include <linux/property.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/task_work.h>
#include <linux/completion.h>
#include <linux/of_address.h>
#include <linux/uaccess.h>
