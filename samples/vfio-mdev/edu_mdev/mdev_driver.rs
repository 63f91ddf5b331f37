// SPDX-License-Identifier: GPL-2.0

//! The mdev driver ([`MdevDriver`], a `kernel::mdev::parent` driver): probe (engine slots, a
//! PASID, the VFIO device), the `pasid` and `mode` attributes, remove.

use super::*;

/// What an mdev holds of its parent: an id, a PASID (attached to the backend) and engine
/// slots; given back on drop, after the VFIO device is gone ([`MdevData`]'s field order).
pub(crate) struct MdevSlot {
    pub(crate) parent: Arc<ParentShared>,
    pub(crate) id: usize,
    pub(crate) pasid: u32,
    /// Dropped last: the slots return once the rest is released.
    pub(crate) _units: Reserved,
}

impl Drop for MdevSlot {
    fn drop(&mut self) {
        let parent = &self.parent;
        let timed = parent
            .backend
            .tags_dma()
            .then(|| parent.stats.span(Phase::Detach));
        parent.backend.detach(self.pasid);
        drop(timed);
        let _ = parent.pasids.free(self.pasid);
        parent.ids.lock()[self.id] = false;
    }
}

/// Per-mdev driver data. Drop order: the VFIO registration (waits for the user), then the
/// slot (PASID detached and freed, id and engine slots given back).
pub(crate) struct MdevData {
    pub(crate) _reg: vfio::Registration<MdevVfio>,
    pub(crate) slot: MdevSlot,
}

/// `pasid`: the mdev's PASID.
pub(crate) struct PasidAttr;
impl MdevAttribute<MdevDriver> for PasidAttr {
    fn show(_: &EduParent, _: &mdev::Device, d: &MdevData, out: &mut sysfs::Buffer<'_>) -> Result {
        writeln!(out, "{}", d.slot.pasid).map_err(|_| EINVAL)
    }
}

/// `mode`: `pasid` or `mediated`.
pub(crate) struct ModeAttr;
impl MdevAttribute<MdevDriver> for ModeAttr {
    fn show(p: &EduParent, _: &mdev::Device, _: &MdevData, out: &mut sysfs::Buffer<'_>) -> Result {
        writeln!(out, "{}", p.shared.backend.mode()).map_err(|_| EINVAL)
    }
}

kernel::mdev_attribute_group!(
    ATTRS,
    MdevDriver,
    [("pasid", PasidAttr), ("mode", ModeAttr)]
);

pub(crate) struct MdevDriver;

#[vtable]
impl ParentDriver for MdevDriver {
    type ParentData = EduParent;
    type TypeData = EduType;
    type Data = MdevData;
    const NAME: &'static CStr = c_str!("edu_mdev");
    const DEVICE_API: &'static CStr = c_str!("vfio-pci");
    const TYPES: &'static [TypeInfo<EduType>] = &TYPES;
    const ATTRIBUTES: Option<&'static AttributeGroup<Self>> = Some(&ATTRS);

    fn probe(parent: &EduParent, mdev: &mdev::Device, ty: &EduType) -> Result<MdevData> {
        let parent = &parent.shared;
        // 1. Engine slots, an id and a PASID; given back if anything below fails.
        let units = parent.slots.take(ty.slots)?;
        let (id, pasid) = {
            let mut ids = parent.ids.lock();
            let id = ids.iter().position(|used| !used).ok_or(ENOSPC)?;
            let pasid = parent.pasids.alloc(PASID_RANGE, id)?;
            ids[id] = true;
            (id, pasid)
        };
        let slot = MdevSlot {
            parent: parent.clone(),
            id,
            pasid,
            _units: units,
        };
        // 2. The PASID attached (PASID mode), then the VFIO device.
        let timed = parent
            .backend
            .tags_dma()
            .then(|| parent.stats.span(Phase::Attach));
        if let Err(e) = parent.backend.attach(pasid) {
            if let Some(span) = timed {
                span.discard();
            }
            return Err(e);
        }
        drop(timed);
        let vdev = vfio::Device::new(
            mdev.as_ref(),
            try_pin_init!(MdevVfio {
                parent: parent.clone(),
                id,
                pasid,
                pins <- vfio::PinGate::new(),
                gen: AtomicU64::new(0),
                st <- new_mutex!(vpci::DeviceState::new(&FACE)?),
            }),
        )?;
        let reg = vfio::Registration::new(&vdev)?;
        dev_info!(
            mdev,
            "edu_mdev: {} mdev, PASID {}, mode {}\n",
            ty.name,
            pasid,
            parent.backend.mode()
        );
        Ok(MdevData { _reg: reg, slot })
    }

    fn remove(_parent: &EduParent, mdev: &mdev::Device, data: MdevData) {
        let pasid = data.slot.pasid;
        // Unregisters the VFIO device (asking an open user to release it and waiting until it
        // did), then gives the slot back.
        drop(data);
        dev_info!(mdev, "edu_mdev: mdev removed, PASID {} freed\n", pasid);
    }

    fn available(parent: &EduParent, ty: &EduType) -> u32 {
        parent.shared.slots.available(ty.slots)
    }

    fn description(_parent: &EduParent, ty: &EduType, out: &mut mdev::SysfsBuf<'_>) -> Result {
        writeln!(out, "{} ({} of {} slots)", ty.description, ty.slots, SLOTS).map_err(|_| EINVAL)
    }
}
