#!/usr/bin/env bash
# Pipeline throughput of the concentrator: messages/s from the spool to forwarded files.
# Usage: scripts/bench/pipeline.sh [N] [WORKERS]   (defaults: 2000 messages, 2 workers)
# Each message is an OCT single file of ~50 invoices for 3 destinations, CMS-encrypted for the
# OCT; the service decrypts, splits, builds 3 forwarded files (one encrypted for the AM) and an
# ART per message, commits them to the outbox and writes them as .eml files.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SVOCT_BENCH_N="${1:-2000}"
export SVOCT_BENCH_WORKERS="${2:-2}"
cargo bench -p svoct-oct --bench pipeline
