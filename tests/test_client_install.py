"""The base install is a thin client: grpc and protobuf, never numpy or torch."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_base_dependencies_are_thin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() for dep in project["dependencies"]}
    assert names == {"grpcio", "protobuf", "grpcio-status"}


def test_client_and_cli_import_without_server_libraries() -> None:
    code = (
        "import sys, speakerlink, speakerlink.cli, speakerlink.aio\n"
        "heavy = {'numpy', 'torch', 'scipy', 'speakerlink_server'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
