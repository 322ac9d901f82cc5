"""A MetricsBook in Prometheus' text format, through prometheus-client."""

import threading
import time
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from v2x_metrics.book import MetricsBook

__all__ = ['CONTENT_TYPE_LATEST', 'Exposition']


class _Collector:
    def __init__(self, book: MetricsBook, lock: threading.Lock, clock: Callable[[], float]):
        self._book, self._lock, self._clock = book, lock, clock

    def collect(self):
        with self._lock:
            families = self._book.families(self._clock())
        for fam in families:
            metric = Metric(fam.name, fam.help, fam.kind)
            for s in fam.samples:
                metric.add_sample(fam.name + s.suffix, dict(s.labels), s.value)
            yield metric


class Exposition:
    """``render()`` -> (body bytes, content type) of the book, read under ``lock``."""

    def __init__(self, book: MetricsBook, lock: threading.Lock,
                 clock: Callable[[], float] = time.time):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(book, lock, clock))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
