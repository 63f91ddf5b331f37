// SPDX-License-Identifier: GPL-2.0
//! What the guest test modules that drive QEMU's edu share: its registers (QEMU
//! `hw/misc/edu.c`), a DMA that waits for completion, and the hand-over of the running suite
//! to the probe, and `edu_suite_module!` for modules that are just such a suite. Included by
//! each module with `#[path = "common/edu.rs"] #[macro_use] mod edu;` (each module gets its
//! own copy of the statics).
#![allow(dead_code, unused_macros)]

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    delay::msleep,
    device::Core,
    labtest::{Case, Failed, Suite},
    pci,
    prelude::*,
};

// The register map, declared once for the samples, these modules and the qtest client.
#[path = "../../../samples/vfio-mdev/edu-regs/src/edu_regs/mod.rs"]
mod regs;
pub(crate) use regs::*;

/// edu's BAR0 as the cases see it: its registers' offsets are checked against [`REGS_SIZE`]
/// when building (`read32(ID)`), a computed offset goes through `try_read32`.
pub(crate) type Bar = pci::Bar<REGS_SIZE>;

/// Waits (up to 3 s) until edu's DMA command register says the DMA is done.
pub(crate) fn wait_dma(case: &Case<'_>, bar: &Bar) -> Result<(), Failed> {
    for _ in 0..300 {
        if bar.read64(DMA_CMD) & DMA_START == 0 {
            return Ok(());
        }
        msleep(10);
    }
    Err(case.fail(format_args!("edu DMA did not complete in 3 s")))
}

/// Runs one edu DMA of `len` bytes from `src` to `dst` (`cmd`: [`DMA_START`], plus
/// [`DMA_TO_RAM`] for edu buffer -> RAM) and waits for it.
pub(crate) fn dma(
    case: &Case<'_>,
    bar: &Bar,
    src: u64,
    dst: u64,
    len: u64,
    cmd: u64,
) -> Result<(), Failed> {
    bar.write64(src, DMA_SRC);
    bar.write64(dst, DMA_DST);
    bar.write64(len, DMA_COUNT);
    bar.write64(cmd, DMA_CMD);
    wait_dma(case, bar)
}

/// The suite of the running `init`: set by `init` around the driver registration, which
/// probes synchronously on the same thread.
static SUITE: AtomicPtr<Suite> = AtomicPtr::new(core::ptr::null_mut());

/// Registers `suite` as the one probes report to while `register` runs.
pub(crate) fn with_registration<R>(suite: &mut Suite, register: impl FnOnce() -> R) -> R {
    SUITE.store(suite, Ordering::Release);
    let r = register();
    SUITE.store(core::ptr::null_mut(), Ordering::Release);
    r
}

/// Runs `f` on the suite of the registration in progress, if any.
pub(crate) fn with_suite(f: impl FnOnce(&mut Suite)) {
    let p = SUITE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: `with_registration` stores a pointer to its caller's live, exclusively
        // borrowed suite only while `register` runs, and the probe that calls this runs
        // synchronously inside it, on the same thread.
        f(unsafe { &mut *p });
    }
}

/// A guest suite that runs its cases on edu at probe: what [`run`] needs to know.
pub(crate) trait EduSuite: Send + Sync + 'static {
    /// The PCI driver's name.
    const DRIVER: &'static kernel::str::CStr;
    /// The suite's name in the guest log.
    const SUITE: &'static str;
    /// Bind to the lab QEMU's edu-pasid (1234:11e9, docs/pasid-device.md) instead of edu.
    const PASID_DEVICE: bool = false;
    /// The cases, run once edu is enabled, bus master, with BAR0 mapped.
    fn cases(suite: &mut Suite, dev: &pci::Device<Core>, bar: &Bar);
}

kernel::pci_device_table!(EDU_IDS, (), [(pci::DeviceId::from_id(0x1234, 0x11e8), ())]);
kernel::pci_device_table!(EDU_PASID_IDS, (), [(pci::DeviceId::from_id(0x1234, 0x11e9), ())]);

/// The PCI driver that binds edu for an [`EduSuite`] and runs its cases in probe.
pub(crate) struct EduDriver<T: EduSuite>(core::marker::PhantomData<T>);

impl<T: EduSuite> pci::Driver for EduDriver<T> {
    type IdInfo = ();
    const ID_TABLE: pci::IdTable<()> = if T::PASID_DEVICE {
        EDU_PASID_IDS.table()
    } else {
        EDU_IDS.table()
    };

    fn probe(dev: &pci::Device<Core>, _info: &()) -> Result<Pin<KBox<Self>>> {
        dev.enable_device()?;
        dev.set_master()?;
        dev.dma_set_mask(28)?;
        let bar = dev.iomap_region_sized::<REGS_SIZE>(0, T::DRIVER)?;
        let bar = bar.access(dev.as_ref())?;
        with_suite(|s| T::cases(s, dev, bar));
        Ok(KBox::pin(EduDriver(core::marker::PhantomData), kernel::alloc::flags::GFP_KERNEL)?)
    }
}

/// Registers [`EduDriver<T>`] (its probe runs the cases), checks the registration and that the
/// probe did run cases during it, unregisters (unbinding edu for the next module) and prints
/// the suite's summary. Without the second check a probe that returned early, never ran (edu
/// bound to another driver) or ran later on another thread (asynchronous probe) would leave
/// one passing case; the expected-results manifest also counts every case.
pub(crate) fn run<T: EduSuite>(module: &'static ThisModule) {
    let mut suite = Suite::new(T::SUITE);
    let reg = with_registration(&mut suite, || {
        KBox::pin_init(
            pci::Registration::<EduDriver<T>>::new(T::DRIVER, module),
            kernel::alloc::flags::GFP_KERNEL,
        )
    });
    let in_probe = suite.cases_run();
    suite.run("driver_registered", |case| {
        kernel::labtest_ensure!(case, reg.is_ok(), "registration: {:?}", reg.as_ref().err());
        Ok(())
    });
    suite.run("probe_ran_the_cases", |case| {
        kernel::labtest_ensure!(
            case,
            in_probe > 0,
            "the probe ran no case during the registration (probe failed early, edu bound to \
             another driver, or probed asynchronously)"
        );
        Ok(())
    });
    drop(reg);
    suite.finish();
}

/// Declares the module type `$module` of a guest suite named `$suite` whose cases are the
/// function `$cases` (an [`EduSuite::cases`]): its `init` runs them on edu through [`run`],
/// with a PCI driver named `$driver`.
macro_rules! edu_suite_module {
    ($module:ident, driver: $driver:literal, suite: $suite:literal, cases: $cases:path) => {
        edu_suite_module!($module, driver: $driver, suite: $suite, cases: $cases, pasid_device: false);
    };
    ($module:ident, driver: $driver:literal, suite: $suite:literal, cases: $cases:path,
     pasid_device: $pasid:literal) => {
        struct $module;

        impl edu::EduSuite for $module {
            const DRIVER: &'static kernel::str::CStr = kernel::c_str!($driver);
            const SUITE: &'static str = $suite;
            const PASID_DEVICE: bool = $pasid;
            fn cases(
                suite: &mut kernel::labtest::Suite,
                dev: &kernel::pci::Device<kernel::device::Core>,
                bar: &edu::Bar,
            ) {
                $cases(suite, dev, bar)
            }
        }

        impl kernel::Module for $module {
            fn init(module: &'static kernel::ThisModule) -> kernel::error::Result<Self> {
                edu::run::<$module>(module);
                Ok($module)
            }
        }
    };
}
