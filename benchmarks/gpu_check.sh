#!/usr/bin/env bash
# The whole check on a machine with a CUDA GPU, in one go and within a time budget: the CUDA
# tests, the full test suite with CUDA present, every benchmark on the GPU, then the main job.
# Each step's log goes to OUTDIR/NAME.log; a short table of exit codes and times ends the output.
#
#   bash benchmarks/gpu_check.sh [OUTDIR] [BUDGET_SECONDS]    (from the repository root)
#
# Steps run in order of what they tell; one that would start with too little of the budget left
# is skipped, and one that outruns its own limit is stopped (exit 124), so the table always comes.
set -u -o pipefail
out=${1:-gpu-check}
budget=${2:-480}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
summary=()

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 left=$((budget - SECONDS)) start=$SECONDS rc
  shift 2
  if ((left < 20)); then summary+=("$(printf '%-12s skipped (budget spent)' "$name")"); return; fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit} s)"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-4}" "$out/$name.log"
  summary+=("$(printf '%-12s exit %3d  %4d s' "$name" "$rc" $((SECONDS - start)))")
}

step env 30 bash -c 'nvidia-smi -L; python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name())"'
step test_cuda 90 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
parallel=()
python3 -c "import xdist" 2>/dev/null && parallel=(-n 8)  # pytest-xdist where installed
step tests 150 python3 -m pytest -q -p no:cacheprovider -rs -x "${parallel[@]}" tests
step gpu 60 python3 benchmarks/gpu.py
step replicates 60 python3 benchmarks/replicates.py
step limit 60 python3 benchmarks/limit.py
step naive 40 python3 benchmarks/naive.py
step level 60 python3 benchmarks/level.py
step paper 40 python3 benchmarks/paper.py
step main_job 400 python3 -m lottery.cli run lenet-mnist-quick --store "$out/runs"

echo "== summary (budget ${budget} s, used ${SECONDS} s)"
printf '%s\n' "${summary[@]}"
grep -h "^RESULT" "$out"/*.log | sed 's/^/  /'
