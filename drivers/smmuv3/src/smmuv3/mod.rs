// SPDX-License-Identifier: GPL-2.0
//! Module list of the portable SMMUv3 core (see the crate documentation).

pub mod dma;
// The layout macros are textually scoped: this declaration must precede every user.
#[macro_use]
#[warn(missing_docs)]
pub mod bitfield;
#[warn(missing_docs)]
pub mod asid;
#[warn(missing_docs)]
pub mod cd;
#[warn(missing_docs)]
pub mod cdtab;
#[warn(missing_docs)]
pub mod cmd;
#[warn(missing_docs)]
pub mod device;
#[warn(missing_docs)]
pub mod domain;
#[warn(missing_docs)]
pub mod error;
#[warn(missing_docs)]
pub mod event;
#[cfg(test)]
mod golden_tests;
#[warn(missing_docs)]
// Its docs write bit ranges as the spec does (`[51:12]`, `Attr<n>`), which rustdoc reads as
// links and HTML (the kernel crate's rustdoc fails on them). Escaped in the other modules;
// here once the lockless page-table rewrite (issue 13) has landed, then this goes.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
pub mod pgtable;
#[warn(missing_docs)]
pub mod prot;
#[warn(missing_docs)]
pub mod queue;
#[warn(missing_docs)]
pub mod regs;
#[warn(missing_docs)]
pub mod ste;
#[warn(missing_docs)]
pub mod store;
#[warn(missing_docs)]
pub mod strtab;
#[warn(missing_docs)]
pub mod writer;
