#!/usr/bin/env bash
# bench/run.sh -- hookd's benchmark (`make bench`; not part of the tests).
#
# Starts, on loopback only, hookd, the bare evhttp+cJSON reference
# (bench/ref), the FastAPI/uvicorn peer (bench/peer_fastapi.py), nginx
# answering `return 200` (the ceiling; Debian nginx-light) and the test
# upstream (fan-out), drives each with wrk using the same request, and prints
# one table of requests/s, p50/p99, errors and ratios to the references
# measured in this same run, among them isolated vs in-process plugins and an
# in-process hook while an isolated plugin (the crash_sync test fixture)
# crashes; then the c10k rows (bench/c10k: 10,000
# connections, each with a 1 s delay call in flight, hookd's RSS sampled).
# Then bench/callgrind.sh (instructions per call) unless SKIP_CALLGRIND=1.
# See bench/README.md for how to read it.
#
# Knobs (environment):
#   QUICK=1           3 rounds of 1 s per row (fan-out: one of 10 s), ~3 minutes in all
#   ROUNDS=N          interleaved rounds per scenario (default 5; QUICK: 3)
#   DURATION=S        seconds per round and row (default 3; QUICK: 1)
#   FANOUT_DURATION=S seconds per fan-out round (default 15; QUICK: 10): a
#                     100 ms call is cut off at the end of a run, so short
#                     runs understate calls/s (by up to 0.1 s / S: 2 % at 5 s)
#   FANOUT_ROUNDS=N   rounds of the fan-out rows (default 3; QUICK: 1)
#   WARMUP=S          warm-up seconds per server and scenario (default 1)
#   WORKERS=N         workers of the main hookd (echo, mixed, large, fan-out, reload rows;
#                     default 2, hookd's own default on this machine)
#   CPU_N=N           rounds of the cpu hook per call (default 700000, ~1 ms)
#   SKIP_CALLGRIND=1  skip the instruction counts
#   SKIP_PEER=1       skip the FastAPI peer
#   SKIP_NGINX=1      skip the nginx `return 200` rows
#   SKIP_C10K=1       skip the c10k rows
#   C10K_N=N          connections (and calls) of the c10k rows (default 10000)
#   C10K_RATE=R       connections opened per second in the paced c10k rows
#                     (default 20000: 10,000 in 0.5 s)
#   C10K_HOLD_MS=MS   how long the c10k client keeps its connections open,
#                     idle, after the answers (default 2000)
#   ONLY=a,b          run only these scenarios (and skip the others, c10k and
#                     callgrind unless named): echo_async, echo, mixed, large,
#                     cpu, reactors, fanout, reload, isolate (the isolation rows),
#                     nginx (the echo_async and echo scenarios, each with its
#                     nginx `return 200` row; without it they run without nginx),
#                     alog (the access log's cost), c10k, callgrind, metrics
#                     (bench/metrics.sh: the cost of counting for GET /metrics).
#                     E.g. ONLY=isolate, ONLY=nginx
#   KEEP=1            keep the temp dir (configs, server logs, every wrk output)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	ROUNDS=${ROUNDS:-3}
	DURATION=${DURATION:-1}
	FANOUT_DURATION=${FANOUT_DURATION:-10}
	FANOUT_ROUNDS=${FANOUT_ROUNDS:-1}
else
	ROUNDS=${ROUNDS:-5}
	DURATION=${DURATION:-3}
	FANOUT_DURATION=${FANOUT_DURATION:-15}
	FANOUT_ROUNDS=${FANOUT_ROUNDS:-3}
fi
WARMUP=${WARMUP:-1}
WORKERS=${WORKERS:-2}
CPU_N=${CPU_N:-700000}
CONNS=64
# The cpu rows use fewer connections: with 64 a call would wait behind 63
# others (64 ms at 1 ms each, ~5 s in the Python peer, whose calls would not
# finish within a round) and only the queue would be measured. 8 keeps 2
# workers busy.
CPU_CONNS=8
FANOUT_CONNS=100
FANOUT_COUNT=10
FANOUT_DELAY_MS=100
# the upstream alone at the fan-out's concurrency: 100 calls x 10 requests
UP_CONNS=$((FANOUT_CONNS * FANOUT_COUNT))
C10K_N=${C10K_N:-10000}
C10K_RATE=${C10K_RATE:-20000}
C10K_HOLD_MS=${C10K_HOLD_MS:-2000}
WRK_TIMEOUT=10s
ONLY=${ONLY:-}
# want NAME -- true when ONLY is unset or names NAME
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
# the metrics rows need none of the servers below: bench/metrics.sh alone
if [ "$ONLY" = metrics ]; then
	QUICK=$QUICK WORKERS=$WORKERS exec "$ROOT/bench/metrics.sh"
fi
# likewise the sender-verification rows (bench/verify.sh)
if [ "$ONLY" = verify ]; then
	QUICK=$QUICK WORKERS=$WORKERS exec "$ROOT/bench/verify.sh"
fi
PAYLOAD=${PAYLOAD:-}
if [ -z "$PAYLOAD" ]; then
	# a real GitHub push body when that corpus sits beside the project (the
	# recorded results used it), else our own invented one
	for p in "$ROOT/../shared/payloads/github-push-1.json" \
		"$ROOT/tests/data/payloads/webhook-github-push.json"; do
		[ -r "$p" ] && { PAYLOAD=$p; break; }
	done
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hookd-bench.XXXXXX")
LOGS=$TMP/logs
RESULTS=$TMP/results.tsv
NOTES=$TMP/notes.txt
C10K=$TMP/c10k.txt
mkdir -p "$LOGS"
: >"$RESULTS"
: >"$NOTES"
: >"$C10K"
HUP_PID=
LOOP_PID=
SAMPLER_PID=

cleanup() {
	local rc=$?
	[ -n "$HUP_PID" ] && kill "$HUP_PID" 2>/dev/null
	[ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	stop_all
	if [ "${KEEP:-0}" = 1 ]; then
		echo "bench: logs kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "$*" | tee -a "$NOTES" >&2; }

# --- build what the bench needs beyond `make all` ---------------------------
make -s -C "$ROOT/bench" BUILD="$BUILD" >/dev/null
# the test upstream (the fan-out's target) is built by the top Makefile's own rule
REL_BUILD=${BUILD#"$ROOT"/}
# and so is the fixture of the crash-loop row (a plugin that segfaults on
# {"crash": true}; a test fixture, never in build/plugins)
make -s -C "$ROOT" BUILD="$REL_BUILD" "$REL_BUILD/tests/upstream" "$REL_BUILD/fixtures/crash_sync.so" >/dev/null
for b in "$BUILD/hookd" "$BUILD/bench/ref" "$BUILD/bench/c10k" "$BUILD/tests/upstream" "$BUILD/plugins/cpu.so" \
	"$BUILD/plugins/delay.so" "$BUILD/fixtures/crash_sync.so"; do
	[ -x "$b" ] || [ -f "$b" ] || { echo "bench: missing $b (run make all)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench: wrk is not installed (scripts/deps.sh bench)" >&2; exit 1; }

# every connection is a descriptor: the upstream holds ~1000 at once
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
setup_pinning

# --- request bodies ----------------------------------------------------------
SMALL=$TMP/small.json
printf '%s' '{"id":"evt_1042","type":"order.paid","order":7,"amount":1999,"currency":"EUR","ok":true,"tags":["a","b"]}' >"$SMALL"
CPUBODY=$TMP/cpu.json
# the crash loop's bodies: crash_sync segfaults on the first, echoes the second
CRASHBODY=$TMP/crash.json
printf '{"crash":true}' >"$CRASHBODY"
CALMBODY=$TMP/calm.json
printf '{"crash":false}' >"$CALMBODY"
printf '{"n":%s}' "$CPU_N" >"$CPUBODY"
LARGE=
if [ -n "$PAYLOAD" ]; then
	LARGE=$TMP/large.json
	# minified (real deliveries are compact); Python keeps integers exact
	"$PY" -c 'import json,sys; sys.stdout.write(json.dumps(json.load(open(sys.argv[1])), separators=(",",":"), ensure_ascii=False))' \
		"$PAYLOAD" >"$LARGE"
else
	note "note: no large payload found; large-payload rows skipped (set PAYLOAD=FILE)"
fi

# --- servers -------------------------------------------------------------------
start_ref() {
	start_bg "$LOGS/ref.log" "${PIN_SRV[@]}" "$BUILD/bench/ref" 0
	REF_PID=$BG_PID
	REF_PORT=$(wait_listen "$LOGS/ref.log" "$REF_PID")
}

# start_hookd NAME WORKERS PIN... -- sets H_PID, H_PORT, H_LOG; REACTORS=N
# in the environment: N event loops (default 1)
start_hookd() {
	local name=$1 workers=$2
	shift 2
	hookd_setup "$TMP/$name" "$workers" "${REACTORS:-1}"
	H_LOG=$LOGS/$name.log
	start_bg "$H_LOG" "$@" "$BUILD/hookd" -c "$TMP/$name/hookd.json"
	H_PID=$BG_PID
	H_PORT=$(wait_listen "$H_LOG" "$H_PID")
}

# stop_hookd PID LOG NAME [EXPECTED_RE] -- SIGTERM; hookd must exit 0
# (recorded if not). Error/warn lines of its log are problems, except those
# matching EXPECTED_RE (the crash row's crashes), which are only counted.
stop_hookd() {
	local pid=$1 log=$2 name=$3 expect=${4:-} rc=0
	stop_pid "$pid" TERM || rc=$?
	if [ "$rc" != 0 ]; then
		note "PROBLEM: hookd ($name) exited with status $rc after SIGTERM; last log lines:"
		tail -n 20 "$log" | sed 's/^/  | /' | tee -a "$NOTES" >&2
	fi
	local bad lines
	lines=$(grep -E ' (error|warn) ' "$log" || true)
	if [ -n "$expect" ] && [ -n "$lines" ]; then
		local nexp
		nexp=$(grep -c -E -e "$expect" <<<"$lines" || true)
		[ "$nexp" -gt 0 ] && note "note: hookd ($name) logged $nexp expected error line(s) (crashes of the crash loop)"
		lines=$(grep -v -E -e "$expect" <<<"$lines" || true)
	fi
	bad=0
	[ -n "$lines" ] && bad=$(wc -l <<<"$lines")
	if [ "$bad" -gt 0 ]; then
		note "PROBLEM: hookd ($name) logged $bad error/warn line(s), e.g.:"
		head -n 5 <<<"$lines" | sed 's/^/  | /' | tee -a "$NOTES" >&2
	fi
}

PEER=1
if [ "${SKIP_PEER:-0}" = 1 ]; then
	PEER=0
	note "note: FastAPI peer skipped (SKIP_PEER=1)"
elif ! "$PY" -c 'import fastapi, uvicorn' 2>/dev/null; then
	PEER=0
	note "note: FastAPI peer skipped: $PY cannot import fastapi and uvicorn (scripts/deps.sh bench)"
fi
# nginx `return 200`: the ceiling a transport is measured against (issue 12),
# one worker, pinned as the servers; its rows join the echo scenarios
NGX=1 NGX_PID= NGX_PORT=
if [ "${SKIP_NGINX:-0}" = 1 ]; then
	NGX=0
	note "note: nginx rows skipped (SKIP_NGINX=1)"
elif ! want nginx; then
	NGX=0
elif [ -z "$NGINX" ]; then
	NGX=0
	note "note: nginx rows skipped: nginx is not installed (scripts/deps.sh bench installs nginx-light)"
fi
# stop_nginx -- SIGTERM (nginx's fast shutdown); like hookd it must exit 0,
# and its error log must hold nothing at [error] or worse
stop_nginx() {
	local rc=0 lines
	[ -n "$NGX_PID" ] || return 0
	stop_pid "$NGX_PID" TERM || rc=$?
	[ "$rc" != 0 ] && note "PROBLEM: nginx exited with status $rc after SIGTERM"
	lines=$(grep -E '\[(error|crit|alert|emerg)\]' "$TMP/nginx/error.log" 2>/dev/null || true)
	if [ -n "$lines" ]; then
		note "PROBLEM: nginx logged $(wc -l <<<"$lines") error line(s), e.g.:"
		head -n 5 <<<"$lines" | sed 's/^/  | /' | tee -a "$NOTES" >&2
	fi
	NGX_PID=
}
start_peer() {
	PEER_PORT=$(free_port)
	PYTHONDONTWRITEBYTECODE=1 start_bg "$LOGS/fastapi.log" "${PIN_SRV[@]}" "$PY" -m uvicorn --app-dir "$ROOT/bench" \
		peer_fastapi:app --host 127.0.0.1 --port "$PEER_PORT" --no-access-log --log-level warning
	PEER_PID=$BG_PID
	wait_http "$PEER_PORT" "$PEER_PID" 30 || { echo "bench: the FastAPI peer did not start:" >&2;
		cat "$LOGS/fastapi.log" >&2; exit 1; }
}

# --- rows and scenarios ------------------------------------------------------
# The machine is noisy (other tenants share its 2 CPUs; a server's req/s can
# move by 2x between two back-to-back runs), so a scenario runs its servers
# in ROUNDS interleaved rounds (ref, hookd, peer, ref, hookd, peer, ...)
# and the table reports the median round per server: a disturbance hits
# every server of the scenario alike instead of one of them.

# prime PORT PATH BODY N -- N calls at once with curl --parallel, each
# waited for. The fan-out rows run it before each round: when wrk stops, the
# calls in flight are cancelled (their clients left) and hookd closes their
# ~1000 upstream transfers and connections, as it must; the next round
# would then open ~1000 connections at once against the upstream's listen
# backlog of 128 (libevent's evhttp_bind_socket), and every SYN dropped
# there costs 1 s (TCP's initial retransmission timeout): the p99 would
# measure that backlog. Calls that complete leave their connections in the
# pool for the measured round.
prime() {
	local port=$1 path=$2 body=$3 n=$4 i urls=() codes
	for ((i = 0; i < n; i++)); do urls+=(-o /dev/null "http://127.0.0.1:$port$path"); done
	codes=$(curl -s -m 30 -Z --parallel-max "$n" --parallel-immediate -H 'Content-Type: application/json' \
		--data-binary @"$body" -w '%{http_code}\n' "${urls[@]}" 2>/dev/null | sort | uniq -c | tr -s ' \n' ' ')
	case "$codes" in
	" $n 200 ") ;;
	*) note "priming $path on port $port: $n calls answered:$codes(expected $n x 200)" ;;
	esac
}

# wrk_flags FLAGS -- from a row's FLAGS, sets WRK_T (wrk's threads: "t=N",
# default 1), WRK_PIN (a command prefix: wrk on CPU 1 by default, "wrkpin=0"
# on CPU 0, "wrkpin=any" unpinned), WRK_METHOD ("get": GET without a body)
# and WRK_SCEN (the row's scenario when "scen=NAME" overrides the
# scenario's: rows of another scenario interleaved with this one's rounds).
wrk_flags() {
	local flags=$1
	WRK_T=1 WRK_METHOD=POST WRK_SCEN=
	WRK_PIN=("${PIN_LOAD[@]}")
	[[ $flags =~ (^|,)t=([0-9]+) ]] && WRK_T=${BASH_REMATCH[2]}
	if [ ${#PIN_LOAD[@]} -gt 0 ]; then
		case "$flags" in
		*wrkpin=any*) WRK_PIN=() ;;
		*wrkpin=0*) WRK_PIN=("${PIN_SRV[@]}") ;;
		esac
	fi
	[[ $flags =~ (^|,)get(,|$) ]] && WRK_METHOD=GET
	[[ $flags =~ (^|,)scen=([^,]+) ]] && WRK_SCEN=${BASH_REMATCH[2]}
	return 0
}

# crash_loop PORT crash|calm SECONDS -- every 100 ms for SECONDS, one
# POST /hooks/crash with {"crash":true} (crash: crash_sync segfaults in its
# isolated process) or {"crash":false} (calm: it echoes), each a background
# curl (a call may wait for a process being respawned: it must not delay the
# next one); each answer's status code is appended to $TMP/loop-MODE.codes
# (000: no answer within 10 s). On CPU 1 with wrk, as the SIGHUP loop; waits
# for its curls, so it ends at most 10 s after the run.
crash_loop() {
	local port=$1 mode=$2 dur=$3 body=$CALMBODY now next end wait_us
	[ "$mode" = crash ] && body=$CRASHBODY
	if [ ${#PIN_LOAD[@]} -gt 0 ]; then taskset -cp 1 "$BASHPID" >/dev/null 2>&1 || true; fi
	now=${EPOCHREALTIME/./}
	next=$now end=$((now + dur * 1000000))
	# paced to absolute times (every 100 ms from the start), so the forks of
	# curl and sleep do not stretch the period
	while [ "$next" -lt "$end" ]; do
		curl -s -o /dev/null -m 10 -w '%{http_code}\n' -XPOST -H 'Content-Type: application/json' \
			--data-binary @"$body" "http://127.0.0.1:$port/hooks/crash" >>"$TMP/loop-$mode.codes" 2>/dev/null &
		next=$((next + 100000))
		now=${EPOCHREALTIME/./}
		wait_us=$((next - now))
		[ "$wait_us" -gt 0 ] && sleep "$(printf '0.%06d' "$wait_us")"
	done
	wait
}

# measure SCENARIO SERVER PID PORT PATH BODY CONNS NOTE FLAGS ROUND -- one wrk
# run; FLAGS (comma-separated): "check" counts 200 bodies containing
# "error" (fan-out), "prime" runs prime() first, "dur=S" sets the run's
# length, "hup" sends hookd a SIGHUP every 100 ms during the run, "loop=crash"
# (or "loop=calm") POSTs {"crash":true} (or false) to the same server's
# /hooks/crash every 100 ms during the run (crash_loop); and those of
# wrk_flags (threads, pinning, GET, scenario). Appends to
# $RESULTS: scenario server round req/s p50_us p99_us errors bad_bodies
# cpu_us_per_call ctxsw_per_call mean_latency_us note -- cpu and ctxsw from
# the server's /proc counters (all threads) around the run.
measure() {
	local scen=$1 srv=$2 spid=$3 port=$4 path=$5 body=$6 conns=$7 rnote=$8 flags=$9 round=${10} out line check=
	local url="http://127.0.0.1:$port$path" hup='' dur=$DURATION
	wrk_flags "$flags"
	[ -n "$WRK_SCEN" ] && scen=$WRK_SCEN
	out="$LOGS/$(echo "$scen-$srv-$round" | tr -c 'A-Za-z0-9_.-' '_').txt"
	[[ $flags =~ dur=([0-9]+) ]] && dur=${BASH_REMATCH[1]}
	case "$flags" in *check*) check='"error"' ;; esac
	case "$flags" in *prime*) prime "$port" "$path" "$body" "$conns"; quiesce "${SERVER_PIDS[@]}" ;; esac
	case "$flags" in
	*hup*)
		# a background loop on CPU 1 with wrk, bounded by the run's length
		(
			if [ ${#PIN_LOAD[@]} -gt 0 ]; then taskset -cp 1 "$BASHPID" >/dev/null 2>&1 || true; fi
			end=$((SECONDS + dur))
			while [ $SECONDS -lt $end ] && kill -HUP "$HOOKD_PID" 2>/dev/null; do
				sleep 0.1
			done
		) &
		hup=$!
		HUP_PID=$hup
		;;
	esac
	local loop=
	if [[ $flags =~ (^|,)loop=([a-z]+) ]]; then
		crash_loop "$port" "${BASH_REMATCH[2]}" "$dur" &
		loop=$!
		LOOP_PID=$loop
	fi
	local u0 u1
	u0=$(proc_usage "$spid")
	METHOD=$WRK_METHOD CHECK_BODY=$check BODY_FILE=$body "${WRK_PIN[@]}" wrk -t"$WRK_T" -c"$conns" -d"${dur}s" \
		--timeout "$WRK_TIMEOUT" --latency -s "$ROOT/bench/post.lua" "$url" >"$out" 2>&1 || true
	u1=$(proc_usage "$spid")
	if [ -n "$hup" ]; then
		wait "$hup" 2>/dev/null || true
		HUP_PID=
	fi
	if [ -n "$loop" ]; then
		wait "$loop" 2>/dev/null || true
		LOOP_PID=
	fi
	line=$(grep '^BENCH ' "$out" || true)
	if [ -z "$line" ]; then
		note "PROBLEM: wrk gave no result for $scen / $srv (round $round); its output:"
		sed 's/^/  | /' "$out" | tee -a "$NOTES" >&2
		printf '%s\t%s\t%s\t0\t0\t0\t-1\t0\t0\t0\t0\t%s\n' "$scen" "$srv" "$round" "wrk failed" >>"$RESULTS"
		return 0
	fi
	# requests duration_us p50_us p99_us status connect read write timeout bad_body mean_us
	set -- $(echo "$line" | sed 's/[a-z_0-9]*=//g; s/^BENCH //')
	local rps errors cpu sw
	rps=$(awk -v n="$1" -v d="$2" 'BEGIN { printf "%.1f", n / (d / 1e6) }')
	errors=$(($5 + $6 + $7 + $8 + $9 + ${10}))
	read -r cpu sw <<<"$(echo "$u0 $u1" | awk -v n="$1" -v hz="$(getconf CLK_TCK)" \
		'{ if (n > 0) printf "%.1f %.2f", ($3 - $1) / hz * 1e6 / n, ($4 - $2) / n; else print "0 0" }')"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$srv" "$round" "$rps" "$3" "$4" \
		"$errors" "${10}" "$cpu" "$sw" "${11}" "$rnote" >>"$RESULTS"
	if [ "$errors" != 0 ]; then
		note "errors in $scen / $srv (round $round): status>=400 $5, connect $6, read $7, write $8," \
			"timeout $9, bodies with \"error\" ${10} (wrk output kept with KEEP=1: $(basename "$out"))"
	fi
	printf '  %-17s %-10s round %s %9s req/s  p50 %7.2f ms  p99 %8.2f ms  errors %s  cpu %s us/call  %s ctxsw/call\n' \
		"$scen" "$srv" "$round" "$rps" "$(awk -v v="$3" 'BEGIN{print v/1000}')" \
		"$(awk -v v="$4" 'BEGIN{print v/1000}')" "$errors" "$cpu" "$sw" >&2
}

# scenario NAME SPEC... -- SPEC is "server|pid|port|path|body|conns|note|flags";
# a warm-up per server (not for "hup" and "nowarm" rows), then ROUNDS
# interleaved rounds of every server.
scenario() {
	local scen=$1 spec r srv spid port path body conns rnote flags
	shift
	echo "$scen (at ${SECONDS} s)" >&2
	for spec in "$@"; do
		IFS='|' read -r srv spid port path body conns rnote flags <<<"$spec"
		case "$flags" in *hup* | *nowarm* | *loop=*) continue ;; esac # same server as its plain row; no warm-up wanted
		if [ "$WARMUP" != 0 ]; then
			wrk_flags "$flags"
			METHOD=$WRK_METHOD BODY_FILE=$body "${WRK_PIN[@]}" wrk -t"$WRK_T" -c"$conns" -d"${WARMUP}s" --timeout "$WRK_TIMEOUT" \
				-s "$ROOT/bench/post.lua" "http://127.0.0.1:$port$path" >/dev/null 2>&1 || true
			quiesce "${SERVER_PIDS[@]}"
		fi
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		for spec in "$@"; do
			IFS='|' read -r srv spid port path body conns rnote flags <<<"$spec"
			measure "$scen" "$srv" "$spid" "$port" "$path" "$body" "$conns" "$rnote" "$flags" "$r"
			quiesce "${SERVER_PIDS[@]}"
		done
	done
}

alive() { # alive PID NAME -- record a server that died during a row
	if ! kill -0 "$1" 2>/dev/null; then
		note "PROBLEM: $2 (pid $1) is no longer running"
		return 1
	fi
}

# a sanity check: one call, its answer must contain a string
check_answer() { # check_answer NAME PORT PATH BODYFILE EXPECT_SUBSTRING
	local got
	got=$(curl -s -m 10 -XPOST -H 'Content-Type: application/json' --data-binary @"$4" \
		"http://127.0.0.1:$2$3" || true)
	case "$got" in
	*"$5"*) ;;
	*) note "PROBLEM: $1 $3 answered '${got:0:200}' (expected '$5')" ;;
	esac
}

echo "hookd benchmark: $(nproc) CPU(s), $PINNING; $ROUNDS rounds of ${DURATION} s per row," \
	"${WARMUP} s warm-up; wrk -t1 -c$CONNS; hookd workers=$WORKERS" >&2

start_ref
start_hookd hookd "$WORKERS" "${PIN_SRV[@]}"
HOOKD_PID=$H_PID HOOKD_PORT=$H_PORT HOOKD_LOG=$H_LOG
[ "$PEER" = 1 ] && start_peer
if [ "$NGX" = 1 ]; then
	start_nginx "$TMP/nginx" "$LOGS/nginx.log" "${PIN_SRV[@]}" ||
		{ echo "bench: nginx did not start" >&2; exit 1; }
	check_answer nginx "$NGX_PORT" /hooks/echo_async "$SMALL" '{"ok":true}'
fi
# The upstream stands for remote services: it must not take CPU 0 from the
# server under test, so it shares CPU 1 with wrk (which needs little at the
# fan-out's ~1000 calls/s). Its ~10k answers/s take about a quarter of a
# core; unpinned, the scheduler would put part of that on CPU 0, and the row
# would measure the upstream along with the server.
start_bg "$LOGS/upstream.log" "${PIN_LOAD[@]}" "$BUILD/tests/upstream" 0
UP_PID=$BG_PID
UP_PORT=$(wait_listen "$LOGS/upstream.log" "$UP_PID")

FANBODY=$TMP/fanout.json
printf '{"url":"http://127.0.0.1:%s/delay/%s","count":%s}' "$UP_PORT" "$FANOUT_DELAY_MS" "$FANOUT_COUNT" >"$FANBODY"

# same answers everywhere before timing anything
EXPECT_HASH=$(curl -s -m 10 -XPOST --data-binary @"$CPUBODY" "http://127.0.0.1:$REF_PORT/hooks/cpu" |
	sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p')
for s in "hookd $HOOKD_PORT" ${PEER_PORT:+"fastapi $PEER_PORT"}; do
	set -- $s
	[ "$1" = fastapi ] && [ "$PEER" != 1 ] && continue
	check_answer "$1" "$2" /hooks/echo "$SMALL" '"evt_1042"'
	check_answer "$1" "$2" /hooks/echo_async "$SMALL" '"evt_1042"'
	check_answer "$1" "$2" /hooks/mixed "$SMALL" '"trace":["sync step","async step"]'
	check_answer "$1" "$2" /hooks/fanout "$FANBODY" '"status":200'
done
check_answer ref "$REF_PORT" /hooks/echo "$SMALL" '"evt_1042"'

# --- scenarios ---------------------------------------------------------------
# The cpu rows need their own hookd instances (1 and 2 workers), started
# now so that they can be interleaved with the others.
start_hookd hookd-w1 1 "${PIN_SRV[@]}"
W1_PID=$H_PID W1_PORT=$H_PORT W1_LOG=$H_LOG
# two workers get both CPUs (pinned to CPU 0 they could not scale); wrk
# stays on CPU 1, where it needs little at this rate
start_hookd hookd-w2 2 "${PIN_BOTH[@]}"
W2_PID=$H_PID W2_PORT=$H_PORT W2_LOG=$H_LOG
check_answer hookd-w1 "$W1_PORT" /hooks/cpu "$CPUBODY" "\"hash\":\"$EXPECT_HASH\""
check_answer hookd-w2 "$W2_PORT" /hooks/cpu "$CPUBODY" "\"hash\":\"$EXPECT_HASH\""
if [ "$PEER" = 1 ]; then
	check_answer fastapi "$PEER_PORT" /hooks/cpu "$CPUBODY" "\"hash\":\"$EXPECT_HASH\""
fi
# The reactors rows: 1 and 2 event loops, both unpinned (so is wrk, -t2):
# the issue's "2 reactors on 2 cores (load generator unpinned)".
REACTORS=1 start_hookd hookd-r1 "$WORKERS"
R1_PID=$H_PID R1_PORT=$H_PORT R1_LOG=$H_LOG
REACTORS=2 start_hookd hookd-r2 "$WORKERS"
R2_PID=$H_PID R2_PORT=$H_PORT R2_LOG=$H_LOG
for s in "hookd-r1 $R1_PORT" "hookd-r2 $R2_PORT"; do
	set -- $s
	check_answer "$1" "$2" /hooks/echo "$SMALL" '"evt_1042"'
	check_answer "$1" "$2" /hooks/echo_async "$SMALL" '"evt_1042"'
done
case "$(curl -s -m 10 "http://127.0.0.1:$R2_PORT/health")" in
*'"reactors":2'*) ;;
*) note "PROBLEM: hookd-r2's /health does not report \"reactors\":2" ;;
esac
# The isolation rows (issue 9): the same config as the main hookd with echo
# and echo_async isolated (isolate_procs 2, hookd's default; pinned as the
# main hookd, so the plugin processes, which inherit the affinity, share its
# CPU); and a hookd whose crash_sync fixture is isolated and may crash
# without end (quarantine_after 1000000; quarantine_window_s 1, the least,
# so the respawn backoff, which doubles with each crash of the window, stays
# short and the plugin crashes as often as it can), echo in-process.
ISO_PID= CRASH_PID=
if want isolate; then
	HOOKD_ISOLATE="echo echo_async" start_hookd hookd-iso "$WORKERS" "${PIN_SRV[@]}"
	ISO_PID=$H_PID ISO_PORT=$H_PORT ISO_LOG=$H_LOG
	check_answer hookd-iso "$ISO_PORT" /hooks/echo "$SMALL" '"evt_1042"'
	check_answer hookd-iso "$ISO_PORT" /hooks/echo_async "$SMALL" '"evt_1042"'
	case "$(curl -s -m 10 "http://127.0.0.1:$ISO_PORT/plugins")" in
	*'"isolated":{'*) ;;
	*) note "PROBLEM: hookd-iso's GET /plugins shows no isolated plugin" ;;
	esac
	read -r _ _ ISO_PROCS <<<"$(family_usage "$ISO_PID")"
	HOOKD_ISOLATE=crash_sync HOOKD_FIXTURES=crash_sync \
		HOOKD_EXTRA='"quarantine_after": 1000000, "quarantine_window_s": 1' \
		start_hookd hookd-crash "$WORKERS" "${PIN_SRV[@]}"
	CRASH_PID=$H_PID CRASH_PORT=$H_PORT CRASH_LOG=$H_LOG
	check_answer hookd-crash "$CRASH_PORT" /hooks/echo "$SMALL" '"evt_1042"'
	check_answer hookd-crash "$CRASH_PORT" /hooks/crash "$CALMBODY" '"crash":false'
	check_answer hookd-crash "$CRASH_PORT" /hooks/crash "$CRASHBODY" '"outcome":"crashed"'
fi
# The access log's cost (issue 10): the main hookd's config plus
# "access_log" to a file (text, the default format), pinned as the main
# hookd; the row compares the two on echo_async.
ALOG_PID=
if want alog; then
	HOOKD_EXTRA='"access_log": "access.log"' start_hookd hookd-alog "$WORKERS" "${PIN_SRV[@]}"
	ALOG_PID=$H_PID ALOG_PORT=$H_PORT ALOG_LOG=$H_LOG
	check_answer hookd-alog "$ALOG_PORT" /hooks/echo_async "$SMALL" '"evt_1042"'
	grep -q ' status=200 ' "$TMP/hookd-alog/access.log" 2>/dev/null ||
		note "PROBLEM: hookd-alog wrote no access log line"
fi
SERVER_PIDS=("$REF_PID" "$HOOKD_PID" "$W1_PID" "$W2_PID" "$R1_PID" "$R2_PID" "$UP_PID" ${PEER_PID:+"$PEER_PID"}
	${ISO_PID:+"$ISO_PID"} ${CRASH_PID:+"$CRASH_PID"} ${ALOG_PID:+"$ALOG_PID"} ${NGX_PID:+"$NGX_PID"})

# with_peer SPEC... -- S=(SPEC... but the peer's, "fastapi|...", only when
# the peer runs, and nginx's, "nginx|...", only when nginx runs)
with_peer() {
	S=()
	local spec
	for spec in "$@"; do
		case "$spec" in
		fastapi\|*) [ "$PEER" = 1 ] && S+=("$spec") ;;
		nginx\|*) [ "$NGX" = 1 ] && S+=("$spec") ;;
		*) S+=("$spec") ;;
		esac
	done
	return 0
}

# nginx gets the same request as hookd (its `location /` answers any path)
NGX_NOTE="return 200, 1 worker"
with_peer "ref|$REF_PID|$REF_PORT|/hooks/echo|$SMALL|$CONNS||" \
	"hookd|$HOOKD_PID|$HOOKD_PORT|/hooks/echo_async|$SMALL|$CONNS||" \
	"nginx|${NGX_PID:-}|${NGX_PORT:-}|/hooks/echo_async|$SMALL|$CONNS|$NGX_NOTE|" \
	"fastapi|${PEER_PID:-}|${PEER_PORT:-}|/hooks/echo_async|$SMALL|$CONNS|async def|"
{ want echo_async || want nginx; } && scenario "echo_async" "${S[@]}"

want alog && scenario "access log" \
	"access_log off|$HOOKD_PID|$HOOKD_PORT|/hooks/echo_async|$SMALL|$CONNS|the main hookd|" \
	"access_log file|$ALOG_PID|$ALOG_PORT|/hooks/echo_async|$SMALL|$CONNS|text, a line per call|"

with_peer "ref|$REF_PID|$REF_PORT|/hooks/echo|$SMALL|$CONNS|no pool|" \
	"hookd|$HOOKD_PID|$HOOKD_PORT|/hooks/echo|$SMALL|$CONNS|workers=$WORKERS|" \
	"nginx|${NGX_PID:-}|${NGX_PORT:-}|/hooks/echo|$SMALL|$CONNS|$NGX_NOTE|" \
	"fastapi|${PEER_PID:-}|${PEER_PORT:-}|/hooks/echo|$SMALL|$CONNS|plain def|"
{ want echo || want nginx; } && scenario "echo (sync)" "${S[@]}"

with_peer "ref|$REF_PID|$REF_PORT|/hooks/echo|$SMALL|$CONNS|1 parse+print|" \
	"hookd|$HOOKD_PID|$HOOKD_PORT|/hooks/mixed|$SMALL|$CONNS|tag>tag_async>echo|" \
	"fastapi|${PEER_PID:-}|${PEER_PORT:-}|/hooks/mixed|$SMALL|$CONNS||"
want mixed && scenario "mixed 3-step" "${S[@]}"

if [ -n "$LARGE" ]; then
	LSIZE="$(wc -c <"$LARGE") B github-push-1"
	with_peer "ref|$REF_PID|$REF_PORT|/hooks/echo|$LARGE|$CONNS|$LSIZE|" \
		"hookd|$HOOKD_PID|$HOOKD_PORT|/hooks/echo_async|$LARGE|$CONNS|$LSIZE|" \
		"fastapi|${PEER_PID:-}|${PEER_PORT:-}|/hooks/echo_async|$LARGE|$CONNS|$LSIZE|"
	want large && scenario "large echo_async" "${S[@]}"
fi

with_peer "ref|$REF_PID|$REF_PORT|/hooks/cpu|$CPUBODY|$CPU_CONNS|inline, CPU 0|" \
	"hookd w=1|$W1_PID|$W1_PORT|/hooks/cpu|$CPUBODY|$CPU_CONNS|CPU 0|" \
	"hookd w=2|$W2_PID|$W2_PORT|/hooks/cpu|$CPUBODY|$CPU_CONNS|CPUs 0,1|" \
	"fastapi|${PEER_PID:-}|${PEER_PORT:-}|/hooks/cpu|$CPUBODY|$CPU_CONNS|pure Python, CPU 0|"
want cpu && scenario "cpu" "${S[@]}"

# per_reactor PORT -- hookd's calls_per_reactor from GET /health, "a b ..."
per_reactor() {
	curl -s -m 10 "http://127.0.0.1:$1/health" |
		sed -n 's/.*"calls_per_reactor":\[\([0-9,]*\)\].*/\1/p' | tr ',' ' '
}
# reactor_shares BEFORE AFTER -- each reactor's share of the calls in between, "51/49"
reactor_shares() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " "); t = 0
		for (i = 1; i <= n; i++) { d[i] = y[i] - x[i]; t += d[i] }
		for (i = 1; i <= n; i++) printf "%s%.0f", (i > 1 ? "/" : ""), (t > 0 ? 100 * d[i] / t : 0) }'
}
if want reactors; then
RSPLIT0=$(per_reactor "$R2_PORT")
scenario "reactors: async" \
	"hookd r=1|$R1_PID|$R1_PORT|/hooks/echo_async|$SMALL|$CONNS|unpinned, wrk -t2 unpinned|t=2,wrkpin=any" \
	"hookd r=2|$R2_PID|$R2_PORT|/hooks/echo_async|$SMALL|$CONNS|unpinned, wrk -t2 unpinned|t=2,wrkpin=any"
RSPLIT1=$(per_reactor "$R2_PORT")
scenario "reactors: sync" \
	"hookd r=1|$R1_PID|$R1_PORT|/hooks/echo|$SMALL|$CONNS|workers=$WORKERS; unpinned, wrk -t2 unpinned|t=2,wrkpin=any" \
	"hookd r=2|$R2_PID|$R2_PORT|/hooks/echo|$SMALL|$CONNS|workers=$WORKERS; unpinned, wrk -t2 unpinned|t=2,wrkpin=any"
RSPLIT2=$(per_reactor "$R2_PORT")
SPLIT_ASYNC=$(reactor_shares "$RSPLIT0" "$RSPLIT1")
SPLIT_SYNC=$(reactor_shares "$RSPLIT1" "$RSPLIT2")
fi

# --- isolation (issue 9) -------------------------------------------------------
# isolated vs in-process: the main hookd and hookd-iso (same config, same
# workers, same CPU; echo and echo_async in 2 child processes each). Their
# cpu us/call counts the plugin processes too (proc_usage: hookd and all its
# descendants, with the CPU of the children it reaped).
# The crash loop: hookd-crash's /hooks/echo (in-process) with nothing else,
# with a calm loop (10 {"crash":false} calls/s to the isolated crash_sync:
# the loop's own cost, curl forks on wrk's CPU and the round trips), and with
# the crash loop (10 {"crash":true}/s: each crashes the process it reaches,
# 502, respawned after the backoff; calls arriving meanwhile wait for it).
CRASHES=0 LOOP_CRASH= LOOP_CALM=
if want isolate; then
	scenario "isolated echo (sync)" \
		"in-process|$HOOKD_PID|$HOOKD_PORT|/hooks/echo|$SMALL|$CONNS|workers=$WORKERS|" \
		"isolated|$ISO_PID|$ISO_PORT|/hooks/echo|$SMALL|$CONNS|workers=$WORKERS; $ISO_PROCS processes|"
	scenario "isolated echo_async" \
		"in-process|$HOOKD_PID|$HOOKD_PORT|/hooks/echo_async|$SMALL|$CONNS||" \
		"isolated|$ISO_PID|$ISO_PORT|/hooks/echo_async|$SMALL|$CONNS|$ISO_PROCS processes|"
	CR0=$(grep -c 'crashed in its isolated process' "$CRASH_LOG" || true)
	rm -f "$TMP/loop-crash.codes" "$TMP/loop-calm.codes"
	scenario "crash loop" \
		"no loop|$CRASH_PID|$CRASH_PORT|/hooks/echo|$SMALL|$CONNS|echo in-process|" \
		"calm/100ms|$CRASH_PID|$CRASH_PORT|/hooks/echo|$SMALL|$CONNS|echo in-process|loop=calm" \
		"crash/100ms|$CRASH_PID|$CRASH_PORT|/hooks/echo|$SMALL|$CONNS|echo in-process|loop=crash"
	sleep 0.5
	CRASHES=$(( $(grep -c 'crashed in its isolated process' "$CRASH_LOG" || true) - CR0 ))
	# "502:38 200:2": how the loops' calls were answered
	tally() { [ -s "$1" ] && sort "$1" | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? " " : ""), $2, $1 }'; return 0; }
	LOOP_CRASH=$(tally "$TMP/loop-crash.codes")
	LOOP_CALM=$(tally "$TMP/loop-calm.codes")
	case " $LOOP_CRASH" in *" 503:"*) note "PROBLEM: the crash loop got 503 answers (quarantined?): $LOOP_CRASH" ;; esac
	case "$(curl -s -m 10 "http://127.0.0.1:$CRASH_PORT/plugins")" in
	*'"quarantined":true'*) note "PROBLEM: hookd-crash quarantined crash_sync (quarantine_after 1000000)" ;;
	esac
	echo "  crash loop: $CRASHES crashes logged by hookd; crash calls answered: ${LOOP_CRASH:-none};" \
		"calm calls answered: ${LOOP_CALM:-none}" >&2
	alive "$ISO_PID" hookd-iso || true
	alive "$CRASH_PID" hookd-crash || true
	check_answer hookd-crash "$CRASH_PORT" /hooks/echo "$SMALL" '"evt_1042"'
	check_answer hookd-crash "$CRASH_PORT" /hooks/crash "$CALMBODY" '"crash":false'
fi

# The upstream alone at the fan-out's concurrency (UP_CONNS = 1000
# connections on /delay/100, GET as the fan-out's sub-requests), in the
# fan-out's rounds: as pinned there (upstream and wrk share CPU 1), and with
# wrk on the other CPU. Shows how much of the fan-out's gap to its ideal is
# the upstream's own. No warm-up of their own: the fan-out's rounds warm the
# upstream.
UPS="/delay/$FANOUT_DELAY_MS|$SMALL|$UP_CONNS"
with_peer "hookd|$HOOKD_PID|$HOOKD_PORT|/hooks/fanout|$FANBODY|$FANOUT_CONNS||check,prime,dur=$FANOUT_DURATION" \
	"fastapi|${PEER_PID:-}|${PEER_PORT:-}|/hooks/fanout|$FANBODY|$FANOUT_CONNS|asyncio streams|check,prime,dur=$FANOUT_DURATION" \
	"upstream, wrk CPU 1|$UP_PID|$UP_PORT|$UPS|wrk on the upstream's CPU, as in the fan-out|get,nowarm,dur=$FANOUT_DURATION,scen=upstream direct" \
	"upstream, wrk CPU 0|$UP_PID|$UP_PORT|$UPS|wrk on the other CPU|get,nowarm,dur=$FANOUT_DURATION,wrkpin=0,scen=upstream direct"
# fewer, longer rounds: wrk cuts the last 100 ms call of every connection
# off at the end of a run (calls/s understated by up to 0.1 s / duration)
SAVED_ROUNDS=$ROUNDS
ROUNDS=$FANOUT_ROUNDS
want fanout && scenario "fanout" "${S[@]}"
ROUNDS=$SAVED_ROUNDS
alive "$UP_PID" upstream || true

HUPS_BEFORE=$(grep -c 'SIGHUP: reloading' "$HOOKD_LOG" || true)
want reload && scenario "reload" \
	"no HUP|$HOOKD_PID|$HOOKD_PORT|/hooks/echo_async|$SMALL|$CONNS||" \
	"HUP/100ms|$HOOKD_PID|$HOOKD_PORT|/hooks/echo_async|$SMALL|$CONNS||hup"
sleep 0.3
HUPS=$(( $(grep -c 'SIGHUP: reloading' "$HOOKD_LOG" || true) - HUPS_BEFORE ))
GENS=$(( $(grep -c 'info generation [0-9]*:' "$HOOKD_LOG" || true) - 1 ))
for p in "$HOOKD_PID hookd" "$W1_PID hookd-w1" "$W2_PID hookd-w2" "$R1_PID hookd-r1" "$R2_PID hookd-r2" \
	"$REF_PID ref" "$UP_PID upstream" ${NGX_PID:+"$NGX_PID nginx"}; do
	alive $p || true
done
[ -n "$NGX_PID" ] && check_answer nginx "$NGX_PORT" /hooks/echo_async "$SMALL" '{"ok":true}'
check_answer hookd "$HOOKD_PORT" /hooks/echo_async "$SMALL" '"evt_1042"'

# --- stop everything measured, hookd first (it must exit 0) -------------------
stop_hookd "$HOOKD_PID" "$HOOKD_LOG" "main"
stop_hookd "$W1_PID" "$W1_LOG" "workers=1"
stop_hookd "$W2_PID" "$W2_LOG" "workers=2"
stop_hookd "$R1_PID" "$R1_LOG" "reactors=1"
stop_hookd "$R2_PID" "$R2_LOG" "reactors=2"
[ -n "$ISO_PID" ] && stop_hookd "$ISO_PID" "$ISO_LOG" "isolated"
[ -n "$CRASH_PID" ] && stop_hookd "$CRASH_PID" "$CRASH_LOG" "crash loop" 'plugin crash_sync'
stop_nginx
if [ -n "$ALOG_PID" ]; then
	note "note: hookd-alog wrote $(wc -l <"$TMP/hookd-alog/access.log") access log lines"
	stop_hookd "$ALOG_PID" "$ALOG_LOG" "access log"
fi

# --- c10k: N connections, each with a 1 s delay call in flight -----------------
# A dedicated hookd per row (the delay plugin; 2 workers, idle). bench/c10k
# opens C10K_N connections, sends one POST /hooks/delay {"ms": 1000} on each,
# reads every answer, keeps the connections open C10K_HOLD_MS, idle, then
# closes them; meanwhile sample_proc reads hookd's VmRSS, its descriptors and
# its calls_in_flight (GET /health) every 100 ms.

# tcpext NAME... -- TcpExt counters of /proc/net/netstat (this network
# namespace, so other tenants' connections count too)
tcpext() {
	awk -v want="$*" '/^TcpExt:/ { if (!h) { for (i = 2; i <= NF; i++) ix[$i] = i; h = 1; next }
		n = split(want, w, " "); for (j = 1; j <= n; j++) printf "%s%s", (j > 1 ? " " : ""), $(ix[w[j]]) + 0; print "" }' \
		/proc/net/netstat 2>/dev/null || echo "0 0"
}
status_kb() { # status_kb PID FIELD -- e.g. VmRSS, in kB
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# c10k_row REACTORS RATE pinned|unpinned -- one row into $C10K (key=value)
c10k_row() {
	local reactors=$1 rate=$2 mode=$3 name="c10k-r$1-${2}" srvpin=() clipin=() pid port out
	local rss0 fds0 net0 net1 hwm line samp fdl stop peak fdmax flmax nsamp
	if [ "$mode" = pinned ]; then
		srvpin=("${PIN_SRV[@]}")
		clipin=("${PIN_LOAD[@]}")
	fi
	hookd_setup "$TMP/$name" 2 "$reactors"
	start_bg "$LOGS/$name.log" "${srvpin[@]}" "$BUILD/hookd" -c "$TMP/$name/hookd.json"
	pid=$BG_PID
	port=$(wait_listen "$LOGS/$name.log" "$pid")
	check_answer "$name" "$port" /hooks/delay "$DELAY0" '"ms":0'
	sleep 0.2
	rss0=$(status_kb "$pid" VmRSS)
	fdl=(/proc/"$pid"/fd/*)
	fds0=${#fdl[@]}
	samp=$TMP/$name.sample stop=$TMP/$name.stop
	sample_proc "$pid" "$port" "$samp" "$stop" &
	SAMPLER_PID=$!
	net0=$(tcpext ListenOverflows TCPSynRetrans)
	out=$LOGS/$name.txt
	"${clipin[@]}" "$BUILD/bench/c10k" "$port" "$C10K_N" /hooks/delay '{"ms": 1000}' "$C10K_HOLD_MS" "$rate" \
		>"$out" 2>&1 || true
	net1=$(tcpext ListenOverflows TCPSynRetrans)
	touch "$stop"
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=
	hwm=$(status_kb "$pid" VmHWM)
	line=$(grep '^connected=' "$out" || true)
	if [ -z "$line" ]; then
		note "PROBLEM: c10k gave no result (reactors $reactors, rate $rate); its output:"
		sed 's/^/  | /' "$out" | tee -a "$NOTES" >&2
		line="connected=0 answered=0 ok=0 failed=$C10K_N"
	fi
	alive "$pid" "hookd ($name)" || true
	stop_hookd "$pid" "$LOGS/$name.log" "$name"
	set -- $net0 $net1
	read -r peak fdmax flmax nsamp <"$samp" 2>/dev/null || { peak=0 fdmax=0 flmax=0 nsamp=0; }
	echo "reactors=$reactors rate=$rate pinning=$mode n=$C10K_N $line rss0_kb=$rss0 peak_kb=$peak" \
		"hwm_kb=$hwm fds0=$fds0 fds_peak=$fdmax inflight_peak=$flmax samples=$nsamp" \
		"overflows=$(($3 - $1)) synretrans=$(($4 - $2))" >>"$C10K"
	echo "  c10k reactors=$reactors rate=$rate ($mode): $line; peak RSS $((peak / 1024)) MB," \
		"in flight at most $flmax, listen overflows $(($3 - $1))" >&2
}

if [ "${SKIP_C10K:-0}" = 1 ] || ! want c10k; then
	note "note: c10k rows skipped (SKIP_C10K=1 or ONLY)"
else
	echo "c10k (at ${SECONDS} s)" >&2
	DELAY0=$TMP/delay0.json
	printf '{"ms":0}' >"$DELAY0"
	# every connection is a descriptor on both sides (soft limits raised to the
	# hard one above, by run.sh for hookd and by c10k itself), and a local
	# port on the client's side
	read -r PLO PHI </proc/sys/net/ipv4/ip_local_port_range
	HARD=$(ulimit -Hn)
	C10K_LIMITS="open files $HARD (hard), local ports $PLO-$PHI"
	if [ "$HARD" != unlimited ] && [ "$HARD" -lt $((C10K_N + 64)) ]; then
		note "PROBLEM: c10k: the open-file hard limit ($HARD) is below $C10K_N + 64: N lowered to $((HARD - 64))"
		C10K_N=$((HARD - 64))
	fi
	if [ $((PHI - PLO + 1)) -lt $((C10K_N + 1000)) ]; then
		note "PROBLEM: c10k: $((PHI - PLO + 1)) local ports ($PLO-$PHI) for $C10K_N connections: N lowered"
		C10K_N=$((PHI - PLO + 1 - 1000))
	fi
	# reactors 1: hookd on CPU 0, the client on CPU 1, as the wrk rows;
	# reactors 2: both unpinned, as the reactors rows. Each: all N connects
	# at once (rate 0: the client's first form), then paced at C10K_RATE/s
	# (QUICK: not for reactors 2, whose two accept queues take the burst)
	C10K_ROWS=("1 0 pinned" "1 $C10K_RATE pinned" "2 0 unpinned")
	[ "$QUICK" = 1 ] || C10K_ROWS+=("2 $C10K_RATE unpinned")
	for rr in "${C10K_ROWS[@]}"; do
		c10k_row $rr
	done
fi

# --- the table ---------------------------------------------------------------
"$PY" "$ROOT/bench/table.py" "$RESULTS" "$HUPS" "$GENS" "$FANOUT_CONNS" "$FANOUT_DELAY_MS" \
	"$(nproc) CPU(s), $PINNING (except where said); median of $ROUNDS interleaved rounds of ${DURATION} s per row (fan-out and upstream direct: $FANOUT_ROUNDS of ${FANOUT_DURATION} s); wrk -t1 -c$CONNS (cpu -c$CPU_CONNS, fan-out -c$FANOUT_CONNS, upstream direct -c$UP_CONNS, reactors -t2 -c$CONNS); hookd workers=$WORKERS; cpu n=$CPU_N" \
	"c10k=$C10K" "up_conns=$UP_CONNS" "split_async=${SPLIT_ASYNC:-}" "split_sync=${SPLIT_SYNC:-}" \
	"c10k_limits=${C10K_LIMITS:-}" "c10k_hold_ms=$C10K_HOLD_MS" \
	"crashes=$CRASHES" "loop_crash=$LOOP_CRASH" "loop_calm=$LOOP_CALM" "loop_s=$((ROUNDS * DURATION))"
if [ -s "$NOTES" ]; then
	echo
	echo "Notes and problems seen during the run:"
	sed 's/^/  /' "$NOTES"
fi
stop_all

if [ "${SKIP_CALLGRIND:-0}" != 1 ] && want callgrind; then
	echo
	QUICK=$QUICK WORKERS=$WORKERS "$ROOT/bench/callgrind.sh" "$SMALL" ${LARGE:+"$LARGE"}
fi

if want metrics; then
	echo
	QUICK=$QUICK WORKERS=$WORKERS SKIP_CALLGRIND=${SKIP_CALLGRIND:-0} "$ROOT/bench/metrics.sh"
fi

if want verify; then
	echo
	QUICK=$QUICK WORKERS=$WORKERS "$ROOT/bench/verify.sh"
fi
