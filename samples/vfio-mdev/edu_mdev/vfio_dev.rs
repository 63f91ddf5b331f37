// SPDX-License-Identifier: GPL-2.0

//! The mdev as a VFIO device ([`MdevVfio`]): the BAR0 register file of the copy engine
//! (`docs/sample-mdev.md`), RESET and `dma_unmap`; config space, region routing, the info
//! ioctls and SET_IRQS are `kernel::vfio::pci::RegisterDevice`'s.

use super::*;

/// Register file of the virtual copy engine (BAR0), see `docs/sample-mdev.md`.
pub(crate) mod regs {
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

/// BAR0's size (the register file).
pub(crate) const BAR0_SIZE: u32 = 0x1000;

/// The emulated device's vfio-pci face: IDs, class `08 80 00` (other system peripheral),
/// revision 1, BAR0 and one MSI vector (`kernel::vfio::pci`: config space with its write masks,
/// region routing, the information ioctls and the SET_IRQS eventfds).
pub(crate) fn pci_face() -> Result<vpci::RegisterDevice> {
    vpci::RegisterDevice::new(0x1234, 0xed01, 0x08_80_00, 1, BAR0_SIZE)
}

/// The copy engine's registers of one mdev.
#[derive(Default)]
pub(crate) struct Regs {
    pub(crate) src: u64,
    pub(crate) dst: u64,
    pub(crate) len: u32,
    pub(crate) status: u32,
    pub(crate) completed: u32,
    /// Bumped by reset/close: completions of older jobs are ignored.
    pub(crate) gen: u64,
}

/// Mutable state of an mdev's VFIO device.
pub(crate) struct DevState {
    pub(crate) pci: vpci::RegisterDevice,
    pub(crate) regs: Regs,
}

/// The VFIO device of an mdev.
#[pin_data]
pub(crate) struct MdevVfio {
    pub(crate) parent: Arc<ParentShared>,
    /// Slot index in the parent.
    pub(crate) id: usize,
    pub(crate) pasid: u32,
    /// The ranges being unmapped: the engine does not pin them.
    pub(crate) fence: vfio::UnmapFence,
    #[pin]
    pub(crate) st: Mutex<DevState>,
}

impl MdevVfio {
    /// Called by the engine when `job` finished (`err` None) or failed.
    pub(crate) fn complete(&self, job: &Job, err: Option<CopyError>) {
        let mut st = self.st.lock();
        if st.regs.gen != job.gen {
            return;
        }
        Self::finish(&mut st, job.irq, err);
    }

    /// Ends the current command of a device (state `st`, locked): `STATUS = DONE | ERROR`,
    /// `COMPLETED` counts it if it succeeded, the MSI eventfd fires if it asked for it.
    pub(crate) fn finish(st: &mut DevState, irq: bool, err: Option<CopyError>) {
        let code = err.map_or(0, CopyError::code);
        st.regs.status = regs::STATUS_DONE | (code << regs::ERROR_SHIFT);
        if err.is_none() {
            st.regs.completed = st.regs.completed.wrapping_add(1);
        }
        if irq {
            st.pci.irqs.signal(vpci::MSI_IRQ_INDEX);
        }
    }

    /// Checks that every page of `copy` is mapped (readable source, writable destination) by
    /// pinning each span once, so a copy to partly unmapped memory fails before any byte moves.
    /// Run by the engine worker before the first piece, like a piece's pins: a `dma_unmap`
    /// waits for it and the unmap fence covers it (pinning from the `CMD` write, outside both,
    /// let `VFIO_IOMMU_UNMAP_DMA` find pages still pinned after the callback: issue 11).
    pub(crate) fn check_mapped(
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
    pub(crate) fn write_reg(dev: &vfio::Device<Self>, off: u64, val: u32) {
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
                        st.regs.status =
                            regs::STATUS_DONE | (CopyError::BadCommand.code() << regs::ERROR_SHIFT);
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

    /// The register at `off`, from the registers `r` (locked by the caller).
    pub(crate) fn read_reg(&self, r: &Regs, off: u64) -> u32 {
        match off {
            regs::ID => regs::ID_VALUE,
            regs::PASID => self.pasid,
            regs::SRC_LO => r.src as u32,
            regs::SRC_HI => (r.src >> 32) as u32,
            regs::DST_LO => r.dst as u32,
            regs::DST_HI => (r.dst >> 32) as u32,
            regs::LEN => r.len,
            regs::STATUS => r.status,
            regs::COMPLETED => r.completed,
            regs::MAX_LEN => copy_engine::COPY_MAX as u32,
            _ => 0,
        }
    }

    /// Device reset: aborts this mdev's copies (waiting for a piece on the hardware), clears the
    /// registers. Interrupt set-up is kept.
    pub(crate) fn reset(dev: &vfio::Device<Self>) {
        Self::reset_locked(dev, &mut dev.st.lock());
    }

    /// The reset with the device state `st` locked all along: no `CMD` can queue a job between
    /// the generation bump and the abort (a stale job would run after the reset returned and
    /// take a second queue entry of the parent), and when it returns no DMA of the mdev is in
    /// flight. Lock order: `st`, then the engine (the worker takes `st` only after it dropped
    /// the engine lock and cleared `running`, so the abort's wait ends).
    pub(crate) fn reset_locked(dev: &vfio::Device<Self>, st: &mut DevState) {
        st.regs.gen += 1;
        drop(dev.parent.abort(dev.id, None));
        st.regs = Regs {
            gen: st.regs.gen,
            ..Regs::default()
        };
    }
}

impl vfio::DeviceOps for MdevVfio {
    const NAME: &'static CStr = c_str!("edu-mdev");

    fn open_device(dev: &vfio::Device<Self>) -> Result {
        dev.parent.check_msi_isolation()?;
        dev.fence.clear();
        let mut st = dev.st.lock();
        st.pci = pci_face()?;
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
        st.pci.irqs.clear();
        drop(st);
        // Nothing of this user is pinned any more, and the next user maps afresh.
        dev.fence.clear();
    }

    fn read(dev: &vfio::Device<Self>, mut buf: UserSliceWriter, offset: u64) -> Result<usize> {
        let st = dev.st.lock();
        st.pci
            .read(&mut buf, offset, |off| dev.read_reg(&st.regs, off))
    }

    fn write(dev: &vfio::Device<Self>, mut buf: UserSliceReader, offset: u64) -> Result<usize> {
        // A register's effect takes the state lock itself: not held across it.
        let written = dev.st.lock().pci.write(&mut buf, offset)?;
        match written {
            vpci::Written::Config(n) => Ok(n),
            vpci::Written::Register { offset, value } => {
                Self::write_reg(dev, offset, value);
                Ok(4)
            }
        }
    }

    fn ioctl(dev: &vfio::Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == uapi::DEVICE_RESET {
            Self::reset(dev);
            return Ok(0);
        }
        dev.st.lock().pci.ioctl(cmd, arg)
    }

    fn request(dev: &vfio::Device<Self>, count: u32) {
        let st = dev.st.lock();
        let asked = st.pci.irqs.signal(vpci::REQ_IRQ_INDEX);
        if count == 0 && asked {
            dev_info!(
                dev.device(),
                "edu_mdev: asking the user to release the device\n"
            );
        } else if count == 0 {
            dev_info!(
                dev.device(),
                "edu_mdev: device in use and no request eventfd: waiting for close\n"
            );
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
