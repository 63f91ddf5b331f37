// SPDX-License-Identifier: GPL-2.0

//! What every mediated `vfio-pci` device emulates: a virtual config space, the region layout of
//! the device file and the eventfds behind its interrupt indices.
//!
//! C counterparts: `drivers/vfio/pci/vfio_pci_config.c` (write masks, BAR sizing, the MSI
//! capability), `include/linux/vfio_pci_core.h` (`VFIO_PCI_OFFSET_SHIFT`, the fixed region and
//! IRQ indices) and `vfio_set_irqs_validate_and_prepare` in `drivers/vfio/vfio_main.c`, whose
//! Rust form is [`uapi::IrqSet::from_user`](super::uapi::IrqSet::from_user); [`IrqEventfds`]
//! applies a validated request to the device's eventfds.
//!
//! A driver built on these keeps only its own registers: `read`/`write` decode the offset once
//! with [`RegionAccess::decode`], config space goes to [`ConfigSpace`], `SET_IRQS` to
//! [`IrqEventfds::set_irqs_from_user`].

use super::uapi;
use crate::{
    error::{code::*, Result},
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// Size of the emulated (conventional PCI) config space.
pub const CONFIG_SIZE: usize = 256;
/// Bits of a device-file offset below the region index (`VFIO_PCI_OFFSET_SHIFT`).
pub const REGION_SHIFT: u32 = 40;
/// `VFIO_PCI_BAR0_REGION_INDEX` (BARs 0-5 are indices 0-5).
pub const BAR0_REGION_INDEX: u32 = 0;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const CONFIG_REGION_INDEX: u32 = 7;
/// `VFIO_PCI_NUM_REGIONS` (BARs, ROM, config, VGA).
pub const NUM_REGIONS: u32 = 9;
/// `VFIO_PCI_INTX_IRQ_INDEX`.
pub const INTX_IRQ_INDEX: u32 = 0;
/// `VFIO_PCI_MSI_IRQ_INDEX`.
pub const MSI_IRQ_INDEX: u32 = 1;
/// `VFIO_PCI_REQ_IRQ_INDEX`: the core asks the user to release the device.
pub const REQ_IRQ_INDEX: u32 = 4;
/// `VFIO_PCI_NUM_IRQS`.
pub const NUM_IRQS: u32 = 5;

/// The device-file offset of region `index` (`VFIO_PCI_INDEX_TO_OFFSET`), for
/// `VFIO_DEVICE_GET_REGION_INFO` replies.
pub const fn region_offset(index: u32) -> u64 {
    (index as u64) << REGION_SHIFT
}

/// One `read(2)`/`write(2)` of the device file, decoded once for both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionAccess {
    /// Region index (`BAR0_REGION_INDEX`, `CONFIG_REGION_INDEX`, ...).
    pub index: u32,
    /// Offset in the region.
    pub offset: u64,
    /// Bytes accessed.
    pub len: usize,
}

impl RegionAccess {
    /// Decodes an access of `len` bytes at device-file `pos`. `region_size(index)` is the size
    /// of each region (0: absent). The access must be non-empty and inside a present region
    /// (`EINVAL` otherwise), so a driver never sees a partial or straddling access.
    pub fn decode(pos: u64, len: usize, region_size: impl Fn(u32) -> u64) -> Result<Self> {
        let index = u32::try_from(pos >> REGION_SHIFT).map_err(|_| EINVAL)?;
        let offset = pos & ((1u64 << REGION_SHIFT) - 1);
        if index >= NUM_REGIONS || len == 0 {
            return Err(EINVAL);
        }
        let end = offset.checked_add(len as u64).ok_or(EINVAL)?;
        if end > region_size(index) {
            return Err(EINVAL);
        }
        Ok(Self { index, offset, len })
    }

    /// A 32-bit register read: checks the access is one aligned `u32`, writes `read(offset)`
    /// to the user (little endian); returns the bytes read.
    pub fn read_u32(self, buf: &mut UserSliceWriter, read: impl FnOnce(u64) -> u32) -> Result<usize> {
        let a = self.aligned(&[4])?;
        buf.write_slice(&read(a.offset).to_le_bytes())?;
        Ok(4)
    }

    /// A 32-bit register write: checks the access is one aligned `u32` and reads it from the
    /// user.
    pub fn write_u32(self, buf: &mut UserSliceReader) -> Result<u32> {
        self.aligned(&[4])?;
        let mut b = [0u8; 4];
        buf.read_slice(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The access if it is naturally aligned and one of `widths` bytes wide (what a register
    /// file, or a config-space write, can honour); `EINVAL` otherwise.
    pub fn aligned(self, widths: &[usize]) -> Result<Self> {
        if !widths.contains(&self.len) || self.offset % self.len as u64 != 0 {
            return Err(EINVAL);
        }
        Ok(self)
    }
}

/// An emulated PCI config space: the values and, per byte, the bits a user may write.
///
/// Everything a user writes goes through the write mask, which is what makes BAR sizing work
/// (a BAR of size `n` has its low `log2(n)` bits read-only zero, so writing all-ones reads back
/// `!(n - 1)`) and keeps IDs, class and the capability list read-only.
///
/// # Invariants
///
/// Capabilities added with [`ConfigSpace::add_msi`] are linked from `CAPABILITY_LIST` (0x34)
/// and the status register's capability-list bit is set.
pub struct ConfigSpace {
    val: [u8; CONFIG_SIZE],
    wmask: [u8; CONFIG_SIZE],
    msi: Option<usize>,
}

impl ConfigSpace {
    /// `PCI_COMMAND` bits a user may write: memory space, bus master, INTx disable.
    const COMMAND_WMASK: [u8; 2] = [0x06, 0x04];

    /// A type-0 header with the given IDs (also as subsystem IDs), 24-bit class code and
    /// revision; no BARs or capabilities yet.
    pub fn new(vendor: u16, device: u16, class: u32, revision: u8) -> Self {
        let mut c = Self { val: [0; CONFIG_SIZE], wmask: [0; CONFIG_SIZE], msi: None };
        let class = class.to_le_bytes();
        c.put(0x00, &vendor.to_le_bytes(), &[]);
        c.put(0x02, &device.to_le_bytes(), &[]);
        c.put(0x04, &[0; 2], &Self::COMMAND_WMASK);
        c.put(0x08, &[revision, class[0], class[1], class[2]], &[]);
        c.put(0x2c, &vendor.to_le_bytes(), &[]);
        c.put(0x2e, &device.to_le_bytes(), &[]);
        c
    }

    /// Sets bytes at a fixed, in-range offset (only called with constants of this file).
    fn put(&mut self, off: usize, val: &[u8], wmask: &[u8]) {
        if let Some(v) = self.val.get_mut(off..off + val.len()) {
            v.copy_from_slice(val);
        }
        if let Some(m) = self.wmask.get_mut(off..off + wmask.len()) {
            m.copy_from_slice(wmask);
        }
    }

    /// Declares BAR `index` (0-5) as 32-bit non-prefetchable memory of `size` bytes (a power
    /// of two, at least 16). `EINVAL` otherwise.
    pub fn add_bar32(&mut self, index: usize, size: u32) -> Result {
        if index > 5 || size < 16 || !size.is_power_of_two() {
            return Err(EINVAL);
        }
        self.put(0x10 + 4 * index, &[0; 4], &(!(size - 1)).to_le_bytes());
        Ok(())
    }

    /// Adds a 64-bit, single-vector MSI capability at `off` (dword aligned, after the header,
    /// 14 bytes free) and links it as the first capability. Enable, address and data are
    /// writable; the vector count is fixed at one.
    pub fn add_msi(&mut self, off: usize) -> Result {
        if off < 0x40 || off % 4 != 0 || off + 14 > CONFIG_SIZE || self.msi.is_some() {
            return Err(EINVAL);
        }
        let next = self.val[0x34];
        // ID 0x05 (MSI), next, control: 64-bit address capable (bit 7), enable writable (bit 0).
        self.put(off, &[0x05, next, 0x80, 0x00], &[0, 0, 0x01, 0]);
        self.put(off + 4, &[0; 4], &[0xfc, 0xff, 0xff, 0xff]);
        self.put(off + 8, &[0; 4], &[0xff; 4]);
        self.put(off + 12, &[0; 2], &[0xff; 2]);
        self.val[0x34] = off as u8;
        // PCI_STATUS_CAP_LIST.
        self.val[0x06] |= 0x10;
        self.msi = Some(off);
        Ok(())
    }

    /// Whether the user enabled MSI (always false without an MSI capability).
    pub fn msi_enabled(&self) -> bool {
        self.msi.is_some_and(|off| self.val[off + 2] & 1 != 0)
    }

    /// Whether the user enabled memory space decoding (`PCI_COMMAND_MEMORY`).
    pub fn memory_enabled(&self) -> bool {
        self.val[0x04] & 0x02 != 0
    }

    fn range(off: u64, len: usize) -> Result<core::ops::Range<usize>> {
        let off = usize::try_from(off).map_err(|_| EINVAL)?;
        let end = off.checked_add(len).ok_or(EINVAL)?;
        if end > CONFIG_SIZE {
            return Err(EINVAL);
        }
        Ok(off..end)
    }

    /// Reads `out.len()` bytes at `off`; `EINVAL` past the end.
    pub fn read(&self, off: u64, out: &mut [u8]) -> Result {
        out.copy_from_slice(&self.val[Self::range(off, out.len())?]);
        Ok(())
    }

    /// Writes `data` at `off` through the write mask; `EINVAL` past the end (nothing written).
    pub fn write(&mut self, off: u64, data: &[u8]) -> Result {
        let r = Self::range(off, data.len())?;
        for ((v, m), b) in self.val[r.clone()].iter_mut().zip(&self.wmask[r]).zip(data) {
            *v = (*v & !m) | (b & m);
        }
        Ok(())
    }

    /// A `read(2)` of the config region: any length inside it (a VMM such as QEMU's vfio-pci
    /// reads it whole); returns the bytes read.
    pub fn read_user(&self, a: &RegionAccess, buf: &mut UserSliceWriter) -> Result<usize> {
        let mut tmp = [0u8; CONFIG_SIZE];
        let out = tmp.get_mut(..a.len).ok_or(EINVAL)?;
        self.read(a.offset, out)?;
        buf.write_slice(out)?;
        Ok(a.len)
    }

    /// A `write(2)` of the config region: 1, 2 or 4 aligned bytes (a guest's access sizes),
    /// through the write mask; returns the bytes written.
    pub fn write_user(&mut self, a: &RegionAccess, buf: &mut UserSliceReader) -> Result<usize> {
        let a = a.aligned(&[1, 2, 4])?;
        let mut tmp = [0u8; 4];
        buf.read_slice(&mut tmp[..a.len])?;
        self.write(a.offset, &tmp[..a.len])?;
        Ok(a.len)
    }

    /// Little-endian `u32` at `off` (e.g. a BAR), `EINVAL` past the end.
    pub fn read32(&self, off: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

/// Answers the information ioctls of a vfio-pci device: `VFIO_DEVICE_GET_INFO` (flags `PCI |
/// RESET`, [`NUM_REGIONS`], [`NUM_IRQS`]), `VFIO_DEVICE_GET_REGION_INFO` (regions of
/// `region_size(index)` bytes, read/write if present, at [`region_offset`]) and
/// `VFIO_DEVICE_GET_IRQ_INFO` (`irq_count(index)` eventfd vectors). `None` for other commands.
pub fn info_ioctl(
    cmd: u32,
    arg: usize,
    region_size: impl Fn(u32) -> u64,
    irq_count: impl Fn(u32) -> u32,
) -> Option<Result<isize>> {
    Some(match cmd {
        uapi::DEVICE_GET_INFO => uapi::DeviceInfo {
            flags: uapi::DEVICE_FLAGS_PCI | uapi::DEVICE_FLAGS_RESET,
            num_regions: NUM_REGIONS,
            num_irqs: NUM_IRQS,
        }
        .reply_to_user(arg),
        uapi::DEVICE_GET_REGION_INFO => uapi::RegionInfoRequest::from_user(arg, NUM_REGIONS).and_then(|req| {
            let size = region_size(req.index);
            let flags = if size > 0 { uapi::REGION_READ | uapi::REGION_WRITE } else { 0 };
            let offset = region_offset(req.index);
            uapi::RegionInfo { flags, size, offset, caps: None }.reply_to_user(&req, arg)
        }),
        uapi::DEVICE_GET_IRQ_INFO => uapi::IrqInfoRequest::from_user(arg, NUM_IRQS).and_then(|req| {
            let count = irq_count(req.index);
            let flags = if count > 0 { uapi::IRQ_INFO_EVENTFD | uapi::IRQ_INFO_NORESIZE } else { 0 };
            req.reply_to_user(arg, flags, count)
        }),
        _ => return None,
    })
}

/// The eventfds behind a device's interrupt indices, one vector per supported index (MSI with
/// one vector, the request IRQ), set with `VFIO_DEVICE_SET_IRQS`.
///
/// The indices not in `supported` report zero vectors, so validation refuses everything but
/// "disable" (count 0) for them, as vfio-pci does for absent interrupts.
#[cfg(CONFIG_EVENTFD)]
pub struct IrqEventfds {
    supported: &'static [u32],
    fds: [Option<crate::eventfd::EventFd>; NUM_IRQS as usize],
}

#[cfg(CONFIG_EVENTFD)]
impl IrqEventfds {
    /// No eventfd set; `supported` lists the indices with one vector (e.g.
    /// `&[MSI_IRQ_INDEX, REQ_IRQ_INDEX]`).
    pub fn new(supported: &'static [u32]) -> Self {
        Self { supported, fds: [const { None }; NUM_IRQS as usize] }
    }

    /// Vectors of `index` (for `VFIO_DEVICE_GET_IRQ_INFO` and validation).
    pub fn count(&self, index: u32) -> u32 {
        u32::from(self.supported.contains(&index))
    }

    /// Validates the `VFIO_DEVICE_SET_IRQS` request at user address `arg` (as C
    /// `vfio_set_irqs_validate_and_prepare`) and applies it.
    pub fn set_irqs_from_user(&mut self, arg: usize) -> Result<isize> {
        let supported = self.supported;
        let set = uapi::IrqSet::from_user(arg, NUM_IRQS, |i| u32::from(supported.contains(&i)))?;
        self.apply(&set)?;
        Ok(0)
    }

    /// Applies a validated request: `TRIGGER` with an eventfd sets it (-1 clears it), with no
    /// data and count 0 clears it, with no data or a true bool fires it (loopback, as
    /// vfio-pci). Masking is refused (`EINVAL`): the vectors are not maskable.
    pub fn apply(&mut self, set: &uapi::IrqSet) -> Result {
        use uapi::{IrqAction, IrqSetData};
        if set.action != IrqAction::Trigger {
            return Err(EINVAL);
        }
        if self.count(set.index) == 0 {
            // Validation let only "disable" of an absent index through: nothing to do.
            return Ok(());
        }
        let slot = self.fds.get_mut(set.index as usize).ok_or(EINVAL)?;
        match &set.data {
            IrqSetData::Eventfd(fds) => {
                *slot = match fds.first() {
                    Some(&fd) if fd >= 0 => Some(crate::eventfd::EventFd::from_fd(fd)?),
                    _ => None,
                };
            }
            IrqSetData::None if set.count == 0 => *slot = None,
            IrqSetData::None => {
                if let Some(e) = slot {
                    e.signal();
                }
            }
            IrqSetData::Bool(b) => {
                if let (Some(e), Some(true)) = (slot.as_ref(), b.first()) {
                    e.signal();
                }
            }
        }
        Ok(())
    }

    /// Whether an eventfd is set for `index`.
    pub fn is_set(&self, index: u32) -> bool {
        self.fds.get(index as usize).is_some_and(Option::is_some)
    }

    /// Signals the eventfd of `index`; false if none is set.
    pub fn signal(&self, index: u32) -> bool {
        match self.fds.get(index as usize) {
            Some(Some(e)) => {
                e.signal();
                true
            }
            _ => false,
        }
    }

    /// Drops every eventfd (close, release).
    pub fn clear(&mut self) {
        self.fds = [const { None }; NUM_IRQS as usize];
    }
}

/// Where a [`RegisterDevice`] access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The config region (any length inside it for reads; 1, 2 or 4 aligned bytes for writes).
    Config(RegionAccess),
    /// The 32-bit register at this offset of BAR0 (the access is one aligned `u32`).
    Register(u64),
}

/// The result of [`RegisterDevice::write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Config space took this many bytes (through its write mask).
    Config(usize),
    /// The user wrote `value` to the register at `offset` of BAR0: the driver's to apply
    /// (4 bytes consumed).
    Register {
        /// Offset in BAR0.
        offset: u64,
        /// The value written.
        value: u32,
    },
}

/// The vfio-pci face of a device whose whole interface is BAR0 of 32-bit registers and one MSI
/// vector: config space (IDs, BAR0, an MSI capability), the region layout, the information
/// ioctls and the eventfds behind `VFIO_DEVICE_SET_IRQS` (MSI and the request IRQ).
///
/// What a mediated device model repeats around its registers, in one place: a driver keeps it
/// in its device state (under the lock that guards its registers) and routes `read`, `write`
/// and `ioctl` through it, keeping only the registers themselves.
#[cfg(CONFIG_EVENTFD)]
pub struct RegisterDevice {
    /// The emulated config space.
    pub cfg: ConfigSpace,
    /// The interrupt eventfds (MSI and request).
    pub irqs: IrqEventfds,
    bar0_size: u32,
}

#[cfg(CONFIG_EVENTFD)]
impl RegisterDevice {
    /// Interrupt indices with one vector each.
    pub const IRQS: &'static [u32] = &[MSI_IRQ_INDEX, REQ_IRQ_INDEX];
    /// Offset of the MSI capability in config space.
    pub const MSI_CAP: usize = 0x40;

    /// A device with these IDs, class code and revision (as [`ConfigSpace::new`]) and a 32-bit
    /// BAR0 of `bar0_size` bytes (a power of two, at least 16: `EINVAL` otherwise).
    pub fn new(vendor: u16, device: u16, class: u32, revision: u8, bar0_size: u32) -> Result<Self> {
        let mut cfg = ConfigSpace::new(vendor, device, class, revision);
        cfg.add_bar32(0, bar0_size)?;
        cfg.add_msi(Self::MSI_CAP)?;
        Ok(Self { cfg, irqs: IrqEventfds::new(Self::IRQS), bar0_size })
    }

    /// Size of region `index`: BAR0, config space, 0 (absent) for the others.
    pub fn region_size(&self, index: u32) -> u64 {
        match index {
            BAR0_REGION_INDEX => u64::from(self.bar0_size),
            CONFIG_REGION_INDEX => CONFIG_SIZE as u64,
            _ => 0,
        }
    }

    /// Routes an access of `len` bytes at device-file `pos`: `EINVAL` outside a present region
    /// or for a BAR0 access that is not one aligned `u32`.
    pub fn route(&self, pos: u64, len: usize) -> Result<Target> {
        let a = RegionAccess::decode(pos, len, |i| self.region_size(i))?;
        match a.index {
            CONFIG_REGION_INDEX => Ok(Target::Config(a)),
            _ => Ok(Target::Register(a.aligned(&[4])?.offset)),
        }
    }

    /// A `read(2)` of the device file: config space from here, a register from `reg(offset)`;
    /// returns the bytes read.
    pub fn read(&self, buf: &mut UserSliceWriter, pos: u64, reg: impl FnOnce(u64) -> u32) -> Result<usize> {
        match self.route(pos, buf.len())? {
            Target::Config(a) => self.cfg.read_user(&a, buf),
            Target::Register(offset) => {
                buf.write_slice(&reg(offset).to_le_bytes())?;
                Ok(4)
            }
        }
    }

    /// A `write(2)` of the device file: config space is written here, a register write is
    /// returned for the driver to apply (after it dropped the lock guarding `self`, if the
    /// register's effect needs it).
    pub fn write(&mut self, buf: &mut UserSliceReader, pos: u64) -> Result<Written> {
        match self.route(pos, buf.len())? {
            Target::Config(a) => Ok(Written::Config(self.cfg.write_user(&a, buf)?)),
            Target::Register(offset) => {
                let mut b = [0u8; 4];
                buf.read_slice(&mut b)?;
                Ok(Written::Register { offset, value: u32::from_le_bytes(b) })
            }
        }
    }

    /// The device ioctls but `VFIO_DEVICE_RESET` (the driver's): the information ioctls (see
    /// [`info_ioctl`]) and `VFIO_DEVICE_SET_IRQS`; `ENOTTY` for other commands.
    pub fn ioctl(&mut self, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == uapi::DEVICE_SET_IRQS {
            return self.irqs.set_irqs_from_user(arg);
        }
        let irqs = &self.irqs;
        info_ioctl(cmd, arg, |i| self.region_size(i), |i| irqs.count(i)).unwrap_or(Err(ENOTTY))
    }
}

/// The identity of a [`RegisterDevice`]: its [`RegisterDevice::new`] arguments, so the framework
/// can build a fresh one at every open.
#[derive(Clone, Copy, Debug)]
pub struct Face {
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// Class code (base class, subclass, programming interface).
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// BAR0's size in bytes (a power of two, at least 16).
    pub bar0_size: u32,
}

#[cfg(CONFIG_EVENTFD)]
impl Face {
    /// A new [`RegisterDevice`] with this identity (config space at its reset values, no
    /// eventfds).
    pub fn build(&self) -> Result<RegisterDevice> {
        RegisterDevice::new(self.vendor, self.device, self.class, self.revision, self.bar0_size)
    }
}

/// What a register device keeps under its one lock: its vfio-pci face and the driver's
/// registers (`R`).
#[cfg(CONFIG_EVENTFD)]
pub struct DeviceState<R> {
    /// Config space, regions, eventfds.
    pub pci: RegisterDevice,
    /// The driver's registers.
    pub regs: R,
}

#[cfg(CONFIG_EVENTFD)]
impl<R: Default> DeviceState<R> {
    /// A fresh face of identity `face` and registers at their reset values.
    pub fn new(face: &Face) -> Result<Self> {
        Ok(Self { pci: face.build()?, regs: R::default() })
    }
}

/// A VFIO device whose interface is a [`RegisterDevice`]: implement this and the framework
/// implements [`DeviceOps`](super::DeviceOps) for it, routing `read`, `write` and `ioctl` through
/// the face, rebuilding it at open, resetting and dropping the eventfds at close and answering
/// the core's release requests. The driver writes only its registers, its reset and its unmap.
///
/// Locking: the state lock ([`RegisterDeviceOps::state`]) is held across
/// [`RegisterDeviceOps::read_reg`] and never across [`RegisterDeviceOps::write_reg`] or
/// [`RegisterDeviceOps::reset`], which may take it themselves (a register's effect, e.g.
/// queueing work under it) or wait for work that takes it.
#[cfg(CONFIG_EVENTFD)]
pub trait RegisterDeviceOps: Sized + Send + Sync + 'static {
    /// Name of the ops (`vfio_device_ops.name`).
    const NAME: &'static crate::str::CStr;
    /// The device's vfio-pci identity.
    const FACE: Face;
    /// The driver's registers (`Default`: their reset values).
    type Regs: Default + Send;

    /// The lock guarding the face and the registers.
    fn state(&self) -> &crate::sync::Mutex<DeviceState<Self::Regs>>;
    /// What a read of the register at `offset` of BAR0 returns (state locked).
    fn read_reg(dev: &super::Device<Self>, regs: &Self::Regs, offset: u64) -> u32;
    /// A write of `value` to the register at `offset` of BAR0 (state not locked).
    fn write_reg(dev: &super::Device<Self>, offset: u64, value: u32);
    /// Device reset (`VFIO_DEVICE_RESET`, and at close): when it returns no work of the device
    /// runs and its registers are at their reset values; the eventfds stay (state not locked).
    fn reset(dev: &super::Device<Self>);
    /// First open, before the face and registers are rebuilt (e.g. refuse with an error).
    fn open(_dev: &super::Device<Self>) -> Result {
        Ok(())
    }
    /// Last close, after the reset and after the eventfds were dropped.
    fn close(_dev: &super::Device<Self>) {}
    /// [`DeviceOps::dma_unmap`](super::DeviceOps::dma_unmap): unpin everything in the range.
    fn unmap(dev: &super::Device<Self>, iova: u64, length: u64);
}

#[cfg(CONFIG_EVENTFD)]
impl<T: RegisterDeviceOps> super::DeviceOps for T {
    const NAME: &'static crate::str::CStr = <T as RegisterDeviceOps>::NAME;

    fn open_device(dev: &super::Device<Self>) -> Result {
        T::open(dev)?;
        let fresh = DeviceState::new(&T::FACE)?;
        *dev.state().lock() = fresh;
        Ok(())
    }

    fn close_device(dev: &super::Device<Self>) {
        T::reset(dev);
        dev.state().lock().pci.irqs.clear();
        T::close(dev);
    }

    fn read(dev: &super::Device<Self>, mut buf: UserSliceWriter, offset: u64) -> Result<usize> {
        let st = dev.state().lock();
        st.pci.read(&mut buf, offset, |off| T::read_reg(dev, &st.regs, off))
    }

    fn write(dev: &super::Device<Self>, mut buf: UserSliceReader, offset: u64) -> Result<usize> {
        // Only the face's own decoding under the lock: the register's effect takes it itself.
        let written = dev.state().lock().pci.write(&mut buf, offset)?;
        match written {
            Written::Config(n) => Ok(n),
            Written::Register { offset, value } => {
                T::write_reg(dev, offset, value);
                Ok(4)
            }
        }
    }

    fn ioctl(dev: &super::Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == uapi::DEVICE_RESET {
            T::reset(dev);
            return Ok(0);
        }
        dev.state().lock().pci.ioctl(cmd, arg)
    }

    fn request(dev: &super::Device<Self>, count: u32) {
        let asked = dev.state().lock().pci.irqs.signal(REQ_IRQ_INDEX);
        // Said once per unregistration (the core asks again every 10 s).
        if count == 0 && asked {
            crate::dev_info!(dev.device(), "{}: asking the user to release the device\n", <T as RegisterDeviceOps>::NAME);
        } else if count == 0 {
            crate::dev_info!(dev.device(), "{}: device in use and no request eventfd: waiting for close\n", <T as RegisterDeviceOps>::NAME);
        }
    }

    fn dma_unmap(dev: &super::Device<Self>, iova: u64, length: u64) {
        T::unmap(dev, iova, length);
    }
}
