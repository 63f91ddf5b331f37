// SPDX-License-Identifier: GPL-2.0
//! Test harness: the SMMU model (SSIDSIZE = 20, 2-level CD tables), the driver core on it,
//! page tables over `PhysMem`, an ioasid PASID allocator, and the model's snoop control.
#![allow(dead_code)]

use auxdomain::smmuv3::asid::{AsidAllocator, AsidBits};
use auxdomain::smmuv3::device::{Smmu, SmmuConfig};
use auxdomain::smmuv3::dma::DmaAllocator;
use auxdomain::smmuv3::domain::inv_features;
use auxdomain::smmuv3::pgtable::{Config, Granule};
use auxdomain::Prot;
use auxdomain::{AuxDevice, AuxDomain, DeviceInfo, MsiWindow, PasidCap, SnoopControl};
use ioasid::{
    Backend, Config as IoConfig, IdStore, IoasidCore, NoAllocator, Owner, OwnerKind, PasidEntry,
    SetEntry, SetId, StoreError,
};
use physmem::{Block, PhysMem};
use smmu_model::{Device, DmaRequest, Features, SmmuModel};
use std::cell::RefCell;
use std::collections::BTreeMap;

pub type Drv = Smmu<SmmuModel, PhysMem>;
pub type Dom = AuxDomain<PhysMem, MapStore>;
pub type Dev = AuxDevice<Block, auxdomain::smmuv3::store::FixedStore<Block, 64>>;

pub const RW: Prot = Prot(Prot::READ.0 | Prot::WRITE.0);

/// Page-table store (see `physmem::ArenaStore`).
pub type MapStore = physmem::ArenaStore<Block>;

/// The model's No_snoop stripping, driven by the layer.
#[derive(Clone)]
pub struct ModelSnoop(pub SmmuModel);

impl SnoopControl for ModelSnoop {
    fn set_snoop_forced(&mut self, sid: u32, ssid: Option<u32>, forced: bool) {
        self.0.set_snoop_forced(sid, ssid, forced)
    }
}

/// One SMMU model with the driver on it.
pub struct Rig {
    pub mem: PhysMem,
    pub model: SmmuModel,
    pub smmu: Drv,
    pub asids: AsidAllocator,
    pub snoop: ModelSnoop,
}

impl Rig {
    pub fn new() -> Self {
        Self::with(Features::default())
    }

    pub fn with(f: Features) -> Self {
        let mem = PhysMem::new(0x8000_0000, 1 << 30);
        let model = SmmuModel::new(mem.clone(), f);
        let mut smmu = Smmu::probe(model.clone(), mem.clone(), SmmuConfig::default()).unwrap();
        smmu.enable().unwrap();
        let asid16 = smmu.features().asid_bits == 16;
        Self {
            mem,
            snoop: ModelSnoop(model.clone()),
            model,
            smmu,
            asids: AsidAllocator::new(AsidBits::from_asid16(asid16)),
        }
    }

    pub fn info(sids: &[u32], bits: u32) -> DeviceInfo<'_> {
        DeviceInfo {
            id: sids[0],
            sids,
            pasid: Some(PasidCap {
                max_pasid_bits: bits,
            }),
            min_pasid: 1,
            max_pasid: u32::MAX,
            ats: false,
            snoop_control: true,
        }
    }

    pub fn device(&mut self, sid: u32) -> (Dev, Device) {
        let d = AuxDevice::enable_pasid(
            &mut self.smmu,
            &Self::info(&[sid], 20),
            auxdomain::RidMode::Blocked,
        )
        .unwrap();
        (d, Device::new(self.model.clone(), sid))
    }

    /// A 4K-granule domain with the MSI window `window`.
    pub fn domain_in(&mut self, window: MsiWindow) -> Result<Dom, auxdomain::Error> {
        let cfg = Config {
            granule: Granule::G4K,
            ias: 48,
            oas: 48,
            coherent_walk: true,
        };
        let inv = inv_features(self.smmu.features());
        AuxDomain::new(
            cfg,
            self.mem.clone(),
            MapStore::default(),
            &mut self.asids,
            inv,
            window,
        )
    }

    pub fn domain(&mut self) -> Dom {
        self.domain_in(MsiWindow::default()).unwrap()
    }

    pub fn page(&self) -> Block {
        self.mem.alloc_zeroed(4096, 4096).unwrap()
    }
}

pub fn req(pasid: Option<u32>, iova: u64) -> DmaRequest {
    DmaRequest {
        pasid,
        iova,
        no_snoop: false,
        privileged: false,
    }
}

pub fn ns_req(pasid: Option<u32>, iova: u64) -> DmaRequest {
    DmaRequest {
        no_snoop: true,
        ..req(pasid, iova)
    }
}

// ---------------------------------------------------------------------------------------------
// ioasid: a single-threaded platform (BTreeMap stores, RefCell locks).

pub struct BTreeStore<T>(pub BTreeMap<u32, T>);

impl<T> Default for BTreeStore<T> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<T> IdStore<T> for BTreeStore<T> {
    fn alloc(&mut self, min: u32, max: u32, value: T) -> Result<u32, StoreError> {
        let mut c = u64::from(min);
        for &k in self.0.range(min..=max).map(|(k, _)| k) {
            if u64::from(k) != c {
                break;
            }
            c += 1;
        }
        if c > u64::from(max) {
            return Err(StoreError::Full);
        }
        self.0.insert(c as u32, value);
        Ok(c as u32)
    }
    fn insert(&mut self, id: u32, value: T) -> Result<(), StoreError> {
        if self.0.contains_key(&id) {
            return Err(StoreError::Occupied);
        }
        self.0.insert(id, value);
        Ok(())
    }
    fn get(&self, id: u32) -> Option<&T> {
        self.0.get(&id)
    }
    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.0.get_mut(&id)
    }
    fn remove(&mut self, id: u32) -> Option<T> {
        self.0.remove(&id)
    }
    fn next(&self, from: u32) -> Option<(u32, &T)> {
        self.0.range(from..).next().map(|(k, v)| (*k, v))
    }
}

pub struct St;

impl Backend for St {
    type Data = ();
    type PasidStore = BTreeStore<PasidEntry<()>>;
    type SetStore = BTreeStore<SetEntry>;
    type Allocator = NoAllocator;
}

/// A PASID space of `bits` bits and one set for the mediated-device parent. Single-threaded
/// tests drive the allocator's core directly (no locks, no notifiers).
pub struct Pasids {
    core: RefCell<IoasidCore<St>>,
    pub set: SetId,
}

impl Pasids {
    pub fn new(bits: u32, quota: u32) -> Self {
        let cfg = IoConfig {
            pasid_bits: bits,
            reserved: &[],
            max_sets: 4,
        };
        let mut core = IoasidCore::new(&cfg, BTreeStore::default(), BTreeStore::default()).unwrap();
        let set = core
            .create_set(Owner::new(OwnerKind::Mdev, 1), quota)
            .unwrap();
        Self {
            core: RefCell::new(core),
            set,
        }
    }

    pub fn try_alloc(&self, min: u32, max: u32) -> Result<u32, ioasid::Error> {
        self.core
            .borrow_mut()
            .alloc(self.set, min, max, ())
            .map_err(|r| r.error)
    }

    pub fn alloc(&self, min: u32, max: u32) -> u32 {
        self.core
            .borrow_mut()
            .alloc(self.set, min, max, ())
            .map_err(|r| r.error)
            .unwrap()
    }

    pub fn free(&self, pasid: u32) {
        let mut core = self.core.borrow_mut();
        let mut chain = core.free(self.set, pasid).unwrap();
        while let Some(release) = core.next_release(&mut chain) {
            core.complete_release(release);
        }
    }
}
