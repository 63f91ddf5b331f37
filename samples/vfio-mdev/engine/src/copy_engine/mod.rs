// SPDX-License-Identifier: GPL-2.0
//! The rules of the sample's virtual DMA copy engine, whatever moves the bytes: which copy
//! commands are accepted, the status codes of refused or failed ones, and how a copy is cut
//! into pieces (at most one page on each side and at most the parent's bounce buffer), so a
//! piece needs one source and one destination page mapped for the device, and the engine can
//! serve the mdevs in turn, one piece each.
//!
//! Built twice from these files (`docs/portable-code.md`): into `edu_mdev.ko`, and on the host
//! where the PASID mode runs on the SMMUv3 model (`tests/pasid_model.rs`).

pub mod regfile;

/// Copies must be aligned to (and a multiple of) this many bytes.
pub const ALIGN: u64 = 4;
const _: () = assert!(ALIGN.is_power_of_two());
/// Largest copy.
pub const COPY_MAX: u64 = 64 * 1024;

/// Why a copy failed: the `ERROR` field of the mdev's `STATUS` register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CopyError {
    /// A copy was started while one is running.
    Busy = 1,
    /// Length 0 or above [`COPY_MAX`].
    BadLength = 2,
    /// Source, destination or length not a multiple of [`ALIGN`].
    BadAlignment = 3,
    /// Some page of the source (readable) or destination (writable) is not mapped by the user.
    Unmapped = 4,
    /// Source and destination overlap.
    Overlap = 5,
    /// Source or destination range wraps the 64-bit IOVA space.
    Overflow = 6,
    /// The copy was aborted (reset, unmap of its pages, removal).
    Aborted = 7,
    /// Unknown bits in the command register.
    BadCommand = 8,
    /// The parent device failed the DMA.
    Device = 9,
}

impl CopyError {
    /// The value of the `ERROR` field.
    pub const fn code(self) -> u32 {
        self as u32
    }
}

/// How a page must be mapped for a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The device reads it (source).
    Read,
    /// The device writes it (destination).
    ReadWrite,
}

/// A copy command: `len` bytes from IOVA `src` to IOVA `dst` of the mdev's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Source IOVA.
    pub src: u64,
    /// Destination IOVA.
    pub dst: u64,
    /// Length in bytes.
    pub len: u64,
}

/// One piece of a copy: `len` bytes that stay inside one source page and one destination page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Source IOVA.
    pub src: u64,
    /// Destination IOVA.
    pub dst: u64,
    /// Length in bytes (non-zero).
    pub len: u64,
}

impl Piece {
    /// The page holding the source bytes.
    pub fn src_page(&self, page: u64) -> u64 {
        self.src & !(page - 1)
    }

    /// The page holding the destination bytes.
    pub fn dst_page(&self, page: u64) -> u64 {
        self.dst & !(page - 1)
    }

    /// Source and destination are in the same page (which is then mapped once, writable).
    pub fn one_page(&self, page: u64) -> bool {
        self.src_page(page) == self.dst_page(page)
    }
}

impl Copy {
    /// Checks the command's shape: length (`BadLength`), alignment (`BadAlignment`), ranges
    /// that wrap (`Overflow`), overlap (`Overlap`). Whether the pages are mapped is the
    /// caller's check ([`Copy::page_spans`]).
    pub fn validate(&self) -> Result<(), CopyError> {
        if self.len == 0 || self.len > COPY_MAX {
            return Err(CopyError::BadLength);
        }
        if (self.src | self.dst | self.len) & (ALIGN - 1) != 0 {
            return Err(CopyError::BadAlignment);
        }
        let (Some(src_end), Some(dst_end)) = (
            self.src.checked_add(self.len),
            self.dst.checked_add(self.len),
        ) else {
            return Err(CopyError::Overflow);
        };
        if self.src < dst_end && self.dst < src_end {
            return Err(CopyError::Overlap);
        }
        Ok(())
    }

    /// The pages the copy touches, as (first page, number of pages, access) for the source
    /// and the destination: what must be mapped before a byte moves. Only for validated
    /// copies (empty spans otherwise).
    pub fn page_spans(&self, page: u64) -> [(u64, usize, Access); 2] {
        let span = |start: u64| {
            if self.validate().is_err() {
                return (start & !(page - 1), 0);
            }
            let first = start & !(page - 1);
            let last = (start + self.len - 1) & !(page - 1);
            (first, ((last - first) / page + 1) as usize)
        };
        let (s, sn) = span(self.src);
        let (d, dn) = span(self.dst);
        [(s, sn, Access::Read), (d, dn, Access::ReadWrite)]
    }

    /// The piece after the first `done` bytes: at most one page on each side and at most
    /// `buf` bytes. `None` once everything is copied. `page` and `buf` are non-zero.
    pub fn piece(&self, done: u64, page: u64, buf: u64) -> Option<Piece> {
        if done >= self.len || page == 0 || buf == 0 {
            return None;
        }
        let src = self.src.checked_add(done)?;
        let dst = self.dst.checked_add(done)?;
        let len = (self.len - done)
            .min(page - src % page)
            .min(page - dst % page)
            .min(buf);
        Some(Piece { src, dst, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn c(src: u64, dst: u64, len: u64) -> Copy {
        Copy { src, dst, len }
    }

    #[test]
    fn refused_commands_get_their_status_code() {
        let cases = [
            (c(0x1000, 0x9000, 0), CopyError::BadLength, 2),
            (c(0x1000, 0x9000, COPY_MAX + 4), CopyError::BadLength, 2),
            (c(0x1002, 0x9000, 8), CopyError::BadAlignment, 3),
            (c(0x1000, 0x9001, 8), CopyError::BadAlignment, 3),
            (c(0x1000, 0x9000, 6), CopyError::BadAlignment, 3),
            (c(u64::MAX - 3, 0x9000, 8), CopyError::Overflow, 6),
            (c(0x1000, u64::MAX - 7, 16), CopyError::Overflow, 6),
            (c(0x1000, 0x1004, 8), CopyError::Overlap, 5),
            (c(0x1000, 0x1000, 4), CopyError::Overlap, 5),
            (c(0x2000, 0x1000, 0x1004), CopyError::Overlap, 5),
        ];
        for (cmd, e, code) in cases {
            assert_eq!(cmd.validate(), Err(e), "{cmd:x?}");
            assert_eq!(e.code(), code);
        }
        for ok in [
            c(0x1000, 0x2000, 0x1000),
            c(0x2000, 0x1000, 0x1000),
            c(0, 8, 8),
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok:x?}");
        }
    }

    #[test]
    fn pieces_cover_the_copy_within_pages_and_buffer() {
        for cmd in [
            c(0x1000, 0x8000, 0x1000),
            c(0x1ffc, 0x8000, 0x2008),
            c(0x10, 0x5ff0, 0x3000),
            c(0x20000, 0x100, COPY_MAX),
        ] {
            assert!(cmd.validate().is_ok());
            let mut done = 0;
            let mut n = 0;
            while let Some(p) = cmd.piece(done, PAGE, 2048) {
                assert_eq!((p.src, p.dst), (cmd.src + done, cmd.dst + done));
                assert!(p.len > 0 && p.len <= 2048);
                assert_eq!(p.src_page(PAGE), (p.src + p.len - 1) & !(PAGE - 1));
                assert_eq!(p.dst_page(PAGE), (p.dst + p.len - 1) & !(PAGE - 1));
                done += p.len;
                n += 1;
            }
            assert_eq!(done, cmd.len, "{cmd:x?}");
            assert!(n >= cmd.len.div_ceil(2048), "{n} pieces");
        }
        assert_eq!(c(0, 8, 8).piece(8, PAGE, 64), None);
    }

    #[test]
    fn page_spans_name_every_page_touched() {
        let s = c(0x1ffc, 0x8000, 0x2008).page_spans(PAGE);
        assert_eq!(s[0], (0x1000, 4, Access::Read));
        assert_eq!(s[1], (0x8000, 3, Access::ReadWrite));
        let s = c(0x1000, 0x8000, 4).page_spans(PAGE);
        assert_eq!((s[0].1, s[1].1), (1, 1));
        assert_eq!(
            c(0, 0, 4).page_spans(PAGE)[0].1,
            0,
            "invalid copy: nothing to pin"
        );
    }
}
