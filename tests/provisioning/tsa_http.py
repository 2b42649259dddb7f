#!/usr/bin/env python3
"""A loopback RFC 3161 TSA for the doctor tests.

    tsa_http.py OPENSSL_CNF PORT_FILE [FAKETIME_OFFSET]

HTTP on 127.0.0.1 (a free port, written to PORT_FILE); every POSTed TimeStampReq is answered by
`openssl ts -reply -config OPENSSL_CNF`. With FAKETIME_OFFSET (e.g. "+600s") openssl runs under
faketime, so the TSA's genTime is that far from this machine's clock: a TSA whose clock is off,
as seen from a PC whose clock is off the other way.
"""
import http.server
import os
import subprocess
import sys
import tempfile

CNF = sys.argv[1]
PORT_FILE = sys.argv[2]
OFFSET = sys.argv[3] if len(sys.argv) > 3 else ""


class Tsa(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with tempfile.TemporaryDirectory() as d:
            tsq, tsr = os.path.join(d, "q.tsq"), os.path.join(d, "r.tsr")
            with open(tsq, "wb") as f:
                f.write(query)
            cmd = ["openssl", "ts", "-reply", "-config", CNF, "-queryfile", tsq, "-out", tsr]
            if OFFSET:
                cmd = ["faketime", "-f", OFFSET] + cmd
            done = subprocess.run(cmd, capture_output=True, check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stderr.decode(errors="replace"))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with open(tsr, "rb") as f:
                body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Tsa)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
