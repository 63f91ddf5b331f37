/// Project overlay: test reporting for the lab's guest runner.
pub mod labtest;
/// Project overlay: the XArray (not in 6.12's kernel crate).
pub mod xarray;
