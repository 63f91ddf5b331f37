// SPDX-License-Identifier: GPL-2.0
//! The qtest client itself: accesses, bulk memory, errors, timeouts, clean-up.

mod common;

use qtest::{virt, Error, QemuConfig, Qtest};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn scalar_accesses_of_every_width() {
    let Some(qt) = common::client(QemuConfig::default()) else {
        return;
    };
    let a = virt::RAM_BASE + 0x30_0000;
    qt.writeq(a, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(qt.readq(a).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(qt.readl(a).unwrap(), 0x5566_7788);
    assert_eq!(qt.readw(a + 6).unwrap(), 0x1122);
    assert_eq!(qt.readb(a + 1).unwrap(), 0x77);
    qt.writeb(a, 0xaa).unwrap();
    qt.writew(a + 2, 0xbbcc).unwrap();
    qt.writel(a + 4, 0xdead_beef).unwrap();
    assert_eq!(qt.readq(a).unwrap(), 0xdead_beef_bbcc_77aa);
    qt.check().unwrap();
}

#[test]
fn bulk_memory_round_trip_and_memset() {
    let Some(qt) = common::client(QemuConfig::default()) else {
        return;
    };
    let a = virt::RAM_BASE + 0x40_0000;
    let data = common::pattern((1 << 20) + 13, 7);
    let t = Instant::now();
    qt.write(a, &data).unwrap();
    let mut back = vec![0; data.len()];
    qt.read(a, &mut back).unwrap();
    let took = t.elapsed();
    assert!(back == data, "1 MiB round trip differs");
    println!("1 MiB write + read over qtest (b64): {took:?}");
    qt.memset(a + 5, 100, 0x5a).unwrap();
    let mut small = [0u8; 110];
    qt.read(a, &mut small).unwrap();
    assert_eq!(&small[..5], &data[..5]);
    assert!(small[5..105].iter().all(|&b| b == 0x5a));
    assert_eq!(&small[105..], &data[105..110]);
    // Zero-length operations are no-ops.
    qt.write(a, &[]).unwrap();
    qt.read(a, &mut []).unwrap();
    qt.memset(a, 0, 0).unwrap();
}

#[test]
fn rejected_command_is_an_error_and_the_client_stays_usable() {
    let Some(qt) = common::client(QemuConfig::default()) else {
        return;
    };
    match qt.command("no_such_command 1 2") {
        Err(Error::Failed { reply, .. }) => assert!(reply.contains("FAIL"), "{reply}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(!qt.is_broken());
    assert_eq!(qt.readl(virt::SMMU_BASE).unwrap() & 0x3, 0x3);
}

#[test]
fn hung_qemu_times_out_instead_of_hanging() {
    let Some(qt) = common::client(QemuConfig::default()) else {
        return;
    };
    qt.set_timeout(Duration::from_millis(300));
    let pid = qt.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    let err = qt.readl(virt::SMMU_BASE).unwrap_err();
    let took = t.elapsed();
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "timeout took {took:?}");
    assert!(err.to_string().contains("readl"), "{err}");
    // The answer may still arrive later: the connection is out of step and stays unusable.
    assert!(qt.is_broken());
    assert!(matches!(qt.readl(virt::SMMU_BASE), Err(Error::Broken(_))));
    assert!(qt.check().is_err());
}

#[test]
fn qemu_death_is_an_error_with_exit_status() {
    let Some(qt) = common::client(QemuConfig::default()) else {
        return;
    };
    let pid = qt.pid().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    let err = qt.readl(virt::SMMU_BASE).unwrap_err();
    match &err {
        Error::Exited { status, .. } => assert!(status.contains("9"), "{status}"),
        other => panic!("expected Exited, got {other:?}"),
    }
    assert!(matches!(qt.readq(virt::RAM_BASE), Err(Error::Broken(_))));
}

#[test]
fn bad_command_line_reports_qemu_stderr() {
    if !common::have_qemu() {
        return;
    }
    let cfg = QemuConfig::default().devices(["no-such-device-xyz"]);
    let err = Qtest::spawn(&cfg).err().expect("spawn must fail");
    match &err {
        Error::Exited { stderr, .. } => assert!(stderr.contains("no-such-device-xyz"), "{err}"),
        other => panic!("expected Exited, got {other:?}"),
    }
}

#[test]
fn missing_binary_is_an_error() {
    let cfg = QemuConfig {
        binary: Some("/nonexistent/qemu".into()),
        ..Default::default()
    };
    assert!(matches!(Qtest::spawn(&cfg), Err(Error::Spawn(_))));
}

#[test]
fn dropping_the_last_clone_kills_qemu() {
    let Some(qt) = common::client(QemuConfig::default()) else {
        return;
    };
    let pid = qt.pid();
    let other = qt.clone();
    drop(qt);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(other.readl(virt::SMMU_BASE).unwrap() & 0x3, 0x3);
    drop(other);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} survived"
    );
}
