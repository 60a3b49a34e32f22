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
# the ratios (target: >= 0.50 of Exim's acceptance) and, over several rounds, the medians.
# Needs root (Exim runs as root with -C) and /usr/sbin/exim4; set NO_EXIM=1 to skip Exim.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SVOCT_BENCH_N="${1:-2000}"
export SVOCT_BENCH_WORKERS="${2:-2}"
export SVOCT_BENCH_CONC="${3:-4}"
export SVOCT_BENCH_ROUNDS="${4:-3}"
EXIM=/usr/sbin/exim4
if [ "${NO_EXIM:-0}" = 1 ]; then
  cargo bench -q -p svoct-oct --bench pipeline
  exit 0
fi
[ -x "$EXIM" ] || { echo "pipeline.sh: $EXIM missing (apt-get install exim4-daemon-light, or NO_EXIM=1)" >&2; exit 1; }
# Build first, so that compiling does not overlap with the measurements.
cargo bench -q -p svoct-oct --bench pipeline --no-run

# Both spools on the same file system, so that both pay the same fsync.
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/svoct-pipeline-bench.XXXXXX")"
EXIM_PID=""
cleanup() {
  if [ -n "$EXIM_PID" ]; then kill "$EXIM_PID" 2>/dev/null || true; wait "$EXIM_PID" 2>/dev/null || true; fi
  # Delivery processes the daemon forked may still be writing: retry the removal.
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else
    for _ in 1 2 3 4 5; do rm -rf "$WORK" 2>/dev/null && break; sleep 1; done
  fi
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/exim/spool" "$WORK/exim/log" "$WORK/exim/Maildir/new" "$WORK/exim/Maildir/cur" "$WORK/exim/Maildir/tmp" "$WORK/svoct"
# Exim never delivers as root: the Maildir belongs to nobody, who must reach it.
chmod 755 "$WORK" "$WORK/exim"
chown -R nobody "$WORK/exim/Maildir"
cat > "$WORK/exim/exim.conf" <<CONF
primary_hostname = mx.bench.test
qualify_domain = bench.test
exim_user = root
exim_group = root
spool_directory = $WORK/exim/spool
log_file_path = $WORK/exim/log/%slog
pid_file_path = $WORK/exim/exim.pid
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = $PORT
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
keep_environment =
smtp_accept_max = 100
# Exim's default closes a connection after 1000 messages with a 421; the client reuses its
# connections for the whole run, as our ingress allows.
smtp_accept_max_per_connection = 0
message_size_limit = 10M
tls_advertise_hosts =
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept local_parts = oct

begin routers
maildir:
  driver = accept
  local_parts = oct
  transport = maildir_delivery

begin transports
maildir_delivery:
  driver = appendfile
  directory = $WORK/exim/Maildir
  maildir_format
  mode = 0644
  user = nobody
  group = $(id -gn nobody)
  return_path_add

begin retry
* * F,1h,1s
CONF

"$EXIM" -C "$WORK/exim/exim.conf" -bdf -q1s >"$WORK/exim/exim.out" 2>&1 &
EXIM_PID=$!
for _ in $(seq 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),1).close()" 2>/dev/null; then break; fi
  sleep 0.1
done

echo "== machine: $(nproc) cores, Exim spool under $WORK ($(df -T "$WORK" | awk 'NR==2{print $2}'))"
TMPDIR="$WORK/svoct" SVOCT_BENCH_EXIM="127.0.0.1:$PORT" SVOCT_BENCH_EXIM_MAILDIR="$WORK/exim/Maildir" cargo bench -q -p svoct-oct --bench pipeline
echo "exim queue left: $("$EXIM" -C "$WORK/exim/exim.conf" -bpc 2>/dev/null || echo '?')"
if [ -s "$WORK/exim/log/paniclog" ]; then echo "exim paniclog:"; cat "$WORK/exim/log/paniclog"; fi
