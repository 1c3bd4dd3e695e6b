#!/usr/bin/env python3
"""The Open Inference Protocol's REST routes, spoken with the standard library.

Every request goes through urllib, with bodies written by hand from the
specification's REST document (specification/protocol/inference_rest.md) and
Triton's binary tensor data extension (docs/protocol/extension_binary_data.md):
a JSON header, then the tensors' little-endian bytes, its length in
Inference-Header-Content-Length. Nothing of the project's code builds a
request. It starts a bnserve with the default model "digits", waits for
/v2/health/ready, calls every route, and compares /infer (JSON flat and
nested, binary in and out, both BatchNorm modes) with bnserve.v1 Predict of
the same rows over gRPC (Debian's grpcio with the project's stubs from the
build tree): the same float32 bits. Bad requests get their HTTP statuses, and
GET /metrics counts the REST requests exactly.

usage: v2_rest_test.py BNSERVE PYTHON_DIR DATA_DIR
  PYTHON_DIR  the build tree's python/ (bnserve.v1 stubs, from bnserve_python)
"""
import array
import json
import os
import random
import re
import struct
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnserve_process import BnserveProcess  # noqa: E402

BNSERVE, PYTHON_DIR, DATA_DIR = sys.argv[1:4]
sys.path.insert(0, PYTHON_DIR)
import grpc  # noqa: E402
from bnserve.v1 import inference_service_pb2, inference_service_pb2_grpc, types_pb2  # noqa: E402

MAX_BATCH = 300
FEATURES = 784
CLASSES = 10


def rows(n, seed):
    """n rows of float32 values (an array('f'), so each is exactly a float32)."""
    rng = random.Random(seed)
    return array.array("f", (rng.random() for _ in range(n * FEATURES)))


def float32_bits(values):
    return array.array("f", values).tobytes()


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class V2RestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = BnserveProcess(BNSERVE, DATA_DIR, [
            "--default_model=digits", "--max_batch=%d" % MAX_BATCH]).__enter__()
        if cls.server.http_address is None:
            raise RuntimeError("bnserve reported no HTTP port:\n" + "".join(cls.server.log_lines))
        cls.base = "http://" + cls.server.http_address
        cls.channel = grpc.insecure_channel(cls.server.grpc_address)
        cls.predict_stub = inference_service_pb2_grpc.InferenceServiceStub(cls.channel)
        # The default model is trained at the first start; until it is ready
        # the server-ready route answers 503 {"ready": false}.
        deadline = time.monotonic() + 120
        while True:
            reply = cls.call("GET", "/v2/health/ready")
            if reply.status == 200:
                break
            if reply.status != 503 or reply.json() != {"ready": False}:
                raise RuntimeError("not-ready answer %d %r" % (reply.status, reply.body))
            if time.monotonic() > deadline:
                raise RuntimeError("never ready:\n" + "".join(cls.server.log_lines))
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.__exit__(None, None, None)

    @classmethod
    def call(cls, method, path, body=None, headers=None):
        request = urllib.request.Request(cls.base + path, data=body, method=method,
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def predict(self, values, n, bn_mode=None):
        request = inference_service_pb2.PredictRequest()
        request.model.name = "digits"
        request.inputs.shape.extend([n, FEATURES])
        request.inputs.values.extend(values)
        if bn_mode is not None:
            request.bn_mode = bn_mode
        return self.predict_stub.Predict(request, timeout=30)

    def post_json(self, path, document):
        return self.call("POST", path, json.dumps(document).encode(),
                         {"Content-Type": "application/json"})

    def post_binary(self, path, header, *tensors):
        header_bytes = json.dumps(header).encode()
        return self.call("POST", path, header_bytes + b"".join(tensors), {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header_bytes))})

    def assert_error(self, reply, status):
        self.assertEqual(reply.status, status, reply.body)
        self.assertEqual(reply.headers["Content-Type"], "application/json")
        self.assertIsInstance(reply.json()["error"], str)
        self.assertTrue(reply.json()["error"])

    def assert_json_outputs_equal_predict(self, answer, expected, n):
        self.assertEqual(answer["model_name"], "digits")
        self.assertEqual(answer["model_version"], str(expected.model_version))
        outputs = {output["name"]: output for output in answer["outputs"]}
        probabilities = outputs["probabilities"]
        self.assertEqual(probabilities["datatype"], "FP32")
        self.assertEqual(probabilities["shape"], [n, CLASSES])
        # The JSON numbers are the float32 values exactly: equal as doubles,
        # and the same bits as float32.
        self.assertEqual(probabilities["data"], list(expected.probabilities.values))
        self.assertEqual(float32_bits(probabilities["data"]),
                         float32_bits(expected.probabilities.values))
        classes = outputs["predicted_class"]
        self.assertEqual(classes["datatype"], "INT32")
        self.assertEqual(classes["shape"], [n])
        self.assertEqual(classes["data"], list(expected.predicted_classes))

    def test_health_and_metadata_routes(self):
        live = self.call("GET", "/v2/health/live")
        self.assertEqual((live.status, live.json()), (200, {"live": True}))
        self.assertEqual(live.headers["Content-Type"], "application/json")
        ready = self.call("GET", "/v2/health/ready")
        self.assertEqual((ready.status, ready.json()), (200, {"ready": True}))
        for path in ("/v2/models/digits/ready", "/v2/models/digits/versions/1/ready"):
            reply = self.call("GET", path)
            self.assertEqual((reply.status, reply.json()),
                             (200, {"name": "digits", "ready": True}), path)

        server = self.call("GET", "/v2")
        self.assertEqual(server.status, 200)
        self.assertEqual(server.json()["name"], "bnserve")
        self.assertTrue(server.json()["version"])
        self.assertIn("binary_tensor_data", server.json()["extensions"])

        for path in ("/v2/models/digits", "/v2/models/digits/versions/1"):
            reply = self.call("GET", path)
            self.assertEqual(reply.status, 200, path)
            model = reply.json()
            self.assertEqual(model["name"], "digits")
            self.assertEqual(model["versions"], ["1"])
            self.assertEqual(model["platform"], "bnserve_mlp")
            self.assertEqual(model["inputs"],
                             [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}])
            self.assertEqual(model["outputs"], [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, CLASSES]},
                {"name": "predicted_class", "datatype": "INT32", "shape": [-1]}])

    def test_json_infer_equals_predict_flat_and_nested(self):
        for n in (1, 7):
            values = rows(n, seed=n)
            expected = self.predict(values, n)
            flat = {"id": "rest-%d" % n, "inputs": [{
                "name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                "data": list(values)}]}
            nested = {"inputs": [{
                "name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                "data": [list(values[r * FEATURES:(r + 1) * FEATURES]) for r in range(n)]}]}
            reply = self.post_json("/v2/models/digits/infer", flat)
            self.assertEqual(reply.status, 200, reply.body)
            self.assertEqual(reply.headers["Content-Type"], "application/json")
            self.assertEqual(reply.json()["id"], "rest-%d" % n)
            self.assert_json_outputs_equal_predict(reply.json(), expected, n)
            reply = self.post_json("/v2/models/digits/versions/1/infer", nested)
            self.assertEqual(reply.status, 200, reply.body)
            self.assert_json_outputs_equal_predict(reply.json(), expected, n)

    def test_binary_infer_built_by_hand_equals_predict(self):
        n = 37
        values = rows(n, seed=37)
        expected = self.predict(values, n)
        data = struct.pack("<%df" % (n * FEATURES), *values)
        header = {
            "inputs": [{"name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                        "parameters": {"binary_data_size": len(data)}}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                        {"name": "predicted_class"}]}
        reply = self.post_binary("/v2/models/digits/infer", header, data)
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual(reply.headers["Content-Type"], "application/octet-stream")
        json_length = int(reply.headers["Inference-Header-Content-Length"])
        answer = json.loads(reply.body[:json_length])
        probabilities, classes = answer["outputs"]
        self.assertEqual(probabilities["name"], "probabilities")
        self.assertEqual(probabilities["shape"], [n, CLASSES])
        self.assertNotIn("data", probabilities)
        size = probabilities["parameters"]["binary_data_size"]
        self.assertEqual(size, n * CLASSES * 4)
        self.assertEqual(len(reply.body), json_length + size)
        self.assertEqual(reply.body[json_length:],
                         struct.pack("<%df" % (n * CLASSES), *expected.probabilities.values))
        self.assertEqual(classes["data"], list(expected.predicted_classes))

    def test_binary_data_output_makes_every_output_binary(self):
        n = 4
        values = rows(n, seed=4)
        expected = self.predict(values, n)
        data = struct.pack("<%df" % (n * FEATURES), *values)
        header = {"parameters": {"binary_data_output": True},
                  "inputs": [{"name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                              "parameters": {"binary_data_size": len(data)}}]}
        reply = self.post_binary("/v2/models/digits/versions/1/infer", header, data)
        self.assertEqual(reply.status, 200, reply.body)
        json_length = int(reply.headers["Inference-Header-Content-Length"])
        answer = json.loads(reply.body[:json_length])
        sizes = [output["parameters"]["binary_data_size"] for output in answer["outputs"]]
        self.assertEqual(sizes, [n * CLASSES * 4, n * 4])
        tail = reply.body[json_length:]
        self.assertEqual(tail[:sizes[0]],
                         struct.pack("<%df" % (n * CLASSES), *expected.probabilities.values))
        self.assertEqual(list(struct.unpack("<%di" % n, tail[sizes[0]:])),
                         list(expected.predicted_classes))

    def test_batch_statistics_mode_equals_predicts(self):
        n = 16
        values = rows(n, seed=99)
        expected = self.predict(values, n, bn_mode=types_pb2.BATCH_STATISTICS)
        reply = self.post_json("/v2/models/digits/infer", {
            "parameters": {"bn_mode": "batch_statistics"},
            "inputs": [{"name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                        "data": list(values)}]})
        self.assertEqual(reply.status, 200, reply.body)
        self.assert_json_outputs_equal_predict(reply.json(), expected, n)
        self.assertNotEqual(list(self.predict(values, n).probabilities.values),
                            list(expected.probabilities.values))

    def counter(self, name, labels):
        """The value of the sample `name` whose labels include `labels`, in
        GET /metrics' text (0 if there is none)."""
        reply = self.call("GET", "/metrics")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        total = 0.0
        for line in reply.body.decode().splitlines():
            match = re.fullmatch(r'(\w+)(?:\{(.*)\})? (\S+)', line)
            if not match or match.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            if all(have.get(key) == value for key, value in labels.items()):
                total += float(match.group(3))
        return total

    def test_metrics_count_rest_requests_exactly(self):
        labels = {"model": "digits", "version": "1"}
        http = {"model": "digits", "protocol": "v2_http"}
        success = self.counter("nv_inference_request_success", labels)
        count = self.counter("nv_inference_count", labels)
        failure = self.counter("nv_inference_request_failure", labels)
        timed = self.counter("bnserve_inference_request_duration_seconds_count", http)
        values = rows(2, seed=8)
        document = {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32",
                                "data": list(values)}]}
        for _ in range(3):
            self.assertEqual(self.post_json("/v2/models/digits/infer", document).status, 200)
        self.assertEqual(self.call("POST", "/v2/models/digits/infer", b"[").status, 400)
        self.assertEqual(self.counter("nv_inference_request_success", labels), success + 3)
        self.assertEqual(self.counter("nv_inference_count", labels), count + 6)
        self.assertEqual(self.counter("nv_inference_request_failure", labels), failure + 1)
        self.assertEqual(self.counter("bnserve_inference_request_duration_seconds_count", http),
                         timed + 3)

    def test_bad_requests_get_their_http_status(self):
        good = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32",
                            "data": list(rows(1, seed=1))}]}
        self.assert_error(self.call("GET", "/v2/models/nosuch"), 404)
        self.assert_error(self.call("GET", "/v2/models/nosuch/ready"), 404)
        self.assert_error(self.call("GET", "/v2/models/digits/versions/9"), 404)
        self.assert_error(self.post_json("/v2/models/nosuch/infer", good), 404)
        self.assert_error(self.call("GET", "/v2/no/such/route"), 404)
        wrong_method = self.call("GET", "/v2/models/digits/infer")
        self.assert_error(wrong_method, 405)
        self.assertEqual(wrong_method.headers["Allow"], "POST")

        bad_json = self.call("POST", "/v2/models/digits/infer", b'{"inputs": [',
                             {"Content-Type": "application/json"})
        self.assert_error(bad_json, 400)
        self.assertIn("not valid JSON", bad_json.json()["error"])
        wrong_count = json.loads(json.dumps(good))
        wrong_count["inputs"][0]["shape"] = [2, FEATURES]
        self.assert_error(self.post_json("/v2/models/digits/infer", wrong_count), 400)
        wrong_type = json.loads(json.dumps(good))
        wrong_type["inputs"][0]["datatype"] = "INT32"
        wrong_type["inputs"][0]["data"] = [0] * FEATURES
        self.assert_error(self.post_json("/v2/models/digits/infer", wrong_type), 400)
        negative = json.loads(json.dumps(good))
        negative["inputs"][0]["shape"] = [-1, FEATURES]
        self.assert_error(self.post_json("/v2/models/digits/infer", negative), 400)
        # Binary data shorter than binary_data_size says.
        header = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32",
                              "parameters": {"binary_data_size": FEATURES * 4}}]}
        self.assert_error(
            self.post_binary("/v2/models/digits/infer", header, b"\0" * (FEATURES * 4 - 1)), 400)
        # More rows than --max_batch: ResourceExhausted, 429.
        n = MAX_BATCH + 1
        header = {"inputs": [{"name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                              "parameters": {"binary_data_size": n * FEATURES * 4}}]}
        self.assert_error(
            self.post_binary("/v2/models/digits/infer", header, b"\0" * (n * FEATURES * 4)), 429)
        # The server serves on.
        self.assertEqual(self.post_json("/v2/models/digits/infer", good).status, 200)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
