"""Make CreateDevice and GetVoltha calls through the NBI; print the answering core ids as JSON."""

import json
import sys

import grpc
from google.protobuf import empty_pb2
from voltha_protos import device_pb2, voltha_pb2_grpc

address, count = sys.argv[1], int(sys.argv[2])
channel = grpc.insecure_channel(address)
stub = voltha_pb2_grpc.VolthaServiceStub(channel)
created = [stub.CreateDevice(device_pb2.Device(type="molecule"), timeout=5).id.split(":")[0] for _ in range(count)]
versions = [stub.GetVoltha(empty_pb2.Empty(), timeout=5).version for _ in range(count)]
channel.close()
print(json.dumps({"create_device": created, "get_voltha": versions}))
