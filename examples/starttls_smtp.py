"""The README's `tlskit probe --starttls smtp` target: an SMTP server that offers STARTTLS, upgrades,
and says goodbye. Enough of RFC 3207 for a client to reach the TLS handshake, nothing more.

    python3 examples/starttls_smtp.py --cert site.pem --key site.key --chain inter/ca.pem   # port 2525
    tlskit probe localhost:2525 --starttls smtp --ca-file root/ca.pem
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import threading


def converse(conn: socket.socket, context: ssl.SSLContext) -> None:
    reader = conn.makefile("rb")

    def say(line: str) -> None:
        conn.sendall(line.encode() + b"\r\n")

    say("220 localhost ESMTP example responder")
    for raw in reader:
        verb = raw.decode(errors="replace").strip().split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            say("250-localhost")
            say("250 STARTTLS")
        elif verb == "STARTTLS":
            say("220 2.0.0 ready to start TLS")
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1024)              # the client's QUIT or close, whichever comes
            except (OSError, ssl.SSLError):
                pass
            return
        elif verb == "QUIT":
            say("221 bye")
            return
        else:
            say("502 5.5.2 command not recognized")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--chain", help="intermediates to send after the certificate")
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if args.chain:
        # ssl takes the chain as one file: the certificate first, then its intermediates.
        import tempfile

        bundle = tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False)
        with open(args.cert, "rb") as cert, open(args.chain, "rb") as chain:
            bundle.write(cert.read() + b"\n" + chain.read())
        bundle.close()
        try:
            context.load_cert_chain(bundle.name, args.key)
        finally:
            os.unlink(bundle.name)
    else:
        context.load_cert_chain(args.cert, args.key)
    listener = socket.create_server(("127.0.0.1", args.port))
    print(f"SMTP with STARTTLS on 127.0.0.1:{args.port} (Ctrl-C stops)", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=converse, args=(conn, context), daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
