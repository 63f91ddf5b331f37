// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/dma.rs: inlines of <linux/dma-mapping.h>. */

#include <linux/dma-mapping.h>

void *rust_helper_dma_alloc_coherent(struct device *dev, size_t size, dma_addr_t *handle, gfp_t gfp)
{
	return dma_alloc_coherent(dev, size, handle, gfp);
}

void rust_helper_dma_free_coherent(struct device *dev, size_t size, void *cpu_addr, dma_addr_t handle)
{
	dma_free_coherent(dev, size, cpu_addr, handle);
}

int rust_helper_dma_mapping_error(struct device *dev, dma_addr_t addr)
{
	return dma_mapping_error(dev, addr);
}

void rust_helper_dma_sync_single_for_cpu(struct device *dev, dma_addr_t addr, size_t size,
					 enum dma_data_direction dir)
{
	dma_sync_single_for_cpu(dev, addr, size, dir);
}

void rust_helper_dma_sync_single_for_device(struct device *dev, dma_addr_t addr, size_t size,
					    enum dma_data_direction dir)
{
	dma_sync_single_for_device(dev, addr, size, dir);
}

phys_addr_t rust_helper_page_to_phys(struct page *page)
{
	return page_to_phys(page);
}
