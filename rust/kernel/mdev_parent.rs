// SPDX-License-Identifier: GPL-2.0

//! An mdev parent that owns its driver's data: what a driver otherwise rebuilds with a global
//! registry of parents and pointer comparisons.
//!
//! A driver implements [`ParentDriver`] and registers a parent with [`Registration::new`]
//! (typically from its PCI probe, see [`module_mdev_pci_driver!`](crate::module_mdev_pci_driver)).
//! The registration owns the per-parent data; the per-type data is a `const` table
//! ([`ParentDriver::TYPES`]); each mdev's data is what [`ParentDriver::probe`] returned. Every
//! callback gets the pieces it needs as references:
//!
//! | callback | gets |
//! |---|---|
//! | [`ParentDriver::probe`] | parent data, the mdev, its type's data |
//! | [`ParentDriver::remove`] | parent data, the mdev, the mdev's data (by value) |
//! | [`ParentDriver::available`], [`ParentDriver::description`] | parent data, type data |
//! | [`MdevAttribute::show`] (static attributes of each mdev) | parent data, the mdev, the mdev's data |
//!
//! How the references are found: an `mdev_type` points to its `mdev_parent`, which is embedded
//! in this module's [`Registration`], so the parent data is a `container_of` away; the driver
//! core keeps an mdev's driver data for the bound driver. The registration unregisters the
//! parent (removing every mdev) before its data is dropped, so no callback outlives the data.
//!
//! Upstream has no mdev abstraction (v6.16); the shape follows `kernel::driver` (a trait with
//! associated data types, an adapter implementing the C callbacks) and the static attribute
//! groups follow `driver.dev_groups` as C drivers use them (added after probe, removed before
//! remove, so `show` never races the uevent or sees a half-built mdev).

use super::{Device, Driver, DriverRegistration, Parent, SysfsBuf, Type, TypeDesc};
use crate::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings, device,
    error::{code::*, Error, Result},
    init::{InPlaceInit, PinInit},
    str::CStr,
    sync::{Arc, ArcBorrow},
    sysfs,
};
use core::{
    marker::PhantomData,
    pin::Pin,
    ptr::addr_of_mut,
    sync::atomic::{AtomicPtr, Ordering},
};

/// One mdev type: its sysfs names and the driver's data for it.
pub struct TypeInfo<D> {
    /// Name in sysfs and the human-readable name.
    pub desc: TypeDesc,
    /// The driver's data for the type (e.g. how much of the parent an instance takes).
    pub data: D,
}

impl<D> TypeInfo<D> {
    /// A type named `sysfs_name` in sysfs (after the driver's prefix) and `pretty_name` for
    /// people, with the driver's `data`.
    pub const fn new(sysfs_name: &'static CStr, pretty_name: &'static CStr, data: D) -> Self {
        Self { desc: TypeDesc { sysfs_name, pretty_name }, data }
    }
}

/// An mdev driver whose parents own data (see the [module documentation](self)). A
/// `#[vtable]` trait: `description` is shown only by drivers that define it.
#[macros::vtable]
pub trait ParentDriver: Send + Sync + Sized + 'static {
    /// Per-parent data, owned by the [`Registration`].
    type ParentData: Send + Sync;
    /// Per-type data, in [`ParentDriver::TYPES`].
    type TypeData: Send + Sync + 'static;
    /// Per-mdev data, returned by `probe`.
    type Data: Send + Sync;
    /// The mdev driver's name.
    const NAME: &'static CStr;
    /// The device API shown in sysfs (e.g. `c_str!("vfio-pci")`).
    const DEVICE_API: &'static CStr;
    /// The types every parent of this driver offers (at least one).
    const TYPES: &'static [TypeInfo<Self::TypeData>];
    /// Static attributes of every mdev (see [`mdev_attribute_group!`](crate::mdev_attribute_group)).
    const ATTRIBUTES: Option<&'static AttributeGroup<Self>> = None;

    /// An mdev of `ty` was created on `parent`: set it up (typically register a VFIO device).
    fn probe(parent: &Self::ParentData, mdev: &Device, ty: &Self::TypeData) -> Result<Self::Data>;
    /// The mdev is being removed; `data` drops when this returns.
    fn remove(_parent: &Self::ParentData, _mdev: &Device, _data: Self::Data) {}
    /// How many more mdevs of `ty` the parent can take.
    fn available(parent: &Self::ParentData, ty: &Self::TypeData) -> u32;
    /// Writes the type's description.
    fn description(_parent: &Self::ParentData, _ty: &Self::TypeData, _out: &mut SysfsBuf<'_>) -> Result {
        crate::build_error(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The [`Driver`] of a [`ParentDriver`]: finds the parent, type and mdev data for each C
/// callback. Only [`Registration`] registers parents with it (the plain [`Parent::new`]
/// refuses it), which is what makes the lookups sound.
pub struct Via<T>(PhantomData<T>);

/// The registered mdev driver of a [`ParentDriver`].
pub type DriverReg<T> = DriverRegistration<Via<T>>;

/// The data of the [`Registration`] whose parent `ty` belongs to.
///
/// Only the `data` field is referenced (through a raw projection, never a `&Registration`):
/// `remove` runs while the registration's `inner` field is being dropped.
fn parent_data<T: ParentDriver>(ty: &Type) -> &T::ParentData {
    // SAFETY: the driver of `ty`'s parent is `Via<T>` (the callers are its callbacks), and
    // parents with that driver are only registered by `Registration<T>` (`Parent::new` refuses
    // `Via`), whose `inner.parent` is the `mdev_parent` the type points to. The registration's
    // `data` is initialised before the parent is registered and dropped after it is
    // unregistered, which is after every type and mdev callback (type invariant).
    unsafe {
        let mp = (*ty.0.get()).parent;
        let p = crate::container_of!(mp, Parent<Via<T>>, parent);
        let reg = crate::container_of!(p, Registration<T>, inner);
        &*core::ptr::addr_of!((*reg).data)
    }
}

fn type_data<T: ParentDriver>(ty: &Type) -> Result<&'static T::TypeData> {
    T::TYPES.get(ty.index()).map(|t| &t.data).ok_or(EINVAL)
}

/// The data `probe` returned for `mdev`, an mdev bound to `Via<T>`.
///
/// # Safety
///
/// `mdev` must be bound to the mdev driver of `Via<T>` (between its probe and remove).
unsafe fn mdev_data<T: ParentDriver>(mdev: &Device) -> &T::Data {
    // SAFETY: `probe_cb` stored `KBox::<T::Data>::into_foreign`, a pointer to the data, and
    // `remove_cb` takes it back only after the caller's window (the caller's contract).
    unsafe { &*bindings::dev_get_drvdata(addr_of_mut!((*mdev.as_raw()).dev)).cast::<T::Data>() }
}

#[macros::vtable]
impl<T: ParentDriver> Driver for Via<T> {
    type Data = KBox<T::Data>;
    const NAME: &'static CStr = T::NAME;
    const DEVICE_API: &'static CStr = T::DEVICE_API;
    // Registered only if the driver has it (`available` is required).
    const HAS_SHOW_DESCRIPTION: bool = T::HAS_DESCRIPTION;
    #[doc(hidden)]
    const DATA_PARENT: bool = true;

    fn probe(mdev: &Device) -> Result<KBox<T::Data>> {
        let ty = mdev.mdev_type();
        let data = T::probe(parent_data::<T>(ty), mdev, type_data::<T>(ty)?)?;
        KBox::new(data, GFP_KERNEL).map_err(Error::from)
    }

    fn remove(mdev: &Device, data: KBox<T::Data>) {
        let parent = parent_data::<T>(mdev.mdev_type());
        T::remove(parent, mdev, KBox::into_inner(data));
    }

    fn get_available(ty: &Type) -> u32 {
        type_data::<T>(ty).map_or(0, |d| T::available(parent_data::<T>(ty), d))
    }

    fn show_description(ty: &Type, out: &mut SysfsBuf<'_>) -> Result {
        if !T::HAS_DESCRIPTION {
            // Not registered then (`HAS_SHOW_DESCRIPTION`); keeps the default out of the build.
            return Ok(());
        }
        T::description(parent_data::<T>(ty), type_data::<T>(ty)?, out)
    }

    #[doc(hidden)]
    fn dev_groups() -> *const *const bindings::attribute_group {
        T::ATTRIBUTES.map_or(core::ptr::null(), |g| g.groups.as_ptr())
    }
}

/// An mdev parent with the driver's per-parent data; unregistering it (on drop) removes every
/// mdev first, then the data drops.
///
/// # Invariants
///
/// `inner` is registered with the mdev driver of `Via<T>` until drop; `data` is initialised
/// before and dropped after (field order) that registration.
#[macros::pin_data]
pub struct Registration<T: ParentDriver> {
    #[pin]
    inner: Parent<Via<T>>,
    #[pin]
    data: T::ParentData,
}

impl<T: ParentDriver> Registration<T> {
    /// Initialises the parent data, then registers `dev` (bound to the caller's driver, which
    /// drops the result in its remove at the latest) as an mdev parent with [`ParentDriver::TYPES`].
    pub fn new(
        dev: &device::Device,
        driver: &Arc<DriverReg<T>>,
        data: impl PinInit<T::ParentData, Error>,
    ) -> Result<Pin<KBox<Self>>> {
        let mut descs = KVec::with_capacity(T::TYPES.len(), GFP_KERNEL)?;
        for t in T::TYPES {
            descs.push(t.desc, GFP_KERNEL)?;
        }
        KBox::pin_init(
            crate::try_pin_init!(Self {
                // First: callbacks may run as soon as the parent is registered.
                data <- data,
                inner <- Parent::new_unchecked(dev, driver, &descs),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// The per-parent data.
    pub fn data(&self) -> &T::ParentData {
        &self.data
    }
}

/// The callbacks of a static mdev attribute of driver `T`.
pub trait MdevAttribute<T: ParentDriver>: 'static {
    /// Writes the attribute's value for `mdev`.
    fn show(parent: &T::ParentData, mdev: &Device, data: &T::Data, out: &mut sysfs::Buffer<'_>) -> Result;
}

/// A static, read-only attribute of the mdevs of driver `T`. Only usable in an
/// [`AttributeGroup<T>`], which only `T`'s mdevs get.
#[repr(transparent)]
pub struct Attribute<T: ParentDriver>(bindings::device_attribute, PhantomData<T>);

// SAFETY: never written after construction (sysfs only reads attributes).
unsafe impl<T: ParentDriver> Sync for Attribute<T> {}

impl<T: ParentDriver> Attribute<T> {
    /// An attribute `name` (mode 0444) whose `show` is `A`'s.
    pub const fn new<A: MdevAttribute<T>>(name: &'static CStr) -> Self {
        // SAFETY: all-zero is a valid `device_attribute`.
        let mut a: bindings::device_attribute = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
        a.attr.name = name.as_char_ptr();
        a.attr.mode = 0o444;
        a.show = Some(show_cb::<T, A>);
        Self(a, PhantomData)
    }
}

/// # Safety
///
/// Called only by sysfs for an [`Attribute<T>`], which only the mdevs bound to `Via<T>` carry
/// (the driver core adds `dev_groups` after probe and removes them, waiting for running
/// callbacks, before remove), with a page-sized buffer.
unsafe extern "C" fn show_cb<T: ParentDriver, A: MdevAttribute<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut crate::ffi::c_char,
) -> isize {
    // SAFETY: `dev` is embedded in a bound mdev of `Via<T>` (the contract above).
    let mdev = unsafe { Device::from_raw(crate::container_of!(dev, bindings::mdev_device, dev).cast_mut()) };
    // SAFETY: as above; sysfs gives a PAGE_SIZE buffer.
    let (data, mut out) = unsafe { (mdev_data::<T>(mdev), sysfs::Buffer::from_raw(buf.cast())) };
    let parent = parent_data::<T>(mdev.mdev_type());
    match A::show(parent, mdev, data, &mut out) {
        Ok(()) => out.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Most attributes in one [`AttributeGroup`].
pub const MAX_ATTRIBUTES: usize = 8;

/// The static attributes of the mdevs of driver `T` (`driver.dev_groups`); built by
/// [`mdev_attribute_group!`](crate::mdev_attribute_group).
///
/// # Invariants
///
/// `group.attrs` points to `attrs` (null-terminated), `groups` to `group` then null; the
/// group lives in a `static`, so the pointers stay valid.
pub struct AttributeGroup<T: ParentDriver> {
    attrs: [*mut bindings::attribute; MAX_ATTRIBUTES + 1],
    group: bindings::attribute_group,
    groups: [*const bindings::attribute_group; 2],
    _p: PhantomData<T>,
}

// SAFETY: never written after construction (sysfs only reads groups).
unsafe impl<T: ParentDriver> Sync for AttributeGroup<T> {}

impl<T: ParentDriver> AttributeGroup<T> {
    /// The group `this` (the static being defined) of `attrs`; at most [`MAX_ATTRIBUTES`]
    /// (more fail the build).
    pub const fn new(this: &'static Self, attrs: &'static [Attribute<T>]) -> Self {
        assert!(attrs.len() <= MAX_ATTRIBUTES, "too many mdev attributes");
        let mut ptrs = [core::ptr::null_mut(); MAX_ATTRIBUTES + 1];
        let mut i = 0;
        while i < attrs.len() {
            // `attr` is the first field of a `device_attribute`; sysfs never writes it.
            ptrs[i] = core::ptr::addr_of!(attrs[i].0.attr).cast_mut();
            i += 1;
        }
        // SAFETY: all-zero is a valid `attribute_group` (no name, no callbacks).
        let mut group: bindings::attribute_group = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
        // Addresses inside the static being initialised, computed without reading it.
        let base = core::ptr::from_ref(this).cast::<u8>();
        group.attrs = base
            .wrapping_add(core::mem::offset_of!(Self, attrs))
            .cast::<*mut bindings::attribute>()
            .cast_mut();
        Self {
            attrs: ptrs,
            group,
            groups: [
                base.wrapping_add(core::mem::offset_of!(Self, group)).cast::<bindings::attribute_group>(),
                core::ptr::null(),
            ],
            _p: PhantomData,
        }
    }
}

/// Defines a static [`AttributeGroup`] of mdev attributes for a [`ParentDriver`].
///
/// # Examples
///
/// ```ignore
/// struct Slot;
/// impl MdevAttribute<MyDriver> for Slot {
///     fn show(_p: &Shared, _m: &mdev::Device, d: &MyMdev, out: &mut sysfs::Buffer<'_>) -> Result {
///         writeln!(out, "{}", d.slot).map_err(|_| EINVAL)
///     }
/// }
/// kernel::mdev_attribute_group!(ATTRS, MyDriver, [("slot", Slot)]);
/// // in `impl ParentDriver for MyDriver`: const ATTRIBUTES: ... = Some(&ATTRS);
/// ```
#[macro_export]
macro_rules! mdev_attribute_group {
    ($name:ident, $drv:ty, [$(($file:literal, $ops:ty)),+ $(,)?]) => {
        static $name: $crate::mdev::parent::AttributeGroup<$drv> = {
            static __MDEV_ATTRIBUTES: [$crate::mdev::parent::Attribute<$drv>; [$($file),+].len()] =
                [$($crate::mdev::parent::Attribute::<$drv>::new::<$ops>($crate::c_str!($file))),+];
            $crate::mdev::parent::AttributeGroup::new(&$name, &__MDEV_ATTRIBUTES)
        };
    };
}

/// A reference a module holds while its PCI driver is registered, for that driver's probes:
/// the module's mdev driver registration ([`ModuleDriver`]) and the module's own data
/// ([`ModuleData`]). Used by [`module_mdev_pci_driver!`](crate::module_mdev_pci_driver), which
/// sets it before registering the PCI driver and takes it after unregistering it.
///
/// # Invariants
///
/// `p` is null or from `Arc::into_raw`, owning one reference.
pub struct ModuleSlot<D: Send + Sync> {
    p: AtomicPtr<D>,
}

/// The mdev driver registration of a module, set while its PCI driver is registered (what a
/// PCI probe needs to register a parent).
pub type ModuleDriver<T> = ModuleSlot<DriverReg<T>>;

impl<D: Send + Sync> ModuleSlot<D> {
    /// An empty slot.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self { p: AtomicPtr::new(core::ptr::null_mut()) }
    }

    /// Stores `d`.
    ///
    /// # Safety
    ///
    /// No other `set` or `take` may run concurrently, and the slot must be empty.
    #[doc(hidden)]
    pub unsafe fn set(&self, d: Arc<D>) {
        // INVARIANT: one reference moves into the slot.
        self.p.store(Arc::into_raw(d).cast_mut(), Ordering::Release);
    }

    /// Takes the reference back.
    ///
    /// # Safety
    ///
    /// No [`ModuleSlot::get`] may run concurrently or later (the module unregistered the PCI
    /// driver whose probe calls it).
    #[doc(hidden)]
    pub unsafe fn take(&self) -> Option<Arc<D>> {
        let p = self.p.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: from `Arc::into_raw` (type invariant), taken out of the slot once.
        (!p.is_null()).then(|| unsafe { Arc::from_raw(p) })
    }

    /// A reference to what the slot holds; `ENODEV` outside the module's lifetime.
    pub fn get(&self) -> Result<Arc<D>> {
        let p = self.p.load(Ordering::Acquire);
        if p.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: the slot's reference keeps it alive: `take` does not run concurrently (its
        // contract).
        Ok(unsafe { ArcBorrow::from_raw(p) }.into())
    }
}

/// What a module declared with [`module_mdev_pci_driver!`](crate::module_mdev_pci_driver) owns
/// besides its drivers (its `data:`), e.g. a debugfs directory its parents put their files in:
/// made before the drivers are registered, dropped after they are unregistered (every parent
/// and mdev gone). Parents reach it with [`ModuleMdev::module_data`]. `()` when there is none.
pub trait ModuleData: Send + Sync + Sized + 'static {
    /// Makes the data at module load.
    fn new(module: &'static crate::ThisModule) -> Result<Self>;
}

impl ModuleData for () {
    fn new(_module: &'static crate::ThisModule) -> Result<Self> {
        Ok(())
    }
}

/// What [`module_mdev_pci_driver!`](crate::module_mdev_pci_driver) declares for
/// [`PciParent`]: the module's registered mdev driver and the PCI IDs of its parents.
#[doc(hidden)]
#[cfg(CONFIG_PCI)]
pub trait ModuleMdev: ParentDriver {
    /// The module's own data (its `data:`, else `()`).
    type ModuleData: ModuleData;
    /// The PCI devices the driver is the mdev parent of.
    const ID_TABLE: crate::pci::IdTable<()>;
    /// The registration; `ENODEV` outside the module's lifetime.
    fn module_driver() -> Result<Arc<DriverReg<Self>>>;
    /// The module's data; `ENODEV` outside the module's lifetime (never in a PCI probe or an
    /// mdev callback).
    fn module_data() -> Result<Arc<Self::ModuleData>>;
}

/// An mdev driver whose parents are PCI devices. With
/// [`module_mdev_pci_driver!`](crate::module_mdev_pci_driver) the module's PCI driver is
/// [`PciParent<Self>`]: it binds the devices of the module's `pci_ids`, makes each one's
/// parent data with [`PciParentDriver::parent_data`] and registers the device as an mdev
/// parent, unregistered (every mdev removed first, then the data dropped) at unbind.
#[cfg(CONFIG_PCI)]
pub trait PciParentDriver: ParentDriver {
    /// Sets up a bound device (enable it, map its BARs, ...); the result is the parent's data.
    fn parent_data(pdev: &crate::pci::Device<crate::device::Core>) -> Result<Self::ParentData>;
}

/// The PCI driver of a [`PciParentDriver`]: owns the parent registration of each bound device.
#[cfg(CONFIG_PCI)]
pub struct PciParent<T: PciParentDriver> {
    _parent: Pin<KBox<Registration<T>>>,
}

#[cfg(CONFIG_PCI)]
impl<T: PciParentDriver + ModuleMdev> crate::pci::Driver for PciParent<T> {
    type IdInfo = ();
    const ID_TABLE: crate::pci::IdTable<()> = <T as ModuleMdev>::ID_TABLE;

    fn probe(pdev: &crate::pci::Device<crate::device::Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        let data = T::parent_data(pdev)?;
        let parent = Registration::new(pdev.as_ref(), &T::module_driver()?, data)?;
        Ok(KBox::pin(Self { _parent: parent }, GFP_KERNEL)?)
    }
}

/// Declares a module `name` that registers the mdev driver `mdev` (a [`PciParentDriver`]) and
/// its PCI driver [`PciParent`] (named `driver`, the prefix of the mdev types' sysfs names,
/// binding the `(vendor, device)` IDs of `pci_ids`) together: the mdev driver first (the PCI probe registers parents with it), and on unload the
/// PCI driver first (removing every parent and mdev), then the mdev driver. With `data: D` (a
/// [`ModuleData`]), the module also owns a `D`, made first and dropped last, which parents
/// reach with [`ModuleMdev::module_data`].
///
/// # Examples
///
/// ```ignore
/// kernel::module_mdev_pci_driver! {
///     mdev: EduMdev, driver: "edu", pci_ids: [(0x1234, 0x11e8)],
///     name: "edu_mdev_min", author: "...", description: "...", license: "GPL",
/// }
/// ```
#[macro_export]
macro_rules! module_mdev_pci_driver {
    (mdev: $mdev:ty, $(data: $data:ty,)? driver: $driver:tt, pci_ids: [$(($vendor:expr, $device:expr)),+ $(,)?],
     name: $name:tt, author: $author:tt, description: $desc:tt, license: $license:tt $(,)?) => {
        type __MdevModuleData = $crate::__mdev_module_data!($($data)?);

        static __MDEV_DRIVER: $crate::mdev::parent::ModuleDriver<$mdev> =
            $crate::mdev::parent::ModuleDriver::new();
        static __MDEV_DATA: $crate::mdev::parent::ModuleSlot<__MdevModuleData> =
            $crate::mdev::parent::ModuleSlot::new();

        $crate::pci_device_table!(
            __MDEV_PCI_IDS,
            (),
            [$(($crate::pci::DeviceId::from_id($vendor, $device), ())),+]
        );

        impl $crate::mdev::parent::ModuleMdev for $mdev {
            type ModuleData = __MdevModuleData;

            fn module_data() -> $crate::error::Result<$crate::sync::Arc<__MdevModuleData>> {
                __MDEV_DATA.get()
            }

            const ID_TABLE: $crate::pci::IdTable<()> = __MDEV_PCI_IDS.table();

            fn module_driver() -> $crate::error::Result<$crate::sync::Arc<$crate::mdev::parent::DriverReg<$mdev>>> {
                __MDEV_DRIVER.get()
            }
        }

        type __MdevPci = $crate::mdev::parent::PciParent<$mdev>;

        struct __MdevPciModule {
            pci: ::core::option::Option<::core::pin::Pin<$crate::alloc::KBox<$crate::pci::Registration<__MdevPci>>>>,
        }

        impl $crate::Module for __MdevPciModule {
            fn init(module: &'static $crate::ThisModule) -> $crate::error::Result<Self> {
                let data = <__MdevModuleData as $crate::mdev::parent::ModuleData>::new(module)?;
                let data = $crate::sync::Arc::new(data, $crate::alloc::flags::GFP_KERNEL)?;
                let drv = $crate::mdev::DriverRegistration::new_arc(module)?;
                // SAFETY: module init runs once, before anything else uses the slots.
                unsafe {
                    __MDEV_DATA.set(data);
                    __MDEV_DRIVER.set(drv);
                }
                match $crate::alloc::KBox::pin_init(
                    $crate::pci::Registration::<__MdevPci>::new($crate::c_str!($driver), module),
                    $crate::alloc::flags::GFP_KERNEL,
                ) {
                    Ok(pci) => Ok(Self { pci: Some(pci) }),
                    Err(e) => {
                        // SAFETY: no PCI driver is registered, so no probe calls `get`.
                        drop(unsafe { __MDEV_DRIVER.take() });
                        // SAFETY: as above.
                        drop(unsafe { __MDEV_DATA.take() });
                        Err(e)
                    }
                }
            }
        }

        impl Drop for __MdevPciModule {
            fn drop(&mut self) {
                // Unbinds every device: their parents and mdevs are gone when this returns.
                drop(self.pci.take());
                // SAFETY: the PCI driver is unregistered, so no probe calls `get` any more.
                drop(unsafe { __MDEV_DRIVER.take() });
                // SAFETY: as above; the module's data goes last.
                drop(unsafe { __MDEV_DATA.take() });
            }
        }

        $crate::prelude::module! {
            type: __MdevPciModule,
            name: $name,
            author: $author,
            description: $desc,
            license: $license,
        }
    };
}

/// The module data type of [`module_mdev_pci_driver!`](crate::module_mdev_pci_driver): its
/// `data:`, else `()`.
#[doc(hidden)]
#[macro_export]
macro_rules! __mdev_module_data {
    () => { () };
    ($t:ty) => { $t };
}

/// A parent's capacity, in units its types take (one per mdev, or more for a bigger type):
/// what every mdev driver counts for `available_instances` and refuses a create with.
///
/// [`Capacity::take`] reserves units atomically (two concurrent creates never both get the
/// last one) and returns a [`Reserved`] that gives them back when dropped: kept in the mdev's
/// data, after its VFIO registration, the units return once the mdev is gone.
pub struct Capacity {
    free: core::sync::atomic::AtomicU32,
}

impl Capacity {
    /// A capacity of `total` units, all free.
    pub fn new(total: u32) -> Result<Arc<Self>> {
        Ok(Arc::new(Self { free: core::sync::atomic::AtomicU32::new(total) }, GFP_KERNEL)?)
    }

    /// Reserves `units` (at least one: `EINVAL` for 0); `ENOSPC`, with nothing taken, when
    /// fewer are free.
    pub fn take(self: &Arc<Self>, units: u32) -> Result<Reserved> {
        if units == 0 {
            return Err(EINVAL);
        }
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| f.checked_sub(units))
            .map_err(|_| ENOSPC)?;
        Ok(Reserved { cap: self.clone(), units })
    }

    /// How many reservations of `units` fit now (`available_instances`); 0 for 0 units.
    pub fn available(&self, units: u32) -> u32 {
        self.free.load(Ordering::Acquire).checked_div(units).unwrap_or(0)
    }
}

/// Units reserved with [`Capacity::take`]; given back on drop.
pub struct Reserved {
    cap: Arc<Capacity>,
    units: u32,
}

impl Reserved {
    /// The units held.
    pub fn units(&self) -> u32 {
        self.units
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.cap.free.fetch_add(self.units, Ordering::AcqRel);
    }
}
