"""The request stream of a Diarize call: the config first, then each file in chunks.

CHUNK_BYTES is 256 KiB: a sixteenth of gRPC's default 4 MiB message limit, so a chunk never
nears it; large enough that per-message overhead is negligible (a 100 MB file is 400
messages); and small enough that neither side holds more than a few hundred KiB of any file
at a time, and that server-side limits are enforced within a quarter MiB of the boundary.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from speakerlink.v1 import speakerlink_pb2 as pb

CHUNK_BYTES = 256 * 1024

UploadCallback = Callable[[int, int], None]
"""Called with (bytes sent so far, total bytes) as chunks leave."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clip_names(paths: Sequence[Path]) -> list[str]:
    """Each file's name, with as many of its folders as it takes to tell apart files of one
    name (day1/meeting.wav, day2/meeting.wav); a file given twice gets (2), (3), ..."""
    absolute = [os.path.abspath(path) for path in paths]
    folders = [[part for part in a.split(os.sep) if part] for a in absolute]
    names = [path.name for path in paths]

    def clashing() -> set[str]:  # names shared by different files
        files: dict[str, set[str]] = {}
        for name, a in zip(names, absolute, strict=True):
            files.setdefault(name, set()).add(a)
        return {name for name, group in files.items() if len(group) > 1}

    depth = 1
    while (clash := clashing()) and depth < max(len(f) for f in folders):
        depth += 1
        names = ["/".join(f[-depth:]) if n in clash else n for n, f in zip(names, folders, strict=True)]
    counts, seen = Counter(names), Counter()
    for i, name in enumerate(names):
        if counts[name] > 1:
            seen[name] += 1
            names[i] = f"{name} ({seen[name]})" if seen[name] > 1 else name
    return names


def build_config(paths: Sequence[os.PathLike | str], options: pb.DiarizeOptions) -> pb.DiarizeConfig:
    """The manifest: names, exact sizes and checksums, so the server can check limits up front."""
    return pb.DiarizeConfig(options=options, clips=manifest(paths))


def manifest(paths: Sequence[os.PathLike | str]) -> list[pb.ClipManifest]:
    clips = []
    files = [Path(raw) for raw in paths]
    for path, name in zip(files, clip_names(files), strict=True):
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        clips.append(
            pb.ClipManifest(
                name=name,
                size_bytes=path.stat().st_size,
                format=path.suffix.lstrip(".").lower(),
                sha256=sha256_of(path),
            )
        )
    return clips


def request_stream(
    paths: Sequence[os.PathLike | str],
    config: pb.DiarizeConfig | pb.EnrollConfig,
    on_upload: UploadCallback | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[pb.DiarizeRequest | pb.EnrollRequest]:
    """Yield the config, then every file's chunks in order, reading one chunk at a time: the
    requests of Diarize, or of EnrollSpeaker for an EnrollConfig."""
    message = pb.EnrollRequest if isinstance(config, pb.EnrollConfig) else pb.DiarizeRequest
    yield message(config=config)
    total = sum(clip.size_bytes for clip in config.clips)
    sent = 0
    for index, raw in enumerate(paths):
        with Path(raw).open("rb") as fh:
            for block in iter(lambda: fh.read(chunk_bytes), b""):
                yield message(chunk=pb.AudioChunk(clip_index=index, data=block))
                sent += len(block)
                if on_upload is not None:
                    on_upload(sent, total)
