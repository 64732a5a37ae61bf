#!/usr/bin/env python3
"""Instructions of a start (and of a first invocation), under callgrind.

Starts the binary under `valgrind --tool=callgrind` with the environment a
Lambda gives (as stub_runtime.py does) plus NAME=VALUE arguments, behind a
runtime API on loopback that answers nothing: at the binary's first
GET .../invocation/next the process is stopped and callgrind's total is
printed (exec to the first poll). With --event, that poll is handed the
event, its response taken, and the process stopped at the next poll: the
total is the start and the first invocation. Deterministic where wall time
is not (BENCHMARKS.md, section 4). Only the standard library is used.

  callgrind_start.py --binary target/.../release/order-webhook \\
      [--event first.json] [--out cg.out] [NAME=VALUE ...]
"""

import argparse
import os
import signal
import socket
import subprocess

LAMBDA_ENV = {
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


def read_request(connection, buffered):
    """One HTTP request: (its request line, the bytes after it), or None."""
    while b"\r\n\r\n" not in buffered:
        chunk = connection.recv(65536)
        if not chunk:
            return None, b""
        buffered += chunk
    head, rest = buffered.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        rest += connection.recv(65536)
    return head.split(b"\r\n")[0], rest[length:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--event")
    parser.add_argument("--out", default="callgrind.start.out")
    parser.add_argument("env", nargs="*", help="NAME=VALUE")
    args = parser.parse_args()
    event = open(args.event, "rb").read() if args.event else None

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(300)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{listener.getsockname()[1]}"}
    env.update(LAMBDA_ENV)
    env.update(pair.split("=", 1) for pair in args.env)
    with open(args.out + ".log", "w") as log:
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={args.out}", args.binary],
            env=env, stdout=subprocess.DEVNULL, stderr=log)

    polls, answer = 0, "-"
    stop = 1 if event is None else 2
    while polls < stop:
        connection, _ = listener.accept()
        buffered = b""
        while polls < stop:
            line, buffered = read_request(connection, buffered)
            if line is None:
                break
            if b"/invocation/next" in line:
                polls += 1
                if polls == stop:
                    break
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Lambda-Runtime-Aws-Request-Id: bench-1\r\n"
                    b"Lambda-Runtime-Deadline-Ms: 9999999999999\r\n"
                    b"Lambda-Runtime-Invoked-Function-Arn: "
                    b"arn:aws:lambda:us-east-1:123456789012:function:bench\r\n"
                    b"Content-Length: " + str(len(event)).encode() + b"\r\n\r\n" + event)
            else:
                answer = line.decode().split(" ")[1].rsplit("/", 1)[-1]
                connection.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
    process.send_signal(signal.SIGTERM)
    process.wait()
    with open(args.out) as out:
        total = next(line.split()[1] for line in out if line.startswith(("summary:", "totals:")))
    print(f"{args.binary}: {int(total):,} instructions"
          + (f" (invocation 1: {answer})" if event is not None else ""))


if __name__ == "__main__":
    main()
