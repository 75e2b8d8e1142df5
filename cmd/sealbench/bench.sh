#!/bin/sh
# The HTTP step of `make bench`: a fresh node with development defaults on a
# free loopback port and a temporary data directory, sealed by sealbench with
# CAdES of a 100 KB document and PAdES of a ~75 KB Chromium PDF at the default
# level (B-T), every figure beside the hash-and-sign floor of the same run.
# The node is stopped at the end, whatever happened.
#   SEALBENCH_ARGS   more sealbench flags (e.g. "-d 10s -soak 3m")
#   DURABILITY       the node's database durability (full, the default, or normal)
set -eu
bin=${BIN_DIR:-bin}
dir=$(mktemp -d "${TMPDIR:-/tmp}/sealbench-XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/sealgate" init --data "$dir/data" >/dev/null 2>&1
if [ -n "${DURABILITY:-}" ]; then echo "durability: $DURABILITY" >>"$dir/data/sealgate.yaml"; fi
"$bin/sealgate" serve --data "$dir/data" --listen "127.0.0.1:$port" --log-level warn 2>"$dir/serve.log" &
pid=$!
i=0
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then echo "sealgate did not start:"; cat "$dir/serve.log"; exit 1; fi
	sleep 0.1
done

head -c 102400 /dev/urandom >"$dir/doc-100k.bin"
{
	printf '<!doctype html><html><body style="font-family:sans-serif"><h1>Invoice 2026-0042</h1>'
	printf '<p>Example Manufacturing GmbH — Musterstraße 1, 20095 Hamburg</p>'
	printf '<table border=1 cellpadding=4 style="border-collapse:collapse;font-family:serif"><tr><th>Pos.</th><th>Article</th><th>Quantity</th><th>Price</th></tr>'
	for i in $(seq 1 25); do printf '<tr><td>%d</td><td>Hydraulic valve type %dA — stainless, DN %d</td><td>%d</td><td>%d,50 EUR</td></tr>' "$i" "$i" $((i * 5)) "$i" $((i * 17)); done
	printf '</table><p>Total 1.234,56 EUR. Payable within 30 days.</p><p><i>Thank you</i> <b>for your order</b>.</p></body></html>'
} >"$dir/invoice.html"
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
	--disable-component-update --disable-sync --user-data-dir="$dir/chromium" --no-pdf-header-footer \
	--print-to-pdf="$dir/invoice.pdf" "file://$dir/invoice.html" >/dev/null 2>&1

url="http://127.0.0.1:$port"
# shellcheck disable=SC2086 # SEALBENCH_ARGS are separate flags
"$bin/sealbench" -url "$url" -data "$dir/data" -pid "$pid" -format cades -doc "$dir/doc-100k.bin" ${SEALBENCH_ARGS:-}
echo
# shellcheck disable=SC2086
"$bin/sealbench" -url "$url" -data "$dir/data" -pid "$pid" -format pades -doc "$dir/invoice.pdf" -pdfsign -job 1000 ${SEALBENCH_ARGS:-}
