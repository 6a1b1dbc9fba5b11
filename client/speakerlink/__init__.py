"""speakerlink client SDK: diarize several clips and link the same speaker across them.

    from speakerlink import Client
    with Client("localhost:50051") as client:
        result = client.diarize(["a.wav", "b.mp3"], max_speakers=4)
"""

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
