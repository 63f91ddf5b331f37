// SPDX-License-Identifier: GPL-2.0

//! **Measurement only, not driver logic**: what each copy costs the driver itself
//! ([`CopyStats`], debugfs `edu_mdev/<parent>`) and a CPU `memcpy` peer ([`PeerMemcpy`],
//! debugfs `edu_mdev/peer_memcpy`), read by the benches in `tools/guest/labtest`. A driver
//! modelled on this sample leaves this file (and the one-line `stats.span`/`stats.count`
//! hooks) out.

use super::*;

/// Monotonic time in nanoseconds.
fn now_ns() -> u64 {
    Ktime::ktime_get().to_ns().try_into().unwrap_or(0)
}

/// Nanoseconds since `t0` (a [`now_ns`] value).
fn since(t0: u64) -> u64 {
    now_ns().saturating_sub(t0)
}

/// The phases of the driver's own work that [`CopyStats`] times.
#[derive(Clone, Copy)]
pub(crate) enum Phase {
    /// Checking and queueing a command; pinning its pages once to check them.
    Validate,
    /// Pinning a piece's pages.
    Pin,
    /// Mapping them for edu.
    Map,
    /// Unmapping and unpinning them.
    UnmapUnpin,
    /// The engine's queue handling and the completion.
    Complete,
    /// PASID mode: an mdev's aux domain created and attached / detached and freed (counted
    /// too).
    Attach,
    Detach,
}

/// What [`CopyStats::count`] counts.
#[derive(Clone, Copy)]
pub(crate) enum Event {
    /// A started copy was queued.
    Submitted,
    /// A copy ended, with or without error.
    Ended { ok: bool },
    /// A piece of `bytes` was copied.
    Piece { bytes: u64 },
    /// PASID mode: a DMA the IOMMU refused.
    DmaFault,
    /// PASID mode: a completion message the platform took, or refused.
    Message { refused: bool },
}

/// The hook the driver files call: one line per timed phase (a guard that adds its time when
/// dropped) or counted event; everything else about measuring is in this file.
pub(crate) struct Span<'a> {
    stats: &'a CopyStats,
    phase: Phase,
    t0: u64,
}

impl Span<'_> {
    /// Not counted (the phase failed).
    pub(crate) fn discard(self) {
        core::mem::forget(self);
    }
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        let s = self.stats;
        let ns = since(self.t0);
        let counter = match self.phase {
            Phase::Validate => &s.validate_ns,
            Phase::Pin => &s.pin_ns,
            Phase::Map => &s.map_ns,
            Phase::UnmapUnpin => &s.unmap_unpin_ns,
            Phase::Complete => &s.complete_ns,
            Phase::Attach => {
                s.attaches.fetch_add(1, Ordering::Relaxed);
                &s.attach_ns
            }
            Phase::Detach => {
                s.detaches.fetch_add(1, Ordering::Relaxed);
                &s.detach_ns
            }
        };
        counter.fetch_add(ns, Ordering::Relaxed);
    }
}

/// The time of one edu DMA: programming and status reads are driver time (`program_ns`), the
/// sleeps until edu finishes are not (`edu_wait_ns`). Added when dropped.
pub(crate) struct DmaClock<'a> {
    stats: &'a CopyStats,
    t0: u64,
    waited: u64,
}

impl DmaClock<'_> {
    /// Runs `wait` (a sleep until edu finishes), timed apart.
    pub(crate) fn waiting<R>(&mut self, wait: impl FnOnce() -> R) -> R {
        let t = now_ns();
        let r = wait();
        self.waited += since(t);
        r
    }
}

impl Drop for DmaClock<'_> {
    fn drop(&mut self) {
        let s = self.stats;
        s.edu_wait_ns.fetch_add(self.waited, Ordering::Relaxed);
        let program = since(self.t0).saturating_sub(self.waited);
        s.program_ns.fetch_add(program, Ordering::Relaxed);
    }
}

/// What copies cost the driver itself, in nanoseconds of its own code by phase, read through
/// debugfs `edu_mdev/<parent>`. The time the engine worker sleeps until edu finishes a DMA
/// (edu's fixed 100 ms timer) is counted apart, in `edu_wait_ns`, and is not driver time.
/// Wall-clock time of code that does not sleep: on an otherwise idle machine, its CPU time.
#[derive(Default)]
pub(crate) struct CopyStats {
    /// `CMD` writes with `START` that got past the register checks.
    pub(crate) submitted: AtomicU64,
    /// Copies that ended (any status) / ended without error.
    pub(crate) ended: AtomicU64,
    pub(crate) copies: AtomicU64,
    /// Pieces done and their bytes.
    pub(crate) pieces: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// PASID mode: DMAs the IOMMU refused (the device's result register said failed).
    pub(crate) faults: AtomicU64,
    /// PASID mode: completion messages the platform accepted / refused (an IOMMU fault).
    pub(crate) messages: AtomicU64,
    pub(crate) message_faults: AtomicU64,
    /// PASID mode: aux domains created and attached at an mdev's PASID / detached and freed,
    /// and the time it took (`PasidAux::attach`, `PasidAux::detach`).
    pub(crate) attaches: AtomicU64,
    pub(crate) attach_ns: AtomicU64,
    pub(crate) detaches: AtomicU64,
    pub(crate) detach_ns: AtomicU64,
    /// Checking the command, pinning its pages once to check them, queueing it.
    pub(crate) validate_ns: AtomicU64,
    /// Per piece: `vfio_pin_pages` of the two pages; mapping them for edu (`dma_map_page`);
    /// programming edu and reading its status (the waits excluded); unmapping and unpinning.
    pub(crate) pin_ns: AtomicU64,
    pub(crate) map_ns: AtomicU64,
    pub(crate) program_ns: AtomicU64,
    pub(crate) unmap_unpin_ns: AtomicU64,
    /// The worker's queue handling and the completion (status, eventfd).
    pub(crate) complete_ns: AtomicU64,
    /// Not driver time: sleeping until edu's DMA completes.
    pub(crate) edu_wait_ns: AtomicU64,
}

impl CopyStats {
    /// Times `phase` until the returned guard drops.
    pub(crate) fn span(&self, phase: Phase) -> Span<'_> {
        Span {
            stats: self,
            phase,
            t0: now_ns(),
        }
    }

    /// Times one edu DMA ([`DmaClock`]).
    pub(crate) fn dma_clock(&self) -> DmaClock<'_> {
        DmaClock {
            stats: self,
            t0: now_ns(),
            waited: 0,
        }
    }

    /// Counts `event`.
    pub(crate) fn count(&self, event: Event) {
        let add = |c: &AtomicU64, n| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match event {
            Event::Submitted => add(&self.submitted, 1),
            Event::Ended { ok } => {
                add(&self.ended, 1);
                if ok {
                    add(&self.copies, 1);
                }
            }
            Event::Piece { bytes } => {
                add(&self.pieces, 1);
                add(&self.bytes, bytes);
            }
            Event::DmaFault => add(&self.faults, 1),
            Event::Message { refused: false } => add(&self.messages, 1),
            Event::Message { refused: true } => add(&self.message_faults, 1),
        }
    }
}

impl debugfs::Show for CopyStats {
    fn show(&self, m: &mut debugfs::SeqFile) -> Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let phases = [
            ("validate_ns", &self.validate_ns),
            ("pin_ns", &self.pin_ns),
            ("map_ns", &self.map_ns),
            ("program_ns", &self.program_ns),
            ("unmap_unpin_ns", &self.unmap_unpin_ns),
            ("complete_ns", &self.complete_ns),
        ];
        let driver = phases
            .iter()
            .fold(0u64, |sum, (_, c)| sum.saturating_add(get(c)));
        let counts = [
            ("submitted", &self.submitted),
            ("ended", &self.ended),
            ("copies", &self.copies),
            ("pieces", &self.pieces),
            ("bytes", &self.bytes),
            ("faults", &self.faults),
            ("messages", &self.messages),
            ("message_faults", &self.message_faults),
            ("attaches", &self.attaches),
            ("attach_ns", &self.attach_ns),
            ("detaches", &self.detaches),
            ("detach_ns", &self.detach_ns),
        ];
        for (name, c) in Iterator::chain(counts.iter(), phases.iter()) {
            writeln!(m, "{} {}", name, get(c)).map_err(|_| EINVAL)?;
        }
        writeln!(m, "driver_ns {}", driver).map_err(|_| EINVAL)?;
        writeln!(m, "edu_wait_ns {}", get(&self.edu_wait_ns)).map_err(|_| EINVAL)
    }
}

/// The peer of the driver time: reading `edu_mdev/peer_memcpy` times a CPU copy of one page
/// (the bytes one piece moves), [`PeerMemcpy::ROUNDS`] times, and prints the mean.
pub(crate) struct PeerMemcpy;

impl PeerMemcpy {
    const ROUNDS: u64 = 1000;
    const BYTES: usize = kernel::page::PAGE_SIZE;
}

impl debugfs::Show for PeerMemcpy {
    fn show(&self, m: &mut debugfs::SeqFile) -> Result {
        let src = KVec::from_elem(0x5au8, Self::BYTES, GFP_KERNEL)?;
        let mut dst = KVec::from_elem(0u8, Self::BYTES, GFP_KERNEL)?;
        let t0 = now_ns();
        for i in 0..Self::ROUNDS {
            dst.copy_from_slice(core::hint::black_box(&src));
            dst[0] = core::hint::black_box(i as u8);
        }
        let ns = since(t0);
        writeln!(
            m,
            "memcpy_bytes {}\nrounds {}\nmemcpy_ns {}",
            Self::BYTES,
            Self::ROUNDS,
            ns / Self::ROUNDS
        )
        .map_err(|_| EINVAL)
    }
}
