"""A real SMTP server for the email channel's tests (aiosmtpd), and a MIME reader.

serve: listens on 127.0.0.1:PORT and writes each message it accepts to DIR as N.eml (the bytes
received), with N.json beside it: {"mail_from", "rcpt_tos", "login", "tls"} (login: the AUTH
user, or null; tls: whether the session was upgraded with STARTTLS). With --auth USER:PASSWORD
it offers AUTH (PLAIN, LOGIN) without TLS and refuses other logins with 535; with --tls-cert
and --tls-key it offers STARTTLS, or with --implicit-tls speaks TLS from the start (SMTPS). Prints "ready" once listening, then runs until killed.

parse: prints one .eml file as JSON, read by Python's email package (an independent MIME
reader): {"subject", "from", "to", "content_type", "parts": [{"content_type", "text"}]}.
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading
from email import policy
from email.parser import BytesParser


def serve(args):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    os.makedirs(args.dir, exist_ok=True)
    counter = {"n": 0}
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                counter["n"] += 1
                n = counter["n"]
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "login": session.auth_data if session.authenticated else None,
                # STARTTLS sets session.ssl; implicit TLS shows on the transport.
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
            }
            # Written under a temporary name and renamed: a reader sees whole files only. The
            # .json goes last, so its presence says both are there.
            for ext, data in ((".eml", envelope.original_content or envelope.content),
                              (".json", json.dumps(meta).encode())):
                path = os.path.join(args.dir, f"{n}{ext}")
                with open(path + ".tmp", "wb") as f:
                    f.write(data)
                os.rename(path + ".tmp", path)
            return "250 Message accepted for delivery"

    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            return AuthResult(success=ok, handled=False,
                              auth_data=auth_data.login.decode() if ok else None)

        kwargs.update(authenticator=authenticator, auth_require_tls=False)
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        # Implicit TLS (SMTPS, port 465 style): TLS from the first byte; else STARTTLS.
        if args.implicit_tls:
            kwargs.update(ssl_context=ctx)
        else:
            kwargs.update(tls_context=ctx)

    controller = Controller(Handler(), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


def parse(args):
    with open(args.file, "rb") as f:
        msg = BytesParser(policy=policy.default).parse(f)
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        parts.append({"content_type": part.get_content_type(), "text": part.get_content()})
    print(json.dumps({
        "subject": str(msg["subject"]),
        "from": str(msg["from"]),
        "to": [str(a) for a in msg["to"].addresses],
        "message_id": str(msg["message-id"]),
        "content_type": msg.get_content_type(),
        "parts": parts,
    }))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--auth")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--implicit-tls", action="store_true")
    r = sub.add_parser("parse")
    r.add_argument("file")
    args = p.parse_args()
    serve(args) if args.cmd == "serve" else parse(args)


if __name__ == "__main__":
    sys.exit(main())
