// SPDX-License-Identifier: GPL-2.0

//! Mediated devices: parent registration with types, the mdev driver, and mdev devices.
//!
//! C header: [`include/linux/mdev.h`](srctree/include/linux/mdev.h)
//!
//! - [`DriverRegistration<T>`]: an `mdev_driver` ([`Driver`] callbacks: probe, remove,
//!   get_available, show_description), shared through an [`Arc`] by the parents that use it,
//!   so it cannot be unregistered while a parent refers to it.
//! - [`Parent<T>`]: `mdev_register_parent` for a device with a list of [`TypeDesc`]s; the
//!   `mdev_type`s and their pointer array live in the registration. The types are kobjects
//!   whose release (`mdev_type_release`, which reads the type and the parent) may run after
//!   `mdev_unregister_parent` returned: an mdev whose own release is pending holds its type,
//!   and `CONFIG_DEBUG_KOBJECT_RELEASE` delays every release by seconds. So the registration
//!   gives the types a release of its own (the core's `put_device` plus a count) and dropping
//!   it waits until every type was released before it frees them (issue 11).
//! - [`Device`]: an `mdev_device`: its UUID, type, parent device and driver data.

use crate::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings, device,
    error::{code::*, from_result, to_result, Error, Result},
    init::{InPlaceInit, PinInit},
    str::CStr,
    sync::Arc,
    types::{ForeignOwnable, Opaque},
};
use crate::ffi::{c_char, c_int, c_uint};
use core::{
    fmt,
    marker::PhantomData,
    ptr::addr_of_mut,
    sync::atomic::{AtomicPtr, Ordering},
};

/// A mediated device (`struct mdev_device`).
///
/// # Invariants
///
/// Wraps a valid `mdev_device` for the lifetime of the reference (the mdev core calls the
/// driver with registered devices; the embedded `struct device` keeps it alive).
#[repr(transparent)]
pub struct Device(Opaque<bindings::mdev_device>);

impl Device {
    /// # Safety
    ///
    /// `p` must be a valid `mdev_device` for `'a`.
    unsafe fn from_raw<'a>(p: *mut bindings::mdev_device) -> &'a Device {
        // SAFETY: transparent wrapper; validity is the caller's.
        unsafe { &*p.cast() }
    }

    fn as_raw(&self) -> *mut bindings::mdev_device {
        self.0.get()
    }

    /// The mdev's UUID (the name it was created with), as the `guid_t` the mdev core parses it
    /// into: the first three fields little-endian (what `%pUl` prints back as the name).
    pub fn uuid(&self) -> [u8; 16] {
        // SAFETY: valid mdev (type invariant); the UUID is set at creation and never changes.
        unsafe { (*self.as_raw()).uuid.b }
    }

    /// The type the mdev was created from.
    pub fn mdev_type(&self) -> &Type {
        // SAFETY: `type` is set at creation; types live until the parent is unregistered,
        // which removes the mdev first.
        unsafe { Type::from_raw((*self.as_raw()).type_) }
    }

    /// The parent device (the device the mdev hangs off).
    pub fn parent_device(&self) -> &device::Device {
        self.mdev_type().parent_device()
    }
}

impl AsRef<device::Device> for Device {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: the embedded device of a valid mdev.
        unsafe { device::Device::as_ref(addr_of_mut!((*self.as_raw()).dev)) }
    }
}

/// An mdev type of a parent (`struct mdev_type`).
///
/// # Invariants
///
/// Wraps a registered `mdev_type` whose `parent` is set.
#[repr(transparent)]
pub struct Type(Opaque<bindings::mdev_type>);

impl Type {
    /// # Safety
    ///
    /// `p` must be a registered `mdev_type`, valid for `'a`.
    unsafe fn from_raw<'a>(p: *mut bindings::mdev_type) -> &'a Type {
        // SAFETY: transparent wrapper.
        unsafe { &*p.cast() }
    }

    /// The type's sysfs name (without the driver prefix).
    pub fn sysfs_name(&self) -> &CStr {
        // SAFETY: set from a `&'static CStr` by `Parent::new`.
        unsafe { CStr::from_char_ptr((*self.0.get()).sysfs_name) }
    }

    /// The index of this type in the parent's type list.
    pub fn index(&self) -> usize {
        // SAFETY: registered type: `parent` and its `types` array are valid.
        unsafe {
            let parent = (*self.0.get()).parent;
            let types = (*parent).types;
            let n = (*parent).nr_types as usize;
            (0..n).find(|&i| *types.add(i) == self.0.get()).unwrap_or(0)
        }
    }

    /// The parent device.
    pub fn parent_device(&self) -> &device::Device {
        // SAFETY: registered type: `parent->dev` is referenced while the parent is registered.
        unsafe { device::Device::as_ref((*(*self.0.get()).parent).dev) }
    }
}

/// A page-sized sysfs output buffer for [`Driver::show_description`].
pub struct SysfsBuf<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl fmt::Write for SysfsBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(self.pos + 1);
        let n = s.len().min(room);
        self.buf[self.pos..self.pos + n].copy_from_slice(&s.as_bytes()[..n]);
        self.pos += n;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// An mdev driver. A `#[vtable]` trait: the optional callbacks an implementation defines
/// (`get_available`, `show_description`) are the ones registered with the mdev core.
#[macros::vtable]
pub trait Driver: Send + Sync + 'static {
    /// Per-mdev data, returned by `probe` and given back to `remove`.
    type Data: ForeignOwnable + Send + Sync;
    /// The driver name.
    const NAME: &'static CStr;
    /// The device API shown in sysfs (e.g. `c_str!("vfio-pci")`).
    const DEVICE_API: &'static CStr;
    /// If non-zero, the mdev core counts available instances itself (shared by all types).
    const MAX_INSTANCES: u32 = 0;

    /// An mdev was created: set it up (typically allocate and register a VFIO device).
    fn probe(mdev: &Device) -> Result<Self::Data>;
    /// The mdev is being removed.
    fn remove(_mdev: &Device, _data: Self::Data) {}
    /// How many more mdevs of `ty` can be created (without it, `MAX_INSTANCES` counts).
    fn get_available(_ty: &Type) -> u32 {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }
    /// Writes the type's description.
    fn show_description(_ty: &Type, _out: &mut SysfsBuf<'_>) -> Result {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Set only by [`parent::Via`]: its parents must be registered by [`parent::Registration`].
    #[doc(hidden)]
    const DATA_PARENT: bool = false;

    /// The driver's `dev_groups` (static attributes of its mdevs): set by [`parent::Via`].
    #[doc(hidden)]
    fn dev_groups() -> *const *const bindings::attribute_group {
        core::ptr::null()
    }
}

#[path = "mdev_parent.rs"]
pub mod parent;

/// A registered mdev driver.
///
/// # Invariants
///
/// `drv` is registered from initialisation until drop.
#[macros::pin_data(PinnedDrop)]
pub struct DriverRegistration<T: Driver> {
    #[pin]
    drv: Opaque<bindings::mdev_driver>,
    _p: PhantomData<T>,
}

// SAFETY: only the mdev core (with its own locking) and `drop` touch the driver.
unsafe impl<T: Driver> Send for DriverRegistration<T> {}
// SAFETY: `&DriverRegistration` exposes nothing mutable.
unsafe impl<T: Driver> Sync for DriverRegistration<T> {}

impl<T: Driver> DriverRegistration<T> {
    /// Registers driver `T` (`mdev_register_driver`) for `module`.
    pub fn new(module: &'static crate::ThisModule) -> impl PinInit<Self, Error> {
        crate::try_pin_init!(Self {
            // A failed registration leaves nothing registered, and `drop` (which unregisters)
            // does not run for an initializer that failed.
            drv <- Opaque::try_ffi_init(move |d: *mut bindings::mdev_driver| {
                // SAFETY: `d` is valid for writes and pinned (`try_ffi_init`); all-zero is a
                // valid, unregistered `mdev_driver`; the callbacks and strings are `'static`.
                unsafe {
                    d.write(core::mem::zeroed());
                    (*d).device_api = T::DEVICE_API.as_char_ptr();
                    (*d).max_instances = T::MAX_INSTANCES;
                    (*d).probe = Some(probe_cb::<T>);
                    (*d).remove = Some(remove_cb::<T>);
                    if T::HAS_GET_AVAILABLE {
                        (*d).get_available = Some(get_available_cb::<T>);
                    }
                    if T::HAS_SHOW_DESCRIPTION {
                        (*d).show_description = Some(show_description_cb::<T>);
                    }
                    (*d).driver.name = T::NAME.as_char_ptr();
                    (*d).driver.dev_groups = T::dev_groups().cast_mut();
                    (*d).driver.owner = module.as_ptr();
                }
                // SAFETY: initialised above, and pinned until `drop` unregisters it.
                to_result(unsafe { bindings::mdev_register_driver(d) })
            }),
            _p: PhantomData,
        }? Error)
    }

    /// Registers the driver in a new [`Arc`] (what [`Parent::new`] needs).
    pub fn new_arc(module: &'static crate::ThisModule) -> Result<Arc<Self>> {
        Arc::pin_init(Self::new(module), GFP_KERNEL)
    }

    fn as_raw(&self) -> *mut bindings::mdev_driver {
        self.drv.get()
    }
}

#[macros::pinned_drop]
impl<T: Driver> PinnedDrop for DriverRegistration<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // SAFETY: registered (type invariant).
        unsafe { bindings::mdev_unregister_driver(self.drv.get()) };
    }
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn probe_cb<T: Driver>(mdev: *mut bindings::mdev_device) -> c_int {
    from_result(|| {
        // SAFETY: the mdev core probes a valid, registered mdev.
        let d = unsafe { Device::from_raw(mdev) };
        let data = T::probe(d)?;
        // SAFETY: valid device; taken back in `remove_cb`.
        unsafe { bindings::dev_set_drvdata(addr_of_mut!((*mdev).dev), data.into_foreign().cast_mut()) };
        Ok(0)
    })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn remove_cb<T: Driver>(mdev: *mut bindings::mdev_device) {
    // SAFETY: as in `probe_cb`; remove only follows a successful probe.
    let d = unsafe { Device::from_raw(mdev) };
    // SAFETY: the pointer stored by `probe_cb`, converted back exactly once.
    let data = unsafe { T::Data::from_foreign(bindings::dev_get_drvdata(addr_of_mut!((*mdev).dev))) };
    T::remove(d, data);
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn get_available_cb<T: Driver>(ty: *mut bindings::mdev_type) -> c_uint {
    // SAFETY: the core passes a registered type.
    T::get_available(unsafe { Type::from_raw(ty) })
}

/// # Safety
///
/// Called only by the C side, with the arguments its callback contract guarantees.
unsafe extern "C" fn show_description_cb<T: Driver>(ty: *mut bindings::mdev_type, buf: *mut c_char) -> isize {
    // SAFETY: sysfs show buffers are PAGE_SIZE bytes.
    let slice = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), crate::page::PAGE_SIZE) };
    let mut out = SysfsBuf { buf: slice, pos: 0 };
    // SAFETY: the core passes a registered type.
    match T::show_description(unsafe { Type::from_raw(ty) }, &mut out) {
        Ok(()) => out.pos as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Describes one mdev type of a parent.
#[derive(Clone, Copy)]
pub struct TypeDesc {
    /// Name in sysfs (`<driver>-<sysfs_name>` under `mdev_supported_types`).
    pub sysfs_name: &'static CStr,
    /// Human-readable name (the type's `name` attribute).
    pub pretty_name: &'static CStr,
}

/// The type kobjects of a parent whose release has not run yet.
#[macros::pin_data]
struct TypeReleases {
    #[pin]
    pending: crate::sync::SpinLock<usize>,
    #[pin]
    cv: crate::sync::CondVar,
}

/// An `mdev_type` with a pointer to its parent registration's release count.
///
/// # Invariants
///
/// `ty` is the first field (`repr(C)`), so the `mdev_type` pointer is the object's pointer;
/// `releases` points to the count of the [`Parent`] that owns this object, which outlives it.
#[repr(C)]
struct TypeObj {
    ty: Opaque<bindings::mdev_type>,
    releases: *const TypeReleases,
}

/// The type kobjects' release: what the core's `mdev_type_release` does, then one release
/// less for the owning [`Parent`] to wait for.
///
/// # Safety
///
/// Called only by the kobject core, once, for the `kobj` of an `mdev_type` embedded in a
/// [`TypeObj`] whose `ktype` [`Parent::new`] replaced.
unsafe extern "C" fn type_release(kobj: *mut bindings::kobject) {
    // SAFETY: `kobj` is embedded in an `mdev_type`, the first field of a `TypeObj` (invariant).
    let obj = unsafe { crate::container_of!(kobj, bindings::mdev_type, kobj) }
        .cast_mut()
        .cast::<TypeObj>();
    // SAFETY: the type was registered, so `parent` and its `dev` are set; this drops the
    // reference `mdev_type_add` took (as `mdev_type_release` does). The `Parent` owning `obj`
    // waits for this release before it frees `obj` and its count (invariant).
    let releases = unsafe {
        bindings::put_device((*(*(*obj).ty.get()).parent).dev);
        &*(*obj).releases
    };
    let mut pending = releases.pending.lock();
    *pending -= 1;
    releases.cv.notify_all();
    // `obj` may be freed as soon as the lock is dropped (a spinlock: no access after release).
}

/// The core's `mdev_type_ktype` with [`type_release`] as the release (built once, from the
/// first registered type, and never freed).
static TYPE_KTYPE: AtomicPtr<bindings::kobj_type> = AtomicPtr::new(core::ptr::null_mut());

fn type_ktype(core_ktype: *const bindings::kobj_type) -> Result<*mut bindings::kobj_type> {
    let p = TYPE_KTYPE.load(Ordering::Acquire);
    if !p.is_null() {
        return Ok(p);
    }
    // SAFETY: the core's ktype of a registered type: a valid, immutable static.
    let mut k = unsafe { *core_ktype };
    k.release = Some(type_release);
    let mine = KBox::into_raw(KBox::new(k, GFP_KERNEL)?);
    match TYPE_KTYPE.compare_exchange(core::ptr::null_mut(), mine, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(mine),
        Err(theirs) => {
            // SAFETY: ours, never published.
            drop(unsafe { KBox::from_raw(mine) });
            Ok(theirs)
        }
    }
}

/// An mdev parent registration (`mdev_register_parent`); unregistered on drop, which removes
/// every mdev of the parent first and then waits until every type kobject was released.
///
/// # Invariants
///
/// `parent` is registered with `types`/`type_ptrs` and `driver` from initialisation until drop;
/// `types` and `type_ptrs` are not touched until after `mdev_unregister_parent`; each type's
/// `ktype` is `TYPE_KTYPE` and `releases` counts the types not released yet.
#[macros::pin_data(PinnedDrop)]
pub struct Parent<T: Driver> {
    #[pin]
    parent: Opaque<bindings::mdev_parent>,
    types: KVec<KBox<TypeObj>>,
    type_ptrs: KVec<*mut bindings::mdev_type>,
    releases: Arc<TypeReleases>,
    driver: Arc<DriverRegistration<T>>,
}

// SAFETY: the mdev core synchronises parent state; the raw pointers point into `types`.
unsafe impl<T: Driver> Send for Parent<T> {}
// SAFETY: `&Parent` exposes nothing mutable.
unsafe impl<T: Driver> Sync for Parent<T> {}

impl<T: Driver> Parent<T> {
    /// Registers `dev` as an mdev parent with `types`, served by `driver`. `dev` must be bound
    /// to the caller's driver and outlive the registration (drop it in `remove`).
    pub fn new<'a>(
        dev: &'a device::Device,
        driver: &Arc<DriverRegistration<T>>,
        types: &'a [TypeDesc],
    ) -> impl PinInit<Self, Error> + 'a {
        // A `parent::Via` driver finds its data around the parent: only its registration may
        // register such parents (otherwise the callbacks would read data that is not there).
        let types = if T::DATA_PARENT { &[] } else { types };
        Self::new_unchecked(dev, driver, types)
    }

    /// [`Parent::new`] without the check (for [`parent::Registration`]).
    ///
    /// The fields the registration points into (the types, their pointer array, the release
    /// count and the driver) are initialised first; if the registration fails, the initializer
    /// drops them and `drop` (which unregisters) does not run.
    fn new_unchecked<'a>(
        dev: &'a device::Device,
        driver: &Arc<DriverRegistration<T>>,
        descs: &'a [TypeDesc],
    ) -> impl PinInit<Self, Error> + 'a {
        let driver = driver.clone();
        crate::try_pin_init!(Self {
            releases: Arc::pin_init(
                crate::pin_init!(TypeReleases {
                    pending <- crate::new_spinlock!(0, "mdev::Parent::releases"),
                    cv <- crate::new_condvar!("mdev::Parent::releases"),
                }),
                GFP_KERNEL,
            )?,
            types: new_type_objs(descs, releases)?,
            type_ptrs: type_ptr_array(types)?,
            driver,
            parent <- Opaque::try_ffi_init(|p: *mut bindings::mdev_parent| {
                // SAFETY: `p` is valid for writes and pinned (`try_ffi_init`); all-zero is a
                // valid, unregistered `mdev_parent`. `dev` is a bound device; the driver is
                // registered; the types and their array are fields of the registration, which
                // keeps them until after `mdev_unregister_parent` (type invariant).
                to_result(unsafe {
                    p.write(core::mem::zeroed());
                    bindings::mdev_register_parent(
                        p,
                        dev.as_raw(),
                        driver.as_raw(),
                        type_ptrs.as_mut_ptr(),
                        type_ptrs.len() as c_uint,
                    )
                })?;
                // SAFETY: the types were just registered, and stay so until we unregister.
                if let Err(e) = unsafe { install_type_release(type_ptrs, releases) } {
                    // SAFETY: registered above; the types get back the core's release.
                    unsafe { bindings::mdev_unregister_parent(p) };
                    return Err(e);
                }
                Ok(())
            }),
        }? Error)
    }

    /// Number of types.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }
}

/// One unregistered `mdev_type` per description, counted by `releases` once registered.
fn new_type_objs(descs: &[TypeDesc], releases: &TypeReleases) -> Result<KVec<KBox<TypeObj>>> {
    if descs.is_empty() {
        return Err(EINVAL);
    }
    let mut objs = KVec::with_capacity(descs.len(), GFP_KERNEL)?;
    for t in descs {
        let b = KBox::new(TypeObj { ty: Opaque::uninit(), releases }, GFP_KERNEL)?;
        // SAFETY: `b` is ours; all-zero is a valid, unregistered `mdev_type`; then set the two
        // fields the driver owns.
        unsafe {
            b.ty.get().write(core::mem::zeroed());
            (*b.ty.get()).sysfs_name = t.sysfs_name.as_char_ptr();
            (*b.ty.get()).pretty_name = t.pretty_name.as_char_ptr();
        }
        objs.push(b, GFP_KERNEL)?;
    }
    Ok(objs)
}

/// The `mdev_type` pointer array `mdev_register_parent` takes.
fn type_ptr_array(objs: &KVec<KBox<TypeObj>>) -> Result<KVec<*mut bindings::mdev_type>> {
    let mut ptrs = KVec::with_capacity(objs.len(), GFP_KERNEL)?;
    for b in objs.iter() {
        ptrs.push(b.ty.get(), GFP_KERNEL)?;
    }
    Ok(ptrs)
}

/// Gives the registered `types` our release (see `TYPE_KTYPE`) and counts them in `releases`.
///
/// The core holds the types until `mdev_unregister_parent`, so nothing can release them before
/// this runs. (A failed registration released the types it had added with the core's release;
/// that path keeps the old limit: with `CONFIG_DEBUG_KOBJECT_RELEASE` their release may come
/// late.)
///
/// # Safety
///
/// Every pointer in `types` is an `mdev_type` registered with a parent that stays registered
/// for the call, and is the `ty` of a [`TypeObj`] counted by `releases`.
unsafe fn install_type_release(types: &[*mut bindings::mdev_type], releases: &TypeReleases) -> Result {
    let first = *types.first().ok_or(EINVAL)?;
    // SAFETY: a registered type (caller): its kobject's ktype is the core's.
    let kt = type_ktype(unsafe { (*first).kobj.ktype })?;
    *releases.pending.lock() = types.len();
    for &t in types {
        // SAFETY: a registered type (caller). A pointer-sized store racing only with readers of
        // the same operations (the copy has the core's sysfs ops and groups).
        unsafe { core::ptr::write_volatile(addr_of_mut!((*t).kobj.ktype), kt) };
    }
    Ok(())
}

#[macros::pinned_drop]
impl<T: Driver> PinnedDrop for Parent<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // SAFETY: registered (type invariant); the types are freed after this returns.
        unsafe { bindings::mdev_unregister_parent(self.parent.get()) };
        // The type kobjects are released once no mdev holds them (an mdev's release may be
        // pending still, and `CONFIG_DEBUG_KOBJECT_RELEASE` delays each release by 1-4 s):
        // their release reads the types and this parent, so wait for every one of them.
        let mut pending = self.releases.pending.lock();
        while *pending > 0 {
            self.releases.cv.wait(&mut pending);
        }
    }
}
