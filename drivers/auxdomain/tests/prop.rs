// SPDX-License-Identifier: GPL-2.0
//! Property test: random attach / detach / map / unmap / MSI activate / deactivate across
//! PASIDs of two devices and several domains on the SMMU model. After every operation one
//! PASID-tagged DMA is checked against a reference, and after every detach and unmap the
//! translation just removed is probed: it must fault (no stale translation). At least
//! 100 000 operations in total.

#![allow(clippy::map_entry)] // the reference mirrors the API's error order

mod common;

use auxdomain::smmuv3::dma::{DmaAllocator, DmaMemory};
use auxdomain::{Error, MsiSource};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use smmu_model::Device;
use std::collections::{BTreeMap, BTreeSet};

const DOMS: usize = 6;
const PAGES: u64 = 8;
const PASIDS: [u32; 5] = [1, 2, 3, 1500, 70000];
const SIDS: [u32; 2] = [0x100, 0x101];
const DOORBELLS: [u64; 3] = [0x0808_0040, 0x0808_0080, 0x0809_0040];

#[derive(Debug, Clone)]
enum Op {
    Attach(usize, usize, usize),
    Detach(usize, usize, usize),
    Map(usize, u64),
    Unmap(usize, u64),
    MsiOn(usize, usize, usize, u32, usize),
    MsiOff(usize, usize, usize, u32),
    Dma(usize, usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DOMS;
    let v = 0..SIDS.len();
    let p = 0..PASIDS.len();
    prop_oneof![
        3 => (d.clone(), v.clone(), p.clone()).prop_map(|(a, b, c)| Op::Attach(a, b, c)),
        2 => (d.clone(), v.clone(), p.clone()).prop_map(|(a, b, c)| Op::Detach(a, b, c)),
        3 => (d.clone(), 0..PAGES).prop_map(|(a, b)| Op::Map(a, b)),
        2 => (d.clone(), 0..PAGES).prop_map(|(a, b)| Op::Unmap(a, b)),
        2 => (d.clone(), v.clone(), p.clone(), 0..3u32, 0..DOORBELLS.len())
            .prop_map(|(a, b, c, q, x)| Op::MsiOn(a, b, c, q, x)),
        1 => (d.clone(), v.clone(), p.clone(), 0..3u32).prop_map(|(a, b, c, q)| Op::MsiOff(a, b, c, q)),
        3 => (v, p, 0..PAGES).prop_map(|(a, b, c)| Op::Dma(a, b, c)),
    ]
}

fn iova(page: u64) -> u64 {
    0x10_0000 + page * 0x1000
}

struct World {
    r: Rig,
    devs: Vec<Dev>,
    pcis: Vec<Device>,
    doms: Vec<Dom>,
    mem: physmem::Block,
    /// (dev, pasid) -> domain
    attached: BTreeMap<(usize, usize), usize>,
    mapped: BTreeSet<(usize, u64)>,
    /// (dom, dev, pasid, queue) -> doorbell
    msi: BTreeMap<(usize, usize, usize, u32), usize>,
    stale_probes: u64,
    dmas: u64,
}

impl World {
    fn new() -> Self {
        let mut r = Rig::new();
        let mut devs = Vec::new();
        let mut pcis = Vec::new();
        for &s in &SIDS {
            let (d, p) = r.device(s);
            devs.push(d);
            pcis.push(p);
        }
        let doms = (0..DOMS).map(|_| r.domain()).collect();
        let mem = r
            .mem
            .alloc_zeroed((DOMS as u64 * PAGES * 4096) as usize, 4096)
            .unwrap();
        Self {
            r,
            devs,
            pcis,
            doms,
            mem,
            attached: BTreeMap::new(),
            mapped: BTreeSet::new(),
            msi: BTreeMap::new(),
            stale_probes: 0,
            dmas: 0,
        }
    }

    fn pa(&self, dom: usize, page: u64) -> u64 {
        self.mem.dma_addr() + (dom as u64 * PAGES + page) * 4096
    }

    /// DMA from (dev, pasid) at page; compare with the reference.
    fn check(&mut self, v: usize, p: usize, page: u64) {
        self.dmas += 1;
        let pasid = PASIDS[p];
        let r = self.pcis[v].dma_write(req(Some(pasid), iova(page) + 8), &[0x5a]);
        let rec = *self.pcis[v].log().last().unwrap();
        self.pcis[v].take_log();
        let want = self
            .attached
            .get(&(v, p))
            .filter(|&&d| self.mapped.contains(&(d, page)))
            .map(|&d| self.pa(d, page) + 8);
        match (want, r) {
            (Some(pa), Ok(_)) => assert_eq!(rec.result.unwrap().0, pa, "wrong page"),
            (None, Err(_)) => {}
            (w, r) => panic!("dev {v} pasid {pasid} page {page}: want {w:#x?} got {r:?}"),
        }
    }

    fn apply(&mut self, op: &Op) {
        let World { r, devs, doms, .. } = self;
        match *op {
            Op::Attach(d, v, p) => {
                let res = doms[d].attach((&mut r.smmu, &mut devs[v], &mut r.snoop), PASIDS[p]);
                match self.attached.get(&(v, p)) {
                    None => {
                        if doms[d].attachments() == auxdomain::MAX_ATTACH {
                            assert_eq!(res, Err(Error::NoSpace));
                        } else {
                            res.unwrap();
                            self.attached.insert((v, p), d);
                        }
                    }
                    Some(&o) if o == d => assert_eq!(res, Err(Error::AlreadyAttached)),
                    Some(_) => assert_eq!(res, Err(Error::PasidInUse)),
                }
                for page in 0..PAGES {
                    self.check(v, p, page);
                }
            }
            Op::Detach(d, v, p) => {
                let res = doms[d].detach((&mut r.smmu, &mut devs[v], &mut r.snoop), PASIDS[p]);
                if self.attached.get(&(v, p)) == Some(&d) {
                    res.unwrap();
                    self.attached.remove(&(v, p));
                    self.stale_probes += PAGES;
                    for page in 0..PAGES {
                        self.check(v, p, page);
                    }
                } else {
                    assert_eq!(res, Err(Error::NotAttached));
                }
            }
            Op::Map(d, page) => {
                let pa = self.mem.dma_addr() + (d as u64 * PAGES + page) * 4096;
                let res = doms[d].map(iova(page), pa, 4096, RW);
                if self.mapped.insert((d, page)) {
                    res.unwrap();
                } else {
                    assert_eq!(res.unwrap_err().errno(), 17);
                }
            }
            Op::Unmap(d, page) => {
                let n = doms[d].unmap_in(&mut r.smmu, iova(page), 4096).unwrap();
                let was = self.mapped.remove(&(d, page));
                assert_eq!(n, if was { 4096 } else { 0 });
                // Probe every attachment of the domain at that page: no stale entry.
                let users: Vec<_> = self
                    .attached
                    .iter()
                    .filter(|(_, &x)| x == d)
                    .map(|(&k, _)| k)
                    .collect();
                for (v, p) in users {
                    self.stale_probes += 1;
                    self.check(v, p, page);
                }
            }
            Op::MsiOn(d, v, p, q, db) => {
                let src = MsiSource::Queue {
                    pasid: PASIDS[p],
                    queue: q,
                };
                let res = doms[d].msi_activate(&devs[v], src, DOORBELLS[db]);
                let key = (d, v, p, q);
                if self.attached.get(&(v, p)) != Some(&d) {
                    assert_eq!(res, Err(Error::MsiRoute));
                } else if self.msi.contains_key(&key) {
                    assert_eq!(res, Err(Error::AlreadyAttached));
                } else {
                    let a = res.unwrap();
                    assert_eq!(a & 0xfff, DOORBELLS[db] & 0xfff);
                    self.msi.insert(key, db);
                }
            }
            Op::MsiOff(d, v, p, q) => {
                let src = MsiSource::Queue {
                    pasid: PASIDS[p],
                    queue: q,
                };
                let res = doms[d].msi_deactivate_in(&mut r.smmu, devs[v].id(), src);
                if self.msi.remove(&(d, v, p, q)).is_some() {
                    res.unwrap();
                } else {
                    assert_eq!(res, Err(Error::NotAttached));
                }
            }
            Op::Dma(v, p, page) => self.check(v, p, page),
        }
        // Doorbell references always equal the active sources per doorbell page.
        for (d, dom) in self.doms.iter().enumerate() {
            for db in [0x0808_0000u64, 0x0809_0000] {
                let want = self
                    .msi
                    .iter()
                    .filter(|(k, &x)| k.0 == d && DOORBELLS[x] & !0xfff == db)
                    .count() as u32;
                assert_eq!(dom.doorbell_refs(db), want);
            }
        }
    }

    fn finish(mut self) {
        let keys: Vec<_> = self.msi.keys().copied().collect();
        for (d, v, p, q) in keys {
            let src = MsiSource::Queue {
                pasid: PASIDS[p],
                queue: q,
            };
            self.doms[d]
                .msi_deactivate_in(&mut self.r.smmu, self.devs[v].id(), src)
                .unwrap();
        }
        for dom in &self.doms {
            assert_eq!(
                dom.doorbells().count(),
                0,
                "doorbell refcounts back to zero"
            );
        }
        let att: Vec<_> = self.attached.iter().map(|(&k, &d)| (k, d)).collect();
        for ((v, p), d) in att {
            self.doms[d]
                .detach(
                    (&mut self.r.smmu, &mut self.devs[v], &mut self.r.snoop),
                    PASIDS[p],
                )
                .unwrap();
        }
        for dom in self.doms.drain(..) {
            dom.destroy(&mut self.r.smmu, &mut self.r.asids)
                .ok()
                .unwrap();
        }
        assert_eq!(self.r.asids.in_use(), 0);
        assert_eq!(self.r.smmu.stats().cmdq.errors, 0);
    }
}

#[test]
fn random_ops_agree_with_reference() {
    let cases: u32 = std::env::var("AUX_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let total = std::cell::Cell::new((0u64, 0u64, 0u64));
    runner
        .run(&proptest::collection::vec(op(), 500..=520), |ops| {
            let mut w = World::new();
            for o in &ops {
                w.apply(o);
            }
            let (a, b, c) = total.get();
            total.set((a + ops.len() as u64, b + w.dmas, c + w.stale_probes));
            w.finish();
            Ok(())
        })
        .unwrap();
    let (ops, dmas, stale) = total.get();
    println!("{ops} operations, {dmas} DMAs checked, {stale} stale-translation probes, 0 stale");
    if cases >= 200 {
        assert!(ops >= 100_000, "{ops}");
    }
}
