"""Cut files refused, whole files accepted: the truncation checks of pipeline.audio per format.

One speech clip (a libri-dev-linking conversation, or the project's own espeak-ng meeting) is
encoded in each supported format, then cut at 36 points; a cut counts as refused when probing or
decoding it fails (AUDIO_TRUNCATED, or NOT_AUDIO where nothing is readable). The whole file of
every format must decode.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "server"))
from speakerlink_server.errors import ServiceError  # noqa: E402
from speakerlink_server.pipeline import audio  # noqa: E402

CUTS = 36
ENCODINGS = {
    "wav": [], "flac": [], "mp3": ["-c:a", "libmp3lame"], "m4a": ["-c:a", "aac"],
    "aac": ["-c:a", "aac", "-f", "adts"], "opus": ["-c:a", "libopus"], "ogg": ["-c:a", "libvorbis"],
    "webm": ["-c:a", "libopus"],
}


def outcome(path: Path) -> str:
    try:
        info = audio.probe(path, 0, path.name)
        for _ in audio.stream(path, 0, path.name, 600.0, info):
            pass
    except ServiceError as exc:
        return exc.code
    return "ok"


def main() -> None:
    source = ROOT.parent / "shared" / "data" / "libri-dev-linking" / "audio" / "dlk00.wav"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not source.is_file():
            import sample_clips

            source = next(p for p in sample_clips.write_sample_set(folder) if p.suffix == ".wav")
        print(f"source: {source.name}; {CUTS} cuts per format")
        for extension, codec in ENCODINGS.items():
            whole = folder / f"whole.{extension}"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-ac", "1", *codec, str(whole)], check=True)
            data = whole.read_bytes()
            refused = 0
            for k in range(1, CUTS + 1):
                cut = folder / f"cut.{extension}"
                cut.write_bytes(data[: len(data) * k // (CUTS + 1) + 13 * k])
                refused += outcome(cut) in ("AUDIO_TRUNCATED", "NOT_AUDIO")
            print(f"{extension:<5} whole: {outcome(whole):<16} cuts refused: {refused}/{CUTS}", flush=True)


if __name__ == "__main__":
    main()
