// SPDX-License-Identifier: GPL-2.0
//! Minimal mediated device: QEMU's edu (1234:11e8) shared by up to 8 VFIO mdevs of one type
//! (`edu-small`), each a virtual DMA copy engine (the register file of `docs/sample-mdev.md`)
//! whose copies edu does, page by page, on pages the parent pins and maps (mediated mode).
//!
//! The one to copy for a new mdev driver: the framework (`kernel::mdev::parent`,
//! `kernel::vfio::pci`) does the plumbing, so this file is the device model. Read top to
//! bottom: 1. the module and types, 2. the parent (edu), 3. the copy engine, 4. the mdev's VFIO
//! device. The full driver (`edu_mdev.rs`) adds a second type, PASID mode, edu's interrupt and
//! measurements.

use kernel::{
    c_str,
    delay::read_poll_timeout,
    device,
    devres::Devres,
    dma::DataDirection,
    iommu::Prot,
    mdev,
    mdev::parent::{Capacity, ParentDriver, PciParentDriver, Reserved, TypeInfo},
    new_mutex, pci,
    prelude::*,
    sync::{Arc, Mutex},
    sync_ext::{Job, JobWorker, Ticket},
    types::ARef,
    vfio::{self, pci as vpci, PinnedPages},
};

// The copy engine's portable rules and edu's registers, shared with the tests (docs/portable-code.md).
#[path = "engine/src/copy_engine/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod copy_engine;
#[path = "edu-regs/src/edu_regs/mod.rs"]
mod edu;
use copy_engine::{
    regfile::{RegFile, WriteEffect},
    Copy, CopyError, Piece,
};

// ---- 1. the module and the mdev type ------------------------------------------------------

kernel::module_mdev_pci_driver! {
    mdev: Edu, driver: "edu", pci_ids: [(edu::VENDOR_ID, edu::DEVICE_ID)],
    name: "edu_mdev_min", author: "pasid-mdev project",
    description: "Minimal sample mediated device: edu's DMA as a copy engine per mdev",
    license: "GPL",
}

const MAX_MDEVS: u32 = 8;
const PAGE: u64 = kernel::page::PAGE_SIZE as u64;

/// Edu is the mdev parent: one type; an mdev is its registered VFIO device and its slot.
#[vtable]
impl ParentDriver for Edu {
    type ParentData = Arc<Edu>;
    type TypeData = ();
    /// Dropped in order when the mdev is removed: the VFIO device is unregistered (which
    /// waits until the user closed it), then the slot is given back.
    type Data = (vfio::Registration<Mdev>, Reserved);
    const NAME: &'static CStr = c_str!("edu_mdev_min");
    const DEVICE_API: &'static CStr = c_str!("vfio-pci");
    const TYPES: &'static [TypeInfo<()>] =
        &[TypeInfo::new(c_str!("small"), c_str!("edu-small"), ())];

    fn probe(edu: &Arc<Edu>, mdev: &mdev::Device, _ty: &()) -> Result<Self::Data> {
        let slot = edu.slots.take(1)?;
        let init = try_pin_init!(Mdev {
            edu: edu.clone(),
            copier: JobWorker::new()?,
            pins <- vfio::PinGate::new(),
            st <- new_mutex!(vpci::DeviceState::new(&FACE)?),
        });
        let dev = vfio::Device::new(mdev.as_ref(), init)?;
        Ok((vfio::Registration::new(&dev)?, slot))
    }

    fn available(edu: &Arc<Edu>, _ty: &()) -> u32 {
        edu.slots.available(1)
    }
}

// ---- 2. the parent: edu -------------------------------------------------------------------

/// The parent's data: edu's registers, its one DMA engine and the mdevs' slots.
#[pin_data]
struct Edu {
    dev: ARef<device::Device>,
    bar: Devres<pci::Bar<{ edu::REGS_SIZE }>>,
    /// Held while a piece is on edu: one piece at a time, the mdevs take turns.
    #[pin]
    engine: Mutex<()>,
    slots: Arc<Capacity>,
}

/// The PCI side: the framework's PCI driver binds edu (`pci_ids` above), registers it as the
/// mdev parent with this data and unregisters it (mdevs first) on unbind.
impl PciParentDriver for Edu {
    fn parent_data(pdev: &pci::Device<device::Core>) -> Result<Arc<Edu>> {
        pdev.enable_device()?;
        pdev.set_master()?;
        pdev.dma_set_mask(edu::DMA_BITS)?;
        let edu = try_pin_init!(Edu {
            dev: ARef::from(pdev.as_ref()),
            bar: pdev.iomap_region_sized(0, c_str!("edu_mdev_min"))?,
            engine <- new_mutex!(()),
            slots: Capacity::new(MAX_MDEVS)?,
        });
        Arc::pin_init(edu, GFP_KERNEL)
    }
}

impl Edu {
    /// Copies piece `p` between two pinned pages through edu's buffer: maps them for edu, then
    /// one DMA in and one out (each polled until done: edu takes 100 ms of virtual time), with
    /// edu to itself meanwhile.
    fn copy(&self, src: &PinnedPages<'_, Mdev>, dst: &PinnedPages<'_, Mdev>, p: &Piece) -> Result {
        let s = src.dma_map(0, &self.dev, DataDirection::ToDevice)?;
        let d = dst.dma_map(0, &self.dev, DataDirection::Bidirectional)?;
        let (from, to) = (s.dma_addr() + p.src % PAGE, d.dma_addr() + p.dst % PAGE);
        let _engine = self.engine.lock();
        let (buf, start) = (edu::DMA_BUF, edu::DMA_START);
        for (src, dst, cmd) in [(from, buf, start), (buf, to, start | edu::DMA_TO_RAM)] {
            // Per access (`ENXIO` once unbound): the RCU guard must not be held while sleeping.
            self.bar.try_access_with(|b| {
                b.write64(src, edu::DMA_SRC);
                b.write64(dst, edu::DMA_DST);
                b.write64(p.len, edu::DMA_COUNT);
                b.write64(cmd, edu::DMA_CMD);
            }).ok_or(ENXIO)?;
            let cmd = || self.bar.try_access_with(|b| b.read64(edu::DMA_CMD)).ok_or(ENXIO);
            read_poll_timeout(cmd, |c| c & edu::DMA_START == 0, 10, 3000)?;
        }
        Ok(())
    }
}

// ---- 3. the copy engine: one job at a time per mdev, one page-sized piece at a time ---------

/// A started copy, run by the mdev's `JobWorker`: the device it belongs to (kept alive until
/// the copy ends).
struct CopyJob {
    vdev: ARef<vfio::Device<Mdev>>,
    copy: Copy,
    irq: bool,
}

impl Job for CopyJob {
    fn run(self, t: &Ticket<'_>) {
        let r = self.copy(t);
        let mut st = self.vdev.st.lock();
        // The copy ended: `STATUS`, and the MSI if it asked for it (not after a reset).
        if !t.cancelled() {
            st.regs.finish(r.err());
            if self.irq {
                st.pci.irqs.signal(vpci::MSI_IRQ_INDEX);
            }
        }
    }
}

impl CopyJob {
    /// Checks every page is mapped, then copies piece by piece; stops at a reset. Pins go
    /// through the mdev's `PinGate`, so an unmap of a page in use waits for the piece.
    fn copy(&self, t: &Ticket<'_>) -> Result<(), CopyError> {
        let dev: &vfio::Device<Mdev> = &self.vdev;
        let (unmapped, failed) = (|_| CopyError::Unmapped, |_| CopyError::Device);
        let (c, r, rw) = (&self.copy, Prot::READ, Prot::READ | Prot::WRITE);
        dev.pins.pinnable(dev, c.src, c.len, r).map_err(unmapped)?;
        dev.pins.pinnable(dev, c.dst, c.len, rw).map_err(unmapped)?;
        let mut done = 0;
        while let Some(p) = self.copy.piece(done, PAGE, edu::DMA_BUF_SIZE as u64) {
            if t.cancelled() {
                return Err(CopyError::Aborted);
            }
            let scope = dev.pins.scope();
            let src = scope.pin(dev, p.src_page(PAGE), 1, r).map_err(unmapped)?;
            let dst = scope.pin(dev, p.dst_page(PAGE), 1, rw).map_err(unmapped)?;
            // Edu failed (or was unbound): the engine's `DEVICE` error.
            dev.edu.copy(&src, &dst, &p).map_err(failed)?;
            done += p.len;
        }
        Ok(())
    }
}

// ---- 4. the mdev's VFIO device: config space, BAR0 register file, interrupts ---------------

/// An mdev's vfio-pci face (config space, regions, eventfds: `vpci::RegisterDeviceOps` does
/// them); its registers are the portable `copy_engine::regfile`.
const FACE: vpci::Face = vpci::Face {
    vendor: edu::VENDOR_ID,
    device: 0xed01,
    class: 0x08_80_00,
    revision: 1,
    bar0_size: 0x1000,
};

/// The VFIO device of an mdev.
#[pin_data]
struct Mdev {
    edu: Arc<Edu>,
    copier: Arc<JobWorker<CopyJob>>,
    /// Pins go through it: `dma_unmap` fences the range and waits for the pins in it.
    #[pin]
    pins: vfio::PinGate,
    #[pin]
    st: Mutex<vpci::DeviceState<RegFile>>,
}

impl vpci::RegisterDeviceOps for Mdev {
    const NAME: &'static CStr = c_str!("edu-mdev-min");
    const FACE: vpci::Face = FACE;
    type Regs = RegFile;

    fn state(&self) -> &Mutex<vpci::DeviceState<RegFile>> {
        &self.st
    }

    fn read_reg(_dev: &vfio::Device<Self>, regs: &RegFile, off: u64) -> u32 {
        regs.read(off, 0)
    }

    /// A register write; a started copy is queued under the state lock (a reset cancels under
    /// it too, so the copy is either cancelled by the reset or started after).
    fn write_reg(dev: &vfio::Device<Self>, off: u64, val: u32) {
        let mut st = dev.st.lock();
        match st.regs.write(off, val) {
            WriteEffect::Start { copy, irq } => {
                let vdev = dev.into();
                dev.copier.submit(CopyJob { vdev, copy, irq });
            }
            WriteEffect::Interrupt => {
                st.pci.irqs.signal(vpci::MSI_IRQ_INDEX);
            }
            WriteEffect::Reset => {
                drop(st);
                Self::reset(dev);
            }
            WriteEffect::None => {}
        }
    }

    /// Clears the registers; the running copy is cancelled under the state lock, so it stops
    /// and reports nothing; returns when no copy runs.
    fn reset(dev: &vfio::Device<Self>) {
        let mut st = dev.st.lock();
        st.regs.clear();
        dev.copier.abort();
        drop(st);
        dev.copier.cancel();
    }

    fn open(dev: &vfio::Device<Self>) -> Result {
        dev.pins.clear();
        Ok(())
    }

    fn close(dev: &vfio::Device<Self>) {
        dev.pins.clear();
    }

    fn unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        dev.pins.unmap(iova, length);
    }
}
