// SPDX-License-Identifier: GPL-2.0
//! QEMU's `edu` device (`hw/misc/edu.c`): registers, DMA engine and interrupts.
//!
//! Registers below 0x80 take 32-bit accesses only; the DMA registers at 0x80.. take 32- or
//! 64-bit accesses. A DMA completes 100 ms of virtual time after the command; under TCG the
//! virtual clock follows the host clock, so a transfer takes about 0.1-0.15 s wall.

use super::client::Qtest;
use super::error::{Error, Result};
use super::machine::{Bdf, Ecam};
use std::time::{Duration, Instant};

/// edu's PCI vendor ID.
pub const EDU_VENDOR_ID: u16 = edu_regs::VENDOR_ID;
/// edu's PCI device ID.
pub const EDU_DEVICE_ID: u16 = edu_regs::DEVICE_ID;
/// PCI device ID of `edu-pasid`, the lab QEMU's edu with a PASID capability
/// (`docs/pasid-device.md`).
pub const EDU_PASID_DEVICE_ID: u16 = edu_regs::PASID_DEVICE_ID;
/// Device-side address of edu's DMA buffer.
pub const EDU_DMA_BUF: u64 = edu_regs::DMA_BUF;
/// Size of edu's DMA buffer.
pub const EDU_DMA_BUF_SIZE: u64 = edu_regs::DMA_BUF_SIZE as u64;

/// How long [`Edu::wait_dma`] and [`Edu::factorial`] wait by default.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// A located and enabled edu function (see [`Machine::edu`](crate::Machine::edu)).
#[derive(Clone)]
pub struct Edu {
    qt: Qtest,
    ecam: Ecam,
    bdf: Bdf,
    bar0: u64,
}

impl Edu {
    /// Identification register (reads `0x010000ed`: major 1, minor 0, `0xed`).
    pub const REG_ID: u64 = edu_regs::ID as u64;
    /// Liveness check: reads back the bitwise inverse of what was written.
    pub const REG_LIVENESS: u64 = edu_regs::LIVENESS as u64;
    /// Factorial: write n, wait for status bit 0 to clear, read n!.
    pub const REG_FACTORIAL: u64 = edu_regs::FACTORIAL as u64;
    /// Status: bit 0 factorial busy, bit 7 raise interrupt 0x1 when the factorial is done.
    pub const REG_STATUS: u64 = edu_regs::STATUS as u64;
    /// Interrupt status (bits pending).
    pub const REG_IRQ_STATUS: u64 = edu_regs::IRQ_STATUS as u64;
    /// Interrupt raise: ORs the value into the interrupt status and asserts the interrupt.
    pub const REG_IRQ_RAISE: u64 = edu_regs::IRQ_RAISE as u64;
    /// Interrupt acknowledge: clears the bits; deasserts when none is left.
    pub const REG_IRQ_ACK: u64 = edu_regs::IRQ_ACK as u64;
    /// DMA source address.
    pub const REG_DMA_SRC: u64 = edu_regs::DMA_SRC as u64;
    /// DMA destination address.
    pub const REG_DMA_DST: u64 = edu_regs::DMA_DST as u64;
    /// DMA byte count.
    pub const REG_DMA_COUNT: u64 = edu_regs::DMA_COUNT as u64;
    /// DMA command: bit 0 start/busy, bit 1 direction edu->RAM, bit 2 raise 0x100 when done.
    pub const REG_DMA_CMD: u64 = edu_regs::DMA_CMD as u64;
    /// [`Self::REG_DMA_CMD`] start/busy bit.
    pub const DMA_START: u64 = edu_regs::DMA_START;
    /// [`Self::REG_DMA_CMD`] direction bit: from edu's buffer to the bus.
    pub const DMA_FROM_EDU: u64 = edu_regs::DMA_TO_RAM;
    /// [`Self::REG_DMA_CMD`] bit: raise interrupt status 0x100 when done.
    pub const DMA_IRQ: u64 = edu_regs::DMA_IRQ;
    /// Interrupt status bit set by a DMA with [`Self::DMA_IRQ`].
    pub const IRQ_DMA: u32 = edu_regs::IRQ_DMA;
    /// edu-pasid: DMA PASID, bits [19:0] the PASID, bit 31 tag the DMA with it.
    pub const REG_DMA_PASID: u64 = edu_regs::DMA_PASID as u64;
    /// [`Self::REG_DMA_PASID`] bit: tag the DMA with the PASID.
    pub const DMA_PASID_EN: u32 = edu_regs::DMA_PASID_EN;
    /// edu-pasid: result of the last DMA (0 done, 1 failed, 2 PASID asked while disabled).
    pub const REG_DMA_RESULT: u64 = edu_regs::DMA_RESULT as u64;
    /// [`Self::REG_DMA_RESULT`]: the DMA completed.
    pub const DMA_RESULT_OK: u32 = edu_regs::DMA_RESULT_OK;
    /// [`Self::REG_DMA_RESULT`]: the DMA failed (an IOMMU fault, for instance).
    pub const DMA_RESULT_ERROR: u32 = edu_regs::DMA_RESULT_ERROR;
    /// [`Self::REG_DMA_RESULT`]: a PASID was asked while PASID Enable is clear; nothing sent.
    pub const DMA_RESULT_NO_PASID: u32 = edu_regs::DMA_RESULT_NO_PASID;
    /// edu-pasid: interrupt message control register.
    pub const REG_IMS_CTRL: u64 = edu_regs::IMS_CTRL as u64;
    /// [`Self::REG_IMS_CTRL`]: the last message was accepted.
    pub const IMS_SENT: u32 = edu_regs::IMS_CTRL_SENT;
    /// [`Self::REG_IMS_CTRL`]: the last message was refused or not sent.
    pub const IMS_FAULT: u32 = edu_regs::IMS_CTRL_FAULT;

    pub(crate) fn new(qt: Qtest, ecam: Ecam, bdf: Bdf, bar0: u64) -> Self {
        Self {
            qt,
            ecam,
            bdf,
            bar0,
        }
    }

    /// PCI address.
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// SMMU stream ID (the requester ID).
    pub fn stream_id(&self) -> u32 {
        self.bdf.stream_id()
    }

    /// CPU address of BAR0.
    pub fn bar0(&self) -> u64 {
        self.bar0
    }

    /// Reads the 32-bit register at `reg`.
    pub fn read_reg(&self, reg: u64) -> Result<u32> {
        self.qt.readl(self.bar0 + reg)
    }

    /// Writes the 32-bit register at `reg`.
    pub fn write_reg(&self, reg: u64, value: u32) -> Result<()> {
        self.qt.writel(self.bar0 + reg, value)
    }

    /// The identification register.
    pub fn id(&self) -> Result<u32> {
        self.read_reg(Self::REG_ID)
    }

    /// Writes `value` to the liveness register and returns what it reads back (`!value`).
    pub fn liveness(&self, value: u32) -> Result<u32> {
        self.write_reg(Self::REG_LIVENESS, value)?;
        self.read_reg(Self::REG_LIVENESS)
    }

    /// Computes `n!` (modulo 2^32) on the device.
    pub fn factorial(&self, n: u32) -> Result<u32> {
        self.write_reg(Self::REG_FACTORIAL, n)?;
        let deadline = Instant::now() + DEVICE_TIMEOUT;
        while self.read_reg(Self::REG_STATUS)? & 1 != 0 {
            if Instant::now() >= deadline {
                return Err(Error::Harness(format!(
                    "edu factorial busy after {DEVICE_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.read_reg(Self::REG_FACTORIAL)
    }

    /// Interrupt status register.
    pub fn irq_status(&self) -> Result<u32> {
        self.read_reg(Self::REG_IRQ_STATUS)
    }

    /// Raises interrupt status bits `value` (an MSI write if MSI is enabled, else INTx).
    pub fn raise_irq(&self, value: u32) -> Result<()> {
        self.write_reg(Self::REG_IRQ_RAISE, value)
    }

    /// Acknowledges interrupt status bits `value`.
    pub fn ack_irq(&self, value: u32) -> Result<()> {
        self.write_reg(Self::REG_IRQ_ACK, value)
    }

    /// Programs and enables edu's single MSI vector.
    pub fn msi_enable(&self, addr: u64, data: u16) -> Result<()> {
        self.ecam.msi_enable(self.bdf, addr, data)
    }

    /// Disables MSI (interrupts then go to INTx).
    pub fn msi_disable(&self) -> Result<()> {
        self.ecam.msi_disable(self.bdf)
    }

    /// edu-pasid: tags the following DMAs with `pasid` (`None`: untagged).
    pub fn set_dma_pasid(&self, pasid: Option<u32>) -> Result<()> {
        let v = match pasid {
            Some(p) if p <= 0xf_ffff => p | Self::DMA_PASID_EN,
            Some(p) => return Err(Error::Harness(format!("PASID {p:#x} is above 20 bits"))),
            None => 0,
        };
        self.write_reg(Self::REG_DMA_PASID, v)
    }

    /// edu-pasid: the result of the last DMA ([`Self::DMA_RESULT_OK`], ...).
    pub fn dma_result(&self) -> Result<u32> {
        self.read_reg(Self::REG_DMA_RESULT)
    }

    /// edu-pasid: the DMA-completion interrupt becomes a write of `data` to `addr`, tagged
    /// like the DMA (`Some`), or the PCI MSI again (`None`).
    pub fn set_interrupt_message(&self, msg: Option<(u64, u32)>) -> Result<()> {
        let (addr, data) = msg.unwrap_or((0, 0));
        self.write_reg(edu_regs::IMS_ADDR_LO as u64, addr as u32)?;
        self.write_reg(edu_regs::IMS_ADDR_HI as u64, (addr >> 32) as u32)?;
        self.write_reg(edu_regs::IMS_DATA as u64, data)?;
        let en = if msg.is_some() {
            edu_regs::IMS_CTRL_EN
        } else {
            0
        };
        self.write_reg(Self::REG_IMS_CTRL, en)
    }

    /// edu-pasid: the interrupt message control register ([`Self::IMS_SENT`], ...).
    pub fn interrupt_message_status(&self) -> Result<u32> {
        self.read_reg(Self::REG_IMS_CTRL)
    }

    /// Whether a DMA is in progress (command bit 0).
    pub fn dma_busy(&self) -> Result<bool> {
        Ok(self.qt.readq(self.bar0 + Self::REG_DMA_CMD)? & Self::DMA_START != 0)
    }

    /// Programs and starts a raw DMA. One side must be inside edu's buffer
    /// (`EDU_DMA_BUF..EDU_DMA_BUF + 4096`, checked here: an overrun corrupts edu's state); the
    /// other is a bus address, subject to edu's `dma_mask` (28 bits unless the device was
    /// created with `edu,dma_mask=...`) and then to the SMMU.
    pub fn start_dma(&self, src: u64, dst: u64, count: u64, cmd: u64) -> Result<()> {
        let buf_side = if cmd & Self::DMA_FROM_EDU != 0 {
            src
        } else {
            dst
        };
        let ok = count > 0
            && buf_side >= EDU_DMA_BUF
            && buf_side
                .checked_add(count)
                .is_some_and(|end| end <= EDU_DMA_BUF + EDU_DMA_BUF_SIZE);
        if !ok {
            return Err(Error::Harness(format!(
                "edu DMA of {count:#x} bytes at buffer address {buf_side:#x} leaves the 4 KiB \
                 buffer at {EDU_DMA_BUF:#x}"
            )));
        }
        if self.dma_busy()? {
            return Err(Error::Harness("edu DMA engine busy".into()));
        }
        self.qt.writeq(self.bar0 + Self::REG_DMA_SRC, src)?;
        self.qt.writeq(self.bar0 + Self::REG_DMA_DST, dst)?;
        self.qt.writeq(self.bar0 + Self::REG_DMA_COUNT, count)?;
        self.qt
            .writeq(self.bar0 + Self::REG_DMA_CMD, cmd | Self::DMA_START)
    }

    /// Polls until the DMA engine is idle or `timeout` passes.
    pub fn wait_dma(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.dma_busy()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Harness(format!(
                    "edu DMA still busy after {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Copies `len` bytes from bus address `src` into edu's buffer at `buf_offset`, waiting
    /// (5 s at most) for completion.
    pub fn dma_to_edu(&self, src: u64, buf_offset: u64, len: u64) -> Result<()> {
        let dst = EDU_DMA_BUF.saturating_add(buf_offset);
        self.start_dma(src, dst, len, 0)?;
        self.wait_dma(DEVICE_TIMEOUT)
    }

    /// Copies `len` bytes from edu's buffer at `buf_offset` to bus address `dst`, waiting
    /// (5 s at most) for completion.
    pub fn dma_from_edu(&self, buf_offset: u64, dst: u64, len: u64) -> Result<()> {
        let src = EDU_DMA_BUF.saturating_add(buf_offset);
        self.start_dma(src, dst, len, Self::DMA_FROM_EDU)?;
        self.wait_dma(DEVICE_TIMEOUT)
    }
}
