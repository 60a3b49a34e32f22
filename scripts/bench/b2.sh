#!/usr/bin/env bash
# B2 throughput: the criterion bench (parse, parse+validate, parse+split on a ~100 MB synthetic
# OCT single file) and, as the ceiling, `cat FILE > /dev/null` of the same file from the page
# cache. Usage: scripts/bench/b2.sh [MB]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
MB="${1:-100}"
FILE="$(mktemp /tmp/svoct-b2-bench.XXXXXX)"
trap 'rm -f "$FILE"' EXIT
B2_BENCH_MB="$MB" B2_BENCH_WRITE="$FILE" cargo bench -p svoct-formats --bench b2 2>&1 |
    grep -E 'bench file|^b2/|thrpt'
SIZE=$(stat -c %s "$FILE")
cat "$FILE" > /dev/null # warm the page cache
best=""
for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    cat "$FILE" > /dev/null
    end=$(date +%s%N)
    ns=$((end - start))
    if [ -z "$best" ] || [ "$ns" -lt "$best" ]; then best=$ns; fi
done
python3 -c "import sys; s,n=int(sys.argv[1]),int(sys.argv[2]); print(f'cat > /dev/null: {s} bytes in {n/1e6:.1f} ms = {s/n*1e9/2**30:.2f} GiB/s (best of 5)')" "$SIZE" "$best"
