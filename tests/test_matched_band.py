"""Which stretches of a full-band speaker are heard again through a phone line (pipeline.matched_band)."""

from __future__ import annotations

import numpy as np
from speakerlink_server.params import LinkingParams, WindowParams
from speakerlink_server.pipeline import matched_band
from speakerlink_server.pipeline.linking import LocalSpeaker
from speakerlink_server.pipeline.segments import Turn
from toy_embeddings import voices


def test_a_speakers_windows_are_where_they_alone_talk() -> None:
    turns = [Turn(0.0, 4.0, 0), Turn(3.0, 5.0, 1), Turn(6.0, 6.4, 0), Turn(7.0, 8.0, 0)]
    windows = matched_band.own_windows(turns, 0, WindowParams())
    assert windows == [(0.0, 1.5), (1.5, 3.0), (7.0, 8.0)]  # not the overlap at 3-4 s, nor 0.4 s at 6 s
    assert matched_band.own_windows(turns, 1, WindowParams()) == [(4.0, 5.0)]
    assert matched_band.own_windows(turns, 2, WindowParams()) == []


def test_a_long_talker_gets_windows_spread_over_the_recording() -> None:
    windows = matched_band.own_windows([Turn(0.0, 3600.0, 0)], 0, WindowParams())
    assert len(windows) == matched_band.PHONE_WINDOWS
    assert windows[0] == (0.0, 1.5) and windows[-1][1] > 3590.0


def test_only_full_band_voices_near_a_phone_call_of_another_clip_are_heard_again() -> None:
    a, b, c = voices(3)
    params = LinkingParams(0.6, small_job_margin=0.06, sure_margin=0.14, raw_margin=0.0, phone_margin=0.03)

    def heard(clip: int, vector: np.ndarray, narrowband: bool) -> LocalSpeaker:
        return LocalSpeaker(clip, 0, vector / np.linalg.norm(vector), 3.0, narrowband)

    near = a + 0.8 * c  # cosine 0.78 with a: within PHONE_REACH of the floor
    speakers = [heard(0, near, False), heard(0, b, False), heard(1, a, True), heard(2, near, False), heard(3, a, False)]
    wanted = matched_band.worth_a_phone_print(speakers, params, None)
    assert wanted.tolist() == [True, False, False, True, True]  # b is near no one; clip 1 is the phone call
    alone = [heard(0, a, True), heard(1, near, True)]
    assert not matched_band.worth_a_phone_print(alone, params, None).any()  # a job in one band
    assert matched_band.worth_a_phone_print([], params, None).size == 0
