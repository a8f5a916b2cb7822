"""Regenerate the Python protobuf and gRPC code from protos/.

Usage: python scripts/genproto.py [OUT_DIR]

Writes sutradhar/v1/*_pb2.py, *_pb2.pyi and *_pb2_grpc.py under OUT_DIR
(default: sdk/). The staleness test calls this into a temporary directory and
compares the result with the committed files.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc over every .proto file and return the generated files."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    gen = out_dir / "sutradhar" / "v1"
    (gen / "__init__.py").write_text('"""Generated protobuf and gRPC code. Do not edit: run `make proto`."""\n')
    return sorted(gen.iterdir())


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "sdk"
    for path in generate(target):
        print(path.relative_to(target))
