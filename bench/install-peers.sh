#!/usr/bin/env bash
# install-peers.sh installs the benchmark peers when they are missing:
# nginx, haproxy and nginx's stream module from Debian, Caddy and fortio with
# `go install` into $WEFT_BENCH_CACHE/bin (default $HOME/.cache/weft-bench/bin),
# reused when present. It prints nothing but progress and exits non-zero only
# when fortio (the one load generator) cannot be had; a missing peer is
# reported and that peer is skipped by the harness.
set -u
CACHE="${WEFT_BENCH_CACHE:-$HOME/.cache/weft-bench}"
BIN="$CACHE/bin"
CADDY_VERSION=v2.11.9
FORTIO_VERSION=v1.68.2
mkdir -p "$BIN"
# One installer at a time (a second `make bench` waits for the first).
exec 9>"$CACHE/.install.lock"
flock 9

need_apt=()
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1 || need_apt+=(libnginx-mod-stream)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "bench: installing ${need_apt[*]} from Debian"
	if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${need_apt[@]}" >/dev/null ||
		{ $SUDO apt-get -o DPkg::Lock::Timeout=300 update >/dev/null &&
		  $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${need_apt[@]}" >/dev/null; } ||
		echo "bench: apt-get install ${need_apt[*]} failed; those peers will be skipped" >&2
	# Debian starts the services on install; the harness runs its own instances.
	for s in nginx haproxy; do
		if command -v systemctl >/dev/null 2>&1; then systemctl stop "$s" >/dev/null 2>&1 || true; fi
		if command -v service >/dev/null 2>&1; then service "$s" stop >/dev/null 2>&1 || true; fi
	done
fi

if [ ! -x "$BIN/fortio-$FORTIO_VERSION" ]; then
	echo "bench: go install fortio.org/fortio@$FORTIO_VERSION"
	GOBIN="$BIN" go install "fortio.org/fortio@$FORTIO_VERSION" && mv "$BIN/fortio" "$BIN/fortio-$FORTIO_VERSION" ||
		{ echo "bench: cannot install fortio" >&2; exit 1; }
fi
if [ ! -x "$BIN/caddy-$CADDY_VERSION" ]; then
	echo "bench: go install github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION (takes minutes)"
	GOBIN="$BIN" go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION" && mv "$BIN/caddy" "$BIN/caddy-$CADDY_VERSION" ||
		echo "bench: cannot install caddy; it will be skipped" >&2
fi
exit 0
