"""The contract as a client in another language sees it: reflection (v1 and v1alpha), the
errors each call carries, and what CancelJob answers."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import status_pb2
from grpc_reflection.v1alpha import reflection_pb2
from speakerlink import AsyncClient, Client, FailedPreconditionError, InvalidInputError, NotFoundError
from speakerlink.errors import error_from_rpc
from speakerlink.options import EXPORT_FORMATS
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc

SERVICE = "speakerlink.v1.Speakerlink"


def reflect(channel: grpc.Channel, package: str, **request: str) -> reflection_pb2.ServerReflectionResponse:
    """One reflection request to `package`'s service. v1 and v1alpha share their messages'
    wire form, so v1alpha's classes speak both."""
    call = channel.stream_stream(
        f"/{package}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (response,) = call(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10)
    return response


@pytest.mark.parametrize("package", ["grpc.reflection.v1", "grpc.reflection.v1alpha"])
def test_reflection_answers_v1_and_v1alpha(server, package: str) -> None:
    with grpc.insecure_channel(server.config.address) as channel:
        listed = {s.name for s in reflect(channel, package, list_services="").list_services_response.service}
        described = reflect(channel, package, file_containing_symbol="grpc.reflection.v1.ServerReflection")
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= listed
    (file,) = described.file_descriptor_response.file_descriptor_proto
    assert descriptor_pb2.FileDescriptorProto.FromString(file).package == "grpc.reflection.v1"


def reflected_pool(channel: grpc.Channel) -> descriptor_pool.DescriptorPool:
    """A pool of the files the server describes over grpc.reflection.v1, added dependencies first."""
    response = reflect(channel, "grpc.reflection.v1", file_containing_symbol=SERVICE)
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in response.file_descriptor_response.file_descriptor_proto]
    pool, added = descriptor_pool.DescriptorPool(), set()
    while files:
        ready = next(f for f in files if set(f.dependency) <= added)
        pool.Add(ready)
        added.add(ready.name)
        files.remove(ready)
    return pool


class Dynamic:
    """Calls of the service with message classes built from reflected descriptors alone."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.pool = reflected_pool(channel)
        self._channel = channel
        self._service = self.pool.FindServiceByName(SERVICE)

    def message(self, name: str) -> type:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"speakerlink.v1.{name}"))

    def call(self, method: str, requests: object) -> object:
        found = self._service.FindMethodByName(method)
        kind = (f"{'stream' if found.client_streaming else 'unary'}_"
                f"{'stream' if found.server_streaming else 'unary'}")
        response = message_factory.GetMessageClass(found.output_type)
        stub = getattr(self._channel, kind)(f"/{SERVICE}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                            response_deserializer=response.FromString)
        return stub(requests, timeout=120)


def test_a_whole_job_through_reflection_alone(server, samples) -> None:
    """As grpcurl or a client in another language would: descriptors from reflection, no generated code."""
    path = samples["call.mp3"]
    data = path.read_bytes()
    with grpc.insecure_channel(server.config.address) as channel:
        dynamic = Dynamic(channel)
        request = dynamic.message
        info = dynamic.call("GetInfo", request("GetInfoRequest")())
        chunk_bytes = info.limits.max_chunk_bytes // 16
        config = request("DiarizeConfig")(clips=[request("ClipManifest")(
            name=path.name, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())])

        def upload() -> Iterator[object]:
            yield request("DiarizeRequest")(config=config)
            for start in range(0, len(data), chunk_bytes):
                yield request("DiarizeRequest")(chunk=request("AudioChunk")(clip_index=0, data=data[start:start + chunk_bytes]))

        events = list(dynamic.call("Diarize", upload()))
        job_id = events[0].accepted.job_id
        result = dynamic.call("GetResult", request("GetResultRequest")(job_id=job_id))
        with pytest.raises(grpc.RpcError) as info_error:
            dynamic.call("GetResult", request("GetResultRequest")(job_id=uuid.uuid4().hex))
    assert events[-1].WhichOneof("event") == "result" and events[-1].result == result
    assert [clip.name for clip in result.clips] == [path.name] and result.speakers
    # The error travels as the .proto says: a google.rpc.Status in grpc-status-details-bin.
    trailer = dict(info_error.value.trailing_metadata())["grpc-status-details-bin"]
    detail = status_pb2.Status.FromString(trailer).details[0]
    assert detail.type_url == "type.googleapis.com/speakerlink.v1.ErrorDetail"
    assert request("ErrorDetail").FromString(detail.value).code == "JOB_NOT_FOUND"
    with Client(server.config.address) as client:  # the same result as the SDK reads
        assert client.get_result(job_id).SerializeToString() == result.SerializeToString()


def test_cancel_says_it_was_asked_and_a_cancelled_job_has_no_result_to_wait_for(client: Client, long_clip: Path) -> None:
    events = client.iter_diarize([long_clip])
    job_id = next(events).job_id
    next(e for e in events if e.HasField("progress") and e.progress.stage not in ("queued", "decode"))
    answer = client.cancel(job_id)
    assert answer.state == pb.JOB_STATE_RUNNING and answer.cancel_requested
    assert [e for e in events if e.WhichOneof("event") in ("result", "error", "cancelled")][0].HasField("cancelled")
    after = client.cancel(job_id)
    assert after.state == pb.JOB_STATE_CANCELLED and not after.cancel_requested
    with pytest.raises(FailedPreconditionError) as info:
        client.export(job_id, "text")
    assert info.value.code == "RESULT_NOT_READY" and "cancelled" in info.value.message
    assert "submit the clips again" in " ".join(info.value.recovery) and "watch" not in info.value.describe()


def test_invalid_requests_carry_the_hints_of_their_own_call(server) -> None:
    with grpc.insecure_channel(server.config.address) as channel:
        stub = pb_grpc.SpeakerlinkStub(channel)
        failures = []
        for call, request in ((stub.ListJobs, pb.ListJobsRequest(page_size=501)),
                              (stub.ListJobs, pb.ListJobsRequest(page_token="nonsense")),
                              (stub.Export, pb.ExportRequest(job_id=uuid.uuid4().hex, format=99))):
            with pytest.raises(grpc.RpcError) as info:
                call(request, timeout=10)
            failures.append(error_from_rpc(info.value))
    for err in failures:
        assert err.code == "INVALID_CONFIG" and err.troubleshooting and err.recovery
        assert "first message" not in err.describe() and "speakerlink info" not in err.describe(), err.describe()
    assert "RTTM" in failures[2].troubleshooting[0]


def test_the_server_exports_exactly_the_formats_the_sdk_names() -> None:
    """One list (speakerlink.options.EXPORT_FORMATS) for the server, the CLI and the web page:
    each format in it has an exporter, and no exporter is left out of it."""
    from speakerlink_server.exporters import EXPORTERS, SUBTITLES

    assert sorted(EXPORTERS.keys() | SUBTITLES.keys()) == sorted(EXPORT_FORMATS.values())
    assert len(EXPORTERS.keys() | SUBTITLES.keys()) == len(EXPORTERS) + len(SUBTITLES)


def test_a_refused_call_keeps_its_grpc_cause(client: Client, server, samples) -> None:
    """Both clients chain the typed error to the grpc.RpcError it stands for, in short calls
    and in streams, so the status and trailers stay at hand for whoever debugs it."""
    import asyncio

    unknown = uuid.uuid4().hex
    refused = []
    for call in (lambda: client.get_result(unknown), lambda: list(client.watch(unknown)),
                 lambda: client.diarize([samples["call.mp3"]], engine="no-such-engine")):
        with pytest.raises((NotFoundError, InvalidInputError)) as info:
            call()
        refused.append(info.value)

    async def refused_async() -> NotFoundError:
        async with AsyncClient(server.config.address, timeout=30) as aio:
            with pytest.raises(NotFoundError) as info:
                await aio.get_result(unknown)
            return info.value

    refused.append(asyncio.run(refused_async()))
    assert all(isinstance(err.__cause__, grpc.RpcError) and err.__cause__.code() == err.status for err in refused)
    assert isinstance(refused[-1].__cause__, grpc.aio.AioRpcError)


@pytest.mark.parametrize(("options", "named"), [
    ({"num_speakers": 101}, ("speakers.exact", "--num-speakers", "101", "1-100")),
    ({"link_threshold": 2.0}, ("link_threshold", "--link-threshold", "2", "[-1, 1]")),
])
def test_an_option_out_of_range_names_the_option_its_range_and_the_value(client: Client, samples, options,
                                                                          named: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInputError) as info:
        client.diarize([samples["call.mp3"]], **options)
    err = info.value
    assert err.code == "INVALID_CONFIG" and all(part in err.describe() for part in named), err.describe()
    assert "first message" not in err.describe()
