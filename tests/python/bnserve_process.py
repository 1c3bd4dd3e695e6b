"""A bnserve server process for the Python checks.

    with BnserveProcess(binary, data_dir, extra_args=["--default_model=digits"]) as server:
        channel = grpc.insecure_channel(server.grpc_address)

Starts the binary on free loopback ports (gRPC, and HTTP when the binary has
--http_listen) with a registry in a fresh temporary directory, reads the
bound ports from its log, and stops it (SIGTERM, then SIGKILL) on exit.
"""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time


class BnserveProcess:
    def __init__(self, binary, data_dir, extra_args=(), start_timeout=60):
        self.binary = binary
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.grpc_address = None
        self.http_address = None
        self.log_lines = []
        self._process = None
        self._tmp = None
        self._seen = threading.Condition()

    def _has_flag(self, flag):
        help_text = subprocess.run([self.binary, "--helpfull"], capture_output=True,
                                   text=True).stdout
        return ("--" + flag) in help_text

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="bnserve-python-")
        args = [self.binary, "--listen=127.0.0.1:0",
                "--registry=" + os.path.join(self._tmp.name, "registry.db"),
                "--data_dir=" + self.data_dir]
        if self._has_flag("http_listen"):
            args.append("--http_listen=127.0.0.1:0")
        args += self.extra_args
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        with self._seen:
            while self.grpc_address is None:
                if self._process.poll() is not None:
                    raise RuntimeError("bnserve exited at start:\n" + "".join(self.log_lines))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError("bnserve did not report its port:\n"
                                       + "".join(self.log_lines))
                self._seen.wait(min(remaining, 0.2))
        return self

    def _read_log(self):
        for line in self._process.stdout:
            with self._seen:
                self.log_lines.append(line)
                grpc_match = re.search(r"bnserve listening on (\S+:\d+)", line)
                if grpc_match:
                    self.grpc_address = grpc_match.group(1)
                http_match = re.search(r"HTTP .*?on (\S+:\d+)", line)
                if http_match:
                    self.http_address = http_match.group(1)
                self._seen.notify_all()

    def __exit__(self, *exc):
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._tmp.cleanup()
        return False
