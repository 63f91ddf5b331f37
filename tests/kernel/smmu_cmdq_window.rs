// SPDX-License-Identifier: GPL-2.0
//! A counting window for user space: loading this module reads the SMMU's command-queue
//! producer index, unloading it prints every command the queue received in between, by
//! opcode (`common/cmdq.rs`, the same counter as `smmu_cmdq` and `smmu_bench`), as one kernel
//! log line:
//!
//! ```text
//! smmu_cmdq_window: driver=c entries=4 commands=2 syncs=2 tlbi=2 cfgi=0 (2 CMD_SYNC + 2 TLBI_NH_VA)
//! smmu_cmdq_window: error: <why>
//! ```
//!
//! `bench:mdev_pasid_vs_mediated` (tools/guest/labtest/src/bench.rs) wraps single copies of
//! the mdev sample in `insmod` / `rmmod` of it. Not a suite: `tools/lab/guest/modules.list`
//! excludes it from the module phase.
use kernel::prelude::*;

module! {
    type: Window,
    name: "smmu_cmdq_window",
    author: "pasid-mdev project",
    description: "Counting window: SMMUv3 commands between load and unload",
    license: "GPL",
}

#[path = "common/cmdq.rs"]
mod cmdq;
use cmdq::Cmdq;

struct Window {
    q: Cmdq,
    prod: u32,
}

impl kernel::Module for Window {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let opened = Cmdq::open().and_then(|q| q.prod().map(|prod| Self { q, prod }));
        opened.map_err(|e| {
            pr_err!("error: {e}\n");
            ENODEV
        })
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let counted = self.q.prod().and_then(|now| self.q.between(self.prod, now));
        match counted {
            Ok(c) => pr_info!(
                "driver={} entries={} commands={} syncs={} tlbi={} cfgi={} ({c})\n",
                if cmdq::C_DRIVER { "c" } else { "rust" },
                c.entries(),
                c.commands(),
                c.syncs(),
                c.tlbis(),
                c.cfgis(),
            ),
            Err(e) => pr_info!("error: {e}\n"),
        }
    }
}
