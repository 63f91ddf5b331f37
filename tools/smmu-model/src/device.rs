// SPDX-License-Identifier: GPL-2.0
//! A PCIe DMA device behind the SMMU model.
//!
//! The device issues memory requests tagged with its requester ID (the StreamID) and, when the
//! request carries a PASID TLP prefix, a PASID (the SubstreamID). Requests are split at 4KB
//! boundaries (the smallest granule, and PCIe's own rule that a request does not cross a 4KB
//! boundary); each piece is translated and performed separately and logged. A faulting piece
//! ends the request: earlier pieces stay done, like posted writes that already left.
//!
//! Coherency: every completed piece reports [`Coherency::NonCoherent`] when the request had
//! No_snoop set and the translation did not force snooping
//! ([`crate::SmmuModel::set_snoop_forced`]), [`Coherency::Coherent`] otherwise.

use crate::{Access, SmmuModel, TranslateError, TxnAttrs};
use physmem::PhysMem;
use std::collections::BTreeMap;

/// Whether a completed access was snooped by the CPU caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coherency {
    Coherent,
    /// No_snoop was set and nothing stripped it: software must maintain coherency itself.
    NonCoherent,
}

/// What kind of request an access was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    DmaRead,
    DmaWrite,
    /// An MSI/MSI-X message write (requester ID only, never a PASID).
    Msi {
        vector: u32,
    },
    /// A per-queue interrupt message write, tagged with the queue's PASID.
    QueueIrq {
        queue: u32,
    },
}

/// One logged access (one piece of at most 4KB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    pub kind: AccessKind,
    pub pasid: Option<u32>,
    pub iova: u64,
    pub len: usize,
    pub no_snoop: bool,
    /// Physical address and coherency, or why it failed.
    pub result: Result<(u64, Coherency), TranslateError>,
}

/// A DMA request's tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaRequest {
    /// PASID TLP prefix, if any.
    pub pasid: Option<u32>,
    pub iova: u64,
    pub no_snoop: bool,
    /// Privileged Mode Requested (only meaningful with a PASID prefix).
    pub privileged: bool,
}

/// Why a device operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The SMMU terminated a piece; `done` bytes had completed before it.
    Translate { done: usize, error: TranslateError },
    /// The vector or queue was never configured.
    NotConfigured,
}

#[derive(Clone, Copy, Debug)]
struct Message {
    addr: u64,
    data: u32,
}

#[derive(Clone, Copy, Debug)]
struct QueueCfg {
    pasid: Option<u32>,
    irq: Message,
}

/// A PCIe function with DMA, MSI vectors and PASID-tagged queues.
pub struct Device {
    smmu: SmmuModel,
    mem: PhysMem,
    rid: u32,
    msi: BTreeMap<u32, Message>,
    queues: BTreeMap<u32, QueueCfg>,
    log: Vec<AccessRecord>,
}

const PIECE: u64 = 4096;

impl Device {
    /// A device whose requester ID (= StreamID) is `requester_id`.
    pub fn new(smmu: SmmuModel, requester_id: u32) -> Self {
        let mem = smmu.mem();
        Self {
            smmu,
            mem,
            rid: requester_id,
            msi: BTreeMap::new(),
            queues: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    pub fn requester_id(&self) -> u32 {
        self.rid
    }

    /// Splits `[iova, iova+len)` at 4KB boundaries and runs `f(piece_offset, iova, len)`.
    fn pieces(iova: u64, len: usize) -> Vec<(usize, u64, usize)> {
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < len {
            let a = iova.wrapping_add(done as u64);
            let room = (PIECE - a % PIECE) as usize;
            let n = room.min(len - done);
            out.push((done, a, n));
            done += n;
        }
        out
    }

    fn access(
        &mut self,
        kind: AccessKind,
        req: DmaRequest,
        access: Access,
        mut data: Data<'_>,
    ) -> Result<Coherency, DmaError> {
        let mut outcome = Coherency::Coherent;
        let len = data.len();
        for (off, iova, n) in Self::pieces(req.iova, len) {
            let attrs = TxnAttrs {
                privileged: req.privileged && req.pasid.is_some(),
                instruction: false,
                no_snoop: req.no_snoop,
            };
            let r = self
                .smmu
                .translate(self.rid, req.pasid, iova, access, attrs);
            let rec = |result| AccessRecord {
                kind,
                pasid: req.pasid,
                iova,
                len: n,
                no_snoop: req.no_snoop,
                result,
            };
            match r {
                Ok(t) => {
                    let c = if req.no_snoop && !t.snoop_forced {
                        Coherency::NonCoherent
                    } else {
                        Coherency::Coherent
                    };
                    if c == Coherency::NonCoherent {
                        outcome = c;
                    }
                    match &mut data {
                        Data::Out(d) => self.mem.write(t.pa, &d[off..off + n]),
                        Data::In(b) => self.mem.read(t.pa, &mut b[off..off + n]),
                    }
                    self.log.push(rec(Ok((t.pa, c))));
                }
                Err(e) => {
                    self.log.push(rec(Err(e)));
                    return Err(DmaError::Translate {
                        done: off,
                        error: e,
                    });
                }
            }
        }
        Ok(outcome)
    }

    /// Writes `data` at `req.iova` (memory write requests).
    pub fn dma_write(&mut self, req: DmaRequest, data: &[u8]) -> Result<Coherency, DmaError> {
        self.access(AccessKind::DmaWrite, req, Access::Write, Data::Out(data))
    }

    /// Reads `buf.len()` bytes at `req.iova` (memory read requests).
    pub fn dma_read(&mut self, req: DmaRequest, buf: &mut [u8]) -> Result<Coherency, DmaError> {
        self.access(AccessKind::DmaRead, req, Access::Read, Data::In(buf))
    }

    /// Programs MSI/MSI-X `vector` (what the driver writes into the capability or table).
    pub fn set_msi_vector(&mut self, vector: u32, addr: u64, data: u32) {
        self.msi.insert(vector, Message { addr, data });
    }

    /// Sends MSI `vector`: a 32-bit write of its data to its address, tagged with the
    /// requester ID only (PCIe MSIs never carry a PASID), snooped.
    pub fn signal_msi(&mut self, vector: u32) -> Result<(), DmaError> {
        let m = *self.msi.get(&vector).ok_or(DmaError::NotConfigured)?;
        let req = DmaRequest {
            pasid: None,
            iova: m.addr,
            no_snoop: false,
            privileged: false,
        };
        let bytes = m.data.to_le_bytes();
        self.access(
            AccessKind::Msi { vector },
            req,
            Access::Write,
            Data::Out(&bytes),
        )
        .map(|_| ())
    }

    /// Binds `queue` to `pasid` (None: untagged) with an interrupt message (address, data)
    /// that is written, tagged with the same PASID, when the queue signals.
    pub fn configure_queue(
        &mut self,
        queue: u32,
        pasid: Option<u32>,
        irq_addr: u64,
        irq_data: u32,
    ) {
        self.queues.insert(
            queue,
            QueueCfg {
                pasid,
                irq: Message {
                    addr: irq_addr,
                    data: irq_data,
                },
            },
        );
    }

    /// The request tags a DMA of `queue` uses.
    pub fn queue_request(&self, queue: u32, iova: u64, no_snoop: bool) -> Option<DmaRequest> {
        let q = self.queues.get(&queue)?;
        Some(DmaRequest {
            pasid: q.pasid,
            iova,
            no_snoop,
            privileged: false,
        })
    }

    /// Sends `queue`'s interrupt message: a 32-bit write tagged with the queue's PASID.
    pub fn queue_interrupt(&mut self, queue: u32) -> Result<(), DmaError> {
        let q = *self.queues.get(&queue).ok_or(DmaError::NotConfigured)?;
        let req = DmaRequest {
            pasid: q.pasid,
            iova: q.irq.addr,
            no_snoop: false,
            privileged: false,
        };
        let bytes = q.irq.data.to_le_bytes();
        self.access(
            AccessKind::QueueIrq { queue },
            req,
            Access::Write,
            Data::Out(&bytes),
        )
        .map(|_| ())
    }

    /// Every access so far, oldest first.
    pub fn log(&self) -> &[AccessRecord] {
        &self.log
    }

    /// Returns and clears the log.
    pub fn take_log(&mut self) -> Vec<AccessRecord> {
        std::mem::take(&mut self.log)
    }
}

enum Data<'a> {
    Out(&'a [u8]),
    In(&'a mut [u8]),
}

impl Data<'_> {
    fn len(&self) -> usize {
        match self {
            Data::Out(d) => d.len(),
            Data::In(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_at_4k() {
        assert_eq!(
            Device::pieces(0xff0, 0x20),
            vec![(0, 0xff0, 0x10), (0x10, 0x1000, 0x10)]
        );
        assert_eq!(Device::pieces(0x1000, 0), vec![]);
    }
}
