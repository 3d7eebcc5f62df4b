//! The invalidation broadcast on Redis: one pub/sub channel per key prefix.

use std::time::Duration;

use async_trait::async_trait;
use flechette_core::storage::{Broadcast, Invalidation, StorageError};

use crate::Redis;

impl Redis {
    fn channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    /// Listens on the invalidation channel for as long as the process runs,
    /// reconnecting with backoff.
    fn listen(&self) {
        let (client, channel, tx) = (self.client.clone(), self.channel(), self.bus.tx.clone());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut pause = Duration::from_millis(50);
            loop {
                if let Ok(mut pubsub) = client.get_async_pubsub().await
                    && pubsub.subscribe(&channel).await.is_ok()
                {
                    pause = Duration::from_millis(50);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        if let Some(invalidation) = message
                            .get_payload::<String>()
                            .ok()
                            .as_deref()
                            .and_then(parse)
                        {
                            // No subscriber left is fine: nothing to drop.
                            let _ = tx.send(invalidation);
                        }
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        });
    }
}

fn parse(payload: &str) -> Option<Invalidation> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some(Invalidation {
        name: v["name"].as_str()?.to_owned(),
        module: v["module"].as_str()?.to_owned(),
        version: v["version"].as_str().map(str::to_owned),
        key: match &v["key"] {
            serde_json::Value::String(k) => Some(k.parse().ok()?),
            _ => None,
        },
    })
}

#[async_trait]
impl Broadcast for Redis {
    async fn publish(&self, message: &Invalidation) -> Result<(), StorageError> {
        let payload = serde_json::json!({
            "name": message.name,
            "module": message.module,
            "version": message.version,
            "key": message.key.map(|k| k.to_hex()),
        });
        self.query::<i64>(
            redis::cmd("PUBLISH")
                .arg(self.channel())
                .arg(payload.to_string()),
        )
        .await
        .map(drop)
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Invalidation> {
        let rx = self.bus.tx.subscribe();
        self.bus.listening.call_once(|| self.listen());
        rx
    }
}
