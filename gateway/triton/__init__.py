"""Everything that speaks Triton's KServe v2 gRPC protocol."""
