//! `GET /metrics`: every layer's counters in Prometheus text format.
//!
//! The crate's `metrics` feature publishes a stack's counters through the
//! `metrics` facade ([`StackHandle::publish_metrics`]); here the
//! `metrics-exporter-prometheus` recorder collects them and renders the
//! scrape. Each scrape publishes a fresh snapshot first, so the answer is
//! current without a background task.
//!
//! The facade has one recorder per process: every gateway of the process
//! shares it, and a scrape shows the series every gateway published so far
//! (with the same names and labels, the last publisher's values win).

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_fleet::stack::StackHandle;

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's Prometheus recorder, installed on first use; `None` if
/// another `metrics` recorder was installed before.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .as_ref()
}

/// A router serving `GET /metrics` for the stack behind `handle`. Merge it
/// into the gateway's router.
pub fn metrics_route<Mem, T, G>(handle: StackHandle<Mem, T, G>) -> Router
where
    StackHandle<Mem, T, G>: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    metrics_route_with(move || handle.publish_metrics())
}

/// A router serving `GET /metrics`, where `publish` publishes the counters
/// to show through the `metrics` facade before each scrape (a gateway that
/// keeps its stack's handle to itself, or has more than a stack to show).
pub fn metrics_route_with(publish: impl Fn() + Send + Sync + 'static) -> Router {
    let publish = std::sync::Arc::new(publish);
    Router::new().route(
        "/metrics",
        get(move || {
            let publish = publish.clone();
            async move { scrape(&*publish) }
        }),
    )
}

fn scrape(publish: &dyn Fn()) -> Response {
    let Some(prometheus) = prometheus() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics: another recorder owns this process's metrics facade\n",
        )
            .into_response();
    };
    publish();
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        prometheus.render(),
    )
        .into_response()
}
