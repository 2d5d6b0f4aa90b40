#!/bin/sh
# A `tlskit acme --dns-hook` command for pebble-challtestsrv (the mock DNS next to Pebble): tlskit
# runs it with `add` before the CA checks dns-01 and with `remove` after, the record and its value
# in TLSKIT_DNS_RECORD and TLSKIT_DNS_VALUE. For a real DNS provider, call its API the same way.
#
#   tlskit acme issue '*.example.com' --dns-hook 'sh examples/dns-hook.sh' ...
set -eu
API=${CHALLTESTSRV:-http://127.0.0.1:8055}
case "$1" in
  add)    body="{\"host\":\"$TLSKIT_DNS_RECORD\",\"value\":\"$TLSKIT_DNS_VALUE\"}"; path=set-txt ;;
  remove) body="{\"host\":\"$TLSKIT_DNS_RECORD\"}"; path=clear-txt ;;
  *)      echo "usage: $0 add|remove (run by tlskit acme --dns-hook)" >&2; exit 2 ;;
esac
curl -fsS -X POST -d "$body" "$API/$path"
