// SPDX-License-Identifier: GPL-2.0

//! The parent's shared state ([`ParentShared`]: PCI device, BAR, PASID set, engine slots) and its
//! engine: one work item serving all mdevs in turn, one page-sized piece per turn
//! (RAM -> edu buffer -> RAM).

use super::*;

/// A copy waiting for (or getting) the engine.
pub(crate) struct Job {
    pub(crate) vdev: ARef<vfio::Device<MdevVfio>>,
    pub(crate) copy: Copy,
    /// Bytes already copied.
    pub(crate) done: u64,
    pub(crate) irq: bool,
    /// The mdev's reset generation at submission (a reset makes older jobs stale).
    pub(crate) gen: u64,
    /// Queue order.
    pub(crate) seq: u64,
}

impl Job {
    /// The mdev was reset since the job was submitted: it must not touch the mdev's memory.
    /// Read inside the mdev's pin scope or under the engine lock (see `reset_locked`).
    fn stale(&self) -> bool {
        self.vdev.gen.load(Ordering::Acquire) != self.gen
    }

    fn touches(&self, id: usize, range: Option<(u64, u64)>) -> bool {
        let c = &self.copy;
        self.vdev.id == id
            && range.map_or(true, |(iova, len)| {
                overlaps(c.src, c.len, iova, len) || overlaps(c.dst, c.len, iova, len)
            })
    }
}

/// The engine's queue, under [`ParentShared::engine`]: shared by the parent's mdevs, served one
/// piece per turn in submission order (a driver's scheduling policy, so it is the sample's: the
/// minimal sample gives each mdev its own `JobWorker` and lets them take turns on edu's lock).
pub(crate) struct Engine {
    /// At most one job per mdev, so [`MAX_MDEVS`] entries suffice; ordered by `seq`.
    pub(crate) queue: [Option<Job>; MAX_MDEVS],
    pub(crate) next_seq: u64,
    /// The work item is queued or running.
    pub(crate) worker_active: bool,
    pub(crate) stopping: bool,
}

/// edu's BAR0, mapped with its registers' span: their offsets are checked when building.
pub(crate) type EduBar = pci::Bar<{ edu::REGS_SIZE }>;

/// Everything of a parent that its mdevs and the engine worker share.
#[pin_data]
pub(crate) struct ParentShared {
    pub(crate) pdev: ARef<pci::Device>,
    pub(crate) bar: Devres<EduBar>,
    /// What the device's engine can do (from the ID table).
    pub(crate) caps: EngineCaps,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) pasids: PasidSet<'static>,
    /// Engine slots: every mdev takes its type's share.
    pub(crate) slots: Arc<Capacity>,
    /// Which mdev ids (indices of the engine's per-mdev state) are in use.
    #[pin]
    pub(crate) ids: Mutex<[bool; MAX_MDEVS]>,
    #[pin]
    pub(crate) engine: Mutex<Engine>,
    #[pin]
    pub(crate) work: Work<ParentShared>,
    /// edu's completion interrupt ([`EduIrq`]) completes it; re-armed before each DMA.
    #[pin]
    pub(crate) dma_done: Completion,
    pub(crate) irq_count: AtomicU32,
    /// A DMA whose completion is edu-pasid's interrupt message is running: an interrupt with
    /// edu's interrupt status clear is ours.
    pub(crate) message_armed: AtomicBool,
    /// Driver time accounting (debugfs `edu_mdev/<parent>`).
    pub(crate) stats: Arc<CopyStats>,
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
    pub(crate) fn new(pdev: &pci::Device<Core>, caps: EngineCaps) -> Result<Arc<Self>> {
        pdev.enable_device()?;
        pdev.set_master()?;
        pdev.dma_set_mask(edu::DMA_BITS)?;
        let bar = pdev.iomap_region_sized::<{ edu::REGS_SIZE }>(0, c_str!("edu_mdev"))?;
        let id = bar.access(pdev.as_ref())?.read32(edu::ID);
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
        let backend: Arc<dyn Backend> = match platform {
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
                slots: Capacity::new(SLOTS)?,
                ids <- new_mutex!([false; MAX_MDEVS], "edu_mdev::ids"),
                engine <- new_mutex!(Engine {
                    queue: [const { None }; MAX_MDEVS],
                    next_seq: 0,
                    worker_active: false,
                    stopping: false,
                }, "edu_mdev::engine"),
                work <- new_work!("edu_mdev::work"),
                dma_done <- Completion::new(),
                irq_count: AtomicU32::new(0),
                message_armed: AtomicBool::new(false),
                stats: Arc::new(CopyStats::default(), GFP_KERNEL)?,
            }),
            GFP_KERNEL,
        )
    }

    /// PASID mode hands the user a device that DMAs wherever the mdev's domain maps, MSI
    /// doorbells included: like VFIO (`allow_unsafe_interrupts` of type1 and iommufd), an mdev
    /// opens only if the parent's MSIs are isolated (GICv3's ITS tells devices apart by their
    /// DeviceID), unless the administrator set the module parameter `allow_unsafe_interrupts`.
    /// Mediated mode never lets the user's addresses reach the device.
    pub(crate) fn check_msi_isolation(&self) -> Result {
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

    // -- the engine --

    /// Queues `job`; starts the worker if it is idle. Fails with `Aborted` if the parent is
    /// going away and with `Busy` if the mdev has a copy queued already (the caller's registers
    /// say it has not; a stale job must never take a second queue entry).
    pub(crate) fn submit(self: &Arc<Self>, mut job: Job) -> core::result::Result<(), CopyError> {
        let mut e = self.engine.lock();
        if e.stopping {
            return Err(CopyError::Aborted);
        }
        let id = job.vdev.id;
        if e.queue.iter().flatten().any(|j| j.vdev.id == id) {
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
    pub(crate) fn run_engine(&self) {
        loop {
            let queueing = self.stats.span(Phase::Complete);
            let mut e = self.engine.lock();
            let next = e
                .queue
                .iter()
                .enumerate()
                .filter_map(|(i, j)| j.as_ref().map(|j| (i, j.seq)))
                .min_by_key(|&(_, seq)| seq)
                .map(|(i, _)| i);
            let Some(i) = next.filter(|_| !e.stopping) else {
                e.worker_active = false;
                return;
            };
            let Some(mut job) = e.queue[i].take() else {
                continue;
            };
            drop(e);
            drop(queueing);

            let r = self.copy_piece(&job);

            let _completing = self.stats.span(Phase::Complete);
            let mut e = self.engine.lock();
            let finished = match r {
                // Reset since it was submitted: dropped (the reset took the mdev's jobs off
                // the queue and nothing reports it).
                _ if job.stale() => None,
                Ok(n) if job.done + n < job.copy.len => {
                    job.done += n;
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
                }
                Ok(_) => Some((job, None)),
                Err(err) => Some((job, Some(err))),
            };
            drop(e);
            if let Some((job, err)) = finished {
                job.vdev.complete(&job, err);
                self.stats.count(Event::Ended { ok: err.is_none() });
            }
        }
    }

    /// Copies the next piece of `job`: at most one page on each side and at most edu's buffer.
    /// The two pages are pinned and mapped only for this piece, inside the mdev's pin scope
    /// (before the first piece, every page of the copy is pinned once to check it is mapped).
    pub(crate) fn copy_piece(&self, job: &Job) -> core::result::Result<u64, CopyError> {
        let copy = &job.copy;
        let p = copy
            .piece(job.done, PAGE, edu::DMA_BUF_SIZE as u64)
            .ok_or(CopyError::Device)?;
        let (sp, dp) = (p.src_page(PAGE), p.dst_page(PAGE));
        let vdev = &job.vdev;
        let backend = &*self.backend;
        let st = &self.stats;
        let tag = backend.tags_dma().then_some(vdev.pasid);
        let scope = vdev.pins.scope();
        if job.stale() {
            return Err(CopyError::Aborted);
        }
        if job.done == 0 {
            let _t = st.span(Phase::Validate);
            if tag.is_some() && !pasid_reachable(copy) {
                return Err(CopyError::Unmapped);
            }
            check_mapped(&scope, vdev, copy)?;
        }
        let pinning = st.span(Phase::Pin);
        // Source and destination in one page: pinned and mapped once, read-write.
        let dst_pin = scope
            .pin(vdev, dp, 1, Prot::READ | Prot::WRITE)
            .map_err(pin_error)?;
        let src_pin = if p.one_page(PAGE) {
            None
        } else {
            Some(scope.pin(vdev, sp, 1, Prot::READ).map_err(pin_error)?)
        };
        drop(pinning);
        let mapping = st.span(Phase::Map);
        let dir = if src_pin.is_some() {
            DataDirection::FromDevice
        } else {
            DataDirection::Bidirectional
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
                    .map(vdev.pasid, pin, sp, DataDirection::ToDevice)
                    .map_err(|_| CopyError::Device)?,
            ),
            None => None,
        };
        drop(mapping);
        let src_addr = s.as_ref().unwrap_or(&d).addr() + p.src % PAGE;
        self.edu_dma(src_addr, edu::DMA_BUF, p.len, edu::DMA_START, tag)?;
        self.edu_dma(
            edu::DMA_BUF,
            d.addr() + p.dst % PAGE,
            p.len,
            edu::DMA_START | edu::DMA_TO_RAM,
            tag,
        )?;
        // Counted inside the pin scope, which a reset and an unmap wait out: when either
        // returns, every piece of the mdev that moved a byte is counted (`mdev:race_reset_cmd`
        // reads the counter right after a reset; counted after the scope, a piece the reset had
        // waited for showed up there as DMA after the reset returned).
        st.count(Event::Piece { bytes: p.len });
        // Unmapped, then unpinned, then the scope ends (on an error above, the same happens
        // as the locals drop).
        let _t = st.span(Phase::UnmapUnpin);
        drop(s);
        drop(d);
        drop(src_pin);
        drop(dst_pin);
        drop(scope);
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
    pub(crate) fn edu_dma(
        &self,
        src: u64,
        dst: u64,
        count: u64,
        cmd: u64,
        tag: Option<u32>,
    ) -> core::result::Result<(), CopyError> {
        let mut clock = self.stats.dma_clock();
        // PASID mode: the completion is the message tagged like the DMA, through the mdev's
        // domain (where its doorbell is bound).
        let msg = tag.and_then(|p| self.backend.completion_message(p));
        // Re-armed before edu is started: the interrupt of this DMA cannot be missed.
        self.dma_done.reinit();
        self.message_armed.store(msg.is_some(), Ordering::Release);
        self.bar.try_access_with(|b| {
            if self.caps.pasid_tagged_dma {
                // Untagged (0) unless in PASID mode; only edu-pasid has the register.
                let reg = tag.map_or(0, |p| p | edu::DMA_PASID_EN);
                b.write32(reg, edu::DMA_PASID);
                if let Some((addr, data)) = msg {
                    b.write32(addr as u32, edu::IMS_ADDR_LO);
                    b.write32((addr >> 32) as u32, edu::IMS_ADDR_HI);
                    b.write32(data, edu::IMS_DATA);
                }
                let ctrl = if msg.is_some() { edu::IMS_CTRL_EN } else { 0 };
                b.write32(ctrl, edu::IMS_CTRL);
            }
            b.write64(src, edu::DMA_SRC);
            b.write64(dst, edu::DMA_DST);
            b.write64(count, edu::DMA_COUNT);
            b.write64(cmd | edu::DMA_IRQ, edu::DMA_CMD);
        })
        .ok_or(CopyError::Device)?;
        // Sleep until edu's completion MSI (see `EduIrq`); the timeout keeps this working, by
        // polling, if the interrupt is lost or there is none. Re-armed before each look at
        // edu's status, so an interrupt after the look ends the next wait at once.
        for _ in 0..200 {
            let busy = self
                .bar
                .try_access_with(|b| b.read64(edu::DMA_CMD) & edu::DMA_START != 0)
                .ok_or(CopyError::Device)?;
            if !busy {
                return match tag {
                    Some(pasid) => self
                        .dma_result(pasid, src, dst)?
                        .and(self.message_result(pasid, msg)?),
                    None => Ok(()),
                };
            }
            clock.waiting(|| {
                self.dma_done
                    .wait_for_completion_timeout(msecs_to_jiffies(20))
            });
            self.dma_done.reinit();
        }
        dev_err!(&*self.pdev, "edu DMA did not complete\n");
        Err(CopyError::Device)
    }

    /// The outcome of a finished PASID-tagged DMA (edu-pasid's result register): the outer
    /// error if the register cannot be read, the inner one if the DMA failed.
    pub(crate) fn dma_result(
        &self,
        pasid: u32,
        src: u64,
        dst: u64,
    ) -> core::result::Result<core::result::Result<(), CopyError>, CopyError> {
        let bar = self.bar.try_access().ok_or(CopyError::Device)?;
        let r = bar.read32(edu::DMA_RESULT);
        Ok(match r {
            0 => Ok(()),
            edu::DMA_RESULT_ERROR => {
                self.stats.count(Event::DmaFault);
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
    pub(crate) fn message_result(
        &self,
        pasid: u32,
        msg: Option<(u64, u32)>,
    ) -> core::result::Result<core::result::Result<(), CopyError>, CopyError> {
        let Some((addr, _)) = msg else {
            return Ok(Ok(()));
        };
        let bar = self.bar.try_access().ok_or(CopyError::Device)?;
        let ctrl = bar.read32(edu::IMS_CTRL);
        let refused = ctrl & edu::IMS_CTRL_FAULT != 0;
        self.stats.count(Event::Message { refused });
        if !refused {
            return Ok(Ok(()));
        }
        dev_err!(
            &*self.pdev,
            "edu_mdev: PASID {} completion message to {:#x} faulted in the IOMMU (no doorbell in the mdev's domain): interrupt lost, copy ends with a device error\n",
            pasid,
            addr
        );
        Ok(Err(CopyError::Device))
    }

    /// Takes the queued jobs of mdev `id` that touch `range` (all of them for `None`) off the
    /// queue and returns them. A piece on the hardware is not waited for here: the mdev's pin
    /// scope is (`PinGate::unmap`, `reset_locked`).
    pub(crate) fn take_jobs(
        &self,
        id: usize,
        range: Option<(u64, u64)>,
    ) -> [Option<Job>; MAX_MDEVS] {
        let mut out: [Option<Job>; MAX_MDEVS] = [const { None }; MAX_MDEVS];
        let mut e = self.engine.lock();
        let taken = e
            .queue
            .iter_mut()
            .filter(|q| q.as_ref().is_some_and(|j| j.touches(id, range)));
        for (q, slot) in taken.zip(out.iter_mut()) {
            *slot = q.take();
        }
        out
    }

    /// Stops the engine: no new jobs, the worker returns at its next turn; waits until it did,
    /// so neither this object nor the module's code goes away under it.
    pub(crate) fn shutdown(&self) {
        self.engine.lock().stopping = true;
        self.work.flush();
    }
}

/// Checks that every page of `copy` is mapped (readable source, writable destination) by
/// pinning each span once inside the mdev's pin scope, so a copy to partly unmapped memory
/// fails before any byte moves. Run by the engine before the first piece, like a piece's pins:
/// a `dma_unmap` waits for it and the unmap fence covers it (pinning from the `CMD` write,
/// outside both, let `VFIO_IOMMU_UNMAP_DMA` find pages still pinned after the callback: issue
/// 11).
fn check_mapped(
    scope: &vfio::PinScope<'_>,
    dev: &vfio::Device<MdevVfio>,
    copy: &Copy,
) -> core::result::Result<(), CopyError> {
    for (first, npages, access) in copy.page_spans(PAGE) {
        let prot = match access {
            Access::Read => Prot::READ,
            Access::ReadWrite => Prot::READ | Prot::WRITE,
        };
        scope.pin(dev, first, npages, prot).map_err(pin_error)?;
    }
    Ok(())
}

/// PASID mode: whether the engine can reach both ranges of `copy` at the user's IOVAs. It
/// masks its addresses to its DMA width (an IOVA beyond would alias a lower one), and every aux
/// domain reserves its MSI window (`MsiWindow::default()`), where no user page can be mapped.
/// Checked before the first piece, like the user's mappings: `ERROR` 4 before any byte moves.
pub(crate) fn pasid_reachable(copy: &Copy) -> bool {
    let limit = 1u64 << edu::DMA_BITS;
    let msi = MsiWindow::default();
    [copy.src, copy.dst].into_iter().all(|a| {
        a.checked_add(copy.len).is_some_and(|end| end <= limit) && !msi.overlaps(a, copy.len)
    })
}

/// What a failed pin tells the user: the memory is not there (`ERROR` 4), unless the kernel ran
/// out of memory pinning it (`ERROR` 9: the parent could not do the DMA; the fault-injection
/// sweep `mdev:fault_sweep` found `ENOMEM` reported as "unmapped").
pub(crate) fn pin_error(e: Error) -> CopyError {
    if e == ENOMEM {
        CopyError::Device
    } else {
        CopyError::Unmapped
    }
}

pub(crate) fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}
