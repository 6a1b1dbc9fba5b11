"""speakerlink client SDK: diarize several clips and link the same speaker across them.

    from speakerlink import Client
    with Client("localhost:50051") as client:
        result = client.diarize(["a.wav", "b.mp3"], max_speakers=4)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speakerlink.aio import AsyncClient
    from speakerlink.client import Client
    from speakerlink.errors import (
        AlreadyExistsError,
        AuthenticationError,
        DeadlineExceededError,
        FailedPreconditionError,
        InvalidInputError,
        JobCancelledError,
        LimitExceededError,
        NotFoundError,
        PermissionDeniedError,
        RejectedError,
        ServerError,
        SpeakerlinkError,
        TLSError,
        TransportError,
        UnavailableError,
    )
    from speakerlink.v1.speakerlink_pb2 import DiarizationResult as Result

__version__ = "0.1.0"
__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidInputError",
    "JobCancelledError",
    "LimitExceededError",
    "NotFoundError",
    "PermissionDeniedError",
    "RejectedError",
    "Result",
    "ServerError",
    "SpeakerlinkError",
    "TLSError",
    "TransportError",
    "UnavailableError",
]

# Loaded on first use: `import speakerlink` stays quick, and the CLI imports grpc only where
# a Ctrl-C during start-up is handled (speakerlink.cli).
_HOMES = {"AsyncClient": "speakerlink.aio", "Client": "speakerlink.client", "Result": "speakerlink.v1.speakerlink_pb2"}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module 'speakerlink' has no attribute {name!r}")
    module = importlib.import_module(_HOMES.get(name, "speakerlink.errors"))
    value = getattr(module, "DiarizationResult" if name == "Result" else name)
    globals()[name] = value
    return value
