#!/usr/bin/env bash
# Starts or stops moto's server (DynamoDB and SES v2 for tests) on a free
# loopback port. Sourced by infra/test.sh:
#   source infra/moto.sh && moto_start   # exports MOTO_ENDPOINT
#   moto_stop
# moto comes from the project's Python environment (infra/python-tools.sh).

# shellcheck source=infra/python-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/python-tools.sh"

moto_python() {
  python_tools
}

MOTO_SERIAL_SERVER='
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)
'

moto_start() {
  moto_python || return 1
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  MOTO_LOG=${MOTO_LOG:-$(mktemp -t moto.XXXXXX.log)}
  # One request at a time: moto's threaded server does not apply overlapping
  # transactions atomically (a cancelled one restores a snapshot of the
  # table and can erase a commit made meanwhile), which real DynamoDB does.
  python3 -c "$MOTO_SERIAL_SERVER" "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  export MOTO_PID MOTO_LOG
  export MOTO_ENDPOINT="http://127.0.0.1:${port}"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('${MOTO_ENDPOINT}/moto-api/', timeout=1)" >/dev/null 2>&1; then
      echo "moto listening on ${MOTO_ENDPOINT} (pid ${MOTO_PID})" >&2
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      echo "moto exited; its log:" >&2; cat "$MOTO_LOG" >&2; return 1
    fi
    sleep 0.2
  done
  echo "moto did not start in 20 s; its log:" >&2; cat "$MOTO_LOG" >&2
  moto_stop
  return 1
}

moto_stop() {
  if [ -n "${MOTO_PID:-}" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  unset MOTO_PID MOTO_ENDPOINT
}
