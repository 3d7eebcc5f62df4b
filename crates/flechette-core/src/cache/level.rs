//! One level of a cache: its value and call storage, and the write-behind
//! queue in front of them.

use std::sync::Arc;

use super::writer::{WriteBehind, Writer};
use crate::storage::{CallStorage, ValueStorage};

/// One level of a cache: a value store, a call store, and the write-behind
/// queue in front of them (shared by every cache built on this level).
#[derive(Clone)]
pub(crate) struct Level {
    pub(crate) values: Arc<dyn ValueStorage>,
    pub(crate) calls: Arc<dyn CallStorage>,
    /// `None` when the level writes in place (memory).
    pub(crate) queue: Option<Arc<Queue>>,
}

impl Level {
    pub(crate) fn new(
        values: Arc<dyn ValueStorage>,
        calls: Arc<dyn CallStorage>,
        bounds: WriteBehind,
    ) -> Self {
        let in_place = values.writes_in_place() && calls.writes_in_place();
        let queue = (!in_place).then(|| {
            Arc::new(Queue(Writer::new(
                Arc::clone(&values),
                Arc::clone(&calls),
                bounds,
            )))
        });
        Self {
            values,
            calls,
            queue,
        }
    }

    /// The writer of this level's queue.
    pub(crate) fn writer(&self) -> Option<&Arc<Writer>> {
        self.queue.as_deref().map(|q| &q.0)
    }
}

/// A level's writer, closed when the last cache using the level is gone.
pub(crate) struct Queue(Arc<Writer>);

impl Drop for Queue {
    fn drop(&mut self) {
        self.0.close();
    }
}
