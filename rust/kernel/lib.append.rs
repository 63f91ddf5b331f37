// Project overlay: test reporting for the lab's guest runner.
pub mod labtest;
// Project overlay: the XArray (not in 6.12's kernel crate).
pub mod xarray;
// Project overlay: the system-wide PASID allocator (portable core from `ioasid/`).
pub mod ioasid;
// Project overlay: the IDA (benchmark peer of the PASID allocator).
pub mod ida;
// Project overlay: revocable data.
pub mod revocable;
// Project overlay: device-managed resources.
pub mod devres;
// Project overlay: bounds-checked MMIO.
pub mod io;
// Project overlay: interrupt handlers.
pub mod irq;
// Project overlay: PCI drivers and devices.
#[cfg(CONFIG_PCI)]
pub mod pci;
// Project overlay: DMA coherent and streaming mappings.
pub mod dma;
// Project overlay: sleeping delays.
pub mod delay;
// Project overlay: the portable SMMUv3 driver core (`drivers/smmuv3/src/smmuv3/` in the project,
// overlay symlink `portable/smmuv3`), compiled once here from the very files the host tests
// compile: the Rust SMMUv3 driver and `smmuv3_core_test.ko` use it as `kernel::smmuv3`, and its
// `prot` is `kernel::iommu::Prot`. The kernel crate's lints apply to it unrelaxed (unsafe ones
// included).
#[path = "portable/smmuv3/mod.rs"]
pub mod smmuv3;
// Project overlay: IOMMU consumer API.
#[cfg(CONFIG_IOMMU_API)]
pub mod iommu;
// Project overlay: auxiliary domains (portable policy from `drivers/auxdomain/`) over the IOMMU API.
#[cfg(all(CONFIG_IOMMU_API, CONFIG_PCI))]
pub mod auxdomain;
// Project overlay: eventfd contexts.
#[cfg(CONFIG_EVENTFD)]
pub mod eventfd;
// Project overlay: VFIO devices (emulated IOMMU) and the device uAPI.
#[cfg(CONFIG_VFIO)]
pub mod vfio;
// Project overlay: mediated devices (needs `CONFIG_VFIO_MDEV=y`).
#[cfg(CONFIG_VFIO_MDEV = "y")]
pub mod mdev;
// Project overlay: sysfs device attributes.
pub mod sysfs;
// Project overlay: debugfs directories and files.
#[cfg(CONFIG_DEBUG_FS)]
pub mod debugfs;
// Project overlay: OF (device tree) match tables.
#[cfg(CONFIG_OF)]
pub mod of;
// Project overlay: platform devices and drivers.
#[cfg(CONFIG_OF)]
pub mod platform;
// Project overlay: page blocks for cache-coherent IOMMU tables.
pub mod dma_pages;
// Project overlay: provider side of the IOMMU API (IOMMU drivers).
#[cfg(CONFIG_IOMMU_API)]
pub mod iommu_driver;
// Project overlay: `bool` module parameters.
pub mod modparam;
// Project overlay: completions (upstream `sync::completion` since v6.16) and work flushing.
pub mod sync_ext;
// Project overlay: read-only views of a DT device's registers and of RAM another driver owns.
#[cfg(CONFIG_OF)]
pub mod hwobserve;
