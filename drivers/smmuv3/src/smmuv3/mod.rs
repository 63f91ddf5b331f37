// SPDX-License-Identifier: GPL-2.0
//! Module list of the portable SMMUv3 core (see the crate documentation).

pub mod dma;
