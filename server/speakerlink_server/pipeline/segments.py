"""Speaker turns: the unit of a clip's timeline, from diarization or a transcriber."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speakerlink_server.engines.base import TranscribedWord


@dataclass(frozen=True)
class Turn:
    """A stretch of one local speaker: from the diarized timeline, or a transcriber's utterance."""

    start: float
    end: float
    speaker: int  # local speaker index within the clip
    text: str = ""
    words: tuple[TranscribedWord, ...] = ()


def speech_seconds(turns: list[Turn], count: int) -> np.ndarray:
    """Seconds each of `count` local speakers speaks in the turns."""
    speech = np.zeros(count)
    for turn in turns:
        speech[turn.speaker] += turn.end - turn.start
    return speech
