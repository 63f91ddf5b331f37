// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for rust/kernel/{iommu_driver,platform,dma_pages}.rs: inlines and macros of the IOMMU
 * provider API, platform devices and the page allocator.
 */

#include <linux/iommu.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/of.h>
#include <linux/pci.h>
#include <linux/platform_device.h>

#ifdef CONFIG_IOMMU_DMA
/* Not in include/: the IOMMU core's private header, as the C drivers use it. */
void iommu_dma_get_resv_regions(struct device *dev, struct list_head *list);
#endif

struct iommu_fwspec *rust_helper_dev_iommu_fwspec_get(struct device *dev)
{
	return dev_iommu_fwspec_get(dev);
}

void *rust_helper_dev_iommu_priv_get(struct device *dev)
{
	return dev_iommu_priv_get(dev);
}

void rust_helper_dev_iommu_priv_set(struct device *dev, void *priv)
{
	dev_iommu_priv_set(dev, priv);
}

/*
 * Appends a software-MSI reserved region [base, base + len) and the firmware's reserved regions
 * (iommu_dma_get_resv_regions) to @head, as arm_smmu_get_resv_regions() does. Returns -ENOMEM
 * when the region cannot be allocated (the IOMMU core's callback returns void: the caller logs).
 */
int rust_helper_iommu_add_sw_msi_region(struct device *dev, struct list_head *head,
					phys_addr_t base, size_t len)
{
	struct iommu_resv_region *region;

	region = iommu_alloc_resv_region(base, len, IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO,
					 IOMMU_RESV_SW_MSI, GFP_KERNEL);
	if (!region)
		return -ENOMEM;
	list_add_tail(&region->list, head);
#ifdef CONFIG_IOMMU_DMA
	iommu_dma_get_resv_regions(dev, head);
#endif
	return 0;
}

void *rust_helper_page_address(const struct page *page)
{
	return page_address(page);
}

void rust_helper_dma_wmb(void)
{
	dma_wmb();
}

struct fwnode_handle *rust_helper_dev_fwnode(struct device *dev)
{
	return dev_fwnode(dev);
}

void __iomem *rust_helper_ioremap(phys_addr_t offset, size_t size)
{
	return ioremap(offset, size);
}
