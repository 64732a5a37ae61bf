#!/usr/bin/env bash
# The HTTP API against its description (docs/openapi.yaml) with schemathesis:
# starts the local server (in-memory store, the demo shop), gives it a
# customer (the sample Shopify order, signed with the demo secret), runs
# schemathesis with the checks not_a_server_error and
# response_schema_conformance on every operation, a bounded number of
# examples each, stops the server, and exits non-zero on any failure.
#
#   bash infra/schemathesis.sh            # as CI runs it
#   ST_MAX_EXAMPLES=200 bash infra/schemathesis.sh   # a longer hunt
#
# Installs schemathesis from PyPI when it is missing. Uses the built
# target/debug/cashback-local (building it if needed). The server's log and
# schemathesis' report are kept under $ST_DIR (a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES=${ST_MAX_EXAMPLES:-25}
SEED=${ST_SEED:-}
ST_DIR=${ST_DIR:-$(mktemp -d -t cashback-schemathesis.XXXXXX)}
DEMO_SHOP=demo.myshopify.com
DEMO_CUSTOMER=7460129384756102938

# shellcheck source=infra/python-tools.sh
source infra/python-tools.sh
python_tools

cargo build --quiet -p cashback-local
SERVER=target/debug/cashback-local

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:${PORT}"
"$SERVER" --addr "127.0.0.1:${PORT}" --jobs-every 0 --outbox "$ST_DIR/outbox" >"$ST_DIR/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT

for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('${BASE}/_local/health', timeout=1)" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the local server exited; its log:" >&2; cat "$ST_DIR/server.log" >&2; exit 1
  fi
  sleep 0.2
done

# A customer for the customer routes: the sample paid order, as Shopify
# would deliver it (signed with the demo shop's development secret).
python3 - "$BASE" <<'PY'
import json, sys, urllib.request
event = json.load(open("events/shopify-orders-paid.json"))
headers = {k: v for k, v in event["headers"].items() if k not in ("host", "content-length")}
request = urllib.request.Request(sys.argv[1] + event["rawPath"], data=event["body"].encode(), headers=headers, method="POST")
with urllib.request.urlopen(request, timeout=10) as answer:
    assert answer.status == 200, answer.status
PY

# Both bearer schemes of the description, and the demo shop and customer in
# every path, so the calls get past "unknown shop" to the handlers.
cat >"$ST_DIR/schemathesis.toml" <<EOF
[auth.openapi.adminToken]
bearer = "demo-admin-token"

[auth.openapi.shopApiKey]
bearer = "cbk_demo_local_development_key"

[parameters]
"path.shop" = "${DEMO_SHOP}"
"path.id" = "${DEMO_CUSTOMER}"
EOF

# One worker: with two, schemathesis itself crashed once in the coverage
# phase (a Python "AST constructor recursion depth mismatch", no request
# involved); the run is short enough either way.
echo "== schemathesis on ${BASE} (${MAX_EXAMPLES} examples per operation; files in ${ST_DIR})"
status=0
# Run from $ST_DIR: schemathesis keeps a cache (.schemathesis/) where it runs.
SPEC="$PWD/docs/openapi.yaml"
(cd "$ST_DIR" && python3 -m schemathesis.cli --config-file "$ST_DIR/schemathesis.toml" run "$SPEC" \
  --url "$BASE" \
  --checks not_a_server_error,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --generation-database none \
  --workers 1 \
  --no-color \
  ${SEED:+--seed "$SEED"} \
  --report junit --report-dir "$ST_DIR/report") || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis failed (exit ${status}); the server's log: ${ST_DIR}/server.log" >&2
fi
exit "$status"
