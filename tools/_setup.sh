# Shared set-up for tools/run and tools/test: a .venv with the project installed.
# Sourced, not run. Needs python3 (3.11+) with venv; nothing else.
# Every version installed, pip and the build backend included, is the one in
# constraints.txt (refreshed by tools/lock).
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
# install only when the project's metadata or the pins changed since the last
# install (an install with the test extras includes everything tools/run needs)
stamp="$ROOT/.venv/.installed-$1"
fresh() { [ -f "$1" ] && [ ! "$ROOT/pyproject.toml" -nt "$1" ] && [ ! "$ROOT/constraints.txt" -nt "$1" ]; }
for done_stamp in "$stamp" "$ROOT/.venv/.installed-test"; do
    if fresh "$done_stamp"; then
        stamp="$done_stamp"
    fi
done
if ! fresh "$stamp" && [ -L "$ROOT/.venv" ]; then
    # a venv shared with another checkout (a git worktree's link): installing this
    # checkout into it would re-point the editable install for every checkout
    echo "note: .venv links to $(readlink -f "$ROOT/.venv"), a shared venv: not reinstalling" \
         "this checkout into it (update it from its own checkout)" >&2
elif ! fresh "$stamp"; then
    pins=(--constraint "$ROOT/constraints.txt")
    "$VENV_PY" -m pip install --quiet "${pins[@]}" --upgrade pip
    "$VENV_PY" -m pip install --quiet "${pins[@]}" --build-constraint "$ROOT/constraints.txt" \
        -e "$ROOT$2"
    touch "$stamp"
fi
