"""A VOLTHA core simulator: a real gRPC server for voltha.VolthaService that answers with its core id."""
