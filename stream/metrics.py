"""Every Prometheus metric the service exports, in one place.

Each pipeline owns a ``Metrics`` with its own registry, so several pipelines (tests, embedded
use) never collide; ``geosentry run --metrics-port`` serves it over HTTP.

>>> m = Metrics()
>>> m.records_in.labels(source="files").inc()
>>> m.value("geosentry_records_in_total", source="files")
1.0
"""

from __future__ import annotations

from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from geosentry.stream.metrics_http import BasicAuth, TlsFiles, serve_metrics

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                      10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """All counters, gauges and histograms; label names are part of the public contract."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter("geosentry_records_in", "Raw records received", ["source"],
                                  registry=r)
        self.bytes_in = Counter("geosentry_bytes_in", "Raw bytes received", ["source"], registry=r)
        self.decode_errors = Counter("geosentry_decode_errors", "Records that failed to decode",
                                     ["reason"], registry=r)
        self.records_rejected = Counter(
            "geosentry_records_rejected", "Decoded records not used, by reason "
            "(duplicate, overlap, unknown_channel, rate_change, stale, future, rate_unsupported)", ["reason"], registry=r)
        self.gaps = Counter("geosentry_gaps", "Gaps by action (interpolated, reset, held, released: a silent instrument let go)",
                            ["action"], registry=r)
        self.reordered = Counter("geosentry_records_reordered",
                                 "Out-of-order records put back in order", registry=r)
        self.windows = Counter("geosentry_windows", "Windows emitted per detector", ["detector"],
                               registry=r)
        self.windows_incomplete = Counter(
            "geosentry_windows_missing_component",
            "Windows with a missing component (skipped or zero rows, per detector policy)",
            ["detector", "action"], registry=r)
        self.windows_shed = Counter(
            "geosentry_windows_shed", "Windows not run because they waited longer than "
            "inference.max_lag_s (overload shedding)", ["detector"], registry=r)
        self.overloaded = Gauge("geosentry_overloaded",
                                "1 while a detector is shedding stale windows", ["detector"],
                                registry=r)
        self.inference_errors = Counter("geosentry_inference_errors",
                                        "Inference batches that raised", ["detector"], registry=r)
        self.batch_size = Histogram("geosentry_inference_batch_size", "Windows per batch",
                                    ["detector"], buckets=_BATCH_BUCKETS, registry=r)
        self.batch_latency = Histogram("geosentry_inference_batch_seconds",
                                       "Wall time of one inference batch", ["detector"],
                                       buckets=_LATENCY_BUCKETS_S, registry=r)
        self.alerts_out = Counter("geosentry_alerts", "Alerts delivered", ["kind", "sink"],
                                  registry=r)
        self.end_to_end = Histogram(
            "geosentry_alert_latency_seconds",
            "Alert emitted minus arrival of the newest sample it used", ["kind"],
            buckets=_LATENCY_BUCKETS_S, registry=r)
        self.queue_depth = Gauge("geosentry_queue_depth", "Items waiting between stages",
                                 ["stage"], registry=r)
        self.consumer_lag = Gauge("geosentry_consumer_lag", "Kafka consumer lag (records)",
                                  ["topic", "partition"], registry=r)
        self.sink_errors = Counter(
            "geosentry_sink_errors", "Failed deliveries to a sink, each retried with backoff",
            ["sink"], registry=r)
        self.sink_stalls = Counter(
            "geosentry_sink_stalls", "Sends to a sink that hung for 1 s or more without failing "
            "(a frozen broker): an outage, so the windows queued meanwhile were not shed",
            ["sink"], registry=r)
        self.replay_windows = Counter(
            "geosentry_replay_windows", "Windows a restarted worker re-cut only to rebuild "
            "detector state: delivered before the restart, not sent again (stream/resume.py)",
            registry=r)
        self.watchdog_stalls = Counter(
            "geosentry_watchdog_stalls", "Episodes of pending work with no progress (or a "
            "blocked event loop) for watchdog_s", registry=r)
        self.model_info = Gauge(
            "geosentry_model_info", "1 per loaded model: its sha256, device and the numeric "
            "precision chosen at load (inference.precision)",
            ["detector", "model", "sha256", "device", "precision"], registry=r)

        self.policy_alerts = Counter(
            "geosentry_policy_alerts", "Alerts by what a sink's data policy did to them "
            "(allow, mask, delay, withhold; released: an embargo ended and it was delivered; "
            "held_at_stop: an embargoed alert still held when the service stopped)",
            ["sink", "audience", "action"], registry=r)
        self.policy_held = Gauge("geosentry_policy_held",
                                 "Embargoed alerts held for a sink (policy delay rule)",
                                 ["sink"], registry=r)
        self.metrics_auth_failures = Counter(
            "geosentry_metrics_auth_failures", "Requests to /metrics answered 401 (no or wrong "
            "credentials)", registry=r)

        self.source_gaps = Counter(
            "geosentry_source_gaps", "Data a source could not get back (a SeedLink resume after "
            "the server's buffer moved on), per channel and resume", ["source"], registry=r)
        self.source_duplicates = Counter(
            "geosentry_source_duplicates", "Records a source dropped because it had handed them "
            "on already (a SeedLink resume from a shared ring position)", ["source"], registry=r)

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (0.0 when it was never touched)."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else float(got)

    def serve(self, port: int, addr: str = "127.0.0.1", auth: BasicAuth | None = None,
              tls: TlsFiles | None = None) -> ThreadingHTTPServer:
        """Expose ``/metrics`` on ``addr:port`` (a daemon thread), with optional basic auth and
        TLS (``geosentry.stream.metrics_http``); ``shutdown()`` the server returned to stop."""
        return serve_metrics(self.registry, port, addr, self.metrics_auth_failures, auth, tls)
