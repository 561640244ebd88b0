//! OpenTelemetry: one trace per run, a span per node, links from consumers to producers.
//!
//! Enabled when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set and `OTEL_SDK_DISABLED` is not `true`. The protocol comes from
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`,
//! `http/protobuf`); when neither is set, an endpoint on port 4317 means gRPC and anything
//! else OTLP/HTTP. A W3C `TRACEPARENT` in the environment makes the run span its child.

use anyhow::{Context as _, Result};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::time::SystemTime;

/// An active exporter.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// A span in progress.
pub struct SpanHandle {
    span: opentelemetry_sdk::trace::Span,
    cx: Context,
}

impl SpanHandle {
    /// Hex trace id.
    pub fn trace_id(&self) -> String {
        self.span.span_context().trace_id().to_string()
    }
    /// Hex span id.
    pub fn span_id(&self) -> String {
        self.span.span_context().span_id().to_string()
    }
    /// Sets an attribute.
    pub fn set(&mut self, key: &str, value: impl Into<opentelemetry::Value>) {
        self.span
            .set_attribute(KeyValue::new(key.to_string(), value.into()));
    }
    /// Adds an event with attributes.
    pub fn event(&mut self, name: &str, attrs: Vec<KeyValue>) {
        self.span.add_event(name.to_string(), attrs);
    }
    /// Marks the span failed.
    pub fn fail(&mut self, msg: &str) {
        self.span.set_status(Status::error(msg.to_string()));
    }
    /// Marks the span successful.
    pub fn ok(&mut self) {
        self.span.set_status(Status::Ok);
    }
    /// Ends the span now.
    pub fn end(mut self) {
        self.span.end();
    }
}

fn endpoint_configured() -> Option<String> {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .ok()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

/// Parses a W3C `traceparent` header value.
pub fn parse_traceparent(tp: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = tp.trim().split('-').collect();
    if parts.len() < 4 || parts[0].len() != 2 || parts[1].len() != 32 || parts[2].len() != 16 {
        return None;
    }
    let trace = TraceId::from_hex(parts[1]).ok()?;
    let span = SpanId::from_hex(parts[2]).ok()?;
    let flags = u8::from_str_radix(parts[3], 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// A link to a span given by hex ids (e.g. the producer of an input in an earlier run).
pub fn link_to(trace_id: &str, span_id: &str, attrs: Vec<KeyValue>) -> Option<Link> {
    let t = TraceId::from_hex(trace_id).ok()?;
    let s = SpanId::from_hex(span_id).ok()?;
    if t == TraceId::INVALID || s == SpanId::INVALID {
        return None;
    }
    Some(Link::new(
        SpanContext::new(t, s, TraceFlags::SAMPLED, true, TraceState::default()),
        attrs,
        0,
    ))
}

impl Telemetry {
    /// Starts an exporter if the environment asks for one. Must be called inside the tokio
    /// runtime (the gRPC exporter binds to it).
    pub fn from_env() -> Result<Option<Telemetry>> {
        let Some(endpoint) = endpoint_configured() else {
            return Ok(None);
        };
        let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|_| {
                if endpoint.trim_end_matches('/').ends_with(":4317") {
                    "grpc".into()
                } else {
                    "http/protobuf".into()
                }
            });
        let exporter = match protocol.as_str() {
            "grpc" => SpanExporter::builder()
                .with_tonic()
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .build(),
            "http/protobuf" => SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build(),
            other => anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL=`{other}` is not supported: use grpc or http/protobuf"
            ),
        }
        .with_context(|| format!("cannot set up the OTLP exporter for {endpoint}"))?;
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "zest".into());
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("zest");
        Ok(Some(Telemetry { provider, tracer }))
    }

    /// Starts the run's root span, as a child of `TRACEPARENT` if set.
    pub fn start_run(&self, name: &str, attrs: Vec<KeyValue>) -> SpanHandle {
        let parent = std::env::var("TRACEPARENT")
            .ok()
            .and_then(|tp| parse_traceparent(&tp))
            .map(|sc| Context::new().with_remote_span_context(sc))
            .unwrap_or_default();
        self.start(name, &parent, attrs, vec![], SystemTime::now())
    }

    /// Starts a span under `parent`.
    pub fn start(
        &self,
        name: &str,
        parent: &Context,
        attrs: Vec<KeyValue>,
        links: Vec<Link>,
        at: SystemTime,
    ) -> SpanHandle {
        let span = self
            .tracer
            .span_builder(name.to_string())
            .with_kind(SpanKind::Internal)
            .with_start_time(at)
            .with_attributes(attrs)
            .with_links(links)
            .start_with_context(&self.tracer, parent);
        let cx = parent.with_remote_span_context(span.span_context().clone());
        SpanHandle { span, cx }
    }

    /// Starts a child span of `parent`.
    pub fn child(
        &self,
        parent: &SpanHandle,
        name: &str,
        attrs: Vec<KeyValue>,
        links: Vec<Link>,
    ) -> SpanHandle {
        self.start(name, &parent.cx, attrs, links, SystemTime::now())
    }

    /// Flushes and stops the exporter.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.shutdown() {
                eprintln!("zest: warning: exporting spans failed: {e}");
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_traceparent() {
        let sc =
            super::parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                .unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert!(sc.is_sampled());
        assert!(super::parse_traceparent("00-zz-b7ad6b7169203331-01").is_none());
    }
}
