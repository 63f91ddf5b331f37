// SPDX-License-Identifier: GPL-2.0

//! The mdev driver ([`MdevDriver`]): probe (PASID, VFIO device, sysfs attributes), remove.

use super::*;

/// Per-mdev driver data; dropped in [`MdevDriver::remove`].
pub(crate) struct MdevData {
    pub(crate) parent: Arc<ParentShared>,
    pub(crate) id: usize,
    pub(crate) pasid: u32,
    // Drop order: the attributes first, then the VFIO registration (waits for the user).
    pub(crate) _attrs: [sysfs::File; 2],
    pub(crate) _reg: vfio::Registration<MdevVfio>,
}

/// The parent of mdev `dev`, from a sysfs callback of the mdev's own attributes.
pub(crate) fn mdev_parent(dev: &Device) -> Result<&Device> {
    // SAFETY: called from `show` of an attribute of `dev`, which is removed (waiting for running
    // `show`s) before the mdev is unregistered: `dev` is registered while the result is used.
    unsafe { dev.parent() }.ok_or(ENODEV)
}

/// `pasid`: the mdev's PASID.
pub(crate) struct PasidAttr;
impl sysfs::AttributeOps for PasidAttr {
    fn show(dev: &Device, out: &mut sysfs::Buffer<'_>) -> Result {
        let parent = registry_find(mdev_parent(dev)?).ok_or(ENODEV)?;
        let pasid = parent.pasid_of(dev).ok_or(ENODEV)?;
        writeln!(out, "{}", pasid).map_err(|_| EINVAL)
    }
}
kernel::device_attribute!(PASID_ATTR, PasidAttr, "pasid", 0o444);

/// `mode`: `pasid` or `mediated`.
pub(crate) struct ModeAttr;
impl sysfs::AttributeOps for ModeAttr {
    fn show(dev: &Device, out: &mut sysfs::Buffer<'_>) -> Result {
        let parent = registry_find(mdev_parent(dev)?).ok_or(ENODEV)?;
        writeln!(out, "{}", parent.backend.mode()).map_err(|_| EINVAL)
    }
}
kernel::device_attribute!(MODE_ATTR, ModeAttr, "mode", 0o444);

pub(crate) struct MdevDriver;

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
    pub(crate) fn setup(
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
    pub(crate) fn release(parent: &ParentShared, id: usize, pasid: u32) {
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
