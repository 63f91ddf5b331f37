// SPDX-License-Identifier: GPL-2.0
//! `mdev:vfio_stress`: a bounded random stress of the sample's VFIO surface (issue 11).
//!
//! Users on both VFIO paths, alone and sharing an address space (U0 alone in a type1
//! container, U1 and U2 in one type1 container, U3 alone in an iommufd IOAS), each run a random
//! sequence (seeded from the printed seed) of copies, unmaps and remaps of their destination,
//! resets (ioctl and register), `SET_IRQS` (new eventfd, disable), status reads and, for U0,
//! closing and reopening the device. A churn thread creates, opens, copies on and removes other
//! mdevs (while open: request IRQ). A canary user only maps memory. At the end the parent is
//! unbound while everyone is still busy (each user answers the request IRQ by closing).
//!
//! Checked: no user's private memory (mapped, never a copy target) and not the canary's ever
//! changes; every `STATUS` error code is one the engine documents and never `ERROR` 9; the
//! unbind completes; the rebound parent is at full capacity and copies. The kernel side
//! (BUG/WARN/KASAN/lockdep/kmemleak) is judged from the log.

use super::race::{bind_iommufd, join_container, new_iommufd, wait_idle};
use super::{ensure, parent};
use mdev_client::*;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// xorshift64*: small and reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One address space, borrowed by the users in it.
#[derive(Clone, Copy)]
enum Space<'a> {
    Type1(&'a Container),
    Iommufd(&'a Iommufd),
}

impl Space<'_> {
    fn map(&self, b: &Buffer, iova: u64) -> Result<(), String> {
        match self {
            Space::Type1(c) => IoSpace::map(*c, b, iova),
            Space::Iommufd(f) => IoSpace::map(*f, b, iova),
        }
    }
    fn unmap(&self, iova: u64, len: u64) -> Result<(), String> {
        match self {
            Space::Type1(c) => IoSpace::unmap(*c, iova, len),
            Space::Iommufd(f) => IoSpace::unmap(*f, iova, len),
        }
    }
}

const BUF: usize = 64 * 1024;
/// Per user (in its space): source, destination, private memory at `base + ..`.
const SRC_OFF: u64 = 0;
const DST_OFF: u64 = 0x10_0000;
const PRIV_OFF: u64 = 0x20_0000;
/// Users sharing a space use different bases; users in different spaces use the same IOVAs.
const BASE: [u64; 4] = [0x100_0000, 0x100_0000, 0x200_0000, 0x100_0000];
const PATTERN: u8 = 0xa7;

/// What a user saw (for the report and the checks).
#[derive(Default)]
struct Seen {
    ops: u32,
    codes: [u32; 16],
    released: bool,
}

struct User<'a> {
    idx: usize,
    uuid: String,
    space: Space<'a>,
    dev: Option<Device>,
    req: File,
    src: Buffer,
    dst: Buffer,
    secret: Buffer,
    /// U0 reopens its device through its own container.
    own: Option<&'a Container>,
}

impl User<'_> {
    fn new<'a>(
        idx: usize,
        uuid: &str,
        space: Space<'a>,
        mut dev: Device,
        own: Option<&'a Container>,
    ) -> Result<User<'a>, String> {
        let base = BASE[idx];
        let mut src = Buffer::new(BUF)?;
        let dst = Buffer::new(BUF)?;
        let mut secret = Buffer::new(BUF)?;
        src.bytes().fill(0x10 + idx as u8);
        secret.bytes().fill(PATTERN);
        space.map(&src, base + SRC_OFF)?;
        space.map(&dst, base + DST_OFF)?;
        space.map(&secret, base + PRIV_OFF)?;
        dev.enable_msi()?;
        let req = dev.set_irq_eventfd(REQ_INDEX)?;
        Ok(User {
            idx,
            uuid: uuid.to_string(),
            space,
            dev: Some(dev),
            req,
            src,
            dst,
            secret,
            own,
        })
    }

    /// Random operations until the request IRQ asks for the device (then it is closed).
    fn run(&mut self, rng: &mut Rng, deadline: Instant) -> Result<Seen, String> {
        let base = BASE[self.idx];
        let mut seen = Seen::default();
        let mut dst_mapped = true;
        while Instant::now() < deadline + Duration::from_secs(120) {
            if wait_eventfd(&self.req, 0).is_ok() {
                self.dev = None;
                seen.released = true;
                break;
            }
            let Some(dev) = self.dev.as_mut() else {
                return Err("no device".into());
            };
            seen.ops += 1;
            match rng.below(16) {
                0..=5 => {
                    let len = 4 * (1 + rng.below(4096)) as u32;
                    let s = rng.below((BUF as u64 - u64::from(len)) / 4) * 4;
                    let d = rng.below((BUF as u64 - u64::from(len)) / 4) * 4;
                    dev.start_copy(base + SRC_OFF + s, base + DST_OFF + d, len)?;
                    if rng.below(2) == 0 {
                        let st = wait_idle(dev, Duration::from_secs(60))?;
                        let code = ((st >> 8) & 0xff) as usize;
                        ensure(code <= 9, || format!("STATUS {st:#x}"))?;
                        seen.codes[code] += 1;
                    }
                }
                6 | 7 => {
                    if dst_mapped {
                        self.space.unmap(base + DST_OFF, BUF as u64)?;
                    } else {
                        self.space.map(&self.dst, base + DST_OFF)?;
                    }
                    dst_mapped = !dst_mapped;
                }
                8 => dev.reset()?,
                9 => dev.write32(regs::RESET, 1)?,
                10 => {
                    if rng.below(2) == 0 {
                        dev.enable_msi()?;
                    } else {
                        // DATA_EVENTFD | ACTION_TRIGGER with fd -1: the MSI trigger goes.
                        let mut b = [24u32, 4 | 32, MSI_INDEX, 0, 1, u32::MAX];
                        ioctl_words(dev.file.as_raw_fd(), VFIO_DEVICE_SET_IRQS, &mut b)
                            .map_err(|e| format!("SET_IRQS off: errno {e}"))?;
                        dev.eventfd = None;
                    }
                }
                11 => {
                    if let Some(c) = self.own {
                        // Close (aborting what runs) and open again; once the unbind (after
                        // the deadline) removes the mdev, the open fails: released.
                        self.dev = None;
                        match c.device(&self.uuid) {
                            Ok(mut d) => {
                                d.enable_msi()?;
                                self.req = d.set_irq_eventfd(REQ_INDEX)?;
                                self.dev = Some(d);
                            }
                            Err(_) if Instant::now() >= deadline => {
                                seen.released = true;
                                break;
                            }
                            Err(e) => return Err(format!("reopen: {e}")),
                        }
                    }
                }
                12 | 13 => {
                    let st = dev.read32(regs::STATUS)?;
                    ensure((st >> 8) & 0xff <= 9 && st & !0xff03 == 0, || {
                        format!("STATUS {st:#x}")
                    })?;
                }
                _ => thread::sleep(Duration::from_millis(rng.below(20))),
            }
        }
        if !seen.released {
            // Close anyway, or the unbind would wait for this device for ever.
            self.dev = None;
            return Err("never asked to release the device".into());
        }
        if !dst_mapped {
            self.space.map(&self.dst, base + DST_OFF)?;
        }
        ensure(
            self.src.bytes().iter().all(|&b| b == 0x10 + self.idx as u8),
            || "the source changed".into(),
        )?;
        Ok(seen)
    }
}

fn stress_secs() -> u64 {
    let flavour = std::fs::read_to_string("/lib/labtest/flavour").unwrap_or_default();
    // Both debug flavours (debug, c-smmu-debug).
    if flavour.trim().ends_with("debug") {
        30
    } else {
        15
    }
}

pub fn vfio_stress() -> Result<(), String> {
    let p = parent()?;
    let bdf = parent_bdf(&p)?;
    let seed = std::env::var("LAB_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    println!("  mdev: vfio_stress seed {seed:#x} (LAB_SEED={seed:x} repeats the op sequences)");
    // Mdevs: four users and the canary (all removed by the unbind at the end).
    let uuids: Vec<String> = (0..5).map(|i| uuid(0x500 + i)).collect();
    for u in &uuids {
        create_mdev(&p, "edu-small", u).map_err(|e| format!("create {u}: {e}"))?;
    }
    let c0 = Container::open(&uuids[0])?;
    let c12 = Container::open(&uuids[1])?;
    let d1 = c12.device(&uuids[1])?;
    let (g2, d2) = join_container(&c12, &uuids[2])?;
    let f3 = new_iommufd()?;
    let d3 = bind_iommufd(&f3.iommufd, f3.ioas, &uuids[3])?;
    let c4 = Container::open(&uuids[4])?;
    let mut canary_dev = c4.device(&uuids[4])?;
    let mut canary = Buffer::new(BUF)?;
    canary.bytes().fill(PATTERN);
    let mut canary_fill = Vec::new();
    for off in [SRC_OFF, DST_OFF, PRIV_OFF] {
        // The canary's memory at every IOVA the users use (in its own container).
        let mut b = Buffer::new(BUF)?;
        b.bytes().fill(PATTERN);
        IoSpace::map(&c4, &b, BASE[2] + off)?;
        canary_fill.push(b);
    }
    IoSpace::map(&c4, &canary, BASE[0] + DST_OFF)?;
    let canary_req = canary_dev.set_irq_eventfd(REQ_INDEX)?;

    let mut users = [
        User::new(
            0,
            &uuids[0],
            Space::Type1(&c0),
            c0.device(&uuids[0])?,
            Some(&c0),
        )?,
        User::new(1, &uuids[1], Space::Type1(&c12), d1, None)?,
        User::new(2, &uuids[2], Space::Type1(&c12), d2, None)?,
        User::new(3, &uuids[3], Space::Iommufd(&f3), d3, None)?,
    ];
    let deadline = Instant::now() + Duration::from_secs(stress_secs());
    let stop_churn = AtomicBool::new(false);
    let churned = AtomicU32::new(0);
    let result = thread::scope(|sc| -> Result<Vec<Seen>, String> {
        let handles: Vec<_> = users
            .iter_mut()
            .map(|u| {
                let mut rng = Rng(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(u.idx as u64 + 1)));
                sc.spawn(move || {
                    u.run(&mut rng, deadline)
                        .map_err(|e| format!("U{}: {e}", u.idx))
                })
            })
            .collect();
        let canary_thread = sc.spawn(move || {
            let r = wait_eventfd(&canary_req, 600_000);
            drop(canary_dev.eventfd.take());
            drop(canary_dev);
            r.map_err(|e| format!("canary: {e}"))
        });
        let churn = sc.spawn(|| -> Result<(), String> {
            let mut rng = Rng(seed.rotate_left(17) | 1);
            let mut i = 0;
            while !stop_churn.load(Ordering::Acquire) {
                let u = uuid(0x3000 + i);
                i += 1;
                create_mdev(&p, "edu-small", &u).map_err(|e| format!("churn create {u}: {e}"))?;
                let mut s = if rng.below(2) == 0 {
                    Session::open(&u)?
                } else {
                    Session::open_iommufd(&u)?
                };
                let req = s.dev.set_irq_eventfd(REQ_INDEX)?;
                s.dev
                    .start_copy(SRC_IOVA, DST_IOVA, 4 * (1 + rng.below(4096)) as u32)?;
                thread::sleep(Duration::from_millis(rng.below(300)));
                let uu = u.clone();
                let remover = thread::spawn(move || remove_mdev(&uu));
                wait_eventfd(&req, 60_000).map_err(|e| format!("churn request IRQ: {e}"))?;
                drop(s);
                remover
                    .join()
                    .map_err(|_| "remover panicked")?
                    .map_err(|e| format!("churn remove {u}: {e}"))?;
                churned.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
        stop_churn.store(true, Ordering::Release);
        let churn_r = churn.join().map_err(|_| "churn panicked")?;
        // The unbind while the users are busy: each one is asked and closes.
        let unbind = edu_driver("unbind", &bdf);
        let mut seen = Vec::new();
        let mut err = churn_r.err();
        for h in handles {
            match h.join() {
                Ok(Ok(s)) => seen.push(s),
                Ok(Err(e)) => err = err.or(Some(e)),
                Err(_) => err = err.or(Some("a user panicked".into())),
            }
        }
        if let Err(e) = canary_thread
            .join()
            .map_err(|_| "canary panicked".to_string())?
        {
            err = err.or(Some(e));
        }
        if let Err(e) = unbind {
            err = err.or(Some(e));
        }
        match err {
            Some(e) => Err(e),
            None => Ok(seen),
        }
    });
    // Rebind whatever happened, so that later tests have a parent.
    let rebind = edu_driver("bind", &bdf);
    let seen = result?;
    rebind?;
    drop(g2);
    for (i, u) in users.iter_mut().enumerate() {
        ensure(u.secret.bytes().iter().all(|&b| b == PATTERN), || {
            format!("U{i}'s private memory changed")
        })?;
    }
    for b in canary_fill.iter_mut().chain([&mut canary]) {
        ensure(b.bytes().iter().all(|&x| x == PATTERN), || {
            "the canary's memory changed".into()
        })?;
    }
    for (i, s) in seen.iter().enumerate() {
        println!(
            "  mdev: U{i}: {} ops, STATUS codes 0..9: {:?}",
            s.ops,
            &s.codes[..10]
        );
        ensure(s.codes[9] == 0, || format!("U{i} saw ERROR 9 (device)"))?;
    }
    println!(
        "  mdev: churn: {} mdevs created, copied on, removed while open",
        churned.load(Ordering::Relaxed)
    );
    let p = find_parent()?;
    ensure(available(&p, "edu-small")? == 8, || {
        "rebound parent not at full capacity".into()
    })?;
    let u = uuid(0x5ff);
    create_mdev(&p, "edu-small", &u).map_err(|e| format!("create {u}: {e}"))?;
    let r = Session::open(&u).and_then(|mut s| s.copy_checked(0x33, 0, 0, 4096));
    let _ = remove_mdev(&u);
    r
}
