"""What TLS costs against plaintext on loopback, through the real server and the SDK's channel.

Three server processes run side by side: plaintext; TLS with a bearer token (tenants file);
mutual TLS with a client certificate and the token. The runs alternate between them, so
drift on the shared CPU falls on all three alike. For each it prints
- connect: time to a ready channel (TCP connect and, with TLS, the handshake) for a fresh
  channel built as speakerlink.Client builds it, 50 times: median and p90 in ms;
- upload: a 100 MB WAV sent with the SDK's request stream until the server's accepted event
  (received, written to disk, checked and probed), 5 times: median and best MB/s, and the
  median CPU seconds the client and the server spent on it (steadier than MB/s on a busy
  machine); each job is then cancelled and deleted, so no analysis runs;
and each TLS mode's overhead against plaintext: extra ms per connection, and the upload's
change in throughput and in CPU, in percent.

    python benchmarks/tls_cost.py
"""

from __future__ import annotations

import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
import wave
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from certs import Authority  # noqa: E402
from speakerlink.channel import Cert, Tls, channel_credentials  # noqa: E402
from speakerlink.client import CHANNEL_OPTIONS  # noqa: E402
from speakerlink.events import is_terminal  # noqa: E402
from speakerlink.options import diarize_options  # noqa: E402
from speakerlink.upload import build_config, request_stream  # noqa: E402
from speakerlink.v1 import speakerlink_pb2 as pb  # noqa: E402
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc  # noqa: E402

from benchmarks._server import server_process  # noqa: E402

MB = 1_000_000
UPLOAD_MB = 100
CONNECTS = 50
UPLOADS = 5
RATE = 16_000


@dataclass(frozen=True)
class Mode:
    name: str
    server_flags: tuple[str, ...]
    tls: Tls = False
    cert: Cert = None
    token: str | None = None


def modes(folder: Path) -> list[Mode]:
    ca = Authority(folder, "ca")
    server, client = ca.issue("server", server=True), ca.issue("client", server=False)
    token = secrets.token_urlsafe(32)
    tenants = folder / "tenants.toml"
    tenants.write_text(f'[tenants.bench]\ntokens = ["{hashlib.sha256(token.encode()).hexdigest()}"]\n')
    tls = ("--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tenants-file", str(tenants))
    return [
        Mode("plaintext", ()),
        Mode("TLS + token", tls, tls=ca.pem, token=token),
        Mode("mutual TLS + token", (*tls, "--tls-client-ca", str(ca.pem)), tls=ca.pem,
             cert=(client.cert, client.key), token=token),
    ]


def open_channel(address: str, mode: Mode) -> grpc.Channel:
    """A channel as speakerlink.Client opens it."""
    credentials = channel_credentials(mode.tls, mode.cert, mode.token)
    if credentials is None:
        return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


def connect_ms(address: str, mode: Mode) -> float:
    with open_channel(address, mode) as channel:
        started = time.perf_counter()
        grpc.channel_ready_future(channel).result(timeout=30)
        return (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class Upload:
    seconds: float
    cpu_seconds: float  # this process's and the server's together


def cpu_seconds(server: psutil.Process) -> float:
    times = server.cpu_times()
    return time.process_time() + times.user + times.system


def upload(stub: pb_grpc.SpeakerlinkStub, server: psutil.Process, path: Path, config: pb.DiarizeConfig) -> Upload:
    """From the first byte sent to the accepted event; the job is then cancelled and deleted."""
    cpu, started = cpu_seconds(server), time.perf_counter()
    events = stub.Diarize(request_stream([path], config), timeout=600)
    accepted = next(events)
    measured = Upload(time.perf_counter() - started, cpu_seconds(server) - cpu)
    assert accepted.HasField("accepted"), accepted
    stub.CancelJob(pb.CancelJobRequest(job_id=accepted.job_id), timeout=30)
    next(event for event in events if is_terminal(event))
    stub.DeleteJob(pb.DeleteJobRequest(job_id=accepted.job_id), timeout=30)
    return measured


def write_noise_wav(path: Path, megabytes: int) -> None:
    """16-bit mono white noise, random bytes behind a WAV header: a file the server accepts."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        for _ in range(megabytes):
            wav.writeframes(os.urandom(MB))


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def report(all_modes: list[Mode], connects: list[list[float]], uploads: list[list[Upload]], size_mb: float) -> None:
    print(f"loopback, {os.cpu_count()} CPU cores; connect: {CONNECTS} fresh channels each; "
          f"upload: {size_mb:.0f} MB WAV until accepted, {UPLOADS} runs each, CPU of client and server together")
    print(f"{'mode':<19} {'connect median':>14} {'p90':>8} {'upload median':>14} {'best':>9} {'CPU s':>6}  runs (MB/s)")
    medians = []
    for mode, times, runs in zip(all_modes, connects, uploads, strict=True):
        rates = [size_mb / run.seconds for run in runs]
        ms, rate, cpu = statistics.median(times), statistics.median(rates), statistics.median(r.cpu_seconds for r in runs)
        medians.append((ms, rate, cpu))
        print(f"{mode.name:<19} {ms:>11.2f} ms {p90(times):>5.2f} ms {rate:>9.0f} MB/s {max(rates):>4.0f} MB/s "
              f"{cpu:>6.2f}  {' / '.join(f'{r:.0f}' for r in rates)}")
    plain_ms, plain_rate, plain_cpu = medians[0]
    for mode, (ms, rate, cpu) in zip(all_modes[1:], medians[1:], strict=True):
        print(f"{mode.name} against plaintext: connect {ms - plain_ms:+.2f} ms; upload throughput "
              f"{(rate / plain_rate - 1) * 100:+.1f} %, CPU per upload {(cpu / plain_cpu - 1) * 100:+.1f} %")


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        path = folder / f"noise-{UPLOAD_MB}mb.wav"
        write_noise_wav(path, UPLOAD_MB)
        size_mb = path.stat().st_size / MB
        config = build_config([path], diarize_options())
        common = ("--max-file-bytes", str((UPLOAD_MB + 20) * MB), "--titanet-model", "")
        all_modes = modes(folder)
        servers = [stack.enter_context(server_process(*common, *mode.server_flags)) for mode in all_modes]

        connects: list[list[float]] = [[] for _ in all_modes]
        for _ in range(CONNECTS):
            for times, mode, (_, address) in zip(connects, all_modes, servers, strict=True):
                times.append(connect_ms(address, mode))
        uploads: list[list[Upload]] = [[] for _ in all_modes]
        stubs = [(pb_grpc.SpeakerlinkStub(stack.enter_context(open_channel(address, mode))), psutil.Process(proc.pid))
                 for mode, (proc, address) in zip(all_modes, servers, strict=True)]
        for _ in range(UPLOADS):
            for runs, (stub, server) in zip(uploads, stubs, strict=True):
                runs.append(upload(stub, server, path, config))

    report(all_modes, connects, uploads, size_mb)
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
