#!/usr/bin/env bash
# The project's one test command (README, `make test` and CI all run this).
# pytest's exit code 5 ("no tests collected") is a failure here too: a suite that silently
# collects nothing must not pass.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
"$VENV/bin/python" -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "test.sh: pytest collected no tests" >&2
    exit 1
fi
exit $rc
