//! Webhook notices: the outbox handler that posts Alertmanager-shaped payloads (version 4) to
//! the `https://` receivers rules name. Outside development the names resolve through a
//! resolver that drops loopback, private, link-local and other non-public addresses, so a rule
//! cannot reach into Portico's own network (also not by a DNS answer that changes after the
//! rule was checked); redirects are not followed.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use portico_runtime::outbox::{Handler, Item};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::Value;

use crate::domain::alert;

/// The deadline of one delivery.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves names to their public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| alert::public_ip(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The webhook handler; `allow_private` (development and tests) lets receivers be anywhere.
pub fn handler(allow_private: bool) -> Result<Handler, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Portico-Alerts/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let client = builder.build().map_err(|e| format!("webhook client: {e}"))?;
    Ok(Arc::new(move |item: Item| {
        let client = client.clone();
        Box::pin(async move {
            let queued: Value =
                serde_json::from_str(&item.payload).map_err(|e| format!("queued webhook is unreadable: {e}"))?;
            let url = queued["url"].as_str().ok_or("queued webhook has no url")?;
            if !allow_private {
                let host = reqwest::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_default();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if !alert::public_host(host) {
                    return Err(format!("{host} is not a public host; not delivered"));
                }
            }
            let answer = client
                .post(url)
                .header("Idempotency-Key", &item.id)
                .json(&queued["body"])
                .send()
                .await
                .map_err(|e| format!("webhook: {}", e.without_url()))?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered {}", answer.status()))
            }
        })
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn names_resolve_to_public_addresses_only() {
        let refused = PublicOnly.resolve("localhost".parse().unwrap()).await;
        assert!(refused.is_err(), "localhost resolves to loopback only");
    }

    #[tokio::test]
    async fn private_receivers_are_not_called_outside_development() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let deliver = handler(false).unwrap();
        for url in [
            format!("https://127.0.0.1:{port}/hook"),
            format!("https://[::ffff:127.0.0.1]:{port}/hook"),
        ] {
            let item = Item {
                id: "n1".into(),
                payload: serde_json::json!({"url": url, "body": {"version": "4"}}).to_string(),
                attempts: 0,
            };
            let e = deliver(item).await.unwrap_err();
            assert!(e.contains("not a public host"), "{url}: {e}");
        }
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the private receiver was called"
        );
    }
}
