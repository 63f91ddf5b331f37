// SPDX-License-Identifier: GPL-2.0
//! Caches that keep stale entries until the matching invalidation command (spec 16.2, 4.3, 4.4).
//!
//! Like QEMU's, an insertion into a full cache empties it first: the only way an entry leaves
//! before its invalidation is capacity pressure, and then everything leaves at once, which keeps
//! the model deterministic and comparable with QEMU.

use crate::config::{Cd, Ste};
use crate::walk::TlbEntry;
use std::collections::HashMap;

/// Configuration cache: STEs keyed by StreamID, CDs keyed by (StreamID, CD index).
pub(crate) struct ConfigCache {
    capacity: usize,
    stes: HashMap<u32, Ste>,
    cds: HashMap<(u32, u32), Cd>,
}

impl ConfigCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            stes: HashMap::new(),
            cds: HashMap::new(),
        }
    }

    fn make_room(&mut self) {
        if self.stes.len() + self.cds.len() >= self.capacity {
            self.stes.clear();
            self.cds.clear();
        }
    }

    pub fn ste(&self, sid: u32) -> Option<&Ste> {
        self.stes.get(&sid)
    }

    pub fn insert_ste(&mut self, sid: u32, ste: Ste) {
        if self.capacity == 0 {
            return;
        }
        self.make_room();
        self.stes.insert(sid, ste);
    }

    pub fn cd(&self, sid: u32, index: u32) -> Option<&Cd> {
        self.cds.get(&(sid, index))
    }

    pub fn insert_cd(&mut self, sid: u32, index: u32, cd: Cd) {
        if self.capacity == 0 {
            return;
        }
        self.make_room();
        self.cds.insert((sid, index), cd);
    }

    /// CMD_CFGI_STE / _STE_RANGE / _ALL: the STEs and every CD cached through them (4.3.1).
    pub fn invalidate_sids(&mut self, first: u32, last: u32) {
        self.stes.retain(|&s, _| s < first || s > last);
        self.cds.retain(|&(s, _), _| s < first || s > last);
    }

    /// CMD_CFGI_CD: one CD, by CD-table index (4.3.3).
    pub fn invalidate_cd(&mut self, sid: u32, index: u32) {
        self.cds.remove(&(sid, index));
    }

    /// CMD_CFGI_CD_ALL (4.3.4).
    pub fn invalidate_cds(&mut self, sid: u32) {
        self.cds.retain(|&(s, _), _| s != sid);
    }

    pub fn len(&self) -> usize {
        self.stes.len() + self.cds.len()
    }
}

/// Stage 1 TLB: entries tagged by VMID and ASID (or global), covering a page or block.
pub(crate) struct Iotlb {
    capacity: usize,
    entries: Vec<TlbEntry>,
}

impl Iotlb {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Vec::new(),
        }
    }

    pub fn lookup(&self, vmid: u16, asid: u16, va: u64) -> Option<&TlbEntry> {
        self.entries
            .iter()
            .find(|e| e.vmid == vmid && (e.global || e.asid == asid) && e.covers(va))
    }

    pub fn insert(&mut self, e: TlbEntry) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        self.entries.push(e);
    }

    /// TLBI_NH_ALL (VMID-scoped), TLBI_S12_VMALL.
    pub fn invalidate_vmid(&mut self, vmid: u16) {
        self.entries.retain(|e| e.vmid != vmid);
    }

    /// TLBI_NH_ASID: non-global entries of (VMID, ASID).
    pub fn invalidate_asid(&mut self, vmid: u16, asid: u16) {
        self.entries
            .retain(|e| !(e.vmid == vmid && !e.global && e.asid == asid));
    }

    /// TLBI_NH_VA (`asid` = Some: that ASID and global entries) / TLBI_NH_VAA (`asid` = None)
    /// over `[start, end]`. The TTL and Leaf hints only narrow what hardware must invalidate;
    /// the model invalidates every overlapping entry (as QEMU does when its exact-level lookup
    /// misses).
    pub fn invalidate_va(&mut self, vmid: u16, asid: Option<u16>, start: u64, end: u64) {
        self.entries.retain(|e| {
            let asid_match = match asid {
                Some(a) => e.global || e.asid == a,
                None => true,
            };
            !(e.vmid == vmid && asid_match && e.overlaps(start, end))
        });
    }

    pub fn entries(&self) -> &[TlbEntry] {
        &self.entries
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
