from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from speakerlink.cli import main as cli
from speakerlink_server.config import _ENV, ServerConfig, add_arguments, parse_config


def test_defaults() -> None:
    config = parse_config([], env={})
    assert config.max_clips == 10
    assert config.max_file_bytes == 100 * 1024 * 1024
    assert {"wav", "mp3", "m4a", "flac"} <= set(config.formats)


def test_original_design_variables() -> None:
    config = parse_config([], env={"UPLOAD_FOLDER": "/srv/uploads", "MAX_CONTENT_LENGTH": "1048576"})
    assert config.data_dir == Path("/srv/uploads")
    assert config.max_file_bytes == 1048576


def test_flags_beat_speakerlink_variables_beat_legacy_ones() -> None:
    env = {"MAX_CONTENT_LENGTH": "1", "SPEAKERLINK_MAX_FILE_BYTES": "2", "SPEAKERLINK_WORKERS": "3"}
    assert parse_config([], env=env).max_file_bytes == 2
    config = parse_config(["--max-file-bytes", "5", "--port", "0"], env=env)
    assert (config.max_file_bytes, config.workers, config.port) == (5, 3, 0)


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--port", "70000"], ["--max-clips", "-1"],
                                  ["--upload-idle-seconds", "0"], ["--min-free-bytes", "-1"],
                                  ["--max-streams", "0"]])
def test_invalid_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_config(argv, env={})


def test_a_role_other_than_all_needs_a_shared_database() -> None:
    with pytest.raises(ValueError, match="postgresql"):
        parse_config(["--role", "worker"], env={})
    config = parse_config(["--role", "api"], env={"SPEAKERLINK_DATABASE": "postgresql://u@db/speakerlink"})
    assert (config.role, config.lease_seconds) == ("api", 15.0)
    with pytest.raises(ValueError, match="lease_seconds"):
        parse_config(["--lease-seconds", "0.5"], env={})


def test_bad_integer_in_environment() -> None:
    with pytest.raises(ValueError, match="MAX|max_file_bytes"):
        parse_config([], env={"MAX_CONTENT_LENGTH": "lots"})


def test_paths_follow_data_dir(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path)
    assert config.db_path.parent == tmp_path and config.jobs_dir.parent == tmp_path


def test_assemblyai_settings_from_its_own_variables() -> None:
    env = {"ASSEMBLYAI_API_KEY": "secret-key-42", "ASSEMBLYAI_BASE_URL": "https://api.eu.assemblyai.com",
           "SPEAKERLINK_ASSEMBLYAI_POLL_SECONDS": "0.5"}
    config = parse_config(["--assemblyai-concurrency", "3"], env=env)
    assert config.assemblyai_api_key == "secret-key-42" and config.assemblyai_base_url == "https://api.eu.assemblyai.com"
    assert (config.assemblyai_poll_seconds, config.assemblyai_concurrency) == (0.5, 3)
    assert "secret-key-42" not in repr(config) and "secret-key-42" not in str(config)
    assert parse_config([], env={}).assemblyai_api_key == ""
    with pytest.raises(ValueError, match="assemblyai_poll_seconds"):
        parse_config(["--assemblyai-poll-seconds", "0"], env={})


def test_keeping_transcripts_is_a_switch() -> None:
    assert parse_config([], env={}).assemblyai_keep_transcripts is False
    assert parse_config(["--assemblyai-keep-transcripts"], env={}).assemblyai_keep_transcripts is True
    for word, value in (("yes", True), ("1", True), ("off", False), ("False", False)):
        assert parse_config([], env={"SPEAKERLINK_ASSEMBLYAI_KEEP_TRANSCRIPTS": word}).assemblyai_keep_transcripts is value
    with pytest.raises(ValueError, match="true or false"):
        parse_config([], env={"SPEAKERLINK_ASSEMBLYAI_KEEP_TRANSCRIPTS": "sometimes"})


def test_every_serve_flag_says_what_it_does_its_default_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = [action for action in parser._actions if action.dest != "help"]
    assert {action.dest for action in flags} == set(_ENV)  # every setting has a flag
    for action in flags:
        words, _, tail = action.help.rpartition(" (default: ")
        assert len(words) > 10, action.option_strings
        assert re.fullmatch(rf".+; env {_ENV[action.dest][0]}( or [A-Z_]+)?\)", tail), action.help
    with pytest.raises(SystemExit):
        cli(["serve", "--help"])
    assert capsys.readouterr().out.startswith("usage: speakerlink serve ")


def test_log_settings_and_the_metrics_port_come_from_flags_or_variables() -> None:
    config = parse_config(["--log-format", "json", "--metrics-port", "9100"], env={"SPEAKERLINK_LOG_LEVEL": "debug"})
    assert (config.log_level.upper(), config.log_format, config.metrics_port) == ("DEBUG", "json", 9100)
    for argv in (["--log-format", "xml"], ["--log-level", "chatty"]):
        with pytest.raises(SystemExit):
            parse_config(argv, env={})
    with pytest.raises(ValueError, match="log_format"):
        parse_config([], env={"SPEAKERLINK_LOG_FORMAT": "xml"})
