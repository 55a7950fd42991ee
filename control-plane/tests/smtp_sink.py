"""A real SMTP server for the alert email tests: aiosmtpd, storing each message it accepts as a
file in a maildir. Started by control-plane/tests/alert_delivery.rs as

    smtp_sink.py MAILDIR [--user USER --password PASSWORD] [--cert PEM --key PEM [--implicit-tls]]

It listens on 127.0.0.1 on a free port, prints "ready <port>" once it accepts connections, and
stops when its stdin closes (the test dropping it). With --user and --password it requires SMTP
AUTH with exactly those; with --cert and --key it offers STARTTLS and requires it before
anything else (AUTH included); with --implicit-tls as well it speaks TLS from the first byte
instead (SMTPS, port 465's protocol) and offers no STARTTLS. Without a certificate, AUTH is
allowed on the plain connection.
"""

import argparse
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("maildir")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit-tls", action="store_true")
    args = ap.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok)

    kwargs = {}
    if args.user is not None:
        kwargs.update(authenticator=authenticator, auth_required=True)
        kwargs.update(auth_require_tls=args.cert is not None)
    if args.cert is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        if args.implicit_tls:
            # The whole connection is TLS: aiosmtpd's auth_require_tls knows only STARTTLS.
            kwargs.update(ssl_context=ctx, auth_require_tls=False)
        else:
            kwargs.update(tls_context=ctx, require_starttls=True)
    # aiosmtpd connects to its own port to know it is up, so it needs the number beforehand.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Mailbox(args.maildir), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"ready {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
