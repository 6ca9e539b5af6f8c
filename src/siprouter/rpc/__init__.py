"""Control plane: JSON-RPC 2.0 over HTTP and a unix socket, statistics, metrics."""
