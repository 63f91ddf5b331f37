/// Project overlay: test reporting for the lab's guest runner.
pub mod labtest;
/// Project overlay: the XArray (not in 6.12's kernel crate).
pub mod xarray;
/// Project overlay: the system-wide PASID allocator (portable core from `ioasid/`).
pub mod ioasid;
/// Project overlay: the IDA (benchmark peer of the PASID allocator).
pub mod ida;
