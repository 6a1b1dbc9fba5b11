"""What a crash leaves behind: the real server killed with SIGKILL at chosen moments, then started again on its data dir.

Four cases, five kills each, at moments drawn from a fixed seed:
  mid-upload     a partial upload is on disk (the first kill after every byte, the stream still open);
  mid-analysis   a job is running (after its n-th segment or embed progress event): it must be
                 requeued and finish with the result an uninterrupted run gives;
  after-result   the result has just reached the client: it must still be fetchable;
  during-delete  DeleteJob sent a few milliseconds before the kill, of a finished job and of a
                 running one: the job must be wholly gone or wholly there, never half.
After each restart, once no job is queued or running, every file and folder under
<data-dir>/jobs is counted (the restart's sweep should leave none) and every result delivered so
far is fetched again (none may be lost or changed). Prints one line per case (files summed over
its restarts), with the files the kills had left on disk and what became of the job each kill
hit, then a total; names each problem found and exits 1 if anything was left, lost or half done.

Usage: python benchmarks/kill_recovery.py [--kills 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf
from speakerlink import Client, SpeakerlinkError
from speakerlink.events import is_terminal, terminal_outcome
from speakerlink.upload import CHUNK_BYTES, build_config
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "meeting.wav"  # 37 s of conversation: a job of about 2 s on 2 cores
ANALYSIS_EVENTS = 10  # segment and embed progress events of the two-minute clip (3 + 7)
SETTLE_S = 120.0
ACTIVE = frozenset({pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING})


class Server:
    """The real server as a child process on one data dir, killed outright and started again
    as a crash and a supervisor would; each run logs to a file of its own."""

    def __init__(self, data_dir: Path, logs: Path) -> None:
        self.data_dir = data_dir
        self.jobs_dir = data_dir / "jobs"
        self._logs = logs
        self._runs = 0
        self.start()

    def start(self) -> None:
        self._runs += 1
        self.log = self._logs / f"server-{self._runs}.log"
        with self.log.open("w") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "speakerlink_server", "--port", "0", "--data-dir", str(self.data_dir),
                 "--titanet-model", ""],
                stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
            )
        assert self._proc.stdout is not None
        ready = next((line for line in self._proc.stdout if "ready on" in line), None)
        if ready is None:
            raise RuntimeError(f"the server did not start:\n{self.log.read_text()}")
        self.address = ready.split()[-1]
        self.client = Client(self.address, timeout=30)

    def kill(self) -> None:
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(30)
        self.client.close()

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(30)
        self.client.close()

    def requeued(self, job_id: str) -> bool:
        """Whether this run found the job unfinished and queued it again (jobs.py logs it)."""
        return f"requeueing job {job_id}" in self.log.read_text()


@dataclass
class Tally:
    name: str
    kills: int = 0
    files_at_kills: int = 0
    files_left: int = 0
    lost: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        outcomes = ", ".join(f"{outcome} {count}" for outcome, count in self.outcomes.items())
        return (f"{self.name}: {self.kills} kills, files left after restart: {self.files_left}, results lost: "
                f"{self.lost} (files on disk at the kills: {self.files_at_kills}; {outcomes})")


@dataclass
class Lab:
    """One server, one data dir and every result delivered so far, across all cases: a result
    must survive every later kill, not only the next one."""

    server: Server
    long_clip: Path
    reference: pb.DiarizationResult  # an uninterrupted run of long_clip
    delivered: dict[str, pb.DiarizationResult]
    problems: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=lambda: Tally(""))

    def run(self, name: str, case: Case, kills: int, rng: random.Random) -> Tally:
        self.tally = Tally(name)
        for turn in range(kills):
            self.tally.outcomes[case(self, rng, turn)] += 1
        print(self.tally.line(), flush=True)
        return self.tally

    def kill(self) -> int:
        """SIGKILL the server; returns the files and folders it left under jobs/."""
        self.server.kill()
        self.tally.kills += 1
        found = files_under(self.server.jobs_dir)
        self.tally.files_at_kills += found
        return found

    def recover(self) -> None:
        """Start the server again; once requeued jobs have ended, count what is left under jobs/
        and fetch every delivered result again."""
        self.server.start()
        client = self.server.client
        stuck = settle(client)
        if stuck:
            self.problem(f"still queued or running {SETTLE_S:.0f} s after the restart: {', '.join(stuck)}")
        jobs = self.server.jobs_dir
        left = sorted(str(path.relative_to(jobs)) for path in jobs.rglob("*"))
        self.tally.files_left += len(left)
        if left:
            self.problem(f"left under jobs/ after the restart: {', '.join(left)}")
        for job_id, result in list(self.delivered.items()):
            if fetched(client, job_id) != result:
                self.lose(job_id, "its delivered result is gone or changed after the restart")

    def lose(self, job_id: str, why: str) -> None:
        self.delivered.pop(job_id, None)
        self.tally.lost += 1
        self.problem(f"job {job_id}: {why}")

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.tally.name}, kill {self.tally.kills}: {text}")


Case = Callable[[Lab, random.Random, int], str]
"""One kill and its checks; returns what became of the job it hit."""


def files_under(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*"))


def stored_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def settle(client: Client) -> list[str]:
    """Wait until no job is queued or running, since a requeued job rightly keeps its audio
    until it ends; returns the jobs still active when the wait ran out."""
    deadline = time.monotonic() + SETTLE_S
    while active := [job.job_id for job in client.list_jobs(limit=500) if job.state in ACTIVE]:
        if time.monotonic() > deadline:
            return active
        time.sleep(0.2)
    return []


def fetched(client: Client, job_id: str) -> pb.DiarizationResult | None:
    try:
        return client.get_result(job_id)
    except SpeakerlinkError:
        return None


def state_of(client: Client, job_id: str) -> int | None:
    return next((job.state for job in client.list_jobs(limit=500) if job.job_id == job_id), None)


def same_analysis(result: pb.DiarizationResult, reference: pb.DiarizationResult) -> bool:
    """Speakers and segments equal; the job id and the processing time rightly differ."""
    return list(result.speakers) == list(reference.speakers) and list(result.clips) == list(reference.clips)


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {seconds:.0f} s")
        time.sleep(0.02)


# ---------------------------------------------------------------------- cases


def kill_mid_upload(lab: Lab, rng: random.Random, turn: int) -> str:
    """A partial upload on disk has no job record pointing at it: only the sweep removes it.
    The raw stub holds the stream open, so the kill lands at a known byte offset."""
    data = lab.long_clip.read_bytes()
    sent = len(data) if turn == 0 else rng.randrange(1, len(data))
    jobs_before = len(lab.server.client.list_jobs(limit=500))
    release = threading.Event()

    def requests() -> Iterator[pb.DiarizeRequest]:
        yield pb.DiarizeRequest(config=build_config([lab.long_clip], pb.DiarizeOptions()))
        for start in range(0, sent, CHUNK_BYTES):
            yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=data[start:min(start + CHUNK_BYTES, sent)]))
        release.wait()  # never closes the stream: the server waits for the rest

    with grpc.insecure_channel(lab.server.address) as channel:
        call = pb_grpc.SpeakerlinkStub(channel).Diarize(requests(), timeout=60)
        wait_until(lambda: stored_bytes(lab.server.jobs_dir) >= sent, "the partial upload did not reach the disk")
        lab.kill()
        release.set()
        call.cancel()
    lab.recover()
    if len(lab.server.client.list_jobs(limit=500)) != jobs_before:
        lab.problem("a job record appeared for an upload that never finished")
    return "no job recorded"


def kill_mid_analysis(lab: Lab, rng: random.Random, turn: int) -> str:
    """A running job is 'running' in the store with its audio on disk: the restart must requeue
    it, and the rerun must give what an uninterrupted run gives."""
    target = rng.randrange(1, ANALYSIS_EVENTS)
    events = lab.server.client.iter_diarize([lab.long_clip], timeout=120)
    job_id = next(events).job_id
    seen = 0
    for event in events:
        if event.HasField("progress") and event.progress.stage in ("segment", "embed"):
            seen += 1
            if seen == target:
                break
    time.sleep(rng.uniform(0, 0.3))
    lab.kill()
    events.close()
    lab.recover()
    result = fetched(lab.server.client, job_id)
    if result is None:
        lab.lose(job_id, "the job running at the kill has no result after the restart")
        return "no result"
    if not same_analysis(result, lab.reference):
        lab.problem(f"job {job_id}: its result after the restart differs from an uninterrupted run's")
    lab.delivered[job_id] = result
    return "requeued and finished" if lab.server.requeued(job_id) else "finished before the kill"


def kill_after_result(lab: Lab, rng: random.Random, turn: int) -> str:
    """The result reached the client a moment ago, while the server may still be dropping the
    job's audio: the result must survive the kill, the audio must not."""
    delay = 0.0 if turn == 0 else rng.uniform(0, 0.01)
    events = lab.server.client.iter_diarize([SAMPLE], timeout=120)
    result = terminal_outcome(next(event for event in events if is_terminal(event)))
    time.sleep(delay)
    found = lab.kill()
    lab.delivered[result.job_id] = result
    lab.recover()
    return "audio still on disk at the kill" if found else "audio already removed at the kill"


def kill_during_delete(lab: Lab, rng: random.Random, turn: int) -> str:
    """DeleteJob removes the record, then the folder: a kill between them, or before the delete
    lands, must leave the job wholly there or wholly gone, and a delete answered before the
    kill must stay done. Even turns delete a finished job, odd ones a running one."""
    client = lab.server.client
    before: pb.DiarizationResult | None = None
    if turn % 2 == 0:
        before = client.diarize([SAMPLE], timeout=120)
        job_id = before.job_id
    else:
        events = client.iter_diarize([SAMPLE], timeout=120)
        job_id = next(events).job_id
        next(e for e in events if e.HasField("progress") and e.progress.stage == "segment")
    answers: list[bool] = []
    deleting = threading.Thread(target=delete_quietly, args=(client, job_id, answers))
    deleting.start()
    time.sleep(0.0 if turn < 2 else rng.uniform(0, 0.004))  # the first of each kind at once
    lab.kill()
    deleting.join(30)
    lab.recover()
    return delete_outcome(lab, job_id, before, answered=bool(answers))


def delete_quietly(client: Client, job_id: str, answers: list[bool]) -> None:
    """DeleteJob as a client sends it; the kill may cut it off, which is no error here."""
    try:
        answers.append(client.delete(job_id))
    except SpeakerlinkError:
        pass


def delete_outcome(lab: Lab, job_id: str, before: pb.DiarizationResult | None, answered: bool) -> str:
    client = lab.server.client
    state = state_of(client, job_id)
    said = ", delete answered" if answered else ""
    if state is None:
        return f"gone{said}"
    if answered:
        lab.problem(f"job {job_id}: the delete was answered before the kill, but the job is back")
    if state == pb.JOB_STATE_CANCELLED:
        return f"kept, cancelled{said}"
    try:
        result = client.get_result(job_id)
    except SpeakerlinkError as exc:
        lab.problem(f"job {job_id}: half deleted, {pb.JobState.Name(state)} with no result ({exc.code})")
        return f"half deleted{said}"
    if before is not None and result != before:
        lab.lose(job_id, "its result changed across the interrupted delete")
        return f"changed{said}"
    lab.delivered[job_id] = result
    return f"kept{said}"


CASES: tuple[tuple[str, Case], ...] = (
    ("mid-upload", kill_mid_upload),
    ("mid-analysis", kill_mid_analysis),
    ("after-result", kill_after_result),
    ("during-delete", kill_during_delete),
)


def two_minutes(folder: Path) -> Path:
    """The sample conversation four times over as FLAC (146 s, 2.8 MB): an upload that takes
    a moment and a job of about 5 s."""
    wav, rate = sf.read(SAMPLE, dtype="float32")
    path = folder / "long.flac"
    sf.write(path, np.tile(wav, 4), rate)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per case")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill moments")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        long_clip = two_minutes(Path(tmp))
        server = Server(Path(tmp) / "data", Path(tmp))
        try:
            reference = server.client.diarize([long_clip], timeout=120)
            lab = Lab(server, long_clip, reference, {reference.job_id: reference})
            tallies = [lab.run(name, case, args.kills, rng) for name, case in CASES]
        finally:
            server.stop()
    print(f"total: {sum(t.kills for t in tallies)} kills, files left after restart: "
          f"{sum(t.files_left for t in tallies)}, results lost: {sum(t.lost for t in tallies)} "
          f"in {time.monotonic() - started:.0f} s")
    for problem in lab.problems:
        print(f"PROBLEM {problem}")
    sys.exit(1 if lab.problems else 0)


if __name__ == "__main__":
    main()
