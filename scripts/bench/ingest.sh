#!/usr/bin/env bash
# Durable SMTP ingest: svoct's ingress against a real Exim, same messages, same client.
#
# Sends N (default 10000) messages of ~100 KB (a ~50-invoice single file once encrypted and
# base64-encoded) over CONC (default 4) pipelining connections on loopback, first to svoct's
# ingress (fsynced spool), then to an Exim started here on a loopback high port with a
# generated configuration, delivering into a Maildir. Prints messages/s for both and the ratio.
#
#   scripts/bench/ingest.sh [N] [CONC]
#
# Needs root (Exim runs as root with -C) and /usr/sbin/exim4 (exim4-daemon-light). FRESH_FS=1
# measures on a new journalled ext4 (see lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

N="${1:-10000}"
CONC="${2:-4}"
. scripts/bench/lib.sh
bench_setup ingest-bench
bench_start_exim

SVOCT_BENCH_N="$N" SVOCT_BENCH_CONC="$CONC" \
SVOCT_BENCH_SPOOL_PARENT="$WORK/svoct" \
SVOCT_BENCH_EXIM="127.0.0.1:$PORT" SVOCT_BENCH_EXIM_MAILDIR="$WORK/exim/Maildir/new" \
  cargo bench -q -p svoct-oct --bench ingest_load
bench_exim_report
