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
#   svoct ps fetch                          (a fresh PS whose Maildir holds the return as the PS
#                                            receives it: a plain RSP message, base64 attachment)
#   python3 reader: split on `@`, count entities, check the trailer, sum the payments
# and prints, for the run of least CPU time, wall time, CPU time (user + sys) and peak RSS
# (`/usr/bin/time -v`) of each, and the ratios to the Python reader. The machine is shared: CPU
# time is the figure that does not move with the load.
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

# One run: prints "wall_seconds cpu_seconds peak_kib exit" (the command's stdout goes to
# /dev/null). SETUP, when set, is run before each run and is not timed.
measure() {
    local stats="$WORK/time.txt" rc=0
    if [ -n "${SETUP:-}" ]; then $SETUP; fi
    /usr/bin/time -v -o "$stats" "$@" > /dev/null 2> "$WORK/stderr" || rc=$?
    awk -v rc="$rc" -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
        /User time \(seconds\)/ { cpu += $2 }
        /System time \(seconds\)/ { cpu += $2 }
        /Maximum resident set size/ { kb = $2 }
        END { printf "%.3f %.3f %d %d\n", s, cpu, kb, rc }' "$stats"
}

best() { # label command...: the run of least CPU time of RUNS (wall, CPU, peak RSS)
    local label="$1" line t c kb rc bt="" bc="" bkb=0 brc=0
    shift
    for _ in $(seq "$RUNS"); do
        line=$(measure "$@")
        read -r t c kb rc <<< "$line"
        if [ -z "$bc" ] || awk -v a="$c" -v b="$bc" 'BEGIN { exit !(a < b) }'; then
            bt=$t bc=$c bkb=$kb brc=$rc
        fi
    done
    printf '%-24s wall %8.3f s  cpu %8.3f s %9.1f MiB  exit %d\n' "$label" "$bt" "$bc" \
        "$(echo "$bkb / 1024" | bc -l)" "$brc"
    echo "$bt $bc $bkb" > "$WORK/$label.res"
}

# A fresh PS (configuration, store) whose Maildir holds the return message, for `ps fetch`.
fresh_ps() {
    rm -rf "$WORK/ps"
    mkdir -m 700 "$WORK/ps"
    "$SVOCT" ps --config "$WORK/ps/ps.toml" init > /dev/null
    sed -i "s|# maildir = \"/var/mail/ps\"|maildir = \"$WORK/ps/Maildir\"|" "$WORK/ps/ps.toml"
    # The return's sender must be one this PS takes returns from, or it is quarantined
    # unread (and the NOEMIE file is never processed).
    sed -i 's|# senders = \["retours@oct.example"\]|senders = ["oct@oct.invalid"]|' "$WORK/ps/ps.toml"
    grep -q '^senders = \["oct@oct.invalid"\]' "$WORK/ps/ps.toml" \
        || { echo "bench: cannot set [returns] senders in ps.toml" >&2; exit 1; }
    mkdir -p -m 700 "$WORK/ps/Maildir/new" "$WORK/ps/Maildir/cur" "$WORK/ps/Maildir/tmp"
    cp "$WORK/rsp.eml" "$WORK/ps/Maildir/new/1.bench"
    chmod 600 "$WORK/ps/Maildir/new/1.bench"
}

# The return as the PS receives it: a plain (unencrypted) RSP message for PS 123456789, the
# headers of `svoct_mail::profile::build_message`, the file in base64 lines of 76 characters.
python3 - "$FILE" "$WORK/rsp.eml" <<'PY'
import sys, base64
data = open(sys.argv[1], 'rb').read()
head = ("From: oct@oct.invalid\r\nTo: ps@ps.invalid\r\nSubject: RSP/123456789/202611270930\r\n"
        "Date: Fri, 27 Nov 2026 09:30:00 +0000\r\nMessage-ID: <bench.1@oct.invalid>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: Application/EDI-consent; name=\"RSP.txt\"\r\n"
        "Content-Transfer-Encoding: BASE64\r\nContent-Description: RSP\r\n"
        "Content-Disposition: attachment; filename=\"RSP.txt\"\r\n\r\n")
with open(sys.argv[2], 'wb') as f:
    f.write(head.encode() + base64.encodebytes(data).replace(b'\n', b'\r\n'))
PY
chmod 600 "$WORK/rsp.eml"

cat "$FILE" > /dev/null
echo "file: $PAYMENTS payments, $SIZE bytes ($(echo "$SIZE / 1048576" | bc -l | cut -c1-6) MiB); $RUNS runs, best shown"
python3 "$WORK/reader.py" "$FILE" | sed 's/^/python reader says: entities, payments, amount, trailer: /'
best python-reader python3 "$WORK/reader.py" "$FILE"
best inspect "$SVOCT" inspect "$FILE"
best inspect-json "$SVOCT" inspect "$FILE" --json
SETUP=fresh_ps best ps-fetch "$SVOCT" ps --config "$WORK/ps/ps.toml" fetch
"$SVOCT" ps --config "$WORK/ps/ps.toml" inbox | sed -n 2p | sed 's/^/ps fetch stored: /'
read -r pt pc _ < "$WORK/python-reader.res"
for l in inspect inspect-json ps-fetch; do
    read -r t c kb < "$WORK/$l.res"
    awk -v l="$l" -v p="$pt" -v pc="$pc" -v t="$t" -v c="$c" -v kb="$kb" -v sz="$SIZE" 'BEGIN {
        printf "%-24s %.1fx faster than the python reader (wall), %.1fx (cpu), peak RSS %.2fx the file\n",
            l, p / t, (c > 0 ? pc / c : 0), kb * 1024 / sz }'
done
