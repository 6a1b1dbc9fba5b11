"""TitaNet-L speed on this host: embedding throughput by batch size, and a whole job's real-time factor.

Real TitaNet weights cannot be downloaded here, so a randomly initialised model with NeMo's
titanet-large architecture (benchmarks/titanet_models.py, ~23.5 M parameters) stands in: speed
and memory depend on the architecture, not on the weights. Both parts use the real speech of
realtime_factor.py (its ten minutes, tiled where more is needed).

1. TitanetEmbedder.embed on the server's TitaNet windows (1.5 s every 0.75 s) with the batch
   size swept, after a warm-up batch: windows per second, window-seconds per second (1.5 s
   per window) and seconds of underlying audio per second (the windows overlap, so about half
   the former). It tells what --titanet-batch should be on this device; on CUDA the peak
   allocated and reserved GPU memory of each point are printed too.
2. One --seconds recording (default 10 minutes) through the real server in its own process
   (--engine titanet, --titanet-model on the saved model), once per --titanet-batch in
   --job-batches, each after a shorter warm-up job: the real-time factor (processing seconds /
   audio seconds, from the result summary) and the server's peak resident memory, sampled
   every 10 ms during the job.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client  # noqa: E402
from speakerlink_server.engines import titanet  # noqa: E402
from speakerlink_server.pipeline.windows import WindowParams  # noqa: E402

from benchmarks._server import server_process  # noqa: E402
from benchmarks.realtime_factor import RATE, ten_minutes  # noqa: E402
from benchmarks.titanet_models import build_titanet  # noqa: E402
from benchmarks.upload_memory import peak_rss_during  # noqa: E402

WARM_UP_SECONDS = 60
WINDOW = WindowParams()  # the windows the pipeline embeds
MiB = 2**20


def throughput(model: Path, device: str, speech: np.ndarray, batches: list[int], count: int) -> None:
    """Print one row per batch size: TitanetEmbedder.embed speed on `count` windows of `speech`."""
    size, hop = round(WINDOW.seconds * RATE), round(WINDOW.hop_seconds * RATE)
    windows = [[(start, start + size)] for start in range(0, len(speech) - size + 1, hop)][:count]
    covered = (windows[-1][0][1] - windows[0][0][0]) / RATE
    cuda = device == "cuda"
    print(f"embedding throughput on {device}, {len(windows)} windows of {WINDOW.seconds} s "
          f"(hop {WINDOW.hop_seconds} s, {covered:.0f} s of audio), {torch.get_num_threads()} threads")
    print(f"{'batch':>6} {'windows/s':>10} {'window-s/s':>11} {'audio s/s':>10}" + (f" {'peak alloc':>11} {'reserved':>10}" if cuda else ""))
    for batch in batches:
        embedder = titanet.TitanetEmbedder(str(model), device, batch)
        embedder.embed(speech, windows[:batch])  # warm-up at this batch shape
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        embedder.embed(speech, windows)
        rate = len(windows) / (time.perf_counter() - started)
        row = f"{batch:>6} {rate:>10.1f} {rate * WINDOW.seconds:>11.1f} {rate * covered / len(windows):>10.1f}"
        if cuda:
            row += f" {torch.cuda.max_memory_allocated() / MiB:>8.0f}MiB {torch.cuda.memory_reserved() / MiB:>7.0f}MiB"
        print(row, flush=True)
        embedder.close()  # its batcher thread holds the model
        del embedder
        if cuda:  # free this point's model and cache before the next is measured
            gc.collect()
            torch.cuda.empty_cache()


def whole_jobs(model: Path, speech: np.ndarray, source: str, folder: Path, batches: list[int]) -> None:
    """Print, per --titanet-batch, the real-time factor and peak server RSS of one job on `speech`."""
    warm_up, path = folder / "warm-up.flac", folder / "input.flac"
    sf.write(warm_up, speech[: WARM_UP_SECONDS * RATE], RATE)
    sf.write(path, speech, RATE)
    print(f"\nwhole job through the server (--engine titanet): {len(speech) / RATE:.0f} s of {source}")
    print(f"{'batch':>6} {'processing':>11} {'RTF':>7} {'whole call':>11} {'RSS before':>11} {'peak':>9} {'speakers':>9}")
    for batch in batches:
        args = ("--engine", "titanet", "--titanet-model", str(model), "--titanet-batch", str(batch))
        with server_process(*args) as (proc, address), Client(address, timeout=7200) as client:
            client.diarize([warm_up])  # first-call allocations and caches
            results: list = []
            job = functools.partial(_append_result, results, client, path)
            before, peak, wall = peak_rss_during(proc.pid, job)
        s = results[0].summary
        assert "titanet" in s.engines, s.engines
        print(f"{batch:>6} {s.processing_seconds:>10.2f}s {s.processing_seconds / s.audio_seconds:>7.4f} {wall:>10.2f}s "
              f"{before / MiB:>8.0f}MiB {peak / MiB:>6.0f}MiB {s.unique_speakers:>9}", flush=True)


def _append_result(results: list, client: Client, path: Path) -> None:
    results.append(client.diarize([path], timeout=7200))


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600, help="length of the whole-job input (3600 on a GPU host)")
    parser.add_argument("--windows", type=int, default=4096 if device == "cuda" else 64, help="windows per batch-size point")
    parser.add_argument("--batches", type=int, nargs="+",
                        default=[32, 64, 128, 256, 512, 1024] if device == "cuda" else [1, 4, 8, 16, 32])
    parser.add_argument("--job-batches", type=int, nargs="+", default=[64, 256, 1024] if device == "cuda" else [4, 8, 16],
                        help="--titanet-batch values for the whole job")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(nemo_logging.ERROR)  # keeps NeMo's notice on each model load out of the table

    ten, source = ten_minutes()
    needed = max(args.seconds, args.windows * WINDOW.hop_seconds + WINDOW.seconds)
    speech = np.resize(ten, int(np.ceil(needed * RATE)))  # repeats the ten minutes where more is needed
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "titanet-large-random.nemo"
        build_titanet("large", model)
        throughput(model, device, speech, args.batches, args.windows)
        whole_jobs(model, speech[: args.seconds * RATE], source, Path(tmp), args.job_batches)


if __name__ == "__main__":
    main()
