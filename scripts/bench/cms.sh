#!/usr/bin/env bash
# CMS speed: encrypts and decrypts one 10 MiB attachment with the project (svoct-mail) and with
# `openssl cms` on the same file in the same run, and prints the ratio (target: >= 1.00, the
# project at least as fast). Optional: BENCH_CRITERION=1 also runs the criterion benches.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p svoct-mail --bench cms_vs_openssl
if [ "${BENCH_CRITERION:-0}" = 1 ]; then
    cargo bench -p svoct-mail --bench messages
fi
