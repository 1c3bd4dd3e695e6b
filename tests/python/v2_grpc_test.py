#!/usr/bin/env python3
"""An Open Inference Protocol (V2) client the project did not write.

Debian's grpcio with stubs that protoc's grpc_python_plugin generates, at test
time, from the V2 proto (whose wire surface tests/proto checks against the
published specification) and from bnserve.v1's protos. It starts a bnserve
with the default model "digits", waits for ServerReady, calls every V2 RPC,
and compares ModelInfer with bnserve.v1 Predict of the same rows: the same
float32 bits, typed or raw contents, in both BatchNorm modes; bad requests get
Predict's status codes.

usage: v2_grpc_test.py BNSERVE PROTOC GRPC_PYTHON_PLUGIN PROTO_DIR DATA_DIR
"""
import array
import importlib
import os
import random
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnserve_process import BnserveProcess  # noqa: E402

BNSERVE, PROTOC, PLUGIN, PROTO_DIR, DATA_DIR = sys.argv[1:6]
MAX_BATCH = 300
FEATURES = 784
CLASSES = 10


def generate_stubs(out_dir):
    protos = ["inference/open_inference_grpc.proto"] + [
        "bnserve/v1/" + name for name in sorted(os.listdir(os.path.join(PROTO_DIR, "bnserve/v1")))
        if name.endswith(".proto")]
    subprocess.run([PROTOC, "-I", PROTO_DIR, "--python_out=" + out_dir,
                    "--grpc_python_out=" + out_dir,
                    "--plugin=protoc-gen-grpc_python=" + PLUGIN] + protos, check=True)
    for package in ("inference", "bnserve", "bnserve/v1"):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)


def rows(n, seed):
    rng = random.Random(seed)
    return array.array("f", (rng.random() for _ in range(n * FEATURES)))


class V2GrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="bnserve-v2-stubs-")
        generate_stubs(cls.tmp.name)
        cls.pb = importlib.import_module("inference.open_inference_grpc_pb2")
        cls.pb_grpc = importlib.import_module("inference.open_inference_grpc_pb2_grpc")
        cls.v1 = importlib.import_module("bnserve.v1.inference_service_pb2")
        cls.v1_grpc = importlib.import_module("bnserve.v1.inference_service_pb2_grpc")
        cls.types = importlib.import_module("bnserve.v1.types_pb2")
        cls.server = BnserveProcess(BNSERVE, DATA_DIR, [
            "--default_model=digits", "--max_batch=%d" % MAX_BATCH]).__enter__()
        cls.channel = grpc.insecure_channel(cls.server.grpc_address)
        cls.stub = cls.pb_grpc.GRPCInferenceServiceStub(cls.channel)
        cls.predict_stub = cls.v1_grpc.InferenceServiceStub(cls.channel)
        # The default model is trained at the first start: ready within a minute.
        deadline = time.monotonic() + 120
        while not cls.stub.ServerReady(cls.pb.ServerReadyRequest(), timeout=10).ready:
            if time.monotonic() > deadline:
                raise RuntimeError("never ready:\n" + "".join(cls.server.log_lines))
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.__exit__(None, None, None)
        cls.tmp.cleanup()

    def predict(self, values, n, bn_mode=None):
        request = self.v1.PredictRequest()
        request.model.name = "digits"
        request.inputs.shape.extend([n, FEATURES])
        request.inputs.values.extend(values)
        if bn_mode is not None:
            request.bn_mode = bn_mode
        return self.predict_stub.Predict(request, timeout=30)

    def infer_request(self, values, n, raw=False, version=""):
        request = self.pb.ModelInferRequest(model_name="digits", model_version=version, id="py-1")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=[n, FEATURES])
        if raw:
            request.raw_input_contents.append(values.tobytes())
        else:
            tensor.contents.fp32_contents.extend(values)
        return request

    def assert_same_as_predict(self, response, expected, n, raw):
        self.assertEqual(response.model_name, "digits")
        self.assertEqual(response.model_version, str(expected.model_version))
        self.assertEqual([o.name for o in response.outputs], ["probabilities", "predicted_class"])
        self.assertEqual(list(response.outputs[0].shape), [n, CLASSES])
        self.assertEqual(response.outputs[0].datatype, "FP32")
        self.assertEqual(list(response.outputs[1].shape), [n])
        self.assertEqual(response.outputs[1].datatype, "INT32")
        want = array.array("f", expected.probabilities.values).tobytes()
        if raw:
            self.assertEqual(response.raw_output_contents[0], want)
            classes = array.array("i")
            classes.frombytes(response.raw_output_contents[1])
            self.assertEqual(list(classes), list(expected.predicted_classes))
        else:
            got = array.array("f", response.outputs[0].contents.fp32_contents).tobytes()
            self.assertEqual(got, want)
            self.assertEqual(list(response.outputs[1].contents.int_contents),
                             list(expected.predicted_classes))

    def test_health_and_metadata(self):
        self.assertTrue(self.stub.ServerLive(self.pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(self.pb.ServerReadyRequest()).ready)
        self.assertTrue(self.stub.ModelReady(self.pb.ModelReadyRequest(name="digits")).ready)
        self.assertTrue(
            self.stub.ModelReady(self.pb.ModelReadyRequest(name="digits", version="1")).ready)
        server = self.stub.ServerMetadata(self.pb.ServerMetadataRequest())
        self.assertEqual(server.name, "bnserve")
        self.assertTrue(server.version)
        metadata = self.stub.ModelMetadata(self.pb.ModelMetadataRequest(name="digits"))
        self.assertEqual(metadata.name, "digits")
        self.assertEqual(list(metadata.versions), ["1"])
        self.assertEqual(metadata.platform, "bnserve_mlp")
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.inputs],
                         [("input", "FP32", [-1, FEATURES])])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.outputs],
                         [("probabilities", "FP32", [-1, CLASSES]),
                          ("predicted_class", "INT32", [-1])])
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.ModelMetadata(self.pb.ModelMetadataRequest(name="nosuch"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_model_infer_matches_predict(self):
        for n in (1, 37, MAX_BATCH):
            values = rows(n, seed=n)
            expected = self.predict(values, n)
            for raw in (False, True):
                response = self.stub.ModelInfer(self.infer_request(values, n, raw), timeout=30)
                self.assertEqual(response.id, "py-1")
                self.assert_same_as_predict(response, expected, n, raw)

    def test_batch_statistics_mode_matches_predict(self):
        values = rows(16, seed=99)
        expected = self.predict(values, 16, bn_mode=self.types.BATCH_STATISTICS)
        request = self.infer_request(values, 16, raw=True, version="1")
        request.parameters["bn_mode"].string_param = "batch_statistics"
        self.assert_same_as_predict(self.stub.ModelInfer(request, timeout=30), expected, 16, True)
        inference_mode = self.predict(values, 16)
        self.assertNotEqual(list(inference_mode.probabilities.values),
                            list(expected.probabilities.values))

    def test_requested_outputs(self):
        values = rows(3, seed=5)
        request = self.infer_request(values, 3)
        request.outputs.add(name="predicted_class")
        response = self.stub.ModelInfer(request, timeout=30)
        self.assertEqual([o.name for o in response.outputs], ["predicted_class"])
        self.assertEqual(list(response.outputs[0].contents.int_contents),
                         list(self.predict(values, 3).predicted_classes))

    def test_bad_requests_get_predicts_codes(self):
        values = rows(2, seed=1)

        def code_of(request):
            with self.assertRaises(grpc.RpcError) as caught:
                self.stub.ModelInfer(request, timeout=30)
            return caught.exception.code()

        request = self.infer_request(values, 2)
        request.inputs[0].datatype = "FP16"
        self.assertEqual(code_of(request), grpc.StatusCode.INVALID_ARGUMENT)
        request = self.infer_request(values, 2)
        request.inputs[0].shape[0] = 3
        self.assertEqual(code_of(request), grpc.StatusCode.INVALID_ARGUMENT)
        request = self.infer_request(array.array("f", [float("nan")] * FEATURES), 1)
        self.assertEqual(code_of(request), grpc.StatusCode.INVALID_ARGUMENT)
        request = self.infer_request(values, 2)
        request.model_name = "nosuch"
        self.assertEqual(code_of(request), grpc.StatusCode.NOT_FOUND)
        request = self.infer_request(values, 2, version="7")
        self.assertEqual(code_of(request), grpc.StatusCode.NOT_FOUND)
        many = rows(MAX_BATCH + 1, seed=2)
        self.assertEqual(code_of(self.infer_request(many, MAX_BATCH + 1, raw=True)),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.ModelReady(self.pb.ModelReadyRequest(name="nosuch"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
