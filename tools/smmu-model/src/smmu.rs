// SPDX-License-Identifier: GPL-2.0
//! The SMMU: register file, Command queue consumer, Event queue producer and the transaction
//! path (spec chapters 3-7).

use crate::cache::{ConfigCache, Iotlb};
use crate::config::{decode_cd, decode_ste, Cd, CfgError, S2Cfg, Ste, SteConfig};
use crate::spec::{
    bit, bits, cerror, class, cr0, cr2, event_id, gbpa, gerror, idr0, idr3, idr5, irq_ctrl, op,
    queue, reg, strtab,
};
use crate::types::*;
use crate::walk::{self, Acc, TlbEntry, WalkError, WalkFault};
use physmem::PhysMem;
use smmuv3::dma::Mmio;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// A circular queue's registers (spec 3.5).
#[derive(Clone, Copy, Debug, Default)]
struct Queue {
    base: u64,
    prod: u32,
    cons: u32,
}

impl Queue {
    fn log2(&self, max: u8) -> u32 {
        (self.base & queue::LOG2SIZE_MASK).min(u64::from(max)) as u32
    }
    fn addr(&self) -> u64 {
        self.base & queue::ADDR_MASK
    }
    /// Mask of index + wrap bits.
    fn ptr_mask(log2: u32) -> u32 {
        ((1u64 << (log2 + 1)) - 1) as u32
    }
    fn index(p: u32, log2: u32) -> u64 {
        u64::from(p) & ((1u64 << log2) - 1)
    }
    fn empty(&self, log2: u32) -> bool {
        let m = Self::ptr_mask(log2);
        self.prod & m == self.cons & m
    }
    fn full(&self, log2: u32) -> bool {
        let m = Self::ptr_mask(log2);
        (self.prod ^ self.cons) & m == 1 << log2
    }
    /// `p` advanced by one, bits outside index+wrap preserved.
    fn inc(p: u32, log2: u32) -> u32 {
        let m = Self::ptr_mask(log2);
        (p & !m) | (p.wrapping_add(1) & m)
    }
}

/// A transaction after STE overrides.
#[derive(Clone, Copy, Debug)]
struct Txn {
    sid: u32,
    ssid: Option<u32>,
    iova: u64,
    write: bool,
    privileged: bool,
    instruction: bool,
}

struct State {
    mem: PhysMem,
    f: Features,
    idr: [u32; 6],
    cr0: u32,
    cr0ack: u32,
    cr1: u32,
    cr2: u32,
    gbpa: u32,
    irq_ctrl: u32,
    gerror: u32,
    gerrorn: u32,
    gerror_irq_cfg0: u64,
    gerror_irq_cfg1: u32,
    gerror_irq_cfg2: u32,
    strtab_base: u64,
    strtab_base_cfg: u32,
    cmdq: Queue,
    eventq: Queue,
    eventq_irq_cfg0: u64,
    eventq_irq_cfg1: u32,
    eventq_irq_cfg2: u32,
    cfg: ConfigCache,
    tlb: Iotlb,
    stats: Stats,
    irqs: IrqCounts,
    snoop_forced: HashSet<(u32, Option<u32>)>,
    /// Every event generated, recorded or not, in order.
    generated: Vec<(Event, bool)>,
}

fn set_lo(v: &mut u64, lo: u32) {
    *v = (*v & !0xffff_ffff) | u64::from(lo);
}
fn set_hi(v: &mut u64, hi: u32) {
    *v = (*v & 0xffff_ffff) | (u64::from(hi) << 32);
}

/// Converts an STE/GBPA MemAttr (stage 2 MemAttr format) to a MAIR attribute byte.
fn memattr_to_mair(m: u8) -> u8 {
    if m & 0b1100 == 0 {
        // Device: 0b00dd.
        (m & 3) << 2
    } else {
        let nib = |x: u8| match x & 3 {
            0b01 => 0x4, // Non-cacheable
            0b10 => 0xa, // Write-Through, read-allocate
            _ => 0xf,    // Write-Back, read/write-allocate
        };
        (nib(m >> 2) << 4) | nib(m)
    }
}

/// Applies MTCFG/MemAttr and SHCFG overrides (STE 5.2, GBPA 6.3.14) to incoming attributes.
fn override_attrs(incoming: MemAttrs, mtcfg: bool, memattr: u8, shcfg: u8) -> MemAttrs {
    let attr = if mtcfg {
        memattr_to_mair(memattr)
    } else {
        incoming.attr
    };
    let sh = match shcfg {
        0b00 => Shareability::Non,
        0b10 => Shareability::Outer,
        0b11 => Shareability::Inner,
        _ => incoming.sh,
    };
    MemAttrs { attr, sh }
}

fn sh_from_desc(sh: u8) -> Shareability {
    match sh {
        0b10 => Shareability::Outer,
        0b11 => Shareability::Inner,
        _ => Shareability::Non,
    }
}

impl State {
    fn new(mem: PhysMem, f: Features) -> Self {
        let mut i0 = idr0::TTF_AA64
            | idr0::COHACC
            | idr0::TTENDIAN_LE
            | idr0::STALL_MODEL_NONE
            | idr0::TERM_MODEL;
        let flag = |c: bool, v: u32| if c { v } else { 0 };
        i0 |= flag(f.s1p, idr0::S1P)
            | flag(f.s2p, idr0::S2P | idr0::VMID16)
            | flag(f.asid16, idr0::ASID16)
            | flag(f.msi, idr0::MSI)
            | flag(f.cd2l, idr0::CD2L)
            | flag(f.two_level_st, idr0::ST_LEVEL_2LVL);
        let i1 = u32::from(f.sidsize.min(32))
            | (u32::from(f.ssidsize.min(20)) << 6)
            | (u32::from(f.eventqs.min(19)) << 16)
            | (u32::from(f.cmdqs.min(19)) << 21);
        let i3 = flag(f.had, idr3::HAD) | flag(f.ril, idr3::RIL) | idr3::BBML2;
        let i5 = u32::from(f.oas.min(5))
            | flag(f.gran4k, idr5::GRAN4K)
            | flag(f.gran16k, idr5::GRAN16K)
            | flag(f.gran64k, idr5::GRAN64K);
        Self {
            mem,
            idr: [i0, i1, 0, i3, 0, i5],
            cr0: 0,
            cr0ack: 0,
            cr1: 0,
            cr2: 0,
            gbpa: gbpa::RESET,
            irq_ctrl: 0,
            gerror: 0,
            gerrorn: 0,
            gerror_irq_cfg0: 0,
            gerror_irq_cfg1: 0,
            gerror_irq_cfg2: 0,
            strtab_base: 0,
            strtab_base_cfg: 0,
            cmdq: Queue::default(),
            eventq: Queue::default(),
            eventq_irq_cfg0: 0,
            eventq_irq_cfg1: 0,
            eventq_irq_cfg2: 0,
            cfg: ConfigCache::new(f.config_cache_capacity),
            tlb: Iotlb::new(f.iotlb_capacity),
            stats: Stats::default(),
            irqs: IrqCounts::default(),
            snoop_forced: HashSet::new(),
            generated: Vec::new(),
            f,
        }
    }

    // ---- Registers ----

    fn read32(&self, off: usize) -> u32 {
        // Page 1 aliases page 0 (QEMU's CONSTRAINED UNPREDICTABLE choice).
        match off & !reg::PAGE1 {
            o @ reg::IDR0..=reg::IDR5 => self.idr[o / 4],
            reg::IIDR => 0,
            reg::AIDR => 1, // SMMUv3.1
            reg::CR0 => self.cr0,
            reg::CR0ACK => self.cr0ack,
            reg::CR1 => self.cr1,
            reg::CR2 => self.cr2,
            reg::GBPA => self.gbpa,
            reg::IRQ_CTRL | reg::IRQ_CTRLACK => self.irq_ctrl,
            reg::GERROR => self.gerror,
            reg::GERRORN => self.gerrorn,
            reg::GERROR_IRQ_CFG0 => self.gerror_irq_cfg0 as u32,
            o if o == reg::GERROR_IRQ_CFG0 + 4 => (self.gerror_irq_cfg0 >> 32) as u32,
            reg::GERROR_IRQ_CFG1 => self.gerror_irq_cfg1,
            reg::GERROR_IRQ_CFG2 => self.gerror_irq_cfg2,
            reg::STRTAB_BASE => self.strtab_base as u32,
            o if o == reg::STRTAB_BASE + 4 => (self.strtab_base >> 32) as u32,
            reg::STRTAB_BASE_CFG => self.strtab_base_cfg,
            reg::CMDQ_BASE => self.cmdq.base as u32,
            o if o == reg::CMDQ_BASE + 4 => (self.cmdq.base >> 32) as u32,
            reg::CMDQ_PROD => self.cmdq.prod,
            reg::CMDQ_CONS => self.cmdq.cons,
            reg::EVENTQ_BASE => self.eventq.base as u32,
            o if o == reg::EVENTQ_BASE + 4 => (self.eventq.base >> 32) as u32,
            o if o == reg::EVENTQ_PROD - reg::PAGE1 => self.eventq.prod,
            o if o == reg::EVENTQ_CONS - reg::PAGE1 => self.eventq.cons,
            reg::EVENTQ_IRQ_CFG0 => self.eventq_irq_cfg0 as u32,
            o if o == reg::EVENTQ_IRQ_CFG0 + 4 => (self.eventq_irq_cfg0 >> 32) as u32,
            reg::EVENTQ_IRQ_CFG1 => self.eventq_irq_cfg1,
            reg::EVENTQ_IRQ_CFG2 => self.eventq_irq_cfg2,
            // STATUSR, AGBPA, PRIQ_* (no PRI) and everything else: RAZ.
            _ => 0,
        }
    }

    fn write32(&mut self, off: usize, v: u32) {
        match off & !reg::PAGE1 {
            reg::CR0 => {
                self.cr0 = v;
                self.cr0ack = v & cr0::DEFINED;
                self.consume_cmdq();
            }
            reg::CR1 => self.cr1 = v,
            reg::CR2 => self.cr2 = v,
            // Takes effect only with UPDATE set; the update completes at once.
            reg::GBPA if v & gbpa::UPDATE != 0 => self.gbpa = v & !gbpa::UPDATE,
            reg::IRQ_CTRL => {
                self.irq_ctrl =
                    v & (irq_ctrl::GERROR_IRQEN | irq_ctrl::PRIQ_IRQEN | irq_ctrl::EVENTQ_IRQEN)
            }
            reg::GERRORN => {
                self.gerrorn = v;
                // Acknowledging CMDQ_ERR lets consumption resume.
                self.consume_cmdq();
            }
            reg::GERROR_IRQ_CFG0 => set_lo(&mut self.gerror_irq_cfg0, v),
            o if o == reg::GERROR_IRQ_CFG0 + 4 => set_hi(&mut self.gerror_irq_cfg0, v),
            reg::GERROR_IRQ_CFG1 => self.gerror_irq_cfg1 = v,
            reg::GERROR_IRQ_CFG2 => self.gerror_irq_cfg2 = v,
            reg::STRTAB_BASE => set_lo(&mut self.strtab_base, v),
            o if o == reg::STRTAB_BASE + 4 => set_hi(&mut self.strtab_base, v),
            reg::STRTAB_BASE_CFG => self.strtab_base_cfg = v,
            reg::CMDQ_BASE => set_lo(&mut self.cmdq.base, v),
            o if o == reg::CMDQ_BASE + 4 => set_hi(&mut self.cmdq.base, v),
            reg::CMDQ_PROD => {
                self.cmdq.prod = v;
                self.consume_cmdq();
            }
            reg::CMDQ_CONS => self.cmdq.cons = v,
            reg::EVENTQ_BASE => set_lo(&mut self.eventq.base, v),
            o if o == reg::EVENTQ_BASE + 4 => set_hi(&mut self.eventq.base, v),
            o if o == reg::EVENTQ_PROD - reg::PAGE1 => self.eventq.prod = v,
            o if o == reg::EVENTQ_CONS - reg::PAGE1 => self.eventq.cons = v,
            reg::EVENTQ_IRQ_CFG0 => set_lo(&mut self.eventq_irq_cfg0, v),
            o if o == reg::EVENTQ_IRQ_CFG0 + 4 => set_hi(&mut self.eventq_irq_cfg0, v),
            reg::EVENTQ_IRQ_CFG1 => self.eventq_irq_cfg1 = v,
            reg::EVENTQ_IRQ_CFG2 => self.eventq_irq_cfg2 = v,
            _ => {}
        }
    }

    /// 64-bit accesses are defined for the 64-bit registers only; elsewhere RAZ/WI (as QEMU).
    fn read64(&self, off: usize) -> u64 {
        match off & !reg::PAGE1 {
            reg::GERROR_IRQ_CFG0 => self.gerror_irq_cfg0,
            reg::STRTAB_BASE => self.strtab_base,
            reg::CMDQ_BASE => self.cmdq.base,
            reg::EVENTQ_BASE => self.eventq.base,
            reg::EVENTQ_IRQ_CFG0 => self.eventq_irq_cfg0,
            _ => 0,
        }
    }

    fn write64(&mut self, off: usize, v: u64) {
        match off & !reg::PAGE1 {
            reg::GERROR_IRQ_CFG0 => self.gerror_irq_cfg0 = v,
            reg::STRTAB_BASE => self.strtab_base = v,
            reg::CMDQ_BASE => self.cmdq.base = v,
            reg::EVENTQ_BASE => self.eventq.base = v,
            reg::EVENTQ_IRQ_CFG0 => self.eventq_irq_cfg0 = v,
            _ => {}
        }
    }

    /// Activates the GERROR bits in `bits` that are not already active (spec 7.4).
    fn raise_gerror(&mut self, bits: u32) {
        let active = self.gerror ^ self.gerrorn;
        let new = bits & !active;
        if new == 0 {
            return;
        }
        self.gerror ^= new;
        if self.irq_ctrl & irq_ctrl::GERROR_IRQEN != 0 {
            self.irqs.gerror += 1;
        }
    }

    // ---- Command queue (spec chapter 4) ----

    fn consume_cmdq(&mut self) {
        if self.cr0ack & cr0::CMDQEN == 0 {
            return;
        }
        let log2 = self.cmdq.log2(self.f.cmdqs);
        while !self.cmdq.empty(log2) {
            if (self.gerror ^ self.gerrorn) & gerror::CMDQ_ERR != 0 {
                break;
            }
            let addr = self.cmdq.addr() + Queue::index(self.cmdq.cons, log2) * 16;
            let cmd = [self.mem.read_u64(addr), self.mem.read_u64(addr + 8)];
            if let Err(code) = self.execute(cmd) {
                self.stats.command_errors += 1;
                self.cmdq.cons = (self.cmdq.cons & !queue::CONS_ERR_MASK)
                    | (u32::from(code) << queue::CONS_ERR_SHIFT);
                self.raise_gerror(gerror::CMDQ_ERR);
                break;
            }
            self.cmdq.cons = Queue::inc(self.cmdq.cons, log2);
        }
    }

    fn cmd_vmid(&self, w0: u64) -> u16 {
        if self.f.s2p {
            bits(w0, 47, 32) as u16
        } else {
            0
        }
    }

    fn cmd_asid(&self, w0: u64) -> u16 {
        let a = bits(w0, 63, 48) as u16;
        if self.f.asid16 {
            a
        } else {
            a & 0xff
        }
    }

    /// Executes one command; `Err` is the CERROR code.
    fn execute(&mut self, w: [u64; 2]) -> Result<(), u8> {
        let opcode = w[0] as u8;
        *self.stats.commands.entry(opcode).or_insert(0) += 1;
        let ssec = bit(w[0], 10);
        let sid = bits(w[0], 63, 32) as u32;
        match opcode {
            op::CMD_SYNC => {
                self.stats.syncs += 1;
                // CS[13:12]: 0b01 SIG_IRQ. All earlier commands have completed (they run
                // synchronously), so completion is signalled at once.
                if bits(w[0], 13, 12) == 0b01 {
                    let msi_addr = w[1] & (((1 << 52) - 1) & !0x3);
                    if self.f.msi && msi_addr != 0 {
                        self.mem.write_u32(msi_addr, bits(w[0], 63, 32) as u32);
                        self.irqs.sync_msis += 1;
                    } else {
                        self.irqs.cmd_sync += 1;
                    }
                }
            }
            // Prefetches are hints; the model does not prefetch.
            op::PREFETCH_CONFIG | op::PREFETCH_ADDR => {}
            op::CFGI_STE => {
                if ssec {
                    return Err(cerror::ILL);
                }
                self.cfg.invalidate_sids(sid, sid);
            }
            op::CFGI_STE_RANGE => {
                if ssec {
                    return Err(cerror::ILL);
                }
                // 2^(Range+1) StreamIDs, aligned; Range == 31 is CFGI_ALL.
                let range = bits(w[1], 4, 0) as u32;
                let mask = (1u64 << (range + 1)) - 1;
                let first = u64::from(sid) & !mask;
                let last = (first + mask).min(u64::from(u32::MAX));
                self.cfg.invalidate_sids(first as u32, last as u32);
            }
            op::CFGI_CD => {
                if ssec || !self.f.s1p {
                    return Err(cerror::ILL);
                }
                self.cfg.invalidate_cd(sid, bits(w[0], 31, 12) as u32);
            }
            op::CFGI_CD_ALL => {
                if ssec || !self.f.s1p {
                    return Err(cerror::ILL);
                }
                self.cfg.invalidate_cds(sid);
            }
            op::TLBI_NH_ALL => {
                if !self.f.s1p {
                    return Err(cerror::ILL);
                }
                let vmid = self.cmd_vmid(w[0]);
                self.tlb.invalidate_vmid(vmid);
            }
            op::TLBI_NH_ASID => {
                if !self.f.s1p {
                    return Err(cerror::ILL);
                }
                let (vmid, asid) = (self.cmd_vmid(w[0]), self.cmd_asid(w[0]));
                self.tlb.invalidate_asid(vmid, asid);
            }
            op::TLBI_NH_VA | op::TLBI_NH_VAA => {
                if !self.f.s1p {
                    return Err(cerror::ILL);
                }
                let vmid = self.cmd_vmid(w[0]);
                let asid = (opcode == op::TLBI_NH_VA).then(|| self.cmd_asid(w[0]));
                let (start, end) = self.tlbi_range(w);
                self.tlb.invalidate_va(vmid, asid, start, end);
            }
            op::TLBI_S12_VMALL => {
                if !self.f.s2p {
                    return Err(cerror::ILL);
                }
                let vmid = self.cmd_vmid(w[0]);
                self.tlb.invalidate_vmid(vmid);
            }
            op::TLBI_S2_IPA => {
                if !self.f.s2p {
                    return Err(cerror::ILL);
                }
                // No stage 2 entries are ever cached.
            }
            op::TLBI_NSNH_ALL => self.tlb.clear(),
            // EL2 commands need SMMU_IDR0.HYP (0 here); EL3 commands are not valid on the
            // Non-secure Command queue.
            op::TLBI_EL2_ALL
            | op::TLBI_EL2_ASID
            | op::TLBI_EL2_VA
            | op::TLBI_EL2_VAA
            | op::TLBI_EL3_ALL
            | op::TLBI_EL3_VA => return Err(cerror::ILL),
            // No ATC is modelled (ATS is not advertised): accepted without effect, as QEMU.
            op::ATC_INV => {}
            // Accepted and ignored, as QEMU (no PRI, no stall).
            op::PRI_RESP | op::RESUME | op::STALL_TERM => {}
            _ => return Err(cerror::ILL),
        }
        Ok(())
    }

    /// Address range of TLBI_NH_VA/VAA: a range invalidation when TG != 0 and RIL
    /// (NUM[16:12], SCALE[24:20], TG[75:74]: (NUM+1) * 2^SCALE pages of the TG granule),
    /// otherwise the entries translating Address[63:12].
    fn tlbi_range(&self, w: [u64; 2]) -> (u64, u64) {
        let addr = w[1] & !0xfff;
        let tg = bits(w[1], 11, 10) as u32;
        if tg == 0 || !self.f.ril {
            return (addr, addr | 0xfff);
        }
        let granule = 10 + 2 * tg;
        let pages = (bits(w[0], 16, 12) + 1) << bits(w[0], 24, 20);
        let len = pages.checked_shl(granule).unwrap_or(u64::MAX);
        (addr, addr.saturating_add(len.saturating_sub(1)))
    }

    // ---- Event queue (spec 7.2) ----

    fn record_event(&mut self, ev: Event) -> bool {
        if self.cr0ack & cr0::EVENTQEN == 0 {
            self.stats.events_dropped += 1;
            return false;
        }
        let log2 = self.eventq.log2(self.f.eventqs);
        if self.eventq.full(log2) {
            self.stats.events_dropped += 1;
            if self.f.quirks.eventq_full_is_abort {
                self.raise_gerror(gerror::EVENTQ_ABT_ERR);
            } else if (self.eventq.prod ^ self.eventq.cons) & queue::OVFLG == 0 {
                // No overflow pending: signal one by making OVFLG differ from OVACKFLG.
                self.eventq.prod ^= queue::OVFLG;
            }
            return false;
        }
        let addr = self.eventq.addr() + Queue::index(self.eventq.prod, log2) * 32;
        self.mem.write(addr, &ev.0);
        self.eventq.prod = Queue::inc(self.eventq.prod, log2);
        self.stats.events_recorded += 1;
        if self.irq_ctrl & irq_ctrl::EVENTQ_IRQEN != 0 {
            self.irqs.eventq += 1;
        }
        true
    }

    fn fail(&mut self, ev: Event, record: bool) -> TranslateError {
        let recorded = if record {
            self.record_event(ev)
        } else {
            self.stats.events_dropped += 1;
            false
        };
        self.generated.push((ev, recorded));
        TranslateError::Fault(Fault {
            event: ev,
            recorded,
        })
    }

    // ---- Transactions (spec chapter 3, 5) ----

    fn translate(
        &mut self,
        sid: u32,
        ssid: Option<u32>,
        iova: u64,
        access: Access,
        attrs: TxnAttrs,
    ) -> Result<Translation, TranslateError> {
        self.stats.translations += 1;
        let write = access == Access::Write;
        let mut t = Txn {
            sid,
            ssid,
            iova,
            write,
            privileged: attrs.privileged,
            instruction: attrs.instruction && !write,
        };
        let snoop_forced = self.snoop_forced.contains(&(sid, ssid));
        let incoming = MemAttrs::incoming(attrs.no_snoop);
        if self.cr0ack & cr0::SMMUEN == 0 {
            if self.gbpa & gbpa::ABORT != 0 {
                return Err(TranslateError::Aborted);
            }
            let g = u64::from(self.gbpa);
            let attrs = override_attrs(
                incoming,
                bit(g, 4),
                bits(g, 3, 0) as u8,
                bits(g, 13, 12) as u8,
            );
            return Ok(Translation {
                pa: iova,
                attrs,
                stage1: false,
                snoop_forced,
            });
        }
        let ste = self.lookup_ste(&t)?;
        // PRIVCFG / INSTCFG overrides: 0b10 forces unprivileged/data, 0b11 privileged/instr.
        match ste.privcfg {
            0b10 => t.privileged = false,
            0b11 => t.privileged = true,
            _ => {}
        }
        match ste.instcfg {
            0b10 => t.instruction = false,
            0b11 => t.instruction = !t.write,
            _ => {}
        }
        let bypass = || Translation {
            pa: iova,
            attrs: override_attrs(incoming, ste.mtcfg, ste.mem_attr, ste.shcfg),
            stage1: false,
            snoop_forced,
        };
        match ste.config {
            SteConfig::Abort => Err(TranslateError::Aborted),
            SteConfig::Bypass => match t.ssid {
                Some(x) => Err(self.bad_substream(&t, x)),
                None => Ok(bypass()),
            },
            SteConfig::Stage2 => match t.ssid {
                Some(x) => Err(self.bad_substream(&t, x)),
                None => self.stage2_only(&t, &ste, snoop_forced),
            },
            SteConfig::Stage1 | SteConfig::Nested => {
                let cd_max = u32::from(ste.s1_cd_max);
                let index = match t.ssid {
                    Some(x) => {
                        if self.f.ssidsize == 0 || cd_max == 0 || u64::from(x) >= 1u64 << cd_max {
                            return Err(self.bad_substream(&t, x));
                        }
                        if ste.s1_dss == 0b10 && x == 0 {
                            return Err(self.stream_disabled(&t));
                        }
                        x
                    }
                    None if cd_max == 0 => 0,
                    None => match ste.s1_dss {
                        // Stage 1 bypassed: nested configurations still translate at stage 2.
                        0b01 if ste.s2.is_some() => {
                            return self.stage2_only(&t, &ste, snoop_forced)
                        }
                        0b01 => return Ok(bypass()),
                        0b10 => 0,
                        _ => return Err(self.stream_disabled(&t)),
                    },
                };
                let cd = self.lookup_cd(&t, &ste, index)?;
                self.stage1(&t, &ste, &cd, snoop_forced)
            }
        }
    }

    /// Stage 1 bypassed, stage 2 translates the input address as an IPA (STE.Config 0b110,
    /// or nested with S1DSS = bypass). The output attributes are the STE overrides of the
    /// incoming ones (stage 2 attributes are not modelled).
    fn stage2_only(
        &mut self,
        t: &Txn,
        ste: &Ste,
        snoop_forced: bool,
    ) -> Result<Translation, TranslateError> {
        let Some(s2) = ste.s2 else {
            unreachable!("stage2_only needs a stage 2 configuration")
        };
        // 3.4: with stage 1 bypassed, an input address beyond the IAS (= OAS, AArch64) is a
        // stage 1 Address Size fault. QEMU does not record it (the stage 1 record flag of a
        // configuration without CD is 0); the model follows.
        if t.iova >> self.f.oas_bits() != 0 {
            let ev = Self::translation_event(event_id::F_ADDR_SIZE, t);
            return Err(self.fail(ev, false));
        }
        let pa = self.s2_translate(t, &s2, t.iova, class::IN)?;
        Ok(Translation {
            pa,
            attrs: override_attrs(
                MemAttrs::incoming(false),
                ste.mtcfg,
                ste.mem_attr,
                ste.shcfg,
            ),
            stage1: false,
            snoop_forced,
        })
    }

    /// Translates `ipa` at stage 2 for `t`: the data access itself (`class::IN`) or the fetch
    /// of a CD, L1CD (`class::CD`) or stage 1 table (`class::TT`), which are reads.
    fn s2_translate(
        &mut self,
        t: &Txn,
        s2: &S2Cfg,
        ipa: u64,
        class: u8,
    ) -> Result<u64, TranslateError> {
        let write = class == class::IN && t.write;
        match walk::walk_s2(&self.mem, s2, ipa, write) {
            Ok(e) => Ok(e.pa),
            Err(fault) => Err(self.s2_fault(t, s2, fault, ipa, class)),
        }
    }

    /// Records (if S2R) the stage 2 fault `fault` at `ipa` while translating `t`.
    fn s2_fault(
        &mut self,
        t: &Txn,
        s2: &S2Cfg,
        fault: WalkFault,
        ipa: u64,
        class: u8,
    ) -> TranslateError {
        let ev = self.s2_event(fault_id(fault), t, class, ipa);
        self.fail(ev, s2.record)
    }

    /// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION for a stage 2 fault (7.3.13-16):
    /// S2 = 1, CLASS, InputAddr = the transaction's address, IPA[51:12] = the IPA that
    /// faulted (bits [11:0] of that word are RES0), RnW/PnU/InD of the incoming transaction.
    fn s2_event(&self, id: u8, t: &Txn, class: u8, ipa: u64) -> Event {
        let read = if class != class::IN && self.f.quirks.fetch_fault_rnw_read {
            true
        } else {
            !t.write
        };
        let w1 = (u64::from(t.privileged) << 33)
            | (u64::from(t.instruction) << 34)
            | (u64::from(read) << 35)
            | (1 << 39)
            | (u64::from(class) << 40);
        let ipa = ipa & (((1 << 52) - 1) & !0xfff);
        Event::from_words([Self::txn_word0(id, t), w1, t.iova, ipa])
    }

    /// The PA of a CD table entry (L1CD or CD) at `addr`: `addr` itself, or its stage 2
    /// translation in a nested configuration (a fault there has CLASS = CD, 3.3.3).
    fn cd_table_pa(&mut self, t: &Txn, ste: &Ste, addr: u64) -> Result<u64, TranslateError> {
        match ste.s2 {
            Some(s2) if ste.config == SteConfig::Nested => {
                self.s2_translate(t, &s2, addr, class::CD)
            }
            _ => Ok(addr),
        }
    }

    fn txn_word0(id: u8, t: &Txn) -> u64 {
        let (ssv, ssid) = match t.ssid {
            Some(x) => (1u64, u64::from(x) & 0xf_ffff),
            None => (0, 0),
        };
        u64::from(id) | (ssv << 11) | (ssid << 12) | (u64::from(t.sid) << 32)
    }

    /// C_BAD_STREAMID, C_BAD_STE, C_BAD_CD: type, SSV, SubstreamID, StreamID.
    fn config_event(id: u8, t: &Txn) -> Event {
        Event::from_words([Self::txn_word0(id, t), 0, 0, 0])
    }

    /// C_BAD_SUBSTREAMID (7.3.9): SubstreamID without SSV.
    fn bad_substream(&mut self, t: &Txn, ssid: u32) -> TranslateError {
        let w0 = u64::from(event_id::C_BAD_SUBSTREAMID)
            | ((u64::from(ssid) & 0xf_ffff) << 12)
            | (u64::from(t.sid) << 32);
        self.fail(Event::from_words([w0, 0, 0, 0]), true)
    }

    /// F_STREAM_DISABLED (7.3.7): StreamID only.
    fn stream_disabled(&mut self, t: &Txn) -> TranslateError {
        let w0 = u64::from(event_id::F_STREAM_DISABLED) | (u64::from(t.sid) << 32);
        self.fail(Event::from_words([w0, 0, 0, 0]), true)
    }

    /// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION for a stage 1 fault (7.3.13-16):
    /// S2 = 0, CLASS = IN, IPA UNKNOWN (written as 0), Stall = 0, STAG = 0.
    fn translation_event(id: u8, t: &Txn) -> Event {
        let w1 = (u64::from(t.privileged) << 33)
            | (u64::from(t.instruction) << 34)
            | (u64::from(!t.write) << 35)
            | (u64::from(class::IN) << 40);
        Event::from_words([Self::txn_word0(id, t), w1, t.iova, 0])
    }

    /// Locates the STE for `sid` (spec 3.3.2, 5.1); `None` means C_BAD_STREAMID.
    fn fetch_ste(&mut self, sid: u32) -> Option<[u64; 8]> {
        let cfg = u64::from(self.strtab_base_cfg);
        let log2size = bits(cfg, 5, 0).min(u64::from(self.f.sidsize)) as u32;
        if u64::from(sid) >= 1u64 << log2size {
            return None;
        }
        let base = self.strtab_base & strtab::ADDR_MASK;
        let addr = if bits(cfg, 17, 16) == strtab::FMT_2LVL && self.f.two_level_st {
            let split = bits(cfg, 10, 6) as u32;
            let l1_index = sid.checked_shr(split).unwrap_or(0);
            let l1_bits = log2size.saturating_sub(split);
            let l1_base = base & !((8u64 << l1_bits).max(64) - 1);
            let l1 = self.mem.read_u64(l1_base + u64::from(l1_index) * 8);
            // L1STD (5.1): Span[4:0], L2Ptr[55:6].
            let span = bits(l1, 4, 0) as u32;
            if span == 0 || span > 11 || span > split + 1 {
                return None;
            }
            let l2_index = u64::from(sid) & ((1u64 << split) - 1);
            if l2_index >= 1u64 << (span - 1) {
                return None;
            }
            (l1 & (((1 << 56) - 1) & !0x3f)) + l2_index * 64
        } else {
            (base & !((64u64 << log2size) - 1)) + u64::from(sid) * 64
        };
        self.stats.ste_fetches += 1;
        let mut w = [0u64; 8];
        for (i, v) in w.iter_mut().enumerate() {
            *v = self.mem.read_u64(addr + i as u64 * 8);
        }
        Some(w)
    }

    fn lookup_ste(&mut self, t: &Txn) -> Result<Ste, TranslateError> {
        if let Some(ste) = self.cfg.ste(t.sid) {
            self.stats.config_hits += 1;
            return Ok(ste.clone());
        }
        self.stats.config_misses += 1;
        let Some(words) = self.fetch_ste(t.sid) else {
            let record = self.cr2 & cr2::RECINVSID != 0 || self.f.quirks.always_record_bad_streamid;
            let ev = Self::config_event(event_id::C_BAD_STREAMID, t);
            return Err(self.fail(ev, record));
        };
        match decode_ste(&self.f, &words) {
            Ok(ste) => {
                self.cfg.insert_ste(t.sid, ste.clone());
                Ok(ste)
            }
            Err(CfgError::Event { id, .. }) => Err(self.fail(Self::config_event(id, t), true)),
        }
    }

    /// Locates and decodes CD `index` of the STE's CD table (5.3, 5.4).
    fn lookup_cd(&mut self, t: &Txn, ste: &Ste, index: u32) -> Result<Cd, TranslateError> {
        if let Some(cd) = self.cfg.cd(t.sid, index) {
            self.stats.config_hits += 1;
            return Ok(cd.clone());
        }
        self.stats.config_misses += 1;
        let cd_max = u32::from(ste.s1_cd_max);
        let ptr = ste.s1_context_ptr;
        let addr = if cd_max == 0 || ste.s1_fmt == 0 {
            // Linear table aligned to its size: S1ContextPtr[S1CDMax+5:6] are taken as zero.
            (ptr & !((64u64 << cd_max) - 1)) + u64::from(index) * 64
        } else {
            let split = if ste.s1_fmt == 0b01 { 6 } else { 10 };
            let l1_index = if cd_max > split { index >> split } else { 0 };
            let l1_bits = cd_max.saturating_sub(split);
            let l1_base = ptr & !((8u64 << l1_bits).max(64) - 1);
            let l1_addr = self.cd_table_pa(t, ste, l1_base + u64::from(l1_index) * 8)?;
            let l1 = self.mem.read_u64(l1_addr);
            // L1CD (5.3): V[0], L2Ptr[55:12]; V == 0 is C_BAD_SUBSTREAMID (5.3.1).
            if !bit(l1, 0) {
                return Err(self.bad_substream(t, index));
            }
            (l1 & (((1 << 56) - 1) & !0xfff)) + (u64::from(index) & ((1 << split) - 1)) * 64
        };
        let addr = self.cd_table_pa(t, ste, addr)?;
        self.stats.cd_fetches += 1;
        let mut w = [0u64; 8];
        for (i, v) in w.iter_mut().enumerate() {
            *v = self.mem.read_u64(addr + i as u64 * 8);
        }
        match decode_cd(&self.f, &w) {
            Ok(cd) => {
                self.cfg.insert_cd(t.sid, index, cd.clone());
                Ok(cd)
            }
            Err(CfgError::Event { id, .. }) => Err(self.fail(Self::config_event(id, t), true)),
        }
    }

    fn stage1(
        &mut self,
        t: &Txn,
        ste: &Ste,
        cd: &Cd,
        snoop_forced: bool,
    ) -> Result<Translation, TranslateError> {
        let va = t.iova;
        // VA[55] selects TTB0/TTB1; the bits above the region size (up to bit 55 with TBI)
        // must all equal VA[55], else Translation fault (Arm ARM D8.1.x).
        let sel = usize::from(bit(va, 55));
        let fault = |s: &mut Self, id: u8| {
            let ev = Self::translation_event(id, t);
            s.fail(ev, cd.record)
        };
        let Some(tt) = cd.tt[sel] else {
            return Err(fault(self, event_id::F_TRANSLATION));
        };
        let tbi = cd.tbi[sel];
        let top = if tbi { 55 } else { 63 };
        let low = 64 - tt.tsz;
        let region = bits(va, top, low);
        let ones = (1u64 << (top - low + 1)) - 1;
        if region != if sel == 1 { ones } else { 0 } {
            return Err(fault(self, event_id::F_TRANSLATION));
        }
        let va_n = match (tbi, sel) {
            (true, 1) => va | (0xffu64 << 56),
            (true, _) => va & !(0xffu64 << 56),
            _ => va,
        };
        let acc = Acc {
            write: t.write,
            privileged: t.privileged,
            instruction: t.instruction,
        };
        let entry: TlbEntry = match self.tlb.lookup(ste.vmid, cd.asid, va_n) {
            Some(e) => {
                self.stats.iotlb_hits += 1;
                let e = e.clone();
                if !walk::permits(&e.perms, cd, &acc) {
                    return Err(fault(self, event_id::F_PERMISSION));
                }
                e
            }
            None => {
                self.stats.iotlb_misses += 1;
                self.stats.walks += 1;
                let nested = ste.s2.filter(|_| ste.config == SteConfig::Nested);
                match walk::walk(&self.mem, cd, &tt, va_n, &acc, ste.vmid, nested.as_ref()) {
                    Ok(e) => {
                        self.tlb.insert(e.clone());
                        e
                    }
                    Err(WalkError::S1(wf)) => return Err(fault(self, fault_id(wf))),
                    Err(WalkError::S2 { fault, ipa }) => {
                        let s2 = nested.expect("stage 2 faults come from nested walks");
                        return Err(self.s2_fault(t, &s2, fault, ipa, class::TT));
                    }
                }
            }
        };
        let offset = va_n & ((1u64 << entry.size_log2) - 1);
        // Nested: the stage 1 output is an IPA that stage 2 translates (3.3.3).
        let pa = match ste.s2 {
            Some(s2) if ste.config == SteConfig::Nested => {
                self.s2_translate(t, &s2, entry.pa | offset, class::IN)?
            }
            _ => entry.pa | offset,
        };
        Ok(Translation {
            pa,
            attrs: MemAttrs {
                attr: entry.attr,
                sh: sh_from_desc(entry.sh),
            },
            stage1: true,
            snoop_forced,
        })
    }
}

/// The event number of a walk fault (7.3.13-16).
fn fault_id(wf: WalkFault) -> u8 {
    match wf {
        WalkFault::Translation => event_id::F_TRANSLATION,
        WalkFault::AddrSize => event_id::F_ADDR_SIZE,
        WalkFault::Access => event_id::F_ACCESS,
        WalkFault::Permission => event_id::F_PERMISSION,
    }
}

/// A software SMMUv3. Cloning gives another handle to the same SMMU.
///
/// Software talks to it through [`Mmio`] (register page 0 at offset 0, page 1 at 0x10000);
/// devices through [`SmmuModel::translate`]. Tables, queues and translated data live in the
/// shared [`PhysMem`].
#[derive(Clone)]
pub struct SmmuModel {
    inner: Arc<Mutex<State>>,
}

impl SmmuModel {
    /// An SMMU in its reset state (all of CR0 clear, GBPA = SHCFG "use incoming").
    pub fn new(mem: PhysMem, features: Features) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State::new(mem, features))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn features(&self) -> Features {
        self.lock().f.clone()
    }

    /// The physical memory the SMMU walks and writes.
    pub fn mem(&self) -> PhysMem {
        self.lock().mem.clone()
    }

    /// Translates one transaction from `stream_id` (with a SubstreamID when `ssid` is Some).
    /// A fault is also written to the Event queue when the configuration says to record it.
    pub fn translate(
        &self,
        stream_id: u32,
        ssid: Option<u32>,
        iova: u64,
        access: Access,
        attrs: TxnAttrs,
    ) -> Result<Translation, TranslateError> {
        self.lock().translate(stream_id, ssid, iova, access, attrs)
    }

    /// Marks (StreamID, SubstreamID) as having No_snoop stripped by the SMMU/host bridge, so its
    /// No_snoop requests are still snooped (see docs/smmu-model.md, "Coherency").
    pub fn set_snoop_forced(&self, stream_id: u32, ssid: Option<u32>, forced: bool) {
        let mut s = self.lock();
        if forced {
            s.snoop_forced.insert((stream_id, ssid));
        } else {
            s.snoop_forced.remove(&(stream_id, ssid));
        }
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.lock().stats = Stats::default();
    }

    pub fn irq_counts(&self) -> IrqCounts {
        self.lock().irqs
    }

    /// Every event generated so far with whether it reached the Event queue.
    pub fn generated_events(&self) -> Vec<(Event, bool)> {
        self.lock().generated.clone()
    }

    /// The IOTLB's current entries, oldest first.
    pub fn iotlb_entries(&self) -> Vec<TlbInfo> {
        self.lock()
            .tlb
            .entries()
            .iter()
            .map(|e| TlbInfo {
                vmid: e.vmid,
                asid: e.asid,
                global: e.global,
                va: e.va,
                size: 1u64 << e.size_log2,
                level: e.level,
                granule: 1u64 << e.granule,
                pa: e.pa,
                perms: e.perms,
            })
            .collect()
    }

    /// Entries currently in the configuration cache and the IOTLB.
    pub fn cache_occupancy(&self) -> (usize, usize) {
        let s = self.lock();
        (s.cfg.len(), s.tlb.len())
    }

    /// Reads the records between EVENTQ_CONS and EVENTQ_PROD and advances EVENTQ_CONS, as
    /// software would (OVACKFLG is left alone).
    pub fn drain_events(&self) -> Vec<Event> {
        let mut s = self.lock();
        let log2 = s.eventq.log2(s.f.eventqs);
        let mut out = Vec::new();
        while !s.eventq.empty(log2) {
            let addr = s.eventq.addr() + Queue::index(s.eventq.cons, log2) * 32;
            let mut b = [0u8; 32];
            s.mem.read(addr, &mut b);
            out.push(Event(b));
            s.eventq.cons = Queue::inc(s.eventq.cons, log2);
        }
        out
    }
}

impl Mmio for SmmuModel {
    fn read32(&self, offset: usize) -> u32 {
        self.lock().read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.lock().write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        self.lock().read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.lock().write64(offset, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_pointer_arithmetic() {
        let q = Queue {
            base: 2,
            prod: 0b100,
            cons: 0,
        };
        assert!(q.full(2));
        assert!(!q.empty(2));
        assert_eq!(Queue::inc(0b011, 2), 0b100);
        assert_eq!(Queue::inc(0b111, 2), 0b000);
        assert_eq!(Queue::inc(0x8000_0003, 2), 0x8000_0004);
    }

    #[test]
    fn memattr_mapping() {
        assert_eq!(memattr_to_mair(0b1111), 0xff);
        assert_eq!(memattr_to_mair(0b0101), 0x44);
        assert_eq!(memattr_to_mair(0b0001), 0x04);
    }
}
