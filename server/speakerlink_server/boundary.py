"""The edge between gRPC and the service: what a handler lets escape becomes a typed error.

A call's database reads fail fast while the database is away (a client waits for no
reconnect), and that answers UNAVAILABLE with a retry delay. Anything else unexpected is
logged here with its traceback and answers INTERNAL without its text, which may name a
driver, a path or an address. Streaming calls are counted as open streams.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import grpc

from speakerlink_server import errors, metrics
from speakerlink_server.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)


class BoundaryInterceptor(grpc.ServerInterceptor):
    """`service`: the full name of the service whose streaming calls count as open streams."""

    def __init__(self, database: Database, service: str) -> None:
        self._database = database
        self._prefix = f"/{service}/"

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method, streams_in = details.method, handler.request_streaming
        counted = method.startswith(self._prefix) and (streams_in or handler.response_streaming)
        if handler.response_streaming:
            wrapped = self._streaming(handler.stream_stream if streams_in else handler.unary_stream, method, counted)
            kind = grpc.stream_stream_rpc_method_handler if streams_in else grpc.unary_stream_rpc_method_handler
        else:
            wrapped = self._unary(handler.stream_unary if streams_in else handler.unary_unary, method, counted)
            kind = grpc.stream_unary_rpc_method_handler if streams_in else grpc.unary_unary_rpc_method_handler
        return kind(wrapped, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)

    def _unary(self, behavior: Callable, method: str, counted: bool) -> Callable:
        def run(request: object, context: grpc.ServicerContext) -> object:
            with _open_stream(counted), _typed_errors(context, method), self._database.failing_fast():
                return behavior(request, context)
        return run

    def _streaming(self, behavior: Callable, method: str, counted: bool) -> Callable:
        def run(request: object, context: grpc.ServicerContext) -> Iterator[object]:
            with _open_stream(counted), _typed_errors(context, method):
                responses = behavior(request, context)
                try:
                    while True:  # the thread's flag is set while the handler runs, never across a yield
                        with self._database.failing_fast():
                            response = next(responses, _END)
                        if response is _END:
                            return
                        yield response
                finally:
                    with self._database.failing_fast():
                        responses.close()
        return run


_END = object()


@contextlib.contextmanager
def _open_stream(counted: bool) -> Iterator[None]:
    if not counted:
        yield
        return
    metrics.STREAMS_OPEN.inc()
    try:
        yield
    finally:
        metrics.STREAMS_OPEN.dec()


@contextlib.contextmanager
def _typed_errors(context: grpc.ServicerContext, method: str) -> Iterator[None]:
    """Ends the call with a typed error for what escapes its handler, unless the handler ended it already."""
    try:
        yield
    except Exception as exc:
        if context.code() is not None:  # aborted with its own error
            raise
        if isinstance(exc, DatabaseUnavailable):
            log.warning("%s answered UNAVAILABLE: the database is unreachable", method)
            errors.database_unavailable().abort(context)
        if isinstance(exc, errors.ServiceError):
            exc.abort(context)
        log.error("%s failed", method, exc_info=exc)
        errors.internal("the server failed unexpectedly; its log has the details").abort(context)
