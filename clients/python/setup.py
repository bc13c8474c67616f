"""Build step: generates the tandem.v1 stubs from the repository's proto/ with grpcio-tools.

The stubs land in the built package only (tandem_client/_gen/...), never in the source tree. The
proto directory is ../../proto (this package lives in clients/python of the Tandem repository), or
$TANDEM_PROTO_DIR. The protobuf runtime the package requires is pinned to at least the version the
stubs were generated with (generated code refuses an older runtime).
"""

import os
import pathlib
import re

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTOS = ["tandem/v1/tandem.proto"]


def proto_dir():
    d = pathlib.Path(os.environ.get("TANDEM_PROTO_DIR", HERE / ".." / ".." / "proto")).resolve()
    if not (d / PROTOS[0]).is_file():
        raise RuntimeError(
            f"tandem-client: {d / PROTOS[0]} not found; build from a Tandem checkout "
            "(pip install ./clients/python) or set TANDEM_PROTO_DIR to its proto/ directory")
    return d


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        from grpc_tools import protoc  # a build requirement (pyproject.toml)
        import grpc_tools

        out = pathlib.Path(self.build_lib) / "tandem_client" / "_gen"
        out.mkdir(parents=True, exist_ok=True)
        src = proto_dir()
        include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        for proto in PROTOS:
            rc = protoc.main(["grpc_tools.protoc", f"-I{src}", f"-I{include}",
                              f"--python_out={out}", f"--grpc_python_out={out}", str(src / proto)])
            if rc != 0:
                raise RuntimeError(f"tandem-client: protoc failed on {proto} (exit {rc})")
        # Packages for the generated tree, and imports made relative to tandem_client._gen.
        for d in [out] + [p for p in out.rglob("*") if p.is_dir()]:
            (d / "__init__.py").touch()
        for f in out.rglob("*_pb2*.py"):
            text = f.read_text()
            text = re.sub(r"^from tandem\.", "from tandem_client._gen.tandem.", text, flags=re.M)
            f.write_text(text)


def dependencies():
    try:
        from google.protobuf import __version__ as pb
    except ImportError:  # metadata-only build without the build requirements
        return ["grpcio>=1.60", "protobuf>=4.21"]
    major = int(pb.split(".")[0])
    return ["grpcio>=1.60", f"protobuf>={pb},<{major + 1}"]


setup(cmdclass={"build_py": BuildWithStubs}, install_requires=dependencies())
