// SPDX-License-Identifier: GPL-2.0
//! Reading the kernel log from `/dev/kmsg`.
//!
//! Records the kernel overwrote before they were read (the ring buffer wrapped, e.g. during a
//! chatty boot) are counted from the gaps in the records' sequence numbers, so that the runner
//! can fail the run: a lost record may have been a test result.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

/// A reader positioned somewhere in the kernel log; yields whole messages.
pub struct Kmsg {
    file: File,
    /// Gaps in the sequence numbers read so far.
    pub gaps: Gaps,
}

/// Counts records missing from a stream of sequence numbers.
#[derive(Default)]
pub struct Gaps {
    /// Sequence number of the next record we expect (the first record of a boot is 0).
    next: u64,
    /// Records lost so far (overwritten before we read them).
    pub lost: u64,
}

impl Gaps {
    /// Accounts for a record with sequence number `seq`.
    pub fn saw(&mut self, seq: u64) {
        self.lost += seq.saturating_sub(self.next);
        self.next = seq + 1;
    }
}

const O_NONBLOCK: i32 = 0o4000;
const EPIPE: i32 = 32;

impl Kmsg {
    /// Opens the log at its oldest retained record.
    pub fn open() -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open("/dev/kmsg")?;
        Ok(Self {
            file,
            gaps: Gaps::default(),
        })
    }

    /// Returns every message logged since the last call (or since the oldest record).
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let (seq, text) = parse_record(&buf[..n]);
                    if let Some(seq) = seq {
                        self.gaps.saw(seq);
                    }
                    out.push(text);
                }
                // Records were overwritten before we read them; the next read returns the
                // oldest retained one, and its sequence number tells how many were lost.
                Err(e) if e.raw_os_error() == Some(EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        out
    }
}

/// Splits one `/dev/kmsg` record (`prio,seq,ts,flags;text\n[ KEY=v\n]`) into its sequence
/// number and message text.
pub fn parse_record(rec: &[u8]) -> (Option<u64>, String) {
    let text = String::from_utf8_lossy(rec);
    let first = text.lines().next().unwrap_or("");
    match first.split_once(';') {
        Some((header, msg)) => (
            header.split(',').nth(1).and_then(|s| s.parse().ok()),
            msg.to_string(),
        ),
        None => (None, first.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_record, Gaps};

    #[test]
    fn overwritten_records_are_counted() {
        let mut g = Gaps::default();
        g.saw(0);
        g.saw(1);
        assert_eq!(g.lost, 0);
        g.saw(5);
        assert_eq!(g.lost, 3);
        let mut late = Gaps::default();
        late.saw(40);
        assert_eq!(late.lost, 40, "the start of the boot log was overwritten");
    }

    #[test]
    fn record_text_is_after_the_header() {
        assert_eq!(
            parse_record(b"6,1234,5678,-;hello world\n SUBSYSTEM=x\n"),
            (Some(1234), "hello world".to_string())
        );
        assert_eq!(
            parse_record(b"6,7,5678,-;    ok 1 indented"),
            (Some(7), "    ok 1 indented".to_string())
        );
        assert_eq!(parse_record(b"no header"), (None, "no header".to_string()));
    }
}
