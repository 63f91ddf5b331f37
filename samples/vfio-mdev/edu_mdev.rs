// SPDX-License-Identifier: GPL-2.0

//! Sample mediated PCI device: QEMU's `edu` (1234:11e8) or the lab QEMU's `edu-pasid` (1234:11e9,
//! `docs/pasid-device.md`) shared by several VFIO mdevs, one PASID per mdev, each mdev a virtual
//! DMA copy engine whose copies the parent does for it: on edu by mediating them (the parent
//! pins and maps the user's pages for itself), on edu-pasid with DMA tagged with the mdev's
//! PASID, translated by the mdev's own auxiliary domain at the user's IOVAs.
//!
//! The crate root (this file) holds the types, the module parameters and the PCI driver with
//! the module; the rest is split by concern under `edu_mdev/`, read in this order:
//!
//! 1. **Types and capacity** (here): the engine has [`SLOTS`] slots; `edu-small` takes 1,
//!    `edu-large` takes 2. `available_instances` is what is left.
//! 2. **Backend** (`backend.rs`): [`Backend`] hides how the engine reaches an mdev's memory:
//!    [`Mediated`] (the parent pins the user's pages and DMA-maps them for itself; what edu
//!    gets) or [`PasidAux`] (an IOMMU domain attached at the mdev's PASID; edu-pasid behind an
//!    SMMUv3 with SubstreamIDs). The engine's capabilities ([`EngineCaps`]) and the platform
//!    choose.
//! 3. **The parent and its engine** (`engine.rs`): [`ParentShared`] (the PCI device, its BAR,
//!    the PASID set, the mdev slots and the engine queue with its worker) and
//!    [`ParentShared::run_engine`]: one work item serving all mdevs in turn, one page-sized
//!    piece per turn (RAM -> edu buffer -> RAM), pinning through each mdev's `vfio::PinGate`
//!    and sleeping on a `sync::Completion` that edu's interrupt completes.
//! 4. **The mdev as a VFIO device** (`vfio_dev.rs`, [`MdevVfio`]): the copy engine's
//!    registers (the portable `RegFile`, documented in `docs/sample-mdev.md`) and what a write
//!    starts, RESET, `dma_unmap`; config space, region/IRQ info and SET_IRQS are the
//!    framework's (`vfio::pci::RegisterDeviceOps`).
//! 5. **The mdev driver** (`mdev_driver.rs`, [`MdevDriver`]): probe (PASID, VFIO device, sysfs
//!    attributes), remove.
//! 6. **The parent** (here): edu's PCI side ([`EduParent`], the parent's data) and the module,
//!    through `kernel::mdev::parent` (no registry of parents: callbacks get their parent's data).
//!
//! Measurement, not driver logic: `measure.rs` ([`CopyStats`]: what each copy costs the driver
//! itself, in debugfs `edu_mdev/<parent>`, with a CPU `memcpy` peer in `edu_mdev/peer_memcpy`).

use core::{
    fmt::Write,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};
use kernel::{
    alloc::flags::GFP_KERNEL,
    auxdomain::{self, AuxDevice, AuxDomain, MsiSource, MsiWindow},
    c_str, debugfs, dev_err, dev_info, dev_warn,
    device::{Core, Device},
    devres::Devres,
    dma::DataDirection,
    ioasid::{OwnerKind, PasidSet},
    iommu,
    iommu::Prot,
    irq, mdev,
    mdev::parent::{
        AttributeGroup, Capacity, MdevAttribute, ModuleData, ModuleMdev, ParentDriver,
        PciParentDriver, Reserved, TypeInfo,
    },
    new_mutex, new_work, pci,
    prelude::*,
    str::CStr,
    sync::{Arc, Completion, Mutex},
    sync_ext::WorkFlush,
    sysfs,
    time::{msecs_to_jiffies, Ktime},
    types::ARef,
    vfio::{self, pci as vpci},
    workqueue::{self, impl_has_work, Work, WorkItem},
};

// The copy engine's rules (validation, status codes, pieces), portable: the host tests of the
// PASID mode on the SMMUv3 model build the same file (`engine/tests/pasid_model.rs`).
#[path = "engine/src/copy_engine/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod copy_engine;
use copy_engine::{
    regfile::{RegFile, WriteEffect},
    Access, Copy, CopyError,
};

// ---- 1. types and capacity -------------------------------------------------------------------

/// The page size (pieces, pinning, mappings).
const PAGE: u64 = kernel::page::PAGE_SIZE as u64;
/// Engine slots per parent; every mdev takes some.
const SLOTS: u32 = 8;
/// Most mdevs per parent (all small).
const MAX_MDEVS: usize = SLOTS as usize;

/// An mdev type's data: the slots an instance takes, for people its name and description.
struct EduType {
    name: &'static str,
    slots: u32,
    description: &'static str,
}

const TYPES: [TypeInfo<EduType>; 2] = [
    TypeInfo::new(
        c_str!("small"),
        c_str!("edu-small"),
        EduType {
            name: "edu-small",
            slots: 1,
            description: "virtual DMA copy engine, 1/8 of the edu engine",
        },
    ),
    TypeInfo::new(
        c_str!("large"),
        c_str!("edu-large"),
        EduType {
            name: "edu-large",
            slots: 2,
            description: "virtual DMA copy engine, 2/8 of the edu engine",
        },
    ),
];

/// PASIDs handed to mdevs (0 is the RID's).
const PASID_RANGE: core::ops::RangeInclusive<u32> = 1..=(1 << 20) - 1;

// Module parameters (`/sys/module/edu_mdev/parameters/`).
kernel::module_param_bool!(ALLOW_UNSAFE_INTERRUPTS, "allow_unsafe_interrupts", 0o644);
kernel::module_param_bool!(INJECT_UNMAPPED_DST, "inject_unmapped_dst", 0o644);
kernel::module_param_bool!(INJECT_NO_DOORBELL, "inject_no_doorbell", 0o644);

// edu's and edu-pasid's registers (QEMU `hw/misc/edu.c`, docs/pasid-device.md), declared
// once for the samples, the test modules and the qtest client.
#[path = "edu-regs/src/edu_regs/mod.rs"]
mod edu;

// ---- 2.-5. the driver, by concern (`edu_mdev/`) -----------------------------------------------

#[path = "edu_mdev/backend.rs"]
mod backend;
#[path = "edu_mdev/engine.rs"]
mod engine;
#[path = "edu_mdev/mdev_driver.rs"]
mod mdev_driver;
/// Measurement only (driver time accounting), apart from the driver logic.
#[path = "edu_mdev/measure.rs"]
mod measure;
#[path = "edu_mdev/vfio_dev.rs"]
mod vfio_dev;
use backend::*;
use engine::*;
use mdev_driver::*;
use measure::*;
use vfio_dev::*;

// ---- 6. the parent (edu's PCI side) and the module -------------------------------------------

kernel::module_mdev_pci_driver! {
    mdev: MdevDriver, data: EduModule, driver: "edu",
    pci_ids: [(edu::VENDOR_ID, edu::DEVICE_ID), (edu::VENDOR_ID, edu::PASID_DEVICE_ID)],
    name: "edu_mdev", author: "pasid-mdev project",
    description: "Sample mediated device: edu shared by VFIO mdevs, one PASID each",
    license: "GPL",
}

/// What the module owns besides its drivers: debugfs `edu_mdev/` (the parents' files go in
/// it) and `edu_mdev/peer_memcpy`. `None`s if debugfs is unavailable.
struct EduModule {
    // Field order: the file before its directory.
    _peer: Option<debugfs::DirFile<PeerMemcpy>>,
    debugfs: Option<Arc<debugfs::Dir>>,
}

impl ModuleData for EduModule {
    fn new(_module: &'static ThisModule) -> Result<Self> {
        let debugfs = debugfs::Dir::new(c_str!("edu_mdev"), None)
            .inspect_err(|e| pr_err!("edu_mdev: no debugfs directory ({:?})\n", e))
            .ok()
            .and_then(|dir| Arc::new(dir, GFP_KERNEL).ok());
        let peer = debugfs.as_ref().and_then(|dir| {
            let data = Arc::new(PeerMemcpy, GFP_KERNEL).ok()?;
            debugfs::Dir::show_file_in(dir, c_str!("peer_memcpy"), data, &PEER_FOPS)
                .inspect_err(|e| pr_err!("edu_mdev: no peer_memcpy file ({:?})\n", e))
                .ok()
        });
        Ok(Self {
            _peer: peer,
            debugfs,
        })
    }
}

/// The parent's data, for one bound edu (or edu-pasid): the shared state, edu's interrupt and
/// the debugfs stats file. The framework drops it after every mdev of the parent is removed.
struct EduParent {
    shared: Arc<ParentShared>,
    /// edu's MSI, if it could be set up (freed after the engine stopped).
    irq: Option<Pin<KBox<irq::Registration<EduIrq>>>>,
    /// debugfs `edu_mdev/<parent>`: the driver time accounting.
    _stats: Option<debugfs::DirFile<CopyStats>>,
}

/// edu's interrupt: acknowledges it and wakes the engine worker.
struct EduIrq(Arc<ParentShared>);

impl irq::Handler for EduIrq {
    fn handle(&self) -> irq::IrqReturn {
        let p = &self.0;
        let Some(bar) = p.bar.try_access() else {
            return irq::IrqReturn::None;
        };
        let status = bar.read32(edu::IRQ_STATUS);
        // edu-pasid's completion message leaves the interrupt status clear.
        if status == 0 && !p.message_armed.load(Ordering::Acquire) {
            return irq::IrqReturn::None;
        }
        if status != 0 {
            bar.write32(status, edu::IRQ_ACK);
        }
        p.irq_count.fetch_add(1, Ordering::Relaxed);
        p.dma_done.complete_all();
        irq::IrqReturn::Handled
    }
}

impl PciParentDriver for MdevDriver {
    fn parent_data(pdev: &pci::Device<Core>) -> Result<EduParent> {
        // The engine's capabilities, by device.
        let caps = if pdev.device_id() == edu::PASID_DEVICE_ID {
            EDU_PASID_ENGINE
        } else {
            EDU_ENGINE
        };
        let shared = ParentShared::new(pdev, caps)?;
        // edu's MSI completes the engine's DMAs; without it the engine polls.
        let irq = pdev
            .alloc_irq_vectors(1, 1, pci::IrqTypes::MSI)
            .and_then(|_| pdev.request_irq(0, c_str!("edu_mdev"), EduIrq(shared.clone())))
            .and_then(|init| KBox::pin_init(init, GFP_KERNEL));
        let irq = match irq {
            Ok(irq) => Some(irq),
            Err(e) => {
                dev_info!(
                    pdev,
                    "edu_mdev: no MSI ({:?}), polling edu's DMA status\n",
                    e
                );
                None
            }
        };
        let module = Self::module_data()?;
        let stats = module.debugfs.as_ref().and_then(|dir| {
            let name = pdev.as_ref().name();
            debugfs::Dir::show_file_in(dir, name, shared.stats.clone(), &STATS_FOPS)
                .inspect_err(|e| dev_err!(pdev, "edu_mdev: no debugfs stats file ({:?})\n", e))
                .ok()
        });
        dev_info!(
            pdev,
            "edu_mdev: mdev parent with types edu-small, edu-large ({} slots)\n",
            SLOTS
        );
        Ok(EduParent {
            shared,
            irq,
            _stats: stats,
        })
    }
}

impl Drop for EduParent {
    fn drop(&mut self) {
        // Every mdev is gone (the framework removed them first): nothing can reach the engine.
        self.shared.shutdown();
        drop(self.irq.take());
        dev_info!(
            &*self.shared.pdev,
            "edu_mdev: parent removed ({} edu completion interrupts)\n",
            self.shared.irq_count.load(Ordering::Relaxed)
        );
    }
}

// Measurement (`measure.rs`): the debugfs files' operations.
// The debugfs files' operations, owned by this module: `rmmod` fails with `EBUSY` while
// one is open, so closing it later never calls into a freed module.
kernel::debugfs_show_fops!(STATS_FOPS, CopyStats);
kernel::debugfs_show_fops!(PEER_FOPS, PeerMemcpy);
