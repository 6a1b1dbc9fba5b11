"""Start the server: load engines once, open the store, serve gRPC with health and reflection."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, replace

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc

from speakerlink_server.config import ServerConfig, parse_config
from speakerlink_server.engines.registry import Engines, load_engines
from speakerlink_server.engines.weights import WeightsUnavailable
from speakerlink_server.jobs import JobManager
from speakerlink_server.servicer import SpeakerlinkServicer
from speakerlink_server.store import JobStore
from speakerlink_server.uploads import MAX_CHUNK_BYTES

log = logging.getLogger("speakerlink_server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Speakerlink"].full_name
# Threads kept for quick calls on top of config.max_streams, which uploads and watchers can fill.
QUICK_CALL_THREADS = 8


@dataclass
class RunningServer:
    server: grpc.Server
    config: ServerConfig  # with the port actually bound
    jobs: JobManager
    store: JobStore
    engines: Engines
    health: health.HealthServicer

    def stop(self, grace: float | None = None) -> None:
        self.health.enter_graceful_shutdown()
        self.jobs.stop()
        self.server.stop(self.config.grace_seconds if grace is None else grace).wait()
        self.engines.close()
        self.store.close()


def start_server(config: ServerConfig) -> RunningServer:
    torch.set_num_threads(config.torch_threads or os.cpu_count() or 1)
    config.jobs_dir.mkdir(parents=True, exist_ok=True)
    engines = load_engines(config)
    store = JobStore(config.db_path)
    jobs = JobManager(config, store, engines)
    threads = config.max_streams + QUICK_CALL_THREADS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="speakerlink-rpc"),
        maximum_concurrent_rpcs=threads * 4,
        options=[("grpc.max_receive_message_length", MAX_CHUNK_BYTES + 64 * 1024)],  # + framing of the chunk
    )
    pb_grpc.add_SpeakerlinkServicer_to_server(SpeakerlinkServicer(config, store, jobs, engines), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(config.address)
    if port == 0:
        raise RuntimeError(f"could not bind {config.address}")
    config = replace(config, port=port)
    jobs.start()
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("speakerlink listening on %s (engines: %s; device %s)", config.address,
             ", ".join(f"{i.name}{'*' if i.active else ''}" for i in engines.infos if i.available), engines.device)
    return RunningServer(server, config, jobs, store, engines, health_servicer)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        running = start_server(parse_config(argv))
    except WeightsUnavailable as exc:
        print(f"speakerlink: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(f"speakerlink server ready on {running.config.address}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    log.info("shutting down")
    running.stop()


if __name__ == "__main__":
    main()
