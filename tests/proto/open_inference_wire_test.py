#!/usr/bin/env python3
"""proto/inference/open_inference_grpc.proto is wire-compatible with the
published Open Inference Protocol.

The project's file is written for bnserve (its own comments); the
specification's is not part of this repository. What must agree is the wire
surface (wire_surface.py): package, service, methods, messages, field names,
numbers, types and labels. PUBLISHED is that surface's SHA-256 for
specification/protocol/open_inference_grpc.proto of
github.com/kserve/open-inference-protocol at commit d49cc23 (2024), computed
with `wire_surface.py /usr/bin/protoc open_inference_grpc.proto`.

The test also changes one field number of a copy and checks that the hash
moves, so that it cannot pass by hashing too little.

usage: open_inference_wire_test.py PROTOC PROTO_DIR
"""
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_surface import wire_surface  # noqa: E402

PUBLISHED = "c21a64412728eb52c2fd49c1297e6547ec27a25a6afb8e6cbc9ee65caeefd74d"
PROTOC = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/protoc"
PROTO_DIR = sys.argv[2] if len(sys.argv) > 2 else "proto"
FILE = os.path.join(PROTO_DIR, "inference", "open_inference_grpc.proto")


class WireSurfaceTest(unittest.TestCase):
    def test_matches_the_published_protocol(self):
        self.assertEqual(wire_surface(PROTOC, FILE, PROTO_DIR), PUBLISHED)

    def test_a_changed_field_number_changes_the_surface(self):
        with open(FILE) as f:
            text = f.read()
        changed, count = re.subn(r"repeated bytes raw_input_contents = 7;",
                                 "repeated bytes raw_input_contents = 8;", text)
        self.assertEqual(count, 1)
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "inference"))
            copy = os.path.join(tmp, "inference", "open_inference_grpc.proto")
            with open(copy, "w") as f:
                f.write(changed)
            self.assertNotEqual(wire_surface(PROTOC, copy, tmp), PUBLISHED)
            # Comments alone do not move it.
            with open(copy, "w") as f:
                f.write("// another comment\n" + text)
            self.assertEqual(wire_surface(PROTOC, copy, tmp), PUBLISHED)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
