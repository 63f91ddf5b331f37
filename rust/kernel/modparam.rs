// SPDX-License-Identifier: GPL-2.0

//! Module parameters of type `bool` (6.12's kernel crate has none): `insmod m.ko NAME=1` and,
//! with a non-zero permission, `/sys/module/<m>/parameters/NAME`.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)
//!
//! [`module_param_bool!`](crate::module_param_bool) emits what C's `module_param(name, bool, perm)` emits: a
//! `struct kernel_param` in the module's `__param` section (the module loader parses the
//! arguments into it, `param_ops_bool`, before `init`) pointing at a [`BoolParam`].

use crate::bindings;
use core::sync::atomic::{AtomicBool, Ordering};

/// The value of a `bool` module parameter.
///
/// # Invariants
///
/// The kernel writes it only through `param_ops_bool` (a `bool` store: `AtomicBool` has the
/// layout of `bool`), at load time or from a sysfs write; readers use [`BoolParam::get`].
#[repr(transparent)]
pub struct BoolParam(AtomicBool);

impl BoolParam {
    /// A parameter with the default `value`.
    pub const fn new(value: bool) -> Self {
        Self(AtomicBool::new(value))
    }

    /// The current value (the parameter may change under the caller through sysfs).
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A `struct kernel_param` in a `static`.
///
/// # Invariants
///
/// Built only by [`module_param_bool!`](crate::module_param_bool): every pointer in it is `'static` (a name literal, the
/// kernel's `param_ops_bool`, a `static` [`BoolParam`], the module's own `struct module`).
#[repr(transparent)]
pub struct KernelParam(pub bindings::kernel_param);

// SAFETY: the pointers are to `'static` data (type invariant); the kernel serialises its own
// writes through them (`kernel_param_lock`) and the value is an atomic.
unsafe impl Sync for KernelParam {}

/// Declares a `bool` module parameter: `module_param_bool!(STATIC, "name", perm)` defines
/// `static STATIC: BoolParam` (default false) and its `__param` entry. `perm` is the sysfs
/// mode (0 for none, 0o644 to let root change it at run time).
#[macro_export]
macro_rules! module_param_bool {
    ($value:ident, $name:literal, $perm:expr) => {
        static $value: $crate::modparam::BoolParam = $crate::modparam::BoolParam::new(false);
        const _: () = {
            #[cfg(MODULE)]
            extern "C" {
                static __this_module: $crate::types::Opaque<$crate::bindings::module>;
            }
            #[link_section = "__param"]
            #[used]
            static PARAM: $crate::modparam::KernelParam =
                $crate::modparam::KernelParam($crate::bindings::kernel_param {
                    name: $crate::c_str!($name).as_char_ptr(),
                    #[cfg(MODULE)]
                    // SAFETY: only the address of the module's `struct module` is taken.
                    mod_: unsafe { (&raw const __this_module).cast_mut().cast() },
                    #[cfg(not(MODULE))]
                    mod_: core::ptr::null_mut(),
                    // SAFETY: only the address of the kernel's `param_ops_bool` is taken.
                    ops: unsafe { &raw const $crate::bindings::param_ops_bool },
                    perm: $perm,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: $crate::bindings::kernel_param__bindgen_ty_1 {
                        arg: (&raw const $value).cast_mut().cast(),
                    },
                });
        };
    };
}
