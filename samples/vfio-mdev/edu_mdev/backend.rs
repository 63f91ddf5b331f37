// SPDX-License-Identifier: GPL-2.0

//! How the engine reaches an mdev's memory: [`Backend`], with the [`Mediated`] and
//! [`PasidAux`] modes, and the engines' capabilities ([`EngineCaps`]) the mode is chosen from.

use super::*;

/// A device address for one page of an mdev's I/O address space, valid while it lives.
pub(crate) enum Mapped<'a> {
    /// Mediated mode: the parent's own DMA mapping of the pinned page.
    Dma(vfio::PinnedPageDma<'a>),
    /// PASID mode: the page is mapped at its IOVA in the mdev's auxiliary domain, unmapped (and
    /// the IOTLB invalidated) on drop.
    Pasid {
        iova: u64,
        pasid: u32,
        aux: &'a PasidAux,
    },
    /// Fault injection only: an IOVA deliberately left unmapped.
    Unmapped { iova: u64 },
}

impl Mapped<'_> {
    pub(crate) fn addr(&self) -> u64 {
        match self {
            Mapped::Dma(m) => m.dma_addr(),
            Mapped::Pasid { iova, .. } | Mapped::Unmapped { iova } => *iova,
        }
    }
}

impl Drop for Mapped<'_> {
    fn drop(&mut self) {
        if let Mapped::Pasid { iova, pasid, aux } = self {
            aux.unmap(*pasid, *iova);
        }
    }
}

/// How the parent's engine reaches the memory of an mdev.
pub(crate) trait Backend: Send + Sync {
    /// `pasid` or `mediated` (the mdev's `mode` attribute).
    fn mode(&self) -> &'static str;
    /// The engine's DMA for an mdev is tagged with the mdev's PASID (and the addresses it is
    /// programmed with are the user's IOVAs, translated by the mdev's domain).
    fn tags_dma(&self) -> bool {
        false
    }
    /// An mdev got `pasid`.
    fn attach(&self, pasid: u32) -> Result;
    /// The mdev with `pasid` goes away.
    fn detach(&self, pasid: u32);
    /// The engine's completion interrupt for a DMA tagged with `pasid`, as a PASID-tagged
    /// message (address in the mdev's domain, data); `None`: the parent's PCI MSI.
    fn completion_message(&self, _pasid: u32) -> Option<(u64, u32)> {
        None
    }
    /// Makes pinned page `page` (at `iova` of the mdev) reachable by the engine.
    fn map<'a>(
        &'a self,
        pasid: u32,
        page: &'a vfio::PinnedPages<'_, MdevVfio>,
        iova: u64,
        dir: DataDirection,
    ) -> Result<Mapped<'a>>;
}

/// No PASID on the platform: the parent pins the mdev's pages and maps them with its own (RID)
/// DMA mapping. Isolation comes from the pinning: only IOVAs the mdev's user mapped resolve.
pub(crate) struct Mediated {
    pub(crate) dev: ARef<Device>,
}

impl Backend for Mediated {
    fn mode(&self) -> &'static str {
        "mediated"
    }
    fn attach(&self, _pasid: u32) -> Result {
        Ok(())
    }
    fn detach(&self, _pasid: u32) {}
    fn map<'a>(
        &'a self,
        _pasid: u32,
        page: &'a vfio::PinnedPages<'_, MdevVfio>,
        _iova: u64,
        dir: DataDirection,
    ) -> Result<Mapped<'a>> {
        Ok(Mapped::Dma(page.dma_map(0, &self.dev, dir)?))
    }
}

/// PASID-capable platform: each mdev's PASID gets its own auxiliary domain
/// (`kernel::auxdomain`: MSI window, doorbells and the no-snoop policy per domain); pinned pages
/// are mapped there at the user's IOVA for one piece and the engine issues PASID-tagged DMA to
/// the IOVA. The engine's completion interrupt is edu-pasid's PASID-tagged message, whose
/// doorbell each domain binds (`msi_activate`): an mdev's completion reaches the CPU only
/// through its own domain. Selected for edu-pasid on the lab's PASID platform (`run.sh --platform pasid`);
/// the same flow runs on the SMMUv3 model in `engine/tests/pasid_model.rs`.
#[pin_data]
pub(crate) struct PasidAux {
    pub(crate) dev: AuxDevice,
    #[pin]
    /// Per mdev: PASID, domain, completion message (address, data, doorbell bound).
    pub(crate) domains: Mutex<[Option<(u32, AuxDomain, Option<(u64, u32, bool)>)>; MAX_MDEVS]>,
}

impl PasidAux {
    pub(crate) fn unmap(&self, pasid: u32, iova: u64) {
        let mut d = self.domains.lock();
        if let Some((_, dom, _)) = d.iter_mut().flatten().find(|(p, ..)| *p == pasid) {
            // Errors are logged by the layer; nothing else can be done from a drop.
            let _ = dom.unmap(iova, PAGE);
        }
    }

    /// Binds the parent's MSI doorbell (vector 0, as the kernel programmed it) in `dom` for
    /// the completion message tagged with `pasid`; returns the message. `None`, logged, if the
    /// parent has no MSI or the binding fails: completions are then the PCI MSI, or polled.
    /// Fault injection (`inject_no_doorbell`): the binding is dropped at once, the message
    /// kept, so the mdev's completions fault in its domain.
    pub(crate) fn bind_doorbell(
        &self,
        dom: &mut AuxDomain,
        pasid: u32,
    ) -> Option<(u64, u32, bool)> {
        let (doorbell, data) = self.dev.msi_doorbell(0).ok()?;
        let src = MsiSource::Queue { pasid, queue: 0 };
        let addr = dom.msi_activate(&self.dev, src, doorbell).ok()?;
        let bound = !INJECT_NO_DOORBELL.get() || dom.msi_deactivate(&self.dev, src).is_err();
        Some((addr, data, bound))
    }
}

impl Backend for PasidAux {
    fn mode(&self) -> &'static str {
        "pasid"
    }
    fn tags_dma(&self) -> bool {
        true
    }
    fn attach(&self, pasid: u32) -> Result {
        let mut dom = AuxDomain::new(self.dev.device(), MsiWindow::default())?;
        // Coherency is enforced before the first mapping when the IOMMU can (VFIO's rule).
        if self.dev.snoop_control() {
            dom.enforce_cache_coherency()?;
        }
        dom.attach(&self.dev, pasid)?;
        let msg = self.bind_doorbell(&mut dom, pasid);
        let mut d = self.domains.lock();
        let free = d.iter_mut().find(|s| s.is_none()).ok_or(ENOSPC)?;
        *free = Some((pasid, dom, msg));
        Ok(())
    }
    fn detach(&self, pasid: u32) {
        let mut d = self.domains.lock();
        if let Some(s) = d
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|(p, ..)| *p == pasid))
        {
            if let Some((_, dom, Some((.., true)))) = s {
                // Errors are logged by the layer; dropping the domain unbinds what is left.
                let _ = dom.msi_deactivate(&self.dev, MsiSource::Queue { pasid, queue: 0 });
            }
            // Dropping the domain detaches it from the PASID and frees it.
            *s = None;
        }
    }
    fn completion_message(&self, pasid: u32) -> Option<(u64, u32)> {
        let d = self.domains.lock();
        let msg = d
            .iter()
            .flatten()
            .find(|(p, ..)| *p == pasid)
            .and_then(|(.., m)| *m);
        msg.map(|(addr, data, _)| (addr, data))
    }
    fn map<'a>(
        &'a self,
        pasid: u32,
        page: &'a vfio::PinnedPages<'_, MdevVfio>,
        iova: u64,
        dir: DataDirection,
    ) -> Result<Mapped<'a>> {
        let prot = if dir == DataDirection::ToDevice {
            auxdomain::Prot::READ
        } else {
            auxdomain::Prot::READ | auxdomain::Prot::WRITE
        };
        let phys = page.phys(0).ok_or(EINVAL)?;
        let mut d = self.domains.lock();
        let (_, dom, _) = d
            .iter_mut()
            .flatten()
            .find(|(p, ..)| *p == pasid)
            .ok_or(ENODEV)?;
        dom.map(iova, phys, PAGE, prot)?;
        Ok(Mapped::Pasid {
            iova,
            pasid,
            aux: self,
        })
    }
}

/// What the parent's DMA engine can do: the backend is chosen from it and the platform. The
/// PCI ID table gives each device its engine's capabilities.
#[derive(Clone, Copy)]
pub(crate) struct EngineCaps {
    /// The device, for the log.
    pub(crate) name: &'static str,
    /// The engine tags each DMA request with a PASID (a PCIe PASID TLP prefix), so the mdev's
    /// auxiliary domain translates it. Without it, PASID mode would program the engine with
    /// the user's IOVAs and its untagged requests would go through the parent's own
    /// (requester-ID) DMA domain at addresses the user chose: PASID mode needs this.
    pub(crate) pasid_tagged_dma: bool,
}

/// edu: one DMA engine whose requests carry only edu's requester ID (no PASID capability).
pub(crate) const EDU_ENGINE: EngineCaps = EngineCaps {
    name: "edu",
    pasid_tagged_dma: false,
};

/// edu-pasid (`docs/pasid-device.md`): edu's engine with a PASID capability; the DMA PASID
/// register tags its requests with a PASID the driver programs.
pub(crate) const EDU_PASID_ENGINE: EngineCaps = EngineCaps {
    name: "edu-pasid",
    pasid_tagged_dma: true,
};
