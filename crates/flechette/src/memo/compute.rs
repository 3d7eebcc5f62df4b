//! Load, compute, store: a fresh stored call if there is one, else one run
//! of the function (bounded, watched, its panics caught), then the value in
//! the in-process tier and the cache.

use super::*;

impl<A, T, E> Memo<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// The body of a flight.
    pub(super) async fn run(
        &self,
        guard: &FlightGuard<A, T, E>,
        cache: Cache,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
    ) {
        let flight = &guard.flight;
        // Each argument is encoded once, on the call's way in: its bytes
        // are an element of the key bytes the call was looked up by, and
        // its digest the hash of them. The digests make the call key, the
        // bytes are stored with the result.
        let encoded = match encoding::array_elements(&guard.key.args) {
            Some(parts) if parts.len() == A::ARITY => parts
                .iter()
                .map(|p| (Digest::of_encoded(p), Bytes::copy_from_slice(p)))
                .collect(),
            _ => match args.encode() {
                Ok(encoded) => encoded,
                Err(e) => return flight.publish(Err(e.into())),
            },
        };
        let digests: Vec<Digest> = encoded.iter().map(|(d, _)| *d).collect();
        let call_key = self.key_of(&digests);
        let mut refreshing = kind == Kind::Refresh;
        if kind != Kind::Force
            && let Some((value, deadlines, age)) = self.stored(&cache, &call_key).await
        {
            self.promote(&guard.key, flight, &call_key, value.clone(), deadlines);
            if age == Age::Fresh {
                return flight.publish(Ok(value));
            }
            // Stale: served to callers until it expires, while this flight
            // refreshes it.
            flight.publish_early(value, deadlines.expire_at);
            // Served stale from storage: refresh it in this same flight.
            if !refreshing {
                Counters::count(&self.counters.refreshes_started);
                refreshing = true;
            }
        }
        // Across processes sharing the cache: one computes, the others wait
        // for its result.
        let mut lease = None;
        if kind != Kind::Force
            && let Some(coordinator) = cache.coordinator()
        {
            match self
                .lead_across(coordinator, &cache, &call_key, guard)
                .await
            {
                Across::Lead(held) => lease = held,
                Across::Served => return,
            }
        }
        let computed = self.compute(args, encoded, job).await;
        let release = async {
            if let (Some(coordinator), Some(lease)) = (cache.coordinator(), &lease)
                && let Err(e) = coordinator.release(&call_key, lease).await
            {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not release the cross-process lease; it expires by itself");
            }
        };
        match computed {
            Ok((value, record, values, freshness)) => {
                let mut published = false;
                if self.keeps(&value) {
                    let stored = ToStore {
                        key: call_key,
                        record,
                        values,
                        freshness,
                        // The lease is released once the result is written.
                        durable: lease.is_some(),
                    };
                    published = self
                        .store(&guard.key, flight, &cache, value.clone(), stored)
                        .await;
                } else if refreshing || kind == Kind::Force {
                    // A refused result replaces nothing: the value it would
                    // have refreshed goes, so it is not served again.
                    self.drop_refused(&guard.key, &cache, &call_key).await;
                }
                release.await;
                if !published {
                    flight.publish(Ok(value));
                }
            }
            Err(e) => {
                if refreshing {
                    Counters::count(&self.counters.refreshes_failed);
                    tracing::warn!(function = %self.ident.name, error = %e, "background refresh failed; the old value is kept until it expires");
                }
                release.await;
                // Whoever was served the stored value keeps it; callers
                // still waiting get the error.
                flight.publish(Err(e));
            }
        }
    }

    /// A stored call under `key` that has not expired, with its deadlines.
    pub(super) async fn stored(
        &self,
        cache: &Cache,
        key: &Digest,
    ) -> Option<(T, Deadlines<Instant>, Age)> {
        // The record and its result together: one round trip where the
        // storage can.
        let (record, bytes) = match cache.load_with_result(key).await {
            Ok(found) => found?,
            Err(e) => {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, %key, error = %e, "cache read failed; computing");
                return None;
            }
        };
        let deadlines = record.metadata.lifespan.as_ref().map_or(
            Deadlines {
                update_at: None,
                expire_at: None,
            },
            to_instants,
        );
        let age = deadlines.age(Instant::now());
        if age == Age::Expired {
            return None;
        }
        let decoded = bytes
            .ok_or(CacheError::MissingValue(record.result))
            .and_then(|b| encoding::from_slice::<T>(&b).map_err(CacheError::from));
        match decoded {
            Ok(value) => Some((value, deadlines, age)),
            Err(e) => {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, %key, error = %e, "cached result unreadable; computing");
                None
            }
        }
    }

    /// Runs the function once (bounded by the timeout) and prepares what to
    /// store: the value, its record, the encoded values (`encoded`, the
    /// arguments', and the result's), and its lifespan.
    pub(super) async fn compute(
        &self,
        args: A,
        encoded: Vec<(Digest, Bytes)>,
        job: Option<Job<A, T, E>>,
    ) -> Result<Computed<T>, CallError<E>> {
        let timestart = Timestamp::now();
        let started = Instant::now();
        let fut = match (job, &self.func) {
            (Some(job), _) => job(args),
            (None, Some(func)) => func(args),
            (None, None) => return Err(CallError::Unbound),
        };
        let running = self.counters.running();
        let fut = watch_slow(&self.ident.name, self.policy.warn_after, CatchUnwind(fut));
        let outcome = match self.policy.timeout {
            Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
            None => Some(fut.await),
        };
        drop(running);
        let took = started.elapsed();
        self.counters.record_computation(took);
        let value = match outcome {
            Some(Ok(Ok(value))) => value,
            Some(Ok(Err(e))) => {
                Counters::count(&self.counters.failures);
                return Err(CallError::Failed(Arc::new(e)));
            }
            Some(Err(Panicked)) => {
                Counters::count(&self.counters.failures);
                return Err(CallError::Panicked);
            }
            None => {
                Counters::count(&self.counters.timeouts);
                let limit = self.policy.timeout.unwrap_or_default();
                return Err(CallError::Timeout(limit));
            }
        };
        let result = encoding::to_vec(&value)?;
        let result_digest = Digest::of_encoded(&result);
        let timestop = Timestamp::now();
        let created = lifespan_now();
        let freshness = self.freshness(&value);
        let record = CallRecord {
            name: self.ident.name.clone(),
            module: self.ident.module.clone(),
            version: self.ident.version.clone(),
            arguments: self
                .ident
                .arg_names
                .iter()
                .cloned()
                .zip(encoded.iter().map(|(d, _)| *d))
                .collect(),
            result: result_digest,
            metadata: Metadata {
                runtime: Some(Runtime {
                    timestart,
                    timestop,
                    walltime: took.as_secs_f64(),
                }),
                tags: scope::current_tags(),
                lifespan: Some(Lifespan {
                    created,
                    update_after: freshness.update_after.map(|d| created.plus(d)),
                    expire_after: freshness.expire_after.map(|d| created.plus(d)),
                }),
                extra: Default::default(),
            },
        };
        let mut values = encoded;
        values.push((result_digest, Bytes::from(result)));
        Ok((value, record, values, freshness))
    }

    /// Forgets the value a refused refresh (or rerun) would have replaced,
    /// in process and in storage.
    pub(super) async fn drop_refused(&self, key: &HotKey, cache: &Cache, call_key: &Digest) {
        self.hot.remove(key.into());
        if let Err(e) = cache.evict(call_key).await {
            Counters::count(&self.counters.storage_faults);
            tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not evict a call whose refresh was not kept");
        }
    }

    /// Whether `value` is kept (stored and put in the hot tier).
    pub(super) fn keeps(&self, value: &T) -> bool {
        self.policy.keep.as_ref().is_none_or(|keep| keep(value))
    }

    /// The lifespan of a result just computed (jittered, when asked).
    pub(super) fn freshness(&self, value: &T) -> Freshness {
        let freshness = self
            .policy
            .lifespan
            .as_ref()
            .map_or(self.policy.freshness, |f| f(value));
        match &self.policy.jitter {
            Some(jitter) => jitter.apply(freshness),
            None => freshness,
        }
    }

    /// Stores a computed value in the hot tier and the cache, unless the
    /// flight was invalidated; an invalidation that lands meanwhile wins.
    ///
    /// Behind the callers (the default): the value goes to the hot tier and
    /// the cache's write-behind queue (waiting only while it is full), and
    /// then to every waiter; storage is written later, in a batch. Returns
    /// whether the outcome was published.
    pub(super) async fn store(
        &self,
        key: &HotKey,
        flight: &Flight<T, E>,
        cache: &Cache,
        value: T,
        stored: ToStore,
    ) -> bool {
        let _storing = flight.storing.lock().await;
        if flight.mark.is_set() {
            return false;
        }
        let freshness = stored.freshness;
        let now = Instant::now();
        let deadlines = Deadlines {
            update_at: freshness.update_after.and_then(|d| now.checked_add(d)),
            expire_at: freshness.expire_after.and_then(|d| now.checked_add(d)),
        };
        let ToStore {
            key: call_key,
            record,
            values,
            durable,
            ..
        } = stored;
        if !self.promote(key, flight, &call_key, value.clone(), deadlines) {
            return false;
        }
        if !self.policy.write_through {
            // Queued before the waiters are answered, so that a reader of
            // the cache who heard of the value finds it. An invalidation
            // waits for `storing`, then drops the queued write.
            let faults: Arc<dyn flechette_core::WriteFailed> = self.faults.clone();
            cache
                .save_behind(call_key, record, values, Some(faults))
                .await;
            flight.publish(Ok(value));
            if durable {
                cache.flush().await;
            }
            return true;
        }
        let saved: Result<(), CacheError> = async {
            for (digest, bytes) in values {
                cache.save_encoded(&digest, bytes).await?;
            }
            cache.save_record(&record).await?;
            Ok(())
        }
        .await;
        if let Err(e) = saved {
            Counters::count(&self.counters.storage_faults);
            tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not store the result");
        }
        if flight.mark.is_set() {
            // Invalidated while saving: take back this flight's own record,
            // and nothing a later flight wrote.
            self.hot.remove_owned(key.into(), flight.id);
            match cache.load_record(&call_key).await {
                Ok(Some(found)) if found == record => {
                    if let Err(e) = cache.evict(&call_key).await {
                        Counters::count(&self.counters.storage_faults);
                        tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not evict an invalidated result");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    Counters::count(&self.counters.storage_faults);
                    tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not check an invalidated result");
                }
            }
        }
        false
    }

    /// Puts a value in the hot tier for `flight`, unless the flight was
    /// invalidated; an invalidation that lands meanwhile takes it back out.
    /// Whether the value stays.
    pub(super) fn promote(
        &self,
        key: &HotKey,
        flight: &Flight<T, E>,
        call_key: &Digest,
        value: T,
        deadlines: Deadlines<Instant>,
    ) -> bool {
        if flight.mark.is_set() {
            return false;
        }
        self.hot.insert(
            key.clone(),
            HotEntry {
                value,
                deadlines,
                owner: flight.id,
                call: call_tag(call_key),
            },
        );
        if flight.mark.is_set() {
            self.hot.remove_owned(key.into(), flight.id);
            return false;
        }
        true
    }
}

/// A computed value, its record, the encoded arguments and result, and its
/// lifespan.
pub(super) type Computed<T> = (T, CallRecord, Vec<(Digest, Bytes)>, Freshness);

/// A computed result ready to store.
pub(super) struct ToStore {
    /// Its call key (`record.key()`).
    pub(super) key: Digest,
    pub(super) record: CallRecord,
    /// The encoded arguments and result.
    pub(super) values: Vec<(Digest, Bytes)>,
    /// Its lifespan, as the policy gave it when it was computed.
    pub(super) freshness: Freshness,
    /// Written before the store returns (a cross-process lease waits for
    /// it), even behind the callers.
    pub(super) durable: bool,
}

/// A panic inside the computation, caught where it happened.
pub(super) struct Panicked;

/// Polls a future, turning a panic in it into [`Panicked`]: the flight
/// reports it as [`CallError::Panicked`] and counts it, like an error.
pub(super) struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(_) => std::task::Poll::Ready(Err(Panicked)),
        }
    }
}

/// Runs `fut`, warning once (naming the function) if it is still running
/// after `after`; the timer is set only if its first poll leaves it pending.
pub(super) async fn watch_slow<F: Future>(function: &str, after: Duration, fut: F) -> F::Output {
    if after == Duration::MAX {
        return fut.await;
    }
    let mut fut = std::pin::pin!(fut);
    // A computation ready at its first poll needs no timer (nor a runtime
    // with time enabled).
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(out) = first {
        return out;
    }
    tokio::select! {
        biased;
        out = &mut fut => return out,
        () = tokio::time::sleep(after) => {}
    }
    tracing::warn!(function = %function, running_for = ?after, "a computation is still running; callers of its key wait for it (invalidate the key to detach them)");
    fut.await
}
