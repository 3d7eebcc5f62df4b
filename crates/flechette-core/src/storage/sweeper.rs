//! The periodic sweep of a storage: a background task on the runtime that
//! first used the storage, which stops with the storage.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A storage's periodic task (the sweep of expired calls): started on the
/// current runtime by [`ensure`](Self::ensure), stopped when the sweeper is
/// dropped. A task whose runtime shut down is started again by the next
/// `ensure` on another runtime.
///
/// Hold it in the storage state the task works on, and let the task hold
/// that state weakly: when the storage goes, the sweeper is dropped and
/// aborts the task.
#[derive(Debug)]
pub struct Sweeper {
    every: Option<Duration>,
    running: Arc<AtomicBool>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    done: Arc<Done>,
}

/// How many periodic sweeps have finished, and who waits for more.
#[derive(Debug, Default)]
struct Done {
    count: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Sweeper {
    /// A sweeper that runs every `every` once started (at least every
    /// millisecond); `None` for never.
    pub fn new(every: Option<Duration>) -> Self {
        Self {
            every: every.map(|d| d.max(Duration::from_millis(1))),
            running: Arc::new(AtomicBool::new(false)),
            task: Mutex::new(None),
            done: Arc::default(),
        }
    }

    /// How often it runs; `None` for never.
    pub fn every(&self) -> Option<Duration> {
        self.every
    }

    /// How many periodic sweeps have finished.
    pub fn sweeps(&self) -> u64 {
        self.done.count.load(Ordering::Acquire)
    }

    /// Waits until `n` periodic sweeps have finished (all of their work
    /// done, on the blocking pool too): for tests on a paused clock, which
    /// do not wait for the blocking pool by themselves.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn finished(&self, n: u64) {
        loop {
            let notified = self.done.notify.notified();
            if self.sweeps() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Whether [`ensure`](Self::ensure) would start a task: the sweeper
    /// runs periodically and its task is not running.
    pub fn idle(&self) -> bool {
        self.every.is_some() && !self.running.load(Ordering::Relaxed)
    }

    /// Starts the task on the current runtime, unless it runs already, the
    /// sweeper never runs or there is no runtime: the task calls `tick`
    /// every period (the first one period from now) and awaits what it
    /// returns, and ends when `tick` returns `None` (its storage is gone).
    /// Cheap when the task runs: one atomic load.
    pub fn ensure<F, Fut>(&self, mut tick: F)
    where
        F: FnMut() -> Option<Fut> + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(every) = self.every else { return };
        if self.running.load(Ordering::Relaxed) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, Ordering::Release);
            return;
        };
        let stopped = Stopped(Arc::clone(&self.running));
        let done = Arc::clone(&self.done);
        let task = runtime.spawn(async move {
            let _stopped = stopped;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(work) = tick() else { return };
                work.await;
                done.count.fetch_add(1, Ordering::AcqRel);
                done.notify.notify_waiters();
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
    }
}

/// Lets a sweeper start again once its task is gone (ended, aborted, or its
/// runtime shut down).
struct Stopped(Arc<AtomicBool>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}
