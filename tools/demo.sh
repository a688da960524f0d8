#!/bin/bash
# make demo: the e2ae MSRP originating flow on loopback, step by step: the ALG's Iq commands,
# a UE speaking TLS with its own certificate, an MSRP peer in the core, then a refused UE.
set -euo pipefail
cd "$(dirname "$0")/.."

IQ=127.0.0.1:2954
MGC=127.0.0.1:2957
CORE_PORT=7394
work=$(mktemp -d)
gw_pid=
peer_pid=
cleanup() {
    [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null || true
    [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
alg() { build/agw-ctl send --listen "$MGC" --gateway "$IQ" "$@"; }

step "1. The gateway starts (Iq on $IQ, its MGC at $MGC) and registers"
build/ims-agw --iq-listen "$IQ" --mgc "$MGC" 2>"$work/gw.log" &
gw_pid=$!

step "2. UE A makes its certificate; the fingerprint goes into its SDP offer"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ue-a \
    -keyout "$work/ue.key" -out "$work/ue.pem" 2>/dev/null
fp=$(openssl x509 -in "$work/ue.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
echo "UE A: a=fingerprint:sha-256 $fp"

step "3. An MSRP peer listens in the core on 127.0.0.1:$CORE_PORT"
build/msrp-peer --listen 127.0.0.1:$CORE_PORT >"$work/core.log" &
peer_pid=$!

step "4. ALG: Reserve AGW Connection Point toward the core (TCP/MSRP; the gateway will connect)"
printf 'C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %s TCP/MSRP *\r\na=setup:passive\r\n}}}}}' \
    "$CORE_PORT" | alg --wait-registration >"$work/core.txt"
ctx=$(sed -n 's/.*Context = \([0-9]*\).*/\1/p' "$work/core.txt" | head -1)
echo "context $ctx, core termination $(grep -o 'ip/core/[0-9]*' "$work/core.txt" | head -1)"

step "5. ALG: Reserve and Configure toward UE A (TCP/TLS/MSRP, a=fingerprint:\$, UE A's fingerprint)"
printf 'C=%s{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\na=fingerprint:sha-256 %s\r\n}}},E=1{tlsc/fail}}}' \
    "$ctx" "$fp" | alg >"$work/access.txt"
port=$(sed -n 's/^m=message \([0-9]*\) TCP\/TLS\/MSRP.*/\1/p' "$work/access.txt" | head -1)
gwfp=$(sed -n 's/^a=fingerprint:\(.*\)$/\1/p' "$work/access.txt" | tr -d '\r' | head -1)
echo "the gateway answers: port $port, a=fingerprint:$gwfp (the ALG puts both in the SDP answer)"

step "6. UE A connects with TLS and sends an MSRP SEND; the core peer answers 200 OK"
send='MSRP d93kswow SEND\r\nTo-Path: msrp://127.0.0.1:7394/core;tcp\r\nFrom-Path: msrps://127.0.0.1:9/ue-a;tcp\r\nMessage-ID: 1\r\nByte-Range: 1-11/11\r\nContent-Type: text/plain\r\n\r\nHello, IMS!\r\n-------d93kswow$\r\n'
{ printf "$send"; sleep 1; } | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
    -cert "$work/ue.pem" -key "$work/ue.key" -quiet -no_ign_eof 2>/dev/null | tr -d '\r' || true
sed 's/^/core: /' "$work/core.log"

step "7. UE B with another certificate tries the same: the gateway refuses it"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ue-b \
    -keyout "$work/ueb.key" -out "$work/ueb.pem" 2>/dev/null
printf 'C=${A=${M{ST=1{O{ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\na=fingerprint:sha-256 %s\r\n}}}}}' \
    "$fp" | alg >"$work/second.txt"
port2=$(sed -n 's/^m=message \([0-9]*\) TCP\/TLS\/MSRP.*/\1/p' "$work/second.txt" | head -1)
if echo | timeout 10 openssl s_client -connect "127.0.0.1:$port2" -cert "$work/ueb.pem" \
    -key "$work/ueb.key" -quiet -no_ign_eof >/dev/null 2>"$work/ueb.err" &&
    ! grep -qi alert "$work/ueb.err"; then
    echo "UE B was NOT refused"
    exit 1
fi
echo "UE B: $(grep -oi 'alert [a-z ]*' "$work/ueb.err" | head -1)"
grep 'refused' "$work/gw.log" | sed 's/^/gateway: /'

step "8. ALG: Release AGW Connection Point (Subtract=*): the statistics come back"
printf 'C=%s{S=*}' "$ctx" | alg | grep -E 'Subtract|nt/'
echo
echo "demo done"
