"""Operations: the log as JSON lines, and Prometheus metrics, from a real server process."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from certs import Authority
from conftest import ROOT
from prometheus_client.parser import text_string_to_metric_families
from speakerlink import Client, NotFoundError


def test_a_server_logs_json_lines_with_the_job_and_serves_metrics(tmp_path: Path, samples) -> None:
    token = secrets.token_urlsafe(24)
    pem = Authority(tmp_path, "ca").issue("server", server=True)
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(f'[tenants.acme]\ntokens = ["{hashlib.sha256(token.encode()).hexdigest()}"]\n')
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    log = tmp_path / "server.log"
    served = subprocess.Popen(
        [sys.executable, "-m", "speakerlink_server", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--titanet-model", "", "--tls-cert", str(pem.cert), "--tls-key", str(pem.key), "--tenants-file", str(tenants),
         "--log-format", "json", "--metrics-port", str(metrics_port)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT,
        env={**os.environ, "SPEAKERLINK_LOG_LEVEL": "debug"},
    )
    try:
        port = int(served.stdout.readline().rsplit(":", 1)[-1])
        with Client(f"localhost:{port}", tls=tmp_path / "ca.pem", token=token, timeout=30) as client:
            result = client.diarize([samples["call.mp3"]])
            with pytest.raises(NotFoundError):
                client.get_result("0" * 32)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
            scraped = answer.read().decode()
    finally:
        served.terminate()
        assert served.wait(60) == 0, log.read_text()

    samples_by_name = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for family in text_string_to_metric_families(scraped) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples_by_name[(name, tuple(sorted(labels.items())))]

    assert value("speakerlink_jobs", state="succeeded") == 1 and value("speakerlink_queue_depth") == 0
    assert value("speakerlink_jobs_ended_total", state="succeeded") == 1
    assert value("speakerlink_audio_seconds_total") == pytest.approx(result.clips[0].duration_seconds)
    for stage in ("segment", "embed", "link"):
        assert value("speakerlink_stage_seconds_count", stage=stage) >= 1, stage
    assert value("speakerlink_errors_total", code="JOB_NOT_FOUND") == 1
    assert value("speakerlink_streams_open") == 0 and value("speakerlink_database_up") == 1

    text = log.read_text()
    assert token not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    about_job = [line for line in lines if result.job_id in line["message"]]
    assert len(about_job) >= 3  # accepted, started, succeeded
    assert all(line.get("job_id") == result.job_id and line.get("tenant") == "acme" for line in about_job), about_job
    assert any(line.get("stage") for line in about_job)
