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
//!    piece per turn (RAM -> edu buffer -> RAM).
//! 4. **The mdev as a VFIO device** (`vfio_dev.rs`, [`MdevVfio`]): emulated config space and
//!    BAR0 register file (documented in `docs/sample-mdev.md`), region/IRQ info, SET_IRQS,
//!    RESET, `dma_unmap`.
//! 5. **The mdev driver** (`mdev_driver.rs`, [`MdevDriver`]): probe (PASID, VFIO device, sysfs
//!    attributes), remove.
//! 6. **The PCI driver** ([`EduParent`]) and the module (here).
//!
//! Measurement, not driver logic: `measure.rs` ([`CopyStats`]: what each copy costs the driver
//! itself, in debugfs `edu_mdev/<parent>`, with a CPU `memcpy` peer in `edu_mdev/peer_memcpy`).

use core::{
    fmt::Write,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering},
};
use kernel::{
    alloc::flags::GFP_KERNEL,
    auxdomain::{self, AuxDevice, AuxDomain, MsiSource, MsiWindow},
    c_str, debugfs, dev_err, dev_info, dev_warn,
    device::Device,
    devres::Devres,
    dma::Direction,
    eventfd::EventFd,
    ioasid::{OwnerKind, PasidSet},
    iommu,
    iommu::Prot,
    irq, mdev, new_condvar, new_mutex, new_work, pci,
    prelude::*,
    str::CStr,
    sync::{Arc, CondVar, Mutex},
    sysfs,
    time::{msecs_to_jiffies, Ktime},
    types::ARef,
    uaccess::{UserSliceReader, UserSliceWriter},
    vfio::{self, uapi},
    workqueue::{self, impl_has_work, Work, WorkItem},
};

// The copy engine's rules (validation, status codes, pieces), portable: the host tests of the
// PASID mode on the SMMUv3 model build the same file (`engine/tests/pasid_model.rs`).
#[path = "engine/src/copy_engine/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod copy_engine;
use copy_engine::{Access, Copy, CopyError};

module! {
    type: EduMdevModule,
    name: "edu_mdev",
    author: "pasid-mdev project",
    description: "Sample mediated device: edu shared by VFIO mdevs, one PASID each",
    license: "GPL",
}

// ---- 1. types and capacity -------------------------------------------------------------------

/// The page size (pieces, pinning, mappings).
const PAGE: u64 = kernel::page::PAGE_SIZE as u64;
/// Engine slots per parent; every mdev takes some.
const SLOTS: u32 = 8;
/// Most mdevs per parent (all small).
const MAX_MDEVS: usize = SLOTS as usize;

/// An mdev type: its sysfs names and the slots an instance takes.
struct EduType {
    desc: mdev::TypeDesc,
    slots: u32,
    description: &'static str,
}

const TYPES: [EduType; 2] = [
    EduType {
        desc: mdev::TypeDesc {
            sysfs_name: c_str!("small"),
            pretty_name: c_str!("edu-small"),
        },
        slots: 1,
        description: "virtual DMA copy engine, 1/8 of the edu engine",
    },
    EduType {
        desc: mdev::TypeDesc {
            sysfs_name: c_str!("large"),
            pretty_name: c_str!("edu-large"),
        },
        slots: 2,
        description: "virtual DMA copy engine, 2/8 of the edu engine",
    },
];
const TYPE_DESCS: [mdev::TypeDesc; 2] = [TYPES[0].desc, TYPES[1].desc];

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

// ---- 6. the PCI driver and the module ---------------------------------------------------------

/// Parents of this module (what the mdev callbacks, which get only a device, look up) and the
/// mdev driver they register with.
#[pin_data]
struct Registry {
    drv: Arc<mdev::DriverRegistration<MdevDriver>>,
    /// `edu_mdev/` in debugfs (None if debugfs is unavailable). Outlives every parent's and
    /// the module's files in it: the module drops them first.
    debugfs: Option<debugfs::Dir>,
    #[pin]
    parents: Mutex<[Option<Arc<ParentShared>>; 4]>,
}

/// Set while the module is loaded (see [`EduMdevModule`]).
static REGISTRY: AtomicPtr<Registry> = AtomicPtr::new(core::ptr::null_mut());

fn registry() -> Option<&'static Registry> {
    let p = REGISTRY.load(Ordering::Acquire);
    // SAFETY: non-null only while the module owns the pinned registry; the drivers whose
    // callbacks call this are unregistered before it is cleared and freed.
    (!p.is_null()).then(|| unsafe { &*p })
}

fn registry_find(parent: &Device) -> Option<Arc<ParentShared>> {
    let key = parent.as_raw_ptr();
    registry()?
        .parents
        .lock()
        .iter()
        .flatten()
        .find(|p| AsRef::<Device>::as_ref(&*p.pdev).as_raw_ptr() == key)
        .cloned()
}

/// The PCI driver's data for one edu.
struct EduParent {
    /// `Some` until drop; dropping it removes all mdevs of the parent.
    parent: Option<Pin<KBox<mdev::Parent<MdevDriver>>>>,
    shared: Arc<ParentShared>,
    /// edu's MSI, if it could be set up (freed after the engine stopped).
    irq: Option<Pin<KBox<irq::Registration<EduIrq>>>>,
    /// debugfs `edu_mdev/<parent>`: the driver time accounting.
    _stats: Option<debugfs::File<'static, CopyStats>>,
}

/// edu's interrupt: acknowledges it and wakes the engine worker.
struct EduIrq(Arc<ParentShared>);

impl irq::Handler for EduIrq {
    fn handle(&self) -> irq::IrqReturn {
        let p = &self.0;
        let Some(bar) = p.bar.try_access() else {
            return irq::IrqReturn::None;
        };
        let status = bar.read32(edu::IRQ_STATUS).unwrap_or(0);
        // edu-pasid's completion message leaves the interrupt status clear.
        if status == 0 && !p.message_armed.load(Ordering::Acquire) {
            return irq::IrqReturn::None;
        }
        if status != 0 {
            let _ = bar.write32(status, edu::IRQ_ACK);
        }
        p.irq_count.fetch_add(1, Ordering::Relaxed);
        p.irq_fired.store(true, Ordering::Release);
        p.irq_cv.notify_all();
        irq::IrqReturn::Handled
    }
}

kernel::pci_device_table!(
    EDU_IDS,
    EngineCaps,
    [
        (
            pci::DeviceId::from_id(edu::VENDOR_ID, edu::DEVICE_ID),
            EDU_ENGINE
        ),
        (
            pci::DeviceId::from_id(edu::VENDOR_ID, edu::PASID_DEVICE_ID),
            EDU_PASID_ENGINE
        ),
    ]
);

impl pci::Driver for EduParent {
    type IdInfo = EngineCaps;
    const ID_TABLE: pci::IdTable<EngineCaps> = EDU_IDS.table();

    fn probe(pdev: &pci::Device<pci::Core>, caps: &EngineCaps) -> Result<Pin<KBox<Self>>> {
        let reg = registry().ok_or(ENODEV)?;
        let shared = ParentShared::new(pdev, *caps)?;
        {
            let mut parents = reg.parents.lock();
            let free = parents.iter_mut().find(|p| p.is_none()).ok_or(ENOSPC)?;
            *free = Some(shared.clone());
        }
        let parent = KBox::pin_init(
            mdev::Parent::new(pdev.as_ref(), &reg.drv, &TYPE_DESCS),
            GFP_KERNEL,
        );
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
        let stats = reg.debugfs.as_ref().and_then(|dir| {
            let name = AsRef::<Device>::as_ref(pdev).name();
            dir.show_file(name, shared.stats.clone(), &STATS_FOPS)
                .inspect_err(|e| dev_err!(pdev, "edu_mdev: no debugfs stats file ({:?})\n", e))
                .ok()
        });
        let mut this = EduParent {
            parent: None,
            shared,
            irq,
            _stats: stats,
        };
        // On error `this` drops: taken out of the registry, engine stopped.
        this.parent = Some(parent?);
        dev_info!(
            pdev,
            "edu_mdev: mdev parent with types edu-small, edu-large ({} slots)\n",
            SLOTS
        );
        Ok(KBox::pin(this, GFP_KERNEL)?)
    }
}

impl Drop for EduParent {
    fn drop(&mut self) {
        // Removes every mdev (each waits for its user), then nothing can reach the engine.
        drop(self.parent.take());
        if let Some(reg) = registry() {
            for p in reg.parents.lock().iter_mut() {
                if p.as_ref().is_some_and(|p| Arc::ptr_eq(p, &self.shared)) {
                    *p = None;
                }
            }
        }
        self.shared.shutdown();
        drop(self.irq.take());
        dev_info!(
            &*self.shared.pdev,
            "edu_mdev: parent removed ({} edu completion interrupts)\n",
            self.shared.irq_count.load(Ordering::Relaxed)
        );
    }
}

struct EduMdevModule {
    pci: Option<Pin<KBox<pci::Registration<EduParent>>>>,
    /// debugfs `edu_mdev/peer_memcpy` (dropped before the registry that holds its directory).
    _peer: Option<debugfs::File<'static, PeerMemcpy>>,
    /// Owned here, reached through [`REGISTRY`] (kept alive until the drivers are gone).
    _registry: Pin<KBox<Registry>>,
}

impl kernel::Module for EduMdevModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let drv = mdev::DriverRegistration::<MdevDriver>::new_arc(module)?;
        let debugfs = debugfs::Dir::new(c_str!("edu_mdev"), None)
            .inspect_err(|e| pr_err!("edu_mdev: no debugfs directory ({:?})\n", e))
            .ok();
        let registry = KBox::pin_init(
            pin_init!(Registry { drv, debugfs, parents <- new_mutex!([const { None }; 4]) }),
            GFP_KERNEL,
        )?;
        REGISTRY.store(
            core::ptr::from_ref::<Registry>(&registry).cast_mut(),
            Ordering::Release,
        );
        let pci = KBox::pin_init(
            pci::Registration::<EduParent>::new(c_str!("edu"), module),
            GFP_KERNEL,
        );
        match pci {
            Ok(pci) => {
                // The directory lives in the registry, which `Self` drops after `_peer`.
                let peer = self::registry()
                    .and_then(|r| r.debugfs.as_ref())
                    .and_then(|dir| {
                        let data = Arc::new(PeerMemcpy, GFP_KERNEL).ok()?;
                        dir.show_file(c_str!("peer_memcpy"), data, &PEER_FOPS)
                            .inspect_err(|e| pr_err!("edu_mdev: no peer_memcpy file ({:?})\n", e))
                            .ok()
                    });
                Ok(Self {
                    pci: Some(pci),
                    _peer: peer,
                    _registry: registry,
                })
            }
            Err(e) => {
                REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
                Err(e)
            }
        }
    }
}

impl Drop for EduMdevModule {
    fn drop(&mut self) {
        // Unbinds every edu (removing their mdevs) before the registry goes.
        drop(self.pci.take());
        REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
        // `_registry` drops after this: the mdev driver is unregistered last.
    }
}

// Measurement (`measure.rs`): the debugfs files' operations.
// The debugfs files' operations, owned by this module: `rmmod` fails with `EBUSY` while
// one is open, so closing it later never calls into a freed module.
kernel::debugfs_show_fops!(STATS_FOPS, CopyStats);
kernel::debugfs_show_fops!(PEER_FOPS, PeerMemcpy);
