#!/usr/bin/env bash
# Whole `wormclean mask` job at its defaults (CLI start to file written) in two source trees, alternated, on one
# video: e.g. the tree before a change against this one.
#
#   git worktree add /tmp/before dc1a014       # the last commit before the fused background
#   bash benchmarks/compare_job_time.sh /tmp/before . scratch/bench_mask/speed_2048_300.mp4
set -euo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); video=$(realpath "$3"); rounds=${4:-2}
python=${PYTHON:-$after/.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-40s %s\n' "tree" "seconds"
for round in $(seq "$rounds"); do
  for tree in "$before" "$after"; do
    start=$(date +%s.%N)
    (cd "$tree" && PYTHONPATH="$tree" "$python" -c "from wormclean.cli import cli; cli()" \
      mask "$video" -o "$out/out.h5" -q --device cpu)
    printf '%-40s %.1f\n' "$tree (round $round)" "$(echo "$(date +%s.%N) - $start" | bc)"
    rm -f "$out/out.h5"
  done
done
