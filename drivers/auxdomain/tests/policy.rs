// SPDX-License-Identifier: GPL-2.0
//! The backend-independent policy over a toy backend (a map of pages): what the kernel glue
//! relies on beyond what the SMMU model tests show: doorbells skip window pages the backend
//! mapped itself (the kernel's MSI cookie maps requester-ID doorbells there), backend errors
//! keep their errno, and unmaps reach the backend with the attachment table.

use auxdomain::policy::{
    Attachment, AuxPolicy, BackendError, Error, Mapper, MsiSource, MsiWindow, Prot, Translation,
};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail(i32);

impl BackendError for Fail {
    fn errno(&self) -> i32 {
        self.0
    }
    fn describe(&self) -> &'static str {
        "toy backend failure"
    }
}

#[derive(Default)]
struct Toy {
    pages: BTreeMap<u64, (u64, Prot)>,
    fail_map: Option<i32>,
    unmaps: Vec<(u64, u64, usize)>,
}

const PAGE: u64 = 4096;

impl Mapper for Toy {
    type Error = Fail;
    fn granule(&self) -> u64 {
        PAGE
    }
    fn map(&mut self, iova: u64, pa: u64, size: u64, prot: Prot) -> Result<(), Fail> {
        if let Some(e) = self.fail_map {
            return Err(Fail(e));
        }
        for off in (0..size).step_by(PAGE as usize) {
            if self.pages.contains_key(&(iova + off)) {
                return Err(Fail(17));
            }
        }
        for off in (0..size).step_by(PAGE as usize) {
            self.pages.insert(iova + off, (pa + off, prot));
        }
        Ok(())
    }
    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.pages
            .get(&(iova & !(PAGE - 1)))
            .map(|(pa, _)| pa | (iova & (PAGE - 1)))
    }
}

impl Translation for Toy {
    type Target = ();
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        attached: &[Option<Attachment<()>>],
    ) -> Result<u64, Fail> {
        let mut n = 0;
        for off in (0..size).step_by(PAGE as usize) {
            if self.pages.remove(&(iova + off)).is_some() {
                n += PAGE;
            }
        }
        self.unmaps
            .push((iova, size, attached.iter().flatten().count()));
        Ok(n)
    }
}

fn rid(dev: u32) -> Attachment<()> {
    Attachment {
        dev,
        pasid: None,
        snoop_control: false,
        target: (),
    }
}

#[test]
fn doorbells_skip_window_pages_the_backend_mapped_itself() {
    let mut b = Toy::default();
    let w = MsiWindow::default();
    let mut p = AuxPolicy::<()>::new::<Fail>(w, PAGE, 48).unwrap();
    p.record_attach::<Fail>(rid(1)).unwrap();
    // The kernel's MSI cookie mapped the ITS doorbell at the window's first page.
    b.map(w.base, 0x0808_0000, PAGE, Prot::WRITE).unwrap();
    let addr = p
        .msi_activate(&mut b, 1, MsiSource::Rid { vector: 0 }, 0x0900_0040)
        .unwrap();
    assert_eq!(
        addr,
        w.base + PAGE + 0x40,
        "first free window page is the second"
    );
    assert_eq!(b.iova_to_phys(addr), Some(0x0900_0040));
    let (_, prot) = b.pages[&(w.base + PAGE)];
    assert!(prot.contains(Prot::WRITE | Prot::MMIO | Prot::NOEXEC) && !prot.contains(Prot::READ));
    // The last reference unmaps it, with the attachment table handed to the backend.
    p.msi_deactivate(&mut b, 1, MsiSource::Rid { vector: 0 })
        .unwrap();
    assert_eq!(b.unmaps, vec![(w.base + PAGE, PAGE, 1)]);
    assert_eq!(
        b.iova_to_phys(w.base),
        Some(0x0808_0000),
        "cookie page untouched"
    );
}

#[test]
fn backend_errors_keep_their_errno_and_change_nothing() {
    let mut b = Toy::default();
    let mut p = AuxPolicy::<()>::new::<Fail>(MsiWindow::default(), PAGE, 48).unwrap();
    p.record_attach::<Fail>(rid(1)).unwrap();
    b.fail_map = Some(12);
    let e = p
        .map(&mut b, 0x1000, 0x4000_0000, PAGE, Prot::READ)
        .unwrap_err();
    assert_eq!((e, e.errno()), (Error::Backend(Fail(12)), 12));
    let e = p
        .msi_activate(&mut b, 1, MsiSource::Rid { vector: 0 }, 0x0900_0000)
        .unwrap_err();
    assert_eq!(e.errno(), 12);
    assert_eq!((p.active_vectors(), p.doorbells().count()), (0, 0));
    // Nothing was mapped, so coherency can still be enforced (VFIO's rule).
    b.fail_map = None;
    let e = p.enforce_cache_coherency::<Fail>(|_| Ok(())).unwrap_err();
    assert_eq!(
        e,
        Error::CoherencyUnsupported,
        "rid(1) has no snoop control"
    );
}

#[test]
fn window_that_does_not_fit_is_refused() {
    for w in [
        MsiWindow {
            base: 0x800_0000,
            size: 0,
        },
        MsiWindow {
            base: 0x800_0800,
            size: PAGE,
        },
        MsiWindow {
            base: u64::MAX - PAGE + 1,
            size: 2 * PAGE,
        },
        MsiWindow {
            base: 1 << 48,
            size: PAGE,
        },
    ] {
        let e = AuxPolicy::<()>::new::<Fail>(w, PAGE, 48).err();
        assert_eq!(e, Some(Error::InvalidArgument), "{w:?}");
    }
}

/// `new_in` builds the policy in memory the caller owns (the kernel glue: a box), whatever that
/// memory held before, and gives the same empty policy as `new`; a window that does not fit is
/// refused the same way.
#[test]
fn new_in_builds_an_empty_policy_over_garbage() {
    use std::mem::MaybeUninit;
    let mut slot = Box::new(MaybeUninit::<AuxPolicy<()>>::uninit());
    // SAFETY: any bytes may be written into a `MaybeUninit`.
    unsafe {
        slot.as_mut_ptr()
            .cast::<u8>()
            .write_bytes(0xa5, std::mem::size_of::<AuxPolicy<()>>())
    };
    let w = MsiWindow::default();
    let p = AuxPolicy::<()>::new_in::<Fail>(&mut slot, w, PAGE, 48).unwrap();
    assert_eq!(
        (p.attachments(), p.active_vectors(), p.doorbells().count()),
        (0, 0, 0)
    );
    assert_eq!(
        p.reserved_regions(),
        AuxPolicy::<()>::new::<Fail>(w, PAGE, 48)
            .unwrap()
            .reserved_regions()
    );
    // It works like one made by `new`: every attachment slot is usable.
    let mut b = Toy::default();
    for dev in 0..auxdomain::policy::MAX_ATTACH as u32 {
        p.record_attach::<Fail>(rid(dev)).unwrap();
    }
    assert_eq!(
        p.record_attach::<Fail>(rid(99)).unwrap_err(),
        Error::NoSpace
    );
    p.map(&mut b, 0x1000, 0x4000_0000, PAGE, Prot::READ)
        .unwrap();
    let mut bad = MaybeUninit::uninit();
    let far = MsiWindow {
        base: 1 << 48,
        size: PAGE,
    };
    assert_eq!(
        AuxPolicy::<()>::new_in::<Fail>(&mut bad, far, PAGE, 48).err(),
        Some(Error::InvalidArgument)
    );
}
