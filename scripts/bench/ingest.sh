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
# Needs root (Exim runs as root with -C) and /usr/sbin/exim4 (exim4-daemon-light).
set -euo pipefail
cd "$(dirname "$0")/../.."

N="${1:-10000}"
CONC="${2:-4}"
EXIM=/usr/sbin/exim4
[ -x "$EXIM" ] || { echo "ingest.sh: $EXIM missing (apt-get install exim4-daemon-light)" >&2; exit 1; }

# Both spools on the same file system, so that both pay the same fsync.
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/svoct-ingest-bench.XXXXXX")"
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

echo "== machine: $(nproc) cores, spools under $WORK ($(df -T "$WORK" | awk 'NR==2{print $2}'))"
SVOCT_BENCH_N="$N" SVOCT_BENCH_CONC="$CONC" \
SVOCT_BENCH_SPOOL_PARENT="$WORK/svoct" \
SVOCT_BENCH_EXIM="127.0.0.1:$PORT" SVOCT_BENCH_EXIM_MAILDIR="$WORK/exim/Maildir/new" \
  cargo bench -q -p svoct-oct --bench ingest_load
echo "exim queue left: $("$EXIM" -C "$WORK/exim/exim.conf" -bpc 2>/dev/null || echo '?')"
if [ -s "$WORK/exim/log/paniclog" ]; then echo "exim paniclog:"; cat "$WORK/exim/log/paniclog"; fi
