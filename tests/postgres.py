"""A throwaway PostgreSQL cluster in a temporary folder, from Debian's `postgresql` package.

initdb refuses to run as root, so as root the cluster belongs to the package's `postgres`
user. It listens on a free loopback port and trusts local connections: it lives as long as
the tests that use it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@dataclass(frozen=True)
class Cluster:
    dsn: str  # of the cluster's `postgres` database
    start: Callable[[], None]
    stop: Callable[[], None]  # at once, as a crash would


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A fresh cluster, running; removed with everything in it afterwards."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/install.sh does)")
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="speakerlink-pg-", dir="/tmp"))
    if as_root:
        shutil.chown(folder, "postgres", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = folder / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "speakerlink", "-A", "trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data)]

    def start() -> None:
        subprocess.run([*pg_ctl, "-l", str(folder / "log"), "-o", options, "-w", "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)

    start()
    try:
        yield Cluster(f"postgresql://speakerlink@127.0.0.1:{port}/postgres", start, stop)
    finally:
        stop()
        shutil.rmtree(folder, ignore_errors=True)
