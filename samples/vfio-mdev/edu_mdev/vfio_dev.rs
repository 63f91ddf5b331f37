// SPDX-License-Identifier: GPL-2.0

//! The mdev as a VFIO device ([`MdevVfio`]): the copy engine's registers (the portable
//! `copy_engine::regfile`, `docs/sample-mdev.md`) and what their writes start, RESET and
//! `dma_unmap`. Config space, region routing, the info ioctls, SET_IRQS and the release request
//! are the framework's (`vfio::pci::RegisterDeviceOps`).

use super::*;

/// The emulated device's vfio-pci face: IDs, class `08 80 00` (other system peripheral),
/// revision 1, BAR0 (the register file) and one MSI vector.
pub(crate) const FACE: vpci::Face = vpci::Face {
    vendor: 0x1234,
    device: 0xed01,
    class: 0x08_80_00,
    revision: 1,
    bar0_size: 0x1000,
};

/// The VFIO device of an mdev.
#[pin_data]
pub(crate) struct MdevVfio {
    pub(crate) parent: Arc<ParentShared>,
    /// Slot index in the parent.
    pub(crate) id: usize,
    pub(crate) pasid: u32,
    /// The engine pins this mdev's pages only through it: `dma_unmap` fences the range and
    /// waits for the piece holding pins.
    #[pin]
    pub(crate) pins: vfio::PinGate,
    /// Bumped by every reset (under `st`): jobs submitted before are stale, the engine drops
    /// them and their completions are ignored.
    pub(crate) gen: AtomicU64,
    #[pin]
    pub(crate) st: Mutex<vpci::DeviceState<RegFile>>,
}

impl MdevVfio {
    /// Called by the engine when `job` finished (`err` None) or failed: `STATUS`, `COMPLETED`,
    /// and the MSI if the copy asked for it; nothing for a job older than the last reset.
    pub(crate) fn complete(&self, job: &Job, err: Option<CopyError>) {
        let mut st = self.st.lock();
        if self.gen.load(Ordering::Acquire) != job.gen {
            return;
        }
        st.regs.finish(err);
        if job.irq {
            st.pci.irqs.signal(vpci::MSI_IRQ_INDEX);
        }
    }

    /// The reset with the device state `st` locked all along: no `CMD` can queue a job between
    /// the generation bump and the abort (a stale job would run after the reset returned), and
    /// when it returns no DMA of the mdev is in flight: the engine checks the generation inside
    /// the mdev's pin scope, which this waits out. Lock order: `st`, then the engine (the
    /// worker takes `st` only outside both the engine lock and the pin scope).
    pub(crate) fn reset_locked(dev: &vfio::Device<Self>, st: &mut vpci::DeviceState<RegFile>) {
        dev.gen.fetch_add(1, Ordering::AcqRel);
        drop(dev.parent.take_jobs(dev.id, None));
        dev.pins.wait_idle();
        st.regs.clear();
    }
}

impl vpci::RegisterDeviceOps for MdevVfio {
    const NAME: &'static CStr = c_str!("edu-mdev");
    const FACE: vpci::Face = FACE;
    type Regs = RegFile;

    fn state(&self) -> &Mutex<vpci::DeviceState<RegFile>> {
        &self.st
    }

    fn read_reg(dev: &vfio::Device<Self>, regs: &RegFile, off: u64) -> u32 {
        regs.read(off, dev.pasid)
    }

    /// A register write. A started copy is queued under the state lock, the lock a reset holds
    /// while it bumps the generation and takes the mdev's jobs off the engine: the job is
    /// either queued before the reset (which then aborts it) or built after it.
    fn write_reg(dev: &vfio::Device<Self>, off: u64, val: u32) {
        let mut st = dev.st.lock();
        match st.regs.write(off, val) {
            WriteEffect::Start { copy, irq } => {
                let _t = dev.parent.stats.span(Phase::Validate);
                let job = Job {
                    vdev: ARef::from(dev),
                    copy,
                    done: 0,
                    irq,
                    gen: dev.gen.load(Ordering::Acquire),
                    seq: 0,
                };
                // The pages are checked by the engine, before the first piece.
                if let Err(e) = dev.parent.submit(job) {
                    st.regs.finish(Some(e));
                    if irq {
                        st.pci.irqs.signal(vpci::MSI_IRQ_INDEX);
                    }
                }
                dev.parent.stats.count(Event::Submitted);
            }
            WriteEffect::Interrupt => {
                st.pci.irqs.signal(vpci::MSI_IRQ_INDEX);
            }
            WriteEffect::Reset => Self::reset_locked(dev, &mut st),
            WriteEffect::None => {}
        }
    }

    /// Aborts this mdev's copies (waiting for a piece on the hardware), clears the registers;
    /// the eventfds are kept.
    fn reset(dev: &vfio::Device<Self>) {
        Self::reset_locked(dev, &mut dev.st.lock());
    }

    fn open(dev: &vfio::Device<Self>) -> Result {
        dev.parent.check_msi_isolation()?;
        dev.pins.clear();
        Ok(())
    }

    fn close(dev: &vfio::Device<Self>) {
        // Nothing of this user is pinned any more (the reset waited), and the next user maps
        // afresh.
        dev.pins.clear();
    }

    /// Copies touching the range fail with "unmapped". The engine pins (a piece's pages, or a
    /// copy's pages once before its first piece) only inside the mdev's pin scope, which
    /// `PinGate::unmap` fences and waits out: after it, nothing is pinned in the range and the
    /// fence keeps the engine from pinning it again until the unmapping task is back in user
    /// space (type1 would retry and BUG otherwise: `vfio::UnmapFence`). The queued jobs that
    /// touch the range end at once.
    fn unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        dev.pins.unmap(iova, length);
        let jobs = dev.parent.take_jobs(dev.id, Some((iova, length)));
        for job in jobs.into_iter().flatten() {
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
