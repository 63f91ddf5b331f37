// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/iommu.rs: fields of the IOMMU core's per-device state. */

#include <linux/iommu.h>

/* The number of PASIDs the IOMMU core allows for @dev (0: no PASID support). */
u32 rust_helper_dev_iommu_max_pasids(struct device *dev)
{
	return dev->iommu ? dev->iommu->max_pasids : 0;
}

bool rust_helper_dev_has_iommu_group(struct device *dev)
{
	return dev->iommu_group != NULL;
}
