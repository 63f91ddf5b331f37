// SPDX-License-Identifier: GPL-2.0

//! **Measurement only, not driver logic**: what each copy costs the driver itself
//! ([`CopyStats`], debugfs `edu_mdev/<parent>`) and a CPU `memcpy` peer ([`PeerMemcpy`],
//! debugfs `edu_mdev/peer_memcpy`), read by the benches in `tools/guest/labtest`. A driver
//! modelled on this sample leaves this file (and the `stats` calls) out.

use super::*;

/// Monotonic time in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    Ktime::ktime_get().to_ns().try_into().unwrap_or(0)
}

/// Nanoseconds since `t0` (a [`now_ns`] value).
pub(crate) fn since(t0: u64) -> u64 {
    now_ns().saturating_sub(t0)
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
    pub(crate) fn add(&self, counter: &AtomicU64, ns: u64) {
        counter.fetch_add(ns, Ordering::Relaxed);
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
