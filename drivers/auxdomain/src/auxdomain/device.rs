// SPDX-License-Identifier: GPL-2.0
//! A PCIe function with PASIDs enabled: its master (STEs + CD table) and PASID limits.

use super::error::{Error, Result};
use super::policy::{usable_pasid_range, PasidLimits};
use super::smmuv3::device::{Master, Smmu};
use super::smmuv3::dma::{DmaAllocator, DmaMemory, Mmio};
use super::smmuv3::ste::{s1dss, MasterOptions};
use super::smmuv3::store::TableStore;

/// The device's PCIe PASID Extended Capability (PCIe 6.0 7.8.8), as read by the PCI core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasidCap {
    /// Max PASID Width (1..=20): the device supports PASIDs below `1 << max_pasid_bits`.
    pub max_pasid_bits: u32,
}

/// What the caller knows about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo<'a> {
    /// Identifier unique among the caller's devices (e.g. the requester ID).
    pub id: u32,
    /// StreamIDs (requester IDs) of the device.
    pub sids: &'a [u32],
    /// The PASID capability, `None` if the device has none.
    pub pasid: Option<PasidCap>,
    /// Smallest PASID the device driver accepts (raised to 1: PASID 0 is the RID context).
    pub min_pasid: u32,
    /// Largest PASID the device driver accepts (lowered to what device and SMMU support).
    pub max_pasid: u32,
    /// The device uses ATS: CD/TLB changes are followed by ATC invalidations.
    pub ats: bool,
    /// The platform can strip No_snoop for this device's streams (what the SMMU or host
    /// bridge must guarantee for `enforce_cache_coherency`).
    pub snoop_control: bool,
}

/// What happens to the device's traffic without PASID (the requester-ID context), i.e.
/// STE.S1DSS while PASIDs are enabled (IHI0070 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RidMode {
    /// Untagged traffic is terminated (S1DSS = 0b00, F_STREAM_DISABLED).
    Blocked,
    /// Untagged traffic bypasses translation (S1DSS = 0b01).
    Identity,
    /// Untagged traffic translates through CD 0, the domain with this ASID (S1DSS = 0b10;
    /// transactions tagged with PASID 0 are then terminated, F_STREAM_DISABLED).
    Domain(u16),
}

impl RidMode {
    /// The STE.S1DSS value for this mode.
    pub const fn s1dss(self) -> u8 {
        match self {
            Self::Blocked => s1dss::TERMINATE,
            Self::Identity => s1dss::BYPASS,
            Self::Domain(_) => s1dss::SSID0,
        }
    }
}

/// A device with PASIDs enabled. Create with [`AuxDevice::enable_pasid`], give back with
/// [`AuxDevice::disable_pasid`] once no domain is attached.
pub struct AuxDevice<D: DmaMemory, S: TableStore<D>> {
    pub(super) id: u32,
    pub(super) master: Master<D, S>,
    pub(super) min_pasid: u32,
    pub(super) max_pasid: u32,
    pub(super) ats: bool,
    pub(super) snoop_control: bool,
    pub(super) rid: RidMode,
    /// What untagged traffic does without a requester-ID domain (`Blocked` or `Identity`):
    /// what detaching the requester-ID domain returns to.
    pub(super) rid_idle: RidMode,
    /// Aux attachments (PASID != 0).
    pub(super) aux_count: u32,
}

impl<D: DmaMemory, S: TableStore<D>> AuxDevice<D, S> {
    /// Enables PASIDs for a device: checks the device's PASID capability and the SMMU's
    /// SubstreamID bits (`EOPNOTSUPP` if either is missing: nothing is programmed and nothing
    /// pretends to succeed), computes the usable PASID range
    /// `[max(min_pasid, 1), min(max_pasid, 2^bits - 1)]` with `bits` = min(device, SMMU, CD
    /// table format), allocates the CD table and points every StreamID's STE at it with
    /// S1DSS from `rid` (`Blocked` or `Identity`; a requester-ID domain is attached later with
    /// `AuxDomain::attach_rid`; detaching it returns to `rid`, or to what
    /// [`AuxDevice::set_rid_mode`] set since).
    pub fn enable_pasid<M: Mmio, A: DmaAllocator<Memory = D>>(
        smmu: &mut Smmu<M, A, S>,
        info: &DeviceInfo<'_>,
        rid: RidMode,
    ) -> Result<Self>
    where
        S: Default,
    {
        // Both capabilities first: nothing is programmed for a device that cannot use PASIDs.
        let limits = |iommu_bits| PasidLimits {
            device_bits: info.pasid.map(|c| c.max_pasid_bits),
            iommu_bits,
            min_pasid: info.min_pasid,
            max_pasid: info.max_pasid,
        };
        usable_pasid_range(&limits(smmu.features().ssid_bits))?;
        if matches!(rid, RidMode::Domain(_)) {
            return Err(Error::InvalidArgument);
        }
        let opts = MasterOptions {
            ats: info.ats,
            stall: false,
        };
        let dev_bits = info.pasid.map_or(0, |c| c.max_pasid_bits.min(20));
        let mut master = smmu.new_master(info.sids, dev_bits, opts)?;
        // The master's bits also honour the CD table format (S1CDMax).
        let (_, min_pasid, max_pasid) = usable_pasid_range(&limits(master.ssid_bits()))?;
        smmu.ensure_cd_table(&mut master)?;
        smmu.attach_cd_table(&mut master, rid.s1dss())?;
        Ok(Self {
            id: info.id,
            master,
            min_pasid,
            max_pasid,
            ats: info.ats,
            snoop_control: info.snoop_control,
            rid,
            rid_idle: rid,
            aux_count: 0,
        })
    }

    /// Disables PASIDs: every StreamID aborts again and the CD table is freed. Refused with
    /// `EBUSY` (the device is handed back in the error) while a domain is attached at a PASID
    /// or as requester-ID domain.
    pub fn disable_pasid<M: Mmio, A: DmaAllocator<Memory = D>>(
        self,
        smmu: &mut Smmu<M, A, S>,
    ) -> core::result::Result<(), (Error, Self)> {
        if self.aux_count != 0 || matches!(self.rid, RidMode::Domain(_)) {
            return Err((Error::StillAttached, self));
        }
        match smmu.detach(&self.master) {
            Ok(()) => Ok(()),
            Err(e) => Err((e.into(), self)),
        }
    }

    /// Changes what untagged traffic does while no requester-ID domain is attached.
    pub fn set_rid_mode<M: Mmio, A: DmaAllocator<Memory = D>>(
        &mut self,
        smmu: &mut Smmu<M, A, S>,
        mode: RidMode,
    ) -> Result<()>
    where
        S: Default,
    {
        match (self.rid, mode) {
            (RidMode::Domain(_), _) => Err(Error::StillAttached),
            (_, RidMode::Domain(_)) => Err(Error::InvalidArgument),
            _ => {
                smmu.attach_cd_table(&mut self.master, mode.s1dss())?;
                self.rid = mode;
                self.rid_idle = mode;
                Ok(())
            }
        }
    }

    /// The caller's identifier of the device.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The usable PASID range (inclusive).
    pub fn pasid_range(&self) -> (u32, u32) {
        (self.min_pasid, self.max_pasid)
    }

    /// SubstreamID bits of the CD table (STE.S1CDMax).
    pub fn ssid_bits(&self) -> u32 {
        self.master.ssid_bits()
    }

    /// The requester-ID context.
    pub fn rid_mode(&self) -> RidMode {
        self.rid
    }

    /// Number of domains attached at PASIDs.
    pub fn aux_attachments(&self) -> u32 {
        self.aux_count
    }

    /// The StreamIDs.
    pub fn sids(&self) -> &[u32] {
        self.master.sids()
    }

    /// The master (STEs, CD table), for inspection.
    pub fn master(&self) -> &Master<D, S> {
        &self.master
    }

    /// Whether the CD at `pasid` is valid (a domain is attached there).
    pub fn pasid_in_use(&self, pasid: u32) -> bool {
        match self.master.cd_table() {
            Some(t) => t.slot(pasid).is_some() && t.read(pasid).v(),
            None => false,
        }
    }
}
