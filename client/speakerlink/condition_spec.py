"""What a `--condition` spec says: parsed here in plain Python, applied by speakerlink.conditions.

Kept apart from the signal processing so the thin client can check a spec (and the CLI can
refuse a bad one) without importing numpy. A spec is one or more steps joined with `+`, applied
in order to every clip, for example `far-room+phone-gsm` or `noise-babble:snr=5..15+mp3:kbps=24`.
A step is `name[:key=value,...]`; a value `lo..hi` is a range from which each clip draws its own.

Draws are seeded per clip from (seed, clip name, step index), so a clip comes out the same
whatever other clips it is conditioned with and in whatever order.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

Range = tuple[float, float]

# Each condition's parameters and their default ranges. The rooms follow what the field
# simulates for far-field speech (RT60 0.2-1.0 s, microphone 0.5-4 m from each talker); noise
# is added at 0-30 dB SNR; codec bit rates are the low end each codec is used at.
CONDITIONS: dict[str, dict[str, Range]] = {
    "clean": {},
    "room": {"rt60": (0.2, 1.0), "distance": (0.5, 4.0)},
    "near-room": {"rt60": (0.2, 0.5), "distance": (0.5, 1.2)},
    "far-room": {"rt60": (0.6, 1.0), "distance": (2.5, 4.0)},
    "noise-babble": {"snr": (0.0, 30.0), "talkers": (3.0, 6.0)},
    "noise-white": {"snr": (0.0, 30.0)},
    "noise-pink": {"snr": (0.0, 30.0)},
    "noise-brown": {"snr": (0.0, 30.0)},
    # A phone line's pass band: 300-3400 Hz is the standard's; many lines pass 100-3800 Hz.
    "phone-ulaw": {"low": (300.0, 300.0), "high": (3400.0, 3400.0)},
    "phone-alaw": {"low": (300.0, 300.0), "high": (3400.0, 3400.0)},
    "phone-gsm": {"low": (300.0, 300.0), "high": (3400.0, 3400.0)},
    "phone-amr": {"low": (300.0, 300.0), "high": (3400.0, 3400.0), "kbps": (4.75, 12.2)},
    "voip-opus": {"kbps": (6.0, 16.0)},
    "mp3": {"kbps": (16.0, 32.0)},
    "gain": {"db": (-20.0, 6.0)},
    "clipping": {"percent": (0.5, 5.0)},  # share of samples at or beyond the clipping level
}
WHOLE = frozenset({"talkers"})  # parameters drawn as whole numbers


@dataclass(frozen=True)
class Step:
    """One condition with the ranges its parameters are drawn from."""

    name: str
    params: dict[str, Range]

    def draw(self, rng: random.Random) -> dict[str, float]:
        """This clip's parameter values: uniform in each range, in the order of CONDITIONS."""
        values = {key: lo if lo == hi else rng.uniform(lo, hi) for key, (lo, hi) in self.params.items()}
        return {key: float(round(v)) if key in WHOLE else v for key, v in values.items()}


@dataclass(frozen=True)
class Chain:
    """The steps of a spec, in the order they are applied."""

    spec: str
    steps: tuple[Step, ...]

    @property
    def label(self) -> str:
        """The spec's condition names, for folder names and tables: `far-room+phone-gsm`."""
        return "+".join(step.name for step in self.steps)


def parse(spec: str) -> Chain:
    """The chain a spec names; a ValueError names the bad part and lists what is known."""
    if not spec.strip():
        raise ValueError(f"an empty condition; known conditions: {known()}")
    return Chain(spec, tuple(_step(part.strip(), spec) for part in spec.split("+")))


def known() -> str:
    return ", ".join(CONDITIONS)


def step_seed(seed: int, clip: str, index: int) -> int:
    """The seed of one step on one clip: independent of the other clips and of their order."""
    digest = hashlib.sha256(f"{seed}\0{clip}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + index) % 2**63


def _step(part: str, spec: str) -> Step:
    name, _, rest = part.partition(":")
    name = name.strip()
    if name not in CONDITIONS:
        raise ValueError(f"condition {name or part!r} in {spec!r} is not known; known conditions: {known()}")
    defaults = CONDITIONS[name]
    params = dict(defaults)
    for item in filter(None, (i.strip() for i in rest.split(","))):
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals:
            raise ValueError(f"{item!r} in condition {name!r}: give key=value or key=lo..hi")
        if key not in defaults:
            keys = ", ".join(defaults) or "none"
            raise ValueError(f"condition {name!r} has no parameter {key!r} (its parameters: {keys})")
        params[key] = _range(value.strip(), f"{name}:{key}")
    return Step(name, params)


def _range(text: str, where: str) -> Range:
    lo_text, dots, hi_text = text.partition("..")
    try:
        lo = float(lo_text)
        hi = float(hi_text) if dots else lo
    except ValueError:
        raise ValueError(f"{where}={text!r} is not a number or a range lo..hi") from None
    if hi < lo:
        raise ValueError(f"{where}={text!r}: the range's low end is above its high end")
    return lo, hi
