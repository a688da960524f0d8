#!/bin/sh
# Regenerates the PEM files used by tests/test_tls_cert.c (openssl CLI, OpenSSL 3.0).
# Running it makes new keys: the fingerprints recorded in the test must then be updated from
# `openssl x509 -noout -fingerprint -sha1 -in cert-p256.pem` (and -sha224, -sha256, -sha384, -sha512).
set -eu
cd "$(dirname "$0")"
days=36500
subj() { printf '/CN=%s' "$1"; }

# The known-answer certificate: ECDSA P-256, self-signed, valid for a century.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key-p256.pem
openssl req -x509 -new -key key-p256.pem -sha256 -days $days -subj "$(subj agw-test)" \
    -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature \
    -out cert-p256.pem
# Another P-256 key, for the key/certificate mismatch case.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key-other-p256.pem
# The P-256 key, encrypted (loading must fail, never prompt). Passphrase: agw-test.
openssl pkey -in key-p256.pem -aes-256-cbc -passout pass:agw-test -out key-p256-encrypted.pem

# Keys that are refused (P-384, Ed25519, RSA 1024) and one that is accepted (RSA 2048).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out key-p384.pem
openssl genpkey -algorithm ED25519 -out key-ed25519.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out key-rsa1024.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key-rsa2048.pem
for k in p384 ed25519 rsa1024 rsa2048; do
    openssl req -x509 -new -key key-$k.pem -days $days -subj "$(subj agw-test-$k)" \
        -out cert-$k.pem
done

# Certificates on key-p256.pem outside their validity window: `openssl ca` is the 3.0 CLI that
# takes explicit dates.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/index.txt"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
CNF
openssl req -new -key key-p256.pem -subj "$(subj agw-test-dates)" -out "$tmp/req.pem"
openssl rand -hex 16 >"$tmp/serial"
openssl ca -batch -config "$tmp/ca.cnf" -selfsign -keyfile key-p256.pem -in "$tmp/req.pem" \
    -startdate 20200101000000Z -enddate 20200201000000Z -out "$tmp/expired.pem"
openssl x509 -in "$tmp/expired.pem" -out cert-p256-expired.pem
openssl rand -hex 16 >"$tmp/serial"
openssl ca -batch -config "$tmp/ca.cnf" -selfsign -keyfile key-p256.pem -in "$tmp/req.pem" \
    -startdate 20990101000000Z -enddate 21000101000000Z -out "$tmp/future.pem"
openssl x509 -in "$tmp/future.pem" -out cert-p256-not-yet-valid.pem
