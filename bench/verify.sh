#!/usr/bin/env bash
# bench/verify.sh -- what sender verification costs per call (issue 11):
# `ONLY=verify make bench` runs only it; `make bench` runs it after metrics.
#
# Two hookd, same config and pinning (CPU 0; wrk on CPU 1), the second with
# hooks.echo_async.verify = github (HMAC-SHA256 of the body, one secret);
# both get the same signed request (the unverified one ignores the header),
# a 100-byte JSON body and a 6.5 KB GitHub push payload, in ROUNDS
# interleaved rounds. req/s ratios are medians of per-round ratios.
# Knobs: ROUNDS (5; QUICK: 3), DURATION (3 s; QUICK: 2), WORKERS (2), KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

QUICK=${QUICK:-0}
ROUNDS=${ROUNDS:-$([ "$QUICK" = 1 ] && echo 3 || echo 5)}
DURATION=${DURATION:-$([ "$QUICK" = 1 ] && echo 2 || echo 3)}
WORKERS=${WORKERS:-2}
CONNS=64
SECRET="It's a Secret to Everybody"

make -s -C "$ROOT/bench" BUILD="$BUILD" >/dev/null
command -v wrk >/dev/null || { echo "verify bench: wrk is not installed (scripts/deps.sh bench)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hookd-verify.XXXXXX")
cleanup() {
	local rc=$?
	stop_all
	if [ "${KEEP:-0}" = 1 ]; then echo "verify bench: files kept in $TMP" >&2; else rm -rf "$TMP"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_pinning

SMALL=$TMP/small.json
printf '%s' '{"id":"evt_1042","type":"order.paid","order":7,"amount":1999,"currency":"EUR","ok":true,"tags":["a","b"]}' >"$SMALL"
# a real GitHub push body when that corpus sits beside the project, else ours
BIG=$ROOT/tests/data/payloads/webhook-github-push.json
[ -r "$ROOT/../shared/payloads/github-push-1.json" ] && BIG=$ROOT/../shared/payloads/github-push-1.json

hookd_setup "$TMP/plain" "$WORKERS"
hookd_setup "$TMP/signed" "$WORKERS"
printf '%s\n' "$SECRET" >"$TMP/signed/gh.secret"
sed -i 's|"mixed": { "chain": \["tag", "tag_async", "echo"\] }|&,\n    "echo_async": { "verify": { "scheme": "github", "secret_file": "gh.secret" } }|' \
	"$TMP/signed/hookd.json"
grep -q '"verify"' "$TMP/signed/hookd.json" || { echo "verify bench: could not add verify" >&2; exit 1; }

sig() { openssl dgst -sha256 -hmac "$SECRET" -r <"$1" | cut -d' ' -f1; }

# wrk_rps PORT BODY SIG -- one round, signed; prints req/s (0 when wrk failed)
wrk_rps() { wrk_echo_rps "verify bench" "$1" "$2" -H "X-Hub-Signature-256: sha256=$3"; }

echo "Verification cost (issue 11): $(nproc) CPU(s), $PINNING; echo_async, wrk -t1 -c$CONNS," \
	"$ROUNDS interleaved rounds of ${DURATION} s; hookd workers=$WORKERS"
start_bg "$TMP/plain.log" "${PIN_SRV[@]}" "$BUILD/hookd" -c "$TMP/plain/hookd.json"
P_PID=$BG_PID
P_PORT=$(wait_listen "$TMP/plain.log" "$P_PID")
start_bg "$TMP/signed.log" "${PIN_SRV[@]}" "$BUILD/hookd" -c "$TMP/signed/hookd.json"
S_PID=$BG_PID
S_PORT=$(wait_listen "$TMP/signed.log" "$S_PID")
[ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST --data-binary @"$SMALL" \
	"http://127.0.0.1:$S_PORT/hooks/echo_async")" = 401 ] ||
	echo "verify bench: PROBLEM: the verifying hookd answers an unsigned request" >&2

for body in "$SMALL" "$BIG"; do
	s=$(sig "$body")
	wrk_rps "$P_PORT" "$body" "$s" >/dev/null # warm-up
	wrk_rps "$S_PORT" "$body" "$s" >/dev/null
	P=() S=()
	for ((r = 1; r <= ROUNDS; r++)); do
		quiesce "$P_PID" "$S_PID"
		P+=("$(wrk_rps "$P_PORT" "$body" "$s")")
		quiesce "$P_PID" "$S_PID"
		S+=("$(wrk_rps "$S_PORT" "$body" "$s")")
		printf '  %s round %d: unverified %9s  verified %9s req/s\n' \
			"$(basename "$body")" "$r" "${P[-1]}" "${S[-1]}"
	done
	read -r MP MS R <<<"$("$PY" - "${P[*]}" "${S[*]}" <<'EOF'
import statistics, sys
p, s = ([float(x) for x in a.split()] for a in sys.argv[1:3])
print(statistics.median(p), statistics.median(s),
      statistics.median([y / x for x, y in zip(p, s) if x > 0 and y > 0] or [0]))
EOF
)"
	printf '  %-36s %10s %10s\n' "row (median), $(wc -c <"$body") B body" "req/s" "x unverified"
	printf '  %-36s %10.0f %10s\n' "unverified hook" "$MP" "1.00"
	printf '  %-36s %10.0f %10.3f\n' "verified hook (github, HMAC-SHA256)" "$MS" "$R"
done
stop_pid "$P_PID" TERM || echo "verify bench: PROBLEM: hookd (unverified) exited $?" >&2
stop_pid "$S_PID" TERM || echo "verify bench: PROBLEM: hookd (verified) exited $?" >&2
