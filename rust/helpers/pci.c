// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/pci.rs: macros and inlines of <linux/pci.h>. */

#include <linux/irq.h>
#include <linux/msi.h>
#include <linux/pci.h>

resource_size_t rust_helper_pci_resource_len(struct pci_dev *pdev, int bar)
{
	return pci_resource_len(pdev, bar);
}

unsigned long rust_helper_pci_resource_flags(struct pci_dev *pdev, int bar)
{
	return pci_resource_flags(pdev, bar);
}

int rust_helper_dma_set_mask_and_coherent(struct device *dev, u64 mask)
{
	return dma_set_mask_and_coherent(dev, mask);
}

bool rust_helper_pci_is_enabled(struct pci_dev *pdev)
{
	return pci_is_enabled(pdev);
}

bool rust_helper_dev_is_pci(const struct device *dev)
{
	return dev_is_pci(dev);
}

u16 rust_helper_pci_dev_id(struct pci_dev *pdev)
{
	return pci_dev_id(pdev);
}

/*
 * The message of MSI/MSI-X vector @index as the kernel last wrote it to @pdev (the cached
 * copy of the descriptor: with dma-iommu, its address is an IOVA of the device's DMA domain).
 * -ENXIO when @pdev uses neither MSI nor MSI-X or the vector has no MSI descriptor.
 */
int rust_helper_pci_cached_msi_message(struct pci_dev *pdev, unsigned int index,
				       u64 *address, u32 *data)
{
	struct msi_desc *desc;
	int irq;

	if (!pdev->msi_enabled && !pdev->msix_enabled)
		return -ENXIO;
	irq = pci_irq_vector(pdev, index);
	if (irq < 0)
		return irq;
	desc = irq_get_msi_desc(irq);
	if (!desc)
		return -ENXIO;
	*address = ((u64)desc->msg.address_hi << 32) | desc->msg.address_lo;
	*data = desc->msg.data;
	return 0;
}
