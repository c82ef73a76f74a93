#!/bin/sh
# Install the Debian packages a make target needs, when they are missing.
#   scripts/deps.sh build|test|bench|scaleout|fuzz
# Quiet and quick when everything is there (one dpkg-query per package).
set -eu

pkgs="gcc make pkg-config libevent-dev libcjson-dev libcurl4-openssl-dev libssl-dev"
case "${1:-build}" in
build) ;;
test) pkgs="$pkgs libcriterion-dev g++ python3 python3-prometheus-client prometheus systemd" ;; # g++: the C++ plugin fixture; /metrics: its parser and a real Prometheus; systemd: systemd-analyze (the unit's sandbox)
bench) pkgs="$pkgs wrk valgrind python3 python3-fastapi python3-uvicorn util-linux nginx-light" ;; # nginx-light: the `return 200` row (the ceiling a transport is measured against)
scaleout) pkgs="$pkgs nginx-light wrk curl" ;;
fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;; # libFuzzer and the sanitizer runtimes: clang only recommends them
*) echo "usage: $0 build|test|bench|scaleout|fuzz" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "hookd: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "hookd: run as root, or install them: apt-get install -y$missing" >&2
		exit 1
	fi
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# a fresh machine may have no package lists yet
$SUDO apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
	$SUDO apt-get update -qq
	$SUDO apt-get install -y --no-install-recommends $missing
}
