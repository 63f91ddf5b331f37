// SPDX-License-Identifier: GPL-2.0
//! The registers of QEMU's `edu` (1234:11e8, `hw/misc/edu.c`) and of the lab's `edu-pasid`
//! (1234:11e9, `docs/pasid-device.md`), declared once. Used by the minimal mdev sample
//! (`samples/vfio-mdev/edu_mdev_min.rs`), the guest test modules (`tests/kernel/common/edu.rs`)
//! and the host qtest client (`tools/qtest/src/edu.rs`, through the `edu-regs` crate).
//!
//! Offsets are BAR0 byte offsets. Registers below 0x80 take 32-bit accesses only; the DMA
//! registers at 0x80..0xa0 take 32- or 64-bit accesses; 0xa0..0xb8 32-bit only.
// Included as a private module by kernel code, where most users need only a few names.
#![allow(dead_code, unreachable_pub)]

/// edu's PCI vendor ID.
pub const VENDOR_ID: u16 = 0x1234;
/// edu's PCI device ID.
pub const DEVICE_ID: u16 = 0x11e8;
/// `edu-pasid`'s PCI device ID (edu with a PASID capability and registers 0xa0/0xa4).
pub const PASID_DEVICE_ID: u16 = 0x11e9;

/// Identification: reads [`ID_VALUE`].
pub const ID: usize = 0x00;
/// What [`ID`] reads: major 1, minor 0, `0xed`.
pub const ID_VALUE: u32 = 0x0100_00ed;
/// Liveness check: reads back the bitwise inverse of what was written.
pub const LIVENESS: usize = 0x04;
/// Factorial: write n, wait for [`STATUS`] bit 0 to clear, read n!.
pub const FACTORIAL: usize = 0x08;
/// Status: bit 0 factorial busy, bit 7 raise interrupt 0x1 when the factorial is done.
pub const STATUS: usize = 0x20;
/// Interrupt status (bits pending).
pub const IRQ_STATUS: usize = 0x24;
/// Interrupt raise: ORs the value into the interrupt status and asserts the interrupt.
pub const IRQ_RAISE: usize = 0x60;
/// Interrupt acknowledge: clears the bits; deasserts when none is left.
pub const IRQ_ACK: usize = 0x64;
/// DMA source address (edu masks DMA addresses to [`DMA_BITS`] bits).
pub const DMA_SRC: usize = 0x80;
/// DMA destination address.
pub const DMA_DST: usize = 0x88;
/// DMA byte count (at most [`DMA_BUF_SIZE`]).
pub const DMA_COUNT: usize = 0x90;
/// DMA command: [`DMA_START`], [`DMA_TO_RAM`], [`DMA_IRQ`].
pub const DMA_CMD: usize = 0x98;
/// [`DMA_CMD`] bit: start (reads 1 while the DMA runs).
pub const DMA_START: u64 = 0x1;
/// [`DMA_CMD`] bit: direction edu buffer -> RAM (clear: RAM -> edu buffer).
pub const DMA_TO_RAM: u64 = 0x2;
/// [`DMA_CMD`] bit: raise [`IRQ_DMA`] when the DMA is done.
pub const DMA_IRQ: u64 = 0x4;
/// Interrupt status bit set by a DMA with [`DMA_IRQ`].
pub const IRQ_DMA: u32 = 0x100;
/// edu's DMA buffer in its own address space.
pub const DMA_BUF: u64 = 0x40000;
/// Size of edu's DMA buffer.
pub const DMA_BUF_SIZE: usize = 4096;
/// edu masks DMA addresses to this many bits.
pub const DMA_BITS: u32 = 28;

/// edu-pasid: DMA PASID, bits [19:0] the PASID, [`DMA_PASID_EN`] tags the DMA with it.
pub const DMA_PASID: usize = 0xa0;
/// [`DMA_PASID`] bit: tag the DMA with the PASID.
pub const DMA_PASID_EN: u32 = 1 << 31;
/// edu-pasid: result of the last DMA ([`DMA_RESULT_OK`], [`DMA_RESULT_ERROR`],
/// [`DMA_RESULT_NO_PASID`]).
pub const DMA_RESULT: usize = 0xa4;
/// [`DMA_RESULT`]: the DMA completed.
pub const DMA_RESULT_OK: u32 = 0;
/// [`DMA_RESULT`]: the DMA failed (an IOMMU fault, for instance).
pub const DMA_RESULT_ERROR: u32 = 1;
/// [`DMA_RESULT`]: a PASID was asked while PASID Enable is clear; nothing was sent.
pub const DMA_RESULT_NO_PASID: u32 = 2;

/// edu-pasid: interrupt message address, low 32 bits (bits [1:0] read 0). With
/// [`IMS_CTRL_EN`] the DMA-completion interrupt ([`DMA_IRQ`]) is a 32-bit write of [`IMS_DATA`]
/// to this address, tagged with the DMA's PASID, instead of the PCI MSI.
pub const IMS_ADDR_LO: usize = 0xa8;
/// edu-pasid: interrupt message address, high 32 bits.
pub const IMS_ADDR_HI: usize = 0xac;
/// edu-pasid: interrupt message data.
pub const IMS_DATA: usize = 0xb0;
/// edu-pasid: interrupt message control: [`IMS_CTRL_EN`] (RW), [`IMS_CTRL_SENT`] and
/// [`IMS_CTRL_FAULT`] (RO, cleared by any write).
pub const IMS_CTRL: usize = 0xb4;
/// [`IMS_CTRL`] bit: DMA completions send the interrupt message.
pub const IMS_CTRL_EN: u32 = 1 << 0;
/// [`IMS_CTRL`] bit: the last message was accepted by the platform.
pub const IMS_CTRL_SENT: u32 = 1 << 30;
/// [`IMS_CTRL`] bit: the last message was refused (an IOMMU fault, for instance) or could not
/// be sent (a PASID asked while PASID Enable is clear).
pub const IMS_CTRL_FAULT: u32 = 1 << 31;

/// Bytes of BAR0 the registers above span (BAR0 itself is 1 MiB): the size drivers map BAR0
/// with (`pci::Device::iomap_region_sized`), so every register offset here is checked against
/// it when building.
pub const REGS_SIZE: usize = 0x100;

#[cfg(test)]
mod tests {
    use super::*;

    /// The DMA registers are 64-bit, naturally aligned and in order; the PASID registers
    /// follow them (a typo in one offset fails here, not in a guest run).
    #[test]
    fn layout() {
        let dma = [DMA_SRC, DMA_DST, DMA_COUNT, DMA_CMD];
        assert!(dma.windows(2).all(|w| w[1] == w[0] + 8));
        assert_eq!(DMA_PASID, DMA_CMD + 8);
        assert_eq!(DMA_RESULT, DMA_PASID + 4);
        let ims = [DMA_RESULT, IMS_ADDR_LO, IMS_ADDR_HI, IMS_DATA, IMS_CTRL];
        assert!(ims.windows(2).all(|w| w[1] == w[0] + 4));
        assert_eq!(DMA_BUF_SIZE, 4096);
    }

    /// Every register fits in [`REGS_SIZE`] (64-bit ones with their 8 bytes).
    #[test]
    fn registers_inside_regs_size() {
        let r32 = [
            ID, LIVENESS, FACTORIAL, STATUS, IRQ_STATUS, IRQ_RAISE, IRQ_ACK, DMA_PASID,
        ];
        let r32b = [DMA_RESULT, IMS_ADDR_LO, IMS_ADDR_HI, IMS_DATA, IMS_CTRL];
        assert!(r32.iter().chain(r32b.iter()).all(|&r| r + 4 <= REGS_SIZE));
        assert!([DMA_SRC, DMA_DST, DMA_COUNT, DMA_CMD]
            .iter()
            .all(|&r| r + 8 <= REGS_SIZE));
    }
}
