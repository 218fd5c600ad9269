#!/usr/bin/env bash
# The first GPU session in one command, at most 10 minutes on one GPU: the CUDA-only tests
# and the generator benchmarks (fp32, bf16 + channels_last, torch.compile; ours against
# the reference; training step, inference, peak memory, samples/s), written as
# OUT/gpu_check.json and OUT/gpu_check.md (rewritten after every case).
#
#   scripts/gpu_check.sh [OUT] [--device cuda|cuda:N|cpu] [--tiny] [--budget-s S] ...
#   scripts/gpu_check.sh                              # OUT = gpu-check/
#   scripts/gpu_check.sh /tmp/dry --device cpu --tiny # dry run (the test suite runs it)
#
# Options are benchmarks/gpu_check.py's (--help). Exit status: 0 all ran and passed, 1 a
# test or a case failed (each named in the files), 2 bad arguments, 124 killed at 10 min
# (the files hold what ran). PYTHON picks the interpreter (default: python).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout --kill-after=15 600 "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
