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

unsigned long rust_helper_iommu_domain_pgsize_bitmap(struct iommu_domain *domain)
{
	return domain->pgsize_bitmap;
}

dma_addr_t rust_helper_iommu_domain_aperture_end(struct iommu_domain *domain)
{
	return domain->geometry.aperture_end;
}

/*
 * What VFIO and iommufd call for IOMMU_CAP_ENFORCE_CACHE_COHERENCY: make the domain block
 * No_snoop. False when the IOMMU driver has no such operation (arm-smmu-v3 in 6.12).
 */
bool rust_helper_iommu_domain_enforce_cache_coherency(struct iommu_domain *domain)
{
	if (!domain->ops || !domain->ops->enforce_cache_coherency)
		return false;
	return domain->ops->enforce_cache_coherency(domain);
}
