"""Prometheus metrics, served on --metrics-port.

Counters and histograms count what this process did (stages run, audio processed, errors
answered, streams open); jobs by state and the queue's depth are read from the database at
each scrape, so every server sharing it reports the same. The hook points are few: the
pipeline's progress reports time the stages (`StageTimer`), a job's end counts its audio
(`job_ended`), an error's answer counts its code (`error`), and the call boundary counts
streams (`STREAMS_OPEN`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# From a short clip's link stage to a long recording's embedding.
STAGE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

STAGE_SECONDS = Histogram("speakerlink_stage_seconds", "Seconds a clip (or, for link, a job) spent in each pipeline stage",
                          ["stage"], buckets=STAGE_BUCKETS)
AUDIO_SECONDS = Counter("speakerlink_audio_seconds", "Seconds of audio in the jobs this server finished")
JOBS_ENDED = Counter("speakerlink_jobs_ended", "Jobs this server ran to an end, by how they ended", ["state"])
ERRORS = Counter("speakerlink_errors", "Errors answered to clients or ending jobs, by error code", ["code"])
STREAMS_OPEN = Gauge("speakerlink_streams_open", "Uploads and job watchers being served now")


def error(code: str) -> None:
    ERRORS.labels(code).inc()


def job_ended(state: str, audio_seconds: float) -> None:
    JOBS_ENDED.labels(state).inc()
    AUDIO_SECONDS.inc(audio_seconds)


class StageTimer:
    """Times each clip's stages from the pipeline's progress reports: a clip's stage ends when
    the clip reports the next one, when a stage of the whole job (clip -1, such as link)
    begins, or when the job ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # clips report from their own threads
        self._open: dict[int, tuple[str, float]] = {}  # clip index -> (stage, started)

    def report(self, stage: str, clip_index: int) -> None:
        now = time.monotonic()
        with self._lock:
            current = self._open.get(clip_index)
            if current is not None and current[0] == stage:
                return
            ended = self._open if clip_index == -1 else {clip_index: current} if current else {}
            self._open = {i: open_ for i, open_ in self._open.items() if i not in ended}
            self._open[clip_index] = (stage, now)
        _observe(ended.values(), now)

    def close(self) -> None:
        now = time.monotonic()
        with self._lock:
            ended, self._open = self._open, {}
        _observe(ended.values(), now)


def _observe(stages: Iterable[tuple[str, float]], now: float) -> None:
    for stage, started in stages:
        STAGE_SECONDS.labels(stage).observe(now - started)


class _Snapshot(Collector):
    """What is read at each scrape: jobs by state and queue depth from the database, and the
    GPU's memory where there is one."""

    def __init__(self, jobs_by_state: Callable[[], dict[str, int]]) -> None:
        self._jobs_by_state = jobs_by_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("speakerlink_database_up", "Whether the last scrape could read the database")
        try:
            counts = self._jobs_by_state()
        except Exception as exc:  # the database is away: the other metrics still serve
            log.debug("metrics could not read the database: %s", exc)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            jobs = GaugeMetricFamily("speakerlink_jobs", "Jobs in the database by state", labels=["state"])
            for state, count in sorted(counts.items()):
                jobs.add_metric([state], count)
            yield jobs
            yield GaugeMetricFamily("speakerlink_queue_depth", "Jobs waiting for a worker", value=counts.get("queued", 0))
        yield up
        yield from _gpu_memory()


def _gpu_memory() -> Iterator[GaugeMetricFamily]:
    import torch  # the server's own dependency, loaded by the engines already

    if not torch.cuda.is_available():
        return
    memory = GaugeMetricFamily("speakerlink_gpu_memory_bytes", "GPU memory held by this process",
                               labels=["device", "kind"])
    for index in range(torch.cuda.device_count()):
        memory.add_metric([str(index), "allocated"], torch.cuda.memory_allocated(index))
        memory.add_metric([str(index), "reserved"], torch.cuda.memory_reserved(index))
    yield memory


class MetricsServer:
    """The /metrics endpoint of one running server; `stop` frees its port."""

    def __init__(self, host: str, port: int, jobs_by_state: Callable[[], dict[str, int]]) -> None:
        self._snapshot = _Snapshot(jobs_by_state)
        REGISTRY.register(self._snapshot)
        try:
            self._http: WSGIServer = start_http_server(port, addr=host.strip("[]"))[0]
        except BaseException:
            REGISTRY.unregister(self._snapshot)
            raise
        log.info("metrics on http://%s:%d/metrics", host, port)

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        REGISTRY.unregister(self._snapshot)
