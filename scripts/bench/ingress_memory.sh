#!/usr/bin/env bash
# Peak memory of the SMTP ingress while CONNS connections (default 64) each stream a message of
# MB MiB (default 60) into it: the ingress runs in a child process configured as `oct serve` is
# by default, and its peak resident set (VmHWM in /proc/PID/status) is printed. The messages go
# to a durable spool in the system temp dir (CONNS x MB MiB of disk, removed afterwards).
#
#   scripts/bench/ingress_memory.sh [CONNS] [MB]
#
# The same test runs in `cargo test` with 8 x 24 MiB; this is the full-size run of issue 10.
set -euo pipefail
cd "$(dirname "$0")/../.."

SVOCT_MEM_CONNS="${1:-64}" SVOCT_MEM_MB="${2:-60}" \
  cargo test -q -p svoct-oct --test ingress_hardening -- --exact \
  memory_stays_flat_while_many_large_messages_stream_in --nocapture
