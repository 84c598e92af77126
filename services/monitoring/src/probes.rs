//! Health probes: every service's Ops `Info` (which itself probes the service's database,
//! cache and other dependencies), called side by side under a deadline, recorded as one sample
//! per service and per dependency. The `service_down` and `cache_hit_rate` rules read them.

use std::time::{Duration, Instant};

use portico_proto::ops::v1::{InfoRequest, ops_client::OpsClient};
use portico_runtime::grpc::{PresentInternalToken, channel, outgoing};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::alerts_store::ProbeSample;

/// The deadline of one probe (a dependency probe inside it has one second).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest detail kept per sample.
const MAX_DETAIL: usize = 300;

type Client = OpsClient<InterceptedService<Channel, PresentInternalToken>>;

/// Probes a fixed set of services.
#[derive(Clone)]
pub struct Prober {
    targets: Vec<(String, Client)>,
}

impl Prober {
    /// Probes `targets` (service name, gRPC URL), presenting `token`.
    pub fn new(targets: &[(String, String)], token: &str) -> Result<Self, String> {
        let token = PresentInternalToken::new(token)?;
        let targets = targets
            .iter()
            .map(|(name, url)| {
                let ch = channel(url, PROBE_TIMEOUT)?;
                Ok((name.clone(), OpsClient::with_interceptor(ch, token.clone())))
            })
            .collect::<Result<_, String>>()?;
        Ok(Prober { targets })
    }

    /// Probes every target once; samples are stamped `now`.
    pub async fn probe(&self, now: i64) -> Vec<ProbeSample> {
        let each = self.targets.iter().map(|(name, client)| async move {
            let started = Instant::now();
            let mut client = client.clone();
            let answer = tokio::time::timeout(PROBE_TIMEOUT, client.info(outgoing(InfoRequest {}, ""))).await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let down = |detail: String| ProbeSample {
                target: name.clone(),
                checked_at: now,
                healthy: false,
                latency_ms,
                version: None,
                detail: Some(detail.chars().take(MAX_DETAIL).collect()),
                cache_hits: 0,
                cache_lookups: 0,
                memory_percent: None,
            };
            match answer {
                Err(_) => vec![down("timed out".into())],
                Ok(Err(status)) => vec![down(format!("{:?}: {}", status.code(), status.message()))],
                Ok(Ok(info)) => {
                    let info = info.into_inner();
                    let (hits, lookups) = info.caches.iter().fold((0_u64, 0_u64), |(h, l), c| {
                        (h + c.l1_hits + c.l2_hits, l + c.l1_hits + c.l1_misses)
                    });
                    let mut samples = vec![ProbeSample {
                        target: name.clone(),
                        checked_at: now,
                        healthy: true,
                        latency_ms,
                        version: Some(info.version.clone()),
                        detail: None,
                        cache_hits: i64::try_from(hits).unwrap_or(i64::MAX),
                        cache_lookups: i64::try_from(lookups).unwrap_or(i64::MAX),
                        memory_percent: info.process.as_ref().map(|p| p.memory_percent),
                    }];
                    samples.extend(info.dependencies.into_iter().map(|d| ProbeSample {
                        target: format!("{name}/{}", d.name),
                        checked_at: now,
                        healthy: d.healthy,
                        latency_ms: d.latency_ms,
                        version: None,
                        detail: (!d.detail.is_empty()).then(|| d.detail.chars().take(MAX_DETAIL).collect()),
                        cache_hits: 0,
                        cache_lookups: 0,
                        memory_percent: None,
                    }));
                    samples
                }
            }
        });
        futures_util::future::join_all(each)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
