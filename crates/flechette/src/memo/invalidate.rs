//! Invalidation: forgetting calls in process, in flight and in storage, and
//! the broadcast that tells other processes sharing a cache.

use super::*;

impl<A, T, E> Memo<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Starts listening to the invalidation broadcast of `cache`, once.
    pub(super) fn listen_to(self: &Arc<Self>, cache: &Cache) {
        let Some(broadcast) = cache.broadcast() else {
            return;
        };
        if !lock(&self.listening).insert(cache.id()) {
            return;
        }
        let mut messages = broadcast.subscribe();
        let (memo, cache_id) = (Arc::downgrade(self), cache.id());
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let message = messages.recv().await;
                let Some(memo) = memo.upgrade() else { return };
                match message {
                    Ok(message) => memo.forget(cache_id, &message),
                    // Missed messages: forget everything of this cache.
                    Err(RecvError::Lagged(_)) => memo.hot.remove_where(cache_id, |_| true),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// Applies an invalidation that another process (or this one) sent.
    pub(super) fn forget(&self, cache_id: u64, message: &Invalidation) {
        let ident = &self.ident;
        if message.name != ident.name
            || message.module != ident.module
            || message.version != ident.version
        {
            return;
        }
        match message.key {
            Some(key) => {
                let tag = call_tag(&key);
                self.hot.remove_where(cache_id, |e| e.call == tag);
            }
            None => self.hot.remove_where(cache_id, |_| true),
        }
    }

    /// Tells the other processes sharing `cache` to forget `key` (all calls
    /// for `None`).
    pub(super) async fn announce(&self, cache: &Cache, key: Option<Digest>) {
        if let Some(broadcast) = cache.broadcast() {
            let message = Invalidation {
                name: self.ident.name.clone(),
                module: self.ident.module.clone(),
                version: self.ident.version.clone(),
                key,
            };
            if let Err(e) = broadcast.publish(&message).await {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, error = %e, "could not broadcast an invalidation");
            }
        }
    }

    /// Drops the entry of `args` from the hot tier (under every cache), the
    /// flights, and every level of the active cache.
    pub(crate) async fn invalidate(&self, args: &A) -> Result<bool, CacheError> {
        let mut bytes = ArgBytes::new();
        encoding::write_to(args, &mut Buf(&mut bytes))?;
        let call_key = self.key_of(&args.digests()?);
        let forget = || {
            let marked = lock(&self.flights).invalidate_where(|k| *k.args == *bytes);
            self.hot.remove_args(&bytes);
            marked
        };
        // Mark the running flights, and wait for any that is storing its
        // result: from then on none of them writes, and the eviction takes
        // whatever they wrote. Mark again after: a flight started meanwhile
        // may have read the old record, and must not promote it.
        let mut marked = forget();
        for flight in &marked {
            drop(flight.storing.lock().await);
        }
        let cache = self.cache();
        let evicted = cache.evict(&call_key).await;
        marked.extend(forget());
        // Only now may the detached waiters start anew: nothing they read
        // is the invalidated call.
        for flight in marked {
            flight.release_waiters();
        }
        self.announce(&cache, Some(call_key)).await;
        evicted
    }

    /// Drops every entry of this function from the hot tier, the flights
    /// and every level of the active cache; returns how many stored calls
    /// were evicted.
    pub(crate) async fn invalidate_all(
        &self,
        query: flechette_core::CallQuery,
    ) -> Result<usize, CacheError> {
        let forget = || {
            let marked = lock(&self.flights).invalidate_all();
            self.hot.clear();
            marked
        };
        // As in `invalidate`: mark running flights and wait for their
        // stores before the evictions, and mark again after.
        let mut marked = forget();
        for flight in &marked {
            drop(flight.storing.lock().await);
        }
        let cache = self.cache();
        let mut evicted = 0;
        let mut outcome = Ok(());
        match cache.query(&query).await {
            Ok(calls) => {
                for call in calls {
                    // An unversioned function's query matches every version.
                    if call.record().version != self.ident.version {
                        continue;
                    }
                    match cache.evict(&call.digest()).await {
                        Ok(removed) => evicted += usize::from(removed),
                        Err(e) => {
                            outcome = Err(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => outcome = Err(e),
        }
        // Whatever storage did, the process forgets, and tells the others.
        marked.extend(forget());
        for flight in marked {
            flight.release_waiters();
        }
        self.announce(&cache, None).await;
        outcome.map(|()| evicted)
    }
}
