"""Server reflection under both names tools use: grpc.reflection.v1 and the older v1alpha.

grpcio-reflection serves v1alpha only. The v1 protocol is the same messages in another
package, so the v1 service is the same servicer behind v1's names, with v1's file added to the
descriptor pool (built from v1alpha's) so that reflection can describe itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
SERVICE_NAMES = (V1_SERVICE_NAME, reflection.SERVICE_NAME)


def enable_reflection(service_names: Sequence[str], server: grpc.Server) -> None:
    """Serve reflection v1 and v1alpha on `server`, listing `service_names` and both reflections."""
    _add_v1_file(descriptor_pool.Default())
    servicer = reflection.ReflectionServicer([*service_names, *SERVICE_NAMES])
    for package in (V1_PACKAGE, reflection_pb2.DESCRIPTOR.package):
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(f"{package}.ServerReflection", {"ServerReflectionInfo": handler}),)
        )


def _add_v1_file(pool: descriptor_pool.DescriptorPool) -> None:
    """grpc/reflection/v1/reflection.proto: v1alpha's file with v1's names (the wire format is one)."""
    name = "grpc/reflection/v1/reflection.proto"
    try:
        pool.FindFileByName(name)
        return  # a second server in this process
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    old, new = f".{file.package}.", f".{V1_PACKAGE}."
    file.name, file.package = name, V1_PACKAGE
    file.ClearField("options")
    for message in file.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old, new)
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(file.SerializeToString())
