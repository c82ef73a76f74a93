#!/usr/bin/env bash
# bench/callgrind.sh -- instructions per call, hookd vs the bare
# evhttp+cJSON reference (bench/ref), counted by valgrind's callgrind:
# stable where wall-clock figures move by +-20 % (noisy 2-core machine).
# Also nginx `return 200` per request (the ceiling, no JSON work; nginx-light
# with master_process off: one process doing a worker's job), when installed.
#
#   bench/callgrind.sh [SMALL_BODY [LARGE_BODY]]     (run.sh calls it)
#
# For each server: one run under callgrind with zero requests (start-up and
# shutdown: the baseline) and one with exactly N calls sent by
# build/bench/kaclient over one keep-alive connection, one at a time; the
# server is stopped with SIGTERM and must exit 0. Instructions per call =
# (total - baseline) / N, all threads included (the worker pool's too).
# Knobs: CG_CALLS (default 2000), CG_LARGE_CALLS (default 300), WORKERS
# (hookd's workers, default 2), KEEP=1 keeps the callgrind files.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

N=${CG_CALLS:-2000}
NL=${CG_LARGE_CALLS:-300}
WORKERS=${WORKERS:-2}
command -v valgrind >/dev/null || { echo "callgrind: valgrind is not installed (scripts/deps.sh bench)" >&2; exit 1; }
make -s -C "$ROOT/bench" BUILD="$BUILD" >/dev/null

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hookd-callgrind.XXXXXX")
cleanup() {
	local rc=$?
	stop_all
	if [ "${KEEP:-0}" = 1 ]; then echo "callgrind: files kept in $TMP" >&2; else rm -rf "$TMP"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_pinning

SMALL=${1:-}
LARGE=${2:-}
if [ -z "$SMALL" ]; then
	SMALL=$TMP/small.json
	printf '%s' '{"id":"evt_1042","type":"order.paid","order":7,"amount":1999,"currency":"EUR","ok":true,"tags":["a","b"]}' >"$SMALL"
fi
hookd_setup "$TMP/hookd" "$WORKERS"

# measure LABEL SERVER(ref|hookd|nginx) PATH BODY N -- prints the total instructions
measure() {
	local label=$1 server=$2 path=$3 body=$4 n=$5 out=$TMP/$1.cg log=$TMP/$1.log pid port rc=0
	local cmd=("$BUILD/bench/ref" 0)
	[ "$server" = hookd ] && cmd=("$BUILD/hookd" -c "$TMP/hookd/hookd.json")
	if [ "$server" = nginx ]; then
		# nginx prints no port: a free one, and a connect to know it listens
		local ndir=$TMP/nginx-${label//[^A-Za-z0-9_.-]/_} # a path nginx.conf can hold unquoted
		port=$(free_port)
		nginx_setup "$ndir" "$port" "master_process off;"
		cmd=("$NGINX" -p "$ndir" -c "$ndir/nginx.conf" -e "$ndir/error.log")
	fi
	start_bg "$log" "${PIN_SRV[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}"
	pid=$BG_PID
	if [ "$server" = nginx ]; then
		wait_http "$port" "$pid" 120 || { echo "callgrind: $label: nginx did not start (log: $log)" >&2; return 1; }
	else
		port=$(wait_listen "$log" "$pid" 120) || return 1
	fi
	if [ "$n" -gt 0 ]; then
		"${PIN_LOAD[@]}" "$BUILD/bench/kaclient" "$port" "$path" "$body" "$n" ||
			{ echo "callgrind: $label: the client failed (log: $log)" >&2; return 1; }
	fi
	stop_pid "$pid" TERM || rc=$?
	if [ "$rc" != 0 ]; then
		echo "callgrind: PROBLEM: $label: $server exited with status $rc after SIGTERM; log:" >&2
		tail -n 20 "$log" | sed 's/^/  | /' >&2
		return 1
	fi
	# callgrind's profile ends with "totals: Ir" (older versions: "summary:")
	sed -n 's/^\(totals\|summary\): *\([0-9][0-9]*\).*/\2/p' "$out" | tail -n1
}

echo "Instructions per call (valgrind --tool=callgrind, $N calls one at a time on one" \
	"keep-alive connection; large body: $NL calls; minus a zero-call run; all threads)"
printf '  %-34s %15s %15s %7s %13s %9s\n' "server / hook" "total Ir" "baseline Ir" "calls" "Ir per call" "x ref"

REF_BASE=$(measure ref-base ref /hooks/echo "$SMALL" 0)
HOOKD_BASE=$(measure hookd-base hookd /hooks/echo "$SMALL" 0)

row() { # row LABEL SERVER PATH BODY N BASE [REF_PER_CALL] -- sets PER
	local total
	total=$(measure "$1" "$2" "$3" "$4" "$5")
	PER=$(( (total - $6) / $5 ))
	local x="-"
	[ -n "${7:-}" ] && x=$(awk -v a="$PER" -v b="$7" 'BEGIN { printf "%.2fx", a / b }')
	printf '  %-34s %15s %15s %7s %13s %9s\n' "$1" "$total" "$6" "$5" "$PER" "$x"
}

row "ref (evhttp+cJSON) echo" ref /hooks/echo "$SMALL" "$N" "$REF_BASE"
REF_PER=$PER
row "hookd echo_async" hookd /hooks/echo_async "$SMALL" "$N" "$HOOKD_BASE" "$REF_PER"
ASYNC_X=$(awk -v a="$PER" -v b="$REF_PER" 'BEGIN { printf "%.2f", a / b }')
row "hookd echo (sync, workers=$WORKERS)" hookd /hooks/echo "$SMALL" "$N" "$HOOKD_BASE" "$REF_PER"
if [ -n "$LARGE" ]; then
	row "ref echo, large body" ref /hooks/echo "$LARGE" "$NL" "$REF_BASE"
	REFL_PER=$PER
	row "hookd echo_async, large body" hookd /hooks/echo_async "$LARGE" "$NL" "$HOOKD_BASE" "$REFL_PER"
fi
if [ -n "$NGINX" ]; then
	NGX_BASE=$(measure nginx-base nginx /hooks/echo_async "$SMALL" 0)
	row "nginx return 200 (no JSON work)" nginx /hooks/echo_async "$SMALL" "$N" "$NGX_BASE" "$REF_PER"
else
	echo "  (nginx return 200: skipped, nginx is not installed; scripts/deps.sh bench)"
fi
if awk -v x="$ASYNC_X" 'BEGIN { exit !(x <= 1.25) }'; then verdict=met; else verdict=MISSED; fi
echo "  target (issue 4): instructions per async call <= 1.25x the reference's: ${ASYNC_X}x ($verdict)"
if awk -v x="$ASYNC_X" 'BEGIN { exit !(x <= 0.5) }'; then verdict=met; else verdict=MISSED; fi
echo "  target (issue 12): instructions per async call <= 0.5x the reference's: ${ASYNC_X}x ($verdict)"
