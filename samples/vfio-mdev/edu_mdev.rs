// SPDX-License-Identifier: GPL-2.0

//! Sample mediated PCI device: QEMU's `edu` (1234:11e8) or the lab QEMU's `edu-pasid` (1234:11e9,
//! `docs/pasid-device.md`) shared by several VFIO mdevs, one PASID per mdev, each mdev a virtual
//! DMA copy engine whose copies the parent does for it: on edu by mediating them (the parent
//! pins and maps the user's pages for itself), on edu-pasid with DMA tagged with the mdev's
//! PASID, translated by the mdev's own auxiliary domain at the user's IOVAs.
//!
//! Read it top to bottom:
//!
//! 1. **Types and capacity**: the engine has [`SLOTS`] slots; `edu-small` takes 1, `edu-large`
//!    takes 2. `available_instances` is what is left.
//! 2. **Backend**: [`Backend`] hides how the engine reaches an mdev's memory: [`Mediated`] (the
//!    parent pins the user's pages and DMA-maps them for itself; what edu gets) or [`PasidAux`]
//!    (an IOMMU domain attached at the mdev's PASID; edu-pasid behind an SMMUv3 with
//!    SubstreamIDs). The engine's capabilities ([`EngineCaps`]) and the platform choose.
//! 3. **The parent** ([`ParentShared`]): the PCI device, its BAR, the PASID set, the mdev slots
//!    and the engine queue with its worker.
//! 4. **The engine** ([`ParentShared::run_engine`]): one work item serving all mdevs in turn,
//!    one page-sized piece per turn (RAM -> edu buffer -> RAM).
//! 5. **The mdev as a VFIO device** ([`MdevVfio`]): emulated config space and BAR0 register file
//!    (documented in `docs/sample-mdev.md`), region/IRQ info, SET_IRQS, RESET, `dma_unmap`.
//! 6. **The mdev driver** ([`MdevDriver`]): probe (PASID, VFIO device, sysfs attributes), remove.
//! 7. **The PCI driver** ([`EduParent`]) and the module.
//! 8. **Driver time accounting** ([`CopyStats`]): what each copy costs the driver itself, in
//!    debugfs (`edu_mdev/<parent>`), with a CPU `memcpy` peer (`edu_mdev/peer_memcpy`).

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
    iommu::Prot,
    iommu, irq, mdev, new_condvar, new_mutex, new_work, pci,
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

// ---- 2. the backend: how the engine reaches an mdev's memory ---------------------------------

/// A device address for one page of an mdev's I/O address space, valid while it lives.
enum Mapped<'a> {
    /// Mediated mode: the parent's own DMA mapping of the pinned page.
    Dma(vfio::PinnedPageDma<'a>),
    /// PASID mode: the page is mapped at its IOVA in the mdev's auxiliary domain, unmapped (and
    /// the IOTLB invalidated) on drop.
    Pasid {
        iova: u64,
        pasid: u32,
        aux: &'a PasidAux,
    },
    /// Fault injection only: an IOVA deliberately left unmapped.
    Unmapped { iova: u64 },
}

impl Mapped<'_> {
    fn addr(&self) -> u64 {
        match self {
            Mapped::Dma(m) => m.dma_addr(),
            Mapped::Pasid { iova, .. } | Mapped::Unmapped { iova } => *iova,
        }
    }
}

impl Drop for Mapped<'_> {
    fn drop(&mut self) {
        if let Mapped::Pasid { iova, pasid, aux } = self {
            aux.unmap(*pasid, *iova);
        }
    }
}

/// How the parent's engine reaches the memory of an mdev.
trait Backend: Send + Sync {
    /// `pasid` or `mediated` (the mdev's `mode` attribute).
    fn mode(&self) -> &'static str;
    /// The engine's DMA for an mdev is tagged with the mdev's PASID (and the addresses it is
    /// programmed with are the user's IOVAs, translated by the mdev's domain).
    fn tags_dma(&self) -> bool {
        false
    }
    /// An mdev got `pasid`.
    fn attach(&self, pasid: u32) -> Result;
    /// The mdev with `pasid` goes away.
    fn detach(&self, pasid: u32);
    /// The engine's completion interrupt for a DMA tagged with `pasid`, as a PASID-tagged
    /// message (address in the mdev's domain, data); `None`: the parent's PCI MSI.
    fn completion_message(&self, _pasid: u32) -> Option<(u64, u32)> {
        None
    }
    /// Makes pinned page `page` (at `iova` of the mdev) reachable by the engine.
    fn map<'a>(
        &'a self,
        pasid: u32,
        page: &'a vfio::PinnedPages<'_, MdevVfio>,
        iova: u64,
        dir: Direction,
    ) -> Result<Mapped<'a>>;
}

/// No PASID on the platform: the parent pins the mdev's pages and maps them with its own (RID)
/// DMA mapping. Isolation comes from the pinning: only IOVAs the mdev's user mapped resolve.
struct Mediated {
    dev: ARef<Device>,
}

impl Backend for Mediated {
    fn mode(&self) -> &'static str {
        "mediated"
    }
    fn attach(&self, _pasid: u32) -> Result {
        Ok(())
    }
    fn detach(&self, _pasid: u32) {}
    fn map<'a>(
        &'a self,
        _pasid: u32,
        page: &'a vfio::PinnedPages<'_, MdevVfio>,
        _iova: u64,
        dir: Direction,
    ) -> Result<Mapped<'a>> {
        Ok(Mapped::Dma(page.dma_map(0, &self.dev, dir)?))
    }
}

/// PASID-capable platform: each mdev's PASID gets its own auxiliary domain
/// (`kernel::auxdomain`: MSI window, doorbells and the no-snoop policy per domain); pinned pages
/// are mapped there at the user's IOVA for one piece and the engine issues PASID-tagged DMA to
/// the IOVA. The engine's completion interrupt is edu-pasid's PASID-tagged message, whose
/// doorbell each domain binds (`msi_activate`): an mdev's completion reaches the CPU only
/// through its own domain. Selected for edu-pasid on the lab's PASID platform (`run.sh --platform pasid`);
/// the same flow runs on the SMMUv3 model in `engine/tests/pasid_model.rs`.
#[pin_data]
struct PasidAux {
    dev: AuxDevice,
    #[pin]
    /// Per mdev: PASID, domain, completion message (address, data, doorbell bound).
    domains: Mutex<[Option<(u32, AuxDomain, Option<(u64, u32, bool)>)>; MAX_MDEVS]>,
}

impl PasidAux {
    fn unmap(&self, pasid: u32, iova: u64) {
        let mut d = self.domains.lock();
        if let Some((_, dom, _)) = d.iter_mut().flatten().find(|(p, ..)| *p == pasid) {
            // Errors are logged by the layer; nothing else can be done from a drop.
            let _ = dom.unmap((), iova, PAGE);
        }
    }

    /// Binds the parent's MSI doorbell (vector 0, as the kernel programmed it) in `dom` for
    /// the completion message tagged with `pasid`; returns the message. `None`, logged, if the
    /// parent has no MSI or the binding fails: completions are then the PCI MSI, or polled.
    /// Fault injection (`inject_no_doorbell`): the binding is dropped at once, the message
    /// kept, so the mdev's completions fault in its domain.
    fn bind_doorbell(&self, dom: &mut AuxDomain, pasid: u32) -> Option<(u64, u32, bool)> {
        let (doorbell, data) = self.dev.msi_doorbell(0).ok()?;
        let src = MsiSource::Queue { pasid, queue: 0 };
        let addr = dom.msi_activate(&self.dev, src, doorbell).ok()?;
        let bound = !INJECT_NO_DOORBELL.get() || dom.msi_deactivate((), &self.dev, src).is_err();
        Some((addr, data, bound))
    }
}

impl Backend for PasidAux {
    fn mode(&self) -> &'static str {
        "pasid"
    }
    fn tags_dma(&self) -> bool {
        true
    }
    fn attach(&self, pasid: u32) -> Result {
        let mut dom = AuxDomain::new(self.dev.device(), MsiWindow::default())?;
        // Coherency is enforced before the first mapping when the IOMMU can (VFIO's rule).
        if self.dev.snoop_control() {
            dom.enforce_cache_coherency(())?;
        }
        dom.attach(&self.dev, pasid)?;
        let msg = self.bind_doorbell(&mut dom, pasid);
        let mut d = self.domains.lock();
        let free = d.iter_mut().find(|s| s.is_none()).ok_or(ENOSPC)?;
        *free = Some((pasid, dom, msg));
        Ok(())
    }
    fn detach(&self, pasid: u32) {
        let mut d = self.domains.lock();
        if let Some(s) = d
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|(p, ..)| *p == pasid))
        {
            if let Some((_, dom, Some((.., true)))) = s {
                // Errors are logged by the layer; dropping the domain unbinds what is left.
                let _ = dom.msi_deactivate((), &self.dev, MsiSource::Queue { pasid, queue: 0 });
            }
            // Dropping the domain detaches it from the PASID and frees it.
            *s = None;
        }
    }
    fn completion_message(&self, pasid: u32) -> Option<(u64, u32)> {
        let d = self.domains.lock();
        let msg = d.iter().flatten().find(|(p, ..)| *p == pasid).and_then(|(.., m)| *m);
        msg.map(|(addr, data, _)| (addr, data))
    }
    fn map<'a>(
        &'a self,
        pasid: u32,
        page: &'a vfio::PinnedPages<'_, MdevVfio>,
        iova: u64,
        dir: Direction,
    ) -> Result<Mapped<'a>> {
        let prot = if dir == Direction::ToDevice {
            auxdomain::Prot::READ
        } else {
            auxdomain::Prot::READ | auxdomain::Prot::WRITE
        };
        let phys = page.phys(0).ok_or(EINVAL)?;
        let mut d = self.domains.lock();
        let (_, dom, _) = d
            .iter_mut()
            .flatten()
            .find(|(p, ..)| *p == pasid)
            .ok_or(ENODEV)?;
        dom.map(iova, phys, PAGE, prot)?;
        Ok(Mapped::Pasid {
            iova,
            pasid,
            aux: self,
        })
    }
}

/// What the parent's DMA engine can do: the backend is chosen from it and the platform. The
/// PCI ID table gives each device its engine's capabilities.
#[derive(Clone, Copy)]
struct EngineCaps {
    /// The device, for the log.
    name: &'static str,
    /// The engine tags each DMA request with a PASID (a PCIe PASID TLP prefix), so the mdev's
    /// auxiliary domain translates it. Without it, PASID mode would program the engine with
    /// the user's IOVAs and its untagged requests would go through the parent's own
    /// (requester-ID) DMA domain at addresses the user chose: PASID mode needs this.
    pasid_tagged_dma: bool,
}

/// edu: one DMA engine whose requests carry only edu's requester ID (no PASID capability).
const EDU_ENGINE: EngineCaps = EngineCaps {
    name: "edu",
    pasid_tagged_dma: false,
};

/// edu-pasid (`docs/pasid-device.md`): edu's engine with a PASID capability; the DMA PASID
/// register tags its requests with a PASID the driver programs.
const EDU_PASID_ENGINE: EngineCaps = EngineCaps {
    name: "edu-pasid",
    pasid_tagged_dma: true,
};

// Module parameters (`/sys/module/edu_mdev/parameters/`).
kernel::module_param_bool!(ALLOW_UNSAFE_INTERRUPTS, "allow_unsafe_interrupts", 0o644);
kernel::module_param_bool!(INJECT_UNMAPPED_DST, "inject_unmapped_dst", 0o644);
kernel::module_param_bool!(INJECT_NO_DOORBELL, "inject_no_doorbell", 0o644);

// ---- 3. the parent ----------------------------------------------------------------------------

// edu's and edu-pasid's registers (QEMU `hw/misc/edu.c`, docs/pasid-device.md), declared
// once for the samples, the test modules and the qtest client.
#[path = "edu-regs/src/edu_regs/mod.rs"]
mod edu;

/// One mdev of a parent: what sysfs and capacity accounting need.
struct Slot {
    /// The mdev's `struct device` (identity only, for the sysfs attributes).
    dev: usize,
    pasid: u32,
    slots: u32,
}

/// A copy waiting for (or getting) the engine.
struct Job {
    vdev: ARef<vfio::Device<MdevVfio>>,
    src: u64,
    dst: u64,
    len: u64,
    /// Bytes already copied.
    done: u64,
    irq: bool,
    /// The mdev's register generation at submission (a reset makes older jobs stale).
    gen: u64,
    /// Queue order.
    seq: u64,
}

/// The engine's state, under [`ParentShared::engine`].
struct Engine {
    /// At most one job per mdev, so [`MAX_MDEVS`] entries suffice; ordered by `seq`.
    queue: [Option<Job>; MAX_MDEVS],
    next_seq: u64,
    /// The mdev (slot id) whose piece is on the hardware right now.
    running: Option<usize>,
    /// The work item is queued or running.
    worker_active: bool,
    stopping: bool,
    /// Per mdev: aborts in progress. The worker does not start pieces of a fenced mdev, so an
    /// abort waiting for a piece is not overtaken by the next one.
    fence: [u32; MAX_MDEVS],
}

/// Everything of a parent that its mdevs and the engine worker share.
#[pin_data]
struct ParentShared {
    pdev: ARef<pci::Device>,
    bar: Devres<pci::Bar>,
    /// What the device's engine can do (from the ID table).
    caps: EngineCaps,
    backend: Arc<dyn Backend>,
    pasids: PasidSet<'static>,
    #[pin]
    mdevs: Mutex<[Option<Slot>; MAX_MDEVS]>,
    #[pin]
    engine: Mutex<Engine>,
    /// Signalled when the engine finishes a piece or goes idle.
    #[pin]
    engine_cv: CondVar,
    #[pin]
    work: Work<ParentShared>,
    /// Set by edu's completion interrupt ([`EduIrq`]); the worker sleeps on `irq_cv`.
    irq_fired: AtomicBool,
    irq_count: AtomicU32,
    /// A DMA whose completion is edu-pasid's interrupt message is running: an interrupt with
    /// edu's interrupt status clear is ours.
    message_armed: AtomicBool,
    /// Driver time accounting (debugfs `edu_mdev/<parent>`).
    stats: Arc<CopyStats>,
    #[pin]
    irq_lock: Mutex<()>,
    #[pin]
    irq_cv: CondVar,
}

impl_has_work! {
    impl HasWork<Self> for ParentShared { self.work }
}

impl WorkItem for ParentShared {
    type Pointer = Arc<ParentShared>;
    fn run(this: Arc<ParentShared>) {
        this.run_engine();
    }
}

impl ParentShared {
    fn new(pdev: &pci::Device<pci::Core>, caps: EngineCaps) -> Result<Arc<Self>> {
        pdev.enable_device()?;
        pdev.set_master()?;
        pdev.dma_set_mask(edu::DMA_BITS)?;
        let bar = pdev.iomap_region(0, 0x1000, c_str!("edu_mdev"))?;
        let id = bar.access()?.read32(edu::ID)?;
        if id != edu::ID_VALUE {
            dev_err!(pdev, "not an edu device (id {:#x})\n", id);
            return Err(ENODEV);
        }
        let dev: &Device = pdev.as_ref();
        // PASID mode needs an engine that tags its DMA with the PASID, the device's PASID
        // capability and an IOMMU that does PASIDs; the aux-domain layer checks the last two
        // and says which is missing.
        let platform = if caps.pasid_tagged_dma {
            AuxDevice::enable(pdev, *PASID_RANGE.start(), *PASID_RANGE.end())
        } else {
            dev_info!(
                pdev,
                "edu_mdev: PASID mode not considered: the engine cannot tag its DMA with a PASID ({})\n",
                caps.name
            );
            Err(EOPNOTSUPP)
        };
        let backend: Arc<dyn Backend> =
            match platform {
                Ok(adev) => {
                    let (min, max) = adev.pasid_range().unwrap_or((0, 0));
                    dev_info!(pdev, "edu_mdev: PASID mode (PASIDs {}..={})\n", min, max);
                    Arc::pin_init(
                        pin_init!(PasidAux { dev: adev, domains <- new_mutex!([const { None }; MAX_MDEVS]) }),
                        GFP_KERNEL,
                    )?
                }
                Err(e) => {
                    dev_info!(
                        pdev,
                        "edu_mdev: mediated mode: no PASID support (errno {}); the parent pins and maps each mdev's pages\n",
                        e.to_errno()
                    );
                    Arc::new(Mediated { dev: dev.into() }, GFP_KERNEL)?
                }
            };
        let pasids = PasidSet::new(OwnerKind::Mdev, dev.as_raw_ptr() as u64, SLOTS)?;
        Arc::pin_init(
            try_pin_init!(ParentShared {
                pdev: (**pdev).get(),
                bar,
                caps,
                backend,
                pasids,
                mdevs <- new_mutex!([const { None }; MAX_MDEVS], "edu_mdev::mdevs"),
                engine <- new_mutex!(Engine {
                    queue: [const { None }; MAX_MDEVS],
                    next_seq: 0,
                    running: None,
                    worker_active: false,
                    stopping: false,
                    fence: [0; MAX_MDEVS],
                }, "edu_mdev::engine"),
                engine_cv <- new_condvar!("edu_mdev::engine_cv"),
                work <- new_work!("edu_mdev::work"),
                irq_fired: AtomicBool::new(false),
                irq_count: AtomicU32::new(0),
                message_armed: AtomicBool::new(false),
                stats: Arc::new(CopyStats::default(), GFP_KERNEL)?,
                irq_lock <- new_mutex!((), "edu_mdev::irq_lock"),
                irq_cv <- new_condvar!("edu_mdev::irq_cv"),
            }),
            GFP_KERNEL,
        )
    }

    /// PASID mode hands the user a device that DMAs wherever the mdev's domain maps, MSI
    /// doorbells included: like VFIO (`allow_unsafe_interrupts` of type1 and iommufd), an mdev
    /// opens only if the parent's MSIs are isolated (GICv3's ITS tells devices apart by their
    /// DeviceID), unless the administrator set the module parameter `allow_unsafe_interrupts`.
    /// Mediated mode never lets the user's addresses reach the device.
    fn check_msi_isolation(&self) -> Result {
        if !self.backend.tags_dma() || iommu::group_has_isolated_msi(self.pdev.as_ref()) {
            return Ok(());
        }
        if ALLOW_UNSAFE_INTERRUPTS.get() {
            dev_warn!(
                &*self.pdev,
                "edu_mdev: PASID mode without isolated MSIs: opening anyway (allow_unsafe_interrupts=1)\n"
            );
            return Ok(());
        }
        dev_err!(
            &*self.pdev,
            "edu_mdev: PASID mode needs isolated MSIs (an MSI controller such as GICv3's ITS, or interrupt remapping) and this parent has none: open refused (module parameter allow_unsafe_interrupts=1 overrides)\n"
        );
        Err(EPERM)
    }

    /// Free engine slots.
    fn free_slots(mdevs: &[Option<Slot>; MAX_MDEVS]) -> u32 {
        SLOTS - mdevs.iter().flatten().map(|s| s.slots).sum::<u32>()
    }

    /// The PASID of the mdev whose device is `dev`.
    fn pasid_of(&self, dev: &Device) -> Option<u32> {
        let key = dev.as_raw_ptr() as usize;
        self.mdevs
            .lock()
            .iter()
            .flatten()
            .find(|s| s.dev == key)
            .map(|s| s.pasid)
    }

    // -- the engine --

    /// Queues `job`; starts the worker if it is idle. Fails with `Aborted` if the parent is
    /// going away and with `Busy` if the mdev has a copy queued or on the engine already (the
    /// caller's registers say it has not; a stale job must never take a second queue entry).
    fn submit(self: &Arc<Self>, mut job: Job) -> core::result::Result<(), CopyError> {
        let mut e = self.engine.lock();
        if e.stopping {
            return Err(CopyError::Aborted);
        }
        let id = job.vdev.id;
        if e.running == Some(id) || e.queue.iter().flatten().any(|j| j.vdev.id == id) {
            return Err(CopyError::Busy);
        }
        job.seq = e.next_seq;
        e.next_seq += 1;
        let Some(free) = e.queue.iter_mut().find(|s| s.is_none()) else {
            return Err(CopyError::Aborted);
        };
        *free = Some(job);
        let kick = !e.worker_active;
        e.worker_active = true;
        drop(e);
        if kick {
            // Already queued is fine: the running worker sees the new job.
            let _ = workqueue::system_long().enqueue(self.clone());
        }
        Ok(())
    }

    /// The worker: one piece of the oldest job per turn, the job goes back to the end of the
    /// queue, so every mdev with a copy gets the engine in turn.
    fn run_engine(&self) {
        loop {
            let t0 = now_ns();
            let mut e = self.engine.lock();
            let next = e
                .queue
                .iter()
                .enumerate()
                .filter_map(|(i, j)| j.as_ref().map(|j| (i, j)))
                .filter(|(_, j)| e.fence[j.vdev.id] == 0)
                .map(|(i, j)| (i, j.seq))
                .min_by_key(|&(_, seq)| seq)
                .map(|(i, _)| i);
            let Some(i) = next.filter(|_| !e.stopping) else {
                e.worker_active = false;
                self.engine_cv.notify_all();
                return;
            };
            let Some(mut job) = e.queue[i].take() else {
                continue;
            };
            // A range the user is unmapping is not pinned again before the unmap is over (see
            // `vfio::UnmapFence`). Checked under the engine lock that `dma_unmap`'s abort takes
            // after fencing: either the fence is seen here or the abort sees `running` and waits.
            let fenced = job.vdev.fence.blocks(job.src, job.len)
                || job.vdev.fence.blocks(job.dst, job.len);
            if !fenced {
                e.running = Some(job.vdev.id);
            }
            drop(e);
            let t1 = now_ns();

            let r = if fenced {
                Err(CopyError::Unmapped)
            } else {
                self.copy_piece(&job)
            };

            let t2 = now_ns();
            let mut e = self.engine.lock();
            e.running = None;
            let finished = match r {
                Ok(n) => {
                    job.done += n;
                    if job.done < job.len {
                        job.seq = e.next_seq;
                        e.next_seq += 1;
                        // Back to the end of the queue, in any free entry (a submission may
                        // have taken the one it came from). There is one: at most one job per
                        // mdev and this one is not queued.
                        match e.queue.iter_mut().find(|q| q.is_none()) {
                            Some(free) => {
                                *free = Some(job);
                                None
                            }
                            None => Some((job, Some(CopyError::Device))),
                        }
                    } else {
                        Some((job, None))
                    }
                }
                Err(err) => Some((job, Some(err))),
            };
            self.engine_cv.notify_all();
            drop(e);
            let done = finished.is_some();
            if let Some((job, err)) = finished {
                job.vdev.complete(&job, err);
                if err.is_none() {
                    self.stats.copies.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Queue handling and completion: the time outside `copy_piece`.
            let st = &self.stats;
            st.add(&st.complete_ns, t1.saturating_sub(t0) + since(t2));
            if done {
                self.stats.ended.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Copies the next piece of `job`: at most one page on each side and at most edu's buffer.
    /// The two pages are pinned and mapped only for this piece.
    fn copy_piece(&self, job: &Job) -> core::result::Result<u64, CopyError> {
        let copy = Copy {
            src: job.src,
            dst: job.dst,
            len: job.len,
        };
        let p = copy
            .piece(job.done, PAGE, edu::DMA_BUF_SIZE as u64)
            .ok_or(CopyError::Device)?;
        let (sp, dp) = (p.src_page(PAGE), p.dst_page(PAGE));
        let vdev = &job.vdev;
        let backend = &*self.backend;
        let st = &self.stats;
        let tag = backend.tags_dma().then_some(vdev.pasid);
        if job.done == 0 {
            let t = now_ns();
            let r = if tag.is_some() && !pasid_reachable(&copy) {
                Err(CopyError::Unmapped)
            } else {
                MdevVfio::check_mapped(vdev, &copy)
            };
            st.add(&st.validate_ns, since(t));
            r?;
        }
        let t0 = now_ns();
        // Source and destination in one page: pinned and mapped once, read-write.
        let dst_pin = vdev
            .pin_pages(dp, 1, Prot::READ | Prot::WRITE)
            .map_err(pin_error)?;
        let src_pin = if p.one_page(PAGE) {
            None
        } else {
            Some(
                vdev.pin_pages(sp, 1, Prot::READ).map_err(pin_error)?,
            )
        };
        let t1 = now_ns();
        st.add(&st.pin_ns, t1.saturating_sub(t0));
        let dir = if src_pin.is_some() {
            Direction::FromDevice
        } else {
            Direction::Bidirectional
        };
        // Fault injection (`inject_unmapped_dst`, PASID mode, tests only): the destination page
        // stays pinned but is not mapped in the mdev's domain, so the tagged DMA to it faults
        // in the IOMMU: what a DMA at an IOVA the user did not map gets.
        let skip_dst = tag.is_some() && src_pin.is_some() && INJECT_UNMAPPED_DST.get();
        let d = if skip_dst {
            Mapped::Unmapped { iova: dp }
        } else {
            backend
                .map(vdev.pasid, &dst_pin, dp, dir)
                .map_err(|_| CopyError::Device)?
        };
        let s = match &src_pin {
            Some(pin) => Some(
                backend
                    .map(vdev.pasid, pin, sp, Direction::ToDevice)
                    .map_err(|_| CopyError::Device)?,
            ),
            None => None,
        };
        st.add(&st.map_ns, since(t1));
        let src_addr = s.as_ref().unwrap_or(&d).addr() + p.src % PAGE;
        self.edu_dma(src_addr, edu::DMA_BUF, p.len, edu::DMA_START, tag)?;
        self.edu_dma(
            edu::DMA_BUF,
            d.addr() + p.dst % PAGE,
            p.len,
            edu::DMA_START | edu::DMA_TO_RAM,
            tag,
        )?;
        // Unmapped, then unpinned (on an error above, the same happens as the locals drop).
        let t2 = now_ns();
        drop(s);
        drop(d);
        drop(src_pin);
        drop(dst_pin);
        st.add(&st.unmap_unpin_ns, since(t2));
        st.pieces.fetch_add(1, Ordering::Relaxed);
        st.bytes.fetch_add(p.len, Ordering::Relaxed);
        Ok(p.len)
    }

    /// Runs one edu DMA and waits for it: edu's completion interrupt wakes us, its DMA command
    /// register says when it is done (edu takes 100 ms of virtual time per DMA). If edu never
    /// finishes (it does not hang in practice), the piece fails with `Device` and its pages are
    /// unmapped and unpinned although the DMA may still be pending: a limit of this sample.
    ///
    /// `tag`: the PASID the DMA is tagged with (PASID mode; edu-pasid's DMA PASID register).
    /// Then its result register says whether the IOMMU translated it: a fault (the IOVA is not
    /// mapped in the mdev's domain) ends the copy with `Unmapped`, a DMA the device did not send
    /// with `Device`.
    fn edu_dma(
        &self,
        src: u64,
        dst: u64,
        count: u64,
        cmd: u64,
        tag: Option<u32>,
    ) -> core::result::Result<(), CopyError> {
        let io = |f: &dyn Fn(&pci::Bar) -> Result| -> core::result::Result<(), CopyError> {
            let bar = self.bar.try_access().ok_or(CopyError::Device)?;
            f(&bar).map_err(|_| CopyError::Device)
        };
        let st = &self.stats;
        let t0 = now_ns();
        let mut waited = 0;
        // PASID mode: the completion is the message tagged like the DMA, through the mdev's
        // domain (where its doorbell is bound).
        let msg = tag.and_then(|p| self.backend.completion_message(p));
        self.irq_fired.store(false, Ordering::Release);
        self.message_armed.store(msg.is_some(), Ordering::Release);
        io(&|b| {
            if self.caps.pasid_tagged_dma {
                // Untagged (0) unless in PASID mode; only edu-pasid has the register.
                let reg = tag.map_or(0, |p| p | edu::DMA_PASID_EN);
                b.write32(reg, edu::DMA_PASID)?;
                if let Some((addr, data)) = msg {
                    b.write32(addr as u32, edu::IMS_ADDR_LO)?;
                    b.write32((addr >> 32) as u32, edu::IMS_ADDR_HI)?;
                    b.write32(data, edu::IMS_DATA)?;
                }
                let ctrl = if msg.is_some() { edu::IMS_CTRL_EN } else { 0 };
                b.write32(ctrl, edu::IMS_CTRL)?;
            }
            b.write64(src, edu::DMA_SRC)?;
            b.write64(dst, edu::DMA_DST)?;
            b.write64(count, edu::DMA_COUNT)?;
            b.write64(cmd | edu::DMA_IRQ, edu::DMA_CMD)
        })?;
        // Sleep until edu's completion MSI (see `EduIrq`); the timeout keeps this working, by
        // polling, if the interrupt is lost or there is none.
        for _ in 0..200 {
            let busy = {
                let bar = self.bar.try_access().ok_or(CopyError::Device)?;
                bar.read64(edu::DMA_CMD).map_err(|_| CopyError::Device)? & edu::DMA_START != 0
            };
            if !busy {
                let result = match tag {
                    Some(pasid) => self
                        .dma_result(pasid, src, dst)?
                        .and(self.message_result(pasid, msg)?),
                    None => Ok(()),
                };
                st.add(&st.edu_wait_ns, waited);
                st.add(&st.program_ns, since(t0).saturating_sub(waited));
                return result;
            }
            let w = now_ns();
            let mut g = self.irq_lock.lock();
            if !self.irq_fired.swap(false, Ordering::AcqRel) {
                let _ = self
                    .irq_cv
                    .wait_interruptible_timeout(&mut g, msecs_to_jiffies(20));
            }
            drop(g);
            waited += since(w);
        }
        dev_err!(&*self.pdev, "edu DMA did not complete\n");
        Err(CopyError::Device)
    }

    /// The outcome of a finished PASID-tagged DMA (edu-pasid's result register): the outer
    /// error if the register cannot be read, the inner one if the DMA failed.
    fn dma_result(
        &self,
        pasid: u32,
        src: u64,
        dst: u64,
    ) -> core::result::Result<core::result::Result<(), CopyError>, CopyError> {
        let bar = self.bar.try_access().ok_or(CopyError::Device)?;
        let r = bar
            .read32(edu::DMA_RESULT)
            .map_err(|_| CopyError::Device)?;
        Ok(match r {
            0 => Ok(()),
            edu::DMA_RESULT_ERROR => {
                self.stats.faults.fetch_add(1, Ordering::Relaxed);
                dev_info!(
                    &*self.pdev,
                    "edu_mdev: PASID {} DMA {:#x} -> {:#x} faulted in the IOMMU: copy ends as unmapped\n",
                    pasid,
                    src,
                    dst
                );
                Err(CopyError::Unmapped)
            }
            r => {
                dev_err!(
                    &*self.pdev,
                    "edu_mdev: PASID {} DMA not sent (result {}): PASID disabled on the device\n",
                    pasid,
                    r
                );
                Err(CopyError::Device)
            }
        })
    }

    /// The outcome of the completion message of a finished DMA tagged with `pasid`: a message
    /// the IOMMU refused (no doorbell in the mdev's domain; the SMMU reports the fault) lost the
    /// interrupt, which the wait above survived by polling: the copy ends with `Device`.
    fn message_result(
        &self,
        pasid: u32,
        msg: Option<(u64, u32)>,
    ) -> core::result::Result<core::result::Result<(), CopyError>, CopyError> {
        let Some((addr, _)) = msg else {
            return Ok(Ok(()));
        };
        let bar = self.bar.try_access().ok_or(CopyError::Device)?;
        let ctrl = bar.read32(edu::IMS_CTRL).map_err(|_| CopyError::Device)?;
        if ctrl & edu::IMS_CTRL_FAULT == 0 {
            self.stats.messages.fetch_add(1, Ordering::Relaxed);
            return Ok(Ok(()));
        }
        self.stats.message_faults.fetch_add(1, Ordering::Relaxed);
        dev_err!(
            &*self.pdev,
            "edu_mdev: PASID {} completion message to {:#x} faulted in the IOMMU (no doorbell in the mdev's domain): interrupt lost, copy ends with a device error\n",
            pasid,
            addr
        );
        Ok(Err(CopyError::Device))
    }

    /// Takes the queued jobs of mdev `id` that touch `range` (all of them for `None`) off the
    /// queue, waits until no piece of mdev `id` is on the hardware, and returns the jobs.
    fn abort(self: &Arc<Self>, id: usize, range: Option<(u64, u64)>) -> [Option<Job>; MAX_MDEVS] {
        let mut out: [Option<Job>; MAX_MDEVS] = [const { None }; MAX_MDEVS];
        let mut e = self.engine.lock();
        e.fence[id] += 1;
        loop {
            for q in e.queue.iter_mut() {
                let hit = q.as_ref().is_some_and(|j| {
                    j.vdev.id == id
                        && match range {
                            None => true,
                            Some((iova, len)) => {
                                overlaps(j.src, j.len, iova, len)
                                    || overlaps(j.dst, j.len, iova, len)
                            }
                        }
                });
                if hit {
                    if let Some(slot) = out.iter_mut().find(|o| o.is_none()) {
                        *slot = q.take();
                    }
                }
            }
            if e.running != Some(id) {
                break;
            }
            self.engine_cv.wait(&mut e);
        }
        e.fence[id] -= 1;
        // The worker may have stopped with only fenced jobs left.
        let kick = !e.worker_active && !e.stopping && e.queue.iter().any(Option::is_some);
        e.worker_active |= kick;
        drop(e);
        if kick {
            let _ = workqueue::system_long().enqueue(self.clone());
        }
        out
    }

    /// Stops the engine: no new jobs, waits for the worker to finish and flushes it.
    fn shutdown(&self) {
        let mut e = self.engine.lock();
        e.stopping = true;
        while e.worker_active {
            self.engine_cv.wait(&mut e);
        }
        drop(e);
        // The worker may still be returning from `run`: wait until it did, so neither this
        // object nor the module's code goes away under it.
        // SAFETY: `work` is an initialised work item of this live, pinned object.
        unsafe { kernel::bindings::flush_work(Work::raw_get(&self.work)) };
    }
}

/// PASID mode: whether the engine can reach both ranges of `copy` at the user's IOVAs. It
/// masks its addresses to its DMA width (an IOVA beyond would alias a lower one), and every aux
/// domain reserves its MSI window (`MsiWindow::default()`), where no user page can be mapped.
/// Checked before the first piece, like the user's mappings: `ERROR` 4 before any byte moves.
fn pasid_reachable(copy: &Copy) -> bool {
    let limit = 1u64 << edu::DMA_BITS;
    let msi = MsiWindow::default();
    [copy.src, copy.dst].into_iter().all(|a| {
        a.checked_add(copy.len).is_some_and(|end| end <= limit) && !msi.overlaps(a, copy.len)
    })
}

/// What a failed pin tells the user: the memory is not there (`ERROR` 4), unless the kernel ran
/// out of memory pinning it (`ERROR` 9: the parent could not do the DMA; the fault-injection
/// sweep `mdev:fault_sweep` found `ENOMEM` reported as "unmapped").
fn pin_error(e: Error) -> CopyError {
    if e == ENOMEM {
        CopyError::Device
    } else {
        CopyError::Unmapped
    }
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

// ---- 5. the mdev as a VFIO device -------------------------------------------------------------

/// Register file of the virtual copy engine (BAR0), see `docs/sample-mdev.md`.
mod regs {
    pub(crate) const ID: u64 = 0x00;
    pub(crate) const ID_VALUE: u32 = 0x7e01_0001;
    pub(crate) const PASID: u64 = 0x04;
    pub(crate) const SRC_LO: u64 = 0x08;
    pub(crate) const SRC_HI: u64 = 0x0c;
    pub(crate) const DST_LO: u64 = 0x10;
    pub(crate) const DST_HI: u64 = 0x14;
    pub(crate) const LEN: u64 = 0x18;
    pub(crate) const CMD: u64 = 0x1c;
    pub(crate) const STATUS: u64 = 0x20;
    pub(crate) const RESET: u64 = 0x24;
    pub(crate) const COMPLETED: u64 = 0x28;
    pub(crate) const MAX_LEN: u64 = 0x2c;
    pub(crate) const CMD_START: u32 = 1 << 0;
    pub(crate) const CMD_IRQ: u32 = 1 << 1;
    pub(crate) const STATUS_BUSY: u32 = 1 << 0;
    pub(crate) const STATUS_DONE: u32 = 1 << 1;
    pub(crate) const ERROR_SHIFT: u32 = 8;
    pub(crate) const RESET_MAGIC: u32 = 1;
}

const BAR0_SIZE: u64 = 0x1000;
const CFG_SIZE: usize = 256;
const REGION_SHIFT: u32 = 40;
const BAR0_INDEX: u32 = 0;
const CONFIG_INDEX: u32 = 7;
const NUM_REGIONS: u32 = 9;
const MSI_INDEX: u32 = 1;
const REQ_INDEX: u32 = 4;
const NUM_IRQS: u32 = 5;
/// The emulated device's IDs.
const VENDOR: u16 = 0x1234;
const DEVICE: u16 = 0xed01;
const MSI_CAP: usize = 0x40;

/// Emulated PCI config space: values and, per byte, which bits the user may write.
struct ConfigSpace {
    val: [u8; CFG_SIZE],
    wmask: [u8; CFG_SIZE],
}

impl ConfigSpace {
    fn new() -> Self {
        let mut c = ConfigSpace {
            val: [0; CFG_SIZE],
            wmask: [0; CFG_SIZE],
        };
        let mut put = |off: usize, bytes: &[u8], wmask: &[u8]| {
            c.val[off..off + bytes.len()].copy_from_slice(bytes);
            c.wmask[off..off + wmask.len()].copy_from_slice(wmask);
        };
        put(0x00, &VENDOR.to_le_bytes(), &[]);
        put(0x02, &DEVICE.to_le_bytes(), &[]);
        // Command: memory space, bus master, INTx disable are writable. Status: cap list.
        put(0x04, &[0, 0, 0x10, 0], &[0x06, 0x04]);
        // Revision 1, class 08 80 00 (other system peripheral).
        put(0x08, &[0x01, 0x00, 0x80, 0x08], &[]);
        // BAR0: 32-bit non-prefetchable memory, BAR0_SIZE bytes (the mask does the sizing).
        put(0x10, &[0; 4], &(!(BAR0_SIZE as u32 - 1)).to_le_bytes());
        put(0x2c, &VENDOR.to_le_bytes(), &[]);
        put(0x2e, &DEVICE.to_le_bytes(), &[]);
        put(0x34, &[MSI_CAP as u8], &[]);
        // MSI capability: 64-bit, one vector; enable, address and data writable.
        put(MSI_CAP, &[0x05, 0x00, 0x80, 0x00], &[0, 0, 0x01, 0]);
        put(MSI_CAP + 4, &[0; 4], &[0xfc, 0xff, 0xff, 0xff]);
        put(MSI_CAP + 8, &[0; 4], &[0xff; 4]);
        put(MSI_CAP + 12, &[0; 2], &[0xff; 2]);
        c
    }

    fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.val[off..off + out.len()]);
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let m = self.wmask[off + i];
            self.val[off + i] = (self.val[off + i] & !m) | (b & m);
        }
    }
}

/// The copy engine's registers of one mdev.
#[derive(Default)]
struct Regs {
    src: u64,
    dst: u64,
    len: u32,
    status: u32,
    completed: u32,
    /// Bumped by reset/close: completions of older jobs are ignored.
    gen: u64,
}

/// Mutable state of an mdev's VFIO device.
struct DevState {
    cfg: ConfigSpace,
    regs: Regs,
    msi: Option<EventFd>,
    req: Option<EventFd>,
}

/// The VFIO device of an mdev.
#[pin_data]
struct MdevVfio {
    parent: Arc<ParentShared>,
    /// Slot index in the parent.
    id: usize,
    pasid: u32,
    /// The ranges being unmapped: the engine does not pin them.
    fence: vfio::UnmapFence,
    #[pin]
    st: Mutex<DevState>,
}

impl MdevVfio {
    /// Called by the engine when `job` finished (`err` None) or failed.
    fn complete(&self, job: &Job, err: Option<CopyError>) {
        let mut st = self.st.lock();
        if st.regs.gen != job.gen {
            return;
        }
        Self::finish(&mut st, job.irq, err);
    }

    /// Ends the current command of a device (state `st`, locked): `STATUS = DONE | ERROR`,
    /// `COMPLETED` counts it if it succeeded, the MSI eventfd fires if it asked for it.
    fn finish(st: &mut DevState, irq: bool, err: Option<CopyError>) {
        let code = err.map_or(0, CopyError::code);
        st.regs.status = regs::STATUS_DONE | (code << regs::ERROR_SHIFT);
        if err.is_none() {
            st.regs.completed = st.regs.completed.wrapping_add(1);
        }
        if irq {
            if let Some(msi) = &st.msi {
                msi.signal();
            }
        }
    }

    /// Checks that every page of `copy` is mapped (readable source, writable destination) by
    /// pinning each span once, so a copy to partly unmapped memory fails before any byte moves.
    /// Run by the engine worker before the first piece, like a piece's pins: a `dma_unmap`
    /// waits for it and the unmap fence covers it (pinning from the `CMD` write, outside both,
    /// let `VFIO_IOMMU_UNMAP_DMA` find pages still pinned after the callback: issue 11).
    fn check_mapped(
        dev: &vfio::Device<Self>,
        copy: &Copy,
    ) -> core::result::Result<(), CopyError> {
        for (first, npages, access) in copy.page_spans(PAGE) {
            let prot = match access {
                Access::Read => Prot::READ,
                Access::ReadWrite => Prot::READ | Prot::WRITE,
            };
            dev.pin_pages(first, npages, prot).map_err(pin_error)?;
        }
        Ok(())
    }

    /// A write of `val` to BAR0 register `off`.
    fn write_reg(dev: &vfio::Device<Self>, off: u64, val: u32) {
        let mut st = dev.st.lock();
        let busy = st.regs.status & regs::STATUS_BUSY != 0;
        match off {
            regs::SRC_LO if !busy => st.regs.src = (st.regs.src & !0xffff_ffff) | u64::from(val),
            regs::SRC_HI if !busy => {
                st.regs.src = (st.regs.src & 0xffff_ffff) | (u64::from(val) << 32)
            }
            regs::DST_LO if !busy => st.regs.dst = (st.regs.dst & !0xffff_ffff) | u64::from(val),
            regs::DST_HI if !busy => {
                st.regs.dst = (st.regs.dst & 0xffff_ffff) | (u64::from(val) << 32)
            }
            regs::LEN if !busy => st.regs.len = val,
            regs::CMD => {
                if val & !(regs::CMD_START | regs::CMD_IRQ) != 0 || val & regs::CMD_START == 0 {
                    if !busy {
                        st.regs.status = regs::STATUS_DONE
                            | (CopyError::BadCommand.code() << regs::ERROR_SHIFT);
                    }
                    return;
                }
                if busy {
                    st.regs.status |= CopyError::Busy.code() << regs::ERROR_SHIFT;
                    return;
                }
                let irq = val & regs::CMD_IRQ != 0;
                let t0 = now_ns();
                let copy = Copy {
                    src: st.regs.src,
                    dst: st.regs.dst,
                    len: u64::from(st.regs.len),
                };
                // The register checks; the pages are checked by the engine (`check_mapped`).
                if let Err(e) = copy.validate() {
                    Self::finish(&mut st, irq, Some(e));
                    return;
                }
                // Queued under `st`, the lock a reset holds while it bumps the generation and
                // aborts the mdev's jobs: the job is either queued before the reset (which then
                // aborts it) or built after it, from the reset registers and the new generation.
                st.regs.status = regs::STATUS_BUSY;
                let job = Job {
                    vdev: ARef::from(dev),
                    src: copy.src,
                    dst: copy.dst,
                    len: copy.len,
                    done: 0,
                    irq,
                    gen: st.regs.gen,
                    seq: 0,
                };
                if let Err(e) = dev.parent.submit(job) {
                    Self::finish(&mut st, irq, Some(e));
                }
                let stats = &dev.parent.stats;
                stats.add(&stats.validate_ns, since(t0));
                stats.submitted.fetch_add(1, Ordering::Relaxed);
            }
            regs::RESET if val == regs::RESET_MAGIC => Self::reset_locked(dev, &mut st),
            // Read-only and unknown registers, and address/length writes while busy: ignored.
            _ => {}
        }
    }

    fn read_reg(&self, off: u64) -> u32 {
        let st = self.st.lock();
        match off {
            regs::ID => regs::ID_VALUE,
            regs::PASID => self.pasid,
            regs::SRC_LO => st.regs.src as u32,
            regs::SRC_HI => (st.regs.src >> 32) as u32,
            regs::DST_LO => st.regs.dst as u32,
            regs::DST_HI => (st.regs.dst >> 32) as u32,
            regs::LEN => st.regs.len,
            regs::STATUS => st.regs.status,
            regs::COMPLETED => st.regs.completed,
            regs::MAX_LEN => copy_engine::COPY_MAX as u32,
            _ => 0,
        }
    }

    /// Device reset: aborts this mdev's copies (waiting for a piece on the hardware), clears the
    /// registers. Interrupt set-up is kept.
    fn reset(dev: &vfio::Device<Self>) {
        Self::reset_locked(dev, &mut dev.st.lock());
    }

    /// The reset with the device state `st` locked all along: no `CMD` can queue a job between
    /// the generation bump and the abort (a stale job would run after the reset returned and
    /// take a second queue entry of the parent), and when it returns no DMA of the mdev is in
    /// flight. Lock order: `st`, then the engine (the worker takes `st` only after it dropped
    /// the engine lock and cleared `running`, so the abort's wait ends).
    fn reset_locked(dev: &vfio::Device<Self>, st: &mut DevState) {
        st.regs.gen += 1;
        drop(dev.parent.abort(dev.id, None));
        st.regs = Regs {
            gen: st.regs.gen,
            ..Regs::default()
        };
    }

    /// Splits a device-file offset into (region index, offset in the region).
    fn region(offset: u64) -> (u32, u64) {
        (
            (offset >> REGION_SHIFT) as u32,
            offset & ((1 << REGION_SHIFT) - 1),
        )
    }

    fn set_irqs(dev: &vfio::Device<Self>, arg: usize) -> Result<isize> {
        let count = |i: u32| {
            if i == MSI_INDEX || i == REQ_INDEX {
                1
            } else {
                0
            }
        };
        let set = uapi::IrqSet::from_user(arg, NUM_IRQS, count)?;
        if set.index != MSI_INDEX && set.index != REQ_INDEX {
            // Only "disable" (count 0) of the absent interrupts gets here.
            return Ok(0);
        }
        let mut st = dev.st.lock();
        let slot = if set.index == MSI_INDEX {
            &mut st.msi
        } else {
            &mut st.req
        };
        match (set.action, &set.data) {
            (uapi::IrqAction::Trigger, uapi::IrqSetData::Eventfd(fds)) => {
                *slot = match fds.first() {
                    Some(&fd) if fd >= 0 => Some(EventFd::from_fd(fd)?),
                    _ => None,
                };
            }
            (uapi::IrqAction::Trigger, uapi::IrqSetData::None) if set.count == 0 => *slot = None,
            // Loopback: fire the interrupt now.
            (uapi::IrqAction::Trigger, uapi::IrqSetData::None) => {
                if let Some(e) = slot {
                    e.signal();
                }
            }
            (uapi::IrqAction::Trigger, uapi::IrqSetData::Bool(b)) => {
                if let (Some(e), Some(true)) = (slot.as_ref(), b.first()) {
                    e.signal();
                }
            }
            // Not maskable.
            _ => return Err(EINVAL),
        }
        Ok(0)
    }
}

impl vfio::DeviceOps for MdevVfio {
    const NAME: &'static CStr = c_str!("edu-mdev");

    fn open_device(dev: &vfio::Device<Self>) -> Result {
        dev.parent.check_msi_isolation()?;
        dev.fence.clear();
        let mut st = dev.st.lock();
        st.cfg = ConfigSpace::new();
        let gen = st.regs.gen + 1;
        st.regs = Regs {
            gen,
            ..Regs::default()
        };
        Ok(())
    }

    fn close_device(dev: &vfio::Device<Self>) {
        // No pinning after close: take all copies off the engine first.
        let mut st = dev.st.lock();
        Self::reset_locked(dev, &mut st);
        st.msi = None;
        st.req = None;
        drop(st);
        // Nothing of this user is pinned any more, and the next user maps afresh.
        dev.fence.clear();
    }

    fn read(dev: &vfio::Device<Self>, mut buf: UserSliceWriter, offset: u64) -> Result<usize> {
        let (index, off) = Self::region(offset);
        let len = buf.len();
        match index {
            CONFIG_INDEX => {
                // Reads of any length inside the space: a VMM (QEMU's vfio-pci) reads it whole
                // at start-up. Writes stay 1/2/4 bytes, the sizes of a guest's accesses.
                let o = usize::try_from(off).map_err(|_| EINVAL)?;
                if len == 0 || o > CFG_SIZE || len > CFG_SIZE - o {
                    return Err(EINVAL);
                }
                let mut tmp = [0u8; CFG_SIZE];
                dev.st.lock().cfg.read(o, &mut tmp[..len]);
                buf.write_slice(&tmp[..len])?;
                Ok(len)
            }
            BAR0_INDEX => {
                if len != 4 || off % 4 != 0 || off >= BAR0_SIZE {
                    return Err(EINVAL);
                }
                buf.write_slice(&dev.read_reg(off).to_le_bytes())?;
                Ok(4)
            }
            _ => Err(EINVAL),
        }
    }

    fn write(dev: &vfio::Device<Self>, mut buf: UserSliceReader, offset: u64) -> Result<usize> {
        let (index, off) = Self::region(offset);
        let len = buf.len();
        match index {
            CONFIG_INDEX => {
                let o = usize::try_from(off).map_err(|_| EINVAL)?;
                if !matches!(len, 1 | 2 | 4) || o + len > CFG_SIZE {
                    return Err(EINVAL);
                }
                let mut tmp = [0u8; 4];
                buf.read_slice(&mut tmp[..len])?;
                dev.st.lock().cfg.write(o, &tmp[..len]);
                Ok(len)
            }
            BAR0_INDEX => {
                if len != 4 || off % 4 != 0 || off >= BAR0_SIZE {
                    return Err(EINVAL);
                }
                let mut tmp = [0u8; 4];
                buf.read_slice(&mut tmp)?;
                Self::write_reg(dev, off, u32::from_le_bytes(tmp));
                Ok(4)
            }
            _ => Err(EINVAL),
        }
    }

    fn ioctl(dev: &vfio::Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::DEVICE_GET_INFO => uapi::DeviceInfo {
                flags: uapi::DEVICE_FLAGS_PCI | uapi::DEVICE_FLAGS_RESET,
                num_regions: NUM_REGIONS,
                num_irqs: NUM_IRQS,
            }
            .reply_to_user(arg),
            uapi::DEVICE_GET_REGION_INFO => {
                let req = uapi::RegionInfoRequest::from_user(arg, NUM_REGIONS)?;
                let rw = uapi::REGION_READ | uapi::REGION_WRITE;
                let (flags, size) = match req.index {
                    BAR0_INDEX => (rw, BAR0_SIZE),
                    CONFIG_INDEX => (rw, CFG_SIZE as u64),
                    _ => (0, 0),
                };
                uapi::RegionInfo {
                    flags,
                    size,
                    offset: u64::from(req.index) << REGION_SHIFT,
                    caps: None,
                }
                .reply_to_user(&req, arg)
            }
            uapi::DEVICE_GET_IRQ_INFO => {
                let req = uapi::IrqInfoRequest::from_user(arg, NUM_IRQS)?;
                match req.index {
                    MSI_INDEX | REQ_INDEX => {
                        req.reply_to_user(arg, uapi::IRQ_INFO_EVENTFD | uapi::IRQ_INFO_NORESIZE, 1)
                    }
                    _ => req.reply_to_user(arg, 0, 0),
                }
            }
            uapi::DEVICE_SET_IRQS => Self::set_irqs(dev, arg),
            uapi::DEVICE_RESET => {
                Self::reset(dev);
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn request(dev: &vfio::Device<Self>, count: u32) {
        let st = dev.st.lock();
        match &st.req {
            Some(req) => {
                if count == 0 {
                    dev_info!(
                        dev.device(),
                        "edu_mdev: asking the user to release the device\n"
                    );
                }
                req.signal();
            }
            None if count == 0 => {
                dev_info!(
                    dev.device(),
                    "edu_mdev: device in use and no request eventfd: waiting for close\n"
                );
            }
            None => {}
        }
    }

    fn dma_unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        // Copies touching the range fail with "unmapped"; a piece on the hardware finishes
        // first (its pages are unpinned when it does). Only the engine worker pins (a piece's
        // pages, or a copy's pages once before its first piece) and only for the job it marks
        // running, so after this nothing is pinned in the range; the fence keeps the worker from
        // pinning it again until the unmapping task is back in user space (type1 would retry
        // and BUG otherwise: `vfio::UnmapFence`).
        dev.fence.begin(iova, length);
        for job in dev
            .parent
            .abort(dev.id, Some((iova, length)))
            .into_iter()
            .flatten()
        {
            dev_info!(
                dev.device(),
                "edu_mdev: copy aborted: IOVA {:#x}+{:#x} unmapped under it\n",
                iova,
                length
            );
            dev.complete(&job, Some(CopyError::Unmapped));
        }
    }
}

// ---- 6. the mdev driver -----------------------------------------------------------------------

/// Per-mdev driver data; dropped in [`MdevDriver::remove`].
struct MdevData {
    parent: Arc<ParentShared>,
    id: usize,
    pasid: u32,
    // Drop order: the attributes first, then the VFIO registration (waits for the user).
    _attrs: [sysfs::File; 2],
    _reg: vfio::Registration<MdevVfio>,
}

/// The parent of mdev `dev`, from a sysfs callback of the mdev's own attributes.
fn mdev_parent(dev: &Device) -> Result<&Device> {
    // SAFETY: called from `show` of an attribute of `dev`, which is removed (waiting for running
    // `show`s) before the mdev is unregistered: `dev` is registered while the result is used.
    unsafe { dev.parent() }.ok_or(ENODEV)
}

/// `pasid`: the mdev's PASID.
struct PasidAttr;
impl sysfs::AttributeOps for PasidAttr {
    fn show(dev: &Device, out: &mut sysfs::Buffer<'_>) -> Result {
        let parent = registry_find(mdev_parent(dev)?).ok_or(ENODEV)?;
        let pasid = parent.pasid_of(dev).ok_or(ENODEV)?;
        writeln!(out, "{}", pasid).map_err(|_| EINVAL)
    }
}
kernel::device_attribute!(PASID_ATTR, PasidAttr, "pasid", 0o444);

/// `mode`: `pasid` or `mediated`.
struct ModeAttr;
impl sysfs::AttributeOps for ModeAttr {
    fn show(dev: &Device, out: &mut sysfs::Buffer<'_>) -> Result {
        let parent = registry_find(mdev_parent(dev)?).ok_or(ENODEV)?;
        writeln!(out, "{}", parent.backend.mode()).map_err(|_| EINVAL)
    }
}
kernel::device_attribute!(MODE_ATTR, ModeAttr, "mode", 0o444);

struct MdevDriver;

#[vtable]
impl mdev::Driver for MdevDriver {
    type Data = KBox<MdevData>;
    const NAME: &'static CStr = c_str!("edu_mdev");
    const DEVICE_API: &'static CStr = c_str!("vfio-pci");

    fn probe(mdev: &mdev::Device) -> Result<Self::Data> {
        let parent = registry_find(mdev.parent_device()).ok_or(ENODEV)?;
        let ty = TYPES.get(mdev.mdev_type().index()).ok_or(EINVAL)?;
        // 1. Engine slots and a PASID (the lock serialises the probes of a parent).
        let (id, pasid) = {
            let mut mdevs = parent.mdevs.lock();
            if ParentShared::free_slots(&mdevs) < ty.slots {
                return Err(ENOSPC);
            }
            let id = mdevs.iter().position(|s| s.is_none()).ok_or(ENOSPC)?;
            let pasid = parent.pasids.alloc(PASID_RANGE, id)?;
            let dev = mdev.as_ref().as_raw_ptr() as usize;
            mdevs[id] = Some(Slot {
                dev,
                pasid,
                slots: ty.slots,
            });
            (id, pasid)
        };
        // 2. The VFIO device and the attributes; on failure both are given back.
        Self::setup(mdev, &parent, ty, id, pasid).inspect_err(|_| Self::release(&parent, id, pasid))
    }

    fn remove(mdev: &mdev::Device, data: Self::Data) {
        let (parent, id, pasid) = (data.parent.clone(), data.id, data.pasid);
        // Removes the attributes, then unregisters the VFIO device (asking an open user to
        // release it and waiting until it did).
        drop(data);
        Self::release(&parent, id, pasid);
        dev_info!(mdev, "edu_mdev: mdev removed, PASID {} freed\n", pasid);
    }

    fn get_available(ty: &mdev::Type) -> u32 {
        let (Some(parent), Some(t)) = (registry_find(ty.parent_device()), TYPES.get(ty.index()))
        else {
            return 0;
        };
        let free = ParentShared::free_slots(&parent.mdevs.lock());
        free / t.slots
    }

    fn show_description(ty: &mdev::Type, out: &mut mdev::SysfsBuf<'_>) -> Result {
        let t = TYPES.get(ty.index()).ok_or(EINVAL)?;
        writeln!(out, "{} ({} of {} slots)", t.description, t.slots, SLOTS).map_err(|_| EINVAL)
    }
}

impl MdevDriver {
    /// Attaches the PASID (PASID mode), registers the mdev's VFIO device and adds the `pasid`
    /// and `mode` attributes. What was set up is undone on failure (locals drop in reverse).
    fn setup(
        mdev: &mdev::Device,
        parent: &Arc<ParentShared>,
        ty: &EduType,
        id: usize,
        pasid: u32,
    ) -> Result<KBox<MdevData>> {
        let t = now_ns();
        parent.backend.attach(pasid)?;
        if parent.backend.tags_dma() {
            let st = &parent.stats;
            st.add(&st.attach_ns, since(t));
            st.attaches.fetch_add(1, Ordering::Relaxed);
        }
        let vdev_parent = parent.clone();
        let vdev = vfio::Device::new(
            mdev.as_ref(),
            try_pin_init!(MdevVfio {
                parent: vdev_parent,
                id,
                pasid,
                fence: vfio::UnmapFence::new()?,
                st <- new_mutex!(DevState { cfg: ConfigSpace::new(), regs: Regs::default(), msi: None, req: None }),
            }),
        )?;
        let reg = vfio::Registration::new(&vdev)?;
        let attrs = [
            sysfs::create_file(mdev.as_ref(), &PASID_ATTR)?,
            sysfs::create_file(mdev.as_ref(), &MODE_ATTR)?,
        ];
        dev_info!(
            mdev,
            "edu_mdev: {} mdev, PASID {}, mode {}\n",
            ty.desc.pretty_name,
            pasid,
            parent.backend.mode()
        );
        Ok(KBox::new(
            MdevData {
                parent: parent.clone(),
                id,
                pasid,
                _attrs: attrs,
                _reg: reg,
            },
            GFP_KERNEL,
        )?)
    }

    /// Gives the slot and the PASID of a removed (or failed) mdev back.
    fn release(parent: &ParentShared, id: usize, pasid: u32) {
        let t = now_ns();
        parent.backend.detach(pasid);
        if parent.backend.tags_dma() {
            let st = &parent.stats;
            st.add(&st.detach_ns, since(t));
            st.detaches.fetch_add(1, Ordering::Relaxed);
        }
        let _ = parent.pasids.free(pasid);
        parent.mdevs.lock()[id] = None;
    }
}

// ---- 7. the PCI driver and the module ---------------------------------------------------------

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
        (pci::DeviceId::from_id(edu::VENDOR_ID, edu::DEVICE_ID), EDU_ENGINE),
        (pci::DeviceId::from_id(edu::VENDOR_ID, edu::PASID_DEVICE_ID), EDU_PASID_ENGINE),
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

// ---- 8. driver time accounting ----------------------------------------------------------------

// The debugfs files' operations, owned by this module: `rmmod` fails with `EBUSY` while
// one is open, so closing it later never calls into a freed module.
kernel::debugfs_show_fops!(STATS_FOPS, CopyStats);
kernel::debugfs_show_fops!(PEER_FOPS, PeerMemcpy);

/// Monotonic time in nanoseconds.
fn now_ns() -> u64 {
    Ktime::ktime_get().to_ns().try_into().unwrap_or(0)
}

/// Nanoseconds since `t0` (a [`now_ns`] value).
fn since(t0: u64) -> u64 {
    now_ns().saturating_sub(t0)
}

/// What copies cost the driver itself, in nanoseconds of its own code by phase, read through
/// debugfs `edu_mdev/<parent>`. The time the engine worker sleeps until edu finishes a DMA
/// (edu's fixed 100 ms timer) is counted apart, in `edu_wait_ns`, and is not driver time.
/// Wall-clock time of code that does not sleep: on an otherwise idle machine, its CPU time.
#[derive(Default)]
struct CopyStats {
    /// `CMD` writes with `START` that got past the register checks.
    submitted: AtomicU64,
    /// Copies that ended (any status) / ended without error.
    ended: AtomicU64,
    copies: AtomicU64,
    /// Pieces done and their bytes.
    pieces: AtomicU64,
    bytes: AtomicU64,
    /// PASID mode: DMAs the IOMMU refused (the device's result register said failed).
    faults: AtomicU64,
    /// PASID mode: completion messages the platform accepted / refused (an IOMMU fault).
    messages: AtomicU64,
    message_faults: AtomicU64,
    /// PASID mode: aux domains created and attached at an mdev's PASID / detached and freed,
    /// and the time it took (`PasidAux::attach`, `PasidAux::detach`).
    attaches: AtomicU64,
    attach_ns: AtomicU64,
    detaches: AtomicU64,
    detach_ns: AtomicU64,
    /// Checking the command, pinning its pages once to check them, queueing it.
    validate_ns: AtomicU64,
    /// Per piece: `vfio_pin_pages` of the two pages; mapping them for edu (`dma_map_page`);
    /// programming edu and reading its status (the waits excluded); unmapping and unpinning.
    pin_ns: AtomicU64,
    map_ns: AtomicU64,
    program_ns: AtomicU64,
    unmap_unpin_ns: AtomicU64,
    /// The worker's queue handling and the completion (status, eventfd).
    complete_ns: AtomicU64,
    /// Not driver time: sleeping until edu's DMA completes.
    edu_wait_ns: AtomicU64,
}

impl CopyStats {
    fn add(&self, counter: &AtomicU64, ns: u64) {
        counter.fetch_add(ns, Ordering::Relaxed);
    }
}

impl debugfs::Show for CopyStats {
    fn show(&self, m: &mut debugfs::SeqFile) -> Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let phases = [
            ("validate_ns", &self.validate_ns),
            ("pin_ns", &self.pin_ns),
            ("map_ns", &self.map_ns),
            ("program_ns", &self.program_ns),
            ("unmap_unpin_ns", &self.unmap_unpin_ns),
            ("complete_ns", &self.complete_ns),
        ];
        let driver = phases
            .iter()
            .fold(0u64, |sum, (_, c)| sum.saturating_add(get(c)));
        let counts = [
            ("submitted", &self.submitted),
            ("ended", &self.ended),
            ("copies", &self.copies),
            ("pieces", &self.pieces),
            ("bytes", &self.bytes),
            ("faults", &self.faults),
            ("messages", &self.messages),
            ("message_faults", &self.message_faults),
            ("attaches", &self.attaches),
            ("attach_ns", &self.attach_ns),
            ("detaches", &self.detaches),
            ("detach_ns", &self.detach_ns),
        ];
        for (name, c) in Iterator::chain(counts.iter(), phases.iter()) {
            writeln!(m, "{} {}", name, get(c)).map_err(|_| EINVAL)?;
        }
        writeln!(m, "driver_ns {}", driver).map_err(|_| EINVAL)?;
        writeln!(m, "edu_wait_ns {}", get(&self.edu_wait_ns)).map_err(|_| EINVAL)
    }
}

/// The peer of the driver time: reading `edu_mdev/peer_memcpy` times a CPU copy of one page
/// (the bytes one piece moves), [`PeerMemcpy::ROUNDS`] times, and prints the mean.
struct PeerMemcpy;

impl PeerMemcpy {
    const ROUNDS: u64 = 1000;
    const BYTES: usize = kernel::page::PAGE_SIZE;
}

impl debugfs::Show for PeerMemcpy {
    fn show(&self, m: &mut debugfs::SeqFile) -> Result {
        let src = KVec::from_elem(0x5au8, Self::BYTES, GFP_KERNEL)?;
        let mut dst = KVec::from_elem(0u8, Self::BYTES, GFP_KERNEL)?;
        let t0 = now_ns();
        for i in 0..Self::ROUNDS {
            dst.copy_from_slice(core::hint::black_box(&src));
            dst[0] = core::hint::black_box(i as u8);
        }
        let ns = since(t0);
        writeln!(
            m,
            "memcpy_bytes {}\nrounds {}\nmemcpy_ns {}",
            Self::BYTES,
            Self::ROUNDS,
            ns / Self::ROUNDS
        )
        .map_err(|_| EINVAL)
    }
}
