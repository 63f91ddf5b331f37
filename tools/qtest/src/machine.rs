// SPDX-License-Identifier: GPL-2.0
//! The arm64 `virt` board seen through qtest: PCI configuration space over ECAM, BAR
//! assignment, MSI programming, guest RAM and the SMMUv3 register page.

use super::client::{QemuConfig, Qtest};
use super::edu::{Edu, EDU_DEVICE_ID, EDU_PASID_DEVICE_ID, EDU_VENDOR_ID};
use super::error::{Error, Result};
use super::ram::GuestRam;
use smmuv3::dma::Mmio;
use std::fmt;
use std::sync::Mutex;

/// Memory map and wiring of QEMU 10.0.2's `virt` machine (`hw/arm/virt.c`, `base_memmap`,
/// `extended_memmap`, `a15irqmap`), as verified by `tests/machine.rs` where marked.
pub mod virt {
    /// Start of guest RAM (verified: RAM reads/writes work from here).
    pub const RAM_BASE: u64 = 0x4000_0000;
    /// Bytes at the start of RAM left alone by [`GuestRam`](crate::GuestRam): with `-bios`
    /// QEMU puts the device tree blob there.
    pub const RAM_RESERVED: u64 = 2 << 20;
    /// SMMUv3 register page 0 (verified: IDR0 reads 0x0d44101b).
    pub const SMMU_BASE: u64 = 0x0905_0000;
    /// Size of the SMMUv3 register frame (pages 0 and 1).
    pub const SMMU_SIZE: u64 = 0x2_0000;
    /// Offset of SMMUv3 register page 1 (EVENTQ_PROD/CONS at +0xa8/+0xac).
    pub const SMMU_PAGE1: u64 = 0x1_0000;
    /// SPI numbers (GIC GPIO-in index) of the SMMU's wired interrupts: event queue, PRI queue,
    /// CMD_SYNC, GERROR (`a15irqmap[VIRT_SMMU] = 74`, four lines; event queue verified).
    pub const SMMU_SPI_EVENTQ: u32 = 74;
    /// SPI of the SMMU's PRI queue interrupt.
    pub const SMMU_SPI_PRIQ: u32 = 75;
    /// SPI of the SMMU's CMD_SYNC interrupt.
    pub const SMMU_SPI_CMD_SYNC: u32 = 76;
    /// SPI of the SMMU's global error interrupt.
    pub const SMMU_SPI_GERROR: u32 = 77;
    /// First of the four PCIe INTx SPIs (INTA..INTD of slot 0; swizzled by slot; verified).
    pub const PCIE_INTX_SPI: u32 = 3;
    /// ECAM with `highmem=off` (16 MiB: buses 0..15) (verified).
    pub const PCIE_ECAM_LOW: u64 = 0x3f00_0000;
    /// Size of the low ECAM.
    pub const PCIE_ECAM_LOW_SIZE: u64 = 0x100_0000;
    /// ECAM with highmem on, the default for `-cpu max` (256 MiB: buses 0..255) (verified).
    pub const PCIE_ECAM_HIGH: u64 = 0x40_1000_0000;
    /// Size of the high ECAM.
    pub const PCIE_ECAM_HIGH_SIZE: u64 = 0x1000_0000;
    /// 32-bit PCI MMIO window; CPU and PCI addresses are identical (verified with edu BAR0).
    pub const PCIE_MMIO: u64 = 0x1000_0000;
    /// Size of the 32-bit PCI MMIO window.
    pub const PCIE_MMIO_SIZE: u64 = 0x2eff_0000;
    /// 64-bit PCI MMIO window (highmem on); not used by the harness.
    pub const PCIE_MMIO_HIGH: u64 = 0x80_0000_0000;
    /// PCI I/O window.
    pub const PCIE_PIO: u64 = 0x3eff_0000;
    /// GICv3 ITS frame; its GITS_TRANSLATER (the MSI doorbell) is at +0x10040.
    pub const GIC_ITS: u64 = 0x0808_0000;
    /// GITS_TRANSLATER.
    pub const GITS_TRANSLATER: u64 = GIC_ITS + 0x1_0040;
    /// QOM path of the GICv3 (with one vCPU, which is `device[0]`) for `irq_intercept_in`.
    pub const GIC_QOM_PATH: &str = "/machine/unattached/device[1]";
    /// Vendor/device word of the GPEX host bridge at 00:00.0 (1b36:0008).
    pub const HOST_BRIDGE_ID: u32 = 0x0008_1b36;
}

/// A PCI function address. On `virt` with `iommu=smmuv3` the SMMU stream ID of a function on
/// the root bus is its requester ID, `bus << 8 | dev << 3 | func`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..32.
    pub dev: u8,
    /// Function number, 0..8.
    pub func: u8,
}

impl Bdf {
    /// A function address; fails on a device number >= 32 or a function number >= 8.
    pub fn new(bus: u8, dev: u8, func: u8) -> Result<Self> {
        if dev >= 32 || func >= 8 {
            return Err(Error::Harness(format!(
                "bad PCI address {bus:02x}:{dev:02x}.{func}"
            )));
        }
        Ok(Self { bus, dev, func })
    }

    /// The requester ID.
    pub fn rid(&self) -> u16 {
        (u16::from(self.bus) << 8) | (u16::from(self.dev & 31) << 3) | u16::from(self.func & 7)
    }

    /// The SMMU stream ID QEMU uses for this function (equal to the requester ID).
    pub fn stream_id(&self) -> u32 {
        u32::from(self.rid())
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// One function found by [`Machine::enumerate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciFunction {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (base, sub, prog-if) in bits 23:0.
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// Header type (bit 7: multi-function).
    pub header_type: u8,
}

/// A memory BAR programmed by [`Machine::assign_bar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// BAR index (0..6).
    pub index: u8,
    /// Assigned CPU (= PCI) address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// 64-bit BAR (occupies two slots).
    pub is_64bit: bool,
    /// Prefetchable.
    pub prefetchable: bool,
}

const PCI_COMMAND: u16 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 0x2;
const PCI_COMMAND_MASTER: u16 = 0x4;
const PCI_STATUS_CAP_LIST: u16 = 0x10;
const PCI_CAP_ID_MSI: u8 = 0x05;

/// Configuration-space access through the ECAM window. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Ecam {
    qt: Qtest,
    base: u64,
    buses: u16,
}

impl Ecam {
    fn addr(&self, bdf: Bdf, off: u16, width: u16) -> Result<u64> {
        if u16::from(bdf.bus) >= self.buses
            || bdf.dev >= 32
            || bdf.func >= 8
            || off >= 4096
            || !off.is_multiple_of(width)
        {
            return Err(Error::Harness(format!(
                "bad config access {bdf} offset {off:#x} width {width} (ECAM covers {} buses)",
                self.buses
            )));
        }
        Ok(self.base
            + (u64::from(bdf.bus) << 20)
            + (u64::from(bdf.dev) << 15)
            + (u64::from(bdf.func) << 12)
            + u64::from(off))
    }

    pub(crate) fn read8(&self, bdf: Bdf, off: u16) -> Result<u8> {
        self.qt.readb(self.addr(bdf, off, 1)?)
    }
    pub(crate) fn read16(&self, bdf: Bdf, off: u16) -> Result<u16> {
        self.qt.readw(self.addr(bdf, off, 2)?)
    }
    pub(crate) fn read32(&self, bdf: Bdf, off: u16) -> Result<u32> {
        self.qt.readl(self.addr(bdf, off, 4)?)
    }
    pub(crate) fn write8(&self, bdf: Bdf, off: u16, v: u8) -> Result<()> {
        self.qt.writeb(self.addr(bdf, off, 1)?, v)
    }
    pub(crate) fn write16(&self, bdf: Bdf, off: u16, v: u16) -> Result<()> {
        self.qt.writew(self.addr(bdf, off, 2)?, v)
    }
    pub(crate) fn write32(&self, bdf: Bdf, off: u16, v: u32) -> Result<()> {
        self.qt.writel(self.addr(bdf, off, 4)?, v)
    }

    pub(crate) fn find_capability(&self, bdf: Bdf, id: u8) -> Result<Option<u8>> {
        if self.read16(bdf, 0x06)? & PCI_STATUS_CAP_LIST == 0 {
            return Ok(None);
        }
        let mut ptr = self.read8(bdf, 0x34)? & !3;
        // At most 48 capabilities fit in the 192 bytes after the header: stop on a loop.
        for _ in 0..48 {
            if ptr < 0x40 {
                return Ok(None);
            }
            if self.read8(bdf, ptr.into())? == id {
                return Ok(Some(ptr));
            }
            ptr = self.read8(bdf, u16::from(ptr) + 1)? & !3;
        }
        Err(Error::Harness(format!("capability list of {bdf} loops")))
    }

    /// Programs and enables single-vector MSI: writes go to `addr` with payload `data`.
    pub(crate) fn msi_enable(&self, bdf: Bdf, addr: u64, data: u16) -> Result<()> {
        let cap = self
            .find_capability(bdf, PCI_CAP_ID_MSI)?
            .ok_or_else(|| Error::Harness(format!("{bdf} has no MSI capability")))?;
        let cap = u16::from(cap);
        let ctrl = self.read16(bdf, cap + 2)?;
        let is_64 = ctrl & 0x80 != 0;
        if !is_64 && addr >> 32 != 0 {
            return Err(Error::Harness(format!(
                "{bdf} has 32-bit MSI, address {addr:#x}"
            )));
        }
        // Disable while reprogramming; one vector (MME = 0).
        self.write16(bdf, cap + 2, ctrl & !0x71)?;
        self.write32(bdf, cap + 4, addr as u32)?;
        let data_off = if is_64 {
            self.write32(bdf, cap + 8, (addr >> 32) as u32)?;
            cap + 0xc
        } else {
            cap + 8
        };
        self.write16(bdf, data_off, data)?;
        self.write16(bdf, cap + 2, (ctrl & !0x70) | 1)
    }

    pub(crate) fn msi_disable(&self, bdf: Bdf) -> Result<()> {
        let cap = self
            .find_capability(bdf, PCI_CAP_ID_MSI)?
            .ok_or_else(|| Error::Harness(format!("{bdf} has no MSI capability")))?;
        let ctrl = self.read16(bdf, u16::from(cap) + 2)?;
        self.write16(bdf, u16::from(cap) + 2, ctrl & !1)
    }
}

/// A started `virt` machine: the qtest client plus PCI, RAM and SMMU helpers.
pub struct Machine {
    qt: Qtest,
    ecam: Ecam,
    ram: GuestRam,
    /// Next free address in the 32-bit PCI MMIO window.
    next_mmio: Mutex<u64>,
}

impl Machine {
    /// Starts QEMU as `config` says and probes the machine.
    pub fn start(config: &QemuConfig) -> Result<Self> {
        let qt = Qtest::spawn(config)?;
        Self::new(qt, config.memory_mb << 20)
    }

    /// Wraps a running `virt` machine with `ram_size` bytes of RAM: finds the ECAM (high
    /// first, then low) by the host bridge's ID at 00:00.0.
    pub fn new(qt: Qtest, ram_size: u64) -> Result<Self> {
        let mut ecam = None;
        for (base, size) in [
            (virt::PCIE_ECAM_HIGH, virt::PCIE_ECAM_HIGH_SIZE),
            (virt::PCIE_ECAM_LOW, virt::PCIE_ECAM_LOW_SIZE),
        ] {
            if qt.readl(base)? == virt::HOST_BRIDGE_ID {
                ecam = Some(Ecam {
                    qt: qt.clone(),
                    base,
                    buses: (size >> 20) as u16,
                });
                break;
            }
        }
        let ecam = ecam.ok_or_else(|| {
            Error::Harness("no GPEX host bridge (1b36:0008) at either virt ECAM base".into())
        })?;
        let usable = ram_size
            .checked_sub(virt::RAM_RESERVED)
            .filter(|&s| s > 0)
            .ok_or_else(|| Error::Harness(format!("{ram_size:#x} bytes of RAM is too little")))?;
        let ram = GuestRam::new(qt.clone(), virt::RAM_BASE + virt::RAM_RESERVED, usable);
        Ok(Self {
            qt,
            ecam,
            ram,
            next_mmio: Mutex::new(virt::PCIE_MMIO),
        })
    }

    /// The qtest client (clone it to share).
    pub fn qtest(&self) -> &Qtest {
        &self.qt
    }

    /// Base of the ECAM window in use.
    pub fn ecam_base(&self) -> u64 {
        self.ecam.base
    }

    /// The guest-RAM allocator (clone it to share).
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// The SMMUv3 register frame at [`virt::SMMU_BASE`].
    pub fn smmu(&self) -> SmmuMmio {
        SmmuMmio {
            qt: self.qt.clone(),
            base: virt::SMMU_BASE,
        }
    }

    /// Reads an 8-bit configuration register.
    pub fn cfg_read8(&self, bdf: Bdf, off: u16) -> Result<u8> {
        self.ecam.read8(bdf, off)
    }
    /// Reads a 16-bit configuration register.
    pub fn cfg_read16(&self, bdf: Bdf, off: u16) -> Result<u16> {
        self.ecam.read16(bdf, off)
    }
    /// Reads a 32-bit configuration register.
    pub fn cfg_read32(&self, bdf: Bdf, off: u16) -> Result<u32> {
        self.ecam.read32(bdf, off)
    }
    /// Writes an 8-bit configuration register.
    pub fn cfg_write8(&self, bdf: Bdf, off: u16, v: u8) -> Result<()> {
        self.ecam.write8(bdf, off, v)
    }
    /// Writes a 16-bit configuration register.
    pub fn cfg_write16(&self, bdf: Bdf, off: u16, v: u16) -> Result<()> {
        self.ecam.write16(bdf, off, v)
    }
    /// Writes a 32-bit configuration register.
    pub fn cfg_write32(&self, bdf: Bdf, off: u16, v: u32) -> Result<()> {
        self.ecam.write32(bdf, off, v)
    }

    /// Lists the functions present on `bus`.
    pub fn enumerate(&self, bus: u8) -> Result<Vec<PciFunction>> {
        let mut found = Vec::new();
        for dev in 0..32 {
            for func in 0..8 {
                let bdf = Bdf::new(bus, dev, func)?;
                let id = self.ecam.read32(bdf, 0)?;
                if id == 0xffff_ffff || id == 0 {
                    if func == 0 {
                        break;
                    }
                    continue;
                }
                let class_rev = self.ecam.read32(bdf, 0x08)?;
                let header_type = self.ecam.read8(bdf, 0x0e)?;
                found.push(PciFunction {
                    bdf,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class: class_rev >> 8,
                    revision: class_rev as u8,
                    header_type,
                });
                if func == 0 && header_type & 0x80 == 0 {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Finds the first function on bus 0 with this vendor and device ID.
    pub fn find(&self, vendor: u16, device: u16) -> Result<Bdf> {
        self.enumerate(0)?
            .into_iter()
            .find(|f| f.vendor == vendor && f.device == device)
            .map(|f| f.bdf)
            .ok_or_else(|| Error::Harness(format!("no PCI device {vendor:04x}:{device:04x}")))
    }

    /// Sizes memory BAR `index` of `bdf` and places it in the 32-bit MMIO window (naturally
    /// aligned, never reused). Memory decoding is off while sizing and stays off.
    pub fn assign_bar(&self, bdf: Bdf, index: u8) -> Result<Bar> {
        if index >= 6 {
            return Err(Error::Harness(format!("BAR index {index} out of range")));
        }
        let off = 0x10 + 4 * u16::from(index);
        let cmd = self.ecam.read16(bdf, PCI_COMMAND)?;
        self.ecam
            .write16(bdf, PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY)?;
        let orig = self.ecam.read32(bdf, off)?;
        if orig & 1 != 0 {
            return Err(Error::Harness(format!("BAR{index} of {bdf} is an I/O BAR")));
        }
        let is_64bit = (orig >> 1) & 3 == 2;
        if is_64bit && index == 5 {
            return Err(Error::Harness(format!("64-bit BAR5 of {bdf}")));
        }
        self.ecam.write32(bdf, off, 0xffff_ffff)?;
        let lo = self.ecam.read32(bdf, off)? & !0xf;
        let mut mask = u64::from(lo) | 0xffff_ffff_0000_0000;
        if is_64bit {
            self.ecam.write32(bdf, off + 4, 0xffff_ffff)?;
            let hi = self.ecam.read32(bdf, off + 4)?;
            mask = (u64::from(hi) << 32) | u64::from(lo);
        }
        if lo == 0 && (!is_64bit || mask == 0) {
            return Err(Error::Harness(format!(
                "BAR{index} of {bdf} is not implemented"
            )));
        }
        let size = (!mask).wrapping_add(1);
        let addr = {
            let mut next = self.next_mmio.lock().unwrap_or_else(|e| e.into_inner());
            let addr = next.checked_next_multiple_of(size);
            let end = addr.and_then(|a| a.checked_add(size));
            match (addr, end) {
                (Some(a), Some(e)) if e <= virt::PCIE_MMIO + virt::PCIE_MMIO_SIZE => {
                    *next = e;
                    a
                }
                _ => {
                    return Err(Error::Harness(format!(
                        "BAR{index} of {bdf} ({size:#x} bytes) does not fit the MMIO window"
                    )))
                }
            }
        };
        self.ecam.write32(bdf, off, addr as u32)?;
        if is_64bit {
            self.ecam.write32(bdf, off + 4, (addr >> 32) as u32)?;
        }
        Ok(Bar {
            index,
            addr,
            size,
            is_64bit,
            prefetchable: orig & 8 != 0,
        })
    }

    /// Sets or clears memory decoding and bus mastering in the command register.
    pub fn enable_device(&self, bdf: Bdf, memory: bool, bus_master: bool) -> Result<()> {
        let mut cmd = self.ecam.read16(bdf, PCI_COMMAND)?;
        cmd &= !(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
        if memory {
            cmd |= PCI_COMMAND_MEMORY;
        }
        if bus_master {
            cmd |= PCI_COMMAND_MASTER;
        }
        self.ecam.write16(bdf, PCI_COMMAND, cmd)
    }

    /// Offset of capability `id` in the standard capability list, if present.
    pub fn find_capability(&self, bdf: Bdf, id: u8) -> Result<Option<u8>> {
        self.ecam.find_capability(bdf, id)
    }

    /// Programs single-vector MSI (address, data) and enables it.
    pub fn msi_enable(&self, bdf: Bdf, addr: u64, data: u16) -> Result<()> {
        self.ecam.msi_enable(bdf, addr, data)
    }

    /// Disables MSI.
    pub fn msi_disable(&self, bdf: Bdf) -> Result<()> {
        self.ecam.msi_disable(bdf)
    }

    /// The GIC SPI (= intercepted GPIO index) a root-bus function's INTx pin is wired to.
    pub fn intx_spi(&self, bdf: Bdf) -> Result<u32> {
        let pin = self.ecam.read8(bdf, 0x3d)?;
        if !(1..=4).contains(&pin) || bdf.bus != 0 {
            return Err(Error::Harness(format!(
                "{bdf} has no root-bus INTx pin ({pin})"
            )));
        }
        Ok(virt::PCIE_INTX_SPI + (u32::from(bdf.dev) + u32::from(pin) - 1) % 4)
    }

    /// Intercepts all GIC inputs: SPIs then show up in [`Qtest::irq_level`] by SPI number
    /// (e.g. [`virt::SMMU_SPI_EVENTQ`]) and no longer reach the (idle) vCPU.
    pub fn intercept_gic(&self) -> Result<()> {
        self.qt.irq_intercept_in(virt::GIC_QOM_PATH)
    }

    /// Finds the first edu device, gives BAR0 an address and enables memory decoding and bus
    /// mastering.
    pub fn edu(&self) -> Result<Edu> {
        self.edu_with_id(EDU_DEVICE_ID)
    }

    /// [`Self::edu`] for the lab QEMU's `edu-pasid`; also sets PASID Enable in its PASID
    /// capability.
    pub fn edu_pasid(&self) -> Result<Edu> {
        let edu = self.edu_with_id(EDU_PASID_DEVICE_ID)?;
        self.set_pasid_enable(edu.bdf(), true)?;
        Ok(edu)
    }

    fn edu_with_id(&self, device_id: u16) -> Result<Edu> {
        let bdf = self.find(EDU_VENDOR_ID, device_id)?;
        let bar = self.assign_bar(bdf, 0)?;
        self.enable_device(bdf, true, true)?;
        Ok(Edu::new(self.qt.clone(), self.ecam.clone(), bdf, bar.addr))
    }

    /// Offset of extended capability `id` (list from 0x100), if present.
    pub fn find_ext_capability(&self, bdf: Bdf, id: u16) -> Result<Option<u16>> {
        let mut off = 0x100u16;
        // At most (4096 - 256) / 4 headers: a looping list cannot hang the walk.
        for _ in 0..960 {
            let hdr = self.ecam.read32(bdf, off)?;
            if hdr == 0 || hdr == u32::MAX {
                return Ok(None);
            }
            if hdr as u16 == id {
                return Ok(Some(off));
            }
            off = (hdr >> 20) as u16 & !3;
            if off < 0x100 {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Sets or clears PASID Enable in the function's PASID capability.
    pub fn set_pasid_enable(&self, bdf: Bdf, enable: bool) -> Result<()> {
        const PASID_CAP_ID: u16 = 0x1b;
        const PASID_CTRL: u16 = 6;
        let off = self
            .find_ext_capability(bdf, PASID_CAP_ID)?
            .ok_or_else(|| Error::Harness(format!("{bdf:?} has no PASID capability")))?;
        self.ecam.write16(bdf, off + PASID_CTRL, u16::from(enable))
    }
}

/// The SMMUv3 register frame over qtest; implements [`Mmio`] with absolute offsets (page 1
/// registers at `0x10000 + x`). Failed accesses read as all-ones and are reported by
/// [`Qtest::check`].
#[derive(Clone)]
pub struct SmmuMmio {
    qt: Qtest,
    base: u64,
}

impl SmmuMmio {
    /// Physical base of register page 0.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The qtest client.
    pub fn qtest(&self) -> &Qtest {
        &self.qt
    }

    fn addr(&self, offset: usize, width: usize) -> Option<u64> {
        let off = offset as u64;
        if !offset.is_multiple_of(width) || off.checked_add(width as u64)? > virt::SMMU_SIZE {
            self.qt.defer(Error::Harness(format!(
                "SMMU register access at {offset:#x} (width {width}) outside the frame"
            )));
            return None;
        }
        Some(self.base + off)
    }

    fn settle<T>(&self, r: Result<T>, fallback: T) -> T {
        r.unwrap_or_else(|e| {
            self.qt.defer(e);
            fallback
        })
    }
}

impl Mmio for SmmuMmio {
    fn read32(&self, offset: usize) -> u32 {
        match self.addr(offset, 4) {
            Some(a) => self.settle(self.qt.readl(a), u32::MAX),
            None => u32::MAX,
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        if let Some(a) = self.addr(offset, 4) {
            self.settle(self.qt.writel(a, value), ());
        }
    }
    fn read64(&self, offset: usize) -> u64 {
        match self.addr(offset, 8) {
            Some(a) => self.settle(self.qt.readq(a), u64::MAX),
            None => u64::MAX,
        }
    }
    fn write64(&self, offset: usize, value: u64) {
        if let Some(a) = self.addr(offset, 8) {
            self.settle(self.qt.writeq(a, value), ());
        }
    }
}
