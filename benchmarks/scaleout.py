"""Throughput of the scaled-out service (F16): one front end and 1 or 2 workers on one PostgreSQL.

For each worker count, a fresh database on a throwaway cluster (tests/postgres.py), one
`--role api` front end and that many `--role worker` processes, each with --torch-threads set
to the machine's cores over the workers (as a deployer sharing one machine would). Then --jobs
jobs of the 37 s sample conversation are sent at once through the front end, and the time from
each one's Accepted event to its result is taken. Prints, for each worker count, jobs per
minute (jobs over the time from the first acceptance to the last result) and the median and
95th-percentile time from accepted to result, side by side.

    python benchmarks/scaleout.py [--jobs 24]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import psycopg
from speakerlink import Client
from speakerlink.events import is_terminal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from postgres import throwaway_cluster  # noqa: E402

SAMPLE = ROOT / "samples" / "meeting.wav"


def replica(stack: ExitStack, role: str, database: str, folder: Path, threads: int) -> str:
    """Start a server process of `role`; its address once it is ready."""
    log = stack.enter_context(open(folder / f"{role}-{uuid.uuid4().hex[:6]}.log", "w+"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakerlink_server", "--role", role, "--database", database, "--port", "0",
         "--data-dir", str(folder / uuid.uuid4().hex[:6]), "--titanet-model", "", "--torch-threads", str(threads),
         "--max-queued-jobs", "256"],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
    )
    stack.callback(lambda: (proc.terminate(), proc.wait(30)))
    ready = next((line for line in proc.stdout if "ready on" in line), None)
    if ready is None:
        log.seek(0)
        raise RuntimeError(f"{role} did not start:\n{log.read()}")
    return ready.split()[-1]


def one_job(address: str) -> tuple[float, float]:
    """(accepted, result) times of one job sent through `address`."""
    with Client(address, timeout=1800) as client:
        accepted = 0.0
        for event in client.iter_diarize([SAMPLE]):
            if event.HasField("accepted"):
                accepted = time.monotonic()
            if is_terminal(event):
                if not event.HasField("result"):
                    raise RuntimeError(f"a job did not succeed: {event}")
                return accepted, time.monotonic()
    raise RuntimeError("the stream ended without a result")


def measure(cluster_dsn: str, workers: int, jobs: int) -> tuple[float, float, float]:
    name = f"bench{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    database = cluster_dsn.rsplit("/", 1)[0] + f"/{name}"
    threads = max(1, (os.cpu_count() or 1) // workers)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        api = replica(stack, "api", database, Path(tmp), 1)
        for _ in range(workers):
            replica(stack, "worker", database, Path(tmp), threads)
        one_job(api)  # warm-up: every worker's first job pays for its kernels' first use
        if workers > 1:
            one_job(api)
        with ThreadPoolExecutor(jobs) as pool:
            times = list(pool.map(lambda _: one_job(api), range(jobs)))
    waits = np.array([done - accepted for accepted, done in times])
    span = max(done for _, done in times) - min(accepted for accepted, _ in times)
    return 60.0 * jobs / span, float(np.median(waits)), float(np.percentile(waits, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=24)
    args = parser.parse_args()
    with throwaway_cluster() as cluster:
        figures = {workers: measure(cluster.dsn, workers, args.jobs) for workers in (1, 2)}
    print(f"{args.jobs} jobs of a 37 s clip sent at once through one front end; {os.cpu_count()} CPU cores")
    print(f"{'':32s}{'1 worker':>12s}{'2 workers':>12s}")
    for label, index, unit in (("jobs per minute", 0, ""), ("accepted to result, median", 1, " s"),
                               ("accepted to result, p95", 2, " s")):
        print(f"{label:32s}" + "".join(f"{figures[w][index]:>10.1f}{unit:2s}" for w in (1, 2)))


if __name__ == "__main__":
    main()
