#!/bin/bash
# make bench: ims-agw side by side with stunnel, HAProxy and a plain splice relay, in one run, with
# one tool (agw-bench), rounds interleaved, medians in one table per measure:
#   bulk       relay throughput, MB/s and relay CPU per GB            (agw-bench bulk)
#   rr         1 KiB request/answer round trips, latency percentiles  (agw-bench rr)
#   handshake  new sessions per second and relay CPU per session      (agw-bench handshake)
#   idle       relay memory per idle TLS session, RSS and PSS         (agw-bench idle)
# MODES="rr idle" (for instance) measures only those.
#
# Every relay terminates TLS 1.3 (TLS_AES_128_GCM_SHA256, key exchange P-256) with the same
# self-signed ECDSA P-256 certificate (ims-agw loads it as its access realm's certificate) and
# forwards the plaintext to agw-bench's sink on 127.0.0.1, which checks every byte (and in rr,
# handshake and idle answers every request, the UE checking the answer). The UEs are agw-bench's
# threads; ims-agw additionally sets its sessions up over Iq (timed in handshake, where it is part
# of a session). ims-agw verifies the UE's certificate (its fingerprint) on every handshake:
# stunnel-mtls and haproxy-mtls are the references configured to do the same (verify the UE's
# certificate against itself as CA). Loopback only. stunnel4 and haproxy are installed when
# missing (as root); otherwise they are skipped.
set -u

BENCH=${BENCH:-build/agw-bench}
AGW=${AGW:-build/ims-agw}
MODES=${MODES:-bulk rr handshake idle}
ROUNDS=${ROUNDS:-3}
SINGLE_BYTES=${SINGLE_BYTES:-1G}
MULTI_SESSIONS=${MULTI_SESSIONS:-16}
MULTI_BYTES=${MULTI_BYTES:-256M}
RR_EXCHANGES=${RR_EXCHANGES:-20000}           # round trips of the one-session row
RR_MULTI_SESSIONS=${RR_MULTI_SESSIONS:-8}     # sessions of the second row
RR_MULTI_EXCHANGES=${RR_MULTI_EXCHANGES:-5000} # round trips per session of the second row
RR_SIZE=${RR_SIZE:-1024}
HS_SECONDS=${HS_SECONDS:-5}
HS_WINDOW=${HS_WINDOW:-4}
IDLE_SESSIONS=${IDLE_SESSIONS:-8000}
IDLE_ROUNDS=${IDLE_ROUNDS:-1} # memory per session barely moves between runs
RUN_TIMEOUT=${RUN_TIMEOUT:-60}   # seconds one agw-bench run may take (idle: IDLE_TIMEOUT)
IDLE_TIMEOUT=${IDLE_TIMEOUT:-300}
BUDGET=${BUDGET:-240}            # seconds of measuring bulk; later runs are skipped past it
RR_BUDGET=${RR_BUDGET:-150}      # the same for rr, handshake and idle
HS_BUDGET=${HS_BUDGET:-300}
IDLE_BUDGET=${IDLE_BUDGET:-600}
NOISY=${NOISY:-25}               # % of a core used by other processes that has a run repeated
RETRIES=${RETRIES:-2}
CIPHER=TLS_AES_128_GCM_SHA256
GROUP=P-256
# ims-agw's realms in rr, handshake and idle: a loopback address of their own, so that no test
# suite or other tool (they bind 127.0.0.1) competes for its ports, and ports below the kernel's
# ephemeral range (32768-60999 here): 28976 access ports, room for IDLE_SESSIONS sessions. (bulk
# keeps the realms of ims-agw.conf: its UEs dial 127.0.0.1.)
AGW_REALMS="--realm access,127.0.0.66,1024-29999 --realm core,127.0.0.66,30000-32767"

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
for m in $MODES; do
    case $m in bulk | rr | handshake | idle) ;; *) say "unknown mode $m in MODES"; exit 1 ;; esac
done
has_mode() { case " $MODES " in *" $1 "*) return 0 ;; esac; return 1; }

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
        p=$((64600 + RANDOM % 900))
        case "$taken$taken_udp" in *" $p "*) continue ;; esac
        taken="$taken$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    say "no free port in 64600-65499"
    exit 1
}
pick_port SINK
pick_port STUNNEL_PORT
pick_port STUNNEL_MTLS_PORT
pick_port HAPROXY_PORT
pick_port HAPROXY_MTLS_PORT
pick_port MGC_PORT

# --- one P-256 certificate for every relay, one for the UEs ----------------------------------------
for who in relay ue; do
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=agw-bench-$who" -keyout "$work/$who-key.pem" -out "$work/$who-cert.pem" \
        2>"$work/openssl.log"; then
        say "openssl could not make the certificate:"; cat "$work/openssl.log" >&2; exit 1
    fi
done
cat "$work/relay-cert.pem" "$work/relay-key.pem" >"$work/combined.pem"
# What every relay must present: the start of the certificate's SHA-256, as agw-bench prints it.
CERT_ID=$(openssl x509 -in "$work/relay-cert.pem" -outform DER | sha256sum | cut -c1-8)
UE="--ue-cert $work/ue-cert.pem --ue-key $work/ue-key.pem"

cat >"$work/ims-agw.conf" <<EOF
; ims-agw under agw-bench: the access realm presents the certificate the other relays present.
[realm access]
address = 127.0.0.1
ports = 20000-29999
certificate = $work/relay-cert.pem
private_key = $work/relay-key.pem
[realm core]
address = 127.0.0.1
ports = 30000-39999
EOF

# stunnel and HAProxy: a service/frontend that does not ask for the UE's certificate (their usual
# configuration) and one that verifies it, as ims-agw does.
tls_stunnel() {
    cat <<EOF
connect = 127.0.0.1:$SINK
cert = $work/relay-cert.pem
key = $work/relay-key.pem
sslVersionMin = TLSv1.3
ciphersuites = $CIPHER
curves = prime256v1
EOF
}
{
    printf 'foreground = yes\npid =\ndebug = err\n[bench]\naccept = 127.0.0.1:%s\n' "$STUNNEL_PORT"
    tls_stunnel
    printf '[bench-mtls]\naccept = 127.0.0.1:%s\n' "$STUNNEL_MTLS_PORT"
    tls_stunnel
    printf 'verifyPeer = yes\nCAfile = %s\n' "$work/ue-cert.pem"
} >"$work/stunnel.conf"

# maxconn: idle holds IDLE_SESSIONS sessions (two descriptors each, within a 20000 limit).
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn $((IDLE_SESSIONS + 500))
defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend f
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $work/combined.pem ssl-min-ver TLSv1.3 \
        ciphersuites $CIPHER curves P-256
    default_backend b
frontend fm
    bind 127.0.0.1:$HAPROXY_MTLS_PORT ssl crt $work/combined.pem ssl-min-ver TLSv1.3 \
        ciphersuites $CIPHER curves P-256 verify required ca-file $work/ue-cert.pem
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
stop_daemon() { # pid: SIGTERM, then SIGKILL; its ports are free afterwards
    local p=$1
    kill "$p" 2>/dev/null
    for _ in $(seq 1 25); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}
run_reference() { # kind: starts stunnel or haproxy, sets daemon_pid
    case $1 in
    stunnel) start_daemon stunnel "$STUNNEL_PORT" "$STUNNEL" "$work/stunnel.conf" ;;
    haproxy) start_daemon haproxy "$HAPROXY_PORT" "$HAPROXY" -db -f "$work/haproxy.cfg" ;;
    esac
}

# --- the relays: label|daemon|agw-bench options (@PID@: the daemon's pid), per measure ------------
versions="ims-agw $("$AGW" -V 2>/dev/null | head -n 1 | awk '{print $2}')"
have_stunnel=false have_haproxy=false
if [ -n "$STUNNEL" ]; then
    have_stunnel=true
    versions="$versions, $("$STUNNEL" -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*')"
else
    say "stunnel not installed: skipped"
fi
if [ -n "$HAPROXY" ] && "$HAPROXY" -c -q -f "$work/haproxy.cfg" >"$work/haproxy-check.log" 2>&1
then
    have_haproxy=true
    versions="$versions, HAProxy $("$HAPROXY" -v | grep -m1 -o 'version [0-9.]*' | cut -d' ' -f2)"
elif [ -z "$HAPROXY" ]; then
    say "haproxy not installed: skipped"
else
    say "haproxy refused its configuration:"; cat "$work/haproxy-check.log" >&2
fi
ref() { # label kind port extra: a reference target line
    printf '%s|%s|--target 127.0.0.1:%s --sink-port %s --target-pid @PID@%s' "$1" "$2" "$3" \
        "$SINK" "${4:+ $4}"
}
agw_bulk="--spawn $AGW --config $work/ims-agw.conf --listen 127.0.0.1:$MGC_PORT"
agw_own="--spawn $AGW --config $work/ims-agw.conf $AGW_REALMS"
targets_for() { # mode: one target line per relay measured in that mode
    local m=$1 agw=$agw_own ue=""
    [ "$m" = bulk ] && agw=$agw_bulk
    case $m in handshake | idle) ue=" $UE" ;; esac
    echo "ims-agw-w1|-|--workers 1 $agw$ue"
    echo "ims-agw-w2|-|--workers 2 $agw$ue"
    if $have_stunnel; then
        ref stunnel stunnel "$STUNNEL_PORT" "${ue# }"; echo
        [ "$m" = handshake ] && { ref stunnel-mtls stunnel "$STUNNEL_MTLS_PORT" "${ue# }"; echo; }
    fi
    if $have_haproxy; then
        ref haproxy haproxy "$HAPROXY_PORT" "${ue# }"; echo
        case $m in handshake | idle)
            ref haproxy-mtls haproxy "$HAPROXY_MTLS_PORT" "${ue# }"; echo ;;
        esac
    fi
    # The splice relay corks small writes (SPLICE_F_MORE): a floor for bulk, not for rr.
    [ "$m" = bulk ] && echo "splice-relay|-|--plain"
}
# Rows of a measure: name|agw-bench options.
rows_for() {
    case $1 in
    bulk) printf '%s\n' "1x$SINGLE_BYTES|--sessions 1 --bytes $SINGLE_BYTES" \
        "${MULTI_SESSIONS}x$MULTI_BYTES|--sessions $MULTI_SESSIONS --bytes $MULTI_BYTES" ;;
    rr) printf '%s\n' "1x$RR_EXCHANGES|--sessions 1 --exchanges $RR_EXCHANGES --size $RR_SIZE" \
        "${RR_MULTI_SESSIONS}x$RR_MULTI_EXCHANGES|--sessions $RR_MULTI_SESSIONS --exchanges $RR_MULTI_EXCHANGES --size $RR_SIZE" ;;
    handshake) echo "w$HS_WINDOW|--seconds $HS_SECONDS --window $HS_WINDOW" ;;
    idle) echo "$IDLE_SESSIONS|--sessions $IDLE_SESSIONS" ;;
    esac
}
# A quick run that shows a relay forwards, verifies and negotiates the agreed terms.
check_opts() {
    case $1 in
    bulk) echo "--bytes 16M --sessions 2" ;;
    rr) echo "--sessions 2 --exchanges 200" ;;
    handshake) echo "--sessions 20 --warmup 2" ;;
    idle) echo "--sessions 50 --warmup 10 --settle-ms 200" ;;
    esac
}

# Shared reference daemons for bulk, rr and handshake; idle starts a fresh one per run, since
# memory freed by earlier runs would be reused by the next one and hide its cost.
declare -A shared_pid=()
start_shared() {
    local kind
    for kind in stunnel haproxy; do
        [ -n "${shared_pid[$kind]:-}" ] && continue
        if { [ $kind = stunnel ] && $have_stunnel; } || { [ $kind = haproxy ] && $have_haproxy; }
        then
            run_reference $kind && shared_pid[$kind]=$daemon_pid
        fi
    done
}
stop_shared() {
    local kind
    for kind in "${!shared_pid[@]}"; do stop_daemon "${shared_pid[$kind]}"; done
    shared_pid=()
}

# One agw-bench run of a target; prints its JSON line (or nothing), returns its status.
run_one() { # mode label daemon opts timeout extra...
    local mode=$1 label=$2 kind=$3 opts=$4 limit=$5 pid="" fresh="" out rc
    shift 5
    if [ "$kind" != - ]; then
        if [ "$mode" = idle ]; then
            run_reference "$kind" || return 1
            fresh=$daemon_pid pid=$daemon_pid
        else
            pid=${shared_pid[$kind]:-}
            [ -n "$pid" ] || return 1
        fi
    fi
    opts=${opts//@PID@/$pid}
    # shellcheck disable=SC2086 # opts is a list of options
    out=$(timeout -k 5 "$limit" "$BENCH" "$mode" $opts --cipher $CIPHER --group $GROUP \
        --label "$label" --json "$@" 2>"$work/run.log")
    rc=$?
    [ -n "$fresh" ] && stop_daemon "$fresh"
    printf '%s' "$out"
    return $rc
}

# Share of one core that other processes of the host used during a run (from agw-bench's JSON).
other_pct() {
    printf '%s\n' "$1" | awk '{
        o = $0; w = $0
        if (!sub(/.*"other_cpu_s":/, "", o) || !sub(/.*"window_s":/, "", w)) { print 0; exit }
        printf "%d\n", 100 * (o + 0) / ((w + 0) > 0 ? w + 0 : 1) }'
}
jget() { printf '%s' "$1" | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2- | tr -d '"'; }
summary() { # mode json: the figure shown while measuring
    case $1 in
    bulk) echo "$(jget "$2" MB_per_s) MB/s" ;;
    rr) echo "p50 $(jget "$2" p50) us, p99 $(jget "$2" p99) us" ;;
    handshake) echo "$(jget "$2" sessions_per_s) sessions/s, relay CPU \
$(jget "$2" relay_cpu_us_per_session) us/session" ;;
    idle) echo "held $(jget "$2" held), RSS $(jget "$2" rss_kib_per_session) KiB/session, PSS \
$(jget "$2" pss_kib_per_session) KiB/session" ;;
    esac
}

results="$work/results.jsonl"
: >"$results"
failed_runs=0

measure_mode() { # mode
    local mode=$1 rounds=$ROUNDS limit=$RUN_TIMEOUT budget=$BUDGET t label kind opts row rname
    local ropts out rc
    case $mode in
    rr) budget=$RR_BUDGET ;;
    handshake) budget=$HS_BUDGET ;;
    idle) rounds=$IDLE_ROUNDS limit=$IDLE_TIMEOUT budget=$IDLE_BUDGET ;;
    esac
    if [ "$mode" = idle ]; then stop_shared; else start_shared; fi
    local want='"negotiated":"TLSv1.3 TLS_AES_128_GCM_SHA256 prime256v1 EC-256 cert '"$CERT_ID"'"'
    local measured=()
    while IFS= read -r t; do
        [ -n "$t" ] || continue
        label=${t%%|*} kind=${t#*|} kind=${kind%%|*} opts=${t#*|*|}
        # shellcheck disable=SC2046 # the check's options are a list
        out=$(run_one "$mode" "$label" "$kind" "$opts" "$limit" $(check_opts "$mode"))
        rc=$?
        local w=$want
        [ "$label" = splice-relay ] && w='"negotiated":"none"'
        if [ $rc -eq 0 ] && [[ $out == *"$w"* ]]; then
            measured+=("$t")
        else
            say "$mode, $label: check failed (rc $rc), not measured: $out"
            tail -n 5 "$work/run.log" >&2
        fi
    done < <(targets_for "$mode")
    [ ${#measured[@]} -gt 0 ] || { say "$mode: nothing to measure"; failed_runs=$((failed_runs + 1)); return; }
    order[$mode]=""
    for t in "${measured[@]}"; do order[$mode]="${order[$mode]} ${t%%|*}"; done

    local begin=$SECONDS skipped=0 round
    for round in $(seq 1 "$rounds"); do
        while IFS= read -r row; do
            rname=${row%%|*} ropts=${row#*|}
            for t in "${measured[@]}"; do
                label=${t%%|*} kind=${t#*|} kind=${kind%%|*} opts=${t#*|*|}
                if [ $((SECONDS - begin)) -ge "$budget" ]; then skipped=$((skipped + 1)); continue; fi
                # A run during which other processes kept more than NOISY % of a core busy is
                # repeated (up to RETRIES times, within the budget); the quietest attempt is kept.
                local best="" best_other=1000 attempt=0 other
                while :; do
                    attempt=$((attempt + 1))
                    # shellcheck disable=SC2086 # ropts is a list of options
                    out=$(run_one "$mode" "$label" "$kind" "$opts" "$limit" $ropts)
                    rc=$?
                    if [ $rc -ne 0 ] || [[ $out != "{"*"}" ]]; then
                        say "round $round, $mode $rname, $label: failed (rc $rc)"
                        tail -n 3 "$work/run.log" >&2
                        if [ -z "$best" ]; then
                            best=$(printf '{"mode":"%s","target":"%s","error":"rc %s"}' "$mode" \
                                "$label" "$rc")
                            [[ $out == "{"*"}" ]] && best="${out%\}},\"error\":\"rc $rc\"}"
                        fi
                        break
                    fi
                    other=$(other_pct "$out")
                    if [ "$other" -lt "$best_other" ]; then best=$out best_other=$other; fi
                    say "round $round, $mode $rname, $label: $(summary "$mode" "$out") (other load $other%)"
                    if [ "$other" -le "$NOISY" ] || [ "$attempt" -gt "$RETRIES" ] ||
                        [ $((SECONDS - begin)) -ge "$budget" ]; then
                        break
                    fi
                done
                [[ $best == *'"error":'* ]] && failed_runs=$((failed_runs + 1))
                echo "${best%\}},\"row\":\"$rname\",\"round\":$round,\"attempts\":$attempt}" \
                    >>"$results"
            done
        done < <(rows_for "$mode")
    done
    [ $skipped -eq 0 ] || say "$mode: time budget of ${budget}s reached: $skipped run(s) skipped"
}

declare -A order=()
for m in $MODES; do
    say "--- $m ---"
    measure_mode "$m"
done
stop_shared

# --- the tables --------------------------------------------------------------------------------
echo
echo "JSON lines (agw-bench MODE --json, one per run kept):"
cat "$results"
echo
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
cat <<EOF
TLS 1.3 $CIPHER, P-256, one ECDSA P-256 certificate for all relays; loopback; rounds
interleaved ($ROUNDS, idle $IDLE_ROUNDS). $(nproc) CPU(s) ($cpu), kernel $(uname -r),
$(openssl version | cut -d' ' -f1-2). $versions.
ims-agw with workers 1 and 2; HAProxy with its default nbthread; stunnel with a thread per
connection; splice-relay: plain TCP, no TLS (the floor), 2 threads per connection. The UEs
(TLS), the sink (checks, answers) and the relay share the CPUs. -mtls: the reference verifies the
UE's certificate, as ims-agw always does. relay CPU: the relay's user+system time. other: what
the host's other processes used meanwhile (% of one core); runs above $NOISY% were repeated up to
$RETRIES times and the quietest kept. Medians over the runs kept.
EOF

# Bulk: the table of the first version of this script, from the bulk lines.
if has_mode bulk; then
    echo
    echo "Relay throughput (agw-bench bulk; connection set-up included; CPU s/GB: relay CPU per GB"
    echo "of plaintext relayed):"
    grep '"mode":"bulk"' "$results" | awk -v order="${order[bulk]:-}" \
        -v rows="1|$SINGLE_BYTES $MULTI_SESSIONS|$MULTI_BYTES" '
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
}'
fi

# rr, handshake, idle: one awk for the three tables and the targets of issue 6.
awk -v modes="$MODES" -v o_rr="${order[rr]:-}" -v o_hs="${order[handshake]:-}" \
    -v o_idle="${order[idle]:-}" -v rr_size="$RR_SIZE" -v idle_n="$IDLE_SESSIONS" '
function field(line, key,    m) {
    if (match(line, "\"" key "\":(\"[^\"]*\"|[^,}]*)") == 0)
        return ""
    m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
    gsub(/"/, "", m)
    return m
}
function sortn(a, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
        v = a[i]
        for (j = i - 1; j >= 1 && a[j] > v; j--)
            a[j + 1] = a[j]
        a[j + 1] = v
    }
}
# Median of the values kept under name for key; "" when there are none.
function med(name, key,    k, n, v) {
    n = cnt[name, key] + 0
    if (n == 0)
        return ""
    for (k = 1; k <= n; k++)
        v[k] = val[name, key, k]
    sortn(v, n)
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function lo(name, key,    k, m) {
    m = val[name, key, 1]
    for (k = 2; k <= cnt[name, key]; k++) if (val[name, key, k] < m) m = val[name, key, k]
    return m
}
function hi(name, key,    k, m) {
    m = val[name, key, 1]
    for (k = 2; k <= cnt[name, key]; k++) if (val[name, key, k] > m) m = val[name, key, k]
    return m
}
function keep(name, key, v) {
    if (v == "" || v == "null")
        return
    val[name, key, ++cnt[name, key]] = v + 0
}
function fmt(f, v) { return v == "" ? "-" : sprintf(f, v) }
{
    mode = field($0, "mode"); t = field($0, "target"); row = field($0, "row")
    key = mode SUBSEP t SUBSEP row
    runs[key]++
    if (!(mode SUBSEP row in seen)) { seen[mode, row] = 1; rowlist[mode] = rowlist[mode] " " row }
    failed = field($0, "error") != "" || field($0, "failed_sessions") != "0"
    if (mode == "idle" && field($0, "held") + 0 > 0) {
        # A run that could not hold every session still tells what the ones it held cost.
        keep("rss", key, field($0, "rss_kib_per_session"))
        keep("pss", key, field($0, "pss_kib_per_session"))
        keep("fds", key, field($0, "fds_per_session")); keep("held", key, field($0, "held"))
        if (field($0, "capped") == "true") capped[key] = 1
    }
    if (failed)
        next
    ok[key]++
    w = field($0, "window_s") + 0
    other = field($0, "other_cpu_s")
    if (other != "" && other != "null" && w > 0) keep("other", key, 100 * other / w)
    if (mode == "rr") {
        keep("p50", key, field($0, "p50")); keep("p99", key, field($0, "p99"))
        keep("p999", key, field($0, "p999")); keep("rate", key, field($0, "exchanges_per_s"))
        keep("cpu", key, field($0, "relay_cpu_us_per_exchange"))
    } else if (mode == "handshake") {
        keep("rate", key, field($0, "sessions_per_s"))
        keep("cpu", key, field($0, "relay_cpu_us_per_session"))
        keep("ctl", key, field($0, "control_cpu_us_per_session"))
        keep("hs50", key, field($0, "p50")); keep("hs99", key, field($0, "p99"))
    }
}
function runs_text(key) { return sprintf("%d/%d", ok[key] + 0, runs[key] + 0) }
END {
    if (index(" " modes " ", " rr ")) {
        printf "\nRound trips (agw-bench rr; %d-byte request, %d-byte answer, each verified; latency at\n", rr_size, rr_size
        printf "the UE in us; relay CPU per exchange in us):\n"
        printf "%-13s %-9s %6s %6s %6s %6s %7s %9s %7s %6s %6s\n", "relay", "sessions", "p50",
               "p99", "min", "max", "p99.9", "exch/s", "CPU us", "runs", "other"
        nr = split(rowlist["rr"], rs, " ")
        nt = split(o_rr, ts, " ")
        for (r = 1; r <= nr; r++)
            for (i = 1; i <= nt; i++) {
                key = "rr" SUBSEP ts[i] SUBSEP rs[r]
                if (runs[key] == 0) continue
                if (ok[key] == 0) { printf "%-13s %-9s %6s %s\n", ts[i], rs[r], "FAILED", runs_text(key); continue }
                printf "%-13s %-9s %6s %6s %6s %6s %7s %9s %7s %6s %6s\n", ts[i], rs[r],
                       fmt("%d", med("p50", key)), fmt("%d", med("p99", key)),
                       fmt("%d", lo("p99", key)), fmt("%d", hi("p99", key)),
                       fmt("%d", med("p999", key)), fmt("%.0f", med("rate", key)),
                       fmt("%.1f", med("cpu", key)), runs_text(key), fmt("%.0f%%", med("other", key))
            }
    }
    if (index(" " modes " ", " handshake ")) {
        printf "\nNew sessions (agw-bench handshake; TCP + TLS 1.3 P-256 + one exchange + close, plus Iq\n"
        printf "Add core, Add access, Subtract for ims-agw; relay CPU per session in us, of which Iq:\n"
        printf "ims-agw control thread; handshake: TCP connect + TLS at the UE, us):\n"
        printf "%-13s %-5s %8s %8s %6s %6s %6s %7s %7s %6s %6s\n", "relay", "row", "sess/s",
               "CPU us", "min", "max", "of Iq", "hs p50", "hs p99", "runs", "other"
        nr = split(rowlist["handshake"], rs, " ")
        nt = split(o_hs, ts, " ")
        for (r = 1; r <= nr; r++)
            for (i = 1; i <= nt; i++) {
                key = "handshake" SUBSEP ts[i] SUBSEP rs[r]
                if (runs[key] == 0) continue
                if (ok[key] == 0) { printf "%-13s %-5s %8s %s\n", ts[i], rs[r], "FAILED", runs_text(key); continue }
                printf "%-13s %-5s %8s %8s %6s %6s %6s %7s %7s %6s %6s\n", ts[i], rs[r],
                       fmt("%.0f", med("rate", key)), fmt("%.0f", med("cpu", key)),
                       fmt("%.0f", lo("cpu", key)), fmt("%.0f", hi("cpu", key)),
                       fmt("%.0f", med("ctl", key)), fmt("%d", med("hs50", key)),
                       fmt("%d", med("hs99", key)), runs_text(key), fmt("%.0f%%", med("other", key))
            }
    }
    if (index(" " modes " ", " idle ")) {
        printf "\nIdle sessions (agw-bench idle; %d TLS sessions set up, one exchange each, held; the\n", idle_n
        printf "relay RSS and PSS growth per session, KiB; a fresh relay process per run):\n"
        printf "%-13s %6s %9s %9s %9s %6s\n", "relay", "held", "RSS KiB", "PSS KiB", "fds", "runs"
        nt = split(o_idle, ts, " ")
        for (i = 1; i <= nt; i++) {
            key = "idle" SUBSEP ts[i] SUBSEP idle_n
            if (runs[key] == 0) continue
            if (cnt["rss", key] == 0) { printf "%-13s %6s %s\n", ts[i], "FAILED", runs_text(key); continue }
            printf "%-13s %6s %9s %9s %9s %6s%s\n", ts[i], fmt("%d", med("held", key)),
                   fmt("%.1f", med("rss", key)), fmt("%.1f", med("pss", key)),
                   fmt("%.2f", med("fds", key)), runs_text(key),
                   capped[key] ? "  (capped: out of descriptors)" : ""
        }
    }
    # Issue 6: handshake CPU <= 0.75x HAProxy, rr p99 <= HAProxy, idle <= 16 KiB per session.
    printf "\nTargets (issue 6), ims-agw-w1 against the references:\n"
    hk = "handshake" SUBSEP "ims-agw-w1" SUBSEP substr(rowlist["handshake"], 2)
    for (j = 1; j <= 2; j++) {
        ref = j == 1 ? "haproxy" : "haproxy-mtls"
        rk = "handshake" SUBSEP ref SUBSEP substr(rowlist["handshake"], 2)
        a = med("cpu", hk); b = med("cpu", rk)
        if (a != "" && b != "" && b > 0)
            printf "  handshake CPU: %.0f us vs %s %.0f us = %.2fx (target <= 0.75x): %s\n", a, ref,
                   b, a / b, a / b <= 0.75 ? "met" : "NOT met"
    }
    split(rowlist["rr"], rr_rows, " ")
    ak = "rr" SUBSEP "ims-agw-w1" SUBSEP rr_rows[1]; bk = "rr" SUBSEP "haproxy" SUBSEP rr_rows[1]
    a = med("p99", ak); b = med("p99", bk)
    if (a != "" && b != "")
        printf "  rr p99 (%s): %d us vs haproxy %d us (target <=): %s\n", rr_rows[1], a, b,
               a <= b ? "met" : "NOT met"
    ik = "idle" SUBSEP "ims-agw-w1" SUBSEP idle_n
    a = med("rss", ik); b = med("pss", ik)
    if (a != "")
        printf "  idle memory: RSS %.1f KiB, PSS %.1f KiB per session over %d held (target <= 16): %s\n",
               a, b, med("held", ik), (a <= 16 && b <= 16 && med("held", ik) == idle_n) ? "met" : "NOT met"
}' "$results"

[ "$failed_runs" -eq 0 ] || { say "$failed_runs run(s) failed: see the JSON lines"; exit 1; }
