// Project overlay: `Opaque::try_ffi_init`, as later mainline `rust/kernel/types.rs` has it (not in
// 6.12). Appended to 6.12's `types.rs` by `tools/lab/overlay.sh`; delete on a kernel that has it.
impl<T> Opaque<T> {
    /// Creates a fallible pin-initializer from the given initializer closure.
    ///
    /// The returned initializer calls `init_func` with the pointer to the inner `T` of this
    /// `Opaque`. The memory is uninitialised, so the closure must not read from it. On `Err` the
    /// closure must have undone whatever it registered with C: nothing is dropped for an
    /// `Opaque`, and the containing initializer drops only the fields initialised before it.
    ///
    /// Safe for the same reason as [`Opaque::ffi_init`]: the `T` inside an `Opaque` may be
    /// uninitialised, and access to it requires `unsafe`.
    pub fn try_ffi_init<E>(init_func: impl FnOnce(*mut T) -> Result<(), E>) -> impl PinInit<Self, E> {
        // SAFETY: `Opaque` holds a `MaybeUninit`, so the closure may leave `T` partly or not at
        // all initialised; on `Err` the slot is given back as uninitialised, which is what an
        // `Opaque` may be.
        unsafe { init::pin_init_from_closure::<_, E>(move |slot| init_func(Self::raw_get(slot))) }
    }
}
