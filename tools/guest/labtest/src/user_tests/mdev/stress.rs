// SPDX-License-Identifier: GPL-2.0
//! Concurrency tests of `edu_mdev`: clients copying while other mdevs are created, opened,
//! removed while open (request IRQ) and removed again; creates racing for the parent's last
//! engine slots; racing duplicate UUIDs and racing removals. Meant for the debug flavour
//! (lockdep, KASAN, kmemleak watch the kernel side; the judge fails the run on any report).

use super::{ensure, parent, Mdev};
use mdev_client::*;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

const ENOSPC: i32 = 28;
const EEXIST: i32 = 17;

fn join<T>(h: thread::JoinHandle<Result<T, String>>, who: &str) -> Result<T, String> {
    h.join()
        .map_err(|_| format!("{who}: thread panicked"))?
        .map_err(|e| format!("{who}: {e}"))
}

/// Churn cycles per thread: at least [`MIN_CHURN`], then until the clients are done, at most
/// [`MAX_CHURN`] (each cycle logs a few kernel lines; the debug kernel's console is slow).
const MIN_CHURN: u32 = 2;
const MAX_CHURN: u32 = 60;

fn churn_more(stop: &AtomicBool, n: &AtomicU32) -> bool {
    let n = n.load(Ordering::Relaxed);
    n < MIN_CHURN || (n < MAX_CHURN && !stop.load(Ordering::Acquire))
}

/// One open-copy-remove-while-open cycle of churn thread A: the mdev is removed while its user
/// has a copy in flight and holds the device; the removal asks (REQ eventfd), the user closes
/// (aborting its copy), the removal completes.
fn churn_remove_while_copying(p: &std::path::Path, u: &str, iommufd: bool) -> Result<(), String> {
    create_mdev(p, "edu-large", u).map_err(|e| format!("create {u}: {e}"))?;
    let mut s = if iommufd {
        Session::open_iommufd(u)?
    } else {
        Session::open(u)?
    };
    let req = s.dev.set_irq_eventfd(REQ_INDEX)?;
    s.dev.start_copy(SRC_IOVA, DST_IOVA, 16 * 1024)?;
    let uu = u.to_string();
    let remover = thread::spawn(move || remove_mdev(&uu).map_err(|e| format!("remove: {e}")));
    wait_eventfd(&req, 60_000).map_err(|e| format!("request IRQ: {e}"))?;
    drop(s);
    join(remover, "remover")?;
    ensure(!mdev_path(u).exists(), || format!("{u} still there"))
}

/// Several clients (type1 and iommufd) copy at once while two churn threads create and remove
/// other mdevs of the same parent: A removes an open mdev with a copy in flight (request IRQ
/// protocol), B creates, reads the attributes, sometimes copies, and removes. Every client copy
/// must be right, every churn create must succeed (capacity allows it), and the parent must be
/// back at full capacity afterwards.
pub fn concurrent_copies_with_churn() -> Result<(), String> {
    let p = parent()?;
    let clients: Vec<Mdev> = (0..3)
        .map(|i| Mdev::new(&p, "edu-small", 0x200 + i))
        .collect::<Result<_, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (a_iters, b_iters) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    const ROUNDS: usize = 3;

    let churn_a = {
        let (p, stop, n) = (p.clone(), stop.clone(), a_iters.clone());
        thread::spawn(move || -> Result<(), String> {
            while churn_more(&stop, &n) {
                let i = n.load(Ordering::Relaxed);
                // A fresh UUID per cycle: a removed mdev's UUID stays taken until its release,
                // which CONFIG_DEBUG_KOBJECT_RELEASE delays by seconds (EEXIST otherwise).
                let u = uuid(0x1000 + i);
                churn_remove_while_copying(&p, &u, i % 2 == 1).map_err(|e| {
                    let _ = remove_mdev(&u);
                    format!("iteration {i}: {e}")
                })?;
                n.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let churn_b = {
        let (p, stop, n) = (p.clone(), stop.clone(), b_iters.clone());
        thread::spawn(move || -> Result<(), String> {
            while churn_more(&stop, &n) {
                let i = n.load(Ordering::Relaxed);
                let u = uuid(0x2000 + i);
                create_mdev(&p, "edu-small", &u).map_err(|e| format!("create {i}: {e}"))?;
                let r = (|| -> Result<(), String> {
                    let pasid: u32 = mdev_attr(&u, "pasid")?
                        .parse()
                        .map_err(|e| format!("pasid: {e}"))?;
                    ensure(
                        pasid >= 1 && mdev_attr(&u, "mode")? == expected_mode(),
                        || format!("pasid {pasid}"),
                    )?;
                    if i % 3 == 0 {
                        let mut s = Session::open_iommufd(&u)?;
                        s.copy_checked(0x70 + i as u8, 4, 8, 256)?;
                    }
                    Ok(())
                })();
                remove_mdev(&u).map_err(|e| format!("remove {i}: {e}"))?;
                r.map_err(|e| format!("iteration {i}: {e}"))?;
                n.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    let handles: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, m)| {
            let u = m.0.clone();
            thread::spawn(move || -> Result<u32, String> {
                let mut s = if c == 1 {
                    Session::open_iommufd(&u)?
                } else {
                    Session::open(&u)?
                };
                for r in 0..ROUNDS {
                    let len = 4096 + 3000 * r + 1024 * c;
                    s.copy_checked((0x40 + 16 * c + r) as u8, 4 * r, 4 * c + 8, len)
                        .map_err(|e| format!("round {r}: {e}"))?;
                }
                s.dev.read32(regs::COMPLETED)
            })
        })
        .collect();
    let mut errors = Vec::new();
    for (c, h) in handles.into_iter().enumerate() {
        match join(h, &format!("client {c}")) {
            Ok(n) if n == ROUNDS as u32 => {}
            Ok(n) => errors.push(format!("client {c}: COMPLETED {n}, want {ROUNDS}")),
            Err(e) => errors.push(e),
        }
    }
    stop.store(true, Ordering::Release);
    for (h, who) in [(churn_a, "churn A"), (churn_b, "churn B")] {
        if let Err(e) = join(h, who) {
            errors.push(e);
        }
    }
    println!(
        "  mdev: 3 clients x {ROUNDS} copies; churn A {} remove-while-copying cycles, churn B {} create/remove cycles",
        a_iters.load(Ordering::Relaxed),
        b_iters.load(Ordering::Relaxed)
    );
    ensure(errors.is_empty(), || errors.join("; "))?;
    drop(clients);
    ensure(
        available(&p, "edu-small")? == 8 && available(&p, "edu-large")? == 4,
        || "parent not back at full capacity".into(),
    )
}

/// `n` threads write `uuids[i]` to `ty`'s `create` at the same moment; returns each result as
/// `Ok(())` or `Err(errno)`.
fn race_creates(p: &std::path::Path, ty: &str, uuids: &[String]) -> Vec<Result<(), i32>> {
    let barrier = Arc::new(Barrier::new(uuids.len()));
    let hs: Vec<_> = uuids
        .iter()
        .map(|u| {
            let (p, ty, u, b) = (p.to_path_buf(), ty.to_string(), u.clone(), barrier.clone());
            thread::spawn(move || {
                b.wait();
                create_mdev(&p, &ty, &u).map_err(|e| e.raw_os_error().unwrap_or(-1))
            })
        })
        .collect();
    hs.into_iter()
        .map(|h| h.join().unwrap_or(Err(-1)))
        .collect()
}

/// Checks a race's outcome: exactly `want_ok` successes, every failure `want_errno`.
fn check_race(
    what: &str,
    r: &[Result<(), i32>],
    want_ok: usize,
    want_errno: i32,
) -> Result<(), String> {
    let ok = r.iter().filter(|x| x.is_ok()).count();
    let bad: Vec<i32> = r
        .iter()
        .filter_map(|x| x.err())
        .filter(|&e| e != want_errno)
        .collect();
    ensure(ok == want_ok && bad.is_empty(), || {
        format!("{what}: {ok} created (want {want_ok}), other errnos {bad:?} (want only {want_errno}): {r:?}")
    })
}

fn distinct_pasids(uuids: &[String]) -> Result<(), String> {
    let mut pasids: Vec<String> = uuids
        .iter()
        .filter(|u| mdev_path(u).exists())
        .map(|u| mdev_attr(u, "pasid"))
        .collect::<Result<_, _>>()?;
    let n = pasids.len();
    pasids.sort();
    pasids.dedup();
    ensure(pasids.len() == n, || "PASIDs not distinct".into())
}

fn remove_all(uuids: &[String]) {
    for u in uuids {
        let _ = remove_mdev(u);
    }
}

/// Creates racing for the parent's capacity: with 5 of 8 slots free, 8 concurrent edu-small
/// creates give exactly 5 mdevs and 3 ENOSPC; with all 8 free, 8 concurrent edu-large creates
/// give exactly 4 and 4 ENOSPC; 8 concurrent creates of one UUID give one mdev and 7 EEXIST;
/// 4 concurrent removals of one mdev remove it once. `available_instances` is exact after
/// each race and back at full capacity at the end.
pub fn capacity_race() -> Result<(), String> {
    let p = parent()?;
    let full = |p: &std::path::Path| -> Result<(), String> {
        let (s, l) = (available(p, "edu-small")?, available(p, "edu-large")?);
        ensure(s == 8 && l == 4, || {
            format!("available_instances {s}/{l}, want 8/4")
        })
    };
    full(&p)?;
    // Round 1: 3 slots taken, 8 small creates for the 5 left.
    let r1 = {
        let _large = Mdev::new(&p, "edu-large", 0x300)?;
        let _small = Mdev::new(&p, "edu-small", 0x301)?;
        let uuids: Vec<String> = (0..8).map(|i| uuid(0x310 + i)).collect();
        let r = race_creates(&p, "edu-small", &uuids);
        let checks = check_race("8 small creates for 5 free slots", &r, 5, ENOSPC)
            .and_then(|()| {
                let a = available(&p, "edu-small")?;
                ensure(a == 0, || format!("edu-small available {a} after the race"))
            })
            .and_then(|()| distinct_pasids(&uuids));
        remove_all(&uuids);
        checks
    };
    r1?;
    full(&p)?;
    // Round 2: 8 large creates for 8 free slots (2 each).
    let uuids: Vec<String> = (0..8).map(|i| uuid(0x320 + i)).collect();
    let r = race_creates(&p, "edu-large", &uuids);
    let checks = check_race("8 large creates for 8 free slots", &r, 4, ENOSPC).and_then(|()| {
        let (s, l) = (available(&p, "edu-small")?, available(&p, "edu-large")?);
        ensure(s == 0 && l == 0, || {
            format!("available {s}/{l} after the race")
        })
    });
    remove_all(&uuids);
    checks?;
    full(&p)?;
    // Round 3: one UUID, 8 creators.
    let same: Vec<String> = (0..8).map(|_| uuid(0x330)).collect();
    let r = race_creates(&p, "edu-small", &same);
    let checks = check_race("8 creates of one UUID", &r, 1, EEXIST).and_then(|()| {
        let a = available(&p, "edu-small")?;
        ensure(a == 7, || format!("edu-small available {a}, want 7"))
    });
    // Round 4: 4 concurrent removals of that mdev.
    let barrier = Arc::new(Barrier::new(4));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let b = barrier.clone();
            thread::spawn(move || {
                b.wait();
                remove_mdev(&uuid(0x330)).map_err(|e| e.raw_os_error().unwrap_or(-1))
            })
        })
        .collect();
    let rm: Vec<Result<(), i32>> = hs
        .into_iter()
        .map(|h| h.join().unwrap_or(Err(-1)))
        .collect();
    checks?;
    ensure(!mdev_path(&uuid(0x330)).exists(), || {
        format!("mdev survived 4 concurrent removals: {rm:?}")
    })?;
    // A removal that lost the race finds no `remove` file (ENOENT) or a file being removed
    // (ENODEV).
    ensure(
        rm.iter().any(|r| r.is_ok()) && rm.iter().all(|r| matches!(r, Ok(()) | Err(2) | Err(19))),
        || format!("concurrent removals: {rm:?}"),
    )?;
    full(&p)?;
    // Capacity and PASIDs are really free: fill the parent again.
    let all: Vec<Mdev> = (0..8)
        .map(|i| Mdev::new(&p, "edu-small", 0x340 + i))
        .collect::<Result<_, _>>()?;
    distinct_pasids(&all.iter().map(|m| m.0.clone()).collect::<Vec<_>>())?;
    drop(all);
    full(&p)
}
