// SPDX-License-Identifier: GPL-2.0

//! Interrupt handlers: `request_irq` / `request_threaded_irq` with a handler trait, freed on
//! drop or when the device is unbound, whichever comes first.
//!
//! C header: [`include/linux/interrupt.h`](srctree/include/linux/interrupt.h)
//!
//! A [`Registration<T>`] is pinned (the C side keeps a pointer to its handler as the `dev_id`
//! cookie) and owns the handler. The `free_irq` call lives in a [`Devres`], so an IRQ requested
//! for a bound device is freed at unbind even if the registration is leaked past it; dropping
//! the registration frees it earlier. `free_irq` waits for running handlers, so the handler is
//! never called after the IRQ is freed and is dropped only afterwards.

use crate::{
    alloc::flags::GFP_KERNEL,
    bindings,
    device::{Bound, Device},
    devres::Devres,
    error::{to_result, Error},
    init::PinInit,
    str::CStr,
};
use crate::ffi::c_void;
use core::{marker::PhantomPinned, ptr::addr_of_mut};

/// What a hard-IRQ handler reports (`irqreturn_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqReturn {
    /// The interrupt was not from this device (`IRQ_NONE`).
    None,
    /// The interrupt was handled (`IRQ_HANDLED`).
    Handled,
}

/// What a threaded handler's hard-IRQ part reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadedIrqReturn {
    /// Not from this device (`IRQ_NONE`).
    None,
    /// Handled in hard-IRQ context, no thread needed (`IRQ_HANDLED`).
    Handled,
    /// Wake the handler thread (`IRQ_WAKE_THREAD`).
    WakeThread,
}

fn to_c(r: IrqReturn) -> bindings::irqreturn_t {
    match r {
        IrqReturn::None => bindings::irqreturn_IRQ_NONE,
        IrqReturn::Handled => bindings::irqreturn_IRQ_HANDLED,
    }
}

/// `IRQF_*` request flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u64);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// `IRQF_SHARED`: the line may be shared with other handlers.
    pub const SHARED: Flags = Flags(bindings::IRQF_SHARED as u64);
    /// `IRQF_ONESHOT`: keep the line masked until the thread handler ran.
    pub const ONESHOT: Flags = Flags(bindings::IRQF_ONESHOT as u64);

    /// Raw value.
    pub fn bits(self) -> u64 {
        self.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A hard-IRQ handler. Runs in interrupt context: must not sleep.
pub trait Handler: Sync + Send + 'static {
    /// Handles the interrupt.
    fn handle(&self) -> IrqReturn;
}

/// A threaded handler: a hard-IRQ part and a part run in a kernel thread (may sleep).
pub trait ThreadedHandler: Sync + Send + 'static {
    /// Hard-IRQ part; the default wakes the thread.
    fn handle(&self) -> ThreadedIrqReturn {
        ThreadedIrqReturn::WakeThread
    }
    /// Thread part.
    fn handle_threaded(&self) -> IrqReturn;
}

/// `free_irq` for one (irq, cookie) pair; runs on drop.
struct FreeIrq {
    irq: u32,
    cookie: *mut c_void,
}

// SAFETY: `free_irq` may be called from any thread in process context; the cookie is only
// compared by the IRQ core.
unsafe impl Send for FreeIrq {}

// SAFETY: `FreeIrq` has no `&self` methods; sharing it shares nothing.
unsafe impl Sync for FreeIrq {}

impl Drop for FreeIrq {
    fn drop(&mut self) {
        // SAFETY: the pair was registered by `request_threaded_irq` and is freed exactly once
        // (this value is dropped once). `free_irq` waits for running handlers.
        unsafe { bindings::free_irq(self.irq, self.cookie) };
    }
}

/// A requested IRQ with its handler `T` (hard-IRQ [`Handler`] or [`ThreadedHandler`] through
/// [`Registration::new`] / [`Registration::new_threaded`]).
///
/// # Invariants
///
/// While `free` holds a `FreeIrq`, the IRQ core may call the handler with `dev_id ==
/// &self.handler`; `free` is declared (so dropped) before `handler`, or revoked at unbind, and
/// the registration is pinned, so the cookie stays valid for as long as the IRQ is requested.
///
/// # Examples
///
/// ```ignore
/// struct Counter(AtomicU32);
/// impl irq::Handler for Counter {
///     fn handle(&self) -> irq::IrqReturn {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         irq::IrqReturn::Handled
///     }
/// }
/// let reg = KBox::pin_init(
///     irq::Registration::new(pdev.as_ref(), irq, irq::Flags::NONE, c_str!("edu"), Counter(AtomicU32::new(0))),
///     GFP_KERNEL,
/// )?;
/// ```
#[macros::pin_data]
pub struct Registration<T: Send + Sync + 'static> {
    // Declared before `handler`, so it is dropped first: the IRQ is freed (waiting for running
    // handlers) before the handler is dropped.
    free: Devres<FreeIrq>,
    handler: T,
    irq: u32,
    #[pin]
    _pin: PhantomPinned,
}

impl<T: Send + Sync + 'static> Registration<T> {
    /// The Linux IRQ number.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// The handler.
    pub fn handler(&self) -> &T {
        &self.handler
    }

    /// Whether the IRQ is still requested (false after the device was unbound).
    pub fn is_active(&self) -> bool {
        self.free.try_access().is_some()
    }

    /// # Safety
    ///
    /// `hard`/`thread` must be this `T`'s trampolines (they cast `dev_id` to `&T`).
    unsafe fn init<'a>(
        dev: &'a Device<Bound>,
        irq: u32,
        flags: Flags,
        name: &'static CStr,
        handler: T,
        hard: bindings::irq_handler_t,
        thread: bindings::irq_handler_t,
    ) -> impl PinInit<Self, Error> + 'a {
        // `handler` is initialised first, so the cookie points at it before the IRQ is
        // requested. If `request_threaded_irq` or `Devres::new` fails, the initializer drops
        // `handler` (the only field initialised) and nothing else; a failed `Devres::new` drops
        // its `FreeIrq`, which frees the IRQ again.
        crate::try_pin_init!(&this in Self {
            handler,
            free: {
                // SAFETY: `this` points at the pinned slot being initialised; `handler` is
                // initialised above and not moved until the registration is dropped.
                let cookie = unsafe { addr_of_mut!((*this.as_ptr()).handler) }.cast::<c_void>();
                // SAFETY: `name` is 'static; the trampolines only cast `cookie` back to `&T`,
                // which stays valid until `free_irq` (type invariant, the slot is pinned).
                to_result(unsafe {
                    bindings::request_threaded_irq(
                        irq,
                        hard,
                        thread,
                        flags.0 as _,
                        name.as_char_ptr(),
                        cookie,
                    )
                })?;
                Devres::new(dev, FreeIrq { irq, cookie }, GFP_KERNEL)?
            },
            // After `free`: an initialised field's name refers to the field from here on.
            irq,
            _pin: PhantomPinned,
        }? Error)
    }
}

impl<T: Handler> Registration<T> {
    /// Requests `irq` for `dev` (which must be bound to a driver) with a hard-IRQ handler.
    pub fn new<'a>(
        dev: &'a Device<Bound>,
        irq: u32,
        flags: Flags,
        name: &'static CStr,
        handler: T,
    ) -> impl PinInit<Self, Error> + 'a {
        // SAFETY: `hard_trampoline::<T>` casts `dev_id` to `&T`.
        unsafe { Self::init(dev, irq, flags, name, handler, Some(hard_trampoline::<T>), None) }
    }
}

impl<T: ThreadedHandler> Registration<T> {
    /// Requests `irq` for `dev` with a threaded handler (`request_threaded_irq`).
    pub fn new_threaded<'a>(
        dev: &'a Device<Bound>,
        irq: u32,
        flags: Flags,
        name: &'static CStr,
        handler: T,
    ) -> impl PinInit<Self, Error> + 'a {
        // SAFETY: both trampolines cast `dev_id` to `&T`.
        unsafe {
            Self::init(
                dev,
                irq,
                flags,
                name,
                handler,
                Some(threaded_hard_trampoline::<T>),
                Some(thread_trampoline::<T>),
            )
        }
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn hard_trampoline<T: Handler>(_irq: i32, dev_id: *mut c_void) -> bindings::irqreturn_t {
    // SAFETY: `dev_id` is the cookie of a `Registration<T>`, valid while the IRQ is requested.
    let h = unsafe { &*dev_id.cast::<T>() };
    to_c(h.handle())
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn threaded_hard_trampoline<T: ThreadedHandler>(
    _irq: i32,
    dev_id: *mut c_void,
) -> bindings::irqreturn_t {
    // SAFETY: as in `hard_trampoline`.
    let h = unsafe { &*dev_id.cast::<T>() };
    match h.handle() {
        ThreadedIrqReturn::None => bindings::irqreturn_IRQ_NONE,
        ThreadedIrqReturn::Handled => bindings::irqreturn_IRQ_HANDLED,
        ThreadedIrqReturn::WakeThread => bindings::irqreturn_IRQ_WAKE_THREAD,
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn thread_trampoline<T: ThreadedHandler>(
    _irq: i32,
    dev_id: *mut c_void,
) -> bindings::irqreturn_t {
    // SAFETY: as in `hard_trampoline`.
    let h = unsafe { &*dev_id.cast::<T>() };
    to_c(h.handle_threaded())
}
