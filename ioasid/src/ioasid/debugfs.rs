// SPDX-License-Identifier: GPL-2.0
//! The debugfs view: a text dump of the space, the sets and the live PASIDs.

use core::fmt::{self, Write};

use super::store::for_each;
use super::{Backend, IoasidCore};

impl<B: Backend, L: super::Lookup> IoasidCore<B, L> {
    /// Writes the state to `w` (the kernel glue passes a `seq_file` writer):
    ///
    /// ```text
    /// pasid_bits 20 max 0xfffff capacity 1048575
    /// reserved 0x0
    /// allocator default
    /// live 2 sets 1 subscribers 1
    /// sets:
    ///   set        owner                 quota    usage   active  state
    ///   1.0        vm:0x2a                   8        2        1  live
    /// pasids:
    ///   pasid      set        refs  state      origin
    ///   0x1        1.0           0  active     default
    ///   0x2        1.0           1  freed      default
    /// ```
    ///
    /// `allocator` is `default`, `custom`, or `default (N orphaned)` after a custom allocator
    /// was unregistered with PASIDs live; set state is `live` or `dying`; PASID origin is
    /// `default` or `custom`. Linear in the number of sets and PASIDs; run it under the state
    /// lock.
    pub fn dump<W: Write + ?Sized>(&self, w: &mut W) -> fmt::Result {
        let space = self.space();
        writeln!(
            w,
            "pasid_bits {} max {:#x} capacity {}",
            space.bits(),
            space.max(),
            space.capacity()
        )?;
        w.write_str("reserved")?;
        for &(s, e) in space.ranges() {
            if s == e {
                write!(w, " {s:#x}")?;
            } else {
                write!(w, " {s:#x}-{e:#x}")?;
            }
        }
        w.write_char('\n')?;
        match (self.has_allocator(), self.custom_live()) {
            (true, _) => writeln!(w, "allocator custom")?,
            (false, 0) => writeln!(w, "allocator default")?,
            (false, n) => writeln!(w, "allocator default ({n} orphaned)")?,
        }
        writeln!(
            w,
            "live {} sets {} subscribers {}",
            self.live(),
            self.nr_sets(),
            self.subscribers()
        )?;
        writeln!(w, "sets:")?;
        writeln!(
            w,
            "  {:<10} {:<20} {:>6} {:>8} {:>8}  state",
            "set", "owner", "quota", "usage", "active"
        )?;
        for_each(self.set_store(), |index, s| {
            let info = s.info();
            let mut id = Buf::new();
            write!(id, "{}.{}", index, s.generation())?;
            let mut owner = Buf::new();
            write!(
                owner,
                "{}:{:#x}",
                info.owner.kind.as_str(),
                info.owner.token
            )?;
            writeln!(
                w,
                "  {:<10} {:<20} {:>6} {:>8} {:>8}  {}",
                id.as_str(),
                owner.as_str(),
                info.quota,
                info.usage,
                info.active,
                if info.dying { "dying" } else { "live" }
            )
        })?;
        writeln!(w, "pasids:")?;
        writeln!(
            w,
            "  {:<10} {:<10} {:>4}  {:<10} origin",
            "pasid", "set", "refs", "state"
        )?;
        for_each(self.pasid_store(), |pasid, e| {
            let info = e.info();
            let mut hex = Buf::new();
            write!(hex, "{pasid:#x}")?;
            let mut set = Buf::new();
            write!(set, "{}", info.set)?;
            writeln!(
                w,
                "  {:<10} {:<10} {:>4}  {:<10} {}",
                hex.as_str(),
                set.as_str(),
                info.refs,
                info.state.as_str(),
                if info.custom { "custom" } else { "default" }
            )
        })
    }
}

/// A small stack buffer, so that padded columns can be formatted without allocation.
struct Buf {
    bytes: [u8; 40],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: [0; 40],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s are ever copied in, so this cannot fail.
        core::str::from_utf8(self.bytes.get(..self.len).unwrap_or(&[])).unwrap_or("?")
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
