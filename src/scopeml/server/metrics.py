"""Prometheus metrics in the text exposition format, without a client library.

Requests by route and status, tiles predicted, a request latency histogram, and the jobs
queued and running now (gauges read from the job runner at each scrape). Counting is
thread-safe. ``GET /metrics`` answers admin tokens only (``scopeml admin create-token --admin``):
the figures are the whole server's, every user's requests and jobs.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable, Mapping

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and a latency histogram, rendered by :meth:`render`.

    Examples
    --------
    >>> metrics = Metrics()
    >>> metrics.observe_request("GET", "/health", 200, 0.002)
    >>> metrics.add_tiles(4)
    >>> text = metrics.render()
    >>> 'scopeml_requests_total{method="GET",route="/health",status="200"} 1' in text
    True
    >>> "scopeml_tiles_predicted_total 4" in text
    True
    >>> metrics.watch_jobs(lambda: {"queued": 3, "running": 1})
    >>> [line for line in metrics.render().splitlines() if line.startswith("scopeml_jobs")]
    ['scopeml_jobs_queued 3', 'scopeml_jobs_running 1']
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, int]] = Counter()
        self._tiles = 0
        self._batches = 0
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._job_counts: Callable[[], Mapping[str, int]] | None = None

    def watch_jobs(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report the jobs ``counts()`` gives (``queued``, ``running``) as gauges."""
        self._job_counts = counts

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds

    def add_tiles(self, n_tiles: int) -> None:
        """Count one ``predict`` call of ``n_tiles`` tiles."""
        with self._lock:
            self._tiles += n_tiles
            self._batches += 1

    def render(self) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            tiles, batches = self._tiles, self._batches
            counts, total_seconds = list(self._bucket_counts), self._latency_sum
        jobs = {} if self._job_counts is None else self._job_counts()
        lines = [
            "# HELP scopeml_requests_total HTTP requests by method, route and status.",
            "# TYPE scopeml_requests_total counter",
        ]
        for (method, route, status), count in requests:
            lines.append(
                f'scopeml_requests_total{{method="{_escape(method)}",'
                f'route="{_escape(route)}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP scopeml_tiles_predicted_total Tiles run through a model.",
            "# TYPE scopeml_tiles_predicted_total counter",
            f"scopeml_tiles_predicted_total {tiles}",
            "# HELP scopeml_predict_batches_total Model predict calls (one per micro-batch).",
            "# TYPE scopeml_predict_batches_total counter",
            f"scopeml_predict_batches_total {batches}",
            "# HELP scopeml_request_duration_seconds HTTP request latency.",
            "# TYPE scopeml_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
            cumulative += count
            label = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'scopeml_request_duration_seconds_bucket{{le="{label}"}} {cumulative}')
        lines.append(f"scopeml_request_duration_seconds_sum {total_seconds!r}")
        lines.append(f"scopeml_request_duration_seconds_count {cumulative}")
        for state, text in (("queued", "waiting for a job worker"), ("running", "running now")):
            if state in jobs:
                lines += [
                    f"# HELP scopeml_jobs_{state} Jobs {text} (all users).",
                    f"# TYPE scopeml_jobs_{state} gauge",
                    f"scopeml_jobs_{state} {int(jobs[state])}",
                ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
