"""The few Prometheus metrics a speech server needs, in the text exposition format (no client library: counters,
gauges read at scrape time and fixed-bucket histograms are a page of code)."""

from __future__ import annotations

import math
import threading
from typing import Callable

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped)) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.labels = name, help_text, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.labels, k)} {_number(v)}" for k, v in items]
        return lines


class Gauge:
    """A value read when scraped (queue depth, busy synthesizers), one per label set."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...], read: Callable[[], dict]):
        self.name, self.help, self.labels, self._read = name, help_text, labels, read

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        lines += [f"{self.name}{_labels(self.labels, k)} {_number(v)}" for k, v in sorted(self._read().items())]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = (), buckets=LATENCY_BUCKETS):
        self.name, self.help, self.labels = name, help_text, labels
        self.buckets = tuple(buckets) + (math.inf,)
        self._series: dict[tuple[str, ...], list] = {}  # labels → [bucket counts..., sum]
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.setdefault(labels, [0] * len(self.buckets) + [0.0])
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    series[index] += 1
            series[-1] += value

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return series[-2] if series else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, series in items:
            for bound, count in zip(self.buckets, series):
                le = _labels(self.labels + ("le",), key + (_number(bound),))
                lines.append(f"{self.name}_bucket{le} {count}")
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {_number(series[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {series[-2]}")
        return lines


class ServerMetrics:
    def __init__(self, queue_depth: Callable[[], dict], busy: Callable[[], dict]):
        self.requests = Counter("edgevoice_requests_total", "HTTP requests answered, by route and status",
                                ("route", "status"))
        self.errors = Counter("edgevoice_errors_total", "error responses and aborted streams, by kind", ("type",))
        self.first_byte = Histogram("edgevoice_time_to_first_byte_seconds",
                                    "from a speech request's arrival to its first audio bytes", ("model",))
        self.last_byte = Histogram("edgevoice_request_seconds", "from a speech request's arrival to its last byte",
                                   ("model",))
        self.audio_seconds = Counter("edgevoice_audio_seconds_total", "seconds of audio produced", ("model",))
        self.cancelled = Counter("edgevoice_streams_cancelled_total",
                                 "streams stopped early because the client went away", ("model",))
        self.queue_depth = Gauge("edgevoice_queue_depth", "requests waiting for a synthesizer", ("model",),
                                 queue_depth)
        self.busy = Gauge("edgevoice_busy_synthesizers", "synthesizers working on a request", ("model",), busy)

    def render(self) -> str:
        parts = (self.requests, self.errors, self.first_byte, self.last_byte, self.audio_seconds, self.cancelled,
                 self.queue_depth, self.busy)
        return "\n".join(line for metric in parts for line in metric.render()) + "\n"
