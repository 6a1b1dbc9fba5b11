"""How values that SQL has no type for are kept: embeddings as little-endian float32 bytes,
and times (seconds since the epoch) as protobuf Timestamps on their way out."""

from __future__ import annotations

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp


def blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float64)


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
