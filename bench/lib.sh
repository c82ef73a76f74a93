# bench/lib.sh -- helpers shared by run.sh and callgrind.sh (sourced, bash).
#
# Every server is started through start_bg, which records its pid; stop_all
# (run from the EXIT trap) stops each of them by pid: SIGTERM, up to 10 s,
# then SIGKILL. Nothing is ever killed by name.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
PY=${PYTHON:-/usr/bin/python3} # Debian's python3-fastapi lives in the system python

BG_PIDS=()

# start_bg LOGFILE CMD... -- run CMD in the background, stdout+stderr to
# LOGFILE; sets BG_PID.
start_bg() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# stop_pid PID [SIGNAL] -- signal PID (default TERM), wait up to 10 s, then
# KILL. Prints nothing; returns the exit status of PID (if it was our child).
stop_pid() {
	local pid=$1 sig=${2:-TERM} i rc=0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return $rc; }
	kill -"$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "bench: pid $pid did not stop within 10 s of SIG$sig: killed" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}

stop_all() {
	local pid
	for pid in "${BG_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null && { stop_pid "$pid" || true; }
	done
	BG_PIDS=()
}

# wait_listen LOGFILE PID [TIMEOUT_S] -- wait for "... 127.0.0.1:PORT" in
# LOGFILE (the line each server prints once it listens); prints PORT.
wait_listen() {
	local log=$1 pid=$2 limit=${3:-15} i port
	for ((i = 0; i < limit * 20; i++)); do
		port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n1)
		if [ -n "$port" ]; then
			echo "$port"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: server exited before listening; its log ($log):" >&2
			sed 's/^/  | /' "$log" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "bench: no listening line in $log after ${limit} s" >&2
	return 1
}

# wait_http PORT PID [TIMEOUT_S] -- for servers that print no port line
# (uvicorn): wait until a TCP connect succeeds.
wait_http() {
	local port=$1 pid=$2 limit=${3:-20} i
	for ((i = 0; i < limit * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# hookd_setup DIR WORKERS [REACTORS] -- a config and a private plugin folder
# in DIR (copies, so a rebuild of build/plugins during the run changes
# nothing). REACTORS: event loops sharing the port (default 1). From the
# environment (all optional, for the isolation rows):
#   HOOKD_ISOLATE="echo ..."  these plugins get "isolate": true (child processes)
#   HOOKD_FIXTURES="crash_sync ..."  test fixtures (build/fixtures/NAME.so, `make
#                             fixtures`) copied into the plugin folder too
#   HOOKD_EXTRA='"k": v, ...'  more top-level config keys
hookd_setup() {
	local dir=$1 workers=$2 reactors=${3:-1} p iso=
	mkdir -p "$dir/plugins"
	for p in echo echo_async tag tag_async cpu fanout delay; do
		install -m 755 "$BUILD/plugins/$p.so" "$dir/plugins/$p.so"
	done
	for p in ${HOOKD_FIXTURES:-}; do
		install -m 755 "$BUILD/fixtures/$p.so" "$dir/plugins/$p.so"
	done
	for p in ${HOOKD_ISOLATE:-}; do
		iso+=",
    \"$p\": { \"isolate\": true }"
	done
	cat >"$dir/hookd.json" <<EOF
{
  "listen": "127.0.0.1:0",
  "plugin_dir": "plugins",
  "reactors": $reactors,
  "workers": $workers,
  "queue": 4096,
  "timeout_ms": 60000,
  "drain_ms": 5000,
  "log_level": "info",
  "runtime_dir": "$dir",${HOOKD_EXTRA:+
  $HOOKD_EXTRA,}
  "hooks": {
    "mixed": { "chain": ["tag", "tag_async", "echo"] }
  },
  "plugins": {
    "tag": { "label": "sync step" },
    "tag_async": { "label": "async step" }$iso
  }
}
EOF
}

# Pinning: servers on CPU 0, the load generator on CPU 1 (unpinned on 2 cores,
# absolute req/s vary by +-20 % between runs: pin apart, report ratios to a
# reference measured in the same run). PIN_SRV/PIN_LOAD/PIN_BOTH are command
# prefixes, empty on a 1-CPU machine.
setup_pinning() {
	NCPU=$(nproc 2>/dev/null || echo 1)
	if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
		PIN_SRV=(taskset -c 0)
		PIN_LOAD=(taskset -c 1)
		PIN_BOTH=(taskset -c 0,1)
		PINNING="server on CPU 0, wrk on CPU 1"
	else
		PIN_SRV=()
		PIN_LOAD=()
		PIN_BOTH=()
		PINNING="no pinning ($NCPU CPU)"
	fi
}

# quiesce PID... -- wait (up to 30 s) until these processes stop using CPU:
# a server may still be working off requests whose client (wrk) is gone, and
# that work must not land in the next row. Prints how long it waited when
# that was more than a moment.
cpu_ticks() {
	local fam
	fam=$(family_scan "$@")
	echo "${fam%% *}"
}
quiesce() {
	local i a b
	for ((i = 0; i < 150; i++)); do
		a=$(cpu_ticks "$@")
		sleep 0.2
		b=$(cpu_ticks "$@")
		[ $((b - a)) -le 1 ] && break
	done
	[ "$i" -gt 2 ] && echo "  (waited $((i / 5)).$((i % 5 * 2)) s for the servers to go idle)" >&2
	return 0
}

# family_usage PID -- "CPU_TICKS CONTEXT_SWITCHES PROCESSES" of a process
# and all its descendants (an isolated hookd's plugin processes, started with
# posix_spawn as hookd's children). CPU: user+system clock ticks of every
# thread of each of them, plus the ticks of the children they have already
# reaped (cutime+cstime), so a plugin process that crashed and was reaped
# during a round still counts. The descendants are found through the ppid
# field of every /proc/N/stat (this kernel has no /proc/N/task/T/children;
# the children do not get a process group of their own either). Context
# switches: voluntary+involuntary of every thread alive now (those of a
# process that exited in between are lost).
family_scan() { # family_scan PID... -- "TICKS PID..." of these processes and their descendants
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots="$*" '
		{ pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
		  ppid[pid] = f[2]; ticks[pid] = f[12] + f[13] + f[14] + f[15]; all[++n] = pid }
		END {
			t = 0; out = ""; k = split(roots, r, " ")
			for (i = 1; i <= k; i++)
				if (r[i] in ppid && !(r[i] in in_fam)) { in_fam[r[i]] = 1; t += ticks[r[i]]; out = out " " r[i] }
			grew = 1
			while (grew) {
				grew = 0
				for (i = 1; i <= n; i++) {
					p = all[i]
					if (!(p in in_fam) && (ppid[p] in in_fam)) {
						in_fam[p] = 1; t += ticks[p]; out = out " " p; grew = 1
					}
				}
			}
			print t out
		}'
}
family_usage() {
	local sw p
	set -- $(family_scan "$1")
	local t=${1:-0}
	shift
	sw=0
	if [ $# -gt 0 ]; then
		sw=$(for p in "$@"; do cat /proc/"$p"/task/*/status 2>/dev/null; done |
			awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }')
	fi
	echo "$t ${sw:-0} $#"
}

# proc_usage PID -- "CPU_TICKS CONTEXT_SWITCHES" of a server: the process,
# all its threads and its descendants (family_usage).
proc_usage() {
	local t sw
	read -r t sw _ <<<"$(family_usage "$1")"
	echo "${t:-0} ${sw:-0}"
}

# sample_proc PID PORT OUT STOP -- every 100 ms until the file STOP exists
# (or PID exits): the process's VmRSS (kB), its open descriptors and, from
# GET /health on PORT, hookd's calls_in_flight; then writes
# "PEAK_RSS_KB PEAK_FDS PEAK_IN_FLIGHT SAMPLES" to OUT. Shell builtins but
# for the sleep (one fork per sample): /proc is read with `read`, /health
# through bash's /dev/tcp, so the sampler's own cost stays small next to the
# server's.
sample_proc() {
	local pid=$1 port=$2 out=$3 stop=$4 rss=0 fds=0 fl=0 n=0 k v rest body f=
	local -a fdl
	while [ ! -e "$stop" ] && kill -0 "$pid" 2>/dev/null; do
		while read -r k v rest; do
			[ "$k" = VmRSS: ] && { [ "$v" -gt "$rss" ] && rss=$v; break; }
		done <"/proc/$pid/status"
		fdl=(/proc/"$pid"/fd/*)
		[ ${#fdl[@]} -gt "$fds" ] && fds=${#fdl[@]}
		if { exec {f}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
			body=
			printf 'GET /health HTTP/1.0\r\n\r\n' >&"$f" 2>/dev/null &&
				IFS= read -r -t 1 -d '' -u "$f" body 2>/dev/null || true # (EOF: status 1)
			exec {f}>&-
			[[ $body =~ \"calls_in_flight\":([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt "$fl" ] &&
				fl=${BASH_REMATCH[1]}
		fi
		n=$((n + 1))
		sleep 0.1
	done
	echo "$rss $fds $fl $n" >"$out"
}

# wrk_echo_rps LABEL PORT BODY_FILE [WRK_ARGS...] -- one round of wrk -t1 -c$CONNS for
# $DURATION s against hookd's /hooks/echo_async on PORT (pinned by PIN_LOAD), POSTing
# BODY_FILE (post.lua), extra wrk arguments (e.g. -H "Name: value") after it; prints
# req/s (0 when wrk failed) and warns, naming LABEL, of answers >= 400. Uses $TMP.
wrk_echo_rps() {
	local label=$1 port=$2 body=$3 out=$TMP/wrk.txt line
	shift 3
	BODY_FILE=$body "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency \
		"$@" -s "$ROOT/bench/post.lua" "http://127.0.0.1:$port/hooks/echo_async" >"$out" 2>&1 || true
	line=$(grep '^BENCH ' "$out" || true)
	[ -z "$line" ] && { echo 0; return; }
	set -- $(echo "$line" | sed 's/[a-z_0-9]*=//g; s/^BENCH //')
	[ "$5" != 0 ] && echo "$label: PROBLEM: $5 answers >= 400" >&2
	awk -v n="$1" -v d="$2" 'BEGIN { printf "%.1f", n / (d / 1e6) }'
}

# nginx `return 200` (the ceiling reference; Debian nginx-light). NGINX: the
# binary (from the environment, else found), empty when it is not installed.
NGINX=${NGINX:-$(command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)}

# nginx_setup DIR PORT [EXTRA] -- DIR/nginx.conf: one worker, 127.0.0.1:PORT,
# `return 200 '{"ok":true}\n'` as application/json for every request, no
# access log. Everything nginx writes stays in DIR: run it with
# `-p DIR -c DIR/nginx.conf -e DIR/error.log` (Debian's build has absolute
# default paths under /var/lib/nginx, /var/log/nginx and /run, so the temp
# paths, the pid file and the error log are all set here). EXTRA: more
# top-level directives (callgrind.sh: "master_process off;").
# keepalive_requests: nginx closes a keep-alive connection after 1000
# requests by default (hookd and the reference never do); wrk would then
# reconnect ~70 times a second and kaclient (one connection) would fail.
# As root, the worker stays root as in scripts/scaleout.sh (it would be
# nobody, and the temp dir is mode 0700).
nginx_setup() {
	local dir=$1 port=$2 extra=${3:-} user=
	[ "$(id -u)" -eq 0 ] && user="user root root;"
	mkdir -p "$dir/tmp"
	cat >"$dir/nginx.conf" <<EOF2
$user
$extra
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        default_type application/json;
        location / { return 200 '{"ok":true}\n'; }
    }
}
EOF2
}

# start_nginx DIR LOG PIN... -- nginx_setup on a free port, then nginx in the
# foreground (daemon off: start_bg's pid is the master, so stop_all stops it
# and with it its worker) pinned by PIN...; sets NGX_PID and NGX_PORT.
# free_port can race with another process taking the port: up to 3 tries.
start_nginx() {
	local dir=$1 log=$2 try
	shift 2
	for try in 1 2 3; do
		NGX_PORT=$(free_port)
		nginx_setup "$dir" "$NGX_PORT"
		start_bg "$log" "$@" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
		NGX_PID=$BG_PID
		wait_http "$NGX_PORT" "$NGX_PID" 10 && return 0
		stop_pid "$NGX_PID" || true
		echo "bench: nginx did not start on port $NGX_PORT (try $try); its error log:" >&2
		sed 's/^/  | /' "$dir/error.log" "$log" >&2 2>/dev/null || true
	done
	return 1
}
