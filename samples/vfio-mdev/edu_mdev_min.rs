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

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    c_str,
    delay::msleep,
    device,
    devres::Devres,
    dma::Direction,
    iommu::Prot,
    mdev,
    mdev::parent::{ParentDriver, Registration, TypeInfo},
    new_mutex, pci,
    prelude::*,
    sync::{Arc, Mutex},
    sync_ext::{Job, JobWorker},
    types::ARef,
    uaccess::{UserSliceReader, UserSliceWriter},
    vfio::{self, pci as vpci, uapi},
};

// The copy engine's portable rules and edu's registers, shared with the tests (docs/portable-code.md).
#[path = "engine/src/copy_engine/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod copy_engine;
#[path = "edu-regs/src/edu_regs/mod.rs"]
mod edu;
use copy_engine::{
    regfile::{RegFile, WriteEffect},
    Copy, CopyError,
};

// ---- 1. the module and the mdev type ------------------------------------------------------

kernel::module_mdev_pci_driver! {
    pci: EduPci, mdev: EduMdev, driver: "edu",
    name: "edu_mdev_min", author: "pasid-mdev project",
    description: "Minimal sample mediated device: edu's DMA as a copy engine per mdev",
    license: "GPL",
}

const MAX_MDEVS: u32 = 8;
const PAGE: u64 = kernel::page::PAGE_SIZE as u64;

/// The mdev driver: one type; an mdev is its registered VFIO device.
struct EduMdev;

impl ParentDriver for EduMdev {
    type ParentData = Arc<Edu>;
    type TypeData = ();
    type Data = vfio::Registration<Mdev>;
    const NAME: &'static CStr = c_str!("edu_mdev_min");
    const DEVICE_API: &'static CStr = c_str!("vfio-pci");
    const TYPES: &'static [TypeInfo<()>] = &[TypeInfo {
        desc: mdev::TypeDesc {
            sysfs_name: c_str!("small"),
            pretty_name: c_str!("edu-small"),
        },
        data: (),
    }];

    fn probe(edu: &Arc<Edu>, mdev: &mdev::Device, _ty: &()) -> Result<Self::Data> {
        let take = |n| (n < MAX_MDEVS).then_some(n + 1);
        edu.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, take)
            .map_err(|_| ENOSPC)?;
        let init = try_pin_init!(Mdev {
            edu: edu.clone(),
            copier: JobWorker::new()?,
            piece <- new_mutex!(()),
            fence: vfio::UnmapFence::new()?,
            st <- new_mutex!(State::new(0)),
        });
        let reg = vfio::Device::new(mdev.as_ref(), init).and_then(|d| vfio::Registration::new(&d));
        reg.inspect_err(|_| {
            edu.used.fetch_sub(1, Ordering::AcqRel);
        })
    }

    fn remove(edu: &Arc<Edu>, _mdev: &mdev::Device, reg: Self::Data) {
        drop(reg); // Waits until the user closed the device.
        edu.used.fetch_sub(1, Ordering::AcqRel);
    }

    fn available(edu: &Arc<Edu>, _ty: &()) -> u32 {
        MAX_MDEVS.saturating_sub(edu.used.load(Ordering::Acquire))
    }
}

// ---- 2. the parent: edu -------------------------------------------------------------------

/// The parent's data: edu's registers, its one DMA engine and the mdevs' count.
#[pin_data]
struct Edu {
    dev: ARef<device::Device>,
    bar: Devres<pci::Bar>,
    /// Held while a piece is on edu: one piece at a time, the mdevs take turns.
    #[pin]
    engine: Mutex<()>,
    used: AtomicU32,
}

/// The PCI driver: binds edu and owns the mdev parent (unregistered, mdevs first, on unbind).
struct EduPci {
    _parent: Pin<KBox<Registration<EduMdev>>>,
}

kernel::pci_device_table!(
    EDU_IDS,
    (),
    [(pci::DeviceId::from_id(edu::VENDOR_ID, edu::DEVICE_ID), ())]
);

impl pci::Driver for EduPci {
    type IdInfo = ();
    const ID_TABLE: pci::IdTable<()> = EDU_IDS.table();

    fn probe(pdev: &pci::Device<pci::Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        pdev.enable_device()?;
        pdev.set_master()?;
        pdev.dma_set_mask(edu::DMA_BITS)?;
        let edu = Arc::pin_init(
            try_pin_init!(Edu {
                dev: ARef::from(pdev.as_ref()),
                bar: pdev.iomap_region(0, 0, c_str!("edu_mdev_min"))?,
                engine <- new_mutex!(()),
                used: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )?;
        let parent = Registration::new(pdev.as_ref(), &EduMdev::mdev_driver()?, edu)?;
        Ok(KBox::pin(EduPci { _parent: parent }, GFP_KERNEL)?)
    }
}

impl Edu {
    /// One edu DMA of `len` bytes (`cmd`: `DMA_START`, plus `DMA_TO_RAM` for buffer -> RAM),
    /// polled until done (edu takes 100 ms of virtual time).
    fn dma(&self, src: u64, dst: u64, len: u64, cmd: u64) -> Result<(), CopyError> {
        // The BAR is reached per access: its guard must not be held while sleeping.
        let failed = |_| CopyError::Device;
        let program = [
            (src, edu::DMA_SRC),
            (dst, edu::DMA_DST),
            (len, edu::DMA_COUNT),
            (cmd, edu::DMA_CMD),
        ];
        let bar = self.bar.access().map_err(failed)?;
        for (val, reg) in program {
            bar.write64(val, reg).map_err(failed)?;
        }
        drop(bar);
        for _ in 0..300 {
            let cmd = self.bar.access().and_then(|b| b.read64(edu::DMA_CMD));
            if cmd.map_err(failed)? & edu::DMA_START == 0 {
                return Ok(());
            }
            msleep(10);
        }
        Err(CopyError::Device)
    }
}

// ---- 3. the copy engine: one job at a time per mdev, one page-sized piece at a time ---------

/// A started copy, run by the mdev's `JobWorker`: the device it belongs to (kept alive until
/// the copy ends).
struct CopyJob {
    vdev: ARef<vfio::Device<Mdev>>,
    copy: Copy,
    irq: bool,
    gen: u64,
}

impl Job for CopyJob {
    fn run(self) {
        let r = self.copy();
        let mut st = self.vdev.st.lock();
        if st.gen == self.gen {
            st.finish(self.irq, r.err());
        }
    }
}

impl CopyJob {
    /// Checks every page is mapped, then copies piece by piece; stops at a reset.
    fn copy(&self) -> Result<(), CopyError> {
        let dev = &self.vdev;
        for (first, n, access) in self.copy.page_spans(PAGE) {
            let prot = if access == copy_engine::Access::Read {
                Prot::READ
            } else {
                Prot::READ | Prot::WRITE
            };
            let _guard = dev.piece.lock();
            if dev.fence.blocks(first, n as u64 * PAGE) || dev.pin_pages(first, n, prot).is_err() {
                return Err(CopyError::Unmapped);
            }
        }
        let mut done = 0;
        while let Some(p) = self.copy.piece(done, PAGE, edu::DMA_BUF_SIZE as u64) {
            if dev.st.lock().gen != self.gen {
                return Err(CopyError::Aborted);
            }
            let (sp, dp) = (p.src_page(PAGE), p.dst_page(PAGE));
            let _guard = dev.piece.lock();
            if dev.fence.blocks(sp, PAGE) || dev.fence.blocks(dp, PAGE) {
                return Err(CopyError::Unmapped);
            }
            let unmapped = |_| CopyError::Unmapped;
            let dst = dev
                .pin_pages(dp, 1, Prot::READ | Prot::WRITE)
                .map_err(unmapped)?;
            let src = dev.pin_pages(sp, 1, Prot::READ).map_err(unmapped)?;
            let edu = &dev.edu;
            let failed = |_| CopyError::Device;
            let d = dst
                .dma_map(0, &edu.dev, Direction::Bidirectional)
                .map_err(failed)?;
            let s = src
                .dma_map(0, &edu.dev, Direction::ToDevice)
                .map_err(failed)?;
            let _engine = edu.engine.lock();
            edu.dma(
                s.dma_addr() + p.src % PAGE,
                edu::DMA_BUF,
                p.len,
                edu::DMA_START,
            )?;
            let to_ram = edu::DMA_START | edu::DMA_TO_RAM;
            edu.dma(edu::DMA_BUF, d.dma_addr() + p.dst % PAGE, p.len, to_ram)?;
            done += p.len;
        }
        Ok(())
    }
}

// ---- 4. the mdev's VFIO device: config space, BAR0 register file, interrupts ---------------

const BAR0_SIZE: u32 = 0x1000;
static IRQS: [u32; 2] = [vpci::MSI_IRQ_INDEX, vpci::REQ_IRQ_INDEX];

/// An mdev's config space, copy-engine registers (portable: `copy_engine::regfile`) and
/// eventfds.
struct State {
    cfg: vpci::ConfigSpace,
    regs: RegFile,
    irqs: vpci::IrqEventfds,
    /// Bumped by a reset: a copy of an older generation stops and reports nothing.
    gen: u64,
}

impl State {
    fn new(gen: u64) -> Self {
        let mut cfg = vpci::ConfigSpace::new(edu::VENDOR_ID, 0xed01, 0x08_80_00, 1);
        // Constant, valid arguments: these cannot fail.
        let _ = cfg.add_bar32(0, BAR0_SIZE).and_then(|()| cfg.add_msi(0x40));
        Self {
            cfg,
            regs: RegFile::default(),
            irqs: vpci::IrqEventfds::new(&IRQS),
            gen,
        }
    }

    /// The copy ended: `STATUS`, and the MSI if it asked for it.
    fn finish(&mut self, irq: bool, err: Option<CopyError>) {
        self.regs.finish(err);
        if irq {
            self.irqs.signal(vpci::MSI_IRQ_INDEX);
        }
    }
}

/// The VFIO device of an mdev.
#[pin_data]
struct Mdev {
    edu: Arc<Edu>,
    copier: Arc<JobWorker<CopyJob>>,
    /// Held while a copy has pages pinned: `dma_unmap` waits on it.
    #[pin]
    piece: Mutex<()>,
    fence: vfio::UnmapFence,
    #[pin]
    st: Mutex<State>,
}

impl Mdev {
    /// A reset: clears the registers (and the eventfds unless `keep_irqs`); the running copy
    /// sees a new generation and stops; returns when no copy runs.
    fn reset(dev: &vfio::Device<Self>, keep_irqs: bool) {
        {
            let mut st = dev.st.lock();
            st.regs.clear();
            st.gen += 1;
            if !keep_irqs {
                st.irqs.clear();
            }
        }
        dev.copier.cancel();
    }

    /// A register write; a started copy is queued under the state lock (a reset bumps the
    /// generation under it too, so the copy is either aborted by the reset or started after).
    fn write_reg(dev: &vfio::Device<Self>, off: u64, val: u32) {
        let mut st = dev.st.lock();
        match st.regs.write(off, val) {
            WriteEffect::Start { copy, irq } => {
                dev.copier.submit(CopyJob {
                    vdev: dev.into(),
                    copy,
                    irq,
                    gen: st.gen,
                });
            }
            WriteEffect::Interrupt => {
                st.irqs.signal(vpci::MSI_IRQ_INDEX);
            }
            WriteEffect::Reset => {
                drop(st);
                Self::reset(dev, true);
            }
            WriteEffect::None => {}
        }
    }

    fn region_size(index: u32) -> u64 {
        match index {
            vpci::BAR0_REGION_INDEX => u64::from(BAR0_SIZE),
            vpci::CONFIG_REGION_INDEX => vpci::CONFIG_SIZE as u64,
            _ => 0,
        }
    }
}

impl vfio::DeviceOps for Mdev {
    const NAME: &'static CStr = c_str!("edu-mdev-min");

    fn open_device(dev: &vfio::Device<Self>) -> Result {
        dev.fence.clear();
        let mut st = dev.st.lock();
        *st = State::new(st.gen + 1);
        Ok(())
    }

    fn close_device(dev: &vfio::Device<Self>) {
        Self::reset(dev, false);
        dev.fence.clear();
    }

    fn read(dev: &vfio::Device<Self>, mut buf: UserSliceWriter, pos: u64) -> Result<usize> {
        let a = vpci::RegionAccess::decode(pos, buf.len(), Self::region_size)?;
        match a.index {
            vpci::CONFIG_REGION_INDEX => dev.st.lock().cfg.read_user(&a, &mut buf),
            _ => a.read_u32(&mut buf, |off| dev.st.lock().regs.read(off, 0)),
        }
    }

    fn write(dev: &vfio::Device<Self>, mut buf: UserSliceReader, pos: u64) -> Result<usize> {
        let a = vpci::RegionAccess::decode(pos, buf.len(), Self::region_size)?;
        match a.index {
            vpci::CONFIG_REGION_INDEX => dev.st.lock().cfg.write_user(&a, &mut buf),
            _ => {
                let val = a.write_u32(&mut buf)?;
                Self::write_reg(dev, a.offset, val);
                Ok(4)
            }
        }
    }

    fn ioctl(dev: &vfio::Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::DEVICE_SET_IRQS => dev.st.lock().irqs.set_irqs_from_user(arg),
            uapi::DEVICE_RESET => {
                Self::reset(dev, true);
                Ok(0)
            }
            _ => {
                let irq_count = |i| u32::from(IRQS.contains(&i));
                vpci::info_ioctl(cmd, arg, Self::region_size, irq_count).unwrap_or(Err(ENOTTY))
            }
        }
    }

    fn request(dev: &vfio::Device<Self>, _count: u32) {
        dev.st.lock().irqs.signal(vpci::REQ_IRQ_INDEX);
    }

    fn dma_unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        // Fence the range, then wait for a piece holding pins: nothing stays pinned in it.
        dev.fence.begin(iova, length);
        drop(dev.piece.lock());
    }
}
