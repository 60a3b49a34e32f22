#!/usr/bin/env bash
# Pipeline throughput of the concentrator vs Exim, in the same run.
# Usage: scripts/bench/pipeline.sh [N] [WORKERS] [CONC] [ROUNDS]   (defaults: 2000 messages,
# 2 workers, 4 SMTP connections to Exim, 3 rounds with a 60 s pause between them)
# Each message is an OCT single file of ~50 invoices for 3 destinations, CMS-encrypted for the
# OCT. First the same N messages are sent to an Exim started here on a loopback high port
# (spool on the same file system, delivering into a Maildir): its acceptance rate (250 after
# DATA, message safe in its spool) and its accepted-and-delivered rate are the references. Then
# the service decrypts, splits, builds 3 forwarded files (one encrypted for the AM) and an ART
# per message, commits them to the outbox and delivers each into a Maildir. Prints the rates,
# the ratios (target: >= 0.50 of Exim's acceptance) and, over several rounds, the medians
# (rounds alternate who goes first).
# Needs root (Exim runs as root with -C) and /usr/sbin/exim4; NO_EXIM=1 skips Exim, FRESH_FS=1
# measures on a new journalled ext4 (see lib.sh), SVOCT_BENCH_PAUSE_SECS changes the pause
# between rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SVOCT_BENCH_N="${1:-2000}"
export SVOCT_BENCH_WORKERS="${2:-2}"
export SVOCT_BENCH_CONC="${3:-4}"
export SVOCT_BENCH_ROUNDS="${4:-3}"
if [ "${NO_EXIM:-0}" = 1 ]; then
  cargo bench -q -p svoct-oct --bench pipeline
  exit 0
fi
# Build first, so that compiling does not overlap with the measurements.
cargo bench -q -p svoct-oct --bench pipeline --no-run
. scripts/bench/lib.sh
bench_setup pipeline-bench
bench_start_exim
TMPDIR="$WORK/svoct" SVOCT_BENCH_EXIM="127.0.0.1:$PORT" SVOCT_BENCH_EXIM_MAILDIR="$WORK/exim/Maildir" \
  cargo bench -q -p svoct-oct --bench pipeline
bench_exim_report
