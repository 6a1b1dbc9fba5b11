"""Start the server: load engines once, open the store, serve gRPC with health and reflection."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from speakerlink.channel import is_loopback
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc

from speakerlink_server import logs
from speakerlink_server.audio_store import DatabaseAudio, FolderAudio
from speakerlink_server.auth import AuthInterceptor, Tenants, TenantsFileError
from speakerlink_server.boundary import BoundaryInterceptor
from speakerlink_server.config import ServerConfig, parse_config
from speakerlink_server.database import Database, SchemaTooNew, open_database
from speakerlink_server.engines.base import Hook
from speakerlink_server.engines.registry import Engines, load_engines
from speakerlink_server.engines.weights import WeightsUnavailable
from speakerlink_server.jobs import JobManager, state_name
from speakerlink_server.metrics import MetricsServer
from speakerlink_server.quotas import Quota, Quotas
from speakerlink_server.reflection import enable_reflection
from speakerlink_server.servicer import SpeakerlinkServicer
from speakerlink_server.store import Store
from speakerlink_server.uploads import MAX_MESSAGE_BYTES

log = logging.getLogger("speakerlink_server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Speakerlink"].full_name
# Threads kept for quick calls on top of config.max_streams, which uploads and watchers can fill.
QUICK_CALL_THREADS = 8


class StartupError(Exception):
    """The server cannot start as configured; the message says why and what to do."""


@dataclass
class RunningServer:
    server: grpc.Server
    config: ServerConfig  # with the port actually bound
    jobs: JobManager
    store: Store
    engines: Engines
    health: health.HealthServicer
    lock: TextIO  # holds the data dir's lock while the server runs
    tenants: Tenants
    metrics: MetricsServer | None
    owns_engines: bool = True  # False: the caller lent them and closes them itself

    def stop(self, grace: float | None = None) -> None:
        self.health.enter_graceful_shutdown()
        self.jobs.stop()
        self.server.stop(self.config.grace_seconds if grace is None else grace).wait()
        if self.metrics is not None:
            self.metrics.stop()
        if self.owns_engines:
            self.engines.close()
        self.store.close()
        self.lock.close()


def lock_data_dir(data_dir: Path) -> TextIO:
    """An exclusive lock on the data dir for as long as the returned file stays open: a second
    server on the same folder would requeue, and run again, the jobs the first is running."""
    handle = open(data_dir / "server.lock", "a+")  # held open by RunningServer
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StartupError(f"another speakerlink server is using the data dir {data_dir}; "
                           "stop it, or give this one its own --data-dir") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def security(config: ServerConfig) -> tuple[grpc.ServerCredentials | None, Tenants]:
    """TLS credentials and the tenants table, or a StartupError that says what is missing.
    A server off loopback without both would let anyone on the network read every job."""
    try:
        tenants = Tenants(Path(config.tenants_file) if config.tenants_file else None)
    except TenantsFileError as exc:
        raise StartupError(str(exc)) from None
    credentials = None
    if config.tls_cert:
        try:
            chain, key = Path(config.tls_cert).read_bytes(), Path(config.tls_key).read_bytes()
            client_ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
        except OSError as exc:
            raise StartupError(f"cannot read a TLS file: {exc}") from None
        credentials = grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                                  require_client_auth=client_ca is not None)
    if tenants.required and credentials is None:
        raise StartupError("a tenants file needs TLS, or tokens would cross the network in plaintext; "
                           "give --tls-cert and --tls-key")
    if not is_loopback(config.host) and (credentials is None or not tenants.required):
        if not config.insecure:
            raise StartupError(f"--host {config.host} is not loopback: anyone who can reach it could read every "
                               "job. Give --tls-cert, --tls-key and --tenants-file, or --insecure on a network you trust")
        log.warning("INSECURE: serving %s without %s; anyone who can reach this port can read, cancel and delete "
                    "every job", config.host, " and ".join(
                        what for what, missing in (("TLS", credentials is None), ("tokens", not tenants.required))
                        if missing))
    return credentials, tenants


def start_server(config: ServerConfig, engines: Engines | None = None, hooks: Sequence[Hook] = ()) -> RunningServer:
    """Everything that can refuse to start (security settings, the data dir's lock, the
    database, the port) is checked before the models load, so a misconfigured server fails in
    a moment. `engines`: already loaded for this configuration by a caller that serves several
    servers from one load (the tests); the caller keeps them, and stop() leaves them open.
    `hooks` follow every job's steps besides its progress (`speakerlink eval --keep-artifacts`)."""
    torch.set_num_threads(config.torch_threads or os.cpu_count() or 1)
    credentials, tenants = security(config)
    config.jobs_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_data_dir(config.data_dir)
    try:
        store = Store.over(_open_database(config))
    except BaseException:
        lock.close()
        raise
    metrics = None
    try:
        threads = config.max_streams + QUICK_CALL_THREADS
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="speakerlink-rpc"),
            interceptors=[BoundaryInterceptor(store.database, SERVICE_NAME), AuthInterceptor(tenants, config.anonymous_info)],
            maximum_concurrent_rpcs=threads * 4,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # gRPC shares ports by default: a second server would bind a busy port and take
                # half of the first one's calls.
                ("grpc.so_reuseport", 0),
            ],
        )
        config = replace(config, port=_bind(server, config.address, credentials))
        metrics = _serve_metrics(config, store)
        lent = engines is not None
        engines = engines if lent else load_engines(config)
    except BaseException:
        if metrics is not None:
            metrics.stop()
        store.close()
        lock.close()
        raise
    audio = DatabaseAudio(config.jobs_dir, store.database) if store.database.shared else FolderAudio(config.jobs_dir)
    jobs = JobManager(config, store, audio, engines, take_jobs=config.role != "api", hooks=hooks)
    served = [health.SERVICE_NAME]
    if config.role != "worker":  # a worker answers health checks alone
        quotas = Quotas(store, tenants, Quota(config.tenant_max_uploads, config.tenant_max_queued_jobs,
                                              config.tenant_audio_seconds_per_day, config.tenant_max_streams))
        servicer = SpeakerlinkServicer(config, store, jobs, audio, engines, tenants, quotas)
        pb_grpc.add_SpeakerlinkServicer_to_server(servicer, server)
        served.insert(0, SERVICE_NAME)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(served, server)
    jobs.start()
    server.start()
    for name in ("", SERVICE_NAME) if config.role != "worker" else ("",):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("speakerlink %slistening on %s%s%s (engines: %s; device %s)",
             "" if config.role == "all" else f"{config.role} ", config.address,
             " with TLS" if credentials else "", f", {len(tenants)} tenants" if tenants.required else "",
             ", ".join(f"{i.name}{'*' if i.active else ''}" for i in engines.infos if i.available), engines.device)
    return RunningServer(server, config, jobs, store, engines, health_servicer, lock, tenants, metrics, not lent)


def _serve_metrics(config: ServerConfig, store: Store) -> MetricsServer | None:
    if not config.metrics_port:
        return None

    def jobs_by_state() -> dict[str, int]:
        with store.database.failing_fast():  # a scrape waits for no database
            counts = store.jobs.count_by_state()
        return {state_name(state): counts.get(state, 0) for state in pb.JobState.values() if state}

    try:
        return MetricsServer(config.host, config.metrics_port, jobs_by_state)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {config.host}:{config.metrics_port}: {exc.strerror}; "
                           "choose another --metrics-port") from None


def _open_database(config: ServerConfig) -> Database:
    try:
        return open_database(config.database, config.db_path, config.database_reconnect_seconds)
    except (SchemaTooNew, ValueError, RuntimeError) as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:  # the driver's own: a database that is down, refuses us, or does not exist
        where = config.database.split("@")[-1] if config.database else str(config.db_path)
        raise StartupError(f"cannot open the database at {where}: {type(exc).__name__}: {exc}") from None


def _bind(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(f"cannot listen on {address}: the port is in use, or the host is not an address of "
                           "this machine; choose another with --port or --host")
    return port


def main(argv: Sequence[str] | None = None, prog: str = "speakerlink-server") -> None:
    """`prog`: the command that runs this, as --help and usage errors name it."""
    try:
        config = parse_config(argv, prog=prog)
        logs.configure(config.log_level, config.log_format)
        running = start_server(config)
    except (ValueError, WeightsUnavailable, StartupError) as exc:
        print(f"speakerlink: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before "ready": a stop sent at once is still graceful
        signal.signal(sig, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: running.tenants.reload())
    print(f"speakerlink server ready on {running.config.address}", flush=True)
    done.wait()
    log.info("shutting down")
    running.stop()


if __name__ == "__main__":
    main()
