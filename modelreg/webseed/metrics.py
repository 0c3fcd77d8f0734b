"""Counters for ``/metrics`` in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

_HELP = {
    "requests_total": ("counter", "Requests answered, by HTTP status."),
    "malformed_requests_total": ("counter", "Requests refused with 400 because they are not valid HTTP."),
    "bytes_served_total": ("counter", "Bytes sent to clients (status line and headers included)."),
    "redirects_total": ("counter", "Clients sent to Hugging Face, by target (cdn or resolve)."),
    "cache_hits_total": ("counter", "File requests answered from cached, verified pieces only."),
    "cache_misses_total": ("counter", "File requests that needed pieces fetched from upstream."),
    "pieces_fetched_total": ("counter", "Pieces fetched from upstream, verified and stored."),
    "pieces_corrupt_total": ("counter", "Pieces that failed their hash check, from upstream or read back from the "
                             "cache (never served; fetched again)."),
    "pieces_checked_total": ("counter", "Cached pieces hashed again from disk (first read after a start or a change)."),
    "upstream_requests_total": ("counter", "HTTP requests made to Hugging Face or its CDN."),
    "upstream_errors_total": ("counter", "Failed upstream attempts, by kind."),
    "upstream_retries_total": ("counter", "Upstream attempts repeated after an error."),
    "cache_evictions_total": ("counter", "Cached files evicted to stay under --max-cache-size."),
    "send_timeouts_total": ("counter", "Answers cut short because the client stopped reading (send timeout)."),
    "connections_refused_total": ("counter", "Connections answered 503 at once: over the open-file budget."),
    "accept_failures_total": ("counter", "Times accept() failed for want of file descriptors."),
    "cache_bytes": ("gauge", "Verified bytes held in the cache."),
    "in_flight_requests": ("gauge", "Requests being answered now."),
    "hf_api_requests_total": ("counter", "Requests on Hugging Face API paths (HF_ENDPOINT clients), by endpoint."),
}


@dataclass
class Metrics:
    """Plain counters; the gateway runs on one event loop, so no locking is needed."""

    requests: Counter = field(default_factory=Counter)
    redirects: Counter = field(default_factory=Counter)
    hf_api_requests: Counter = field(default_factory=Counter)
    upstream_errors: Counter = field(default_factory=Counter)
    bytes_served: int = 0
    malformed_requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    pieces_fetched: int = 0
    pieces_corrupt: int = 0
    pieces_checked: int = 0
    upstream_requests: int = 0
    upstream_retries: int = 0
    cache_evictions: int = 0
    send_timeouts: int = 0
    connections_refused: int = 0
    accept_failures: int = 0
    cache_bytes: int = 0
    in_flight: int = 0

    def render(self) -> str:
        values: dict[str, list[tuple[str, int]]] = {
            "requests_total": _labelled("status", self.requests),
            "malformed_requests_total": [("", self.malformed_requests)],
            "bytes_served_total": [("", self.bytes_served)],
            "redirects_total": _labelled("target", self.redirects),
            "cache_hits_total": [("", self.cache_hits)],
            "cache_misses_total": [("", self.cache_misses)],
            "pieces_fetched_total": [("", self.pieces_fetched)],
            "pieces_corrupt_total": [("", self.pieces_corrupt)],
            "pieces_checked_total": [("", self.pieces_checked)],
            "upstream_requests_total": [("", self.upstream_requests)],
            "upstream_errors_total": _labelled("kind", self.upstream_errors),
            "upstream_retries_total": [("", self.upstream_retries)],
            "cache_evictions_total": [("", self.cache_evictions)],
            "send_timeouts_total": [("", self.send_timeouts)],
            "connections_refused_total": [("", self.connections_refused)],
            "accept_failures_total": [("", self.accept_failures)],
            "cache_bytes": [("", self.cache_bytes)],
            "in_flight_requests": [("", self.in_flight)],
            "hf_api_requests_total": _labelled("endpoint", self.hf_api_requests),
        }
        lines = []
        for name, samples in values.items():
            kind, text = _HELP[name]
            full = f"modelreg_webseed_{name}"
            lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
            lines += [f"{full}{labels} {value}" for labels, value in samples]
        return "\n".join(lines) + "\n"


def _labelled(label: str, counter: Counter) -> list[tuple[str, int]]:
    return [(f'{{{label}="{key}"}}', n) for key, n in sorted(counter.items(), key=lambda kv: str(kv[0]))]
