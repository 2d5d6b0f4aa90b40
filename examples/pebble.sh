#!/bin/sh
# Pebble (Let's Encrypt's test CA) and its mock DNS on fixed loopback ports, for the README's ACME
# examples: directory https://127.0.0.1:14000/dir, http-01 checked on port 5002, tls-alpn-01 on 5001,
# dns-01 through pebble-challtestsrv (management API on 8055, see dns-hook.sh). In the current
# directory it writes pebble-ca.pem (trust it with --directory-ca-file: Pebble's own HTTPS) and, once
# Pebble runs, pebble-root.pem (the root that issues the certificates). Ctrl-C stops both.
# PEBBLE_VALIDITY=60 issues 60-second certificates (Pebble's default is five years).
#
#   sh examples/pebble.sh
#   tlskit acme issue example.com --agree-tos --out-dir certs --directory https://127.0.0.1:14000/dir \
#       --directory-ca-file pebble-ca.pem --http-port 5002 --bind 127.0.0.1
set -eu
TLSKIT=${TLSKIT:-tlskit}
[ -d pebble-ca ] || $TLSKIT ca init --dir pebble-ca --cn "Pebble listener CA" >/dev/null
cp pebble-ca/ca.pem pebble-ca.pem
if [ ! -f pebble-listener.pem ]; then
  $TLSKIT csr --cn localhost --san 127.0.0.1 --out pebble-listener.csr --key-out pebble-listener.key >/dev/null
  $TLSKIT ca sign pebble-listener.csr --ca-dir pebble-ca --out pebble-listener.pem >/dev/null
fi
cat > pebble-config.json <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "pebble-listener.pem", "privateKey": "pebble-listener.key",
  "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "certificateValidityPeriod": ${PEBBLE_VALIDITY:-157766400}}}
JSON
pebble-challtestsrv -http01 "" -https01 "" -tlsalpn01 "" -dns01 127.0.0.1:8053 \
    -management 127.0.0.1:8055 -defaultIPv4 127.0.0.1 -defaultIPv6 "" >challtestsrv.log 2>&1 &
DNS=$!
PEBBLE_VA_NOSLEEP=1 pebble -config pebble-config.json -dnsserver 127.0.0.1:8053 >pebble.log 2>&1 &
CA=$!
trap 'kill $CA $DNS 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do
  curl -sk https://127.0.0.1:15000/roots/0 -o pebble-root.pem 2>/dev/null && break
  sleep 0.2
done
echo "Pebble: https://127.0.0.1:14000/dir (pebble-ca.pem for its HTTPS, pebble-root.pem issues); Ctrl-C stops"
wait $CA
