"""GET /metrics: what one process is doing, in Prometheus' text format.

Each app owns its CollectorRegistry (under metrics_key), so two apps in one
process (the tests) never share counters. What is counted as it happens (bytes
and rows imported, batch commit time) lives in Counters and a Histogram; what
already lives in an object (open SSE streams, pool use, uploads in progress,
event-loop lag) is read from that object when Prometheus scrapes, by a custom
collector, so no figure is kept twice.
"""
from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .importer.batch import Batch
from .keys import events_key, lag_key, metrics_key, pool_key, reads_key, uploads_key, warming_key
from .replica import Reads

# A batch is 8 MB by default and commits in tens of milliseconds to seconds.
COMMIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LAG_WINDOW_SECONDS = 60.0


class Metrics:
    """The registry of one app, and the instruments the import engine reports to."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.import_bytes = Counter(
            "csv_import_bytes", "Bytes of CSV files imported (committed) by this process",
            registry=self.registry)
        self.import_rows = Counter(
            "csv_import_rows", "CSV records imported (committed) by this process, by outcome",
            ["outcome"], registry=self.registry)
        for outcome in ("accepted", "rejected"):
            self.import_rows.labels(outcome)  # shown as 0 before the first import
        self.batch_commit = Histogram(
            "csv_import_batch_commit_seconds", "Time to write and commit one batch",
            buckets=COMMIT_BUCKETS, registry=self.registry)
        self.registry.register(_AppState(app))

    def observe_batch(self, batch: Batch, seconds: float) -> None:
        """A batch committed: its bytes, its rows and how long the commit took."""
        self.import_bytes.inc(batch.end_offset - batch.start_offset)
        self.import_rows.labels("accepted").inc(batch.accepted)
        self.import_rows.labels("rejected").inc(len(batch.rejects))
        self.batch_commit.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _AppState(Collector):
    """Figures read from the app's own objects at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; the names are fixed below

    def collect(self) -> Iterator[Metric]:
        app = self.app
        hub = app.get(events_key)
        yield _gauge("csv_import_sse_streams", "Open /import/events streams",
                     len(hub.subscribers) if hub is not None else 0)
        # Multipart uploads and tus PATCHes hold the same slots (UPLOADS_MAX_CONCURRENT).
        yield _gauge("csv_import_uploads_in_progress",
                     "Uploads being written to disk now (multipart uploads and tus PATCHes)",
                     app[uploads_key].in_use)
        pool = app.get(pool_key)
        if pool is not None:
            connections = GaugeMetricFamily("csv_import_db_pool_connections",
                                            "Connections of the database pool, by state", labels=["state"])
            connections.add_metric(["in_use"], pool.size - pool.freesize)
            connections.add_metric(["idle"], pool.freesize)
            yield connections
            if pool.maxsize is not None:  # None: a pool without a limit (maxsize=0)
                yield _gauge("csv_import_db_pool_max_connections", "Size the pool may grow to", pool.maxsize)
        reads = app.get(reads_key)
        if reads is not None:
            yield from _standby_figures(reads)
        warming = app.get(warming_key)
        if warming is not None:
            yield _gauge("csv_import_search_warming",
                         "1 while the service reads search's relations into memory after its start, else 0",
                         int(warming.running))
            yield _gauge("csv_import_search_warmed_bytes", "Bytes of search's relations read into memory at start",
                         warming.bytes_read)
        lag = app.get(lag_key)
        if lag is not None:
            family = GaugeMetricFamily("csv_import_event_loop_lag_seconds",
                                       f"How late a 10 ms sleep wakes up, over the last {LAG_WINDOW_SECONDS:.0f} s",
                                       labels=["quantile"])
            for name, ms in lag.percentiles(LAG_WINDOW_SECONDS).items():
                if ms is not None:
                    family.add_metric([{"p50": "0.5", "p99": "0.99"}[name]], ms / 1000)
            yield family


def _standby_figures(reads: Reads) -> Iterator[Metric]:
    """The read standby (DATABASE_READ_URL), as its watch last saw it, and where reads went."""
    state = reads.state
    yield _gauge("csv_import_db_standby_up", "1 when the read standby answers (reads go to it), else 0",
                 int(state.up))
    if state.lag_bytes is not None:
        yield _gauge("csv_import_db_replication_lag_bytes",
                     "WAL the read standby has still to replay, in bytes", state.lag_bytes)
    if state.lag_seconds is not None:
        yield _gauge("csv_import_db_replication_lag_seconds",
                     "Age of the last transaction the read standby replayed, 0 when it has replayed all it "
                     "received", state.lag_seconds)
    served = CounterMetricFamily("csv_import_db_reads", "Customer reads by the server that answered them",
                                 labels=["server"])
    for target, count in reads.served.items():
        served.add_metric([target], count)
    yield served


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def setup_metrics(app: web.Application) -> None:
    app[metrics_key] = Metrics(app)

