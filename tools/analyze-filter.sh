#!/bin/sh
# analyze-filter.sh SUPP LOG...: fails on any gcc -fanalyzer warning that SUPP does not list.
#
# LOG files hold the plain diagnostics of one source each (gcc run with LC_ALL=C, for ASCII
# quotes, and -fdiagnostics-plain-output).
# SUPP lines are "FILE FUNCTION OPTION  # why it is a false positive": a warning is known when its
# file, the function gcc names for it (".part.N"/".isra.N"/".constprop.N" clones folded) and its
# option match. Line numbers are left out on purpose, so edits elsewhere in a file do not matter.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 SUPPRESSIONS [LOG...]" >&2
    exit 2
fi
supp=$1
shift
[ $# -gt 0 ] || { echo "analyze: no logs"; exit 0; }

LC_ALL=C awk -v supp="$supp" '
BEGIN {
    while ((getline line < supp) > 0) {
        sub(/#.*/, "", line)
        n = split(line, f, /[ \t]+/)
        k = 0
        for (i = 1; i <= n; i++)
            if (f[i] != "")
                w[++k] = f[i]
        if (k == 0)
            continue
        if (k != 3) {
            printf "%s: bad line (want FILE FUNCTION OPTION): %s\n", supp, line
            bad = 1
            continue
        }
        known[w[1] " " w[2] " " w[3]] = 0
    }
}
# block: the lines of the warning being read when it is a new one (its notes follow it).
function flush_block() {
    printf "%s", block
    block = ""
}
FNR == 1 { flush_block(); fn = "" }
/^[^ ]+: In function .*:$/ {
    flush_block()
    fn = $0
    sub(/^[^ ]+: In function \047/, "", fn)
    sub(/\047:$/, "", fn)
    sub(/\.(part|isra|constprop|cold)\.[0-9]+.*$/, "", fn)
    next
}
/^[^ ]+:[0-9]+:[0-9]+: warning: / {
    flush_block()
    file = $1
    sub(/:.*/, "", file)
    opt = ""
    if (match($0, /\[-W[a-z0-9-]+\]$/))
        opt = substr($0, RSTART + 1, RLENGTH - 2)
    key = file " " fn " " opt
    if (key in known) {
        known[key]++
    } else {
        fresh++
        block = $0 "\n"
    }
    next
}
/^[^ ]+:[0-9]+:[0-9]+: error: / { flush_block(); errors++; block = $0 "\n"; next }
block != "" { block = block $0 "\n" }
END {
    flush_block()
    for (k in known)
        if (known[k] == 0)
            printf "analyze: stale suppression (nothing matched it): %s\n", k
    if (bad || fresh || errors) {
        printf "analyze: %d new warning(s), %d error(s): fix them, or list a reviewed false " \
               "positive in %s\n", fresh, errors, supp
        exit 1
    }
    print "analyze: ok"
}' "$@"
