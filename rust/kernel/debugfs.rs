// SPDX-License-Identifier: GPL-2.0

//! debugfs directories and files implemented in Rust.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h)
//!
//! [`Dir`] is a directory removed (recursively) on drop. [`Dir::show_file`] adds a read-only
//! file whose content a [`Show`] implementation writes through a `seq_file` (the C
//! `DEFINE_SHOW_ATTRIBUTE` pattern), with the file's data kept alive by an [`Arc`].
//! debugfs removal waits for running file operations, so no callback runs after the owning
//! [`Dir`]/[`File`] is dropped, except `release`: a file still open then is released when it is
//! closed, through its file operations. Those are therefore a `static` of the module that
//! creates the file with the module as their owner ([`ShowFops`], declared with
//! [`debugfs_show_fops!`](crate::debugfs_show_fops)): an open file holds a reference on the
//! module, so `rmmod` fails with `EBUSY` until it is closed.

use crate::{
    bindings,
    error::{code::*, Result},
    str::CStr,
    sync::Arc,
};
use core::{fmt, marker::PhantomData};

/// Writes the content of a debugfs file.
pub trait Show: Send + Sync + 'static {
    /// Writes the content into `m`.
    fn show(&self, m: &mut SeqFile) -> Result;
}

/// A `seq_file` being filled by [`Show::show`].
#[repr(transparent)]
pub struct SeqFile(crate::types::Opaque<bindings::seq_file>);

impl fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_fmt(format_args!("{s}"))
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        // SAFETY: valid `seq_file` for the duration of `show`; `%pA` formats `args`.
        unsafe {
            bindings::seq_printf(
                self.0.get(),
                crate::c_str!("%pA").as_char_ptr(),
                (&args as *const fmt::Arguments<'_>).cast::<core::ffi::c_void>(),
            )
        };
        Ok(())
    }
}

/// A debugfs directory; removed with its content on drop.
///
/// # Invariants
///
/// `dentry` is a directory created by `debugfs_create_dir` (or an error pointer, when debugfs
/// is disabled, which the debugfs API accepts everywhere), removed once, in `drop`.
pub struct Dir {
    dentry: *mut bindings::dentry,
}

// SAFETY: debugfs calls may be made from any thread.
unsafe impl Send for Dir {}
// SAFETY: `&Dir` only creates files, which debugfs serialises.
unsafe impl Sync for Dir {}

impl Dir {
    /// Creates a directory at the debugfs root (`parent == None`) or in `parent`.
    pub fn new(name: &CStr, parent: Option<&Dir>) -> Result<Self> {
        let p = parent.map_or(core::ptr::null_mut(), |d| d.dentry);
        // SAFETY: valid name; `p` is null or a live directory.
        let dentry = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), p) };
        if crate::error::from_err_ptr(dentry).is_err() {
            return Err(ENOENT);
        }
        Ok(Self { dentry })
    }

    /// Adds a read-only file `name` whose content `data.show()` writes, with the file operations
    /// `fops` (see [`ShowFops`]). The file keeps a reference on `data`; it is removed when the
    /// returned [`File`] or this directory is dropped.
    pub fn show_file<'a, T: Show>(
        &'a self,
        name: &CStr,
        data: Arc<T>,
        fops: &'static ShowFops<T>,
    ) -> Result<File<'a, T>> {
        let raw = data.clone().into_raw();
        // SAFETY: valid name and directory; `raw` stays valid until the `File` drops it after
        // removing the file; `fops` is a static owned by its module (`ShowFops` invariant).
        let dentry = unsafe {
            bindings::debugfs_create_file(
                name.as_char_ptr(),
                0o444,
                self.dentry,
                raw.cast_mut().cast(),
                &fops.fops,
            )
        };
        if crate::error::from_err_ptr(dentry).is_err() {
            // SAFETY: the file does not exist, so the reference is still ours.
            drop(unsafe { Arc::from_raw(raw) });
            return Err(ENOENT);
        }
        Ok(File { dentry, data: raw, _dir: PhantomData })
    }
}

/// A [`File`] that holds a reference on its directory instead of borrowing it: for a file
/// owned by something that cannot borrow the directory (a device's file in its module's
/// directory, kept in the device's data). Removed on drop, then the reference is dropped.
pub struct DirFile<T: Show> {
    // Field order: the file is removed before the directory can go.
    _file: File<'static, T>,
    _dir: Arc<Dir>,
}

impl Dir {
    /// [`Dir::show_file`] in `dir`, the result keeping `dir` alive.
    pub fn show_file_in<T: Show>(
        dir: &Arc<Dir>,
        name: &CStr,
        data: Arc<T>,
        fops: &'static ShowFops<T>,
    ) -> Result<DirFile<T>> {
        // SAFETY: the `DirFile` owns a reference on `dir`, dropped after the file is removed
        // (field order): the directory outlives the file, which is what the borrow of a
        // `File` stands for.
        let d: &'static Dir = unsafe { &*core::ptr::from_ref::<Dir>(dir) };
        Ok(DirFile { _file: d.show_file(name, data, fops)?, _dir: dir.clone() })
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: created by us (type invariant); waits for running file operations.
        unsafe { bindings::debugfs_remove(self.dentry) };
    }
}

/// A debugfs file with data `T`; removed on drop (before the data reference is dropped). It
/// borrows its directory, which therefore cannot be removed first.
///
/// # Invariants
///
/// `data` is an `Arc<T>` reference owned by this file; `dentry` refers to it as `i_private`
/// and lives in a directory that outlives the file.
pub struct File<'a, T: Show> {
    dentry: *mut bindings::dentry,
    data: *const T,
    _dir: PhantomData<&'a Dir>,
}

// SAFETY: `T: Send + Sync`; debugfs calls may be made from any thread.
unsafe impl<T: Show> Send for File<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Show> Sync for File<'_, T> {}

/// The file operations of [`Show`] files with data `T`, owned by a module.
///
/// # Invariants
///
/// `fops.owner` is null (code built into the kernel) or the module whose image holds this
/// value (a `static` of that module, see [`debugfs_show_fops!`](crate::debugfs_show_fops)).
#[repr(transparent)]
pub struct ShowFops<T: Show> {
    fops: bindings::file_operations,
    _t: PhantomData<T>,
}

// SAFETY: never written after construction; the C side only reads it.
unsafe impl<T: Show> Sync for ShowFops<T> {}

impl<T: Show> ShowFops<T> {
    /// The operations of a `seq_file` show file of `T`, owned by `owner`.
    ///
    /// # Safety
    ///
    /// `owner` is null for code built into the kernel, else the `struct module` of the module
    /// whose image the result is stored in, as a `static` (use
    /// [`debugfs_show_fops!`](crate::debugfs_show_fops)).
    pub const unsafe fn new(owner: *mut bindings::module) -> Self {
        // SAFETY: all-zero is a valid `file_operations`.
        let mut f: bindings::file_operations = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
        f.owner = owner;
        f.open = Some(open_cb::<T>);
        f.read = Some(bindings::seq_read);
        f.llseek = Some(bindings::seq_lseek);
        f.release = Some(bindings::single_release);
        // INVARIANT: the caller's promise.
        Self { fops: f, _t: PhantomData }
    }

    /// The owning module (null when built in).
    pub fn owner(&self) -> *mut bindings::module {
        self.fops.owner
    }
}

/// Declares `static $name: ShowFops<$t>`, the file operations of [`Show`] files of `$t`, owned
/// by the module this is expanded in (`THIS_MODULE`).
///
/// # Examples
///
/// ```ignore
/// kernel::debugfs_show_fops!(STATS_FOPS, Stats);
/// let file = dir.show_file(c_str!("stats"), stats, &STATS_FOPS)?;
/// ```
#[macro_export]
macro_rules! debugfs_show_fops {
    ($vis:vis $name:ident, $t:ty) => {
        $vis static $name: $crate::debugfs::ShowFops<$t> = {
            #[cfg(MODULE)]
            // SAFETY: the module's own `struct module`, which outlives its image (and this
            // static in it).
            let owner = unsafe {
                extern "C" {
                    static __this_module: $crate::types::Opaque<$crate::bindings::module>;
                }
                __this_module.get()
            };
            #[cfg(not(MODULE))]
            let owner = ::core::ptr::null_mut();
            // SAFETY: `owner` is this module (or null when built in) and the result is a
            // static of it.
            unsafe { $crate::debugfs::ShowFops::new(owner) }
        };
    };
}

impl<T: Show> Drop for File<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the file is ours; `debugfs_remove` waits for running operations, after which
        // nothing uses `data` any more and the reference can be dropped.
        unsafe {
            bindings::debugfs_remove(self.dentry);
            drop(Arc::from_raw(self.data));
        }
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn open_cb<T: Show>(inode: *mut bindings::inode, file: *mut bindings::file) -> crate::ffi::c_int {
    // SAFETY: debugfs passes a valid inode whose `i_private` is our data pointer.
    unsafe { bindings::single_open(file, Some(show_cb::<T>), (*inode).i_private) }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn show_cb<T: Show>(m: *mut bindings::seq_file, _v: *mut core::ffi::c_void) -> crate::ffi::c_int {
    // SAFETY: `private` is the `T` of a live `File<T>` (debugfs removal waits for readers).
    let data = unsafe { &*(*m).private.cast::<T>() };
    // SAFETY: `m` is valid for the call; `SeqFile` is transparent.
    let seq = unsafe { &mut *m.cast::<SeqFile>() };
    match data.show(seq) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
