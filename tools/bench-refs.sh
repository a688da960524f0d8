#!/bin/bash
# make bench: relay throughput of ims-agw side by side with stunnel, HAProxy and a plain splice
# relay, in one run, with one tool (agw-bench bulk), rounds interleaved, medians in one table.
#
# Every relay terminates TLS 1.3 (TLS_AES_128_GCM_SHA256, key exchange P-256) with the same
# self-signed ECDSA P-256 certificate (ims-agw loads it as its access realm's certificate) and
# forwards the plaintext to agw-bench's sink on 127.0.0.1, which checks every byte. The UEs are
# agw-bench's threads; ims-agw additionally sets its sessions up over Iq (not timed). Loopback
# only. stunnel4 and haproxy are installed when missing (as root); otherwise they are skipped.
set -u

BENCH=${BENCH:-build/agw-bench}
AGW=${AGW:-build/ims-agw}
ROUNDS=${ROUNDS:-3}
SINGLE_BYTES=${SINGLE_BYTES:-1G}
MULTI_SESSIONS=${MULTI_SESSIONS:-16}
MULTI_BYTES=${MULTI_BYTES:-256M}
RUN_TIMEOUT=${RUN_TIMEOUT:-60} # seconds one agw-bench run may take
BUDGET=${BUDGET:-240}          # seconds of measuring; later runs are skipped past it
NOISY=${NOISY:-25}             # % of a core used by other processes that has a run repeated
RETRIES=${RETRIES:-2}
CIPHER=TLS_AES_128_GCM_SHA256
GROUP=P-256

say() { printf 'bench: %s\n' "$*" >&2; }

work=$(mktemp -d /tmp/agw-bench-refs.XXXXXX) || exit 1
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for f in "$BENCH" "$AGW"; do
    [ -x "$f" ] || { say "$f is missing: run make first"; exit 1; }
done

# --- stunnel4 and haproxy: installed when missing, never required -------------------------------
missing=""
for pkg in stunnel4 haproxy; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    cmd="apt-get install -y --no-install-recommends$missing"
    if [ "$(id -u)" -ne 0 ]; then
        say "not root: cannot install$missing; those references are skipped"
        say "(as root: DEBIAN_FRONTEND=noninteractive $cmd)"
    else
        say "installing$missing (references only, not a dependency of ims-agw)"
        export DEBIAN_FRONTEND=noninteractive
        if ! $cmd >"$work/apt.log" 2>&1; then
            # A fresh system may have no package lists yet.
            { apt-get update && $cmd; } >>"$work/apt.log" 2>&1 ||
                { say "apt-get failed:"; tail -n 5 "$work/apt.log" >&2; }
        fi
    fi
fi
STUNNEL=$(command -v stunnel4 || command -v stunnel || true)
HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)

# --- ports: free ones above the ephemeral range and the default realms (20000-39999) ------------
taken=" $(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); printf "%s ", a[n]}')"
taken_udp=" $(ss -Huan 2>/dev/null | awk '{n = split($4, a, ":"); printf "%s ", a[n]}')"
pick_port() { # var: a port no one listens on or was given out before
    local p
    for _ in $(seq 1 200); do
        p=$((61000 + RANDOM % 4000))
        case "$taken$taken_udp" in *" $p "*) continue ;; esac
        taken="$taken$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    say "no free port in 61000-64999"
    exit 1
}
pick_port SINK
pick_port STUNNEL_PORT
pick_port HAPROXY_PORT
pick_port MGC_PORT

# --- one P-256 certificate for every relay -----------------------------------------------------
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=agw-bench-relay -keyout "$work/key.pem" -out "$work/cert.pem" 2>"$work/openssl.log"
then
    say "openssl could not make the certificate:"; cat "$work/openssl.log" >&2; exit 1
fi
cat "$work/cert.pem" "$work/key.pem" >"$work/combined.pem"

cat >"$work/ims-agw.conf" <<EOF
; ims-agw under agw-bench: the access realm presents the certificate the other relays present.
[realm access]
address = 127.0.0.1
ports = 20000-29999
certificate = $work/cert.pem
private_key = $work/key.pem
[realm core]
address = 127.0.0.1
ports = 30000-39999
EOF

cat >"$work/stunnel.conf" <<EOF
foreground = yes
pid =
debug = err
[bench]
accept = 127.0.0.1:$STUNNEL_PORT
connect = 127.0.0.1:$SINK
cert = $work/cert.pem
key = $work/key.pem
sslVersionMin = TLSv1.3
ciphersuites = $CIPHER
curves = prime256v1
EOF

cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 1024
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $work/combined.pem ssl-min-ver TLSv1.3 \
        ciphersuites $CIPHER curves P-256
    default_backend b
backend b
    server s 127.0.0.1:$SINK
EOF

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

daemon_pid=""
start_daemon() { # name port command...: starts it in the background, waits for the port
    local name=$1 port=$2
    shift 2
    "$@" >"$work/$name.log" 2>&1 </dev/null &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 50); do
        listening "$port" && { daemon_pid=$pid; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    say "$name did not come up on 127.0.0.1:$port:"; tail -n 5 "$work/$name.log" >&2
    return 1
}

# label|agw-bench options: the relays measured, in the order of the table.
agw="--spawn $AGW --config $work/ims-agw.conf --listen 127.0.0.1:$MGC_PORT"
targets=("ims-agw-w1|--workers 1 $agw" "ims-agw-w2|--workers 2 $agw")
versions="ims-agw $("$AGW" -V 2>/dev/null | head -n 1 | awk '{print $2}')"
if [ -n "$STUNNEL" ] && start_daemon stunnel "$STUNNEL_PORT" "$STUNNEL" "$work/stunnel.conf"; then
    targets+=("stunnel|--target 127.0.0.1:$STUNNEL_PORT --sink-port $SINK --target-pid $daemon_pid")
    versions="$versions, $("$STUNNEL" -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*')"
elif [ -z "$STUNNEL" ]; then
    say "stunnel not installed: skipped"
fi
if [ -n "$HAPROXY" ] && "$HAPROXY" -c -q -f "$work/haproxy.cfg" >"$work/haproxy-check.log" 2>&1 &&
    start_daemon haproxy "$HAPROXY_PORT" "$HAPROXY" -db -f "$work/haproxy.cfg"; then
    targets+=("haproxy|--target 127.0.0.1:$HAPROXY_PORT --sink-port $SINK --target-pid $daemon_pid")
    versions="$versions, HAProxy $("$HAPROXY" -v | grep -m1 -o 'version [0-9.]*' | cut -d' ' -f2)"
elif [ -z "$HAPROXY" ]; then
    say "haproxy not installed: skipped"
else
    say "haproxy refused its configuration:"; cat "$work/haproxy-check.log" >&2
fi
targets+=("splice-relay|--plain")

# --- every relay must forward every byte on the agreed terms before it is measured -------------
measured=()
for t in "${targets[@]}"; do
    label=${t%%|*} opts=${t#*|}
    # shellcheck disable=SC2086 # opts is a list of options
    out=$(timeout -k 5 "$RUN_TIMEOUT" "$BENCH" bulk $opts --cipher $CIPHER --group $GROUP \
        --label "$label" --json --bytes 16M --sessions 2 2>"$work/check.log")
    rc=$?
    want='"negotiated":"TLSv1.3 TLS_AES_128_GCM_SHA256 prime256v1 EC-256 cert '
    [ "$label" = splice-relay ] && want='"negotiated":"none"'
    if [ $rc -eq 0 ] && [[ $out == *"$want"* ]]; then
        measured+=("$t")
    else
        say "$label: check failed (rc $rc), not measured: $out"; cat "$work/check.log" >&2
    fi
done
[ ${#measured[@]} -gt 0 ] || { say "nothing to measure"; exit 1; }

# --- rounds: every relay once per row per round, interleaved ----------------------------------
rows=("1|$SINGLE_BYTES" "$MULTI_SESSIONS|$MULTI_BYTES")
results="$work/results.jsonl"
: >"$results"
# Share of one core that other processes of the host used during a run (from agw-bench's JSON).
other_pct() {
    printf '%s\n' "$1" | awk '{
        o = $0; w = $0
        if (!sub(/.*"other_cpu_s":/, "", o) || !sub(/.*"window_s":/, "", w)) { print 0; exit }
        printf "%d\n", 100 * (o + 0) / ((w + 0) > 0 ? w + 0 : 1) }'
}
begin=$SECONDS
skipped=0
for round in $(seq 1 "$ROUNDS"); do
    for row in "${rows[@]}"; do
        sessions=${row%%|*} bytes=${row#*|}
        for t in "${measured[@]}"; do
            label=${t%%|*} opts=${t#*|}
            if [ $((SECONDS - begin)) -ge "$BUDGET" ]; then skipped=$((skipped + 1)); continue; fi
            # A run during which other processes kept more than NOISY % of a core busy is
            # repeated (up to RETRIES times, within the budget); the quietest attempt is kept.
            best="" best_other=1000 attempt=0
            while :; do
                attempt=$((attempt + 1))
                # shellcheck disable=SC2086 # opts is a list of options
                out=$(timeout -k 5 "$RUN_TIMEOUT" "$BENCH" bulk $opts --cipher $CIPHER \
                    --group $GROUP --label "$label" --json --sessions "$sessions" \
                    --bytes "$bytes" 2>"$work/run.log")
                rc=$?
                if [ $rc -ne 0 ] || [[ $out != "{"*"}" ]]; then
                    say "round $round, ${sessions}x$bytes, $label: failed (rc $rc)"
                    tail -n 3 "$work/run.log" >&2
                    [ -n "$best" ] || best=$(printf '{"target":"%s","sessions":%s,%s}' "$label" \
                        "$sessions" "\"bytes_per_session\":\"$bytes\",\"error\":\"rc $rc\"")
                    break
                fi
                other=$(other_pct "$out")
                if [ "$other" -lt "$best_other" ]; then best=$out best_other=$other; fi
                mbs=$(printf '%s' "$out" | grep -o '"MB_per_s":[0-9.]*' | cut -d: -f2)
                say "round $round, ${sessions}x$bytes, $label: $mbs MB/s (other load $other%)"
                if [ "$other" -le "$NOISY" ] || [ "$attempt" -gt "$RETRIES" ] ||
                    [ $((SECONDS - begin)) -ge "$BUDGET" ]; then
                    break
                fi
            done
            echo "${best%\}},\"round\":$round,\"attempts\":$attempt}" >>"$results"
        done
    done
done
[ $skipped -eq 0 ] || say "time budget of ${BUDGET}s reached: $skipped run(s) skipped"

# --- the table -------------------------------------------------------------------------------
order=""
for t in "${measured[@]}"; do order="$order ${t%%|*}"; done
echo
echo "JSON lines (agw-bench bulk --json, one per run kept):"
cat "$results"
echo
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
cat <<EOF
Relay throughput: TLS 1.3 $CIPHER, P-256, one ECDSA P-256 certificate for all;
plaintext to a sink that checks every byte; loopback; $ROUNDS interleaved rounds; connection
set-up included. $(nproc) CPU(s) ($cpu), kernel $(uname -r), $(openssl version | cut -d' ' -f1-2).
$versions.
ims-agw with workers 1 and 2; HAProxy with its default nbthread; stunnel with a thread per
connection; splice-relay: plain TCP, no TLS (the ceiling), 2 threads per connection. The UEs
(TLS encryption) and the sink (byte check) run on the same CPUs.
relay CPU: the relay's user+system time (% of one core over the run, and seconds per GB).
other: what the host's other processes used meanwhile (% of one core); runs above $NOISY% were
repeated up to $RETRIES times and the quietest kept.
EOF
awk -v order="$order" -v rows="1|$SINGLE_BYTES $MULTI_SESSIONS|$MULTI_BYTES" '
function field(line, key,    m) {
    if (match(line, "\"" key "\":(\"[^\"]*\"|[^,}]*)") == 0)
        return ""
    m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
    gsub(/"/, "", m)
    return m
}
function size(text,    v, u) {
    v = text + 0
    u = substr(text, length(text), 1)
    if (u == "K" || u == "k") v *= 1024
    if (u == "M" || u == "m") v *= 1048576
    if (u == "G" || u == "g") v *= 1073741824
    return v
}
function sortn(a, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
        v = a[i]
        for (j = i - 1; j >= 1 && a[j] > v; j--)
            a[j + 1] = a[j]
        a[j + 1] = v
    }
}
function median(a, n) {
    sortn(a, n)
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function med(name, key, n,    k, v) {
    for (k = 1; k <= n; k++)
        v[k] = val[name, key, k]
    return median(v, n)
}
{
    t = field($0, "target"); s = field($0, "sessions")
    key = t SUBSEP s SUBSEP size(field($0, "bytes_per_session"))
    runs[key]++
    if (field($0, "failed_sessions") != "0" || field($0, "error") != "")
        next
    n = ++ok[key]
    val["mb", key, n] = field($0, "MB_per_s") + 0
    w = field($0, "window_s") + 0
    cpu = field($0, "relay_cpu_s")
    if (cpu != "" && cpu != "null" && w > 0) {
        c = ++nc[key]
        val["pct", key, c] = 100 * cpu / w
        val["pgb", key, c] = cpu / (s * field($0, "bytes_per_session") / 1e9)
    }
    other = field($0, "other_cpu_s")
    if (other != "" && other != "null" && w > 0)
        val["other", key, ++no[key]] = 100 * other / w
}
END {
    nt = split(order, ts, " ")
    nr = split(rows, rs, " ")
    printf "%-13s %-8s %8s %8s %8s %5s %9s %8s %6s\n", "relay", "flows", "MB/s med", "min",
           "max", "runs", "relay CPU", "CPU s/GB", "other"
    for (r = 1; r <= nr; r++) {
        split(rs[r], rw, "|")
        for (i = 1; i <= nt; i++) {
            key = ts[i] SUBSEP rw[1] SUBSEP size(rw[2])
            n = ok[key] + 0
            if (runs[key] == 0)
                continue
            if (n == 0) {
                printf "%-13s %-8s %8s %8s %8s %2d/%-2d\n", ts[i], rw[1] "x" rw[2], "FAILED",
                       "-", "-", 0, runs[key]
                continue
            }
            lo = hi = val["mb", key, 1]
            for (k = 2; k <= n; k++) {
                if (val["mb", key, k] < lo) lo = val["mb", key, k]
                if (val["mb", key, k] > hi) hi = val["mb", key, k]
            }
            cp = nc[key] ? sprintf("%.0f%%", med("pct", key, nc[key])) : "-"
            cg = nc[key] ? sprintf("%.2f", med("pgb", key, nc[key])) : "-"
            ot = no[key] ? sprintf("%.0f%%", med("other", key, no[key])) : "-"
            printf "%-13s %-8s %8.1f %8.1f %8.1f %2d/%-2d %9s %8s %6s\n", ts[i], rw[1] "x" rw[2],
                   med("mb", key, n), lo, hi, n, runs[key], cp, cg, ot
        }
    }
}' "$results"
failed=$(grep -c -v '"failed_sessions":0,' "$results")
[ "$failed" -eq 0 ] || { say "$failed run(s) failed: see the JSON lines"; exit 1; }
