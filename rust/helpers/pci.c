// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/pci.rs: macros and inlines of <linux/pci.h>. */

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
