#!/usr/bin/env bash
# `svoct inspect` of a large NOEMIE return, as whole processes, against a plain Python reader
# of the same file in the same run.
#
# The return is generated here by an independent Python writer (not by the project's builder):
# reference 580, packaging (a) (4-digit length + CRLF lines of at most 9 999 bytes), PAYMENTS
# payments (default 80 000, ~36 MB), each a 040/071/081 head, one invoice 102 with its AMO 198
# and AMC 199 parts, a 294 reject line on every other invoice and a 295 comment on every fourth,
# the 990 closing the invoice and the one closing the payment, then the 999 trailer (physical
# records, amount). Counts and amounts are computed by the writer as it goes.
#
# Runs (best of RUNS, default 3, page cache warm):
#   svoct inspect FILE > /dev/null          (human report)
#   svoct inspect FILE --json > /dev/null
#   python3 reader: split on `@`, count entities, check the trailer, sum the payments
# and prints wall time and peak RSS (`/usr/bin/time -v`) of each, and the ratios.
#
# Usage: scripts/bench/inspect.sh [PAYMENTS] [RUNS]
#   SVOCT=path/to/svoct to time another binary (default: target/release/svoct, built here).
#   KEEP=path keeps a copy of the generated return there (mode 0600).
set -euo pipefail
cd "$(dirname "$0")/../.."
PAYMENTS="${1:-80000}"
RUNS="${2:-3}"
WORK="$(mktemp -d /tmp/svoct-inspect-bench.XXXXXX)"
chmod 700 "$WORK"
trap 'rm -rf "$WORK"' EXIT
FILE="$WORK/rsp580"
if [ -z "${SVOCT:-}" ]; then
    cargo build --release --locked -p svoct --bin svoct >&2
    SVOCT=target/release/svoct
fi
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

python3 - "$FILE" "$PAYMENTS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
def sp(k): return ' ' * k
def ctl(level, count, amount):
    return f"990{level}{sp(17)}{count:08d}{abs(amount):011d}{'N' if amount < 0 else 'P'}@"
ents, total = [], 0
for i in range(n):
    amo = 1000 + i % 5000
    amc = 300 if i % 3 == 0 else 0
    inv = [
        f"10203{i % 10**9:09d}{sp(6)}{i % 1000:03d}261120F261119{sp(3)}@",
        f"19804{amo + 500:08d}P{amo:08d}P@",
        f"19904{amc + 200:08d}{'P' if amc else 'R'}{amc:08d}P{i % 10**10:010d}{sp(15)}@",
    ]
    if i % 2 == 0:
        inv.append(f"29404A123{'PART COMPLEMENTAIRE REJETEE':<86}FC{sp(5)}{'0' * 20}{sp(30)}@")
    if i % 4 == 0:
        inv.append(f"29504 {'COMMENTAIRE DE LA CAISSE':<128}@")
    paid = amo + amc
    ents += [
        f"04002{100000000 + i % 900000000:015d}@",
        f"07102261125{'VIREMENT CPAM 75 REF %06d' % (i % 10**6):<32}{sp(32)}{'CPAM75':<10}@",
        f"0810201{sp(14)}@",
        *inv,
        ctl("03", len(inv) - 1, paid),  # closes the invoice: its parts and lines (level 04)
        ctl("02", 1, paid),  # closes the payment: its one invoice (level 03)
    ]
    total += paid
lines, cur = [], []
size = 0
for e in ents:
    if size + len(e) > 9999 and cur:
        lines.append(''.join(cur)); cur, size = [], 0
    cur.append(e); size += len(e)
if cur: lines.append(''.join(cur))
head = ("000CP00000000000751SIMU  TP00000123456789" + sp(8) + "R00001" + "261126" + "580 "
        + sp(4) + "U" + "T" + sp(11) + "000" + sp(43))
trail = ("999CP00000000000751SIMU  TP00000123456789" + sp(8) + "R00001" + f"{len(lines) + 2:08d}"
         + "T" + sp(18) + "000" + f"{total:011d}" + "P" + "0" * 11 + sp(20))
assert len(head) == 128 and len(trail) == 128
with open(path, 'w', encoding='latin-1', newline='') as f:
    for rec in [head, *lines, trail]:
        f.write(f"{len(rec):04d}{rec}\r\n")
PY
chmod 600 "$FILE"
if [ -n "${KEEP:-}" ]; then cp -p "$FILE" "$KEEP"; fi
SIZE=$(stat -c %s "$FILE")

cat > "$WORK/reader.py" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
recs = [r[4:] for r in data.split(b'\r\n') if r]
header, trailer, body = recs[0], recs[-1], b''.join(recs[1:-1])
ents = body.split(b'@')[:-1]
counts, total = {}, 0
for e in ents:
    t = e[:3]
    counts[t] = counts.get(t, 0) + 1
    if t in (b'198', b'199'):
        v = int(e[14:22])
        total += -v if e[22:23] == b'N' else v
ok = int(trailer[55:63]) == len(recs) and int(trailer[85:96]) == total
print(len(ents), counts.get(b'040', 0), total, 'ok' if ok else 'MISMATCH')
PY

# One run: prints "seconds peak_kib exit" (the command's stdout goes to /dev/null).
measure() {
    local stats="$WORK/time.txt" rc=0
    /usr/bin/time -v -o "$stats" "$@" > /dev/null 2> "$WORK/stderr" || rc=$?
    awk -v rc="$rc" -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
        /Maximum resident set size/ { kb = $2 }
        END { printf "%.3f %d %d\n", s, kb, rc }' "$stats"
}

best() { # label command...: best wall time of RUNS, and the peak RSS of that run
    local label="$1" line t kb rc bt="" bkb=0 brc=0
    shift
    for _ in $(seq "$RUNS"); do
        line=$(measure "$@")
        read -r t kb rc <<< "$line"
        if [ -z "$bt" ] || awk -v a="$t" -v b="$bt" 'BEGIN { exit !(a < b) }'; then
            bt=$t bkb=$kb brc=$rc
        fi
    done
    printf '%-24s %8.3f s %9.1f MiB  exit %d\n' "$label" "$bt" "$(echo "$bkb / 1024" | bc -l)" "$brc"
    echo "$bt $bkb" > "$WORK/$label.res"
}

cat "$FILE" > /dev/null
echo "file: $PAYMENTS payments, $SIZE bytes ($(echo "$SIZE / 1048576" | bc -l | cut -c1-6) MiB); $RUNS runs, best shown"
python3 "$WORK/reader.py" "$FILE" | sed 's/^/python reader says: entities, payments, amount, trailer: /'
best python-reader python3 "$WORK/reader.py" "$FILE"
best inspect "$SVOCT" inspect "$FILE"
best inspect-json "$SVOCT" inspect "$FILE" --json
read -r pt _ < "$WORK/python-reader.res"
for l in inspect inspect-json; do
    read -r t kb < "$WORK/$l.res"
    awk -v l="$l" -v p="$pt" -v t="$t" -v kb="$kb" -v sz="$SIZE" 'BEGIN {
        printf "%-24s %.1fx faster than the python reader, peak RSS %.2fx the file\n", l, p / t, kb * 1024 / sz }'
done
