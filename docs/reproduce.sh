#!/usr/bin/env bash
# Rerun every entry of docs/reproductions.md (each resumes where it stopped), then rebuild the page
# and its figures from the runs' results. On 2 CPU cores the LeNet run at the paper's budget takes
# a few hours; the others minutes. Usage: bash docs/reproduce.sh [STORE] (default runs/reproduce);
# MNIST from $LOTTERY_DATA_DIR or the loader's usual sources.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:-runs/reproduce}
run() { lottery run "$@" --store "$store" --quiet > /dev/null; }
run mlp-mnist1d-all
run cnn-mnist1d
run cnn-mnist
run lenet-mnist --levels 15 --replicates 3 --branches imp,reinit,random_prune
python docs/make_reproductions.py --store "$store"
