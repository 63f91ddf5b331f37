// SPDX-License-Identifier: GPL-2.0
//! The sample's **PASID mode** on the SMMUv3 model. QEMU's SMMUv3 has no SubstreamIDs, so the
//! model is the only truth source here: `tests/differential` compares the model with QEMU only
//! on what both support, which excludes every SSID path this test uses. And [`Parent`] below
//! re-implements the flow of `edu_mdev`'s PASID backend inside the test: the sample's kernel
//! backend itself does not run here (it needs PASID hardware).
//!
//! A parent with a PASID-capable DMA engine (the model's PCIe device, one queue per mdev) does
//! what `edu_mdev`'s PASID backend does, with the same portable pieces: a PASID per mdev from
//! the parent's ioasid set (quota = capacity), one auxiliary domain per mdev attached at that
//! PASID, the mdev's queue programmed with the PASID, copies validated and cut into pieces by
//! `copy_engine`, each piece's pages mapped in the mdev's domain at the user's IOVAs (what
//! pinning gives in the kernel), the engine's DMA tagged with the PASID, the pages unmapped
//! after the piece (TLBI + CMD_SYNC), completion signalled by the queue's PASID-tagged
//! interrupt message through a doorbell bound in the mdev's own domain, coherency enforced.

#[path = "../../../../drivers/auxdomain/tests/common/mod.rs"]
mod common;

use auxdomain::smmuv3::dma::DmaMemory;
use auxdomain::{MsiSource, Prot};
use common::*;
use copy_engine::{Access, Copy, CopyError};
use physmem::Block;
use smmu_model::{Coherency, Device, DmaError, TranslateError};
use std::collections::BTreeMap;

const PAGE: u64 = 4096;
/// The engine's bounce buffer (edu's is 4 KiB; smaller here so pieces are cut by it too).
const BUF: u64 = 2048;
const SID: u32 = 0x28;
const CAPACITY: u32 = 8;
const F_TRANSLATION: u8 = 0x10;
const C_BAD_CD: u8 = 0x0a;

/// One mdev in PASID mode.
struct Mdev {
    queue: u32,
    dom: Dom,
    /// The user's VFIO mappings (IOVA page -> physical page, writable): what `vfio_pin_pages`
    /// resolves in the kernel.
    container: BTreeMap<u64, (u64, bool)>,
    /// The completion doorbell (stands for the interrupt controller's doorbell page).
    doorbell: Block,
    completions: u32,
}

struct Parent {
    r: Rig,
    dev: Dev,
    engine: Device,
    pasids: Pasids,
    mdevs: BTreeMap<u32, Mdev>,
    next_queue: u32,
}

impl Parent {
    fn new() -> Self {
        let mut r = Rig::new();
        let (dev, engine) = r.device(SID);
        Self {
            r,
            dev,
            engine,
            pasids: Pasids::new(20, CAPACITY),
            mdevs: BTreeMap::new(),
            next_queue: 0,
        }
    }

    /// Creates an mdev: PASID, domain (coherency enforced before any mapping), attach,
    /// completion doorbell bound in the domain, queue programmed with the PASID.
    fn create(&mut self) -> u32 {
        let pasid = self.pasids.alloc(1, (1 << 20) - 1);
        let mut dom = self.r.domain();
        dom.enforce_cache_coherency_in(&mut self.r.snoop).unwrap();
        dom.attach((&mut self.r.smmu, &mut self.dev, &mut self.r.snoop), pasid)
            .unwrap();
        let doorbell = self.r.page();
        let queue = self.next_queue;
        self.next_queue += 1;
        let src = MsiSource::Queue { pasid, queue };
        let addr = dom
            .msi_activate(&self.dev, src, doorbell.dma_addr())
            .unwrap();
        self.engine
            .configure_queue(queue, Some(pasid), addr, 0xc0de_0000 | pasid);
        self.mdevs.insert(
            pasid,
            Mdev {
                queue,
                dom,
                container: BTreeMap::new(),
                doorbell,
                completions: 0,
            },
        );
        pasid
    }

    /// Removes an mdev: MSI source released, domain detached and destroyed, PASID freed.
    fn remove(&mut self, pasid: u32) {
        let mut m = self.mdevs.remove(&pasid).unwrap();
        let src = MsiSource::Queue {
            pasid,
            queue: m.queue,
        };
        m.dom
            .msi_deactivate_in(&mut self.r.smmu, self.dev.id(), src)
            .unwrap();
        m.dom
            .detach((&mut self.r.smmu, &mut self.dev, &mut self.r.snoop), pasid)
            .unwrap();
        let t = m
            .dom
            .destroy(&mut self.r.smmu, &mut self.r.asids)
            .ok()
            .unwrap();
        assert_eq!(
            (t.doorbells, t.vectors),
            (0, 0),
            "nothing left to tear down"
        );
        self.pasids.free(pasid);
    }

    /// The user's MAP_DMA of `pages` at `iova`.
    fn user_map(&mut self, pasid: u32, iova: u64, pages: &[&Block], writable: bool) {
        let m = self.mdevs.get_mut(&pasid).unwrap();
        for (i, p) in pages.iter().enumerate() {
            m.container
                .insert(iova + i as u64 * PAGE, (p.dma_addr(), writable));
        }
    }

    fn user_unmap(&mut self, pasid: u32, iova: u64, len: u64) {
        let m = self.mdevs.get_mut(&pasid).unwrap();
        m.container.retain(|&k, _| k < iova || k >= iova + len);
    }

    /// A copy command of mdev `pasid`, as the engine runs it.
    fn copy(&mut self, pasid: u32, c: Copy) -> Result<(), CopyError> {
        c.validate()?;
        let m = self.mdevs.get(&pasid).ok_or(CopyError::Device)?;
        for (first, n, access) in c.page_spans(PAGE) {
            for i in 0..n as u64 {
                match m.container.get(&(first + i * PAGE)) {
                    Some(&(_, w)) if w || access == Access::Read => {}
                    _ => return Err(CopyError::Unmapped),
                }
            }
        }
        let mut done = 0;
        while let Some(p) = c.piece(done, PAGE, BUF) {
            self.piece(pasid, p.src, p.dst, p.len)?;
            done += p.len;
        }
        let m = self.mdevs.get_mut(&pasid).ok_or(CopyError::Device)?;
        self.engine
            .queue_interrupt(m.queue)
            .map_err(|_| CopyError::Device)?;
        m.completions += 1;
        Ok(())
    }

    /// One piece: map the two pages at the user's IOVAs in the mdev's domain, DMA tagged with
    /// the PASID (No_snoop requested: enforcement must make it coherent), unmap.
    fn piece(&mut self, pasid: u32, src: u64, dst: u64, len: u64) -> Result<(), CopyError> {
        let m = self.mdevs.get_mut(&pasid).ok_or(CopyError::Device)?;
        let (sp, dp) = (src & !(PAGE - 1), dst & !(PAGE - 1));
        let mut mapped = vec![];
        for (page, prot) in [(sp, Prot::READ), (dp, Prot::READ | Prot::WRITE)] {
            if mapped.contains(&page) {
                continue;
            }
            let &(pa, _) = m.container.get(&page).ok_or(CopyError::Unmapped)?;
            let prot = if sp == dp {
                Prot::READ | Prot::WRITE
            } else {
                prot
            };
            m.dom
                .map(page, pa, PAGE, prot)
                .map_err(|_| CopyError::Device)?;
            mapped.push(page);
        }
        let mut buf = vec![0u8; len as usize];
        let rq = self.engine.queue_request(m.queue, src, true).unwrap();
        let r1 = self.engine.dma_read(rq, &mut buf);
        let wq = self.engine.queue_request(m.queue, dst, true).unwrap();
        let r2 = r1.and_then(|_| self.engine.dma_write(wq, &buf));
        for page in mapped {
            m.dom
                .unmap_in(&mut self.r.smmu, page, PAGE)
                .map_err(|_| CopyError::Device)?;
        }
        match r2 {
            Ok(Coherency::Coherent) => Ok(()),
            Ok(Coherency::NonCoherent) => panic!("non-coherent DMA with coherency enforced"),
            Err(_) => Err(CopyError::Device),
        }
    }
}

fn fault_of(r: Result<Coherency, DmaError>) -> (u8, u32) {
    match r {
        Err(DmaError::Translate {
            error: TranslateError::Fault(f),
            ..
        }) => (f.event.id(), f.event.ssid()),
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn fill(p: &Block, seed: u8) {
    let bytes: Vec<u8> = (0..PAGE as usize)
        .map(|i| (i as u8).wrapping_mul(7) ^ seed)
        .collect();
    p.mem().write(p.dma_addr(), &bytes);
}

fn bytes(p: &Block, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0; len];
    p.mem().read(p.dma_addr() + off, &mut b);
    b
}

#[test]
fn every_mdev_copies_in_its_own_address_space() {
    let mut p = Parent::new();
    let mut users = vec![];
    for i in 0..CAPACITY {
        let pasid = p.create();
        // Every user maps its buffers at the same IOVAs: only the PASID tells them apart.
        let (src, dst) = (p.r.page(), [p.r.page(), p.r.page()]);
        fill(&src, i as u8);
        p.user_map(pasid, 0x10_0000, &[&src], false);
        p.user_map(pasid, 0x20_0000, &[&dst[0], &dst[1]], true);
        users.push((pasid, src, dst));
    }
    for (pasid, _, _) in &users {
        // 0xf00 bytes from offset 0x80 to 0x20_0ff0: crosses the destination page boundary.
        let c = Copy {
            src: 0x10_0080,
            dst: 0x20_0ff0,
            len: 0xf00,
        };
        p.copy(*pasid, c).unwrap();
    }
    for (i, (pasid, src, dst)) in users.iter().enumerate() {
        let want = bytes(src, 0x80, 0xf00);
        let mut got = bytes(&dst[0], 0xff0, 0x10);
        got.extend(bytes(&dst[1], 0, 0xef0));
        assert_eq!(got, want, "mdev {i} (PASID {pasid}) copy");
        assert_eq!(
            bytes(&dst[1], 0xef0, 0x10),
            vec![0; 0x10],
            "mdev {i}: past the end"
        );
        // Completion: the PASID-tagged queue message reached this mdev's doorbell.
        let m = &p.mdevs[pasid];
        assert_eq!(m.completions, 1);
        assert_eq!(
            m.doorbell.mem().read_u32(m.doorbell.dma_addr()),
            0xc0de_0000 | pasid
        );
    }
    // No translation is left once the pieces are done: pages are mapped only during a piece.
    for (pasid, _, _) in &users {
        assert_eq!(p.mdevs[pasid].dom.iova_to_phys(0x10_0000), None);
        let rq = p
            .engine
            .queue_request(p.mdevs[pasid].queue, 0x10_0000, false)
            .unwrap();
        let (id, ssid) = fault_of(p.engine.dma_read(rq, &mut [0u8; 4]));
        assert_eq!((id, ssid), (F_TRANSLATION, *pasid));
    }
    // Capacity is the set's quota: a ninth mdev gets no PASID.
    assert!(p.pasids.try_alloc(1, (1 << 20) - 1).is_err());
}

#[test]
fn one_mdev_cannot_reach_another_ones_memory() {
    let mut p = Parent::new();
    let (a, b) = (p.create(), p.create());
    let (a_buf, b_secret, b_dst) = (p.r.page(), p.r.page(), p.r.page());
    fill(&b_secret, 0x5a);
    p.user_map(a, 0x10_0000, &[&a_buf], true);
    p.user_map(b, 0x30_0000, &[&b_secret], false);
    p.user_map(b, 0x40_0000, &[&b_dst], true);
    // A names B's IOVAs: nothing in A's container, refused before any DMA.
    for c in [
        Copy {
            src: 0x30_0000,
            dst: 0x10_0000,
            len: 64,
        },
        Copy {
            src: 0x10_0000,
            dst: 0x40_0000,
            len: 64,
        },
    ] {
        assert_eq!(p.copy(a, c), Err(CopyError::Unmapped), "{c:x?}");
    }
    assert_eq!(bytes(&a_buf, 0, 64), vec![0; 64]);
    assert_eq!(bytes(&b_dst, 0, 64), vec![0; 64]);
    // Even a device bug that tags A's queue DMA at B's IOVA while B's pages are mapped for a
    // piece of B cannot reach them: A's PASID translates through A's domain only.
    let sb = p.mdevs[&b].container[&0x30_0000].0;
    p.mdevs
        .get_mut(&b)
        .unwrap()
        .dom
        .map(0x30_0000, sb, PAGE, Prot::READ)
        .unwrap();
    let rq = p
        .engine
        .queue_request(p.mdevs[&a].queue, 0x30_0000, false)
        .unwrap();
    let (id, ssid) = fault_of(p.engine.dma_read(rq, &mut [0u8; 64]));
    assert_eq!((id, ssid), (F_TRANSLATION, a), "fault names A's PASID");
    let rq = p
        .engine
        .queue_request(p.mdevs[&b].queue, 0x30_0000, false)
        .unwrap();
    p.engine.dma_read(rq, &mut [0u8; 64]).unwrap();
    p.mdevs
        .get_mut(&b)
        .unwrap()
        .dom
        .unmap_in(&mut p.r.smmu, 0x30_0000, PAGE)
        .unwrap();
    // Read-only source cannot be a destination.
    let c = Copy {
        src: 0x40_0000,
        dst: 0x30_0000,
        len: 64,
    };
    assert_eq!(p.copy(b, c), Err(CopyError::Unmapped));
    // After A's unmap, A's copies touching the page are refused; B is unaffected.
    p.user_unmap(a, 0x10_0000, PAGE);
    let c = Copy {
        src: 0x10_0000,
        dst: 0x10_0800,
        len: 64,
    };
    assert_eq!(p.copy(a, c), Err(CopyError::Unmapped));
    p.copy(
        b,
        Copy {
            src: 0x30_0000,
            dst: 0x40_0100,
            len: 256,
        },
    )
    .unwrap();
    assert_eq!(bytes(&b_dst, 0x100, 256), bytes(&b_secret, 0, 256));
}

#[test]
fn bad_commands_fail_with_their_status_and_move_nothing() {
    let mut p = Parent::new();
    let a = p.create();
    let (s, d) = (p.r.page(), p.r.page());
    fill(&s, 1);
    p.user_map(a, 0x10_0000, &[&s], false);
    p.user_map(a, 0x20_0000, &[&d], true);
    let cases = [
        (
            Copy {
                src: 0x10_0000,
                dst: 0x20_0000,
                len: 0,
            },
            CopyError::BadLength,
        ),
        (
            Copy {
                src: 0x10_0000,
                dst: 0x20_0000,
                len: 1 << 20,
            },
            CopyError::BadLength,
        ),
        (
            Copy {
                src: 0x10_0002,
                dst: 0x20_0000,
                len: 8,
            },
            CopyError::BadAlignment,
        ),
        (
            Copy {
                src: u64::MAX - 3,
                dst: 0x20_0000,
                len: 8,
            },
            CopyError::Overflow,
        ),
        (
            Copy {
                src: 0x20_0000,
                dst: 0x20_0008,
                len: 64,
            },
            CopyError::Overlap,
        ),
        (
            Copy {
                src: 0x10_0f00,
                dst: 0x20_0000,
                len: 0x200,
            },
            CopyError::Unmapped,
        ),
        (
            Copy {
                src: 0x10_0000,
                dst: 0x20_0f00,
                len: 0x200,
            },
            CopyError::Unmapped,
        ),
    ];
    for (c, e) in cases {
        assert_eq!(p.copy(a, c), Err(e), "{c:x?}");
    }
    assert_eq!(bytes(&d, 0, PAGE as usize), vec![0; PAGE as usize]);
    assert_eq!(p.mdevs[&a].completions, 0);
    // Source and destination in one page: mapped once, read-write.
    p.user_map(a, 0x50_0000, &[&d], true);
    p.copy(
        a,
        Copy {
            src: 0x50_0000,
            dst: 0x50_0800,
            len: 0x100,
        },
    )
    .unwrap();
}

#[test]
fn removal_leaves_nothing_behind_and_pasids_are_reused_clean() {
    let mut p = Parent::new();
    let a = p.create();
    let (s, d) = (p.r.page(), p.r.page());
    fill(&s, 3);
    p.user_map(a, 0x10_0000, &[&s], false);
    p.user_map(a, 0x20_0000, &[&d], true);
    p.copy(
        a,
        Copy {
            src: 0x10_0000,
            dst: 0x20_0000,
            len: 512,
        },
    )
    .unwrap();
    let queue = p.mdevs[&a].queue;
    let asids_before = p.r.asids.in_use();
    p.remove(a);
    assert_eq!(p.r.asids.in_use(), asids_before - 1);
    // The PASID has no CD any more: the old queue's DMA faults with C_BAD_CD.
    let rq = p.engine.queue_request(queue, 0x10_0000, false).unwrap();
    assert_eq!(
        fault_of(p.engine.dma_read(rq, &mut [0u8; 4])),
        (C_BAD_CD, a)
    );
    // A new mdev gets the freed PASID back with a fresh, empty domain: no stale translation.
    let b = p.create();
    assert_eq!(b, a, "lowest free PASID reused");
    let rq = p
        .engine
        .queue_request(p.mdevs[&b].queue, 0x10_0000, false)
        .unwrap();
    assert_eq!(
        fault_of(p.engine.dma_read(rq, &mut [0u8; 4])),
        (F_TRANSLATION, b)
    );
    // Create/remove churn returns every resource.
    let blocks = p.r.mem.live_blocks();
    for _ in 0..50 {
        let x = p.create();
        p.remove(x);
    }
    assert_eq!(
        p.r.mem.live_blocks(),
        blocks,
        "page tables and doorbell pages all returned"
    );
}

#[test]
fn costs_per_piece() {
    let mut p = Parent::new();
    let a = p.create();
    let (s, d) = (p.r.page(), p.r.page());
    p.user_map(a, 0x10_0000, &[&s], false);
    p.user_map(a, 0x20_0000, &[&d], true);
    let before = p.r.model.stats();
    p.copy(
        a,
        Copy {
            src: 0x10_0000,
            dst: 0x20_0000,
            len: 0x800,
        },
    )
    .unwrap();
    let after = p.r.model.stats();
    let count = |s: &smmu_model::Stats| s.commands.values().sum::<u64>();
    let cmds = count(&after) - count(&before);
    let syncs = after.syncs - before.syncs;
    println!("PASID mode, one piece (map 2 pages, DMA, unmap 2 pages): {cmds} commands, {syncs} CMD_SYNC");
    assert_eq!((cmds, syncs), (4, 2), "TLBI + CMD_SYNC per unmapped page");
}
