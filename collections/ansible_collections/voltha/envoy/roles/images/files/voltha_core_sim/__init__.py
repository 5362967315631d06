"""A VOLTHA core simulator: real gRPC servers for voltha.VolthaService that behave as a cluster of VOLTHA cores."""

__version__ = "0.2.0"
