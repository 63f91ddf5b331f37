// SPDX-License-Identifier: GPL-2.0
//! Error type of the harness.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong talking to QEMU or driving the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `qemu-system-aarch64` was not found (see [`crate::qemu_binary`]).
    NotFound(String),
    /// QEMU could not be started, or did not connect to the qtest socket in time.
    Spawn(String),
    /// QEMU exited (or closed the qtest connection); its exit status and stderr tail.
    Exited {
        /// Exit status as text (`"running"` if the socket closed but the process lives).
        status: String,
        /// The last bytes QEMU wrote to stderr.
        stderr: String,
    },
    /// No complete answer to `command` arrived within `after`.
    Timeout {
        /// The qtest command that was sent.
        command: String,
        /// The bound that expired.
        after: Duration,
    },
    /// A socket read or write failed.
    Io {
        /// The qtest command being sent.
        command: String,
        /// The OS error.
        err: String,
    },
    /// QEMU answered `FAIL ...`.
    Failed {
        /// The qtest command that was sent.
        command: String,
        /// QEMU's answer.
        reply: String,
    },
    /// QEMU answered something the client cannot parse.
    Protocol {
        /// The qtest command that was sent.
        command: String,
        /// QEMU's answer.
        reply: String,
    },
    /// An earlier transport error left the connection unusable; carries that error's text.
    Broken(String),
    /// A machine-level problem: bad argument, device missing, device timeout.
    Harness(String),
}

/// Result alias of the harness.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(m) => write!(f, "QEMU not found: {m}"),
            Error::Spawn(m) => write!(f, "cannot start QEMU: {m}"),
            Error::Exited { status, stderr } => {
                write!(f, "QEMU exited ({status})")?;
                if !stderr.trim().is_empty() {
                    write!(f, "; stderr: {}", stderr.trim())?;
                }
                Ok(())
            }
            Error::Timeout { command, after } => {
                write!(f, "no answer to qtest command `{command}` within {after:?}")
            }
            Error::Io { command, err } => write!(f, "qtest I/O error on `{command}`: {err}"),
            Error::Failed { command, reply } => {
                write!(f, "QEMU rejected qtest command `{command}`: {reply}")
            }
            Error::Protocol { command, reply } => {
                write!(
                    f,
                    "unexpected answer to qtest command `{command}`: {reply:?}"
                )
            }
            Error::Broken(m) => write!(f, "qtest connection unusable after earlier error: {m}"),
            Error::Harness(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}
