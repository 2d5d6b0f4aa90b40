#!/bin/sh
# The inputs of the README's `tlskit chain` examples, in the current directory: a root, two
# intermediates under it, www.example.com's key and certificate from the second, the mixed-up
# bundle.crt, a notes.txt that is no certificate, and the PKCS#12 password file.
#
#   mkdir chain-demo && cd chain-demo && sh ../examples/chain-pki.sh
set -eu
TLSKIT=${TLSKIT:-tlskit}
$TLSKIT ca init --dir root --cn "Example Root CA" >/dev/null
$TLSKIT ca init --dir int1 --cn "Example Intermediate 1" --parent root >/dev/null
$TLSKIT ca init --dir int2 --cn "Example Intermediate 2" --parent int1 >/dev/null
$TLSKIT csr --cn www.example.com --out www.csr --key-out www.key >/dev/null
$TLSKIT ca sign www.csr --ca-dir int2 --out www.crt >/dev/null
cat int1/ca.pem root/ca.pem www.crt int2/ca.pem www.crt > bundle.crt     # wrong order, root, a duplicate
echo "not a certificate" > notes.txt
echo changeit > p12pass.txt
echo "made root/ int1/ int2/ www.key www.crt bundle.crt notes.txt p12pass.txt"
