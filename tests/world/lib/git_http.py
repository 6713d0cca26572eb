#!/usr/bin/python3
"""Smart-HTTP git server of the test world: a small HTTP server that runs `git http-backend` (CGI)
for every request. Usage: git_http.py HOST PORT PROJECT_ROOT [CERT KEY TOKEN_FILE]. Every repository
under PROJECT_ROOT is served (GIT_HTTP_EXPORT_ALL) and accepts pushes (http.receivepack is enabled
per repository by git.sh). With three arguments: plain HTTP, no authentication (127.0.0.1 only).
With CERT, KEY and TOKEN_FILE: HTTPS with that certificate, and every request must carry HTTP basic
auth whose password is the token in TOKEN_FILE (any user name); otherwise 401 with
`WWW-Authenticate: Basic`.
"""
import base64
import hmac
import ssl
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

BACKEND = "/usr/lib/git-core/git-http-backend"


class GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        kind, _, cred = self.headers.get("Authorization", "").partition(" ")
        if kind.lower() != "basic":
            return False
        try:
            _, _, password = base64.b64decode(cred.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), token.encode())

    def _run(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if not self._authorized():
            payload = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="world-git"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        env = {
            "GIT_PROJECT_ROOT": self.server.project_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": "world",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "PATH": "/usr/bin:/bin",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        res = subprocess.run([BACKEND], input=body, env=env, capture_output=True, check=False)
        head, _, payload = res.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = res.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k, v.strip()))
        if res.returncode != 0 and not res.stdout:
            status, payload = 500, res.stderr
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _run
    do_POST = _run

    def log_message(self, fmt, *args) -> None:
        sys.stderr.write("git-http %s %s\n" % (self.address_string(), fmt % args))


def main() -> None:
    host, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    srv = ThreadingHTTPServer((host, port), GitHandler)
    srv.project_root = root
    srv.token = None
    if len(sys.argv) == 7:
        cert, key, token_file = sys.argv[4], sys.argv[5], sys.argv[6]
        with open(token_file, encoding="utf-8") as f:
            srv.token = f.read().strip()
        if not srv.token:
            sys.exit("git_http.py: empty token file " + token_file)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # the handshake happens in the request's thread (first read), not in accept()
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    srv.serve_forever()


if __name__ == "__main__":
    main()
