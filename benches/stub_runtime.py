#!/usr/bin/env python3
"""A stub Lambda Runtime API on loopback, to time a function's cold start.

Starts the binary as Lambda would (AWS_LAMBDA_RUNTIME_API and the usual
AWS_LAMBDA_* variables, plus the ones given with --env), and measures:

- start: from exec to the binary's first GET /2018-06-01/runtime/invocation/next,
  i.e. the whole init (the function's main up to asking for work);
- for each --event file, in order: from handing the event over (the answer to
  a GET .../next) to the POST of its response (or error).

Each run is a new process; the figures printed are medians with min..max
over --runs. The binary's stdout/stderr go to /dev/null (logging is part of
what is timed, not of what is shown). Only the standard library is used.

  stub_runtime.py --binary target/release/bare-lambda --runs 15 \
      [--event first.json --event second.json] [--env NAME=VALUE ...] [--json]
"""

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Run:
    """What one process did, as the stub saw it."""

    def __init__(self, events):
        self.events = list(events)
        self.started = None
        self.first_next = None
        self.handed = {}  # request id -> time handed over
        self.answered = {}  # request id -> (time, ok)
        self.order = []
        self.done = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()


def handler_for(run):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def reply(self, status, body=b"", headers=None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            now = time.perf_counter()
            if self.path != f"{PREFIX}/invocation/next":
                return self.reply(404)
            with run.lock:
                if run.first_next is None:
                    run.first_next = now
                event = run.events.pop(0) if run.events else None
            if event is None:
                # Nothing more: hold the poll until the process is stopped.
                run.done.set()
                run.stop.wait(30)
                return self.reply(503)
            request_id = str(uuid.uuid4())
            deadline_ms = int(time.time() * 1000) + 60_000
            headers = {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            }
            with run.lock:
                run.order.append(request_id)
                run.handed[request_id] = time.perf_counter()
            self.reply(200, event, headers)

        def do_POST(self):
            now = time.perf_counter()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = self.path[len(PREFIX):].strip("/").split("/")
            if parts[:2] == ["init", "error"]:
                with run.lock:
                    run.answered["init"] = (now, False, body[:300], None)
                run.done.set()
            elif len(parts) == 3 and parts[0] == "invocation":
                # An HTTP function's answer carries its status: a refusal is
                # an answered invocation too, and must not pass for the real
                # path.
                try:
                    status = json.loads(body).get("statusCode")
                except (ValueError, AttributeError):
                    status = None
                with run.lock:
                    run.answered[parts[1]] = (now, parts[2] == "response", body[:300], status)
            self.reply(202, b"{}", {"Content-Type": "application/json"})

    return Handler


class QuietServer(ThreadingHTTPServer):
    """The binary is killed mid-poll on purpose: its reset is not an error."""

    def handle_error(self, request, client_address):
        pass


def one_run(binary, events, env, timeout):
    run = Run(events)
    server = QuietServer(("127.0.0.1", 0), handler_for(run))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "_HANDLER": "bootstrap",
        "LAMBDA_TASK_ROOT": "/var/task",
        "TZ": ":UTC",
    }
    full_env.update(env)
    run.started = time.perf_counter()
    process = subprocess.Popen(
        [binary], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    run.done.wait(timeout)
    # Let the last response land (the binary posts it, then polls again).
    waited = time.perf_counter()
    while len(run.answered) < len(run.order) and time.perf_counter() - waited < timeout:
        time.sleep(0.001)
    run.stop.set()
    process.kill()
    process.wait()
    server.shutdown()
    server.server_close()
    result = {
        "start_ms": None if run.first_next is None else (run.first_next - run.started) * 1000,
        "invocations_ms": [],
        "ok": [],
    }
    for request_id in run.order:
        answered = run.answered.get(request_id)
        if answered:
            result["invocations_ms"].append((answered[0] - run.handed[request_id]) * 1000)
            result["ok"].append(answered[1])
            result.setdefault("statuses", []).append(answered[3])
            if not answered[1]:
                result.setdefault("errors", []).append(answered[2].decode("utf-8", "replace"))
    if "init" in run.answered:
        result["init_error"] = run.answered["init"][2].decode("utf-8", "replace")
    return result


def spread(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return "n/a"
    return f"{statistics.median(values):.2f} ({values[0]:.2f}..{values[-1]:.2f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--event", action="append", default=[])
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--label", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    events = [open(path, "rb").read() for path in args.event]
    runs = [one_run(args.binary, events, env, args.timeout) for _ in range(args.runs)]
    label = args.label or os.path.basename(args.binary)
    summary = {
        "label": label,
        "runs": args.runs,
        "start_ms": [r["start_ms"] for r in runs],
        "invocations_ms": [r["invocations_ms"] for r in runs],
        "ok": all(all(r["ok"]) and len(r["ok"]) == len(events) for r in runs),
        "statuses": sorted({s for r in runs for s in r.get("statuses", []) if s is not None}),
        "errors": [r.get("errors") or r.get("init_error") for r in runs if r.get("errors") or r.get("init_error")][:2],
    }
    if args.json:
        print(json.dumps(summary))
        return
    line = f"{label}: start {spread(summary['start_ms'])} ms"
    for n in range(len(events)):
        line += f"; invocation {n + 1} {spread([r['invocations_ms'][n] if len(r['invocations_ms']) > n else None for r in runs])} ms"
    if summary["statuses"]:
        line += f"; HTTP status {'/'.join(str(s) for s in summary['statuses'])}"
    if not summary["ok"]:
        line += f"; NOT ALL OK: {summary['errors']}"
    print(line)


if __name__ == "__main__":
    main()
