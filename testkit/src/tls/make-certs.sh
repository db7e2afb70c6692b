#!/bin/sh
# Regenerates the test-only TLS fixtures of assay_testkit::TlsFront: a CA
# (ca.pem; its key is thrown away) and a certificate for 127.0.0.1 and
# localhost that it signed (server.pem, server.key), valid for 100 years.
# Nothing outside tests trusts them; the key is public on purpose.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$tmp/ca.key" -out ca.pem -days 36500 -subj "/CN=assay test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=localhost"
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey "$tmp/ca.key" -CAcreateserial \
  -CAserial "$tmp/ca.srl" -out server.pem -days 36500 -extfile "$tmp/ext.cnf"
openssl pkey -in "$tmp/server.key" -out server.key
