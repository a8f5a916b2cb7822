"""Infrastructure shared by the mesh services: the etcd store, key layout,
validation, configuration and the gRPC server scaffolding."""
