#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, integration (real Exim, Dovecot,
# OpenSSL, SQLite) and interop tests, plus a short fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

echo "== fmt" >&2
cargo fmt --all --check
echo "== clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests" >&2
cargo test --workspace --locked
