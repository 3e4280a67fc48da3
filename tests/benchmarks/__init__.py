"""The benchmark harness (`make bench`): the gateway measured against direct gRPC."""
