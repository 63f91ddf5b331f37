// SPDX-License-Identifier: GPL-2.0
//! Concurrent PASID attaches on one device (issue 13): kernel workers attach, detach and
//! re-attach paging domains at PASIDs of edu-pasid at the same moment, through the IOMMU API
//! (`iommu_attach_device_pasid`, so through whichever SMMUv3 driver is booted), then edu-pasid
//! DMAs at each PASID to prove that every PASID translates through the domain attached there
//! last, and two domains racing for one PASID end with exactly one attached and `EBUSY` for the
//! other.
//!
//! Each round uses three 2-level CD leaves (1024 CDs each) that nothing has written yet: two
//! PASIDs share one fresh leaf and two others get a fresh leaf each, so allocating and
//! installing leaves is part of every round (the CD table itself exists from the device's
//! default DMA domain on). In 6.12 the IOMMU core holds the device's group mutex around
//! `set_dev_pasid`, `remove_dev_pasid` and the RID attach, so the workers' calls overlap at
//! the API and are serialised before the driver (whose "another attach installed it first"
//! path is not reached: docs/rust-smmuv3.md). The case reports how many attaches were in
//! flight at once and fails if they never overlapped (no race was tried), after up to
//! [`EXTRA_ROUNDS`] more rounds for a loaded host.
use super::{edu, load_pattern, pasid_dma, read_page, zero_page, IOVA, LEN};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    alloc::flags::GFP_KERNEL,
    delay::msleep,
    device::{Bound, Core, Device},
    dma::page_to_phys,
    error::code::EBUSY,
    iommu::{Domain, PasidAttachment, Prot},
    labtest::{Case, Failed, Suite},
    labtest_ensure, new_condvar, new_mutex,
    page::Page,
    pci,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    types::ARef,
    workqueue,
};

/// Rounds of the attach/detach/re-attach race; DMA checks only in [`checked`] rounds (one
/// edu-pasid DMA takes ~0.13 s under TCG).
const ROUNDS: u32 = 12;
/// Extra rounds (on the last round's leaves, no DMA) while the workers' attaches have not
/// overlapped yet: a loaded host can deschedule a vCPU for the whole of a round.
const EXTRA_ROUNDS: u32 = 200;
/// Rounds of the same-PASID race (no DMA but in the last).
const CONTEST_ROUNDS: u32 = 32;
/// The first CD leaf used (PASID 0x40000 on): far above the small PASIDs the other cases
/// and the sample use, so every leaf a round uses is fresh.
const LEAF0: u32 = 256;
/// CDs per 2-level leaf (`cdtab::L2_SHIFT` = 10).
const LEAF_CDS: u32 = 1024;

fn checked(round: u32) -> bool {
    round == 0 || round == ROUNDS / 2 || round == ROUNDS - 1
}

/// What one worker does when the gate opens: drop (detach) `detach`, then attach `attach` at
/// `pasid`.
struct Job {
    slot: usize,
    pasid: u32,
    detach: Option<PasidAttachment>,
    attach: Option<Arc<Domain>>,
}

/// A worker's result: the attachment, or the attach's error.
struct Outcome {
    slot: usize,
    res: Result<PasidAttachment>,
}

/// Workers per phase: the guest's vCPUs (`run.sh -smp 2`). The kernel is not preemptible
/// (`PREEMPT_NONE`): more workers spinning at the barrier than CPUs would only wait there.
const WORKERS: usize = 2;
/// Barrier spins before a waiting worker sleeps instead (when both ended up on one CPU).
const SPINS: u32 = 1 << 20;

struct Gate {
    /// Workers finished.
    done: usize,
    out: KVec<Outcome>,
    /// Outcomes that could not be stored (allocation failure).
    lost: u32,
}

#[pin_data]
struct Race {
    dev: ARef<Device>,
    #[pin]
    gate: Mutex<Gate>,
    #[pin]
    cv: CondVar,
    /// Workers that reached the barrier, over all phases: the workers of phase n (from 1)
    /// start together once it is `WORKERS * n`.
    arrived: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
}

impl Race {
    /// One worker of `phase`: meets the other at the barrier (spinning, so that both start
    /// within the same microseconds), then runs its jobs in order.
    fn work(&self, phase: u32, jobs: KVec<Job>) {
        let all = WORKERS as u32 * phase;
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let mut spins = 0u32;
        while self.arrived.load(Ordering::SeqCst) < all {
            if spins < SPINS {
                spins += 1;
                core::hint::spin_loop();
            } else {
                msleep(1);
            }
        }
        let mut outs = KVec::new();
        let mut lost = 0;
        for job in jobs {
            drop(job.detach);
            let Some(dom) = job.attach else { continue };
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(n, Ordering::SeqCst);
            let res = dom.attach_device_pasid(&self.dev, job.pasid);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if outs
                .push(
                    Outcome {
                        slot: job.slot,
                        res,
                    },
                    GFP_KERNEL,
                )
                .is_err()
            {
                lost += 1;
            }
        }
        let mut g = self.gate.lock();
        g.lost += lost;
        for o in outs {
            if g.out.push(o, GFP_KERNEL).is_err() {
                g.lost += 1;
            }
        }
        g.done += 1;
        self.cv.notify_all();
    }

    /// Runs `jobs` on [`WORKERS`] workers (job i on worker i % [`WORKERS`], in order) that
    /// start at the same moment; returns the attach outcomes.
    fn phase(
        self: &Arc<Self>,
        case: &Case<'_>,
        phase: u32,
        jobs: KVec<Job>,
    ) -> Result<KVec<Outcome>, Failed> {
        let mut split: [KVec<Job>; WORKERS] = core::array::from_fn(|_| KVec::new());
        for (i, job) in jobs.into_iter().enumerate() {
            case.check(
                "push",
                split[i % WORKERS].push(job, GFP_KERNEL).map_err(Into::into),
            )?;
        }
        let mut spawned = 0;
        for part in split {
            let race = self.clone();
            if workqueue::system_unbound()
                .try_spawn(GFP_KERNEL, move || race.work(phase, part))
                .is_ok()
            {
                spawned += 1;
            } else {
                // Arrive for it, or the other worker would wait for it forever.
                self.arrived.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut g = self.gate.lock();
        while g.done < spawned {
            self.cv.wait(&mut g);
        }
        let out = core::mem::take(&mut g.out);
        let lost = g.lost;
        (g.done, g.lost) = (0, 0);
        drop(g);
        labtest_ensure!(
            case,
            lost == 0,
            "phase {phase}: {lost} outcomes not stored (ENOMEM)"
        );
        labtest_ensure!(
            case,
            spawned == WORKERS,
            "phase {phase}: {spawned} of {WORKERS} workers spawned (ENOMEM)"
        );
        Ok(out)
    }
}

/// The pages of the domains (one each, mapped at [`IOVA`]) and the pattern edu-pasid writes.
struct Pages {
    pages: KVec<Page>,
    pattern: [u8; LEN as usize],
}

impl Pages {
    /// DMAs at `pasid` and checks that it landed in page `want` only (`None`: it faulted and
    /// nothing was written); zeroes what it wrote.
    fn dma(
        &self,
        case: &Case<'_>,
        bar: &edu::Bar,
        pasid: u32,
        want: Option<usize>,
        what: &str,
    ) -> Result<(), Failed> {
        let r = pasid_dma(case, bar, Some(pasid), IOVA)?;
        let mut hit = None;
        for (i, p) in self.pages.iter().enumerate() {
            let got = read_page(case, p)?;
            if got == self.pattern {
                labtest_ensure!(
                    case,
                    hit.is_none(),
                    "{what}: PASID {pasid:#x} wrote pages {hit:?} and {i}"
                );
                hit = Some(i);
                zero_page(case, p)?;
            } else {
                labtest_ensure!(
                    case,
                    got == [0; LEN as usize],
                    "{what}: PASID {pasid:#x}: page {i} holds {:?}",
                    &got[..4]
                );
            }
        }
        let want_r = if want.is_some() { 0 } else { 1 };
        labtest_ensure!(
            case,
            r == want_r && hit == want,
            "{what}: PASID {pasid:#x} reached domain {hit:?} (result {r}), want domain {want:?}"
        );
        Ok(())
    }
}

/// A case's race state, its domains and their pages.
type Setup = (Arc<Race>, KVec<Arc<Domain>>, Pages);

/// `n` domains, each with its own zeroed page at [`IOVA`], and edu-pasid's buffer loaded.
fn setup(
    case: &Case<'_>,
    pdev: &pci::Device<Core>,
    bar: &edu::Bar,
    n: usize,
    salt: u8,
) -> Result<Setup, Failed> {
    let d: &Device<Bound> = pdev.as_ref();
    let pattern = load_pattern(case, d, bar, salt)?;
    let mut doms = KVec::new();
    let mut pages = KVec::new();
    for _ in 0..n {
        let page = case.check(
            "alloc_page",
            Page::alloc_page(GFP_KERNEL).map_err(Into::into),
        )?;
        zero_page(case, &page)?;
        let dom = case.check("new_paging", Domain::new_paging(d))?;
        case.check(
            "map",
            dom.map(
                IOVA,
                page_to_phys(&page),
                4096,
                Prot::READ | Prot::WRITE,
                GFP_KERNEL,
            ),
        )?;
        case.check("push", doms.push(dom, GFP_KERNEL).map_err(Into::into))?;
        case.check("push", pages.push(page, GFP_KERNEL).map_err(Into::into))?;
    }
    let race = case.check(
        "Arc::pin_init",
        Arc::pin_init(
            pin_init!(Race {
                dev: d.into(),
                gate <- new_mutex!(Gate { done: 0, out: KVec::new(), lost: 0 }),
                arrived: AtomicU32::new(0),
                cv <- new_condvar!(),
                in_flight: AtomicU32::new(0),
                max_in_flight: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        ),
    )?;
    Ok((race, doms, Pages { pages, pattern }))
}

/// Sorts `out` into `atts` by slot; fails on an attach error unless `allow` accepts it.
fn collect(
    case: &Case<'_>,
    what: &str,
    out: KVec<Outcome>,
    atts: &mut [Option<PasidAttachment>],
    mut allow: impl FnMut(usize, Error) -> bool,
) -> Result<(), Failed> {
    for o in out {
        match o.res {
            Ok(a) => {
                let slot = atts
                    .get_mut(o.slot)
                    .ok_or_else(|| case.fail(format_args!("slot {}", o.slot)))?;
                *slot = Some(a);
            }
            Err(e) if allow(o.slot, e) => {}
            Err(e) => {
                return Err(case.fail(format_args!("{what}: domain {} attach: {e:?}", o.slot)))
            }
        }
    }
    Ok(())
}

pub(super) fn cases(suite: &mut Suite, pdev: &pci::Device<Core>, bar: &edu::Bar) {
    suite.run("concurrent_attach_detach_reattach_own_domains", |case| {
        // Domains 0-3 are attached first, 4 and 5 replace 0 and 2 (detach and re-attach at
        // the same PASID, concurrently with each other).
        let (race, doms, pages) = setup(case, pdev, bar, 6, 0x6b)?;
        let job = |slot: usize, pasid: u32, detach: Option<PasidAttachment>, attach: bool| Job {
            slot,
            pasid,
            detach,
            attach: attach.then(|| doms[slot].clone()),
        };
        let mut phase = 0;
        let mut extra = 0;
        for round in 0..ROUNDS + EXTRA_ROUNDS {
            if round >= ROUNDS {
                if race.max_in_flight.load(Ordering::SeqCst) >= 2 {
                    break;
                }
                extra += 1;
            }
            let leaf = LEAF0 + 3 * round.min(ROUNDS - 1);
            // Two PASIDs in one fresh leaf, one in each of two other fresh leaves.
            let p = [leaf * LEAF_CDS + 1, leaf * LEAF_CDS + 2, (leaf + 1) * LEAF_CDS + 1, (leaf + 2) * LEAF_CDS + 1];
            let mut atts: [Option<PasidAttachment>; 6] = Default::default();

            phase += 1;
            let mut jobs = KVec::new();
            for (slot, &pasid) in p.iter().enumerate() {
                case.check("push", jobs.push(job(slot, pasid, None, true), GFP_KERNEL).map_err(Into::into))?;
            }
            let out = race.phase(case, phase, jobs)?;
            collect(case, "concurrent attach", out, &mut atts, |_, _| false)?;
            if round == 0 {
                for (slot, &pasid) in p.iter().enumerate() {
                    pages.dma(case, bar, pasid, Some(slot), "after the concurrent attach")?;
                }
            }

            // Detach 0 and 2 and attach 4 and 5 at their PASIDs, both at once.
            phase += 1;
            let mut jobs = KVec::new();
            case.check("push", jobs.push(Job { detach: atts[0].take(), ..job(4, p[0], None, true) }, GFP_KERNEL).map_err(Into::into))?;
            case.check("push", jobs.push(Job { detach: atts[2].take(), ..job(5, p[2], None, true) }, GFP_KERNEL).map_err(Into::into))?;
            let out = race.phase(case, phase, jobs)?;
            collect(case, "concurrent re-attach", out, &mut atts, |_, _| false)?;
            if checked(round) {
                for (pasid, dom) in [(p[0], 4), (p[1], 1), (p[2], 5), (p[3], 3)] {
                    pages.dma(case, bar, pasid, Some(dom), "after the concurrent detach and re-attach")?;
                }
            }

            // Every attachment dropped at once.
            phase += 1;
            let mut jobs = KVec::new();
            for (slot, a) in atts.iter_mut().enumerate() {
                if let Some(a) = a.take() {
                    case.check("push", jobs.push(job(slot, 0, Some(a), false), GFP_KERNEL).map_err(Into::into))?;
                }
            }
            race.phase(case, phase, jobs)?;
            if round == ROUNDS - 1 {
                for &pasid in &p {
                    pages.dma(case, bar, pasid, None, "after the concurrent detach")?;
                }
            }
        }
        let max = race.max_in_flight.load(Ordering::SeqCst);
        kernel::pr_info!("pasid_dma: {ROUNDS} + {extra} rounds of concurrent PASID attach/detach/re-attach, up to {max} attaches in flight at once\n");
        labtest_ensure!(case, max >= 2, "the workers' attaches never overlapped in {} rounds ({max} in flight at most): nothing raced", ROUNDS + extra);
        drop(doms);
        Ok(())
    });
    suite.run("same_pasid_two_domains_exactly_one_wins", |case| {
        let (race, doms, pages) = setup(case, pdev, bar, 2, 0x2d)?;
        let mut wins = [0u32; 2];
        for round in 0..CONTEST_ROUNDS {
            // A fresh leaf each round: both attaches may need to allocate it.
            let pasid = (LEAF0 + 3 * ROUNDS + round) * LEAF_CDS + 7;
            let mut jobs = KVec::new();
            for slot in 0..2 {
                let j = Job { slot, pasid, detach: None, attach: Some(doms[slot].clone()) };
                case.check("push", jobs.push(j, GFP_KERNEL).map_err(Into::into))?;
            }
            let out = race.phase(case, round + 1, jobs)?;
            let mut atts: [Option<PasidAttachment>; 2] = Default::default();
            let mut busy = 0;
            collect(case, "same PASID", out, &mut atts, |_, e| {
                let b = e == EBUSY;
                busy += u32::from(b);
                b
            })?;
            let won = atts.iter().filter(|a| a.is_some()).count();
            labtest_ensure!(case, won == 1 && busy == 1,
                "round {round}: PASID {pasid:#x}: {won} attached, {busy} EBUSY (want exactly one of each)");
            let winner = usize::from(atts[0].is_none());
            wins[winner] += 1;
            if round == CONTEST_ROUNDS - 1 {
                pages.dma(case, bar, pasid, Some(winner), "the winner of the same-PASID race")?;
            }
        }
        kernel::pr_info!("pasid_dma: same-PASID race won {} / {} times by domain 0 / 1, the other got EBUSY\n", wins[0], wins[1]);
        drop(race);
        Ok(())
    });
}
