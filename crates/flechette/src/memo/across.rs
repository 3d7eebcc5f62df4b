//! Single flight across processes: one process computes a call, the others
//! sharing the cache wait for its stored result.

use super::*;

/// What the cross-process single flight decided.
pub(super) enum Across {
    /// This process computes (holding the lease, when one was taken).
    Lead(Option<Lease>),
    /// Another process computed; its result was served.
    Served,
}

impl<A, T, E> Memo<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Takes the computation of `call_key` across processes, or waits for
    /// the process that holds it and serves its result.
    pub(super) async fn lead_across(
        &self,
        coordinator: &Arc<dyn Coordinator>,
        cache: &Cache,
        call_key: &Digest,
        guard: &FlightGuard<A, T, E>,
    ) -> Across {
        // Long enough for the computation; a holder that dies frees the key
        // when its lease expires.
        let ttl = self.policy.timeout.unwrap_or(Duration::from_secs(60)) + Duration::from_secs(5);
        loop {
            match coordinator.acquire(call_key, ttl).await {
                Ok(Some(lease)) => {
                    // Another process may have stored it just before.
                    if let Some((value, deadlines, Age::Fresh)) = self.stored(cache, call_key).await
                    {
                        let _ = coordinator.release(call_key, &lease).await;
                        self.serve(guard, call_key, value, deadlines);
                        return Across::Served;
                    }
                    return Across::Lead(Some(lease));
                }
                Ok(None) => {
                    Counters::count(&self.counters.waited_across);
                    if let Err(e) = coordinator.wait_released(call_key, ttl).await {
                        Counters::count(&self.counters.storage_faults);
                        tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "cross-process wait failed; computing here");
                        return Across::Lead(None);
                    }
                    if let Some((value, deadlines, Age::Fresh)) = self.stored(cache, call_key).await
                    {
                        self.serve(guard, call_key, value, deadlines);
                        return Across::Served;
                    }
                    // The holder failed or its result is gone: try to take over.
                }
                Err(e) => {
                    Counters::count(&self.counters.storage_faults);
                    tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "cross-process single flight unavailable; computing here");
                    return Across::Lead(None);
                }
            }
        }
    }

    /// Answers the flight with a value another process stored.
    pub(super) fn serve(
        &self,
        guard: &FlightGuard<A, T, E>,
        call_key: &Digest,
        value: T,
        deadlines: Deadlines<Instant>,
    ) {
        self.promote(
            &guard.key,
            &guard.flight,
            call_key,
            value.clone(),
            deadlines,
        );
        guard.flight.publish(Ok(value));
    }
}
