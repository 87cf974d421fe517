#!/usr/bin/env python3
"""Generates the Python stubs of numbers.v1 from ../../proto into generated/ (not committed).

The proto package is `numbers`, which is also a module of Python's standard library: the
generated modules' absolute imports (`from numbers.v1 import ...`) would find the standard
library's `numbers`. So they are rewritten to relative imports, and the stubs are imported as
`generated.numbers.v1`. google.rpc (status, error details) comes from googleapis-common-protos.
"""

import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
OUT = HERE / "generated"


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    sources = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "numbers" / "v1").glob("*.proto"))
    # grpc_tools ships the well-known types (google/protobuf/*.proto); add its include path.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--python_out={OUT}",
            f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}",
            *sources,
        ]
    )
    if status != 0:
        print("protoc failed", file=sys.stderr)
        return status
    package = OUT / "numbers" / "v1"
    for module in package.glob("*.py*"):
        text = module.read_text()
        module.write_text(re.sub(r"^from numbers\.v1 import ", "from . import ", text, flags=re.M))
    for directory in (OUT, OUT / "numbers", package):
        (directory / "__init__.py").touch()
    print(f"generated {len(sources)} files into {OUT.relative_to(HERE)}/numbers/v1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
