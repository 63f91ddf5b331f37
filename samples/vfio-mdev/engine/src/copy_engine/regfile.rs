// SPDX-License-Identifier: GPL-2.0
//! The BAR0 register file of an mdev's copy engine (`docs/sample-mdev.md`, "BAR0: the copy
//! engine"): what reads return and what a write does, whatever runs the copy. The driver turns
//! a [`WriteEffect`] into work (queue the copy, reset) and reports the end with
//! [`RegFile::finish`].

use super::{Copy, CopyError, COPY_MAX};

/// Register offsets and bits.
pub mod regs {
    /// `ID` (RO): [`ID_VALUE`].
    pub const ID: u64 = 0x00;
    /// What `ID` reads.
    pub const ID_VALUE: u32 = 0x7e01_0001;
    /// `PASID` (RO): the mdev's PASID.
    pub const PASID: u64 = 0x04;
    /// Source IOVA bits 31:0.
    pub const SRC_LO: u64 = 0x08;
    /// Source IOVA bits 63:32.
    pub const SRC_HI: u64 = 0x0c;
    /// Destination IOVA bits 31:0.
    pub const DST_LO: u64 = 0x10;
    /// Destination IOVA bits 63:32.
    pub const DST_HI: u64 = 0x14;
    /// Bytes to copy.
    pub const LEN: u64 = 0x18;
    /// `CMD` (WO): [`CMD_START`], [`CMD_IRQ`].
    pub const CMD: u64 = 0x1c;
    /// `STATUS` (RO): [`STATUS_BUSY`], [`STATUS_DONE`], `ERROR` at [`ERROR_SHIFT`].
    pub const STATUS: u64 = 0x20;
    /// `RESET` (WO): write [`RESET_MAGIC`].
    pub const RESET: u64 = 0x24;
    /// `COMPLETED` (RO): copies completed without error since open/reset.
    pub const COMPLETED: u64 = 0x28;
    /// `MAX_LEN` (RO): the largest `LEN`.
    pub const MAX_LEN: u64 = 0x2c;
    /// `CMD` bit: start a copy.
    pub const CMD_START: u32 = 1 << 0;
    /// `CMD` bit: signal the MSI when the copy ends.
    pub const CMD_IRQ: u32 = 1 << 1;
    /// `STATUS` bit: a copy runs.
    pub const STATUS_BUSY: u32 = 1 << 0;
    /// `STATUS` bit: the last command ended.
    pub const STATUS_DONE: u32 = 1 << 1;
    /// Position of the `ERROR` field in `STATUS`.
    pub const ERROR_SHIFT: u32 = 8;
    /// The value a `RESET` write must have.
    pub const RESET_MAGIC: u32 = 1;
}

/// What a register write asks the driver to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteEffect {
    /// Nothing (a register changed, or the write was ignored).
    None,
    /// `STATUS` is `BUSY`: run `copy`; `irq`: signal the MSI when it ends.
    Start { copy: Copy, irq: bool },
    /// The command ended at once with an error (already in `STATUS`): signal the MSI.
    Interrupt,
    /// `RESET` was written: abort the copy, then [`RegFile::clear`].
    Reset,
}

/// The registers of one mdev's copy engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegFile {
    src: u64,
    dst: u64,
    len: u32,
    status: u32,
    completed: u32,
}

impl RegFile {
    /// What a 32-bit read at `off` returns (`pasid`: the `PASID` register).
    pub fn read(&self, off: u64, pasid: u32) -> u32 {
        match off {
            regs::ID => regs::ID_VALUE,
            regs::PASID => pasid,
            regs::SRC_LO => self.src as u32,
            regs::SRC_HI => (self.src >> 32) as u32,
            regs::DST_LO => self.dst as u32,
            regs::DST_HI => (self.dst >> 32) as u32,
            regs::LEN => self.len,
            regs::STATUS => self.status,
            regs::COMPLETED => self.completed,
            regs::MAX_LEN => COPY_MAX as u32,
            _ => 0,
        }
    }

    /// A 32-bit write of `val` at `off`. Address and length writes are ignored while busy, so
    /// are read-only and unknown offsets.
    pub fn write(&mut self, off: u64, val: u32) -> WriteEffect {
        let busy = self.busy();
        let lo = |r: u64| (r & !0xffff_ffff) | u64::from(val);
        let hi = |r: u64| (r & 0xffff_ffff) | (u64::from(val) << 32);
        match off {
            regs::SRC_LO if !busy => self.src = lo(self.src),
            regs::SRC_HI if !busy => self.src = hi(self.src),
            regs::DST_LO if !busy => self.dst = lo(self.dst),
            regs::DST_HI if !busy => self.dst = hi(self.dst),
            regs::LEN if !busy => self.len = val,
            regs::CMD => return self.command(val),
            regs::RESET if val == regs::RESET_MAGIC => return WriteEffect::Reset,
            _ => {}
        }
        WriteEffect::None
    }

    fn command(&mut self, val: u32) -> WriteEffect {
        let irq = val & regs::CMD_IRQ != 0;
        let bad = val & !regs::CMD_IRQ != regs::CMD_START;
        if self.busy() {
            // The running copy goes on; it overwrites `STATUS` when it ends.
            if !bad {
                self.status |= CopyError::Busy.code() << regs::ERROR_SHIFT;
            }
            return WriteEffect::None;
        }
        let copy = Copy {
            src: self.src,
            dst: self.dst,
            len: u64::from(self.len),
        };
        let checked = if bad {
            Err(CopyError::BadCommand)
        } else {
            copy.validate()
        };
        match checked {
            Ok(()) => {
                self.status = regs::STATUS_BUSY;
                WriteEffect::Start { copy, irq }
            }
            Err(e) => {
                self.finish(Some(e));
                if irq {
                    WriteEffect::Interrupt
                } else {
                    WriteEffect::None
                }
            }
        }
    }

    /// Whether a copy runs.
    pub fn busy(&self) -> bool {
        self.status & regs::STATUS_BUSY != 0
    }

    /// The running command ended (`err`: why it failed): `STATUS = DONE | ERROR`, `COMPLETED`
    /// counts a success.
    pub fn finish(&mut self, err: Option<CopyError>) {
        self.status = regs::STATUS_DONE | (err.map_or(0, CopyError::code) << regs::ERROR_SHIFT);
        if err.is_none() {
            self.completed = self.completed.wrapping_add(1);
        }
    }

    /// Back to the reset values.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(r: &mut RegFile, src: u64, dst: u64, len: u32) {
        r.write(regs::SRC_LO, src as u32);
        r.write(regs::SRC_HI, (src >> 32) as u32);
        r.write(regs::DST_LO, dst as u32);
        r.write(regs::DST_HI, (dst >> 32) as u32);
        r.write(regs::LEN, len);
    }

    #[test]
    fn start_busy_finish() {
        let mut r = RegFile::default();
        program(&mut r, 0x1_0000_1000, 0x2000, 64);
        assert_eq!(r.read(regs::SRC_HI, 0), 1);
        let e = r.write(regs::CMD, regs::CMD_START | regs::CMD_IRQ);
        let copy = Copy {
            src: 0x1_0000_1000,
            dst: 0x2000,
            len: 64,
        };
        assert_eq!(e, WriteEffect::Start { copy, irq: true });
        assert_eq!(r.read(regs::STATUS, 0), regs::STATUS_BUSY);
        // Ignored while busy; a second start reports busy.
        r.write(regs::LEN, 8);
        assert_eq!(r.read(regs::LEN, 0), 64);
        assert_eq!(r.write(regs::CMD, regs::CMD_START), WriteEffect::None);
        assert_eq!(r.read(regs::STATUS, 0), regs::STATUS_BUSY | 1 << 8);
        r.finish(None);
        assert_eq!(r.read(regs::STATUS, 0), regs::STATUS_DONE);
        assert_eq!(r.read(regs::COMPLETED, 0), 1);
    }

    #[test]
    fn bad_commands_end_at_once() {
        let mut r = RegFile::default();
        program(&mut r, 0x1000, 0x2000, 0);
        assert_eq!(
            r.write(regs::CMD, regs::CMD_START | regs::CMD_IRQ),
            WriteEffect::Interrupt
        );
        assert_eq!(r.read(regs::STATUS, 0), regs::STATUS_DONE | 2 << 8);
        assert_eq!(
            r.write(regs::CMD, regs::CMD_IRQ | 1 << 5),
            WriteEffect::Interrupt
        );
        assert_eq!(r.read(regs::STATUS, 0), regs::STATUS_DONE | 8 << 8);
        assert_eq!(r.write(regs::CMD, 0), WriteEffect::None);
        assert_eq!(r.read(regs::COMPLETED, 0), 0);
    }

    #[test]
    fn reset_and_read_only() {
        let mut r = RegFile::default();
        assert_eq!(r.write(regs::RESET, 2), WriteEffect::None);
        assert_eq!(r.write(regs::RESET, regs::RESET_MAGIC), WriteEffect::Reset);
        r.write(regs::ID, 5);
        assert_eq!(r.read(regs::ID, 0), regs::ID_VALUE);
        assert_eq!(r.read(regs::PASID, 7), 7);
        assert_eq!(r.read(regs::MAX_LEN, 0), 65536);
        assert_eq!(r.read(0x800, 0), 0);
    }
}
