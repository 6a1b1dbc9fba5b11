"""The pipeline's parameters: one frozen dataclass per stage, gathered in PipelineParams.

Each embedder supplies its own (Embedder.default_parameters): a cosine means different things
on different embedders' scales, so every field on a cosine scale has no default here and each
engine states its value beside the measurement behind it. Fields in seconds, frames or counts
hold for any embedder and keep their measured defaults. A job's request may override the link
threshold (pipeline.request); nothing else is set per job.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SegmentationParams:
    # The segmenter's 10 s windows slide by this many seconds: each frame is seen by two windows.
    # Identity comes from the embedder's short windows, so a finer step buys little and costs CPU
    # time in proportion: 2.5 s scored the same, 1 s 0.7 points better on ami-train and 1 point
    # worse on libri-dev-linking (benchmarks/QUALITY.md).
    step_seconds: float = 5.0


@dataclass(frozen=True)
class MissedSpeechParams:
    # Frames the segmenter calls silent and the speech detector does not become one-speaker
    # frames (pipeline.missed_speech) in pieces of at least min_seconds whose loud end is at
    # most within_db under the loud end of the clip's speech. Measured over every condition class
    # of benchmarks/condition_sets.py: at 18 dB a crowd's babble got in (libri-dev-linking
    # through babble lost 0.6 points), and pieces of 0.2 s mislabelled ami-train (benchmarks/QUALITY.md).
    min_seconds: float = 0.5
    within_db: float = 12.0


@dataclass(frozen=True)
class WindowParams:
    # CAM++ separates voices well from 1.5 s; on libri-dev-linking and ami-train 1.5 s windows
    # every 0.75 s (NeMo's base scale) label turns at a fine enough grain (benchmarks/QUALITY.md).
    seconds: float = 1.5
    hop_seconds: float = 0.75
    min_seconds: float = 0.5


@dataclass(frozen=True)
class ClusteringParams:
    threshold: float  # average cosine above which two groups of windows are one speaker
    # A small cluster of one window folds into its nearest neighbour only if their centroids are
    # this similar (a cosine): a window unlike anyone else is a short speaker of its own.
    fold_similarity: float
    # The same bar for a small cluster of two windows or more. Windows that cluster together yet
    # sit far from every larger voice are more often a person with a few seconds of speech than
    # a cough or a window across a change of speaker, so they need more to fold.
    group_fold_similarity: float
    # Measured on ../shared/data (benchmarks/QUALITY.md): 3 windows at a 0.75 s hop is about
    # 3 s of speech; 5 or more drop real speakers of libri-dev-linking.
    min_cluster_windows: int = 3


@dataclass(frozen=True)
class SpreadParams:
    """How the clustering threshold follows how far apart one voice's windows lie in a clip
    (pipeline.clustering.spread_threshold). Reverberation spreads a voice: windows of one
    stretch agree at a median cosine of 0.60-0.76 through a far room, 0.76-0.85 in clean
    read speech, while different people stay where they were (benchmarks/QUALITY.md)."""

    reference: float  # median cosine of neighbouring windows of one stretch, below which the bar drops
    slope: float  # how much the bar drops per unit of cosine under `reference` (0: it never moves)
    lowest: float  # the bar never drops below this


@dataclass(frozen=True)
class SlotParams:
    min_seconds: float = 0.5  # a slot active for less than this is too short to embed
    # Left-over slots become a speaker only with this much speech between them: less is more
    # often a known voice the segmenter heard twice in one window than a new person. At 1 s a
    # 10-minute chunk of read speech gained such a speaker; 2 s costs ami-train 0.7 points.
    new_speaker_seconds: float = 2.0


@dataclass(frozen=True)
class TurnParams:
    bridge_seconds: float = 0.5  # runs of a speaker closer than this are one turn


@dataclass(frozen=True)
class LinkingParams:
    # Centroid cosine floor, in the embedder's score space, for a cross-clip link (a request may
    # set its own).
    threshold: float
    # A job too small for AS-norm links on cosine alone, at threshold + this (pipeline.linking).
    small_job_margin: float
    # Speakers of RECURRING or more clips, every pair at threshold + this, are one recurring person.
    sure_margin: float
    # A pair also scores its raw cosine less this, where that is higher than its score-space
    # cosine (pipeline.linking.scores).
    raw_margin: float
    # A pair across bands also scores its phone prints' score less this, where that is higher
    # (pipeline.matched_band).
    phone_margin: float


@dataclass(frozen=True)
class RecognitionParams:
    # Cosine, in the embedder's score space, a speaker's voiceprint needs to an enrolled voice to
    # take its name.
    threshold: float
    min_speech_seconds: float = 2.0  # a speaker heard less is never named
    # A speaker heard through a phone line also scores against a voice's line prints (the best
    # of them), less this, where that is higher (pipeline.recognize).
    phone_margin: float = 0.0


@dataclass(frozen=True)
class LiveParams:
    """How a live stream clusters its windows (pipeline.live, pipeline.tracking)."""

    # A new voice's first frames are decided when it has about two windows: a cluster of two
    # is a speaker (offline: three), folded into its nearest neighbour only above this cosine
    # (offline: the engine's fold_similarity). 0.2-0.4 are alike at 2 s on libri-dev-linking
    # and ami-train; with three windows, a new voice's first second goes to the one before
    # (benchmarks/QUALITY.md).
    min_cluster_windows: int = 2
    fold_similarity: float = 0.3
    # Two speakers who both have decided speech become one again only where their voiceprints
    # are this alike (pipeline.tracking).
    merge_similarity: float = 0.6
    # The windows a stream keeps for clustering, and the fewest each speaker keeps past that.
    max_windows: int = 600
    anchors: int = 40


@dataclass(frozen=True)
class PipelineParams:
    clustering: ClusteringParams
    linking: LinkingParams
    recognition: RecognitionParams
    spread: SpreadParams
    segmentation: SegmentationParams = field(default_factory=SegmentationParams)
    missed_speech: MissedSpeechParams = field(default_factory=MissedSpeechParams)
    windows: WindowParams = field(default_factory=WindowParams)
    slots: SlotParams = field(default_factory=SlotParams)
    turns: TurnParams = field(default_factory=TurnParams)
    live: LiveParams = field(default_factory=LiveParams)
