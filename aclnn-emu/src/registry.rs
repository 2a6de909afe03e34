//! Every live object the C API has handed out: tensors, int arrays, executors and device
//! allocations, in one process-wide table behind a mutex.
//!
//! A handle (`aclTensor *`, `aclIntArray *`, `aclOpExecutor *`) is the address of a boxed Rust
//! object owned by this table; the C side never dereferences it and neither does the emulator:
//! it looks the address up. So a null, foreign, stale or doubly released handle is a lookup miss
//! (an error code), never undefined behaviour.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use crate::device::Allocation;
use crate::executor::Plan;
use crate::tensor::{AclIntArray, AclTensor};

/// Boxed objects keyed by their (stable) heap address, which is the handle given to C.
pub(crate) struct Table<T> {
    live: HashMap<usize, Box<T>>,
}

impl<T> Table<T> {
    fn new() -> Self {
        Table { live: HashMap::new() }
    }

    /// Takes ownership of `value` and returns its handle (never 0: a box is never null). Every
    /// `T` stored here has a non-zero size, so distinct live boxes have distinct addresses.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        let boxed = Box::new(value);
        let handle = std::ptr::from_ref::<T>(boxed.as_ref()).addr();
        self.live.insert(handle, boxed);
        handle
    }

    /// The object behind a live handle.
    pub(crate) fn get(&self, handle: usize) -> Option<&T> {
        self.live.get(&handle).map(|b| &**b)
    }

    /// Releases a live handle, returning its object.
    pub(crate) fn remove(&mut self, handle: usize) -> Option<Box<T>> {
        self.live.remove(&handle)
    }

    /// Number of live handles.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

/// The process-wide state of the emulated runtime.
pub(crate) struct Registry {
    /// `aclTensor` handles.
    pub(crate) tensors: Table<AclTensor>,
    /// `aclIntArray` handles.
    pub(crate) int_arrays: Table<AclIntArray>,
    /// `aclOpExecutor` handles, each prepared by a GetWorkspaceSize call for one launch.
    pub(crate) executors: Table<Plan>,
    /// aclrtMalloc allocations by start address.
    pub(crate) allocations: HashMap<usize, Allocation>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        tensors: Table::new(),
        int_arrays: Table::new(),
        executors: Table::new(),
        allocations: HashMap::new(),
    })
});

/// Locks the registry. A panic while it was held (impossible by construction, but caught at the
/// FFI boundary) leaves the tables consistent, so a poisoned lock is recovered, not propagated.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The number of live objects of each kind, process-wide (for leak tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Tensors created and not yet destroyed.
    pub tensors: usize,
    /// Int arrays created and not yet destroyed.
    pub int_arrays: usize,
    /// Executors returned by a GetWorkspaceSize call and not yet consumed by a launch.
    pub executors: usize,
    /// aclrtMalloc allocations not yet freed.
    pub allocations: usize,
}

/// Counts the live objects of the whole process. All threads share the emulated runtime, so a
/// leak test must not run concurrently with other users of the C API.
pub fn live_objects() -> LiveCounts {
    let r = lock();
    LiveCounts {
        tensors: r.tensors.len(),
        int_arrays: r.int_arrays.len(),
        executors: r.executors.len(),
        allocations: r.allocations.len(),
    }
}
