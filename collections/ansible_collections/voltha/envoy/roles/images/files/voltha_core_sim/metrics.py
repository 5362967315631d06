"""The core's Prometheus metrics: calls by method and status code, devices, leadership.

A gRPC server interceptor counts every call as it ends; the devices and the leadership are read
when Prometheus scrapes. Served by prometheus_client's HTTP server on --metrics-port.
"""

from __future__ import annotations

import grpc

try:
    import prometheus_client
except ImportError:  # the core runs without metrics when prometheus-client is missing
    prometheus_client = None


class CoreMetrics:
    """``servicer`` and ``membership`` are set once they exist (the interceptor comes first)."""

    def __init__(self, core_id: str):
        if prometheus_client is None:
            raise RuntimeError("--metrics-port needs the Python package prometheus-client")
        prometheus_client.disable_created_metrics()
        self.registry = prometheus_client.CollectorRegistry()
        self.calls = prometheus_client.Counter("voltha_core_calls", "gRPC calls the core answered, by method and code.",
                                               ("method", "code"), registry=self.registry)
        devices = prometheus_client.Gauge("voltha_core_devices", "Devices in the core stores this core serves.",
                                          registry=self.registry)
        self.servicer = self.membership = None
        devices.set_function(lambda: self.servicer.stores.count() if self.servicer is not None else 0)
        leader = prometheus_client.Gauge("voltha_core_leader", "1 while this core holds the leader lock.",
                                         registry=self.registry)
        leader.set_function(lambda: 1 if self.membership is not None and self.membership.election.is_leader else 0)
        info = prometheus_client.Info("voltha_core", "The core's id.", registry=self.registry)
        info.info({"core_id": core_id})

    def serve(self, host: str, port: int):
        return prometheus_client.start_http_server(port, addr=host, registry=self.registry)

    def interceptor(self) -> grpc.ServerInterceptor:
        return _CallCounter(self.calls)


class _CallCounter(grpc.ServerInterceptor):
    def __init__(self, calls):
        self.calls = calls

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler.unary_unary:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        behavior = handler.unary_unary

        def counted(request, context):
            try:
                response = behavior(request, context)
            except Exception:
                self.calls.labels(method, (context.code() or grpc.StatusCode.UNKNOWN).name).inc()
                raise
            self.calls.labels(method, (context.code() or grpc.StatusCode.OK).name).inc()
            return response

        return grpc.unary_unary_rpc_method_handler(counted, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
