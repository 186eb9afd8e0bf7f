//! Prometheus metrics and the health endpoints (`/metrics`, `/healthz`, `/readyz`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// The controller's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// Addresses in each pool per family (IPv6 counts saturate at i64::MAX).
    pub pool_addresses_total: Family<PoolLabels, Gauge>,
    pub pool_addresses_assigned: Family<PoolLabels, Gauge>,
    pub allocations: Counter,
    pub allocation_failures: Family<ReasonLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ferrolb_controller");
        let m = Metrics {
            pool_addresses_total: Family::default(),
            pool_addresses_assigned: Family::default(),
            allocations: Counter::default(),
            allocation_failures: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "pool_addresses",
            "Addresses in the pool",
            m.pool_addresses_total.clone(),
        );
        registry.register(
            "pool_addresses_assigned",
            "Addresses of the pool assigned to Services",
            m.pool_addresses_assigned.clone(),
        );
        registry.register("allocations", "IP allocations made", m.allocations.clone());
        registry.register(
            "allocation_failures",
            "Allocation attempts that left a Service pending",
            m.allocation_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time of one allocation round",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica is the leader",
            m.leader.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Health state served by `/healthz` (process alive) and `/readyz` (caches synced).
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
}

fn respond(code: StatusCode, body: String, ctype: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

pub fn handle(path: &str, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    handle_with(path, &|| metrics.encode(), health)
}

/// [`handle`] for any exposition: `encode` renders `/metrics`.
pub fn handle_with(
    path: &str,
    encode: &dyn Fn() -> String,
    health: &Health,
) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" => respond(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" if health.ready.load(Ordering::Relaxed) => {
            respond(StatusCode::OK, "ok\n".into(), "text/plain")
        }
        "/readyz" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced\n".into(),
            "text/plain",
        ),
        _ => respond(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

/// Serves metrics and health until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    serve_with(addr, Arc::new(move || metrics.encode()), health).await
}

/// What renders `/metrics` for [`serve_with`].
pub type Encoder = Arc<dyn Fn() -> String + Send + Sync>;

/// [`serve`] for any exposition (the speaker's too).
pub async fn serve_with(
    addr: SocketAddr,
    encode: Encoder,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let (encode, health) = (encode.clone(), health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = handle_with(req.uri().path(), &*encode, &health);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let m = Metrics::default();
        m.pool_addresses_total
            .get_or_create(&PoolLabels {
                pool: "lan".into(),
                family: "IPv4".into(),
            })
            .set(11);
        m.allocations.inc();
        let h = Health::default();
        let r = handle("/metrics", &m, &h);
        assert_eq!(r.status(), StatusCode::OK);
        let text = m.encode();
        assert!(
            text.contains("ferrolb_controller_pool_addresses{pool=\"lan\",family=\"IPv4\"} 11"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_controller_allocations_total 1"),
            "{text}"
        );
        assert_eq!(
            handle("/readyz", &m, &h).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        h.ready.store(true, Ordering::Relaxed);
        assert_eq!(handle("/readyz", &m, &h).status(), StatusCode::OK);
        assert_eq!(handle("/healthz", &m, &h).status(), StatusCode::OK);
        assert_eq!(handle("/nope", &m, &h).status(), StatusCode::NOT_FOUND);
    }
}
