"""Linking speakers across clips: the same voice joined, two of one clip never, confidences calibrated."""

from __future__ import annotations

import numpy as np
import pytest
from speakerlink_server.engines.base import Calibration, ScoreSpace
from speakerlink_server.engines.campplus import CamppEmbedder
from speakerlink_server.params import LinkingParams, RecognitionParams
from speakerlink_server.pipeline.linking import LocalSpeaker, link_speakers
from speakerlink_server.pipeline.recognize import Voice, vouched
from toy_embeddings import voices

CALIBRATION = Calibration(slope=30.0, offset=-21.0)


def linking(threshold: float, raw_margin: float = 0.0, phone_margin: float = 0.0) -> LinkingParams:
    return LinkingParams(threshold, small_job_margin=0.06, sure_margin=0.14, raw_margin=raw_margin, phone_margin=phone_margin)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def speaker(clip: int, local: int, vector: np.ndarray, narrowband: bool = False) -> LocalSpeaker:
    return LocalSpeaker(clip, local, unit(vector), 5.0, narrowband)


def test_linking_joins_the_same_voice_and_keeps_new_voices_apart() -> None:
    a, b, c, d = voices(4)
    speakers = [speaker(0, 0, a), speaker(0, 1, b), speaker(1, 0, a + 0.05 * c), speaker(1, 1, d)]
    links = link_speakers(speakers, linking(0.7), CALIBRATION, None)
    assert [link.global_index for link in links] == [0, 1, 0, 2]
    assert all(0.5 < link.confidence <= 1.0 for link in links)
    # The confidence is the calibrated probability: of one person for a link, of two for no link.
    assert links[0].confidence == pytest.approx(float(CALIBRATION.same_person(np.float64(speakers[0].centroid @ speakers[2].centroid))))
    assert links[3].confidence == pytest.approx(1 - float(CALIBRATION.same_person(np.float64(max(speakers[3].centroid @ speakers[k].centroid for k in (0, 1))))))


def test_cannot_link_two_speakers_of_one_clip() -> None:
    a = voices(1)[0]
    speakers = [speaker(0, 0, a), speaker(0, 1, a), speaker(1, 0, a)]
    links = link_speakers(speakers, linking(-1.0), CALIBRATION, None)
    assert links[0].global_index != links[1].global_index
    assert len({link.global_index for link in links}) == 2


def test_linking_nothing() -> None:
    assert link_speakers([], linking(0.5), CALIBRATION, None) == []


def channel_space(channel: np.ndarray) -> ScoreSpace:
    """A score space that all but ignores one direction, as one measured where a phone line
    moves every voice along it would."""
    channel = channel / np.linalg.norm(channel)
    return ScoreSpace(np.zeros(channel.size), np.eye(channel.size) - 0.95 * np.outer(channel, channel))


def test_voices_are_linked_in_the_embedders_score_space() -> None:
    """One person heard through a channel that pulls the embedding far along one direction: in
    raw cosine they are two people; in a space that discounts that direction they are one, and a
    different voice stays apart in both."""
    a, b, channel = voices(3)
    speakers = [speaker(0, 0, a), speaker(0, 1, b), speaker(1, 0, a + 1.2 * channel)]
    assert float(speakers[0].centroid @ speakers[2].centroid) < 0.7
    assert [link.global_index for link in link_speakers(speakers, linking(0.7), CALIBRATION, None)] == [0, 1, 2]
    linked = link_speakers(speakers, linking(0.7), CALIBRATION, channel_space(channel))
    assert [link.global_index for link in linked] == [0, 1, 0]


def test_a_pair_the_space_pulls_apart_still_links_on_its_raw_cosine() -> None:
    """Heard twice through one condition, a voice can lose in the score space what it keeps in
    raw cosine: the raw cosine, less raw_margin, is the other expert."""
    a, b, c = voices(3)
    speakers = [speaker(0, 0, a), speaker(0, 1, b), speaker(1, 0, a + 0.3 * c)]
    space = channel_space(a)  # discounts the very direction the two share
    assert float(space.project(speakers[0].centroid[None])[0] @ space.project(speakers[2].centroid[None])[0]) < 0.7
    linked = link_speakers(speakers, linking(0.7, raw_margin=0.1), CALIBRATION, space)
    assert [link.global_index for link in linked] == [0, 1, 0]
    apart = link_speakers(speakers, linking(0.7, raw_margin=0.5), CALIBRATION, space)
    assert [link.global_index for link in apart] == [0, 1, 2]


def test_a_pair_across_bands_also_links_on_its_phone_prints() -> None:
    """A voice heard through a phone line in one clip and in full band in another: its
    full-band voiceprint holds what the line removed, its phone print (pipeline.matched_band)
    does not. Only pairs across bands are scored on phone prints, less phone_margin."""
    a, b, upper, c = voices(4)
    wide, narrow = a + 1.2 * upper, a  # what the full band adds, and the phone line lost
    speakers = [speaker(0, 0, wide), speaker(0, 1, b), speaker(1, 0, narrow, narrowband=True), speaker(2, 0, c)]
    phone = np.stack([unit(a), unit(b), unit(a), unit(b)])  # clips 0 and 2 are both full band: b and c stay two
    assert float(speakers[0].centroid @ speakers[2].centroid) < 0.7
    assert [link.global_index for link in link_speakers(speakers, linking(0.7), CALIBRATION, None)] == [0, 1, 2, 3]
    linked = link_speakers(speakers, linking(0.7, phone_margin=0.05), CALIBRATION, None, phone=phone)
    assert [link.global_index for link in linked] == [0, 1, 0, 2]
    apart = link_speakers(speakers, linking(0.7, phone_margin=0.5), CALIBRATION, None, phone=phone)
    assert [link.global_index for link in apart] == [0, 1, 2, 3]


def test_an_enrolled_voice_vouches_for_a_pair_that_matches_it_from_both_sides() -> None:
    """Ann heard in two clips at 0.60 to each other, under the 0.68 bar of a job this small, but at
    0.71 and 0.73 to her enrolled voice: the voice vouches for the pair. A third clip's voice at
    0.63 to Ann, under the naming bar, is vouched for by no one."""
    a, b, c, d = voices(4)
    ann = Voice("Ann", unit(a), 10.0)
    speakers = [speaker(0, 0, a + 0.9 * b), speaker(1, 0, a + 0.85 * c), speaker(2, 0, a + 2.5 * d)]
    assert float(speakers[0].centroid @ speakers[1].centroid) < 0.61
    params = RecognitionParams(0.7)
    vouch = vouched(speakers, [ann], params, None)
    to_ann = [float(s.centroid @ ann.embedding) for s in speakers]
    assert min(to_ann[:2]) >= 0.7 > to_ann[2]
    assert vouch[0, 1] == vouch[1, 0] == pytest.approx(min(to_ann[:2]))
    assert (vouch[2] == -1).all() and (np.diag(vouch) == -1).all()
    assert vouched(speakers, [], params, None) is None
    alone = link_speakers(speakers, linking(0.62), CALIBRATION, None)
    assert [link.global_index for link in alone] == [0, 1, 2]
    linked = link_speakers(speakers, linking(0.62), CALIBRATION, None, vouched=vouch)
    assert [link.global_index for link in linked] == [0, 0, 1]


def test_a_score_space_keeps_its_measurement(tmp_path) -> None:
    space = channel_space(voices(1)[0])
    space.save(tmp_path / "space.npz")
    loaded = ScoreSpace.load(tmp_path / "space.npz")
    rows = voices(5, seed=1)
    assert np.allclose(loaded.project(rows), space.project(rows), atol=1e-5)
    assert np.allclose(np.linalg.norm(loaded.project(rows), axis=1), 1.0)


def test_campplus_ships_a_whitening_of_its_own_dimension() -> None:
    space = CamppEmbedder.space
    assert space.mean.shape == (CamppEmbedder.dim,) and space.whitening.shape == (CamppEmbedder.dim,) * 2
    assert np.allclose(space.whitening, space.whitening.T, atol=1e-4)
    assert np.linalg.eigvalsh(space.whitening.astype(np.float64)).min() > 0
