// SPDX-License-Identifier: GPL-2.0
//! Unit tests of every feature and error case of the ioasid allocator, through the public API.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use ioasid::{
    errno, Config, Error, IoasidCore, Owner, OwnerKind, Pasid, PasidState, ReleaseChain, SetId,
    Teardown, MAX_RESERVED_RANGES,
};
use support::*;

const VM: Owner = Owner::new(OwnerKind::Vm, 0x2a);
const MDEV: Owner = Owner::new(OwnerKind::Mdev, 7);

fn small(bits: u32) -> Config<'static> {
    Config::new(bits)
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn errno_of_every_variant() {
    use errno::*;
    let table: &[(Error, i32)] = &[
        (Error::InvalidWidth, EINVAL),
        (Error::InvalidReserved, EINVAL),
        (Error::InvalidSetLimit, EINVAL),
        (Error::InvalidRange, EINVAL),
        (Error::InvalidQuota, EINVAL),
        (Error::UnbalancedPut, EINVAL),
        (Error::NoSpace, ENOSPC),
        (Error::NoSetSpace, ENOSPC),
        (Error::QuotaExceeded, EDQUOT),
        (Error::PasidNotFound, ENOENT),
        (Error::SetNotFound, ENOENT),
        (Error::NoAllocator, ENOENT),
        (Error::SubscriptionNotFound, ENOENT),
        (Error::NotOwner, EACCES),
        (Error::NoMemory, ENOMEM),
        (Error::AllocatorRegistered, EBUSY),
        (Error::SpaceInUse, EBUSY),
        (Error::RefOverflow, EOVERFLOW),
        (Error::AllocatorFault, EIO),
    ];
    // Linux asm-generic numbers.
    assert_eq!(
        (ENOENT, EIO, ENOMEM, EACCES, EBUSY, EINVAL, ENOSPC, EOVERFLOW, EDQUOT),
        (2, 5, 12, 13, 16, 22, 28, 75, 122)
    );
    let mut messages = std::collections::HashSet::new();
    for &(e, n) in table {
        assert_eq!(e.to_errno(), -n, "{e:?}");
        assert!(e.as_str().starts_with("ioasid: "), "{e:?}");
        assert_eq!(e.to_string(), e.as_str());
        assert!(messages.insert(e.as_str()), "duplicate message for {e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn width_limits() {
    assert_eq!(core_st::<u64>(&small(0)).err(), Some(Error::InvalidWidth));
    assert_eq!(core_st::<u64>(&small(21)).err(), Some(Error::InvalidWidth));
    assert_eq!(core_st::<u64>(&small(32)).err(), Some(Error::InvalidWidth));
    assert_eq!(
        core_st::<u64>(&small(21)).err().map(Error::to_errno),
        Some(-22)
    );
    let c = core_st::<u64>(&small(20)).unwrap();
    assert_eq!(c.max_pasid(), 0xf_ffff);
    assert_eq!(c.capacity(), 0xf_ffff); // PASID 0 reserved
    assert_eq!(c.pasid_bits(), 20);
    let c = core_st::<u64>(&small(1)).unwrap();
    assert_eq!((c.max_pasid(), c.capacity()), (1, 1));
}

#[test]
fn reserved_range_validation() {
    let outside = [5..=8];
    assert_eq!(
        core_st::<u64>(&small(3).with_reserved(&outside)).err(),
        Some(Error::InvalidReserved)
    );
    #[allow(clippy::reversed_empty_ranges)]
    let empty = [5..=4];
    assert_eq!(
        core_st::<u64>(&small(3).with_reserved(&empty)).err(),
        Some(Error::InvalidReserved)
    );
    let many: Vec<_> = (1..=MAX_RESERVED_RANGES as u32 + 1)
        .map(|i| i * 2..=i * 2)
        .collect();
    assert_eq!(
        core_st::<u64>(&small(8).with_reserved(&many)).err(),
        Some(Error::InvalidReserved)
    );
    let c = core_st::<u64>(&small(8).with_reserved(&many[..MAX_RESERVED_RANGES])).unwrap();
    assert_eq!(c.capacity(), 255 - MAX_RESERVED_RANGES as u32);
    // Overlapping and adjacent ranges are merged: 0, 2..=7 reserved -> 16 - 7 = 9 left.
    let overlap = [2..=4, 3..=6, 7..=7];
    let c = core_st::<u64>(&small(4).with_reserved(&overlap)).unwrap();
    assert_eq!(c.capacity(), 9);
    assert!(c.is_reserved(0) && c.is_reserved(5) && c.is_reserved(7));
    assert!(!c.is_reserved(1) && !c.is_reserved(8));
}

#[test]
fn set_limit() {
    assert_eq!(
        core_st::<u64>(&small(4).with_max_sets(0)).err(),
        Some(Error::InvalidSetLimit)
    );
    // Set indices must fit in the lookup table's key.
    let most = ioasid::MAX_KEY_SET_INDEX;
    assert!(core_st::<u64>(&small(4).with_max_sets(most)).is_ok());
    assert!(new_st::<u64>(&small(4).with_max_sets(most)).is_ok());
    assert_eq!(
        core_st::<u64>(&small(4).with_max_sets(most + 1)).err(),
        Some(Error::InvalidSetLimit)
    );
    assert_eq!(
        new_st::<u64>(&small(4).with_max_sets(u32::MAX)).err(),
        Some(Error::InvalidSetLimit)
    );
    let mut c = core_st::<u64>(&small(4).with_max_sets(1)).unwrap();
    let s = c.create_set(VM, 1).unwrap();
    assert_eq!(s.index(), 1);
    assert_eq!(c.create_set(VM, 1).err(), Some(Error::NoSetSpace));
}

// ---------------------------------------------------------------------------------------------
// Allocation

#[test]
fn pasid_zero_and_lowest_free() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 15).unwrap();
    assert_eq!(a.alloc(s, 0, 0, 0), Err(Error::NoSpace));
    assert_eq!(a.alloc(s, 0, 15, 1), Ok(1));
    assert_eq!(a.alloc(s, 0, 15, 2), Ok(2));
    assert_eq!(a.alloc(s, 0, 15, 3), Ok(3));
    a.free(s, 2).unwrap();
    assert_eq!(a.alloc(s, 0, 15, 4), Ok(2));
    assert_eq!(a.alloc(s, 10, 12, 5), Ok(10));
    assert_eq!(a.alloc(s, 15, 15, 6), Ok(15));
    assert_eq!(a.alloc(s, 15, 15, 7), Err(Error::NoSpace));
    assert_eq!(Error::NoSpace.to_errno(), -28);
}

#[test]
fn reserved_ranges_are_skipped() {
    let reserved = [2..=4, 6..=6];
    let a = new_st::<u64>(&small(3).with_reserved(&reserved)).unwrap();
    assert_eq!(a.with_core(|c| c.capacity()), 3);
    assert_eq!(a.create_set(VM, 4), Err(Error::InvalidQuota));
    let s = a.create_set(VM, 3).unwrap();
    assert_eq!(a.alloc(s, 0, 7, 0), Ok(1));
    assert_eq!(a.alloc(s, 0, 7, 0), Ok(5));
    assert_eq!(a.alloc(s, 0, 7, 0), Ok(7));
    let t = a.create_set(MDEV, 3).unwrap();
    assert_eq!(a.alloc(t, 0, 7, 0), Err(Error::NoSpace));
    assert_eq!(a.alloc(t, 2, 4, 0), Err(Error::NoSpace));
    a.free(s, 5).unwrap();
    assert_eq!(a.alloc(t, 2, 6, 0), Ok(5));
    assert_eq!(a.with_core(|c| c.live()), 3);
}

#[test]
fn bad_ranges() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 4).unwrap();
    assert_eq!(a.alloc(s, 5, 4, 0), Err(Error::InvalidRange));
    assert_eq!(a.alloc(s, 1, 16, 0), Err(Error::InvalidRange));
    assert_eq!(a.alloc(s, 1, u32::MAX, 0), Err(Error::InvalidRange));
    assert_eq!(Error::InvalidRange.to_errno(), -22);
    // A full sub-range does not stop other ranges.
    assert_eq!(a.alloc(s, 3, 3, 0), Ok(3));
    assert_eq!(a.alloc(s, 3, 3, 0), Err(Error::NoSpace));
    assert_eq!(a.alloc(s, 3, 4, 0), Ok(4));
}

#[test]
fn check_order_of_alloc_errors() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 1).unwrap();
    let bogus = SetId::from_raw(99);
    // Unknown set beats a bad range.
    assert_eq!(a.alloc(bogus, 5, 4, 0), Err(Error::SetNotFound));
    a.alloc(s, 1, 1, 0).unwrap();
    // Bad range beats quota; quota beats no space.
    assert_eq!(a.alloc(s, 5, 4, 0), Err(Error::InvalidRange));
    assert_eq!(a.alloc(s, 1, 1, 0), Err(Error::QuotaExceeded));
}

#[test]
fn space_exhaustion() {
    let a = new_st::<u64>(&small(2)).unwrap();
    let s = a.create_set(VM, 3).unwrap();
    let got: Vec<_> = (0..3).map(|i| a.alloc(s, 0, 3, i).unwrap()).collect();
    assert_eq!(got, [1, 2, 3]);
    let t = a.create_set(MDEV, 3).unwrap();
    assert_eq!(a.alloc(t, 0, 3, 9), Err(Error::NoSpace));
}

// ---------------------------------------------------------------------------------------------
// Sets and quotas

#[test]
fn quota_and_accounting() {
    let a = new_st::<u64>(&small(4)).unwrap();
    assert_eq!(a.create_set(VM, 0), Err(Error::InvalidQuota));
    assert_eq!(a.create_set(VM, 16), Err(Error::InvalidQuota)); // capacity is 15
    let s = a.create_set(VM, 2).unwrap();
    let p1 = a.alloc(s, 1, 15, 10).unwrap();
    let p2 = a.alloc(s, 1, 15, 20).unwrap();
    assert_eq!(a.alloc(s, 1, 15, 30), Err(Error::QuotaExceeded));
    assert_eq!(Error::QuotaExceeded.to_errno(), -122);
    let info = a.set_info(s).unwrap();
    assert_eq!(
        (info.owner, info.quota, info.usage, info.active, info.dying),
        (VM, 2, 2, 2, false)
    );
    // A freed but referenced PASID still counts.
    a.get(s, p1).unwrap();
    a.free(s, p1).unwrap();
    let info = a.set_info(s).unwrap();
    assert_eq!((info.usage, info.active), (2, 1));
    assert_eq!(a.alloc(s, 1, 15, 30), Err(Error::QuotaExceeded));
    a.put(s, p1).unwrap();
    assert_eq!(a.set_info(s).unwrap().usage, 1);
    assert_eq!(a.alloc(s, 1, 15, 30), Ok(p1));
    // Quota changes.
    assert_eq!(a.set_quota(s, 0), Err(Error::InvalidQuota));
    assert_eq!(a.set_quota(s, 16), Err(Error::InvalidQuota));
    a.set_quota(s, 1).unwrap(); // below usage: accepted
    a.free(s, p2).unwrap();
    assert_eq!(a.alloc(s, 1, 15, 40), Err(Error::QuotaExceeded));
    a.set_quota(s, 3).unwrap();
    assert_eq!(a.alloc(s, 1, 15, 40), Ok(p2));
    assert_eq!(a.set_info(s).unwrap().quota, 3);
    // Sets are accounted separately.
    let t = a.create_set(MDEV, 1).unwrap();
    assert_eq!(a.alloc(t, 1, 15, 0), Ok(3));
    assert_eq!(a.set_info(t).unwrap().usage, 1);
    assert_eq!(a.set_info(s).unwrap().usage, 2);
}

#[test]
fn unknown_and_stale_sets() {
    let a = new_st::<u64>(&small(4).with_max_sets(2)).unwrap();
    let bogus = SetId::from_raw(5);
    assert_eq!(a.alloc(bogus, 1, 15, 0), Err(Error::SetNotFound));
    assert_eq!(a.set_quota(bogus, 1), Err(Error::SetNotFound));
    assert_eq!(a.set_info(bogus), Err(Error::SetNotFound));
    assert_eq!(a.destroy_set(bogus), Err(Error::SetNotFound));
    assert_eq!(Error::SetNotFound.to_errno(), -2);

    let s = a.create_set(VM, 4).unwrap();
    let t = a.create_set(VM, 4).unwrap();
    assert_eq!(a.create_set(VM, 4), Err(Error::NoSetSpace));
    assert_eq!(Error::NoSetSpace.to_errno(), -28);
    assert_eq!(SetId::from_raw(s.to_raw()), s);
    assert_ne!(s, t);
    a.destroy_set(s).unwrap();
    assert_eq!(a.destroy_set(s), Err(Error::SetNotFound));
    assert_eq!(a.alloc(s, 1, 15, 0), Err(Error::SetNotFound));
    // The index is reused with a new generation; the old ID stays dead.
    let u = a.create_set(MDEV, 4).unwrap();
    assert_eq!(u.index(), s.index());
    assert_ne!(u.generation(), s.generation());
    assert_eq!(a.alloc(s, 1, 15, 0), Err(Error::SetNotFound));
    let p = a.alloc(u, 1, 15, 0).unwrap();
    assert_eq!(a.find(s, p), Err(Error::NotOwner));
    assert_eq!(a.set_info(u).unwrap().owner, MDEV);
}

// ---------------------------------------------------------------------------------------------
// Lookup and private data

#[test]
fn find_is_owner_only() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let t = a.create_set(MDEV, 4).unwrap();
    let p = a.alloc(s, 1, 15, 0xabc).unwrap();
    assert_eq!(a.find(s, p), Ok(0xabc));
    assert_eq!(a.find(t, p), Err(Error::NotOwner));
    assert_eq!(Error::NotOwner.to_errno(), -13);
    assert_eq!(a.find(s, p + 1), Err(Error::PasidNotFound));
    assert_eq!(a.find(s, 1 << 20), Err(Error::PasidNotFound));
    assert_eq!(a.find(s, u32::MAX), Err(Error::PasidNotFound));
    assert_eq!(a.with_data(s, p, |d| d + 1), Ok(0xabd));
    assert_eq!(a.with_data(t, p, |d| d + 1), Err(Error::NotOwner));
    a.free(s, p).unwrap();
    assert_eq!(a.find(s, p), Err(Error::PasidNotFound));
    assert_eq!(Error::PasidNotFound.to_errno(), -2);
}

#[test]
fn set_data_replaces() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let t = a.create_set(MDEV, 4).unwrap();
    let p = a.alloc(s, 1, 15, 1).unwrap();
    assert_eq!(a.set_data(s, p, 2), Ok(1));
    assert_eq!(a.find(s, p), Ok(2));
    assert_eq!(a.set_data(t, p, 3), Err(Error::NotOwner));
    assert_eq!(a.find(s, p), Ok(2));
    assert_eq!(a.set_data(s, 9, 3), Err(Error::PasidNotFound));
    a.get(s, p).unwrap();
    a.free(s, p).unwrap();
    assert_eq!(a.set_data(s, p, 3), Err(Error::PasidNotFound));
}

// ---------------------------------------------------------------------------------------------
// Reference counts

#[test]
fn get_put_and_free_while_referenced() {
    let log: NoteLog<u64> = Default::default();
    let a = new_st::<u64>(&small(4)).unwrap();
    a.subscribe(recorder(&log), None).ok().unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let t = a.create_set(MDEV, 4).unwrap();
    let p = a.alloc(s, 1, 15, 77).unwrap();
    assert_eq!(a.put(s, p), Err(Error::UnbalancedPut));
    assert_eq!(Error::UnbalancedPut.to_errno(), -22);
    assert_eq!(a.get(s, p), Ok(1));
    assert_eq!(a.get(s, p), Ok(2));
    assert_eq!(a.get(t, p), Err(Error::NotOwner));
    assert_eq!(a.put(t, p), Err(Error::NotOwner));
    a.put(s, p).unwrap();
    assert_eq!(a.pasid_info(p).unwrap().refs, 1);
    // Free with a reference left: unfindable, ungettable, not reallocatable, not notified.
    a.free(s, p).unwrap();
    let info = a.pasid_info(p).unwrap();
    assert_eq!((info.state, info.refs, info.set), (PasidState::Freed, 1, s));
    assert_eq!(a.find(s, p), Err(Error::PasidNotFound));
    assert_eq!(a.get(s, p), Err(Error::PasidNotFound));
    assert_eq!(a.free(s, p), Err(Error::PasidNotFound));
    assert_eq!(a.alloc(t, p, p, 0), Err(Error::NoSpace));
    assert!(log.borrow().is_empty());
    // The last put releases it.
    a.put(s, p).unwrap();
    assert_eq!(*log.borrow(), [(s, p, 77)]);
    assert_eq!(a.pasid_info(p), None);
    assert_eq!(a.put(s, p), Err(Error::PasidNotFound));
    assert_eq!(a.alloc(t, p, p, 0), Ok(p));
}

#[test]
fn free_without_references_releases_at_once() {
    let log: NoteLog<u64> = Default::default();
    let a = new_st::<u64>(&small(4)).unwrap();
    a.subscribe(recorder(&log), None).ok().unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let p = a.alloc(s, 1, 15, 5).unwrap();
    a.get(s, p).unwrap();
    a.put(s, p).unwrap();
    assert!(log.borrow().is_empty());
    a.free(s, p).unwrap();
    assert_eq!(*log.borrow(), [(s, p, 5)]);
    assert_eq!(a.pasid_info(p), None);
    assert_eq!(a.set_info(s).unwrap().usage, 0);
}

// ---------------------------------------------------------------------------------------------
// Free notifications

/// An allocator whose notifier checks, while it runs, that the PASID is releasing and cannot
/// be found or allocated again.
#[test]
fn notifier_runs_unlocked_before_reuse() {
    let a: Rc<ioasid::Ioasid<St<u64>>> = Rc::new(new_st(&small(3)).unwrap());
    let s = a.create_set(VM, 7).unwrap();
    let other = a.create_set(MDEV, 7).unwrap();
    let seen: Rc<RefCell<Vec<String>>> = Default::default();
    let weak: Weak<_> = Rc::downgrade(&a);
    let seen2 = seen.clone();
    a.subscribe(
        Box::new(move |set, pasid, data: &u64| {
            let a = weak.upgrade().unwrap();
            // Not under the state lock (RefLock would panic on the nested calls otherwise).
            assert_eq!(STATE_HELD.with(|h| h.get()), 0);
            let info = a.pasid_info(pasid).unwrap();
            assert_eq!((info.state, info.set), (PasidState::Releasing, set));
            let found = a.find(set, pasid);
            let realloc = a.alloc(other, pasid, pasid, 0);
            seen2
                .borrow_mut()
                .push(format!("{pasid}:{data}:{found:?}:{realloc:?}"));
        }),
        None,
    )
    .ok()
    .unwrap();
    let p = a.alloc(s, 1, 7, 42).unwrap();
    a.free(s, p).unwrap();
    assert_eq!(
        *seen.borrow(),
        [format!("{p}:42:Err(PasidNotFound):Err(NoSpace)")]
    );
    // Released now: allocatable again.
    assert_eq!(a.alloc(other, p, p, 0), Ok(p));
}

#[test]
fn notifier_filters_and_unsubscribe() {
    let all: NoteLog<u64> = Default::default();
    let only_t: NoteLog<u64> = Default::default();
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let t = a.create_set(MDEV, 4).unwrap();
    let id_all = a.subscribe(recorder(&all), None).ok().unwrap();
    let id_t = a.subscribe(recorder(&only_t), Some(t)).ok().unwrap();
    assert_ne!(id_all, id_t);
    let ps = a.alloc(s, 1, 15, 1).unwrap();
    let pt = a.alloc(t, 1, 15, 2).unwrap();
    a.free(s, ps).unwrap();
    a.free(t, pt).unwrap();
    assert_eq!(*all.borrow(), [(s, ps, 1), (t, pt, 2)]);
    assert_eq!(*only_t.borrow(), [(t, pt, 2)]);
    assert!(a.unsubscribe(id_all).is_ok());
    assert_eq!(
        a.unsubscribe(id_all).err(),
        Some(Error::SubscriptionNotFound)
    );
    assert_eq!(Error::SubscriptionNotFound.to_errno(), -2);
    let pt = a.alloc(t, 1, 15, 3).unwrap();
    a.free(t, pt).unwrap();
    assert_eq!(all.borrow().len(), 2);
    assert_eq!(only_t.borrow().len(), 2);
    assert_eq!(a.with_core(|c| c.subscribers()), 1);
}

#[test]
fn no_subscribers_releases_silently() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let p = a.alloc(s, 1, 15, 1).unwrap();
    a.free(s, p).unwrap();
    assert_eq!(a.pasid_info(p), None);
    assert_eq!(a.alloc(s, 1, 15, 1), Ok(p));
}

#[test]
fn lockless_find_word_has_find_semantics() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(VM, 4).unwrap();
    let t = a.create_set(MDEV, 4).unwrap();
    let p = a.alloc(s, 1, 15, 0xabc).unwrap();
    assert_eq!(a.find_word(s, p), Ok(0xabc));
    assert_eq!(a.find_word(t, p), Err(Error::NotOwner));
    assert_eq!(a.find_word(s, p + 1), Err(Error::PasidNotFound));
    assert_eq!(a.find_word(s, u32::MAX), Err(Error::PasidNotFound));
    a.set_data(s, p, 0xdef).unwrap();
    assert_eq!(a.find_word(s, p), Ok(0xdef));
    // Freed while referenced: not findable by its set, still not another set's.
    a.get(s, p).unwrap();
    a.free(s, p).unwrap();
    assert_eq!(a.find_word(s, p), Err(Error::PasidNotFound));
    assert_eq!(a.find_word(t, p), Err(Error::NotOwner));
    assert_eq!(a.pasid_info(p).map(|i| i.state), Some(PasidState::Freed));
    // The last put releases it at once (no subscribers) and the PASID is reusable.
    a.put(s, p).unwrap();
    assert_eq!(a.pasid_info(p), None);
    assert_eq!(a.find_word(s, p), Err(Error::PasidNotFound));
    assert_eq!(a.alloc(t, 1, 15, 7), Ok(p));
    assert_eq!(a.find_word(t, p), Ok(7));
    assert_eq!(a.find_word(s, p), Err(Error::NotOwner));
    assert_eq!(a.set_info(s).unwrap().usage, 0);
    assert_eq!(a.set_info(t).unwrap().usage, 1);
}

#[test]
fn unnotified_fast_paths_match_the_two_phase_release() {
    // The same script with and without a subscriber ends in the same state.
    let run = |subscribe: bool| {
        let a = new_st::<u64>(&small(5)).unwrap();
        if subscribe {
            let _ = a.subscribe(Box::new(|_, _, _: &u64| {}), None);
        }
        let s = a.create_set(VM, 8).unwrap();
        let ps: Vec<Pasid> = (0..6).map(|i| a.alloc(s, 1, 31, i).unwrap()).collect();
        // Head, middle and tail of the set's list, one referenced.
        a.get(s, ps[2]).unwrap();
        for &p in [ps[5], ps[2], ps[0], ps[3]].iter() {
            a.free(s, p).unwrap();
            assert_eq!(a.free(s, p), Err(Error::PasidNotFound));
        }
        let mid = (a.set_info(s).unwrap(), a.pasid_info(ps[2]));
        a.put(s, ps[2]).unwrap();
        let again: Vec<Pasid> = (0..3).map(|i| a.alloc(s, 1, 31, 10 + i).unwrap()).collect();
        let t = a.destroy_set(s).unwrap();
        (mid, again, t, a.with_core(|c| (c.live(), c.nr_sets())))
    };
    let fast = run(false);
    assert_eq!(fast, run(true));
    assert_eq!(fast.0 .0.usage, 3);
    assert_eq!(fast.3, (0, 0));
}

/// Private data whose drop records whether the state lock was held.
struct Probe(Rc<RefCell<Vec<(u64, u32)>>>, u64);

impl Word for Probe {
    fn word(&self) -> usize {
        self.1 as usize
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let held = STATE_HELD.with(|h| h.get());
        self.0.borrow_mut().push((self.1, held));
    }
}

#[test]
fn data_is_dropped_outside_the_state_lock() {
    let drops: Rc<RefCell<Vec<(u64, u32)>>> = Default::default();
    let a = new_st::<Probe>(&small(3)).unwrap();
    let s = a.create_set(VM, 7).unwrap();
    let p = a.alloc(s, 1, 7, Probe(drops.clone(), 1)).unwrap();
    let q = a.alloc(s, 1, 7, Probe(drops.clone(), 2)).unwrap();
    let r = a.alloc(s, 1, 7, Probe(drops.clone(), 3)).unwrap();
    // Failed alloc: data dropped unlocked.
    assert_eq!(
        a.alloc(s, 5, 4, Probe(drops.clone(), 4)),
        Err(Error::InvalidRange)
    );
    let old = a.set_data(s, p, Probe(drops.clone(), 5)).unwrap();
    drop(old);
    a.free(s, p).unwrap(); // no subscribers: completed in the first critical section
    let _ = a.subscribe(Box::new(|_, _, _: &Probe| {}), None);
    a.free(s, q).unwrap(); // with a subscriber
    a.destroy_set(s).unwrap(); // releases r
    let _ = r;
    let got = drops.borrow().clone();
    assert_eq!(got, [(4, 0), (1, 0), (5, 0), (2, 0), (3, 0)]);
}

// ---------------------------------------------------------------------------------------------
// Set teardown

#[test]
fn destroy_set_frees_and_reports_everything() {
    let log: NoteLog<u64> = Default::default();
    let a = new_st::<u64>(&small(5)).unwrap();
    a.subscribe(recorder(&log), None).ok().unwrap();
    let s = a.create_set(VM, 10).unwrap();
    let t = a.create_set(MDEV, 10).unwrap();
    let ps: Vec<Pasid> = (0..5)
        .map(|i| a.alloc(s, 1, 31, 100 + i).unwrap())
        .collect();
    let pt = a.alloc(t, 1, 31, 200).unwrap();
    // ps[1] is referenced, ps[3] was freed with a reference already.
    a.get(s, ps[1]).unwrap();
    a.get(s, ps[3]).unwrap();
    a.free(s, ps[3]).unwrap();
    let report = a.destroy_set(s).unwrap();
    assert_eq!(
        report,
        Teardown {
            freed: 4,
            deferred: 1
        }
    );
    let mut got: Vec<_> = log.borrow().clone();
    got.sort();
    assert_eq!(got, [(s, ps[0], 100), (s, ps[2], 102), (s, ps[4], 104)]);
    let info = a.set_info(s).unwrap();
    assert_eq!((info.dying, info.usage, info.active), (true, 2, 0));
    // Dying set: no new work; the PASIDs are gone for lookups.
    assert_eq!(a.alloc(s, 1, 31, 0), Err(Error::SetNotFound));
    assert_eq!(a.set_quota(s, 3), Err(Error::SetNotFound));
    assert_eq!(a.destroy_set(s), Err(Error::SetNotFound));
    assert_eq!(a.find(s, ps[1]), Err(Error::PasidNotFound));
    assert_eq!(a.free(s, ps[1]), Err(Error::PasidNotFound));
    // The other set is untouched.
    assert_eq!(a.find(t, pt), Ok(200));
    // Dropping the remaining references releases the rest and removes the set.
    a.put(s, ps[1]).unwrap();
    assert_eq!(a.set_info(s).unwrap().usage, 1);
    a.put(s, ps[3]).unwrap();
    assert_eq!(a.set_info(s), Err(Error::SetNotFound));
    assert_eq!(log.borrow().len(), 5);
    assert_eq!(a.with_core(|c| (c.live(), c.nr_sets())), (1, 1));
}

#[test]
fn destroy_empty_set() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let s = a.create_set(Owner::new(OwnerKind::Sva, 1), 1).unwrap();
    assert_eq!(a.destroy_set(s), Ok(Teardown::default()));
    assert_eq!(a.set_info(s), Err(Error::SetNotFound));
    assert_eq!(a.with_core(|c| c.nr_sets()), 0);
}

// ---------------------------------------------------------------------------------------------
// Custom allocators

#[test]
fn custom_allocator_life_cycle() {
    let a = new_st::<u64>(&small(4)).unwrap();
    let log: Rc<RefCell<Vec<String>>> = Default::default();
    let log2 = log.clone();
    let alloc = TestAllocator::new();
    let shared = alloc.clone();
    a.subscribe(
        Box::new(move |_, p, _: &u64| {
            shared.state().log.push(format!("notify {p}"));
            log2.borrow_mut().push(format!("notify {p}"));
        }),
        None,
    )
    .ok()
    .unwrap();
    let s = a.create_set(VM, 8).unwrap();

    assert_eq!(a.unregister_allocator().err(), Some(Error::NoAllocator));
    assert_eq!(Error::NoAllocator.to_errno(), -2);
    // Not while PASIDs are live.
    let p0 = a.alloc(s, 1, 15, 0).unwrap();
    let rej = a.register_allocator(alloc.clone()).unwrap_err();
    assert_eq!(rej.error, Error::SpaceInUse);
    assert_eq!(Error::SpaceInUse.to_errno(), -16);
    a.free(s, p0).unwrap();
    a.register_allocator(alloc.clone()).unwrap();
    let rej = a.register_allocator(TestAllocator::new()).unwrap_err();
    assert_eq!(rej.error, Error::AllocatorRegistered);
    assert_eq!(Error::AllocatorRegistered.to_errno(), -16);
    assert!(a.with_core(|c| c.has_allocator()));

    // The allocator picks (highest first).
    assert_eq!(a.alloc(s, 1, 15, 1), Ok(15));
    assert_eq!(a.alloc(s, 1, 15, 2), Ok(14));
    assert_eq!(a.alloc(s, 3, 5, 3), Ok(5));
    assert_eq!(a.find(s, 14), Ok(2));
    assert!(a.pasid_info(14).unwrap().custom);
    // Release gives the PASID back to the allocator after the notifiers ran.
    a.free(s, 14).unwrap();
    assert_eq!(alloc.state().freed, [14]);
    let events = alloc.state().log.clone();
    assert_eq!(
        events,
        [
            "notify 1",
            "alloc 15",
            "alloc 14",
            "alloc 5",
            "notify 14",
            "free 14"
        ]
    );
    // Range checks still apply before the allocator is asked.
    assert_eq!(a.alloc(s, 1, 16, 0), Err(Error::InvalidRange));
    // The allocator's own errors pass through.
    alloc.state().fault = Fault::Fail(Error::NoMemory);
    assert_eq!(a.alloc(s, 1, 15, 0), Err(Error::NoMemory));
    alloc.state().fault = Fault::None;

    // Unregister with 2 live PASIDs (15, 5): they stay valid.
    let (back, orphaned) = a.unregister_allocator().unwrap();
    assert_eq!(orphaned, 2);
    drop(back);
    assert!(!a.with_core(|c| c.has_allocator()));
    assert_eq!(a.find(s, 15), Ok(1));
    // The default allocator takes over and avoids the live ones.
    assert_eq!(a.alloc(s, 5, 15, 4), Ok(6));
    assert_eq!(a.alloc(s, 1, 15, 5), Ok(1));
    assert!(!a.pasid_info(1).unwrap().custom);
    // A new custom allocator must wait for the orphans to go.
    let mut out = String::new();
    a.dump(&mut out).unwrap();
    assert!(out.contains("allocator default (2 orphaned)"), "{out}");
    assert_eq!(
        a.register_allocator(TestAllocator::new())
            .unwrap_err()
            .error,
        Error::SpaceInUse
    );
    // Orphans are released without calling the gone allocator.
    a.free(s, 15).unwrap();
    a.free(s, 5).unwrap();
    assert_eq!(alloc.state().freed, [14]);
    assert_eq!(a.with_core(|c| c.custom_live()), 0);
    assert!(log.borrow().contains(&"notify 15".to_string()));
    a.free(s, 6).unwrap();
    a.free(s, 1).unwrap();
    a.register_allocator(TestAllocator::new()).unwrap();
}

#[test]
fn faulty_custom_allocator() {
    let reserved = [8..=9];
    let a = new_st::<u64>(&small(4).with_reserved(&reserved)).unwrap();
    let s = a.create_set(VM, 8).unwrap();
    let alloc = TestAllocator::new();
    a.register_allocator(alloc.clone()).unwrap();
    for bad in [0, 8, 12, 16, u32::MAX] {
        alloc.state().fault = Fault::Fixed(bad);
        assert_eq!(a.alloc(s, 1, 11, 0), Err(Error::AllocatorFault), "{bad}");
    }
    // Reserved or out-of-range answers were handed back.
    assert_eq!(alloc.state().freed, [0, 8, 12, 16, u32::MAX]);
    assert_eq!(Error::AllocatorFault.to_errno(), -5);
    // A live PASID is someone else's: refused and not freed.
    alloc.state().fault = Fault::None;
    let p = a.alloc(s, 1, 11, 7).unwrap();
    assert_eq!(p, 11);
    alloc.state().fault = Fault::Fixed(p);
    assert_eq!(a.alloc(s, 1, 11, 0), Err(Error::AllocatorFault));
    assert_eq!(alloc.state().freed.len(), 5);
    assert_eq!(a.find(s, p), Ok(7));
    assert_eq!(a.set_info(s).unwrap().usage, 1);
}

// ---------------------------------------------------------------------------------------------
// Out of memory

#[test]
fn out_of_memory() {
    let oom = Oom::default();
    let a = new_st_oom::<u64>(&small(4), &oom).unwrap();
    Oom::set(&oom.sets, true);
    assert_eq!(a.create_set(VM, 4), Err(Error::NoMemory));
    assert_eq!(Error::NoMemory.to_errno(), -12);
    Oom::set(&oom.sets, false);
    let s = a.create_set(VM, 4).unwrap();
    Oom::set(&oom.pasids, true);
    assert_eq!(a.alloc(s, 1, 15, 0), Err(Error::NoMemory));
    assert_eq!(a.set_info(s).unwrap().usage, 0);
    // With a custom allocator, the PASID goes back to it.
    let alloc = TestAllocator::new();
    a.register_allocator(alloc.clone()).unwrap();
    assert_eq!(a.alloc(s, 1, 15, 0), Err(Error::NoMemory));
    assert_eq!(alloc.state().freed, [15]);
    let _ = a.unregister_allocator().unwrap();
    Oom::set(&oom.pasids, false);
    assert_eq!(a.alloc(s, 1, 15, 0), Ok(1));
    Oom::set(&oom.notifiers, true);
    let rej = a.subscribe(Box::new(|_, _, _: &u64| {}), None).unwrap_err();
    assert_eq!(rej.error, Error::NoMemory);
    assert_eq!(a.with_core(|c| c.subscribers()), 0);
}

/// The lookup table runs out of memory after the PASID was stored: the allocation is rolled
/// back (not live, not charged, handed back to a custom allocator) and the data comes back.
#[test]
fn out_of_memory_in_the_lookup_table() {
    let oom = Oom::default();
    let a = new_st_oom::<u64>(&small(11), &oom).unwrap();
    // The set's generation goes into the table: a failure fails the creation.
    Oom::set(&oom.lookup, true);
    assert_eq!(a.create_set(VM, 4), Err(Error::NoMemory));
    assert_eq!(a.with_core(|c| c.nr_sets()), 0);
    Oom::set(&oom.lookup, false);
    let s = a.create_set(VM, 1100).unwrap();
    Oom::set(&oom.lookup, true);
    assert_eq!(a.alloc(s, 1, 2047, 7), Err(Error::NoMemory));
    assert_eq!(a.with_core(|c| c.live()), 0);
    assert_eq!(a.set_info(s).unwrap().usage, 0);
    assert_eq!(a.pasid_info(1), None);
    assert_eq!(a.find_word(s, 1), Err(Error::PasidNotFound));
    let alloc = TestAllocator::new();
    a.register_allocator(alloc.clone()).unwrap();
    assert_eq!(a.alloc(s, 1, 2047, 7), Err(Error::NoMemory));
    assert_eq!(alloc.state().freed, [2047]);
    let _ = a.unregister_allocator().unwrap();
    Oom::set(&oom.lookup, false);
    assert_eq!(a.alloc(s, 1, 2047, 7), Ok(1));
    assert_eq!(a.find_word(s, 1), Ok(7));
    // The first block of the lookup table exists now: no allocation until PASID 1024.
    Oom::set(&oom.lookup, true);
    for p in 2..1024 {
        assert_eq!(a.alloc(s, 1, 2047, u64::from(p)), Ok(p));
    }
    assert_eq!(a.alloc(s, 1, 2047, 0), Err(Error::NoMemory));
    assert_eq!(a.find_word(s, 1023), Ok(1023));
    assert_eq!(a.find_word(s, 1024), Err(Error::PasidNotFound));
}

// ---------------------------------------------------------------------------------------------
// Two-phase release on the bare core

#[test]
fn core_release_is_two_phase() {
    let mut c: IoasidCore<St<u64>> = core_st(&small(3)).unwrap();
    let s = c.create_set(VM, 7).unwrap();
    let p = c.alloc(s, 1, 7, 9).unwrap();
    let q = c.alloc(s, 1, 7, 10).unwrap();
    let mut chain = c.free(s, p).unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(c.pasid_info(p).unwrap().state, PasidState::Releasing);
    // Reserved while releasing, for everybody.
    assert_eq!(c.alloc(s, p, p, 0).unwrap_err().error, Error::NoSpace);
    assert_eq!(c.find(s, p).err(), Some(Error::PasidNotFound));
    assert_eq!(c.put(s, p).err(), Some(Error::PasidNotFound));
    assert_eq!(c.set_info(s).unwrap().usage, 2);
    let r = c.next_release(&mut chain).unwrap();
    assert!(chain.is_empty());
    assert!(c.next_release(&mut chain).is_none());
    assert_eq!((r.set(), r.pasid(), *r.data()), (s, p, 9));
    assert_eq!(c.complete_release(r), 9);
    assert_eq!(c.set_info(s).unwrap().usage, 1);
    assert_eq!(c.alloc(s, p, p, 0).ok(), Some(p));
    // Destroy: a chain of the two remaining PASIDs.
    let (report, mut chain) = c.destroy_set(s).unwrap();
    assert_eq!(report.freed, 2);
    assert_eq!(chain.len(), 2);
    let mut seen = vec![];
    while let Some(r) = c.next_release(&mut chain) {
        seen.push(r.pasid());
        c.complete_release(r);
    }
    seen.sort();
    assert_eq!(seen, [p, q]);
    assert_eq!((c.live(), c.nr_sets()), (0, 0));
    // An empty chain yields nothing.
    let mut empty = ReleaseChain::new();
    assert!(c.next_release(&mut empty).is_none());
}

#[test]
fn leaked_chain_keeps_pasids_reserved() {
    let mut c: IoasidCore<St<u64>> = core_st(&small(2)).unwrap();
    let s = c.create_set(VM, 3).unwrap();
    let p = c.alloc(s, 1, 3, 0).unwrap();
    drop(c.free(s, p).unwrap());
    assert_eq!(c.pasid_info(p).unwrap().state, PasidState::Releasing);
    assert_eq!(c.alloc(s, p, p, 0).unwrap_err().error, Error::NoSpace);
}

// ---------------------------------------------------------------------------------------------
// debugfs

#[test]
fn debugfs_view() {
    let reserved = [8..=9, 12..=12];
    let a = new_st::<u64>(&small(4).with_reserved(&reserved)).unwrap();
    a.subscribe(Box::new(|_, _, _: &u64| {}), None)
        .ok()
        .unwrap();
    let s = a.create_set(VM, 8).unwrap();
    let t = a
        .create_set(Owner::new(OwnerKind::Mdev, 0xbeef), 2)
        .unwrap();
    let p1 = a.alloc(s, 1, 15, 0).unwrap();
    let p2 = a.alloc(s, 1, 15, 0).unwrap();
    let p3 = a.alloc(t, 10, 15, 0).unwrap();
    a.get(s, p2).unwrap();
    a.free(s, p2).unwrap();
    a.get(t, p3).unwrap();
    a.get(t, p3).unwrap();
    let _ = p1;
    let mut out = String::new();
    a.dump(&mut out).unwrap();
    let expected = "\
pasid_bits 4 max 0xf capacity 12
reserved 0x0 0x8-0x9 0xc
allocator default
live 3 sets 2 subscribers 1
sets:
  set        owner                 quota    usage   active  state
  1.0        vm:0x2a                   8        2        1  live
  2.1        mdev:0xbeef               2        1        1  live
pasids:
  pasid      set        refs  state      origin
  0x1        1.0           0  active     default
  0x2        1.0           1  freed      default
  0xa        2.1           2  active     default
";
    assert_eq!(out, expected);
    a.destroy_set(t).unwrap();
    let mut out = String::new();
    a.dump(&mut out).unwrap();
    assert!(out.contains("  2.1        mdev:0xbeef               2        1        0  dying\n"));
    // A writer that fails makes the dump fail (no panic).
    struct Full;
    impl std::fmt::Write for Full {
        fn write_str(&mut self, _: &str) -> std::fmt::Result {
            Err(std::fmt::Error)
        }
    }
    assert!(a.dump(&mut Full).is_err());
}

#[test]
fn counters_stay_consistent() {
    let a = new_st::<u64>(&small(6)).unwrap();
    let sets: Vec<_> = (0..3).map(|i| a.create_set(VM, 10 + i).unwrap()).collect();
    let n = Cell::new(0u32);
    for (i, &s) in sets.iter().enumerate() {
        for _ in 0..=i {
            a.alloc(s, 1, 63, 0).unwrap();
            n.set(n.get() + 1);
        }
    }
    assert_eq!(a.with_core(|c| c.live()), n.get());
    let total: u32 = sets.iter().map(|&s| a.set_info(s).unwrap().usage).sum();
    assert_eq!(total, n.get());
}
