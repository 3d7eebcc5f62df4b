//! Support for code that `#[cached]` generates; not a public API.

use std::any::Any;
use std::sync::{Mutex, OnceLock};

type Shared = &'static (dyn Any + Send + Sync);

/// The home of the `CachedFn` behind one `#[cached]` method. A `static`
/// inside a method cannot name `Self`, so the function is kept type-erased
/// and found again by type; a method of a generic type gets one function
/// per instantiation.
#[derive(Debug)]
pub struct Slot {
    first: OnceLock<Shared>,
    more: Mutex<Vec<Shared>>,
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            first: OnceLock::new(),
            more: Mutex::new(Vec::new()),
        }
    }

    /// The value of type `C` in this slot, made by `init` the first time.
    pub fn get_or_init<C: Any + Send + Sync>(&'static self, init: impl Fn() -> C) -> &'static C {
        let first: Shared = *self.first.get_or_init(|| Box::leak(Box::new(init())));
        if let Some(c) = first.downcast_ref::<C>() {
            return c;
        }
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = more.iter().find_map(|a| a.downcast_ref::<C>()) {
            return c;
        }
        let c: &'static C = Box::leak(Box::new(init()));
        more.push(c);
        c
    }
}
