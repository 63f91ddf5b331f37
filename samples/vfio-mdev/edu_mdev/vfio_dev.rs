// SPDX-License-Identifier: GPL-2.0

//! The mdev as a VFIO device ([`MdevVfio`]): emulated config space and BAR0 register file
//! (`docs/sample-mdev.md`), region/IRQ info, SET_IRQS, RESET, `dma_unmap`.

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

pub(crate) const BAR0_SIZE: u64 = 0x1000;
pub(crate) const CFG_SIZE: usize = 256;
pub(crate) const REGION_SHIFT: u32 = 40;
pub(crate) const BAR0_INDEX: u32 = 0;
pub(crate) const CONFIG_INDEX: u32 = 7;
pub(crate) const NUM_REGIONS: u32 = 9;
pub(crate) const MSI_INDEX: u32 = 1;
pub(crate) const REQ_INDEX: u32 = 4;
pub(crate) const NUM_IRQS: u32 = 5;
/// The emulated device's IDs.
pub(crate) const VENDOR: u16 = 0x1234;
pub(crate) const DEVICE: u16 = 0xed01;
pub(crate) const MSI_CAP: usize = 0x40;

/// Emulated PCI config space: values and, per byte, which bits the user may write.
pub(crate) struct ConfigSpace {
    pub(crate) val: [u8; CFG_SIZE],
    pub(crate) wmask: [u8; CFG_SIZE],
}

impl ConfigSpace {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.val[off..off + out.len()]);
    }

    pub(crate) fn write(&mut self, off: usize, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let m = self.wmask[off + i];
            self.val[off + i] = (self.val[off + i] & !m) | (b & m);
        }
    }
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
    pub(crate) cfg: ConfigSpace,
    pub(crate) regs: Regs,
    pub(crate) msi: Option<EventFd>,
    pub(crate) req: Option<EventFd>,
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

    pub(crate) fn read_reg(&self, off: u64) -> u32 {
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

    /// Splits a device-file offset into (region index, offset in the region).
    pub(crate) fn region(offset: u64) -> (u32, u64) {
        (
            (offset >> REGION_SHIFT) as u32,
            offset & ((1 << REGION_SHIFT) - 1),
        )
    }

    pub(crate) fn set_irqs(dev: &vfio::Device<Self>, arg: usize) -> Result<isize> {
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
