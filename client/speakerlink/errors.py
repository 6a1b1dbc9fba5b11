"""Typed exceptions for every way a speakerlink call can fail.

The server attaches a machine-readable ErrorDetail (code, troubleshooting hints, recovery
suggestions) to failed calls and to failed jobs; these classes carry it to the caller so that
programs branch on `code` and people read `troubleshooting` and `recovery`.

    SpeakerlinkError
    ├── TransportError              no usable answer
    │   ├── UnavailableError        UNAVAILABLE: not reachable, shutting down, stream lost
    │   │   └── TLSError            the TLS handshake failed
    │   └── DeadlineExceededError   DEADLINE_EXCEEDED
    ├── RejectedError               the server answered no
    │   ├── InvalidInputError       INVALID_ARGUMENT, OUT_OF_RANGE
    │   ├── AuthenticationError     UNAUTHENTICATED
    │   ├── PermissionDeniedError   PERMISSION_DENIED
    │   ├── NotFoundError           NOT_FOUND
    │   ├── AlreadyExistsError      ALREADY_EXISTS
    │   ├── LimitExceededError      RESOURCE_EXHAUSTED
    │   └── FailedPreconditionError FAILED_PRECONDITION
    ├── JobCancelledError           CANCELLED
    └── ServerError                 INTERNAL, UNKNOWN and the rest
"""

from __future__ import annotations

import re

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from speakerlink.v1 import speakerlink_pb2 as pb


class SpeakerlinkError(Exception):
    """Base class: a failed call or a failed job, with the server's rich details when it sent them."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        status: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        troubleshooting: tuple[str, ...] = (),
        recovery: tuple[str, ...] = (),
        clip_index: int = -1,
        clip_name: str = "",
        job_id: str = "",
        retry_after: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.troubleshooting = tuple(troubleshooting)
        self.recovery = tuple(recovery)
        self.clip_index = clip_index
        self.clip_name = clip_name
        self.job_id = job_id
        self.retry_after = retry_after  # seconds the server asked to wait before retrying; 0: do not

    def __str__(self) -> str:
        where = f" [{self.clip_name}]" if self.clip_name else ""
        return f"{self.code}{where}: {self.message}"

    def describe(self) -> str:
        """A multi-line explanation for people at a terminal."""
        lines = [f"error {self}", f"  status: {self.status.name}"]
        if self.job_id:
            lines.append(f"  job: {self.job_id}")
        lines += [f"  why: {hint}" for hint in self.troubleshooting]
        lines += [f"  try: {step}" for step in self.recovery]
        return "\n".join(lines)


class TransportError(SpeakerlinkError):
    """No usable answer came back: the server was not reached, or the wait ran out."""


class RejectedError(SpeakerlinkError):
    """The server answered, and the answer is no."""


class InvalidInputError(RejectedError):
    """The request or an uploaded file is not acceptable (INVALID_ARGUMENT)."""


class AuthenticationError(RejectedError):
    """The call carried no token, or one the server does not accept (UNAUTHENTICATED)."""


class PermissionDeniedError(RejectedError):
    """The caller is known but may not do this (PERMISSION_DENIED)."""


class NotFoundError(RejectedError):
    """No such job, or its result was deleted or expired (NOT_FOUND)."""


class AlreadyExistsError(RejectedError):
    """The name is taken, e.g. renaming a voice to another voice's name (ALREADY_EXISTS)."""


class LimitExceededError(RejectedError):
    """A size, count, queue or quota limit was hit (RESOURCE_EXHAUSTED)."""


class FailedPreconditionError(RejectedError):
    """The job is not in a state that allows the call, e.g. no result yet (FAILED_PRECONDITION)."""


class UnavailableError(TransportError):
    """The server cannot be reached or is shutting down (UNAVAILABLE)."""


class TLSError(UnavailableError):
    """The TLS handshake failed: the server's certificate is not trusted (wrong CA or name),
    the server wants a client certificate, or one side speaks plaintext."""


class DeadlineExceededError(TransportError):
    """A wait ran out (DEADLINE_EXCEEDED): the caller's deadline passed before the job finished,
    or the server gave up on an upload that stopped sending (code UPLOAD_STALLED)."""


class JobCancelledError(SpeakerlinkError):
    """The job was cancelled, by CancelJob or by the client (CANCELLED)."""


class ServerError(SpeakerlinkError):
    """The server failed in a way the caller cannot fix (INTERNAL, UNKNOWN, ...)."""


_BY_STATUS: dict[grpc.StatusCode, type[SpeakerlinkError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInputError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LimitExceededError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: JobCancelledError,
}
_STATUS_BY_VALUE = {s.value[0]: s for s in grpc.StatusCode}
# How grpc's transport words a failed handshake; the status alone is UNAVAILABLE.
_TLS_FAILURE = re.compile(r"handshake|ssl|certificate", re.IGNORECASE)


def error_from_detail(detail: pb.ErrorDetail, job_id: str = "") -> SpeakerlinkError:
    """The exception for a job's terminal error event."""
    status = _STATUS_BY_VALUE.get(detail.grpc_code, grpc.StatusCode.UNKNOWN)
    cls = _BY_STATUS.get(status, ServerError)
    return cls(
        detail.message,
        code=detail.code or status.name,
        status=status,
        troubleshooting=tuple(detail.troubleshooting),
        recovery=tuple(detail.recovery),
        clip_index=detail.clip_index,
        clip_name=detail.clip_name,
        job_id=job_id,
    )


def error_from_rpc(err: grpc.RpcError, job_id: str = "") -> SpeakerlinkError:
    """The exception for a failed call, using the ErrorDetail packed in its status if any. It
    keeps `err` as its cause wherever it is raised, so the gRPC status and trailers stay at hand."""
    error = _from_status(err, job_id) or _from_code(err, job_id)
    error.__cause__ = err
    return error


def _from_status(err: grpc.RpcError, job_id: str) -> SpeakerlinkError | None:
    """The error the server described in the call's rich status, or None when it sent none."""
    try:
        status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    except ValueError:  # a status that disagrees with the call's own code or message
        status = None
    if status is None:
        return None
    retry_after = 0.0
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    for any_detail in status.details:
        if any_detail.Is(pb.ErrorDetail.DESCRIPTOR):
            detail = pb.ErrorDetail()
            any_detail.Unpack(detail)
            error = error_from_detail(detail, job_id)
            error.retry_after = retry_after
            return error
    return None


def _from_code(err: grpc.RpcError, job_id: str) -> SpeakerlinkError:
    """The error for a status code alone: the transport's failures, or a server without details."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_STATUS.get(code, ServerError)
    hints: tuple[str, ...] = ()
    if code == grpc.StatusCode.UNAVAILABLE and _TLS_FAILURE.search(message or ""):
        cls, hints = TLSError, (
            "The server's certificate is not signed by the CA you gave (tls=, SPEAKERLINK_TLS_CA), does not name "
            "the address you used, or the server wants a client certificate (cert=).",)
    elif code == grpc.StatusCode.UNAVAILABLE:
        hints = ("Is the server running and reachable at the address you gave?",
                 "A server that speaks TLS closes plaintext connections, and a mutual-TLS one those without a "
                 "client certificate: check tls= and cert= (SPEAKERLINK_TLS_CA, SPEAKERLINK_TLS_CERT).")
    return cls(message or code.name, code="TLS_FAILED" if cls is TLSError else code.name, status=code,
               troubleshooting=hints, job_id=job_id)
