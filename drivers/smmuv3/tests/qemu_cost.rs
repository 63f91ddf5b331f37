// SPDX-License-Identifier: GPL-2.0
//! Invalidation cost of `S1Domain::unmap` on QEMU's SMMUv3, beside the Linux 6.12 C driver.
//!
//! For each unmap the TLBI commands and CMD_SYNCs are taken from `Smmu::stats()` (what the
//! driver wrote to the command queue) and cross-checked against the commands QEMU's SMMU
//! actually received (`qemu_common::HwMmio`'s log). The C driver's figures come from
//! replaying the same page-table contents through `pgtable::gather::LinuxModel`. Run with RIL
//! (QEMU's IDR3.RIL = 1) and without (IDR3.RIL hidden from the driver). Asserts that the
//! driver never issues more TLBIs or syncs than C. Print the table with
//! `cargo test -p smmuv3 --test qemu_cost -- --nocapture`.

mod linux_replay;
mod qemu_common;

use qemu_common::*;
use smmuv3::cmd::op;
use smmuv3::device::SmmuConfig;
use smmuv3::pgtable::{Granule, Prot, TlbiCost};

const K4: u64 = 4096;
const M2: u64 = 2 << 20;
const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0 | Prot::CACHE.0);
const BASE: u64 = 1 << 40;
/// Physical addresses (never accessed: no DMA here). Pages are misaligned by 4K so no block
/// can form; blocks are 2M aligned.
const PA: u64 = 1 << 36;

#[derive(Clone, Copy)]
enum Setup {
    /// 16 MiB of 4K pages from BASE.
    Pages,
    /// 16 MiB of 2M blocks from BASE.
    Blocks,
}

const CASES: [(&str, Setup, u64, u64); 8] = [
    ("1 page", Setup::Pages, BASE, K4),
    ("16 pages", Setup::Pages, BASE, 16 * K4),
    ("512 pages, +4K", Setup::Pages, BASE + K4, 512 * K4),
    ("512 pages = 2M table", Setup::Pages, BASE, M2),
    ("16M of pages", Setup::Pages, BASE, 8 * M2),
    ("2M block", Setup::Blocks, BASE, M2),
    ("4K of 2M block", Setup::Blocks, BASE + 5 * K4, K4),
    ("16M of blocks", Setup::Blocks, BASE, 8 * M2),
];

/// Unmaps each case on a fresh domain; returns (ours, C) per case.
fn measure(ril: bool) -> Option<Vec<(TlbiCost, TlbiCost)>> {
    let mut r = rig(SmmuConfig::default(), !ril)?;
    assert_eq!(r.smmu.features().ril, ril, "QEMU 10 implements RIL");
    let mut out = Vec::new();
    for (name, setup, iova, size) in CASES {
        let mut dom = r.domain(Granule::G4K);
        match setup {
            Setup::Pages => dom.map(BASE, PA + K4, 8 * M2, RW).unwrap(),
            Setup::Blocks => dom.map(BASE, PA, 8 * M2, RW).unwrap(),
        }
        let c = linux_replay::linux_cost(dom.page_table(), iova, size, ril);
        let before = r.smmu.stats().cmdq;
        let seen = r.hw.borrow().seen.len();
        assert_eq!(dom.unmap(&mut r.smmu, iova, size).unwrap(), size, "{name}");
        let after = r.smmu.stats().cmdq;
        let syncs = after.syncs - before.syncs;
        let ours = TlbiCost {
            tlbi: after.commands - before.commands - syncs,
            sync: syncs,
        };
        // What QEMU received equals what the driver counted.
        let hw: Vec<u8> = r.hw.borrow().seen[seen..]
            .iter()
            .map(|c| c[0] as u8)
            .collect();
        let hw_sync = hw.iter().filter(|&&o| o == op::CMD_SYNC).count() as u64;
        let hw_tlbi = hw
            .iter()
            .filter(|&&o| o == op::TLBI_NH_VA || o == op::TLBI_NH_ASID)
            .count() as u64;
        assert_eq!(
            hw.len() as u64,
            hw_sync + hw_tlbi,
            "{name}: only TLBIs and syncs"
        );
        assert_eq!((hw_tlbi, hw_sync), (ours.tlbi, ours.sync), "{name}");
        assert_eq!(dom.stats().tlbis, ours.tlbi, "{name}");
        assert!(
            ours.tlbi <= c.tlbi && ours.sync <= c.sync,
            "{name} (ril {ril}): ours {ours:?} > C {c:?}"
        );
        assert_eq!(dom.page_table().iova_to_phys(iova), None);
        dom.destroy(&mut r.smmu, &mut r.asids)
            .map_err(|e| e.1)
            .unwrap();
        out.push((ours, c));
    }
    assert_eq!(r.smmu.stats().cmdq.errors, 0);
    r.check();
    Some(out)
}

#[test]
fn qemu_unmap_invalidation_cost_vs_linux() {
    let Some(with) = measure(true) else { return };
    let Some(without) = measure(false) else {
        return;
    };
    let f = |c: TlbiCost| format!("{} + {}", c.tlbi, c.sync);
    println!();
    println!("TLBI commands + CMD_SYNC per S1Domain::unmap on QEMU 10 SMMUv3 (4K granule),");
    println!("from Smmu::stats (= commands QEMU received) vs Linux 6.12 (LinuxModel replay)");
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>12}",
        "unmap", "ours no-RIL", "C no-RIL", "ours RIL", "C RIL"
    );
    for (i, (name, ..)) in CASES.iter().enumerate() {
        println!(
            "{:<22} {:>12} {:>12} {:>12} {:>12}",
            name,
            f(without[i].0),
            f(without[i].1),
            f(with[i].0),
            f(with[i].1)
        );
    }
}
