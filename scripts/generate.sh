#!/usr/bin/env bash
# Compile proto/ into gen/: *_pb2.py with grpcio-tools' protoc and *_pb2.pyi with mypy-protobuf.
# Idempotent and reproducible: gen/ is rebuilt from scratch, inputs are passed in a fixed order, and
# the generators are pinned in pyproject.toml (grpcio-tools, mypy-protobuf).
set -euo pipefail
cd "$(dirname "$0")/.."

# Absolute, because protoc runs from inside proto/.
PYTHON=$(command -v "${PYTHON:-python}") || { echo "generate.sh: no python interpreter" >&2; exit 1; }
want_tools=$(sed -n 's/.*"grpcio-tools==\([^"]*\)".*/\1/p' pyproject.toml)
have_tools=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)
if [[ "$have_tools" != "$want_tools" ]]; then
    echo "generate.sh: grpcio-tools $want_tools is required (found '${have_tools:-none}'); run: pip install -e '.[dev]'" >&2
    exit 1
fi
plugin=$(command -v protoc-gen-mypy || true)
if [[ -z "$plugin" ]]; then
    echo "generate.sh: protoc-gen-mypy not on PATH; run: pip install -e '.[dev]'" >&2
    exit 1
fi
wkt=$("$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

# Everything generated lives under one project-owned top-level package, so installing the wheel next
# to anything else (PyGithub's `github`, another `gogoproto`) shadows nothing. The proto files and
# their import paths are unchanged (Go Gloo compatibility); only the Python module paths move.
PKG=gce_plugin_gen
rm -rf gen
mkdir -p "gen/$PKG"
# Relative paths, C-locale order: the output must not depend on where or how the tree was checked out.
mapfile -t protos < <(cd proto && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
(
    cd proto
    "$PYTHON" -m grpc_tools.protoc \
        -I. -I"$wkt" \
        --plugin=protoc-gen-mypy="$plugin" \
        --python_out="../gen/$PKG" --mypy_out="quiet:../gen/$PKG" \
        "${protos[@]}"
)
# Rewrite the generated absolute imports (and the module names the descriptors register) to live
# under $PKG. Only these line shapes are touched: serialized descriptors keep their proto names.
find "gen/$PKG" \( -name '*_pb2.py' -o -name '*_pb2.pyi' \) -print0 | LC_ALL=C sort -z | xargs -0 sed -i -E \
    -e "s/^from (github\.com\.|gogoproto( |\.))/from $PKG.\1/" \
    -e "s/^import (github\.com\.|gogoproto\.)/import $PKG.\1/" \
    -e "s/BuildTopDescriptorsAndMessages\(DESCRIPTOR, '(github\.com\.|gogoproto\.)/BuildTopDescriptorsAndMessages(DESCRIPTOR, '$PKG.\1/"
if grep -rlE "^(from|import) (github\.com|gogoproto)[ .]" "gen/$PKG" >/dev/null; then
    echo "generate.sh: an import outside $PKG survived the rewrite" >&2
    exit 1
fi
cat > "gen/$PKG/__init__.py" <<'PY'
"""Generated protobuf modules (``make generated-code``; do not edit), at Gloo's proto import paths
under this one package: ``gce_plugin_gen.github.com.solo_io...``. Use ``gce_plugin.api``."""
PY
echo "generated $(find gen -name '*_pb2.py' | wc -l) modules into gen/$PKG/"
