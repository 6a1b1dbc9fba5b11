"""Starting a server: what it refuses, before it loads any model."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import ROOT, make_config, start_server
from speakerlink import Client
from speakerlink_server import main
from speakerlink_server.main import StartupError


def test_a_busy_port_and_a_data_dir_in_use_are_refused(server, tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{server.config.port}: the port is in use"):
        main.start_server(make_config(tmp_path / "other", port=server.config.port))
    with pytest.raises(StartupError, match="another speakerlink server is using the data dir"):
        main.start_server(make_config(server.config.data_dir))
    assert time.monotonic() - started < 5, "refusals come before the models load"


def test_the_data_dir_is_free_again_once_its_server_stops(tmp_path) -> None:
    first = start_server(make_config(tmp_path))
    first.stop(grace=0)
    second = start_server(make_config(tmp_path))
    second.stop(grace=0)


def test_serve_exits_non_zero_on_a_busy_port(server, tmp_path) -> None:
    served = subprocess.run(
        [sys.executable, "-m", "speakerlink_server", "--port", str(server.config.port), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert served.returncode == 2
    assert "cannot start" in served.stderr and "port is in use" in served.stderr
    assert "ready" not in served.stdout


def test_serve_binds_an_ipv6_host_and_prints_an_address_clients_take(tmp_path) -> None:
    served = subprocess.Popen(
        [sys.executable, "-m", "speakerlink_server", "--host", "::1", "--port", "0", "--data-dir", str(tmp_path),
         "--titanet-model", ""],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        line = served.stdout.readline()
        assert line.startswith("speakerlink server ready on [::1]:"), line + served.stderr.read()
        with Client(line.rsplit(" ", 1)[-1].strip(), timeout=10) as client:
            assert client.info().version
    finally:
        served.terminate()
        assert served.wait(60) == 0
