"""Recognising enrolled voices, and the audio a voiceprint is taken from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from speakerlink_server.engines.base import Calibration, ScoreSpace, Utterance
from speakerlink_server.params import RecognitionParams
from speakerlink_server.pipeline.linking import Voiceprint
from speakerlink_server.pipeline.recognize import Voice, recognize
from speakerlink_server.pipeline.voices import MAX_MONOLOGUES, VOICE_SECONDS, voice_spans, without


def test_recognition_gives_each_voice_to_one_speaker_who_was_heard_enough() -> None:
    def unit(*v: float) -> np.ndarray:
        return np.array(v) / np.linalg.norm(v)

    ann, bob = Voice("Ann", unit(1, 0, 0), 10.0), Voice("Bob", unit(0, 1, 0), 10.0)
    calibration = Calibration(slope=66.4, offset=-29.6)
    prints = [Voiceprint(unit(1, 0.3, 0), 5.0), Voiceprint(unit(1, 0.1, 0), 5.0), Voiceprint(unit(0, 0, 1), 5.0),
              Voiceprint(unit(0, 1, 0.1), 1.0)]
    matches = recognize(prints, [ann, bob], RecognitionParams(0.65), calibration, None)
    # Ann goes to the closer of her two look-alikes only; a stranger and a 1 s speaker stay unnamed.
    assert [m.name if m else None for m in matches] == [None, "Ann", None, None]
    assert matches[1].score > 0.99
    assert recognize(prints, [], RecognitionParams(0.65), calibration, None) == [None] * 4


def test_a_voice_is_recognised_in_the_embedders_score_space() -> None:
    """Enrolled in one condition, heard in another that pulls the voiceprint along the third
    axis: named only where the score space discounts that axis."""
    ann = Voice("Ann", np.array([1.0, 0.0, 0.0]), 10.0)
    heard = np.array([1.0, 0.1, 1.5]) / np.linalg.norm([1.0, 0.1, 1.5])
    calibration = Calibration(slope=66.4, offset=-29.6)
    space = ScoreSpace(np.zeros(3), np.diag([1.0, 1.0, 0.05]))
    assert recognize([Voiceprint(heard, 5.0)], [ann], RecognitionParams(0.65), calibration, None) == [None]
    [match] = recognize([Voiceprint(heard, 5.0)], [ann], RecognitionParams(0.65), calibration, space)
    assert match is not None and match.name == "Ann"


def test_a_voice_heard_through_a_phone_line_is_also_compared_with_its_line_prints() -> None:
    """Ann enrolled in full band; the line took the second axis from her. Her line print
    names her through a phone line, less the margin; a full-band speaker who sounds like her
    line print does not take her name from it."""
    ann = Voice("Ann", np.array([0.6, 0.8, 0.0]), 10.0, lines=np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    calibration = Calibration(slope=66.4, offset=-29.6)
    on_the_line = Voiceprint(np.array([0.96, 0.0, 0.28]), 5.0, narrowband=True, phone=np.array([0.96, 0.0, 0.28]))
    params = RecognitionParams(0.65, phone_margin=0.03)
    assert recognize([replace(on_the_line, phone=None)], [ann], params, calibration, None) == [None]  # 0.58
    [match] = recognize([on_the_line], [ann], params, calibration, None)  # 0.96 - 0.03
    assert match is not None and match.name == "Ann"
    assert recognize([on_the_line], [replace(ann, lines=None)], params, calibration, None) == [None]
    assert recognize([on_the_line], [ann], replace(params, phone_margin=0.4), calibration, None) == [None]
    assert recognize([replace(on_the_line, narrowband=False)], [ann], params, calibration, None) == [None]


def test_voiceprints_come_from_the_longest_monologues() -> None:
    turns = [Utterance(float(10 * k), float(10 * k) + length, "A", "", ()) for k, length in enumerate([1, 9, 3, 8, 0.3, 7, 6, 5, 4])]
    spans = voice_spans(turns, duration=100.0)
    lengths = [round(end - start, 1) for start, end in spans]
    assert len(spans) <= MAX_MONOLOGUES and sum(lengths) <= VOICE_SECONDS + 1e-6
    assert lengths[:3] == [8.8, 7.8, 6.8]  # longest first, edges trimmed
    assert [round(s) for s, _ in spans[:3]] == [10, 30, 50]
    short = voice_spans([Utterance(3.0, 3.2, "B", "", ())], duration=10.0)
    assert short == [(2.85, 3.35)]  # too short: the least audio a voiceprint takes, around it


def test_overlapped_speech_is_left_out_of_voiceprints() -> None:
    assert without([(0.0, 10.0), (20.0, 25.0)], [(2.0, 3.0), (9.0, 21.0)]) == [(0.0, 2.0), (3.0, 9.0), (21.0, 25.0)]
