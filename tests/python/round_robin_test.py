#!/usr/bin/env python3
"""The Python client's several targets (Client(target=[...]), a
comma-separated string, dns:///) against two real bnserve processes, each
with its own registry: calls are balanced round-robin, which each server's
Predict counter on /metrics shows; and the bad lists grpc_target refuses.

usage: round_robin_test.py BNSERVE PYTHON_PACKAGE_DIR DATA_DIR
"""
import os
import sys
import unittest
import urllib.request

import numpy as np

BNSERVE, PACKAGE_DIR, DATA_DIR = sys.argv[1:4]
sys.path.insert(0, PACKAGE_DIR)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnserve import Client  # noqa: E402
from bnserve.client import grpc_target  # noqa: E402
from bnserve_process import BnserveProcess  # noqa: E402


def predict_calls_served(server):
    """Predict calls the server has finished (any status), from /metrics."""
    with urllib.request.urlopen("http://%s/metrics" % server.http_address, timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("bnserve_grpc_server_handled_total{") and \
                'grpc_method="Predict"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


class RoundRobinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = [BnserveProcess(BNSERVE, DATA_DIR).__enter__() for _ in range(2)]
        for server in cls.servers:
            assert server.http_address, "bnserve printed no HTTP address"
            with Client(server.grpc_address, timeout=120) as client:
                job = client.train("rr", limit=300, epochs=1, hidden_sizes=(16,))
                assert client.wait(job.job_id).state == "SUCCEEDED"

    @classmethod
    def tearDownClass(cls):
        for server in cls.servers:
            server.__exit__(None, None, None)

    def spread(self, target, calls=30):
        before = [predict_calls_served(s) for s in self.servers]
        x = np.zeros((2, 784), dtype=np.float32)
        with Client(target, timeout=30) as client:
            for _ in range(calls):
                self.assertEqual(len(client.predict("rr", x).classes), 2)
        return [predict_calls_served(s) - b for s, b in zip(self.servers, before)]

    def test_a_list_of_targets_spreads_the_calls(self):
        served = self.spread([s.grpc_address for s in self.servers])
        self.assertEqual(sum(served), 30, served)
        # round_robin: about 15 each; pick_first would give 30 and 0.
        self.assertTrue(all(n >= 7 for n in served), served)

    def test_a_comma_separated_string_spreads_the_calls(self):
        served = self.spread(",".join(s.grpc_address for s in self.servers))
        self.assertTrue(all(n >= 7 for n in served), served)

    def test_a_dns_target_reaches_the_server(self):
        port = self.servers[1].grpc_address.rsplit(":", 1)[1]
        served = self.spread("dns:///localhost:%s" % port, calls=4)
        self.assertEqual(served[1], 4, served)

    def test_grpc_target(self):
        self.assertEqual(grpc_target("127.0.0.1:1"), "127.0.0.1:1")
        self.assertEqual(grpc_target(["127.0.0.1:1", "localhost:2"]), "ipv4:127.0.0.1:1,127.0.0.1:2")
        self.assertEqual(grpc_target("[::1]:1,[::2]:2"), "ipv6:[::1]:1,[::2]:2")
        self.assertEqual(grpc_target(["bnserve:50051"]), "bnserve:50051")
        self.assertEqual(grpc_target("dns:///bnserve-grpc.ml.svc.cluster.local:50051"),
                         "dns:///bnserve-grpc.ml.svc.cluster.local:50051")
        for bad, says in ((["a.example:1", "b.example:1"], "dns:///"),
                          ("127.0.0.1:1,127.0.0.1", "port"),
                          ("127.0.0.1:1,[::1]:2", "mixes"), ([], "empty"), ("", "empty")):
            with self.assertRaises(ValueError) as caught:
                grpc_target(bad)
            self.assertIn(says, str(caught.exception))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
