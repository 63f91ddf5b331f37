// SPDX-License-Identifier: GPL-2.0
//! Guest driver for the copy engine of an `edu_mdev` mediated device (PCI 1234:ed01), as a VM
//! sees it when its VMM passes the mdev through with `-device vfio-pci,sysfsdev=...`.
//!
//! The device side of the sample: what a driver for a mediated device's virtual function looks
//! like. It maps BAR0 (the register file of `docs/sample-mdev.md`), takes the device's one MSI,
//! allocates coherent DMA buffers and, at probe, runs copies and checks the bytes; results go
//! to the kernel log as `copy_engine_guest: ...` lines that the lab's `vm:*` tests read:
//!
//! - `result <name> ok` / `result <name> FAIL <why>`: one check;
//! - `copy_us <bytes> <microseconds>`: one copy, from the `CMD` write to the completion MSI;
//! - `done <passed> passed, <failed> failed`: the last line.
//!
//! The bytes are a pattern seeded with the mdev's PASID (its `PASID` register), so two VMs
//! copying at the same guest addresses at once each expect their own bytes: a copy resolved in
//! the other VM's memory would show. The driver only ever names guest-physical addresses; the
//! mdev resolves them in the VM's own VFIO container, so an address outside the VM's RAM must be
//! refused (`ERROR = 4`), which the `isolation_*` checks assert.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    c_str, dev_err, dev_info,
    device::{self, Bound, Core},
    devres::Devres,
    dma::CoherentAllocation,
    irq, new_condvar, new_mutex, pci,
    prelude::*,
    sync::{Arc, CondVar, CondVarTimeoutResult, Mutex},
    time::{msecs_to_jiffies, Ktime},
};

// The copy engine's registers, declared once in the sample's portable crate (the sample
// emulates them, the guest VFIO client drives them from user space; docs/portable-code.md).
#[path = "../vfio-mdev/engine/src/copy_engine/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod copy_engine;
use copy_engine::{regfile::regs, CopyError};

/// The MMIO offset of register `r` (the shared layout's offsets are `u64`).
const fn at(r: u64) -> usize {
    r as usize
}
/// Bytes the registers span: BAR0 is mapped with this size, so every offset is checked against
/// it when building.
const REGS_SIZE: usize = at(regs::MAX_LEN) + 4;
/// `STATUS.ERROR` when a page is not mapped in the mdev's container.
const ERROR_UNMAPPED: u32 = CopyError::Unmapped.code();

/// Size of each DMA buffer: the engine's `MAX_LEN` is 64 KiB, 16 KiB keeps the run short.
const BUF_LEN: usize = 16 * 1024;
/// 4 KiB copies timed per probe (the figure compared with the lab guest's user-space client).
const ROUNDS: u32 = 6;
/// A guest-physical address far above the VM's RAM: nothing is mapped there for the device.
const OUTSIDE_RAM: u64 = 1 << 40;
/// How long a copy may take before the driver gives up (edu needs ~0.2 s per 4 KiB under TCG;
/// several VMs share it).
const COPY_TIMEOUT_MS: u32 = 30_000;

module! {
    type: CopyEngineModule,
    name: "copy_engine_guest",
    author: "pasid-mdev project",
    description: "Guest driver for the edu_mdev copy engine (sample)",
    license: "GPL",
}

/// The module: the PCI driver's registration (unregistering it unbinds the devices).
struct CopyEngineModule {
    _pci: Pin<KBox<pci::Registration<CopyEngine>>>,
}

impl kernel::Module for CopyEngineModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let pci = pci::Registration::new(c_str!("copy_engine_guest"), module);
        Ok(Self {
            _pci: KBox::pin_init(pci, GFP_KERNEL)?,
        })
    }
}

kernel::pci_device_table!(IDS, (), [(pci::DeviceId::from_id(0x1234, 0xed01), ())]);

/// Completion of the copy in flight: the MSI's threaded handler sets `done` under the lock.
#[pin_data]
struct Completion {
    #[pin]
    done: Mutex<bool>,
    #[pin]
    cv: CondVar,
    /// Interrupts seen (for the log).
    count: AtomicU32,
}

/// The MSI handler: the engine raises it once per copy started with `CMD_IRQ`.
struct Msi(Arc<Completion>);

impl irq::ThreadedHandler for Msi {
    fn handle_threaded(&self) -> irq::IrqReturn {
        *self.0.done.lock() = true;
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.cv.notify_all();
        irq::IrqReturn::Handled
    }
}

/// The bound device: its BAR, its MSI and the completion they share.
struct CopyEngine {
    bar: Devres<pci::Bar<{ REGS_SIZE }>>,
    completion: Arc<Completion>,
    _msi: Pin<KBox<irq::Registration<Msi>>>,
}

impl CopyEngine {
    /// Runs one copy of `len` bytes from `src` to `dst` (device addresses) and waits for its
    /// MSI. Returns `STATUS.ERROR` (0: copied) and the time from `CMD` to the interrupt.
    ///
    /// `dev` (bound) gives the BAR without an RCU guard, so it is held across the sleep.
    fn copy(&self, dev: &device::Device<Bound>, src: u64, dst: u64, len: u32) -> Result<(u32, u64)> {
        *self.completion.done.lock() = false;
        let t0 = Ktime::ktime_get();
        let bar = self.bar.access(dev)?;
        bar.write32(src as u32, at(regs::SRC_LO));
        bar.write32((src >> 32) as u32, at(regs::SRC_HI));
        bar.write32(dst as u32, at(regs::DST_LO));
        bar.write32((dst >> 32) as u32, at(regs::DST_HI));
        bar.write32(len, at(regs::LEN));
        bar.write32(regs::CMD_START | regs::CMD_IRQ, at(regs::CMD));
        let mut done = self.completion.done.lock();
        let mut waited_ms = 0;
        while !*done {
            if waited_ms >= COPY_TIMEOUT_MS {
                return Err(ETIMEDOUT);
            }
            // The handler sets `done` under the lock, so a wake-up cannot be missed; the
            // timeout only bounds a device that never interrupts.
            let woke = self
                .completion
                .cv
                .wait_interruptible_timeout(&mut done, msecs_to_jiffies(1000));
            if matches!(woke, CondVarTimeoutResult::Signal { .. }) {
                return Err(EINTR);
            }
            waited_ms += 1000;
        }
        drop(done);
        let us = (Ktime::ktime_get().to_ns() - t0.to_ns()) as u64 / 1000;
        let status = bar.read32(at(regs::STATUS));
        if status & regs::STATUS_DONE == 0 {
            return Err(EIO);
        }
        Ok(((status >> regs::ERROR_SHIFT) & 0xff, us))
    }

    /// The checks run at probe; each logs one `result` line. Returns (passed, failed).
    fn self_test(&self, pdev: &pci::Device<Bound>, pasid: u32) -> Result<(u32, u32)> {
        let src = CoherentAllocation::<u8>::alloc_coherent(pdev.as_ref(), BUF_LEN, GFP_KERNEL)?;
        let dst = CoherentAllocation::<u8>::alloc_coherent(pdev.as_ref(), BUF_LEN, GFP_KERNEL)?;
        let (mut passed, mut failed) = (0, 0);
        let mut report = |name: &str, outcome: Result<(), &str>| match outcome {
            Ok(()) => {
                passed += 1;
                pr_info!("result {} ok\n", name);
            }
            Err(why) => {
                failed += 1;
                pr_info!("result {} FAIL {}\n", name, why);
            }
        };

        // Copies of one page, then one of the whole buffer (four pages, four pieces).
        for round in 0..=ROUNDS {
            let len = if round < ROUNDS { 4096 } else { BUF_LEN as u32 };
            fill(&src, pasid, round)?;
            fill(&dst, !pasid, 0)?; // anything but the expected bytes
            let outcome = match self.copy(pdev.as_ref(), src.dma_handle(), dst.dma_handle(), len) {
                Ok((0, us)) => {
                    pr_info!("copy_us {} {}\n", len, us);
                    if same_bytes(&src, &dst, len as usize)? {
                        Ok(())
                    } else {
                        Err("destination bytes differ from the source")
                    }
                }
                Ok((_, _)) => Err("the engine reported an error"),
                Err(_) => Err("no completion"),
            };
            report(if len == 4096 { "copy_4k" } else { "copy_16k" }, outcome);
        }

        // Isolation: addresses outside the VM's RAM reach nothing, in either direction.
        fill(&dst, !pasid, 0)?;
        let before = checksum(&dst)?;
        let outcome = match self.copy(pdev.as_ref(), OUTSIDE_RAM, dst.dma_handle(), 4096) {
            Ok((ERROR_UNMAPPED, _)) if checksum(&dst)? == before => Ok(()),
            Ok((ERROR_UNMAPPED, _)) => Err("refused, but the destination changed"),
            Ok(_) => Err("a source outside the VM's memory was not refused"),
            Err(_) => Err("no completion"),
        };
        report("isolation_source_outside_ram", outcome);
        let outcome = match self.copy(pdev.as_ref(), src.dma_handle(), OUTSIDE_RAM, 4096) {
            Ok((ERROR_UNMAPPED, _)) => Ok(()),
            Ok(_) => Err("a destination outside the VM's memory was not refused"),
            Err(_) => Err("no completion"),
        };
        report("isolation_destination_outside_ram", outcome);
        Ok((passed, failed))
    }
}

/// Fills `buf` with bytes that depend on the mdev (`seed`) and the round.
fn fill(buf: &CoherentAllocation<u8>, seed: u32, round: u32) -> Result {
    for i in 0..buf.count() {
        let x = seed.wrapping_mul(0x9e37_79b9) ^ round.wrapping_mul(0x85eb_ca6b) ^ (i as u32);
        buf.write(i, (x ^ x >> 13) as u8)?;
    }
    Ok(())
}

/// Whether the first `len` bytes of the two buffers are equal.
fn same_bytes(a: &CoherentAllocation<u8>, b: &CoherentAllocation<u8>, len: usize) -> Result<bool> {
    for i in 0..len {
        if a.read(i)? != b.read(i)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A checksum of the whole buffer (to see that a refused copy wrote nothing).
fn checksum(buf: &CoherentAllocation<u8>) -> Result<u32> {
    let mut sum = 0u32;
    for i in 0..buf.count() {
        sum = sum.rotate_left(5) ^ u32::from(buf.read(i)?);
    }
    Ok(sum)
}

impl pci::Driver for CopyEngine {
    type IdInfo = ();
    const ID_TABLE: pci::IdTable<()> = IDS.table();

    fn probe(pdev: &pci::Device<Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        pdev.enable_device()?;
        pdev.set_master()?;
        pdev.dma_set_mask(64)?;
        let bar = pdev.iomap_region_sized::<{ REGS_SIZE }>(0, c_str!("copy_engine_guest"))?;
        let io = bar.access(pdev.as_ref())?;
        let (id, pasid) = (io.read32(at(regs::ID)), io.read32(at(regs::PASID)));
        if id != regs::ID_VALUE {
            dev_err!(
                pdev,
                "ID register {:#x}, expected {:#x}\n",
                id,
                regs::ID_VALUE
            );
            return Err(ENODEV);
        }
        let completion = Arc::pin_init(
            pin_init!(Completion {
                done <- new_mutex!(false, "copy_engine_guest::done"),
                cv <- new_condvar!("copy_engine_guest::cv"),
                count: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )?;
        pdev.alloc_irq_vectors(1, 1, pci::IrqTypes::MSI)?;
        let msi = KBox::pin_init(
            pdev.request_threaded_irq(
                0,
                irq::Flags::NONE,
                c_str!("copy_engine_guest"),
                Msi(completion.clone()),
            )?,
            GFP_KERNEL,
        )?;
        let this = KBox::pin(
            CopyEngine {
                bar,
                completion,
                _msi: msi,
            },
            GFP_KERNEL,
        )?;
        dev_info!(pdev, "copy engine with PASID {}\n", pasid);
        let (passed, failed) = this.self_test(pdev, pasid)?;
        pr_info!(
            "done {} passed, {} failed ({} interrupts)\n",
            passed,
            failed,
            this.completion.count.load(Ordering::Relaxed)
        );
        Ok(this)
    }
}
