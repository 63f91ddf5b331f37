# Devices of the lab's QEMU (configure --with-devices-aarch64=lab, --without-default-devices):
# the virt machine (SMMUv3, GICv3 + ITS, PCIe host bridge, PL011) and the PCI devices the lab uses.
CONFIG_ARM_VIRT=y
CONFIG_EDU=y
# The VMM disk of the vm:* tests (tools/lab/vmm.sh): a virtio-blk device on virtio-mmio, so
# that no PCI device moves.
CONFIG_VIRTIO_BLK=y
