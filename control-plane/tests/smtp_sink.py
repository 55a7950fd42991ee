"""A real SMTP server for the alert email tests: aiosmtpd, storing each message it accepts as a
file in a maildir. Started by control-plane/tests/alert_delivery.rs as

    smtp_sink.py MAILDIR [USER PASSWORD]

It listens on 127.0.0.1 on a free port, prints "ready <port>" once it accepts connections, and
stops when its stdin closes (the test dropping it). With USER and PASSWORD it requires SMTP AUTH
(PLAIN or LOGIN) with exactly those, over the plain connection (the test has no certificate).
"""

import socket
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    maildir = sys.argv[1]
    creds = (sys.argv[2], sys.argv[3]) if len(sys.argv) == 4 else None

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            creds is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == creds[0]
            and auth_data.password.decode() == creds[1]
        )
        return AuthResult(success=ok)

    kwargs = {}
    if creds is not None:
        kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    # aiosmtpd connects to its own port to know it is up, so it needs the number beforehand.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"ready {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
