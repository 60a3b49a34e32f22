#!/usr/bin/env bash
# PS sending speed, end to end through the real binary: 10,000 invoices in lots -> messages
# written to --out (plan, frame, compress, encrypt for the OCT certificate, journal in SQLite with
# synchronous=FULL, payload saved for resend). Target: under 1 s.
#
# Runs each sending option (oct single, oct enriched in one file and per destination, oct split
# over 10 destinations without and with compression, direct over 10 destinations without
# certificates), each with the configuration's defaults unless a flag is named, RUNS times (default 5) on a fresh store and prints the
# wall time of every run and the median. Usage: scripts/bench/ps-send.sh [INVOICES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
INVOICES=${1:-10000}
RUNS=${2:-5}
# SVOCT_BIN: an already built binary (skips the release build).
if [ -z "${SVOCT_BIN:-}" ]; then
    cargo build --release -q -p svoct
fi
BIN=${SVOCT_BIN:-$PWD/target/release/svoct}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

openssl req -x509 -newkey rsa:2048 -nodes -keyout oct.key -out oct.crt -days 30 \
    -subj "/CN=oct.bench" 2>/dev/null
"$BIN" gen --invoices "$INVOICES" --destinations 10 --seed 1 --out lots.b2
"$BIN" gen --invoices "$INVOICES" --enriched --seed 2 --out enriched.b2
"$BIN" gen --invoices "$INVOICES" --enriched --destinations 10 --seed 3 --out enriched10.b2

config() { # $1 = mode, $2 = option or "", then extra `oct set` flags; writes ps.toml
    rm -rf ps.toml svoct-ps.sqlite* out
    "$BIN" ps --config ps.toml init >/dev/null
    for d in $(seq 100 109); do
        printf '\n[direct.routes."%s"]\nmailbox = "cpam%s@am.invalid"\n' "$d" "$d" >> ps.toml
    done
    if [ "$1" = oct ]; then
        "$BIN" ps --config ps.toml oct set --address oct@oct.invalid --certificate oct.crt \
            --identifier 12345678900014 --option "$2" "${@:3}" >/dev/null
        "$BIN" ps --config ps.toml mode oct >/dev/null
    fi
}

bench() { # $1 = label, $2 = mode, $3 = option, $4 = lots file, then extra `oct set` flags
    local walls=() cpus=()
    for _ in $(seq "$RUNS"); do
        config "$2" "$3" "${@:5}"
        local TIMEFORMAT='%R %U %S'
        { time "$BIN" ps --config ps.toml send "$4" --out out >/dev/null; } 2> t.txt
        read -r real user sys < t.txt
        walls+=("$real")
        cpus+=("$(echo "$user + $sys" | bc -l)")
    done
    local mid=$(( (RUNS + 1) / 2 ))
    local wall cpu messages
    wall=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "${mid}p")
    cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "${mid}p")
    messages=$(ls out/*.eml | wc -l)
    printf '%-28s %6d invoices -> %3d message(s): median wall %.3f s, CPU %.3f s  (wall runs: %s)\n' \
        "$1" "$INVOICES" "$messages" "$wall" "$cpu" "${walls[*]}"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
bench "oct single (R3.2)" oct single lots.b2
bench "oct enriched (R3.3)" oct enriched enriched.b2
bench "oct enriched, per dest" oct enriched enriched10.b2 --enriched-files per-destination
bench "oct split, 10 dest (R3.1)" oct split lots.b2
bench "oct split, 10 dest, ZK" oct split lots.b2 --compress
bench "direct, 10 dest, clear" direct "" lots.b2
