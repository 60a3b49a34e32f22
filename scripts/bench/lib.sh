# Shared by the benchmark scripts that compare svoct with a real Exim (sourced, not run):
# a work directory (optionally on a fresh journalled file system), a throw-away Exim on a
# loopback high port delivering into a Maildir, and the cleanup of both.
#
#   bench_setup NAME      sets WORK (both spools under it) and the cleanup trap
#   bench_start_exim      writes the Exim configuration, starts it; sets PORT, EXIM_PID
#   bench_exim_report     prints what Exim left queued and its panic log, if any
#
# FRESH_FS=1 runs on a new journalled ext4 (an 8 GB sparse loop-mounted image under /var/tmp), the
# usual production setup, instead of whatever TMPDIR is on. Every file system keeps state from
# earlier runs; ext4 without a journal, for one, skips inodes freed in the last minutes when it
# allocates new ones, so each run is slowed by what the previous ones deleted. Needs root.

EXIM=/usr/sbin/exim4
EXIM_PID=""
FS_IMG=""
FS_MNT=""
WORK=""

bench_cleanup() {
  if [ -n "$EXIM_PID" ]; then kill "$EXIM_PID" 2>/dev/null || true; wait "$EXIM_PID" 2>/dev/null || true; fi
  # Delivery processes the daemon forked may still be writing: retry the removal.
  if [ -n "$WORK" ]; then
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else
      for _ in 1 2 3 4 5; do rm -rf "$WORK" 2>/dev/null && break; sleep 1; done
    fi
  fi
  if [ -n "$FS_MNT" ]; then
    umount "$FS_MNT" 2>/dev/null || { sleep 2; umount -l "$FS_MNT" || true; }
    rmdir "$FS_MNT" || true
    rm -f "$FS_IMG"
  fi
}

bench_setup() {
  [ -x "$EXIM" ] || { echo "$1: $EXIM missing (apt-get install exim4-daemon-light)" >&2; exit 1; }
  trap bench_cleanup EXIT
  if [ "${FRESH_FS:-0}" = 1 ]; then
    FS_IMG="$(mktemp /var/tmp/svoct-benchfs.XXXXXX.img)"
    FS_MNT="$(mktemp -d /var/tmp/svoct-benchfs.XXXXXX.mnt)"
    truncate -s 8G "$FS_IMG"
    mkfs.ext4 -q -F "$FS_IMG"
    mount -o loop "$FS_IMG" "$FS_MNT"
    TMPDIR="$FS_MNT"
  fi
  # Both spools on the same file system, so that both pay the same fsync.
  WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/svoct-$1.XXXXXX")"
  mkdir -p "$WORK/exim/spool" "$WORK/exim/log" "$WORK/exim/Maildir/new" "$WORK/exim/Maildir/cur" \
    "$WORK/exim/Maildir/tmp" "$WORK/svoct"
  # Exim never delivers as root: the Maildir belongs to nobody, who must reach it.
  chmod 755 "$WORK" "$WORK/exim"
  chown -R nobody "$WORK/exim/Maildir"
  echo "== machine: $(nproc) cores, both spools under $WORK ($(df -T "$WORK" | awk 'NR==2{print $2}'), $(if [ -n "$FS_MNT" ]; then echo "fresh journalled loop file system"; else echo "file system as found"; fi))"
}

bench_start_exim() {
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
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
}

bench_exim_report() {
  echo "exim queue left: $("$EXIM" -C "$WORK/exim/exim.conf" -bpc 2>/dev/null || echo '?')"
  if [ -s "$WORK/exim/log/paniclog" ]; then echo "exim paniclog:"; cat "$WORK/exim/log/paniclog"; fi
}
