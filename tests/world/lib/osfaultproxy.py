#!/usr/bin/python3
"""HTTP fault proxy of the test world, in front of the local OpenStack's plain-HTTP APIs.

One process, one listening port per service (`--route LISTEN_PORT=UPSTREAM_PORT`, all on
127.0.0.1). Each request either gets an injected answer (a status, after an optional delay — a
delay longer than the client's timeout is a timeout) or is forwarded to its upstream. Answers are
read whole and every `127.0.0.1:<upstream port>` in them is rewritten to the matching proxy port,
so Keystone's service catalog and the services' version documents lead clients back through the
proxy: a client given only the proxied auth URL sends all its traffic here.

The rules and the control API are faultproxy.py's (same directory):
  POST /faults {"status": 503, "count": 3, "path": "regex", "method": "GET", "delay_ms": 0}
  DELETE /faults, GET /faults (rules, hits, request totals)

Usage: osfaultproxy.py --control 127.0.0.1:C --route 15000=5000 --route 19696=9696 ...
"""
import argparse
import http.client
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy  # noqa: E402  (rules and control API shared with the Kubernetes proxy)

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def make_handler(upstream: int, ports: dict):
    rewrite = [(f"127.0.0.1:{u}".encode(), f"127.0.0.1:{l}".encode()) for u, l in ports.items()]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, code, headers, body) -> None:
            self.send_response(code)
            for k, v in headers:
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.close_connection = True

        def _handle(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            rule = faultproxy.pick_rule(self.command, self.path)
            if rule and rule.get("delay_ms"):
                threading.Event().wait(rule["delay_ms"] / 1000.0)
            if rule and rule.get("status"):
                code = int(rule["status"])
                msg = json.dumps({"error": {"code": code, "message": "injected by the world's fault proxy"}}).encode()
                self._send(code, [("Content-Type", "application/json")], msg)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=300)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                rsp = conn.getresponse()
                data = rsp.read()
                out_headers = rsp.getheaders()
            except OSError as e:
                self._send(502, [("Content-Type", "text/plain")], f"upstream: {e}".encode())
                return
            finally:
                conn.close()
            for a, b in rewrite:
                data = data.replace(a, b)
            fixed = []
            for k, v in out_headers:
                if k.lower() == "location":
                    for a, b in rewrite:
                        v = v.replace(a.decode(), b.decode())
                fixed.append((k, v))
            self._send(rsp.status, fixed, data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, fmt, *a) -> None:
            pass

    return Handler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--control", required=True)
    p.add_argument("--route", action="append", required=True, help="LISTEN_PORT=UPSTREAM_PORT")
    args = p.parse_args()
    ports = {}
    for r in args.route:
        listen, upstream = r.split("=", 1)
        ports[int(upstream)] = int(listen)
    chost, cport = args.control.rsplit(":", 1)
    ctl = ThreadingHTTPServer((chost, int(cport)), faultproxy.Control)
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    servers = []
    for upstream, listen in ports.items():
        srv = ThreadingHTTPServer(("127.0.0.1", listen), make_handler(upstream, ports))
        srv.daemon_threads = True
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stderr.write("osfaultproxy: " + ", ".join(f"{l}->{u}" for u, l in ports.items()) + f", control {args.control}\n")
    threading.Event().wait()


if __name__ == "__main__":
    main()
