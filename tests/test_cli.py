"""The CLI as a person or a script uses it, against the real server."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
import speakerlink
from conftest import excerpt
from speakerlink.cli import _parser, _reach_again
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc


def cli(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"SPEAKERLINK_SERVER": server.config.address}
    proc = subprocess.run(
        [sys.executable, "-m", "speakerlink.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_diarize_prints_text_and_plain_progress(server, samples) -> None:
    proc = cli(server, "diarize", str(samples["meeting.wav"]), str(samples["call.mp3"]))
    assert "== meeting.wav" in proc.stdout and "== call.mp3" in proc.stdout
    lines = proc.stderr.splitlines()
    assert any(line.startswith("job ") and "accepted" in line for line in lines)
    assert any(line.startswith("embed ") for line in lines)  # plain lines, not a redrawn bar
    assert "\r" not in proc.stderr


@pytest.mark.parametrize("fmt", ["json", "csv", "rttm"])
def test_diarize_formats_to_file(server, samples, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"result.{fmt}"
    cli(server, "diarize", str(samples["call.mp3"]), "--format", fmt, "-o", str(out), "--no-progress", "--num-speakers", "2")
    text = out.read_text()
    if fmt == "json":
        data = json.loads(text)
        assert len(data["clips"][0]["speakers"]) == 2
    elif fmt == "csv":
        assert text.startswith("clip,clip_index,start,end")
    else:
        assert all(line.startswith("SPEAKER call 1 ") for line in text.splitlines())


def test_info_watch_and_export(server, samples) -> None:
    info = cli(server, "info")
    assert "campplus" in info.stdout and "segmentation-3.0" in info.stdout and "formats:" in info.stdout and "cut off after 60 s" in info.stdout
    engines = [re.match(r"  [*+-] (\S+)\s+(\S+)", line) for line in info.stdout.splitlines() if line[:3] in ("  *", "  +", "  -")]
    assert len(engines) > 2 and len({engine.start(2) for engine in engines}) == 1  # the kind column lines up
    as_json = json.loads(cli(server, "diarize", str(samples["call.mp3"]), "--format", "json", "--no-progress").stdout)
    job = as_json["job_id"]
    watched = cli(server, "watch", job, "--no-progress")
    assert "== call.mp3" in watched.stdout
    rttm = cli(server, "export", job, "--format", "rttm")
    assert rttm.stdout.startswith("SPEAKER call 1 ")


def test_errors_are_explained(server, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    proc = cli(server, "diarize", str(empty), check=False)
    assert proc.returncode == 1
    assert "EMPTY_FILE" in proc.stderr and "try:" in proc.stderr
    proc = cli(server, "export", "0" * 32, check=False)
    assert proc.returncode == 1 and "JOB_NOT_FOUND" in proc.stderr and proc.stderr.count("job:") == 1
    proc = cli(server, "export", "nope", check=False)
    assert proc.returncode == 1 and "INVALID_JOB_ID" in proc.stderr
    proc = cli(server, "diarize", str(tmp_path / "missing.wav"), check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = cli(server, "--server", "127.0.0.1:9", "info", check=False)  # nothing listens there
    assert proc.returncode == 1 and "UNAVAILABLE" in proc.stderr
    assert "--tls-cert" in proc.stderr and "tls=" not in proc.stderr and "cert=" not in proc.stderr


def test_progress_bar_on_a_terminal(server, samples) -> None:
    import pty

    leader, follower = pty.openpty()
    env = os.environ | {"SPEAKERLINK_SERVER": server.config.address}
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakerlink.cli", "diarize", str(samples["call.mp3"])],
        stdout=subprocess.PIPE, stderr=follower, env=env,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        screen += data
    proc.wait(120)
    os.close(leader)
    text = screen.decode(errors="replace")
    assert proc.returncode == 0
    assert "\r[" in text and "100.0%" in text  # a bar redrawn in place
    assert "accepted\r\n" in text or "accepted\n" in text


def test_eval_scores_clips_against_a_reference(server, samples) -> None:
    clips = [str(samples[name]) for name in ("meeting.wav", "call.mp3", "interview.flac")]
    proc = cli(server, "eval", *clips, "-r", str(samples["reference.rttm"]), "--json", "--no-progress")
    report = json.loads(proc.stdout)
    assert [c["clip"] for c in report["clips"]] == ["call", "interview", "meeting"]
    assert report["ref_speakers"] == report["hyp_speakers"] == 5 and report["exact_count_clips"] == 3
    linking = report["linking"]
    assert {k: linking[k] for k in ("items", "exact", "false_merges", "false_splits")} == {
        "items": 8, "exact": 8, "false_merges": 0, "false_splits": 0}
    assert linking["accuracy"] == linking["pair_precision"] == 1.0 and linking["links"] > 0
    assert report["global_der"] <= 0.05 and 0 < report["real_time_factor"] < 1


def test_eval_in_process_prints_a_table_and_keeps_each_step_s_results(samples, tmp_path: Path) -> None:
    env = os.environ | {"SPEAKERLINK_TITANET_MODEL": ""}
    kept = tmp_path / "artifacts"
    proc = subprocess.run(
        [sys.executable, "-m", "speakerlink.cli", "--server", "127.0.0.1:9", "eval", str(samples["call.mp3"]),
         "-r", str(samples["reference.rttm"]), "--in-process", "--no-progress", "--keep-artifacts", str(kept)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["clip", "ref", "hyp", "DER", "JER"] and lines[1].split()[:3] == ["call", "2", "2"]
    assert any(line.startswith("global DER") for line in lines) and any(line.startswith("real-time factor") for line in lines)
    assert "exact in 1 of 1 clip," in proc.stdout and "0 false merges, 0 false splits" in proc.stdout
    assert sorted(p.name for p in (kept / "call.mp3").iterdir()) == ["cluster.npz", "embed.npz", "segment.npz", "turns.npz"]
    assert len(np.load(kept / "call.mp3" / "turns.npz")["speaker"]) > 0
    assert np.load(kept / "link.npz")["speaker"].tolist() == [0, 1]  # the clip's two speakers


def test_eval_keeps_artifacts_only_in_process(server, samples, tmp_path: Path) -> None:
    proc = cli(server, "eval", str(samples["call.mp3"]), "-r", str(samples["reference.rttm"]),
               "--keep-artifacts", str(tmp_path / "kept"), check=False)
    assert proc.returncode == 2 and "--keep-artifacts needs --in-process" in proc.stderr
    assert not (tmp_path / "kept").exists()


def test_eval_refuses_clips_the_reference_does_not_cover(server, samples, tmp_path: Path) -> None:
    other = tmp_path / "other.wav"
    other.write_bytes(samples["meeting.wav"].read_bytes())
    proc = cli(server, "eval", str(other), "-r", str(samples["reference.rttm"]), check=False)
    assert proc.returncode == 2 and "no turns for other.wav" in proc.stderr


def test_eval_through_a_condition(server, samples) -> None:
    clip, rttm = str(samples["call.mp3"]), str(samples["reference.rttm"])
    proc = cli(server, "eval", clip, "-r", rttm, "--condition", "far-room+phone-gsm", "--condition-seed", "3", "--json")
    assert "conditioning 1 clip: far-room+phone-gsm (seed 3)" in proc.stderr
    report = json.loads(proc.stdout)
    assert [c["clip"] for c in report["clips"]] == ["call"] and report["ref_speakers"] == 2
    assert report["clips"][0]["der"] < 0.5  # the reference still fits the conditioned clip's timing
    bad = cli(server, "eval", clip, "-r", rttm, "--condition", "far-room+fax", check=False)
    assert bad.returncode == 2 and "condition 'fax'" in bad.stderr and "known conditions: clean" in bad.stderr


def test_server_after_the_command_version_and_help_for_every_flag(server) -> None:
    env = os.environ | {"SPEAKERLINK_SERVER": "127.0.0.1:9"}  # nothing listens there
    after = subprocess.run([sys.executable, "-m", "speakerlink.cli", "info", "--server", server.config.address],
                           capture_output=True, text=True, env=env, timeout=60)
    assert after.returncode == 0 and "engines:" in after.stdout, after.stderr
    before = subprocess.run([sys.executable, "-m", "speakerlink.cli", "--server", server.config.address, "info"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert before.returncode == 0, before.stderr
    version = cli(server, "--version")
    assert version.stdout.strip() == f"speakerlink {speakerlink.__version__}"
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in [("speakerlink", parser), *commands.items()]:
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_a_bad_output_path_is_caught_before_the_upload(server, samples, tmp_path: Path) -> None:
    jobs_before = set(server.config.jobs_dir.iterdir())
    for output, why in ((tmp_path, "is a folder"), (tmp_path / "missing" / "out.rttm", "does not exist")):
        proc = cli(server, "diarize", str(samples["call.mp3"]), "-o", str(output), check=False)
        assert proc.returncode == 2 and why in proc.stderr and "Traceback" not in proc.stderr
    assert set(server.config.jobs_dir.iterdir()) == jobs_before  # nothing was uploaded


def test_an_interrupted_command_says_the_job_goes_on_and_how_to_reach_it(server, samples, tmp_path: Path) -> None:
    wav, rate = sf.read(samples["meeting.wav"], dtype="float32")
    long_clip = tmp_path / "long.flac"
    sf.write(long_clip, np.tile(wav, 6), rate)
    proc = cli(server, "diarize", str(long_clip), "--timeout", "2", "--no-progress", check=False)
    assert proc.returncode == 1, proc.stderr
    job_id = proc.stderr.split("stopped following job ")[1].split(";")[0]
    assert f"speakerlink watch {job_id}" in proc.stderr and f"speakerlink cancel {job_id}" in proc.stderr
    cancelled = cli(server, "cancel", job_id)
    assert "cancel requested" in cancelled.stdout or "cancelled" in cancelled.stdout


def test_jobs_lists_the_newest_first_with_their_clips(server, samples, tmp_path: Path) -> None:
    from speakerlink import Client

    clips = [excerpt(samples[name], 4.0, tmp_path / f"{Path(name).stem}.wav") for name in ("call.mp3", "interview.flac", "meeting.wav")]
    with Client(server.config.address) as client:
        ids = [client.diarize([clip]).job_id for clip in clips]
        everything = client.list_jobs(limit=1000)
        newest = [job.job_id for job in everything]
        assert newest[:3] == ids[::-1] and len(newest) == len(set(newest))
        assert [job.job_id for job in client.list_jobs(limit=2)] == ids[:0:-1]
        paged, token = [], ""
        with grpc.insecure_channel(server.config.address) as channel:
            stub = pb_grpc.SpeakerlinkStub(channel)
            while True:  # pages of one, each continuing where the last ended
                page = stub.ListJobs(pb.ListJobsRequest(page_size=1, page_token=token))
                paged += [job.job_id for job in page.jobs]
                if not (token := page.next_page_token):
                    break
            assert paged == newest
            with pytest.raises(grpc.RpcError) as info:
                stub.ListJobs(pb.ListJobsRequest(page_token="x" * 10_000))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert everything[0].clip_names == ["meeting.wav"] and everything[0].state == 3  # succeeded
    listed = cli(server, "jobs", "--limit", "3").stdout.splitlines()
    assert [line.split()[0] for line in listed] == ids[::-1]
    assert listed[0].split()[1] == "succeeded" and listed[0].endswith("meeting.wav")


def test_ctrl_c_after_the_upload_still_prints_the_job_id(server, samples, tmp_path: Path) -> None:
    fourth = tmp_path / "again.wav"
    fourth.write_bytes(samples["meeting.wav"].read_bytes())
    files = [str(samples[name]) for name in ("meeting.wav", "call.mp3", "interview.flac")] + [str(fourth)]
    env = os.environ | {"SPEAKERLINK_SERVER": server.config.address}
    proc = subprocess.Popen([sys.executable, "-m", "speakerlink.cli", "diarize", *files],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stderr:
        if line.startswith("upload 100%"):  # every byte sent; the server probes four clips before `accepted`
            proc.send_signal(signal.SIGINT)
            break
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, stderr
    job_id = stderr.split("stopped following job ")[1].split(";")[0]
    assert f"speakerlink watch {job_id}" in stderr and "Traceback" not in stderr
    cli(server, "cancel", job_id)


def test_ctrl_c_while_the_command_starts_prints_no_traceback() -> None:
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "speakerlink.cli", "--server", "127.0.0.1:9", "info"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.split("|")[-1].strip() == "grpc":  # half-way through the imports
            proc.send_signal(signal.SIGINT)
            break
    stderr = "".join(seen) + proc.communicate(timeout=60)[1]
    assert seen[-1].split("|")[-1].strip() == "grpc" and "Traceback" not in stderr and proc.returncode in (1, 130), stderr


HOSTILE = "evil\x1b[31m\u202egpj.mp3"  # recolours a terminal; shows as "evilmp3.jpg" where bidi applies
UNSAFE = ("\x1b", "\u202e")


@pytest.fixture(scope="module")
def hostile_job(server, samples, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A finished job of two clips, the first named with an escape sequence and a right-to-left
    override; yields its id and the text `diarize` printed."""
    named = tmp_path_factory.mktemp("hostile") / HOSTILE
    named.write_bytes(samples["call.mp3"].read_bytes())
    proc = cli(server, "diarize", str(named), str(samples["meeting.wav"]), "--no-progress", "--format", "json")
    job_id = json.loads(proc.stdout)["job_id"]
    return job_id, cli(server, "export", job_id, "--format", "text").stdout


def test_names_reach_no_terminal_or_file_raw(server, hostile_job, tmp_path: Path) -> None:
    job_id, text = hostile_job
    assert "== evil\\x1b[31m\\u202egpj.mp3" in text  # shown, escaped
    shown = [text, cli(server, "jobs", "--limit", "5").stdout, cli(server, "watch", job_id, "--no-progress").stdout,
             cli(server, "export", job_id, "--format", "rttm").stdout, cli(server, "export", job_id, "--format", "csv").stdout]
    cli(server, "export", job_id, "--format", "srt", "-o", str(tmp_path / "subtitles.zip"))
    with zipfile.ZipFile(tmp_path / "subtitles.zip") as archive:
        shown += archive.namelist() + [archive.read(name).decode() for name in archive.namelist()]
    with speakerlink.Client(server.config.address) as client:
        shown.append(client.export(job_id, "srt", 0).filename)
    assert not [piece for piece in shown if any(char in piece for char in UNSAFE)]


def test_several_clips_of_subtitles_are_written_only_as_a_zip(server, hostile_job, tmp_path: Path) -> None:
    job_id, _ = hostile_job
    proc = cli(server, "export", job_id, "--format", "srt", "-o", str(tmp_path / "x.srt"), check=False)
    assert proc.returncode == 2 and "NAME.zip" in proc.stderr and not (tmp_path / "x.srt").exists()
    proc = cli(server, "diarize", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--format", "vtt", "-o",
               str(tmp_path / "x.vtt"), check=False)
    assert proc.returncode == 2 and "NAME.zip" in proc.stderr  # before the upload: the files need not exist


def test_a_closed_pipe_ends_the_command_quietly(server, hostile_job) -> None:
    env = os.environ | {"SPEAKERLINK_SERVER": server.config.address}
    proc = subprocess.Popen([sys.executable, "-m", "speakerlink.cli", "export", hostile_job[0], "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    proc.stdout.close()  # as `| head` does once it has read enough
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 1 and stderr == ""


def test_the_lines_to_reach_a_job_again_carry_the_connection_flags_given() -> None:
    args = _parser().parse_args(["--server", "h:1", "--tls-ca", "my ca.pem", "watch", "J",
                                 "--token-file", "t", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
    flags = "--server h:1 --tls-ca 'my ca.pem' --tls-cert c.pem --tls-key k.pem --token-file t"
    assert _reach_again(args, "J").splitlines() == [f"  follow it: speakerlink {flags} watch J",
                                                    f"  stop it:   speakerlink {flags} cancel J"]
    assert "speakerlink --tls watch J" in _reach_again(_parser().parse_args(["--tls", "watch", "J"]), "J")
