// SPDX-License-Identifier: GPL-2.0
//! Reading the kernel log from `/dev/kmsg`.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

/// A reader positioned somewhere in the kernel log; yields whole messages.
pub struct Kmsg {
    file: File,
}

const O_NONBLOCK: i32 = 0o4000;

impl Kmsg {
    /// Opens the log at its oldest retained record.
    pub fn open() -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open("/dev/kmsg")?;
        Ok(Self { file })
    }

    /// Returns every message logged since the last call (or since the oldest record).
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(parse_record(&buf[..n])),
                // EPIPE: records were overwritten before we read them; carry on from the next.
                Err(e) if e.raw_os_error() == Some(32) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        out
    }
}

/// Extracts the message text from one `/dev/kmsg` record (`prio,seq,ts,flags;text\n[ KEY=v\n]`).
pub fn parse_record(rec: &[u8]) -> String {
    let text = String::from_utf8_lossy(rec);
    let first = text.lines().next().unwrap_or("");
    match first.split_once(';') {
        Some((_, msg)) => msg.to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_text_is_after_the_header() {
        assert_eq!(super::parse_record(b"6,1234,5678,-;hello world\n SUBSYSTEM=x\n"), "hello world");
        assert_eq!(super::parse_record(b"no header"), "no header");
    }
}
