#!/usr/bin/env python3
"""The Python client (client/python/bnserve) against a real server.

Every call round-trips; Predict equals a NumPy forward pass (float64) of the
tensors GetModel returns, in both BatchNorm modes; V2 infer equals Predict
bit for bit; and `bnserve.figures` writes each PNG at its declared size.

usage: client_test.py BNSERVE PYTHON_PACKAGE_DIR DATA_DIR
"""
import os
import struct
import sys
import tempfile
import unittest

import grpc
import numpy as np

BNSERVE, PACKAGE_DIR, DATA_DIR = sys.argv[1:4]
sys.path.insert(0, PACKAGE_DIR)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnserve import Client  # noqa: E402
from bnserve import figures  # noqa: E402
from bnserve_process import BnserveProcess  # noqa: E402


def numpy_forward(version, x, batch_statistics=False):
    """Probabilities of the MultiLayerNetExtend in `version`, in float64."""
    t = {name: value.astype(np.float64) for name, value in version.tensors.items()}
    h = x.astype(np.float64)
    layers = len(version.hidden_sizes)
    for k in range(1, layers + 1):
        a = h @ t["W%d" % k] + t["b%d" % k]
        if version.use_batchnorm:
            if batch_statistics:
                mean, var = a.mean(axis=0), a.var(axis=0)  # biased, as the book
            else:
                mean, var = t["running_mean%d" % k], t["running_var%d" % k]
            a = t["gamma%d" % k] * (a - mean) / np.sqrt(var + version.bn_eps) + t["beta%d" % k]
        h = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "tanh": np.tanh}[version.activation](a)
    scores = h @ t["W%d" % (layers + 1)] + t["b%d" % (layers + 1)]
    scores -= scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


def png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = BnserveProcess(BNSERVE, DATA_DIR, ["--workers=2"]).__enter__()
        cls.client = Client(cls.server.grpc_address, timeout=120)
        cls.job = cls.client.train("py-small", limit=300, epochs=3, hidden_sizes=(32, 16),
                                   optimizer="adam", seed=3, validation_split="test",
                                   validation_limit=100, description="python client test")
        cls.finished = cls.client.wait(cls.job.job_id)
        cls.rng = np.random.default_rng(7)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.__exit__(None, None, None)

    def test_train_watch_jobs(self):
        self.assertEqual(self.job.state, "QUEUED")
        self.assertEqual(self.finished.state, "SUCCEEDED", self.finished.reason)
        self.assertEqual(self.finished.model_version, 1)
        epochs = list(self.client.watch(self.job.job_id))  # history of a finished job
        self.assertEqual([e.epoch for e in epochs], [1, 2, 3])
        self.assertTrue(all(0 <= e.train_accuracy <= 1 for e in epochs))
        self.assertGreater(epochs[-1].validation_accuracy, 0)
        self.assertEqual(self.client.job(self.job.job_id).epochs, epochs)
        ids = [j.job_id for j in self.client.jobs(model="py-small")]
        self.assertIn(self.job.job_id, ids)
        self.assertEqual(self.finished.description, "python client test")

    def test_cancel(self):
        job = self.client.train("py-cancel", epochs=200, limit=0)
        cancelled = self.client.cancel(job.job_id)
        final = self.client.wait(job.job_id)
        self.assertIn(cancelled.state, ("CANCELLED", "RUNNING", "QUEUED"))
        self.assertEqual(final.state, "CANCELLED")

    def test_predict_equals_a_numpy_forward_pass(self):
        version = self.client.get_model("py-small", parameters=True)
        self.assertEqual(version.input_size, 784)
        self.assertTrue(version.served_folded)
        self.assertEqual(set(version.tensors), {
            "W1", "b1", "gamma1", "beta1", "running_mean1", "running_var1",
            "W2", "b2", "gamma2", "beta2", "running_mean2", "running_var2", "W3", "b3"})
        x = self.rng.random((50, 784), dtype=np.float32)
        prediction = self.client.predict("py-small", x)
        self.assertEqual(prediction.probabilities.shape, (50, 10))
        self.assertEqual(prediction.probabilities.dtype, np.float32)
        expected = numpy_forward(version, x)
        np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(prediction.classes, prediction.probabilities.argmax(1))
        batch = self.client.predict("py-small", x, bn_mode="batch_statistics")
        np.testing.assert_allclose(batch.probabilities, numpy_forward(version, x, True),
                                   atol=1e-5, rtol=0)
        self.assertFalse(np.allclose(batch.probabilities, prediction.probabilities, atol=1e-6))

    def test_v2_infer_equals_predict(self):
        x = self.rng.random((20, 784), dtype=np.float32)
        prediction = self.client.predict("py-small", x, version=1)
        outputs = self.client.infer("py-small", x, version="1")
        np.testing.assert_array_equal(outputs["probabilities"], prediction.probabilities)
        np.testing.assert_array_equal(outputs["predicted_class"], prediction.classes)
        only = self.client.infer("py-small", x, outputs=["predicted_class"])
        self.assertEqual(list(only), ["predicted_class"])

    def test_evaluate(self):
        evaluation = self.client.evaluate("py-small", split="test", limit=200)
        self.assertEqual(evaluation.num_examples, 200)
        self.assertEqual(evaluation.confusion_matrix.shape, (10, 10))
        self.assertEqual(int(evaluation.confusion_matrix.sum()), 200)
        self.assertAlmostEqual(evaluation.accuracy,
                               np.trace(evaluation.confusion_matrix) / 200, places=9)

    def test_inspect_matches_a_numpy_forward_pass(self):
        version = self.client.get_model("py-small", parameters=True)
        t = {name: value.astype(np.float64) for name, value in version.tensors.items()}
        x = self.rng.random((200, 784), dtype=np.float32)
        # No edge at 0, where ReLU puts many values exactly.
        lo, hi = -4.1, 3.9
        layers = self.client.inspect("py-small", x=x, bins=20, value_range=(lo, hi))
        self.assertEqual([layer.layer for layer in layers], [1, 2])
        h = x.astype(np.float64)
        for k, layer in enumerate(layers, start=1):
            a = h @ t["W%d" % k] + t["b%d" % k]
            n = t["gamma%d" % k] * (a - t["running_mean%d" % k]) / np.sqrt(
                t["running_var%d" % k] + version.bn_eps) + t["beta%d" % k]
            h = np.maximum(n, 0)
            for histogram, values in ((layer.affine, a), (layer.batchnorm, n),
                                      (layer.activation, h)):
                counts, _ = np.histogram(values, bins=20, range=(lo, hi))
                self.assertEqual(histogram.count, values.size)
                self.assertEqual(histogram.below, int((values < lo).sum()))
                self.assertEqual(histogram.above, int((values > hi).sum()))
                # float32 on the server: a value within rounding of an edge
                # may land in the neighbouring bin.
                self.assertLessEqual(int(np.abs(histogram.counts - counts).sum()), 4)
                self.assertAlmostEqual(histogram.mean, values.mean(), places=4)
                self.assertAlmostEqual(histogram.std, values.std(), places=4)
            np.testing.assert_array_equal(layer.gamma, version.tensors["gamma%d" % k].ravel())
            np.testing.assert_array_equal(layer.running_var,
                                          version.tensors["running_var%d" % k].ravel())

    def test_inspect_untrained_shows_the_books_saturation(self):
        # The book's figure: sigmoid with weight std 1 piles activations at 0
        # and 1; with std 0.01 they gather at 0.5.
        wide = self.client.inspect(weight_init_std=1.0, bins=10, value_range=(0, 1))
        narrow = self.client.inspect(weight_init_std=0.01, bins=10, value_range=(0, 1))
        self.assertEqual(len(wide), 5)
        for layer in wide:
            outer = layer.activation.counts[0] + layer.activation.counts[-1]
            self.assertGreater(outer / layer.activation.count, 0.5)
            self.assertIsNone(layer.batchnorm)
        for layer in narrow:
            middle = layer.activation.counts[4] + layer.activation.counts[5]
            self.assertGreater(middle / layer.activation.count, 0.99)

    def test_registry_round_trip(self):
        data = self.client.export("py-small", version=1)
        imported = self.client.import_model(data, as_name="py-copy")
        self.assertEqual(imported.model_name, "py-copy")
        x = self.rng.random((5, 784), dtype=np.float32)
        np.testing.assert_array_equal(self.client.predict("py-copy", x).probabilities,
                                      self.client.predict("py-small", x, version=1).probabilities)
        model = self.client.set_alias("py-copy", "production", imported.version)
        self.assertEqual(model.aliases, {"production": imported.version})
        self.assertIn("py-copy", [m.name for m in self.client.models()])
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.delete_version("py-copy", imported.version)  # the alias protects it
        self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.predict("no-such-model", x)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(ValueError):
            self.client.predict("py-small", x.ravel())
        onnx = self.client.export("py-small", version=1, format="onnx", fold_batchnorm=True)
        self.assertEqual(onnx[:2], b"\x08\x08")  # ModelProto field 1 (ir_version) = 8
        self.assertIn(b"probabilities", onnx)
        self.assertNotIn(b"BatchNormalization", onnx)
        self.assertIn(b"BatchNormalization", self.client.export("py-small", format="onnx"))

    def test_figures(self):
        with tempfile.TemporaryDirectory() as out:
            argv = ["--server", self.server.grpc_address, "--out", out, "--epochs", "2",
                    "--limit", "200"]
            self.assertEqual(figures.main(argv), 0)
            names = sorted(os.listdir(out))
            self.assertEqual(names, ["batchnorm_std_0.0001.png", "batchnorm_std_0.05.png",
                                     "batchnorm_std_1.png", "weight_scale_grid.png"])
            single = tuple(int(v * figures.DPI) for v in figures.SINGLE_SIZE)
            grid = tuple(int(v * figures.DPI) for v in figures.GRID_SIZE)
            for name in names:
                path = os.path.join(out, name)
                self.assertGreater(os.path.getsize(path), 10000, name)
                self.assertEqual(png_size(path), grid if name.startswith("weight") else single)
            # A second run reuses the 34 succeeded jobs instead of training again.
            before = len(self.client.jobs())
            self.assertEqual(figures.main(argv), 0)
            self.assertEqual(len(self.client.jobs()), before)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
