#!/usr/bin/env bash
# fxrep's GPU benchmark in one command: check the device, then measure and write every figure.
#
#   bash benchmarks/gpu/run.sh [--quick | --dry-run] [more gpu_bench.py options, see --help]
#
# Results go to $OUT when it is set (the device tool's output folder), else to benchmarks/results/
# (a dry run: a temporary folder). Needs only this checkout and a Python with torch and networkx:
# if fxrep does not import from here, the checkout is installed offline first (or, if that fails,
# imported from the checkout without installing). Exit codes: 0 every figure measured, 1 some
# configuration failed or was skipped for time (the rest is still written), 2 cannot run here
# (one line on stderr says why).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 2
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "gpu_bench: cannot run: no '$python' on PATH (set PYTHON to a Python with torch)" >&2
    exit 2
fi
export PYTHONUNBUFFERED=1

if ! reason="$("$python" benchmarks/gpu/preflight.py --import-only 2>&1)"; then
    # fxrep.passes lives in passes/ (pyproject's package-dir), so PYTHONPATH=. is not enough. An
    # offline editable install also registers the "fxrep" torch.compile backend; if it fails,
    # gpu_bench.py imports fxrep from the checkout itself (preflight.use_checkout).
    log="$(mktemp "${TMPDIR:-/tmp}/fxrep_gpu_install.XXXXXX")"
    echo "gpu_bench: ${reason#gpu_bench: cannot run: }"
    echo "gpu_bench: installing this checkout offline (log: $log)"
    if ! "$python" -m pip install --no-deps --no-build-isolation --no-index -q -e . >"$log" 2>&1; then
        echo "gpu_bench: the offline install failed ($(grep -m 1 -E 'Error|error:' "$log" || tail -n 1 "$log"));" \
             "importing fxrep from the checkout instead"
    fi
fi
exec "$python" benchmarks/gpu/gpu_bench.py "$@"
