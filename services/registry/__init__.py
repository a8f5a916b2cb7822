"""The registry: agent definitions and live instances, stored in etcd.

- ``agents``     Agents: register/update/get/list/deregister definitions
- ``instances``  Instances: leased live replicas, keep-alive, state, deregister
- ``watch``      Watcher: resumable change streams with an initial snapshot
- ``config``     RegistryConfig, its flags and SUTRADHAR_REGISTRY_* variables
- ``server``     RegistryServer (the gRPC surface)

Run it with ``python -m sutradhar.services.registry --port 50051 --etcd 127.0.0.1:2379``.
"""

from sutradhar.services.registry.config import RegistryConfig
from sutradhar.services.registry.server import RegistryServer

__all__ = ["RegistryConfig", "RegistryServer"]
