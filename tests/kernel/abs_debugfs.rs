// SPDX-License-Identifier: GPL-2.0
//! Guest test of `kernel::debugfs`: nested directories, a `seq_file` show file backed by an
//! `Arc`, reading it back through the VFS, and removal on drop (file, then directory).
use core::{
    fmt::Write,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    alloc::flags::GFP_KERNEL,
    bindings, c_str,
    debugfs::{Dir, SeqFile, Show},
    labtest::Suite,
    labtest_ensure,
    prelude::*,
    str::CStr,
    sync::Arc,
};

module! {
    type: AbsDebugfs,
    name: "abs_debugfs",
    author: "pasid-mdev project",
    description: "Guest test: debugfs abstractions",
    license: "GPL",
}

static DROPS: AtomicU32 = AtomicU32::new(0);

struct State {
    pasids: AtomicU32,
}

impl Drop for State {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

impl Show for State {
    fn show(&self, m: &mut SeqFile) -> Result {
        let _ = writeln!(m, "pasids: {}", self.pasids.load(Ordering::Relaxed));
        let _ = writeln!(m, "ok");
        Ok(())
    }
}

/// Reads a debugfs file. 6.12's debugfs proxy has no `read_iter`, so `kernel_read` cannot be
/// used: call the file's `read` with a user buffer mapped into the current (insmod) process,
/// as a `read(2)` would.
fn read_file(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: NUL-terminated path; O_RDONLY.
    let f = kernel::error::from_err_ptr(unsafe { bindings::filp_open(path.as_char_ptr(), 0, 0) })?;
    // SAFETY: maps anonymous memory into the current process, which has an mm (insmod).
    let ubuf = unsafe {
        bindings::vm_mmap(
            core::ptr::null_mut(),
            0,
            4096,
            (bindings::PROT_READ | bindings::PROT_WRITE) as _,
            (bindings::MAP_PRIVATE | bindings::MAP_ANONYMOUS) as _,
            0,
        )
    };
    let mut pos: bindings::loff_t = 0;
    let len = buf.len().min(4096);
    let r = if (ubuf as isize) < 0 && (ubuf as isize) >= -4095 {
        ubuf as isize
    } else {
        // SAFETY: `f` is an open debugfs file whose fops have `read`; `ubuf` is user memory of
        // at least `len` bytes.
        unsafe { ((*(*f).f_op).read.unwrap())(f, ubuf as *mut _, len, &mut pos) }
    };
    let res = if r < 0 {
        Err(kernel::error::Error::from_errno(r as i32))
    } else {
        kernel::uaccess::UserSlice::new(ubuf as usize, r as usize).reader().read_slice(&mut buf[..r as usize]).map(|()| r as usize)
    };
    if (ubuf as isize) >= 0 {
        // SAFETY: mapped above.
        unsafe { bindings::vm_munmap(ubuf as _, 4096) };
    }
    // SAFETY: closes the file opened above.
    unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
    res
}

fn exists(path: &CStr) -> bool {
    // SAFETY: NUL-terminated path; O_RDONLY works for directories too.
    let f = unsafe { bindings::filp_open(path.as_char_ptr(), 0, 0) };
    match kernel::error::from_err_ptr(f) {
        Ok(f) => {
            // SAFETY: opened above.
            unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
            true
        }
        Err(_) => false,
    }
}

struct AbsDebugfs;

kernel::debugfs_show_fops!(STATE_FOPS, State);

impl kernel::Module for AbsDebugfs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut suite = Suite::new("abs_debugfs");
        suite.run("debugfs_fops_owned_by_module", |case| {
            // An open file pins the module that created it (issue 11): the operations name it.
            labtest_ensure!(case, STATE_FOPS.owner() == module.as_ptr(), "fops owner {:?}, module {:?}", STATE_FOPS.owner(), module.as_ptr());
            Ok(())
        });
        suite.run("debugfs_show_file_read_and_removed", |case| {
            let top = case.check("Dir::new", Dir::new(c_str!("abs_debugfs"), None))?;
            let sub = case.check("Dir::new", Dir::new(c_str!("sub"), Some(&top)))?;
            let state = case.check("Arc", Arc::new(State { pasids: AtomicU32::new(3) }, GFP_KERNEL).map_err(Into::into))?;
            let file = case.check("show_file", sub.show_file(c_str!("state"), state.clone(), &STATE_FOPS))?;
            let path = c_str!("/sys/kernel/debug/abs_debugfs/sub/state");
            let mut buf = [0u8; 64];
            let n = case.check("read", read_file(path, &mut buf))?;
            labtest_ensure!(case, &buf[..n] == b"pasids: 3\nok\n", "content {:?}", &buf[..n]);
            state.pasids.store(9, Ordering::Relaxed);
            let n = case.check("read", read_file(path, &mut buf))?;
            labtest_ensure!(case, &buf[..n] == b"pasids: 9\nok\n", "content after update {:?}", &buf[..n]);
            drop(file);
            labtest_ensure!(case, read_file(path, &mut buf).is_err(), "file still there after drop");
            drop(state);
            labtest_ensure!(case, DROPS.load(Ordering::Relaxed) == 1, "data not dropped with the last reference");
            labtest_ensure!(case, exists(c_str!("/sys/kernel/debug/abs_debugfs/sub")), "sub directory missing");
            drop(sub);
            labtest_ensure!(case, !exists(c_str!("/sys/kernel/debug/abs_debugfs/sub")), "sub directory still there");
            drop(top);
            labtest_ensure!(case, !exists(c_str!("/sys/kernel/debug/abs_debugfs")), "directory still there");
            Ok(())
        });
        suite.finish();
        Ok(AbsDebugfs)
    }
}
