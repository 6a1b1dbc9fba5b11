"""Malformed input against the real server: every input gets a result or a typed error, and the server lives.

A corpus of about 780 inputs is built from a fixed random seed in a temporary folder:
- the first 8 s of samples/meeting.wav encoded in wav, flac, mp3, ogg, opus, m4a and webm, each
  whole and mutated (1, 10 and 100 bytes flipped, the first 64 bytes overwritten, cut at random
  points, chunks inserted or deleted, the file repeated);
- synthetic files: empty, random bytes of 1 B to 200 KB, WAV headers declaring absurd rates,
  channels, bit depths, format tags and sizes (the 1 Hz bomb of tests/test_bad_input.py among
  them), text, PNG, PDF, ELF, gzip and zip files under audio names, audio under the wrong name;
- requests carrying the whole WAV: speaker counts, link thresholds, engines, languages through
  the SDK, and through the raw stub (past the SDK's own checks) negative counts, clip names
  with control characters, separators, unicode or 10,000 characters, lying manifests and
  out-of-order messages.

Each input is one job (four at a time, each waited for up to 120 s) and ends as a result, a
typed error (a SpeakerlinkError, tallied by code; the SDK refusing options before upload counts
as one) or an untyped exception (a defect, printed). After each input the server process must
still run and answer GetInfo; if not, the crash is printed with the inputs in flight and the
server is started again. Defects too, and printed: typed errors with code INTERNAL or UNKNOWN
(an exception the server did not expect), DEADLINE_EXCEEDED (a job that hung) or STREAM_LOST,
and any traceback in the server's log. Printed at the end: corpus size, outcomes per group and
in all, error codes, crashes, untyped errors, faults, logged tracebacks, the slowest input and
the wall time. Exit status 1 on any defect.

    python benchmarks/fuzz.py [--seed 0] [--concurrency 4] [--verbose]
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client, SpeakerlinkError  # noqa: E402
from speakerlink.errors import error_from_rpc  # noqa: E402
from speakerlink.events import is_terminal, stream_lost, terminal_outcome  # noqa: E402
from speakerlink.options import diarize_options  # noqa: E402
from speakerlink.upload import build_config, request_stream  # noqa: E402
from speakerlink.v1 import speakerlink_pb2 as pb  # noqa: E402
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc  # noqa: E402

from benchmarks._server import ROOT, server_process  # noqa: E402

SEED_SECONDS = 8
JOB_SECONDS = 120.0
HEALTH_SECONDS = 10.0
MAX_CLIPS = 32
SERVER_FLAGS = ("--titanet-model", "", "--max-clips", str(MAX_CLIPS))
ENCODINGS = {
    "wav": [], "flac": [], "mp3": ["-c:a", "libmp3lame"], "ogg": ["-c:a", "libvorbis"], "opus": ["-c:a", "libopus"],
    "m4a": ["-c:a", "aac"], "webm": ["-c:a", "libopus"],
}
FORMATS = ("wav", "flac", "mp3", "ogg", "opus", "m4a", "aac", "webm")
# Typed errors that still mean a defect: the server failed in a way it did not foresee, a job
# never ended within JOB_SECONDS, or an event stream stopped without a terminal event.
FAULT_CODES = frozenset({"INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "STREAM_LOST"})
SDK_REFUSAL = "REFUSED_BY_SDK"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
COUNTS = (INT32_MIN, -5, -1, 0, 1, 2, 3, 7, 50, 99, 100, 101, 1000, INT32_MAX)


@dataclass(frozen=True)
class Case:
    """One input: files sent through Client.diarize with options, or messages sent as they are
    through the raw stub, past the SDK's checks, to reach the server's own validation."""

    group: str
    name: str
    paths: tuple[Path, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    messages: tuple[pb.DiarizeRequest, ...] | None = None


@dataclass(frozen=True)
class Outcome:
    case: Case
    kind: str  # "result", "typed error", "untyped" or "crash"
    detail: str  # the error code, or the untyped exception
    seconds: float


# ---------------------------------------------------------------- corpus: seed files


def encode_seeds(folder: Path) -> dict[str, Path]:
    """The seed clip in every encoding, each decoding whole (the baseline the mutations break)."""
    seeds = {}
    for extension, codec in ENCODINGS.items():
        seeds[extension] = folder / f"seed.{extension}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(ROOT / "samples" / "meeting.wav"), "-t", str(SEED_SECONDS),
                        "-ac", "1", *codec, str(seeds[extension])], check=True)
    return seeds


def flip(rng: random.Random, data: bytes, count: int) -> bytes:
    out = bytearray(data)
    for position in rng.sample(range(len(out)), min(count, len(out))):
        out[position] ^= rng.randrange(1, 256)
    return bytes(out)


def overwrite_header(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for position in rng.sample(range(min(64, len(out))), rng.randint(1, 8)):
        out[position] = rng.randrange(256)
    return bytes(out)


def insert_chunk(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + rng.randbytes(rng.choice((1, 16, 512, 4096))) + data[at:]


def delete_chunk(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 4096) :]


def mutations(rng: random.Random, data: bytes) -> Iterator[tuple[str, bytes]]:
    """56 variants of one file, the whole file first."""
    yield "whole", data
    for count in (1, 10, 100):
        for k in range(6):
            yield f"flip{count}-{k}", flip(rng, data, count)
    yield "header-zeroed", bytes(64) + data[64:]
    yield "header-ff", b"\xff" * 64 + data[64:]
    for k in range(8):
        yield f"header-{k}", overwrite_header(rng, data)
    yield "cut-header", data[:32]
    for k in range(11):
        yield f"cut-{k}", data[: rng.randrange(1, len(data))]
    for k in range(6):
        yield f"insert-{k}", insert_chunk(rng, data)
    for k in range(6):
        yield f"delete-{k}", delete_chunk(rng, data)
    yield "twice", data * 2
    yield "thrice", data * 3
    yield "and-a-half", data + data[: len(data) // 2]


def seed_cases(rng: random.Random, folder: Path, seeds: dict[str, Path]) -> Iterator[Case]:
    for extension, seed in seeds.items():
        for label, data in mutations(rng, seed.read_bytes()):
            path = folder / f"{extension}-{label}.{extension}"
            path.write_bytes(data)
            yield Case(extension, path.name, (path,))


# ---------------------------------------------------------------- corpus: synthetic files


def wav_bytes(rate: int, channels: int, bits: int, payload: bytes, *, tag: int = 1, data_size: int | None = None,
              fmt_size: int = 16, riff_size: int | None = None) -> bytes:
    """A WAV file whose header says what it is told to, however absurd (sizes wrap at 32 bits)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate & 0xFFFFFFFF, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVEfmt " + struct.pack("<I", fmt_size) + fmt + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + payload
    riff = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", riff & 0xFFFFFFFF) + body


def pcm_of(seed: Path, seconds: float) -> bytes:
    with wave.open(str(seed)) as clip:
        return clip.readframes(int(clip.getframerate() * seconds))


def absurd_wavs(rng: random.Random, pcm: bytes) -> Iterator[tuple[str, bytes]]:
    """The 1 Hz bomb, broken chunk structure, then random draws of rate, channels, bits, tag and size."""
    yield "bomb-1hz", wav_bytes(1, 1, 8, bytes([128]) * 36000)
    yield "riff-size-0", wav_bytes(16000, 1, 16, pcm, riff_size=0)
    yield "riff-size-max", wav_bytes(16000, 1, 16, pcm, riff_size=0xFFFFFFFF)
    yield "fmt-size-0", wav_bytes(16000, 1, 16, pcm, fmt_size=0)
    yield "fmt-size-14", wav_bytes(16000, 1, 16, pcm, fmt_size=14)
    yield "fmt-size-max", wav_bytes(16000, 1, 16, pcm, fmt_size=0xFFFFFFFF)
    yield "no-data-chunk", wav_bytes(16000, 1, 16, b"")[:-8]
    yield "header-only", wav_bytes(16000, 1, 16, b"", data_size=len(pcm))
    yield "huge-junk-chunk", wav_bytes(16000, 1, 16, b"")[:36] + b"JUNK\xff\xff\xff\x7f" + pcm
    yield "two-data-chunks", wav_bytes(16000, 1, 16, pcm) + b"data" + struct.pack("<I", len(pcm)) + pcm
    rates = (0, 1, 2, 100, 7999, 8000, 16000, 48000, 192000, 384000, 10**9, INT32_MAX, 0xFFFFFFFF)
    channels = (0, 1, 2, 3, 8, 64, 255, 65535)
    bits = (0, 1, 4, 7, 8, 12, 16, 24, 32, 64, 65535)
    tags = (0, 1, 2, 3, 6, 7, 0x55, 0xFFFE, 0xFFFF)
    for k in range(90):
        rate, channel, bit, tag = rng.choice(rates), rng.choice(channels), rng.choice(bits), rng.choice(tags)
        size = rng.choice((None, 0, 1, len(pcm) + 1, 2**31, 0xFFFFFFFF))
        yield (f"r{rate}-c{channel}-b{bit}-t{tag}-s{size}-{k}",
               wav_bytes(rate, channel, bit, pcm, tag=tag, data_size=size))


def foreign_files(seeds: dict[str, Path]) -> Iterator[tuple[str, bytes]]:
    """Files that are not audio at all, under audio names: text, images, archives, programs."""
    texts = {
        "notes": b"these are meeting notes, not a recording\n" * 50,
        "csv": b"start,end,speaker\n0.0,1.5,A\n1.5,3.0,B\n",
        "json": b'{"clips": [{"name": "a.wav"}]}',
        "utf16": "a transcript \u4f1a\u8bae\n".encode("utf-16"),
        "rttm": (ROOT / "samples" / "reference.rttm").read_bytes(),
    }
    for label, text in texts.items():
        for extension in ("wav", "mp3", "flac"):
            yield f"text-{label}.{extension}", text
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    binaries = {"png": png + bytes(200), "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(200),
                "elf": b"\x7fELF\x02\x01\x01" + bytes(200), "gzip": gzip.compress(b"not audio" * 100, mtime=0)}
    for label, data in binaries.items():
        for extension in ("wav", "ogg"):
            yield f"{label}.{extension}", data
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("meeting.wav", (2020, 1, 1, 0, 0, 0)), seeds["wav"].read_bytes())
    for extension in ("wav", "m4a", "flac"):
        yield f"zip.{extension}", archive.getvalue()


def random_files(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Random bytes of 1 B to 200 KB, then random bytes behind each container's magic number."""
    for k in range(48):
        length = max(1, round(200_000 ** (k / 47)))
        yield f"random-{length}.{FORMATS[k % len(FORMATS)]}", rng.randbytes(length)
    magic = {"wav": b"RIFF\x24\x00\x00\x00WAVEfmt ", "flac": b"fLaC", "ogg": b"OggS\x00\x02", "mp3": b"ID3\x04\x00\x00",
             "m4a": b"\x00\x00\x00\x20ftypM4A ", "webm": b"\x1a\x45\xdf\xa3"}
    for extension, head in magic.items():
        for length in (0, 10, 1000, 50_000):
            yield f"magic-{length}.{extension}", head + rng.randbytes(length)


def synthetic_cases(rng: random.Random, folder: Path, seeds: dict[str, Path]) -> Iterator[Case]:
    files = [(f"empty.{extension}", b"") for extension in FORMATS]
    files += random_files(rng)
    files += [(f"wav-{label}.wav", data) for label, data in absurd_wavs(rng, pcm_of(seeds["wav"], 1.0))]
    files += foreign_files(seeds)
    extensions = list(seeds)
    for k, (extension, seed) in enumerate(seeds.items()):  # real audio under another format's name
        files.append((f"{extension}-named.{extensions[(k + 1) % len(extensions)]}", seed.read_bytes()))
    for name in ("wav-named.xyz", "wav-named.txt", "wav-no-suffix", "wav-upper.WAV"):
        files.append((name, seeds["wav"].read_bytes()))
    for name, data in files:
        path = folder / name
        path.write_bytes(data)
        yield Case("synthetic", name, (path,))


# ---------------------------------------------------------------- corpus: requests


def raw_messages(paths: tuple[Path, ...], options: pb.DiarizeOptions | None = None, **manifest: object
                 ) -> list[pb.DiarizeRequest]:
    """The messages the SDK would send, with the first clip's manifest fields replaced."""
    config = build_config(paths, options or pb.DiarizeOptions())
    for key, value in manifest.items():
        setattr(config.clips[0], key, value)
    return list(request_stream(paths, config))


def speaker_cases(rng: random.Random, clip: tuple[Path, ...]) -> Iterator[Case]:
    """Random exact/min/max counts, through the SDK and again as a raw proto the SDK cannot refuse."""
    for k in range(40):
        exact, low, high = (rng.choice(COUNTS) if rng.random() < 0.5 else 0 for _ in range(3))
        kwargs = {key: value for key, value in
                  (("num_speakers", exact), ("min_speakers", low), ("max_speakers", high)) if value}
        yield Case("request", f"sdk speakers exact={exact} min={low} max={high} #{k}", clip, kwargs)
        options = pb.DiarizeOptions(speakers=pb.SpeakerCount(exact=exact, min=low, max=high))
        yield Case("request", f"raw speakers exact={exact} min={low} max={high} #{k}", clip,
                   messages=tuple(raw_messages(clip, options)))


def option_cases(rng: random.Random, clip: tuple[Path, ...]) -> Iterator[Case]:
    """Thresholds, engines and languages through the SDK, which sends them unchecked."""
    for threshold in (float("nan"), float("inf"), float("-inf"), -1.0, -1.0000001, 0.0, 1e-45, 0.5, 1.0, 1.5, 2.0, 1e38):
        yield Case("request", f"link_threshold={threshold!r}", clip, {"link_threshold": threshold})
    engines = ["", "auto", "campplus", "titanet", "CAMPPLUS", " auto", "auto\x00", "../campplus", "\u5f15\u64ce",
               "\U0001f600", "e" * 64, "e" * 65, "\x1b[31mred", "assemblyai"]
    engines += ["".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randint(1, 20))) for _ in range(4)]
    for engine in engines:
        yield Case("request", f"engine={engine[:40]!r} ({len(engine)} chars)", clip, {"engine": engine})
    for language in ("en", "de", "xx-YY", "l" * 35, "l" * 36, "\x00", "\u65e5\u672c\u8a9e"):
        yield Case("request", f"language={language!r} transcribe=True", clip, {"language": language, "transcribe": True})
    yield Case("request", "transcribe=False", clip, {"transcribe": False})


CLIP_NAMES = (
    "", " ", "\t", "\n", ".", "..", ".wav", "a\x00b.wav", "\x1b[31mred\x1b[0m.wav", "line\nforged: ok.wav",
    "../../etc/passwd.wav", "/abs/path.wav", "C:\\dir\\clip.wav", "a/b/c.wav", "\u4f1a\u8bae.wav",
    "\U0001f600\U0001f3a4.wav", "\u202egnp.wav", "caf\u00e9.wav", "cafe\u0301.wav", "trailing space .wav",
    "n" * 251 + ".wav", "n" * 252 + ".wav", "n" * 10_000 + ".wav", "no-suffix",
)


def manifest_cases(clip: tuple[Path, ...]) -> Iterator[Case]:
    """Clip names, format hints and lying manifests, sent through the raw stub."""
    for name in CLIP_NAMES:
        yield Case("request", f"clip name {name[:40]!r} ({len(name)} chars)", clip,
                   messages=tuple(raw_messages(clip, name=name)))
    for hint in ("", "WAV", "xyz", "mp3", "w" * 17, "wav\x00"):
        yield Case("request", f"format hint {hint!r}", clip, messages=tuple(raw_messages(clip, format=hint)))
    size = clip[0].stat().st_size
    for declared in (size - 1, size + 1, 1, -1, 2**62):
        yield Case("request", f"size_bytes={declared} (sends {size})", clip,
                   messages=tuple(raw_messages(clip, size_bytes=declared)))
    for digest in ("0" * 64, "zz", "g" * 64, build_config(clip, pb.DiarizeOptions()).clips[0].sha256.upper()):
        yield Case("request", f"sha256={digest[:12]!r}...", clip, messages=tuple(raw_messages(clip, sha256=digest)))


def protocol_cases(clip: tuple[Path, ...]) -> Iterator[Case]:
    """Messages out of order or pointing nowhere, and requests of many clips."""
    config, *chunks = raw_messages(clip)
    data = chunks[0].chunk.data
    sequences = {
        "no messages": [],
        "chunk first": [*chunks, config],
        "config twice": [config, config, *chunks],
        "config only": [config],
        "chunk for clip 5": [config, pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=5, data=data))],
        "chunk for clip -1": [config, pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=-1, data=data))],
        "empty chunks, then the clip": [config, *[pb.DiarizeRequest(chunk=pb.AudioChunk())] * 100, *chunks],
        "manifest of no clips": [pb.DiarizeRequest(config=pb.DiarizeConfig()), *chunks],
    }
    for label, messages in sequences.items():
        yield Case("request", label, clip, messages=tuple(messages))
    yield Case("request", "the same file twice", clip * 2)
    yield Case("request", f"{MAX_CLIPS} clips", clip * MAX_CLIPS)
    yield Case("request", f"{MAX_CLIPS + 1} clips", clip * (MAX_CLIPS + 1))
    names = raw_messages(clip * 2)
    names[0].config.clips[1].name = names[0].config.clips[0].name
    yield Case("request", "two clips of one name", clip * 2, messages=tuple(names))


def corpus(seed: int, folder: Path) -> list[Case]:
    rng = random.Random(seed)
    seeds = encode_seeds(folder)
    clip = (seeds["wav"],)
    return [*seed_cases(rng, folder, seeds), *synthetic_cases(rng, folder, seeds), *speaker_cases(rng, clip),
            *option_cases(rng, clip), *manifest_cases(clip), *protocol_cases(clip)]


# ---------------------------------------------------------------- running


def send_raw(address: str, messages: tuple[pb.DiarizeRequest, ...]) -> None:
    """Diarize through the bare stub; a failure becomes the SDK's typed error, as the SDK would raise it."""
    with grpc.insecure_channel(address) as channel:
        try:
            for event in pb_grpc.SpeakerlinkStub(channel).Diarize(iter(messages), timeout=JOB_SECONDS):
                if is_terminal(event):
                    terminal_outcome(event)
                    return
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None
    raise stream_lost("")


def submit(client: Client, case: Case) -> None:
    """Send the case and wait for its job; a failure raises the SDK's typed error."""
    if case.messages is not None:
        send_raw(client.target, case.messages)
    else:
        client.diarize(case.paths, timeout=JOB_SECONDS, **case.options)


def classify(client: Client, case: Case) -> tuple[str, str]:
    """The case's outcome kind and detail (its error code, or the untyped exception)."""
    try:
        diarize_options(**case.options)
    except ValueError:  # the SDK's own check, before anything is sent: a typed refusal too
        return "typed error", SDK_REFUSAL
    try:
        submit(client, case)
    except SpeakerlinkError as exc:
        if exc.code in FAULT_CODES:
            print(f"fault: {case.name}: {exc}", flush=True)
        return "typed error", exc.code
    except Exception as exc:  # a defect: the SDK promises typed errors only
        print(f"untyped: {case.name}: {type(exc).__name__}: {exc}", flush=True)
        return "untyped", f"{type(exc).__name__}: {exc}"
    return "result", ""


class Server:
    """The server under test, started again after a crash so that the rest of the corpus still runs.

    Inputs run on several threads: the one that finds the server gone restarts it and blames
    every input then in flight, since any of them may have killed it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.crashes: list[tuple[list[str], str]] = []  # (inputs in flight, the server log's tail)
        self.tracebacks: list[str] = []
        self._start()

    def _start(self) -> None:
        self._stack = ExitStack()
        self.proc, address = self._stack.enter_context(server_process(*SERVER_FLAGS))
        self.client = self._stack.enter_context(Client(address, timeout=HEALTH_SECONDS))

    def serving(self) -> bool:
        if self.proc.poll() is not None:
            return False
        try:
            return bool(self.client.info().version)
        except SpeakerlinkError:
            return False

    def log_lines(self) -> list[str]:
        """The server's log, which server_process keeps beside the data folder it names."""
        data_dir = Path(self.proc.args[self.proc.args.index("--data-dir") + 1])
        return (data_dir.parent / "server.log").read_text(errors="replace").splitlines()

    def run(self, case: Case) -> Outcome:
        with self.lock:
            proc, client = self.proc, self.client
            self.in_flight.add(case.name)
        started = time.monotonic()
        kind, detail = classify(client, case)
        seconds = time.monotonic() - started
        with self.lock:
            if self.proc is proc and not self.serving():
                self._record_crash()
            self.in_flight.discard(case.name)
            if self.proc is not proc:  # the server this input ran on is gone
                kind, detail = "crash", f"exit status {proc.returncode}"
        return Outcome(case, kind, detail, seconds)

    def _record_crash(self) -> None:
        suspects = sorted(self.in_flight)
        self.crashes.append((suspects, "\n".join(self.log_lines()[-30:])))
        print(f"CRASH (exit status {self.proc.poll()}) with in flight: {suspects}\n{self.crashes[-1][1]}", flush=True)
        self.close()
        self._start()

    def close(self) -> None:
        """Stop the server, keeping the tracebacks of its log: an exception a typed error hid is a defect too."""
        self.tracebacks += tracebacks(self.log_lines())
        self._stack.close()


def tracebacks(lines: list[str]) -> list[str]:
    """Each traceback in a log, with the line that introduced it and the exception's own line."""
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")), len(lines) - 1)
            found.append("\n".join(lines[max(i - 1, 0) : end + 1]))
    return found


# ---------------------------------------------------------------- report


def report(outcomes: list[Outcome], server: Server, wall: float) -> bool:
    """Print the figures; True when the server passed (no crash, untyped error, fault or logged traceback)."""
    print(f"corpus: {len(outcomes)} inputs")
    kinds = ("result", "typed error", "untyped", "crash")
    print(f"{'group':<10} {'inputs':>6} " + " ".join(f"{k:>11}" for k in kinds) + f" {'slowest s':>9}")
    for group in dict.fromkeys(o.case.group for o in outcomes):
        mine = [o for o in outcomes if o.case.group == group]
        counts = Counter(o.kind for o in mine)
        print(f"{group:<10} {len(mine):>6} " + " ".join(f"{counts[k]:>11}" for k in kinds)
              + f" {max(o.seconds for o in mine):>9.2f}")
    counts = Counter(o.kind for o in outcomes)
    print("outcomes: " + ", ".join(f"{k} {counts[k]}" for k in kinds))
    codes = Counter(o.detail for o in outcomes if o.kind == "typed error")
    print("error codes: " + ", ".join(f"{code} {n}" for code, n in codes.most_common()))
    untyped = [o for o in outcomes if o.kind == "untyped"]
    faults = [o for o in outcomes if o.kind == "typed error" and o.detail in FAULT_CODES]
    for o in untyped + faults:
        print(f"  defect: {o.case.name}: {o.detail}")
    for suspects, _ in server.crashes:
        print(f"  crash with in flight: {', '.join(suspects)}")
    print(f"crashes: {len(server.crashes)} (must be 0)")
    print(f"untyped errors: {len(untyped)} (must be 0)")
    print(f"faults ({', '.join(sorted(FAULT_CODES))}): {len(faults)} (must be 0)")
    for trace in server.tracebacks:
        print(trace)
    print(f"tracebacks in the server log: {len(server.tracebacks)} (must be 0)")
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"slowest input: {slowest.seconds:.2f} s ({slowest.case.name}: {' '.join(filter(None, (slowest.kind, slowest.detail)))})")
    print(f"wall time: {wall:.1f} s")
    return not (server.crashes or untyped or faults or server.tracebacks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed of the corpus (default 0)")
    parser.add_argument("--concurrency", type=int, default=4, help="inputs in flight at once (default 4)")
    parser.add_argument("--verbose", action="store_true", help="print every input's outcome")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        cases = corpus(args.seed, Path(tmp))
        print(f"corpus of {len(cases)} inputs built in {time.monotonic() - started:.1f} s; running them "
              f"{args.concurrency} at a time", flush=True)
        server = Server()
        try:
            with ThreadPoolExecutor(args.concurrency) as pool:
                outcomes = []
                for outcome in pool.map(server.run, cases):
                    outcomes.append(outcome)
                    if args.verbose:
                        print(f"{outcome.kind:<11} {outcome.detail:<24} {outcome.seconds:6.2f} s  {outcome.case.name!r}",
                              flush=True)
        finally:
            server.close()
    passed = report(outcomes, server, time.monotonic() - started)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
