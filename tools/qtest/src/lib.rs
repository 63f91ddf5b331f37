// SPDX-License-Identifier: GPL-2.0
//! Host-side QEMU qtest client and `virt` machine harness.
//!
//! [`Qtest`] spawns `qemu-system-aarch64` with a qtest socket and speaks the line protocol of
//! QEMU's `system/qtest.c` (`readl`, `writeq`, `b64read`, `memset`, `irq_intercept_in`, ...).
//! [`Machine`] adds the arm64 `virt` board on top: PCI ECAM configuration access, BAR
//! assignment, MSI programming, a guest-RAM [`DmaAllocator`](smmuv3::dma::DmaAllocator)
//! ([`GuestRam`]) and the SMMUv3 register page as [`Mmio`](smmuv3::dma::Mmio) ([`SmmuMmio`]).
//! [`Edu`] drives QEMU's `edu` teaching device (ID, liveness, factorial, DMA, interrupts).
//!
//! Every call returns a [`Result`]; every wait is bounded. The infallible driver traits
//! (`DmaMemory`, `Mmio`) cannot return errors: on a transport failure they return all-ones,
//! drop writes, and record the error, which [`Qtest::check`] reports afterwards.
//!
//! See `docs/qtest.md` for the memory map facts this relies on.

mod base64;
mod client;
mod edu;
mod error;
mod machine;
mod ram;

pub use client::{
    qemu_binary, require_qemu, QemuConfig, Qtest, DEFAULT_TIMEOUT, NO_QEMU_ENV, SKIP_MARKER,
};
pub use edu::{
    Edu, EDU_DEVICE_ID, EDU_DMA_BUF, EDU_DMA_BUF_SIZE, EDU_PASID_DEVICE_ID, EDU_VENDOR_ID,
};
pub use error::{Error, Result};
pub use machine::{virt, Bar, Bdf, Machine, PciFunction, SmmuMmio};
pub use ram::{GuestRam, GuestRamBlock};
