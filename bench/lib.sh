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
# nothing). REACTORS: event loops sharing the port (default 1).
hookd_setup() {
	local dir=$1 workers=$2 reactors=${3:-1} p
	mkdir -p "$dir/plugins"
	for p in echo echo_async tag tag_async cpu fanout delay; do
		install -m 755 "$BUILD/plugins/$p.so" "$dir/plugins/$p.so"
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
  "runtime_dir": "$dir",
  "hooks": {
    "mixed": { "chain": ["tag", "tag_async", "echo"] }
  },
  "plugins": {
    "tag": { "label": "sync step" },
    "tag_async": { "label": "async step" }
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
	local t=0 p v
	for p in "$@"; do
		v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
		t=$((t + ${v:-0}))
	done
	echo "$t"
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

# proc_usage PID -- "CPU_TICKS CONTEXT_SWITCHES" of a process, all its
# threads (user+system clock ticks; voluntary+involuntary switches).
proc_usage() {
	local pid=$1 ticks sw
	ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
	sw=$(cat /proc/"$pid"/task/*/status 2>/dev/null |
		awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }')
	echo "${ticks:-0} ${sw:-0}"
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
