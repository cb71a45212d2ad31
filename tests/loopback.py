"""A loopback HTTP server (127.0.0.1, random port) for download tests.

``files`` maps a path to its bytes; ``behaviour`` maps a path to how the
server misbehaves: ``{"status": 500}``, ``{"declared_length": n}`` (lie in
Content-Length), ``{"stall_after": n}`` (send n bytes, then nothing),
``{"trickle": seconds}`` (one byte per interval).
"""

import http.server
import threading
import time


class LoopbackServer:
    def __init__(self):
        self.files, self.behaviour, self.requests = {}, {}, []
        self.truncate = set()  # paths whose Content-Length claims 1000 bytes more than sent
        self._stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                server.requests.append(self.path)
                how = server.behaviour.get(self.path, {})
                if "status" in how:
                    self.send_error(how["status"])
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                length = how.get("declared_length", len(body) + (1000 if self.path in server.truncate else 0))
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if "stall_after" in how:
                    self.wfile.write(body[: how["stall_after"]])
                    self.wfile.flush()
                    server._stop.wait(30)
                elif "trickle" in how:
                    for i in range(len(body)):
                        if server._stop.is_set():
                            return
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(how["trickle"])
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
