#!/usr/bin/env bash
# Compile the etcd v3 API subset in gce_plugin/store/etcdpb/*.proto next to itself: *_pb2.py with
# grpcio-tools' protoc and *_pb2.pyi with mypy-protobuf (both pinned in pyproject.toml, as for gen/).
# Kept apart from scripts/generate.sh and gen/ on purpose: these are etcd's messages, not Gloo's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(command -v "${PYTHON:-python}") || { echo "generate-etcd.sh: no python interpreter" >&2; exit 1; }
plugin=$(command -v protoc-gen-mypy || true)
if [[ -z "$plugin" ]]; then
    echo "generate-etcd.sh: protoc-gen-mypy not on PATH; run: pip install -e '.[dev]'" >&2
    exit 1
fi
out=gce_plugin/store/etcdpb
rm -f "$out"/*_pb2.py "$out"/*_pb2.pyi
"$PYTHON" -m grpc_tools.protoc -I. \
    --plugin=protoc-gen-mypy="$plugin" \
    --python_out=. --mypy_out=quiet:. \
    "$out/kv.proto" "$out/rpc.proto"
echo "generated $(ls "$out"/*_pb2.py | wc -l) etcd API modules into $out/"
