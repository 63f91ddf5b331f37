// SPDX-License-Identifier: GPL-2.0
//! The auxiliary-domain layer on the SMMU model with SSIDSIZE = 20: PASID enablement,
//! attach/detach, isolation, lazily grown CD tables, MSI doorbells, no-snoop policy, every
//! error path, and cost figures.

mod common;

use auxdomain::smmuv3::dma::{DmaAllocator, DmaMemory};
use auxdomain::Prot;
use auxdomain::{
    AuxDevice, Error, MsiSource, MsiWindow, NoSnoopControl, PasidCap, RidMode, Unsupported,
    MAX_ATTACH, SW_MSI_BASE, SW_MSI_SIZE,
};
use common::*;
use smmu_model::{Coherency, DmaError, Features, TranslateError};

/// Event id of a failed DMA, with SSV and SubstreamID.
fn fault(r: Result<Coherency, DmaError>) -> (u8, bool, u32) {
    match r {
        Err(DmaError::Translate {
            error: TranslateError::Fault(f),
            ..
        }) => (f.event.id(), f.event.ssv(), f.event.ssid()),
        other => panic!("expected a fault, got {other:?}"),
    }
}

const F_TRANSLATION: u8 = 0x10;
const C_BAD_CD: u8 = 0x0a;
const C_BAD_SUBSTREAMID: u8 = 0x08;
const F_STREAM_DISABLED: u8 = 0x06;

#[test]
fn enable_pasid_checks_device_and_smmu() {
    let mut r = Rig::new();
    let before = r.smmu.read_ste(3);
    // No PASID capability, or Max PASID Width 0: EOPNOTSUPP, nothing programmed.
    for cap in [None, Some(PasidCap { max_pasid_bits: 0 })] {
        let info = auxdomain::DeviceInfo {
            pasid: cap,
            ..Rig::info(&[3], 20)
        };
        let e = AuxDevice::enable_pasid(&mut r.smmu, &info, RidMode::Blocked)
            .err()
            .unwrap();
        assert_eq!(e, Error::Unsupported(Unsupported::DevicePasid));
        assert_eq!(e.errno(), 95);
        assert_eq!(r.smmu.read_ste(3), before, "STE untouched");
    }
    // SMMU without SubstreamIDs (QEMU's): EOPNOTSUPP too.
    let mut q = Rig::with(Features::qemu());
    let e = AuxDevice::enable_pasid(&mut q.smmu, &Rig::info(&[8], 20), RidMode::Blocked)
        .err()
        .unwrap();
    assert_eq!(e, Error::Unsupported(Unsupported::IommuPasid));
    assert_eq!(e.errno(), 95);
    // min > max after clamping: EINVAL.
    let info = auxdomain::DeviceInfo {
        min_pasid: 300,
        ..Rig::info(&[4], 8)
    };
    let e = AuxDevice::enable_pasid(&mut r.smmu, &info, RidMode::Blocked)
        .err()
        .unwrap();
    assert_eq!((e, e.errno()), (Error::InvalidPasid, 22));
    // A RID domain cannot be given at enable time (use attach_rid).
    let e = AuxDevice::enable_pasid(&mut r.smmu, &Rig::info(&[4], 8), RidMode::Domain(1))
        .err()
        .unwrap();
    assert_eq!(e, Error::InvalidArgument);
    // Limits: device 8 bits -> PASIDs 1..=255; device min/max honoured.
    let info = auxdomain::DeviceInfo {
        min_pasid: 16,
        max_pasid: 100,
        ..Rig::info(&[5], 8)
    };
    let mut dev = AuxDevice::enable_pasid(&mut r.smmu, &info, RidMode::Blocked).unwrap();
    assert_eq!(dev.ssid_bits(), 8);
    assert_eq!(dev.pasid_range(), (16, 100));
    let mut d = r.domain();
    for bad in [0, 15, 101, 255, 256, 1 << 20] {
        let e = d
            .attach((&mut r.smmu, &mut dev, &mut r.snoop), bad)
            .unwrap_err();
        assert_eq!((e, e.errno()), (Error::InvalidPasid, 22), "pasid {bad}");
    }
    d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 16).unwrap();
    d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 100)
        .unwrap();
    // 20-bit device on a 20-bit SMMU: the full range.
    let (dev2, _) = r.device(6);
    assert_eq!(dev2.pasid_range(), (1, (1 << 20) - 1));
}

#[test]
fn sixty_four_domains_isolated_on_one_device() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0x10);
    let pasids = Pasids::new(20, 1000);
    let mut doms = Vec::new();
    let mut pages = Vec::new();
    for i in 0..64u64 {
        let pasid = pasids.alloc(1, (1 << 20) - 1);
        let mut d = r.domain();
        let p = r.page();
        // Same IOVA in every domain, plus one IOVA unique to the domain.
        d.map(0x10_0000, p.dma_addr(), 4096, RW).unwrap();
        d.map(0x4000_0000 + i * 0x1000, p.dma_addr(), 4096, RW)
            .unwrap();
        d.attach((&mut r.smmu, &mut dev, &mut r.snoop), pasid)
            .unwrap();
        assert_eq!(d.pasid_of(dev.id()), Some(pasid));
        doms.push((d, pasid));
        pages.push(p);
    }
    for (i, (_, pasid)) in doms.iter().enumerate() {
        let tag = [i as u8 + 1; 8];
        pci.dma_write(req(Some(*pasid), 0x10_0000 + 8 * i as u64), &tag)
            .unwrap();
    }
    for (i, p) in pages.iter().enumerate() {
        for j in 0..64 {
            let want = if i == j { i as u64 + 1 } else { 0 };
            let got = p.read_u64(8 * j) & 0xff;
            assert_eq!(got, want, "page {i} slot {j}");
        }
    }
    // PASID-tagged DMA to another domain's IOVA faults, naming the PASID used.
    let (_, p5) = doms[5];
    let (id, ssv, ssid) = fault(pci.dma_write(req(Some(p5), 0x4000_0000 + 7 * 0x1000), &[1]));
    assert_eq!((id, ssv, ssid), (F_TRANSLATION, true, p5));
    // Its own unique IOVA works.
    pci.dma_write(req(Some(p5), 0x4000_0000 + 5 * 0x1000 + 0x800), &[0xee])
        .unwrap();
    assert_eq!(pages[5].read_u64(0x800) & 0xff, 0xee);
    // Untagged traffic is blocked (S1DSS = terminate).
    let (id, _, _) = fault(pci.dma_write(req(None, 0x10_0000), &[1]));
    assert_eq!(id, F_STREAM_DISABLED);
    // 2-level CD table: PASIDs 1..=64 live in one leaf.
    assert_eq!(dev.master().cd_table().unwrap().leaves(), 1);
    for (mut d, pasid) in doms {
        d.detach((&mut r.smmu, &mut dev, &mut r.snoop), pasid)
            .unwrap();
        pasids.free(pasid);
        d.destroy(&mut r.smmu, &mut r.asids).ok().unwrap();
    }
    assert_eq!(dev.aux_attachments(), 0);
    assert_eq!(r.asids.in_use(), 0);
    dev.disable_pasid(&mut r.smmu).ok().unwrap();
}

#[test]
fn detach_leaves_no_stale_translation() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0x20);
    let mut d = r.domain();
    let p = r.page();
    d.map(0x20_0000, p.dma_addr(), 4096, RW).unwrap();
    d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 42).unwrap();
    pci.dma_write(req(Some(42), 0x20_0000), &[7]).unwrap();
    assert!(r.model.iotlb_entries().iter().any(|e| e.asid == d.asid()));
    d.detach((&mut r.smmu, &mut dev, &mut r.snoop), 42).unwrap();
    assert!(!r.model.iotlb_entries().iter().any(|e| e.asid == d.asid()));
    let (id, ssv, ssid) = fault(pci.dma_write(req(Some(42), 0x20_0000), &[9]));
    assert_eq!((id, ssv, ssid), (C_BAD_CD, true, 42));
    assert_eq!(p.read_u64(0) & 0xff, 7);
    // Unmap while attached: the next DMA faults (TLBI + sync done by unmap).
    d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 42).unwrap();
    pci.dma_write(req(Some(42), 0x20_0000), &[8]).unwrap();
    assert_eq!(d.unmap_in(&mut r.smmu, 0x20_0000, 4096).unwrap(), 4096);
    let (id, _, _) = fault(pci.dma_write(req(Some(42), 0x20_0000), &[9]));
    assert_eq!(id, F_TRANSLATION);
    assert_eq!(p.read_u64(0) & 0xff, 8);
}

#[test]
fn cd_table_grows_lazily() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0x30);
    assert_eq!(dev.master().cd_table().unwrap().leaves(), 0);
    let mut d = r.domain();
    let p = r.page();
    d.map(0x1000, p.dma_addr(), 4096, RW).unwrap();
    let mut leaves = vec![];
    for pasid in [1, 1023, 1024, 5000, (1 << 20) - 1] {
        d.attach((&mut r.smmu, &mut dev, &mut r.snoop), pasid)
            .unwrap();
        pci.dma_write(req(Some(pasid), 0x1000), &[pasid as u8])
            .unwrap();
        leaves.push(dev.master().cd_table().unwrap().leaves());
    }
    assert_eq!(leaves, [1, 1, 2, 3, 4]);
    // An SSID in a leaf never allocated: C_BAD_SUBSTREAMID (L1CD.V = 0).
    let (id, _, _) = fault(pci.dma_write(req(Some(3000), 0x1000), &[1]));
    assert_eq!(id, C_BAD_SUBSTREAMID);
    // In an allocated leaf but without CD: C_BAD_CD.
    let (id, _, _) = fault(pci.dma_write(req(Some(1025), 0x1000), &[1]));
    assert_eq!(id, C_BAD_CD);
}

#[test]
fn attach_error_paths() {
    let mut r = Rig::new();
    let (mut dev, _) = r.device(0x40);
    let mut a = r.domain();
    let mut b = r.domain();
    a.attach((&mut r.smmu, &mut dev, &mut r.snoop), 7).unwrap();
    let e = a
        .attach((&mut r.smmu, &mut dev, &mut r.snoop), 7)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::AlreadyAttached, 17));
    let e = b
        .attach((&mut r.smmu, &mut dev, &mut r.snoop), 7)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::PasidInUse, 16));
    let e = b
        .detach((&mut r.smmu, &mut dev, &mut r.snoop), 7)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::NotAttached, 2));
    // Freeing an attached domain, disabling PASIDs with a domain attached: EBUSY.
    let (e, a2) = a.destroy(&mut r.smmu, &mut r.asids).err().unwrap();
    assert_eq!((e, e.errno()), (Error::StillAttached, 16));
    a = a2;
    let (e, dev2) = dev.disable_pasid(&mut r.smmu).err().unwrap();
    assert_eq!(e, Error::StillAttached);
    dev = dev2;
    // ENOSPC past MAX_ATTACH attachments of one domain.
    for pasid in 100..100 + MAX_ATTACH as u32 - 1 {
        a.attach((&mut r.smmu, &mut dev, &mut r.snoop), pasid)
            .unwrap();
    }
    let e = a
        .attach((&mut r.smmu, &mut dev, &mut r.snoop), 999)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::NoSpace, 28));
    // Window geometry is validated.
    for w in [
        MsiWindow {
            base: 0x1234,
            size: 0x1000,
        },
        MsiWindow {
            base: 0x1000,
            size: 0,
        },
        MsiWindow {
            base: u64::MAX - 0xfff,
            size: 0x2000,
        },
        MsiWindow {
            base: 1 << 48,
            size: 0x1000,
        },
    ] {
        let e = r.domain_in(w).err().unwrap();
        assert_eq!(e, Error::InvalidArgument, "{w:?}");
    }
    // Without PASIDs enabled there is no AuxDevice to attach to: the type system enforces
    // PasidDisabled's precondition; its errno is still documented.
    assert_eq!(Error::PasidDisabled.errno(), 95);
}

#[test]
fn one_domain_on_several_devices_and_pasids() {
    let mut r = Rig::new();
    let (mut d1, mut p1) = r.device(0x50);
    let (mut d2, mut p2) = r.device(0x51);
    let mut dom = r.domain();
    let page = r.page();
    dom.map(0x9000, page.dma_addr(), 4096, RW).unwrap();
    dom.attach((&mut r.smmu, &mut d1, &mut r.snoop), 5).unwrap();
    dom.attach((&mut r.smmu, &mut d1, &mut r.snoop), 7).unwrap();
    dom.attach((&mut r.smmu, &mut d2, &mut r.snoop), 9).unwrap();
    assert_eq!(dom.pasid_of(0x50), Some(5));
    assert_eq!(dom.pasid_of(0x51), Some(9));
    assert_eq!(dom.pasid_of(0x52), None);
    assert!(dom.is_attached(0x50, Some(7)));
    p1.dma_write(req(Some(5), 0x9000), &[1]).unwrap();
    p1.dma_write(req(Some(7), 0x9001), &[2]).unwrap();
    p2.dma_write(req(Some(9), 0x9002), &[3]).unwrap();
    assert_eq!(page.read_u64(0) & 0xff_ffff, 0x03_0201);
    // PASID 9 on device 1 is not attached: C_BAD_CD or C_BAD_SUBSTREAMID, never a hit.
    let (id, _, ssid) = fault(p1.dma_write(req(Some(9), 0x9000), &[1]));
    assert_eq!((id, ssid), (C_BAD_CD, 9));
    dom.detach((&mut r.smmu, &mut d1, &mut r.snoop), 5).unwrap();
    p1.dma_write(req(Some(7), 0x9003), &[4]).unwrap();
    assert_eq!(dom.pasid_of(0x50), Some(7));
}

#[test]
fn requester_id_rules() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0x60);
    let page = r.page();
    let rid_page = r.page();
    let mut aux = r.domain();
    aux.map(0x1000, page.dma_addr(), 4096, RW).unwrap();
    aux.attach((&mut r.smmu, &mut dev, &mut r.snoop), 3)
        .unwrap();
    // Blocked: untagged DMA is F_STREAM_DISABLED.
    let (id, _, _) = fault(pci.dma_write(req(None, 0x1000), &[1]));
    assert_eq!(id, F_STREAM_DISABLED);
    // Identity: untagged DMA bypasses (IOVA = PA); PASID 3 still translates.
    dev.set_rid_mode(&mut r.smmu, RidMode::Identity).unwrap();
    pci.dma_write(req(None, rid_page.dma_addr() + 8), &[0x11])
        .unwrap();
    assert_eq!(rid_page.read_u64(8), 0x11);
    pci.dma_write(req(Some(3), 0x1000), &[0x33]).unwrap();
    assert_eq!(page.read_u64(0), 0x33);
    // RID domain: untagged traffic through CD 0; PASID 0 tagged is terminated
    // (F_STREAM_DISABLED, IHI0070 5.2 S1DSS = 0b10).
    let mut rid = r.domain();
    rid.map(0x1000, rid_page.dma_addr(), 4096, RW).unwrap();
    rid.attach_rid((&mut r.smmu, &mut dev, &mut r.snoop))
        .unwrap();
    assert_eq!(dev.rid_mode(), RidMode::Domain(rid.asid()));
    pci.dma_write(req(None, 0x1010), &[0x22]).unwrap();
    assert_eq!(rid_page.read_u64(0x10), 0x22);
    let (id, _, _) = fault(pci.dma_write(req(Some(0), 0x1000), &[1]));
    assert_eq!(id, F_STREAM_DISABLED);
    // Aux attach at PASID 0 is refused: it is the RID context.
    let e = aux
        .attach((&mut r.smmu, &mut dev, &mut r.snoop), 0)
        .unwrap_err();
    assert_eq!(e, Error::InvalidPasid);
    // A second RID domain, or changing the RID mode under it: EBUSY.
    let mut other = r.domain();
    let e = other
        .attach_rid((&mut r.smmu, &mut dev, &mut r.snoop))
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::StillAttached, 16));
    let e = dev.set_rid_mode(&mut r.smmu, RidMode::Blocked).unwrap_err();
    assert_eq!(e, Error::StillAttached);
    let e = other
        .detach_rid((&mut r.smmu, &mut dev, &mut r.snoop))
        .unwrap_err();
    assert_eq!(e, Error::NotAttached);
    // Detaching returns to the mode set before (identity), then back to blocked: untagged
    // traffic stops, no stale CD 0.
    rid.detach_rid((&mut r.smmu, &mut dev, &mut r.snoop))
        .unwrap();
    assert_eq!(dev.rid_mode(), RidMode::Identity);
    dev.set_rid_mode(&mut r.smmu, RidMode::Blocked).unwrap();
    let (id, _, _) = fault(pci.dma_write(req(None, 0x1000), &[1]));
    assert_eq!(id, F_STREAM_DISABLED);
    pci.dma_write(req(Some(3), 0x1008), &[0x44]).unwrap();
    assert_eq!(page.read_u64(8), 0x44);
}

const DOORBELL: u64 = 0x0808_0040; // GITS_TRANSLATER-like, inside a page at 0x0808_0000
const DOORBELL2: u64 = 0x0809_0040;

#[test]
fn msi_window_is_reserved() {
    let mut r = Rig::new();
    let mut d = r.domain();
    assert_eq!(
        d.reserved_regions()[0],
        auxdomain::ReservedRegion {
            start: SW_MSI_BASE,
            length: SW_MSI_SIZE,
            kind: auxdomain::ReservedKind::SwMsi
        }
    );
    let p = r.page();
    for (iova, size) in [
        (SW_MSI_BASE, 4096),
        (SW_MSI_BASE + SW_MSI_SIZE - 4096, 4096),
        (SW_MSI_BASE - 4096, 8192),
        (0, 1 << 30),
    ] {
        let e = d.map(iova, p.dma_addr(), size, RW).unwrap_err();
        assert_eq!(
            (e, e.errno()),
            (Error::ReservedIova, 98),
            "{iova:#x}+{size:#x}"
        );
        let e = d.unmap_in(&mut r.smmu, iova, size).unwrap_err();
        assert_eq!(e, Error::ReservedIova);
    }
    d.map(SW_MSI_BASE - 4096, p.dma_addr(), 4096, RW).unwrap();
    d.map(SW_MSI_BASE + SW_MSI_SIZE, p.dma_addr(), 4096, RW)
        .unwrap();
    // Configurable window.
    let w = MsiWindow {
        base: 0xfee0_0000,
        size: 0x10_0000,
    };
    let mut d2 = r.domain_in(w).unwrap();
    d2.map(SW_MSI_BASE, p.dma_addr(), 4096, RW).unwrap();
    assert_eq!(
        d2.map(0xfee0_0000, p.dma_addr(), 4096, RW).unwrap_err(),
        Error::ReservedIova
    );
    assert_eq!(d2.reserved_regions()[0].start, 0xfee0_0000);
}

#[test]
fn doorbells_refcounted_across_activate_affinity_deactivate() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0x70);
    let db = r.mem.alloc_zeroed(0x2_0000, 0x1_0000).unwrap(); // two doorbell frames
    let db1 = db.dma_addr() + 0x40;
    let db2 = db.dma_addr() + 0x1_0040;
    let mut rid = r.domain();
    rid.attach_rid((&mut r.smmu, &mut dev, &mut r.snoop))
        .unwrap();
    let mut aux = r.domain();
    aux.attach((&mut r.smmu, &mut dev, &mut r.snoop), 12)
        .unwrap();

    // PCIe MSI vectors: requester-ID tagged, so they use the RID domain's doorbell mapping.
    let v0 = MsiSource::Rid { vector: 0 };
    let v1 = MsiSource::Rid { vector: 1 };
    let e = aux.msi_activate(&dev, v0, db1).unwrap_err();
    assert_eq!((e, e.errno()), (Error::MsiRoute, 22));
    let a0 = rid.msi_activate(&dev, v0, db1).unwrap();
    let a1 = rid.msi_activate(&dev, v1, db1).unwrap();
    assert_eq!(a0, a1);
    assert!((SW_MSI_BASE..SW_MSI_BASE + SW_MSI_SIZE).contains(&a0));
    assert_eq!(a0 & 0xfff, 0x40);
    assert_eq!(rid.doorbell_refs(db1), 2);
    assert_eq!(rid.doorbells().count(), 1);
    let e = rid.msi_activate(&dev, v0, db1).unwrap_err();
    assert_eq!((e, e.errno()), (Error::AlreadyAttached, 17));
    pci.set_msi_vector(0, a0, 0xaaaa);
    pci.signal_msi(0).unwrap();
    assert_eq!(r.mem.read_u32(db1), 0xaaaa);

    // PASID-tagged queue interrupt: the aux domain's own doorbell mapping.
    let q = MsiSource::Queue {
        pasid: 12,
        queue: 0,
    };
    let e = rid.msi_activate(&dev, q, db2).unwrap_err();
    assert_eq!(e, Error::MsiRoute);
    let qa = aux.msi_activate(&dev, q, db2).unwrap();
    pci.configure_queue(0, Some(12), qa, 0xbbbb);
    pci.queue_interrupt(0).unwrap();
    assert_eq!(r.mem.read_u32(db2), 0xbbbb);
    // The same message address sent without PASID goes through the RID domain: no mapping
    // for db2 there, so it faults.
    pci.set_msi_vector(5, qa, 1);
    assert!(pci.signal_msi(5).is_err() || qa == a0);

    // Affinity change of vector 1 to db2: new page bound, db1 refcount drops.
    let a1b = rid
        .msi_set_affinity_in(&mut r.smmu, dev.id(), v1, db2)
        .unwrap();
    assert_ne!(a1b & !0xfff, a0 & !0xfff);
    assert_eq!(rid.doorbell_refs(db1), 1);
    assert_eq!(rid.doorbell_refs(db2), 1);
    pci.set_msi_vector(1, a1b, 0xcccc);
    pci.signal_msi(1).unwrap();
    assert_eq!(r.mem.read_u32(db2), 0xcccc);
    // Affinity within the same page: no new binding.
    rid.msi_set_affinity_in(&mut r.smmu, dev.id(), v1, db2 + 4)
        .unwrap();
    assert_eq!(rid.doorbells().count(), 2);
    // Deactivate: refs to zero, doorbell unmapped and invalidated: MSI now faults.
    rid.msi_deactivate_in(&mut r.smmu, dev.id(), v0).unwrap();
    assert_eq!(rid.doorbell_refs(db1), 0);
    let e = pci.signal_msi(0).unwrap_err();
    assert!(matches!(e, DmaError::Translate { .. }));
    let e = rid
        .msi_deactivate_in(&mut r.smmu, dev.id(), v0)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::NotAttached, 2));
    let e = rid
        .msi_set_affinity_in(&mut r.smmu, dev.id(), v0, db1)
        .unwrap_err();
    assert_eq!(e, Error::NotAttached);
    rid.msi_deactivate_in(&mut r.smmu, dev.id(), v1).unwrap();
    assert_eq!(rid.doorbells().count(), 0);

    // Forgotten bindings are torn down with the domain.
    let e = aux.msi_activate(
        &dev,
        MsiSource::Queue {
            pasid: 13,
            queue: 1,
        },
        db1,
    );
    assert_eq!(e.unwrap_err(), Error::MsiRoute);
    aux.msi_activate(
        &dev,
        MsiSource::Queue {
            pasid: 12,
            queue: 1,
        },
        db1,
    )
    .unwrap();
    aux.detach((&mut r.smmu, &mut dev, &mut r.snoop), 12)
        .unwrap();
    let t = aux.destroy(&mut r.smmu, &mut r.asids).ok().unwrap();
    assert_eq!((t.doorbells, t.vectors), (2, 2));
    rid.detach_rid((&mut r.smmu, &mut dev, &mut r.snoop))
        .unwrap();
    let t = rid.destroy(&mut r.smmu, &mut r.asids).ok().unwrap();
    assert_eq!(t, auxdomain::Teardown::default());
    let _ = (DOORBELL, DOORBELL2);
}

#[test]
fn user_specified_msi_iova() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0x80);
    let db = r.mem.alloc_zeroed(0x2_0000, 0x1_0000).unwrap();
    let (db1, db2) = (db.dma_addr() + 0x40, db.dma_addr() + 0x1_0040);
    let mut d = r.domain();
    d.attach_rid((&mut r.smmu, &mut dev, &mut r.snoop)).unwrap();
    let p = r.page();
    d.map(0x7000_0000, p.dma_addr(), 4096, RW).unwrap();
    let v = |n| MsiSource::Rid { vector: n };
    // Inside the window, at a chosen page.
    let a = d
        .msi_activate_at(&dev, v(0), db1, SW_MSI_BASE + 0x5000 + 0x40)
        .unwrap();
    assert_eq!(a, SW_MSI_BASE + 0x5040);
    // Same page, same doorbell: shared; different doorbell: EBUSY.
    d.msi_activate_at(&dev, v(1), db1, SW_MSI_BASE + 0x5040)
        .unwrap();
    assert_eq!(d.doorbell_refs(db1), 2);
    let e = d
        .msi_activate_at(&dev, v(2), db2, SW_MSI_BASE + 0x5040)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::DoorbellConflict, 16));
    // Page offset must match the doorbell's.
    let e = d
        .msi_activate_at(&dev, v(2), db2, SW_MSI_BASE + 0x6000)
        .unwrap_err();
    assert_eq!(e, Error::InvalidArgument);
    // Outside the window: must not overlap a mapping.
    let e = d.msi_activate_at(&dev, v(2), db2, 0x7000_0040).unwrap_err();
    assert_eq!((e, e.errno()), (Error::MsiIovaMapped, 17));
    let a2 = d.msi_activate_at(&dev, v(2), db2, 0x9000_0040).unwrap();
    pci.set_msi_vector(2, a2, 0x5a5a);
    pci.signal_msi(2).unwrap();
    assert_eq!(r.mem.read_u32(db2), 0x5a5a);
    // Users can neither map over nor unmap it.
    let e = d.map(0x9000_0000, p.dma_addr(), 4096, RW).unwrap_err();
    assert_eq!(e.errno(), 17);
    let e = d.unmap_in(&mut r.smmu, 0x8fff_f000, 0x2000).unwrap_err();
    assert_eq!((e, e.errno()), (Error::DoorbellInUse, 16));
    // Default activation of db2 gets its own window slot (keyed by PA, not shared with the
    // user-placed binding).
    let a3 = d.msi_activate(&dev, v(3), db2).unwrap();
    assert!((SW_MSI_BASE..SW_MSI_BASE + SW_MSI_SIZE).contains(&a3));
    assert_ne!(a3 & !0xfff, SW_MSI_BASE + 0x5000);
    assert_eq!(d.doorbell_refs(db2), 2);
    d.msi_deactivate_in(&mut r.smmu, dev.id(), v(2)).unwrap();
    d.unmap_in(&mut r.smmu, 0x8fff_f000, 0x2000).unwrap();
    for n in [0, 1, 3] {
        d.msi_deactivate_in(&mut r.smmu, dev.id(), v(n)).unwrap();
    }
    assert_eq!(d.doorbells().count(), 0);
}

#[test]
fn msi_tables_fill_up_with_enospc() {
    let mut r = Rig::new();
    let (mut dev, _) = r.device(0x90);
    let mut d = r.domain();
    d.attach_rid((&mut r.smmu, &mut dev, &mut r.snoop)).unwrap();
    for n in 0..auxdomain::MAX_DOORBELLS as u64 {
        d.msi_activate(
            &dev,
            MsiSource::Rid { vector: n as u32 },
            0x1000_0000 + n * 0x1000,
        )
        .unwrap();
    }
    let e = d
        .msi_activate(&dev, MsiSource::Rid { vector: 99 }, 0x2000_0000)
        .unwrap_err();
    assert_eq!(e, Error::NoSpace);
    // Sharing an existing doorbell still works until MAX_VECTORS sources.
    let mut n = auxdomain::MAX_DOORBELLS as u32;
    while n < auxdomain::MAX_VECTORS as u32 {
        d.msi_activate(&dev, MsiSource::Rid { vector: n }, 0x1000_0000)
            .unwrap();
        n += 1;
    }
    let e = d
        .msi_activate(&dev, MsiSource::Rid { vector: n }, 0x1000_0000)
        .unwrap_err();
    assert_eq!(e, Error::NoSpace);
    // A window with room for one doorbell page.
    let w = MsiWindow {
        base: SW_MSI_BASE,
        size: 0x1000,
    };
    let mut small = r.domain_in(w).unwrap();
    let (mut dev2, _) = r.device(0x91);
    small
        .attach_rid((&mut r.smmu, &mut dev2, &mut r.snoop))
        .unwrap();
    small
        .msi_activate(&dev2, MsiSource::Rid { vector: 0 }, 0x1000_0000)
        .unwrap();
    let e = small
        .msi_activate(&dev2, MsiSource::Rid { vector: 1 }, 0x1000_1000)
        .unwrap_err();
    assert_eq!(e, Error::NoSpace);
}

#[test]
fn no_snoop_policy() {
    let mut r = Rig::new();
    let (mut dev, mut pci) = r.device(0xa0);
    let page = r.page();
    // Not enforced: No_snoop requests end non-coherent.
    let mut plain = r.domain();
    plain.map(0x1000, page.dma_addr(), 4096, RW).unwrap();
    plain
        .attach((&mut r.smmu, &mut dev, &mut r.snoop), 1)
        .unwrap();
    assert_eq!(
        pci.dma_write(ns_req(Some(1), 0x1000), &[1]).unwrap(),
        Coherency::NonCoherent
    );
    // After the first mapping: EBUSY.
    let e = plain.enforce_cache_coherency_in(&mut r.snoop).unwrap_err();
    assert_eq!((e, e.errno()), (Error::CoherencyAfterMap, 16));
    // Enforced before mapping: every DMA of every attached device is coherent.
    let mut enf = r.domain();
    enf.enforce_cache_coherency_in(&mut r.snoop).unwrap();
    enf.enforce_cache_coherency_in(&mut r.snoop).unwrap(); // one-way, idempotent
    assert!(enf.coherency_enforced());
    enf.map(0x1000, page.dma_addr(), 4096, RW).unwrap();
    let (mut dev2, mut pci2) = r.device(0xa1);
    enf.attach((&mut r.smmu, &mut dev, &mut r.snoop), 2)
        .unwrap();
    enf.attach((&mut r.smmu, &mut dev2, &mut r.snoop), 2)
        .unwrap();
    for (p, pasid) in [(&mut pci, 2), (&mut pci2, 2)] {
        assert_eq!(
            p.dma_write(ns_req(Some(pasid), 0x1000), &[2]).unwrap(),
            Coherency::Coherent
        );
        assert_eq!(
            p.dma_read(ns_req(Some(pasid), 0x1000), &mut [0; 64])
                .unwrap(),
            Coherency::Coherent
        );
    }
    // The enforced domain's mappings are cacheable (IOMMU_CACHE forced).
    let leaf = enf.page_table().lookup(0x1000).unwrap();
    assert_eq!((leaf.desc >> 2) & 7, 1, "AttrIndx = cacheable");
    // A device that cannot strip No_snoop cannot be attached.
    let info = auxdomain::DeviceInfo {
        snoop_control: false,
        ..Rig::info(&[0xa2], 20)
    };
    let mut weak = AuxDevice::enable_pasid(&mut r.smmu, &info, RidMode::Blocked).unwrap();
    let e = enf
        .attach((&mut r.smmu, &mut weak, &mut r.snoop), 3)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::CoherencyUnsupported, 22));
    let e = enf
        .attach_rid((&mut r.smmu, &mut weak, &mut r.snoop))
        .unwrap_err();
    assert_eq!(e, Error::CoherencyUnsupported);
    assert!(!weak.pasid_in_use(3));
    // A domain cannot switch while such a device is attached.
    let mut fresh = r.domain();
    fresh
        .attach((&mut r.smmu, &mut weak, &mut r.snoop), 3)
        .unwrap();
    let e = fresh.enforce_cache_coherency_in(&mut r.snoop).unwrap_err();
    assert_eq!(e, Error::CoherencyUnsupported);
    assert!(!fresh.coherency_enforced());
    // Detach un-forces: a plain domain later at the same PASID is non-coherent again.
    enf.detach((&mut r.smmu, &mut dev, &mut r.snoop), 2)
        .unwrap();
    plain
        .attach((&mut r.smmu, &mut dev, &mut r.snoop), 2)
        .unwrap();
    assert_eq!(
        pci.dma_write(ns_req(Some(2), 0x1000), &[3]).unwrap(),
        Coherency::NonCoherent
    );
    // Enforcement with attached capable devices forces them at the switch.
    let mut late = r.domain();
    let (mut dev3, mut pci3) = r.device(0xa3);
    late.attach((&mut r.smmu, &mut dev3, &mut r.snoop), 4)
        .unwrap();
    late.enforce_cache_coherency_in(&mut r.snoop).unwrap();
    late.map(0x1000, page.dma_addr(), 4096, RW).unwrap();
    assert_eq!(
        pci3.dma_write(ns_req(Some(4), 0x1000), &[4]).unwrap(),
        Coherency::Coherent
    );
    // NoSnoopControl is usable by callers that never enforce.
    let mut d = r.domain();
    d.attach((&mut r.smmu, &mut dev3, &mut NoSnoopControl), 5)
        .unwrap();
}

#[test]
fn ats_masters_get_atc_invalidations() {
    let mut r = Rig::new();
    let info = auxdomain::DeviceInfo {
        ats: true,
        ..Rig::info(&[0xb0], 20)
    };
    let mut dev = AuxDevice::enable_pasid(&mut r.smmu, &info, RidMode::Blocked).unwrap();
    let mut d = r.domain();
    let p = r.page();
    d.map(0x1000, p.dma_addr(), 4096, RW).unwrap();
    d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 8).unwrap();
    let atc = |r: &Rig| r.model.stats().commands.get(&0x40).copied().unwrap_or(0);
    let before = atc(&r);
    d.unmap_in(&mut r.smmu, 0x1000, 4096).unwrap();
    assert_eq!(atc(&r), before + 1);
    d.detach((&mut r.smmu, &mut dev, &mut r.snoop), 8).unwrap();
    assert_eq!(atc(&r), before + 2);
}

/// Commands and CMD_SYNCs per operation, from the driver's counters and the model's.
#[test]
fn cost_figures() {
    let mut r = Rig::new();
    let (mut dev, _) = r.device(0xc0);
    let mut d = r.domain();
    let p = r.mem.alloc_zeroed(1 << 21, 1 << 21).unwrap();
    let measure = |r: &mut Rig, what: &str, f: &mut dyn FnMut(&mut Rig)| {
        let s0 = r.smmu.stats().cmdq;
        let m0 = r.model.stats();
        f(r);
        let s1 = r.smmu.stats().cmdq;
        let m1 = r.model.stats();
        let cmds: u64 = m1.commands.values().sum::<u64>() - m0.commands.values().sum::<u64>();
        println!(
            "COST {what:<34} driver: {:>2} commands {:>2} syncs | model: {:>2} commands ({} CMD_SYNC)",
            s1.commands - s0.commands,
            s1.syncs - s0.syncs,
            cmds,
            m1.syncs - m0.syncs
        );
        (s1.commands - s0.commands, s1.syncs - s0.syncs)
    };
    let a = measure(&mut r, "attach (new CD leaf)", &mut |r| {
        d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 2000)
            .unwrap()
    });
    let b = measure(&mut r, "attach (leaf exists)", &mut |r| {
        d.attach((&mut r.smmu, &mut dev, &mut r.snoop), 2001)
            .unwrap()
    });
    d.map(0x10_0000, p.dma_addr(), 4096, RW).unwrap();
    d.map(0x40_0000, p.dma_addr(), 1 << 21, RW).unwrap();
    d.map(0x80_0000, p.dma_addr(), 64 * 4096, RW).unwrap();
    let u1 = measure(&mut r, "unmap 4K page", &mut |r| {
        d.unmap_in(&mut r.smmu, 0x10_0000, 4096).unwrap();
    });
    measure(&mut r, "unmap 2M block", &mut |r| {
        d.unmap_in(&mut r.smmu, 0x40_0000, 1 << 21).unwrap();
    });
    measure(&mut r, "unmap 64 pages (table freed)", &mut |r| {
        d.unmap_in(&mut r.smmu, 0x80_0000, 64 * 4096).unwrap();
    });
    let det = measure(&mut r, "detach", &mut |r| {
        d.detach((&mut r.smmu, &mut dev, &mut r.snoop), 2001)
            .unwrap()
    });
    measure(&mut r, "msi activate (new doorbell)", &mut |_| {
        d.msi_activate(
            &dev,
            MsiSource::Queue {
                pasid: 2000,
                queue: 0,
            },
            0x1000_0040,
        )
        .unwrap();
    });
    measure(&mut r, "msi deactivate (last ref)", &mut |r| {
        d.msi_deactivate_in(
            &mut r.smmu,
            dev.id(),
            MsiSource::Queue {
                pasid: 2000,
                queue: 0,
            },
        )
        .unwrap();
    });
    // Commands include the CMD_SYNCs. Attach: the hitless CD write takes two steps, each
    // CFGI_CD + CMD_SYNC (a new leaf adds one non-leaf CFGI_CD + CMD_SYNC for the L1CD).
    assert_eq!(b, (4, 2));
    assert_eq!(a, (6, 3));
    // Unmap of a page: one TLBI_NH_VA + one CMD_SYNC.
    assert_eq!(u1, (2, 1));
    // Detach: CD cleared in two steps (CFGI_CD + CMD_SYNC each), then TLBI_NH_ASID + sync.
    assert_eq!(det, (6, 3));
    let _ = Prot::READ;
}
