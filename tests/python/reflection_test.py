"""--reflection against a real bnserve process: on (the default), gRPC server
reflection lists bnserve's services; with --reflection=false the reflection
service is not there (UNIMPLEMENTED) and the API still answers. Reflection is
process-wide in gRPC, so each case needs a server process of its own.

The client is Debian's grpcio with the reflection messages written by hand
(grpc.reflection.v1alpha.ServerReflectionRequest.list_services, field 7, and
the response's list_services_response, field 6), since Debian packages no
grpcio-reflection.

usage: reflection_test.py BNSERVE DATA_DIR
"""
import os
import sys
import unittest

import grpc

BNSERVE, DATA_DIR = sys.argv[1:3]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnserve_process import BnserveProcess  # noqa: E402

METHODS = ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
           "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]


def varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def fields(data):
    """(field number, bytes) of each length-delimited field; others skipped."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, i = varint(data, i)
            yield number, data[i:i + length]
            i += length
        elif wire == 0:
            _, i = varint(data, i)
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError("unexpected wire type %d" % wire)


def list_services(address, method):
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(method, request_serializer=None,
                                     response_deserializer=None)
        responses = list(call(iter([b"\x3a\x01*"]), timeout=10))
    names = []
    for response in responses:
        for number, listing in fields(response):
            if number == 6:
                for service_number, service in fields(listing):
                    if service_number == 1:
                        names += [name.decode() for n, name in fields(service) if n == 1]
    return names


def server_live(address):
    """ServerLive of the Open Inference Protocol (an empty request), raw."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive",
                                   request_serializer=None, response_deserializer=None)
        return call(b"", timeout=10)


class ReflectionTest(unittest.TestCase):
    def test_reflection_is_served_by_default(self):
        with BnserveProcess(BNSERVE, DATA_DIR) as server:
            names = list_services(server.grpc_address, METHODS[0])
            for service in ["bnserve.v1.TrainingService", "bnserve.v1.InferenceService",
                            "bnserve.v1.ModelRegistry", "grpc.health.v1.Health"]:
                self.assertIn(service, names)

    def test_reflection_false_serves_no_reflection_and_the_api_still_answers(self):
        with BnserveProcess(BNSERVE, DATA_DIR, ["--reflection=false"]) as server:
            for method in METHODS:
                with self.assertRaises(grpc.RpcError) as caught:
                    list_services(server.grpc_address, method)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNIMPLEMENTED,
                                 method + ": " + str(caught.exception.details()))
            self.assertEqual(server_live(server.grpc_address), b"\x08\x01")  # live: true


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
