# Shared set-up for tools/run and tools/test: a .venv with the project installed.
# Sourced, not run. Needs python3 (3.11+) with venv; nothing else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PY" -m venv "$ROOT/.venv" || {
        echo "python3 -m venv failed: install Debian's python3-venv (apt-get install python3-venv)" >&2
        exit 1
    }
fi
VENV_PY="$ROOT/.venv/bin/python"
# install only when the project's metadata changed since the last install
# (an install with the test extras includes everything tools/run needs)
stamp="$ROOT/.venv/.installed-$1"
for done_stamp in "$stamp" "$ROOT/.venv/.installed-test"; do
    if [ -f "$done_stamp" ] && [ ! "$ROOT/pyproject.toml" -nt "$done_stamp" ]; then
        stamp="$done_stamp"
    fi
done
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$VENV_PY" -m pip install --quiet --upgrade pip
    "$VENV_PY" -m pip install --quiet -e "$ROOT$2"
    touch "$stamp"
fi
