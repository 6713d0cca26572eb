#!/usr/bin/python3
"""HTTP fault proxy of the test world, in front of one API server.

toxiproxy works at the TCP level (latency, bandwidth, resets, timeouts) and cannot answer an HTTP
request with a status code, so this small proxy does that part: it terminates TLS (world CA cert),
reads each request's head and either answers it with an injected status (a Kubernetes `Status`
body) or forwards the request, one per upstream connection (`Connection: close`), to the API
server, authenticating there with the world's admin client certificate. Clients of this proxy
therefore act as admin: it listens on 127.0.0.1 only.

Control API (plain HTTP on its own port):
  POST   /faults  {"status": 503, "count": 3, "path": "regex", "method": "GET", "delay_ms": 0}
                  adds a rule: the next `count` matching requests (default: every one) get `status`
                  (or are delayed by `delay_ms` and forwarded when status is 0/absent)
  DELETE /faults  removes every rule
  GET    /faults  the rules and how many requests each has hit, plus the request total

Usage: faultproxy.py --listen 127.0.0.1:P --control 127.0.0.1:C --upstream 127.0.0.1:U \
         --cert tls.crt --key tls.key --ca ca.crt --client-cert admin.crt --client-key admin.key
"""
import argparse
import json
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RULES = []  # dicts: status, count (None = unlimited), path (regex), method, delay_ms, hits
STATS = {"requests": 0, "injected": 0}

REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout", 429: "Too Many Requests", 409: "Conflict"}


def pick_rule(method: str, path: str):
    with LOCK:
        STATS["requests"] += 1
        for r in RULES:
            if r.get("method") and r["method"].upper() != method.upper():
                continue
            if r.get("path") and not re.search(r["path"], path):
                continue
            if r.get("count") is not None and r["hits"] >= r["count"]:
                continue
            r["hits"] += 1
            if r.get("status"):
                STATS["injected"] += 1
            return dict(r)
    return None


def pipe(src, dst) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def read_head(sock) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > 1 << 20:
            break
    return buf


def serve_conn(conn, args, server_ctx, client_ctx) -> None:
    try:
        tls = server_ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()
        return
    try:
        buf = read_head(tls)
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path = (lines[0].split(" ") + ["", ""])[:2]
        rule = pick_rule(method, path)
        if rule and rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        if rule and rule.get("status"):
            code = int(rule["status"])
            body = json.dumps({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "injected by the world's fault proxy", "reason": "ServiceUnavailable"
                if code == 503 else "InternalError", "code": code,
            }).encode()
            tls.sendall((f"HTTP/1.1 {code} {REASONS.get(code, 'Injected')}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n").encode() + body)
            return
        kept = [h for h in lines[1:] if not h.lower().startswith(("connection:", "keep-alive:"))]
        new_head = "\r\n".join([lines[0]] + kept + ["Connection: close"]).encode() + b"\r\n\r\n"
        host, port = args.upstream.rsplit(":", 1)
        up = client_ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
        up.sendall(new_head + rest)
        t = threading.Thread(target=pipe, args=(tls, up), daemon=True)
        t.start()
        pipe(up, tls)
        up.close()
    except OSError:
        pass
    finally:
        try:
            tls.close()
        except OSError:
            pass


class Control(BaseHTTPRequestHandler):
    def _reply(self, code, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with LOCK:
            self._reply(200, {"rules": RULES, **STATS})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        try:
            rule = json.loads(self.rfile.read(n) or b"{}")
        except ValueError as e:
            self._reply(400, {"error": str(e)})
            return
        rule["hits"] = 0
        with LOCK:
            RULES.append(rule)
        self._reply(201, rule)

    def do_DELETE(self) -> None:
        with LOCK:
            RULES.clear()
        self._reply(200, {"rules": []})

    def log_message(self, fmt, *a) -> None:
        sys.stderr.write("faultproxy control: %s\n" % (fmt % a))


def main() -> None:
    p = argparse.ArgumentParser()
    for flag in ("listen", "control", "upstream", "cert", "key", "ca", "client-cert", "client-key"):
        p.add_argument("--" + flag, required=True)
    args = p.parse_args()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(args.cert, args.key)
    server_ctx.set_alpn_protocols(["http/1.1"])
    client_ctx = ssl.create_default_context(cafile=args.ca)
    client_ctx.load_cert_chain(args.client_cert, args.client_key)
    client_ctx.set_alpn_protocols(["http/1.1"])

    chost, cport = args.control.rsplit(":", 1)
    ctl = ThreadingHTTPServer((chost, int(cport)), Control)
    threading.Thread(target=ctl.serve_forever, daemon=True).start()

    host, port = args.listen.rsplit(":", 1)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(128)
    sys.stderr.write(f"faultproxy: {args.listen} -> {args.upstream}, control {args.control}\n")
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve_conn, args=(conn, args, server_ctx, client_ctx), daemon=True).start()


if __name__ == "__main__":
    main()
