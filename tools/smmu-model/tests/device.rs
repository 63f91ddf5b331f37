// SPDX-License-Identifier: GPL-2.0
//! The PCIe DMA device model: PASID-tagged DMA through the SMMU, coherency outcomes, MSIs and
//! per-queue interrupt messages.

mod common;
use common::*;
use smmu_model::spec::event_id;
use smmu_model::{AccessKind, Coherency, Device, DmaError, DmaRequest, Features, TranslateError};

/// Stream 8 with a linear 4-entry CD table: SSID 1 maps IOVA 0x1000.. to 0x50_0000..,
/// SSID 2 maps IOVA 0x1000 to 0x60_0000, untagged traffic (S1DSS = 0b10) uses CD 0 which maps
/// the MSI doorbell IOVA 0x800_0000 to 0x0900_0040 (4KB page 0x0900_0000).
fn rig() -> Rig {
    let mut r = Rig::new(Features::default());
    let cdt = r.cd_table(2);
    r.set_ste(8, ste_s1(cdt, 2, 0, 0b10));
    let pt0 = r.new_pt(12, 16);
    r.map(&pt0, 0x800_0000, 0x0900_0000, LEAF_RW, 3);
    r.write_words(cdt, &cd(pt0.root, 16, 12, 10));
    let pt1 = r.new_pt(12, 16);
    r.map(&pt1, 0x1000, 0x50_0000, LEAF_RW, 3);
    r.map(&pt1, 0x2000, 0x50_1000, LEAF_RW, 3);
    r.map(&pt1, 0xf000, 0x0a00_0000, LEAF_RW, 3);
    r.write_words(cdt + 64, &cd(pt1.root, 16, 12, 11));
    let pt2 = r.new_pt(12, 16);
    r.map(&pt2, 0x1000, 0x60_0000, LEAF_RW, 3);
    r.map(&pt2, 0xf000, 0x0b00_0000, LEAF_RW, 3);
    r.write_words(cdt + 128, &cd(pt2.root, 16, 12, 12));
    r
}

#[test]
fn pasid_tagged_dma_goes_to_each_address_space() {
    let r = rig();
    let mut d = Device::new(r.smmu.clone(), 8);
    let req = |pasid, iova| DmaRequest {
        pasid: Some(pasid),
        iova,
        ..Default::default()
    };
    // A write crossing a page boundary is split and lands in two physical pages.
    let data: Vec<u8> = (0..32u8).collect();
    assert_eq!(d.dma_write(req(1, 0x1ff0), &data), Ok(Coherency::Coherent));
    let mut b = [0u8; 16];
    r.mem.read(0x50_0ff0, &mut b);
    assert_eq!(&b[..], &data[..16]);
    r.mem.read(0x50_1000, &mut b);
    assert_eq!(&b[..], &data[16..]);
    // Same IOVA, other PASID: other memory.
    d.dma_write(req(2, 0x1000), &[0xaa; 4]).unwrap();
    assert_eq!(r.mem.read_u32(0x60_0000), 0xaaaa_aaaa);
    let mut back = [0u8; 32];
    d.dma_read(req(1, 0x1ff0), &mut back).unwrap();
    assert_eq!(&back[..], &data[..]);
    let log = d.log();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].kind, AccessKind::DmaWrite);
    assert_eq!(
        (log[0].pasid, log[0].iova, log[0].len),
        (Some(1), 0x1ff0, 16)
    );
    assert_eq!(log[1].result, Ok((0x50_1000, Coherency::Coherent)));
}

#[test]
fn faulting_dma_stops_and_reports() {
    let r = rig();
    let mut d = Device::new(r.smmu.clone(), 8);
    // IOVA 0x3000 is unmapped for PASID 1: the second piece faults.
    let req = DmaRequest {
        pasid: Some(1),
        iova: 0x2800,
        ..Default::default()
    };
    match d.dma_write(req, &[1; 0x1000]) {
        Err(DmaError::Translate {
            done,
            error: TranslateError::Fault(f),
        }) => {
            assert_eq!(done, 0x800);
            assert_eq!(f.event.id(), event_id::F_TRANSLATION);
            assert!(f.event.ssv());
            assert_eq!(f.event.ssid(), 1);
            assert_eq!(f.event.input_addr(), 0x3000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.events().len(), 1);
    // PASID beyond the CD table: C_BAD_SUBSTREAMID.
    let req = DmaRequest {
        pasid: Some(4),
        iova: 0x1000,
        ..Default::default()
    };
    let e = d.dma_read(req, &mut [0; 4]).unwrap_err();
    assert!(matches!(
        e,
        DmaError::Translate { error: TranslateError::Fault(f), .. }
            if f.event.id() == event_id::C_BAD_SUBSTREAMID
    ));
}

#[test]
fn no_snoop_is_non_coherent_unless_forced() {
    let r = rig();
    let mut d = Device::new(r.smmu.clone(), 8);
    let ns = |pasid| DmaRequest {
        pasid: Some(pasid),
        iova: 0x1000,
        no_snoop: true,
        privileged: false,
    };
    assert_eq!(d.dma_write(ns(1), &[0; 8]), Ok(Coherency::NonCoherent));
    assert_eq!(d.dma_write(ns(2), &[0; 8]), Ok(Coherency::NonCoherent));
    // The host bridge strips No_snoop for (8, PASID 1) only.
    r.smmu.set_snoop_forced(8, Some(1), true);
    assert_eq!(d.dma_write(ns(1), &[0; 8]), Ok(Coherency::Coherent));
    assert_eq!(d.dma_write(ns(2), &[0; 8]), Ok(Coherency::NonCoherent));
    // A snooped request is coherent either way.
    let snooped = DmaRequest {
        no_snoop: false,
        ..ns(2)
    };
    assert_eq!(d.dma_write(snooped, &[0; 8]), Ok(Coherency::Coherent));
    r.smmu.set_snoop_forced(8, Some(1), false);
    assert_eq!(d.dma_write(ns(1), &[0; 8]), Ok(Coherency::NonCoherent));
    let outcomes: Vec<_> = d
        .log()
        .iter()
        .map(|a| (a.no_snoop, a.result.unwrap().1))
        .collect();
    assert_eq!(outcomes[2], (true, Coherency::Coherent));
}

#[test]
fn msi_carries_no_pasid_and_queue_irqs_carry_the_queue_pasid() {
    let r = rig();
    let mut d = Device::new(r.smmu.clone(), 8);
    d.set_msi_vector(0, 0x800_0040, 0x41);
    d.configure_queue(0, Some(1), 0xf000, 0x1111);
    d.configure_queue(1, Some(2), 0xf004, 0x2222);
    d.signal_msi(0).unwrap();
    // Untagged: translated through CD 0 (S1DSS = 0b10).
    assert_eq!(r.mem.read_u32(0x0900_0040), 0x41);
    d.queue_interrupt(0).unwrap();
    d.queue_interrupt(1).unwrap();
    assert_eq!(r.mem.read_u32(0x0a00_0000), 0x1111);
    assert_eq!(r.mem.read_u32(0x0b00_0004), 0x2222);
    let log = d.take_log();
    assert_eq!(log[0].kind, AccessKind::Msi { vector: 0 });
    assert_eq!(log[0].pasid, None);
    assert_eq!(
        (log[1].kind, log[1].pasid),
        (AccessKind::QueueIrq { queue: 0 }, Some(1))
    );
    assert_eq!(
        (log[2].kind, log[2].pasid),
        (AccessKind::QueueIrq { queue: 1 }, Some(2))
    );
    assert_eq!(d.signal_msi(3), Err(DmaError::NotConfigured));
    assert!(d.queue_request(1, 0x1000, false).unwrap().pasid == Some(2));
}

#[test]
fn msi_to_unmapped_doorbell_faults_untagged() {
    let mut r = Rig::new(Features::default());
    let _ = r.simple_s1(3, 1);
    let mut d = Device::new(r.smmu.clone(), 3);
    d.set_msi_vector(0, 0x800_0000, 1);
    let e = d.signal_msi(0).unwrap_err();
    let DmaError::Translate {
        error: TranslateError::Fault(f),
        ..
    } = e
    else {
        panic!()
    };
    // Like edu under QEMU: F_TRANSLATION, write, no SubstreamID.
    assert_eq!(
        f.event.words(),
        [0x10 | (3 << 32), 0b10 << 40, 0x800_0000, 0]
    );
}
