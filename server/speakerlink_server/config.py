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
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


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
    # How long a job's worker waits for a PostgreSQL database that went away before it gives
    # the job back to the queue (it runs again once the database answers); clients' calls
    # never wait for it: they answer UNAVAILABLE at once.
    database_reconnect_seconds: float = 60.0
    engine: str = "auto"
    # Model files of the embedded default; "": the copies `speakerlink fetch-models` put in the
    # models folder ($SPEAKERLINK_MODELS_DIR, default ~/.cache/speakerlink/models).
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
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line (logs.py)
    metrics_port: int = 0  # Prometheus metrics on this port (metrics.py); 0: none
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
    "database_reconnect_seconds": ("SPEAKERLINK_DATABASE_RECONNECT_SECONDS", None),
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
    "log_level": ("SPEAKERLINK_LOG_LEVEL", None),
    "log_format": ("SPEAKERLINK_LOG_FORMAT", None),
    "metrics_port": ("SPEAKERLINK_METRICS_PORT", None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags. Each defaults to its environment variable, then to ServerConfig; its
    help line ends with both, taken from _ENV and ServerConfig, so neither can drift from it."""
    defaults = {f.name: f.default for f in fields(ServerConfig)}

    def flag(name: str, help: str, shown: str | None = None, **kwargs: object) -> None:
        """`shown`: the default as the help says it, where the value alone would not tell."""
        primary, legacy = _ENV[name]
        shown = shown if shown is not None else _shown(defaults[name])
        variables = primary + (f" or {legacy}" if legacy else "")
        parser.add_argument(f"--{name.replace('_', '-')}", help=f"{help} (default: {shown}; env {variables})", **kwargs)

    flag("host", "address to bind; 0.0.0.0 or :: for every interface")
    flag("port", "port to listen on; 0 picks a free one", type=int)
    flag("data_dir", "uploads, job records and results", type=Path)
    flag("max_clips", "clips per job", type=int)
    flag("max_file_bytes", "bytes per uploaded file", "104857600, 100 MiB", type=int)
    flag("max_clip_seconds", "seconds of audio per clip", "14400, 4 h", type=float)
    flag("max_job_seconds", "seconds of audio per job, all clips together", "28800, 8 h", type=float)
    flag("workers", "jobs processed at once by this server", type=int)
    flag("max_queued_jobs", "jobs waiting, across every server, before new ones are refused", type=int)
    flag("max_streams", "uploads and job watchers served at once; more are refused until one ends", type=int)
    flag("job_ttl_seconds", "how long a job's result and audio are kept", "604800, 7 days", type=int)
    flag("upload_idle_seconds", "an upload that sends nothing this long is cut off", type=float)
    flag("min_free_bytes", "uploads are refused while they would leave less free on the data disk",
         "536870912, 512 MiB", type=int)
    flag("database", "postgresql://USER@HOST/DB for jobs, results and voices; the variable keeps a password out "
         "of the process list", "SQLite in the data dir")
    flag("role", "all: uploads and jobs; api: uploads and answers only; worker: jobs only. api and worker share "
         "a PostgreSQL --database", choices=ROLES)
    flag("lease_seconds", "a dead worker's job is taken over this long after its last renewal", type=float)
    flag("database_reconnect_seconds", "how long a job's worker waits for a PostgreSQL database that went away "
         "before handing the job back to the queue; clients' calls answer UNAVAILABLE meanwhile", type=float)
    flag("engine", "embedder: auto (TitaNet where it loads, else CAM++), titanet or campplus")
    flag("segmentation_model", "segmentation-3.0 weights file", "the one `speakerlink fetch-models` put in "
         "$SPEAKERLINK_MODELS_DIR, else ~/.cache/speakerlink/models")
    flag("campplus_model", "CAM++ weights file", "the one `speakerlink fetch-models` put in the models folder")
    flag("titanet_model", "TitaNet weights: a pretrained name (NeMo/Hugging Face cache) or a .nemo file; '' turns "
         "TitaNet off")
    flag("titanet_batch", "windows per TitaNet forward pass", "0: 256 on CUDA, 8 on CPU", type=int)
    flag("torch_threads", "CPU threads for inference", "0: one per core", type=int)
    flag("chunk_seconds", "recordings longer than this are analysed a chunk at a time", type=float)
    flag("assemblyai_api_key", "turns on AssemblyAI transcription; the variable keeps the key out of the "
         "process list", "none")
    flag("assemblyai_base_url", "AssemblyAI API base URL, e.g. https://api.eu.assemblyai.com",
         "the SDK's, api.assemblyai.com")
    flag("assemblyai_concurrency", "clips of a job transcribed at once", type=int)
    flag("assemblyai_poll_seconds", "seconds between transcript status checks", type=float)
    flag("assemblyai_timeout_seconds", "longest wait for one transcript", "10800, 3 h", type=int)
    flag("assemblyai_keep_transcripts", "leave transcripts at AssemblyAI rather than delete each once read",
         action="store_true", default=None)
    flag("tls_cert", "serve TLS with this certificate chain (PEM); needs --tls-key", "none: no TLS")
    flag("tls_key", "the private key (PEM) of --tls-cert", "none")
    flag("tls_client_ca", "mutual TLS: accept only clients with a certificate from this CA (PEM)", "none")
    flag("tenants_file", "tenants and their token hashes (TOML; reread on SIGHUP); every call then needs a token",
         "none: no tokens")
    flag("anonymous_info", "answer GetInfo and reflection without a token (health checks never need one)",
         action="store_true", default=None)
    flag("insecure", "allow a non-loopback --host without TLS and tokens (only on a network you trust)",
         action="store_true", default=None)
    flag("tenant_max_uploads", "uploads at once per tenant; 0: no limit", type=int)
    flag("tenant_max_queued_jobs", "jobs waiting per tenant; 0: no limit", type=int)
    flag("tenant_audio_seconds_per_day", "audio seconds per tenant in any 24 hours; 0: no limit", type=float)
    flag("tenant_max_streams", "uploads and job watchers at once per tenant, of --max-streams; 0: no limit", type=int)
    flag("log_level", f"log lines at this level and above: {', '.join(LOG_LEVELS)}", type=str.upper,
         choices=LOG_LEVELS)
    flag("log_format", "text, or json: one object per line with time, level, logger, message and, where "
         "known, job id, tenant and stage", choices=LOG_FORMATS)
    flag("metrics_port", "serve Prometheus metrics at http://HOST:PORT/metrics, on --host; 0: none", type=int)


def _shown(value: object) -> str:
    """A default as the help shows it: 14400.0 as 14400, False as off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if value != "" else "none"


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


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                 prog: str = "speakerlink-server") -> ServerConfig:
    parser = argparse.ArgumentParser(prog=prog, description="Run the speakerlink gRPC server.")
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
    if config.log_level.upper() not in LOG_LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {config.log_level!r}")
    if config.log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be text or json, got {config.log_format!r}")
    if not 0 <= config.metrics_port <= 65535:
        raise ValueError(f"metrics_port must be 0..65535 (0: no metrics), got {config.metrics_port}")
    if not config.database_reconnect_seconds >= 0:
        raise ValueError(f"database_reconnect_seconds cannot be negative, got {config.database_reconnect_seconds}")
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
