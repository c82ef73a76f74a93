#!/bin/sh
# make scaleout: nginx (etc/nginx/hookd-upstream.conf) in front of 3 hookd on
# loopback, under wrk load for a bounded time; during the load, a rolling
# restart of all three (hookd -s stop one: SIGTERM, returns once it exited; start
# it again, wait until it answers /ready 200, next) and then hookd -s reload of all three.
# Reports wrk's totals and the calls that did not get a 2xx; exits 1 unless
# every call succeeded. Not part of the test suite.
#
#   scripts/scaleout.sh [BUILD]      (BUILD: build by default)
#   DURATION=30 CONNECTIONS=32 scripts/scaleout.sh
#   KEEP=1 scripts/scaleout.sh       (keep the temp dir: logs, configs)
#
# Everything lives in a temp dir (nginx's prefix, configs, logs); only
# loopback ports; nginx and the daemons are stopped on exit, by their pids.
set -eu

BUILD=${1:-build}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-32}
N=3
HOOKD=$BUILD/hookd
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for f in "$HOOKD" "$BUILD/plugins/echo.so" "$BUILD/plugins/echo_async.so"; do
	[ -f "$f" ] || { echo "scaleout: $f missing (make all)" >&2; exit 1; }
done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "scaleout: no nginx" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v wrk >/dev/null || { echo "scaleout: no wrk" >&2; exit 1; }

T=$(mktemp -d /tmp/hookd-scaleout-XXXXXX)
NGINX_PID=
WRK_PID=
cleanup() {
	set +e
	[ -n "$WRK_PID" ] && kill "$WRK_PID" 2>/dev/null
	for i in $(seq 1 $N); do
		[ -f "$T/h$i/pid" ] && kill "$(cat "$T/h$i/pid")" 2>/dev/null
	done
	[ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null
	sleep 1
	[ -n "$NGINX_PID" ] && kill -KILL "$NGINX_PID" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "scaleout: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT INT TERM

log() { printf '%s scaleout: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- three hookd, identical but for the port ----------------------------
PORTS=""
for i in $(seq 1 $N); do
	d=$T/h$i
	mkdir -p "$d/plugins" "$d/run"
	install -m 755 "$BUILD/plugins/echo.so" "$BUILD/plugins/echo_async.so" "$d/plugins/"
	chmod 755 "$d/plugins"
	cat > "$d/hookd.json" <<EOF
{
  "listen": "127.0.0.1:0",
  "pid_file": "hookd.pid",
  "plugin_dir": "plugins",
  "runtime_dir": "$d/run",
  "reactors": 1,
  "workers": 2,
  "drain_ms": 5000,
  "log_level": "info",
  "plugins": {"echo": {"reload_mark": 0}}
}
EOF
done

# start_host I [PORT]: start daemon I (on PORT, or a free one), record its pid
start_host() {
	d=$T/h$1
	if [ -n "${2:-}" ]; then
		"$ROOT/$HOOKD" -c "$d/hookd.json" -l "127.0.0.1:$2" >> "$d/log" 2>&1 &
	else
		"$ROOT/$HOOKD" -c "$d/hookd.json" >> "$d/log" 2>&1 &
	fi
	echo $! > "$d/pid"
}

# port_of I: the port daemon I announced (waits for it)
port_of() {
	for _ in $(seq 1 100); do
		p=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/h$1/log" | tail -1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	echo "scaleout: hookd $1 did not start:" >&2
	tail -5 "$T/h$1/log" >&2
	return 1
}

# ready I PORT: wait until GET /ready answers 200 (GET /health where this
# hookd has no /ready yet). Prints which.
ready() {
	for _ in $(seq 1 200); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/ready" || true)
		[ "$code" = 200 ] && { echo /ready; return 0; }
		if [ "$code" = 404 ]; then
			code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/health" || true)
			[ "$code" = 200 ] && { echo "/health (no /ready in this build)"; return 0; }
		fi
		sleep 0.05
	done
	echo "scaleout: hookd $1 never became ready" >&2
	return 1
}

for i in $(seq 1 $N); do
	start_host "$i"
done
for i in $(seq 1 $N); do
	p=$(port_of "$i")
	PORTS="$PORTS $p"
	ready "$i" "$p" >/dev/null
	echo "$p" > "$T/h$i/port"
done
log "3 hookd on ports$PORTS"

# ---- nginx: the shipped upstream file, ports rewritten --------------------
NGPORT=$(free_port)
mkdir -p "$T/nginx/logs" "$T/nginx/tmp"
set -- $PORTS
sed -e "s/127\.0\.0\.1:8081/127.0.0.1:$1/" -e "s/127\.0\.0\.1:8082/127.0.0.1:$2/" \
    -e "s/127\.0\.0\.1:8083/127.0.0.1:$3/" -e "s/^\( *\)listen 80;/\1listen 127.0.0.1:$NGPORT;/" \
    "$ROOT/etc/nginx/hookd-upstream.conf" > "$T/nginx/hookd-upstream.conf"
USER_LINE=
[ "$(id -u)" -eq 0 ] && USER_LINE="user root root;"
cat > "$T/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    # which host served each call: the restart waits until nginx uses a
    # restarted host again (see back_in_nginx)
    log_format hosts '\$upstream_addr|\$upstream_status|\$status';
    access_log $T/nginx/logs/access.log hosts;
    client_body_temp_path $T/nginx/tmp/body;
    proxy_temp_path $T/nginx/tmp/proxy;
    fastcgi_temp_path $T/nginx/tmp/fastcgi;
    uwsgi_temp_path $T/nginx/tmp/uwsgi;
    scgi_temp_path $T/nginx/tmp/scgi;
    include $T/nginx/hookd-upstream.conf;
}
EOF
"$NGINX" -t -q -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log"
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" &
NGINX_PID=$!
for _ in $(seq 1 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST -d '{"warm":1}' \
		"http://127.0.0.1:$NGPORT/hooks/echo" || true)
	[ "$code" = 200 ] && break
	sleep 0.05
done
[ "$code" = 200 ] || { echo "scaleout: nginx does not answer ($code)" >&2; cat "$T/nginx/logs/error.log" >&2; exit 1; }
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') on 127.0.0.1:$NGPORT"

# ---- the load: wrk, POST, counting every non-2xx in Lua ------------------
cat > "$T/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"event":"push","ref":"refs/heads/main","n":[1,2,3]}'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; statuses = {} end
function response(status, headers, body)
	if status < 200 or status > 299 then
		bad = bad + 1
		statuses[status] = (statuses[status] or 0) + 1
	end
end
function done(summary, latency, requests)
	local total, detail = 0, ""
	for _, t in ipairs(threads) do
		total = total + t:get("bad")
		local s = t:get("statuses")
		for code, n in pairs(s) do detail = detail .. " " .. code .. ":" .. n end
	end
	io.write(string.format("non-2xx: %d%s\n", total, detail))
	local e = summary.errors
	io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
		e.connect, e.read, e.write, e.timeout))
	io.write(string.format("total calls: %d in %.1f s\n", summary.requests,
		summary.duration / 1e6))
end
EOF
log "wrk: $CONNECTIONS connections, ${DURATION} s, POST /hooks/echo through nginx"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$T/post.lua" \
	"http://127.0.0.1:$NGPORT/hooks/echo" > "$T/wrk.out" 2>&1 &
WRK_PID=$!
sleep 2

# back_in_nginx PORT OFFSET: wait until the access log, past byte OFFSET,
# shows a 200 that came from PORT. nginx (open source) only has passive
# health: a host it marked down during its restart stays out for
# fail_timeout even once it answers /ready, and taking the next host down
# before nginx has the last one back can leave it with no host at all
# ("no live upstreams", 502): a rolling restart waits for both.
back_in_nginx() {
	for _ in $(seq 1 200); do
		tail -c +"$2" "$T/nginx/logs/access.log" |
			grep -qE "(^|, )127\.0\.0\.1:$1\|([0-9-]+, )*200\|200\$" && return 0
		sleep 0.05
	done
	echo "scaleout: nginx never sent a call to port $1 again" >&2
	return 1
}

# ---- rolling restart ------------------------------------------------------
for i in $(seq 1 $N); do
	pid=$(cat "$T/h$i/pid")
	port=$(cat "$T/h$i/port")
	t0=$(date +%s.%N)
	# hookd -s stop: SIGTERM to the pid in pid_file, returns once it exited
	"$ROOT/$HOOKD" -s stop -c "$T/h$i/hookd.json" -l "127.0.0.1:$port" >/dev/null ||
		{ echo "scaleout: hookd -s stop $i failed" >&2; exit 1; }
	wait "$pid" || { echo "scaleout: hookd $i exited with $?" >&2; exit 1; }
	start_host "$i" "$port"
	how=$(ready "$i" "$port")
	t1=$(date +%s.%N)
	off=$(($(stat -c %s "$T/nginx/logs/access.log") + 1))
	back_in_nginx "$port" "$off"
	t2=$(date +%s.%N)
	log "restart $i/$N: hookd $i (port $port) pid $pid -> $(cat "$T/h$i/pid"), ready on $how after $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s, serving through nginx again after $(awk "BEGIN{printf \"%.2f\", $t2 - $t0}") s"
done

# ---- config reload of all three --------------------------------------------
if "$ROOT/$HOOKD" -h 2>&1 | grep -q -- '-s reload'; then RELOAD=cli; else RELOAD=signal; fi
for i in $(seq 1 $N); do
	d=$T/h$i
	sed -i "s/\"reload_mark\": [0-9]*/\"reload_mark\": $i/" "$d/hookd.json"
	if [ "$RELOAD" = cli ] && grep -q '"pid_file"' "$d/hookd.json"; then
		out=$("$ROOT/$HOOKD" -s reload -c "$d/hookd.json" -l "127.0.0.1:$(cat "$d/port")") ||
			{ echo "scaleout: reload $i failed" >&2; exit 1; }
		log "reload $i/$N: hookd -s reload: $out"
	else
		before=$(grep -c 'generation [0-9]*: ' "$d/log")
		kill -HUP "$(cat "$d/pid")"
		for _ in $(seq 1 200); do
			[ "$(grep -c 'generation [0-9]*: ' "$d/log")" -gt "$before" ] && break
			sleep 0.05
		done
		[ "$(grep -c 'generation [0-9]*: ' "$d/log")" -gt "$before" ] ||
			{ echo "scaleout: reload $i did not apply" >&2; tail -5 "$d/log" >&2; exit 1; }
		grep -q 'reload failed' "$d/log" && { echo "scaleout: reload $i failed" >&2; exit 1; }
	fi
	log "reload $i/$N: hookd $i: $(grep 'generation [0-9]*: ' "$d/log" | tail -1 | sed 's/^[^ ]* [a-z]* //')"
	sleep 1
done

log "waiting for wrk to finish"
wait "$WRK_PID" || true
WRK_PID=
echo "---- wrk ----"
cat "$T/wrk.out"
echo "-------------"

total=$(sed -n 's/^total calls: \([0-9]*\).*/\1/p' "$T/wrk.out")
bad=$(sed -n 's/^non-2xx: \([0-9]*\).*/\1/p' "$T/wrk.out")
serr=$(sed -n 's/^socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\)/\1 \2 \3 \4/p' "$T/wrk.out")
errs=0
for e in $serr; do errs=$((errs + e)); done
retried=$(grep -c '\[error\].*upstream' "$T/nginx/logs/error.log" || true)
disabled=$(grep -c 'upstream server temporarily disabled' "$T/nginx/logs/error.log" || true)
passed=$(grep -c ', ' "$T/nginx/logs/access.log" || true)
log "nginx: $passed call(s) passed to another host after a failed attempt ($retried upstream error(s) logged, hosts disabled $disabled time(s))"
log "total calls $total, non-2xx $bad, socket errors $errs"
if [ -z "$total" ] || [ "$total" -eq 0 ] || [ "$bad" != 0 ] || [ "$errs" != 0 ]; then
	log "FAILED: every call must succeed"
	grep -v 'info\]' "$T/nginx/logs/error.log" | tail -20
	exit 1
fi
log "OK: 0 failed calls across a rolling restart and a reload of all $N hosts"
