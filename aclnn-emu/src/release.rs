//! Which CANN release the emulator imitates. The release only changes validation (SPEC 1.2 and
//! 4); launches always compute the newer semantics (zero-init and scatter-add).

use std::sync::atomic::{AtomicU8, Ordering};

use gmmfr_dialect::profile::CannVersion;

/// A CANN release whose restrictions GetWorkspaceSize applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Release {
    /// Late-2025 releases: groupListType must be 1, sharedInput and logit both present or both
    /// absent, and A8W8 only for k = 2048, n = 7168.
    Older,
    /// Current releases (the default).
    #[default]
    Newer,
}

impl From<CannVersion> for Release {
    fn from(version: CannVersion) -> Self {
        match version {
            CannVersion::Older => Release::Older,
            CannVersion::Newer => Release::Newer,
        }
    }
}

const NEWER: u8 = 0;
const OLDER: u8 = 1;

static RELEASE: AtomicU8 = AtomicU8::new(NEWER);

/// Selects the release for every later GetWorkspaceSize call, on every thread.
pub fn set_release(release: Release) {
    let value = match release {
        Release::Older => OLDER,
        Release::Newer => NEWER,
    };
    RELEASE.store(value, Ordering::SeqCst);
}

/// The release currently imitated.
pub fn release() -> Release {
    match RELEASE.load(Ordering::SeqCst) {
        OLDER => Release::Older,
        _ => Release::Newer,
    }
}
