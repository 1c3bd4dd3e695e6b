#!/usr/bin/env python3
"""Prints the SHA-256 of a .proto file's wire surface.

The wire surface is what a peer on the wire depends on: the package, the
services with their methods and message types, and every message with its
fields' names, numbers, types, labels and oneofs (nested messages and map
entries included). Comments, the file's name, file options and json names
are left out, so two files written independently that are wire-compatible
give the same hash.

usage: wire_surface.py PROTOC FILE.proto [IMPORT_DIR]
Needs Debian's python3-protobuf (run it with /usr/bin/python3).
"""
import hashlib
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2


def wire_surface(protoc, proto_file, import_dir):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run([protoc, "-I", import_dir, "--descriptor_set_out=" + out,
                        os.path.relpath(proto_file, import_dir)], check=True)
        files = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            files.ParseFromString(f.read())
    (file,) = files.file
    file.ClearField("name")
    file.ClearField("options")
    file.ClearField("source_code_info")

    def strip(message):
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    for message in file.message_type:
        strip(message)
    return hashlib.sha256(file.SerializeToString(deterministic=True)).hexdigest()


def main():
    protoc, proto_file = sys.argv[1], sys.argv[2]
    import_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.dirname(proto_file)
    print(wire_surface(protoc, proto_file, import_dir))


if __name__ == "__main__":
    main()
