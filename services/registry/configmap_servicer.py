"""The gRPC surface of ConfigMaps (sutradhar.v1.ConfigMapService), hosted by the registry.

Thin: decode, call `ConfigMapStore`, encode. ConfigMaps are plain configuration: a
reader sees the values (put anything secret in a Secret). Authorization is the
AUTHORIZATION stage's (services/common/rbac_methods.py).

Wiring (in `RegistryServer`, secured or not)::

    add_configmap_service(host, ConfigMapStore(store))   # and CONFIGMAP_SERVICE_NAME in service_names
"""

from __future__ import annotations

import grpc

from sutradhar._errors import InvalidArgument
from sutradhar._hosting import GrpcHost
from sutradhar.services.registry.secret_servicer import writer_name
from sutradhar.services.registry.secrets import ConfigMapStore
from sutradhar.v1 import secrets_pb2 as pb
from sutradhar.v1 import secrets_pb2_grpc

__all__ = ["CONFIGMAP_SERVICE_NAME", "ConfigMapServicer", "add_configmap_service"]

CONFIGMAP_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ConfigMapService"].full_name


class ConfigMapServicer(secrets_pb2_grpc.ConfigMapServiceServicer):
    """sutradhar.v1.ConfigMapService over a `ConfigMapStore`."""

    def __init__(self, config_maps: ConfigMapStore) -> None:
        self._config_maps = config_maps

    async def ApplyConfigMap(
        self, request: pb.ApplyConfigMapRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyConfigMapResponse:
        if not request.HasField("config_map"):
            raise InvalidArgument("config_map: is required", field="config_map")
        stored, created, changed = await self._config_maps.apply(request.config_map, updated_by=writer_name())
        return pb.ApplyConfigMapResponse(config_map=stored, created=created, changed=changed)

    async def GetConfigMap(
        self, request: pb.GetConfigMapRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConfigMapResponse:
        return pb.GetConfigMapResponse(config_map=await self._config_maps.get(request.namespace, request.name))

    async def ListConfigMaps(
        self, request: pb.ListConfigMapsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConfigMapsResponse:
        found, revision = await self._config_maps.list(request.namespace)
        return pb.ListConfigMapsResponse(config_maps=found, revision=revision)

    async def DeleteConfigMap(
        self, request: pb.DeleteConfigMapRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteConfigMapResponse:
        return pb.DeleteConfigMapResponse(config_map=await self._config_maps.delete(request.namespace, request.name))


def add_configmap_service(host: GrpcHost, config_maps: ConfigMapStore) -> ConfigMapServicer:
    """Register ConfigMapService on `host` (through its middleware chain) and return the servicer."""
    servicer = ConfigMapServicer(config_maps)
    host.add_servicer(secrets_pb2_grpc.add_ConfigMapServiceServicer_to_server, servicer)
    return servicer
