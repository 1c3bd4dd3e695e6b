#!/usr/bin/env python3
"""TLS, tokens and SIGHUP against a real bnserve process, through the Python
client (Client(token=, tls_ca=, tls_cert=, tls_key=)).

Certificates come from the openssl CLI, made here. The server runs with
--tls_cert/--tls_key/--tls_client_ca and --auth_tokens; a SIGHUP after the
token file changed swaps the accepted tokens, and a broken file keeps them.

usage: security_test.py BNSERVE PYTHON_PACKAGE_DIR DATA_DIR
"""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import unittest

import grpc
import numpy as np

BNSERVE, PACKAGE_DIR, DATA_DIR = sys.argv[1:4]
sys.path.insert(0, PACKAGE_DIR)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnserve import Client  # noqa: E402
from bnserve_process import BnserveProcess  # noqa: E402


def sha256(token):
    return hashlib.sha256(token.encode()).hexdigest()


def make_certificates(d):
    """A CA, a server certificate for 127.0.0.1/localhost and a client one."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", d + "/ca.key", "-out", d + "/ca.pem")
    with open(d + "/server.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    with open(d + "/client.ext", "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "server.ext"), ("client", "client.ext")):
        run("req", *ec, "-subj", "/CN=" + name, "-keyout", "%s/%s.key" % (d, name),
            "-out", "%s/%s.csr" % (d, name))
        run("x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", d + "/ca.pem",
            "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "%s/%s" % (d, ext), "-out", "%s/%s.pem" % (d, name))


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="bnserve-security-")
        d = cls.tmp.name
        make_certificates(d)
        cls.tokens = d + "/tokens"
        with open(cls.tokens, "w") as f:
            f.write("# name role sha256\nviewer1 viewer %s\ntrainer1 trainer %s\n"
                    "admin1 admin %s\n" % (sha256("v-tok"), sha256("t-tok"), sha256("a-tok")))
        cls.server = BnserveProcess(BNSERVE, DATA_DIR, extra_args=[
            "--tls_cert=" + d + "/server.pem", "--tls_key=" + d + "/server.key",
            "--tls_client_ca=" + d + "/ca.pem", "--auth_tokens=" + cls.tokens])
        cls.server.__enter__()
        cls.tls = dict(tls_ca=d + "/ca.pem", tls_cert=d + "/client.pem",
                       tls_key=d + "/client.key")

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        cls.tmp.cleanup()

    def client(self, token):
        return Client(self.server.grpc_address, timeout=60, token=token, **self.tls)

    def code(self, call):
        with self.assertRaises(grpc.RpcError) as caught:
            call()
        return caught.exception.code()

    def test_roles_over_mutual_tls(self):
        with self.client("t-tok") as trainer:
            job = trainer.train("secure", limit=200, epochs=1, hidden_sizes=(20,))
            self.assertEqual(trainer.wait(job.job_id).state, "SUCCEEDED")
        x = np.zeros((2, 784), dtype=np.float32)
        with self.client("v-tok") as viewer:
            self.assertEqual(len(viewer.predict("secure", x).classes), 2)
            self.assertEqual(self.code(lambda: viewer.set_alias("secure", "production", 1)),
                             grpc.StatusCode.PERMISSION_DENIED)
            self.assertEqual(self.code(lambda: viewer.delete_version("secure", 1)),
                             grpc.StatusCode.PERMISSION_DENIED)
        with self.client("a-tok") as admin:
            self.assertEqual(admin.set_alias("secure", "production", 1).name, "secure")
        with self.client(None) as anonymous:
            self.assertEqual(self.code(lambda: anonymous.models()),
                             grpc.StatusCode.UNAUTHENTICATED)
        self.server.wait_for_log(r"audit: caller=admin1 peer=\S+ "
                                 r"method=/bnserve.v1.ModelRegistry/SetAlias model=\"secure\" "
                                 r"alias=\"production\" version=1 result=OK")

    def test_a_replica_list_keeps_tls_and_the_token(self):
        # Two entries (the same server twice): a multi-address ipv4: target,
        # whose certificate check needs the first address as the authority.
        with Client([self.server.grpc_address] * 2, timeout=30, token="v-tok",
                    **self.tls) as replicas:
            for _ in range(4):
                self.assertIsInstance(replicas.models(), list)
        with Client([self.server.grpc_address] * 2, timeout=30, token=None,
                    **self.tls) as anonymous:
            self.assertEqual(self.code(lambda: anonymous.models()),
                             grpc.StatusCode.UNAUTHENTICATED)

    def test_without_a_client_certificate_or_tls_nothing_connects(self):
        no_cert = Client(self.server.grpc_address, timeout=10, token="v-tok",
                         tls_ca=self.tls["tls_ca"])
        self.assertEqual(self.code(lambda: no_cert.models()), grpc.StatusCode.UNAVAILABLE)
        plaintext = Client(self.server.grpc_address, timeout=10, token="v-tok")
        self.assertEqual(self.code(lambda: plaintext.models()), grpc.StatusCode.UNAVAILABLE)

    def test_sighup_reloads_the_tokens(self):
        with open(self.tokens) as f:
            original = f.read()
        try:
            with open(self.tokens, "w") as f:
                f.write(original + "newbie viewer %s\n" % sha256("n-tok"))
            self.server.send_signal(signal.SIGHUP)
            self.server.wait_for_log(r"reloaded 4 token\(s\)")
            with self.client("n-tok") as newbie:
                newbie.models()
            # A broken file: logged, and the tokens in use stay.
            with open(self.tokens, "w") as f:
                f.write("newbie viewer n-tok-in-plain-text\n")
            self.server.send_signal(signal.SIGHUP)
            self.server.wait_for_log(r"SIGHUP: tokens not reloaded")
            with self.client("n-tok") as newbie:
                newbie.models()
        finally:
            with open(self.tokens, "w") as f:
                f.write(original)
            self.server.send_signal(signal.SIGHUP)
            self.server.wait_for_log(r"reloaded 3 token\(s\)")
        with self.client("n-tok") as newbie:
            self.assertEqual(self.code(lambda: newbie.models()),
                             grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
