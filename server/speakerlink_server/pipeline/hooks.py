"""Hooks that follow a job's steps (engines.base.Hook): several at once, the seconds each step
takes, and each clip's intermediate results kept on disk.

A benchmark times a run with TimingHook; `speakerlink eval --keep-artifacts` keeps what each
step of a clip produced with ArtifactHook, to see where a badly diarized clip went wrong.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from speakerlink_server.engines.base import ClipPart, Hook

# What ArtifactHook keeps: the steps whose results are small (the decoded audio is not: the clip has it).
ARTIFACT_STEPS = ("segment", "embed", "cluster", "turns", "link")


class Hooks:
    """Several hooks as one, called in the order given; the first to raise stops the rest."""

    def __init__(self, *hooks: Hook) -> None:
        self.hooks = hooks

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        for hook in self.hooks:
            hook(step, artifact, completed=completed, total=total, clip=clip, message=message)


class TimingHook:
    """Seconds spent in each step, summed over a job's clips and chunks (clips run side by side,
    so the sum can pass the wall time). A step lasts from its beginning to its end, or to the
    next beginning of the same clip (a transcriber's stages have no end). Safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int | None, tuple[str, float]] = {}  # clip index (None: the job) -> (step, began)
        self._seconds: dict[str, float] = {}

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds per step, in the order the steps first ended."""
        with self._lock:
            return dict(self._seconds)

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        if completed is not None:
            return
        now = time.perf_counter()
        key = None if clip is None else clip.index
        with self._lock:
            if key in self._open:
                name, began = self._open.pop(key)
                self._seconds[name] = self._seconds.get(name, 0.0) + now - began
            if artifact is None:
                self._open[key] = (step, now)


class ArtifactHook:
    """Writes what each step of a clip produced as FOLDER/<clip name>/<step>.npz (a chunk of a
    long recording: FOLDER/<clip name>/chunk<k>/<step>.npz), and the linking of all clips as
    FOLDER/link.npz: segment (the segmenter's frame log-probabilities, window starts and
    powerset), embed (one row per window), cluster (window labels and centroids), turns (start,
    end and speaker columns), link (each local speaker's clip, local index, global speaker and
    confidence)."""

    def __init__(self, folder: Path, steps: Sequence[str] = ARTIFACT_STEPS) -> None:
        self.folder, self.steps = folder, tuple(steps)

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        if artifact is None or completed is not None or step not in self.steps:
            return
        folder = self.folder if clip is None else self.folder / _folder_name(clip)
        if clip is not None and clip.chunks > 1:
            folder /= f"chunk{clip.chunk}"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / f"{step}.npz", **arrays(step, artifact))


def arrays(step: str, artifact: object) -> dict[str, np.ndarray]:
    """The numeric contents of a step's artifact: an array (named after the step), a mapping of
    arrays, a dataclass's numeric fields, or a list of dataclasses as one column per numeric field."""
    if isinstance(artifact, np.ndarray):
        return {step: artifact}
    if isinstance(artifact, Mapping):
        return {str(k): np.asarray(v) for k, v in artifact.items()}
    if dataclasses.is_dataclass(artifact) and not isinstance(artifact, type):
        return {f.name: np.asarray(v) for f in dataclasses.fields(artifact) if _numeric(v := getattr(artifact, f.name))}
    if isinstance(artifact, Sequence) and artifact and all(dataclasses.is_dataclass(item) for item in artifact):
        columns = {f.name: [getattr(item, f.name) for item in artifact] for f in dataclasses.fields(artifact[0])}
        return {name: np.stack(values) if isinstance(values[0], np.ndarray) else np.asarray(values)
                for name, values in columns.items() if all(_numeric(v) for v in values)}
    if isinstance(artifact, Sequence):
        return {step: np.asarray(artifact)}
    raise TypeError(f"no arrays in the artifact of step {step!r}: {type(artifact).__name__}")


def _numeric(value: object) -> bool:
    return isinstance(value, np.ndarray | int | float) and not isinstance(value, bool)


def _folder_name(clip: ClipPart) -> str:
    """The clip's name as one folder: a name is the client's to choose, so no separator or dot-name leaves FOLDER."""
    name = clip.name.replace("/", "_").replace("\\", "_")
    return name if name.strip(".") else f"clip{clip.index}"
