#!/usr/bin/env bash
# One order through the functions as Lambda runs them, on this machine:
# moto stands in for DynamoDB, `cargo lambda watch` serves every HTTP
# function on one port (routes from Cargo.toml's workspace metadata), and
# `cargo lambda invoke` runs the scheduled ones with the EventBridge events
# of events/ moved to a later time. Emails go to an outbox folder.
#
# Webhook -> customer view -> release -> ready email -> reminder -> checkout.
# Prints "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=infra/python-tools.sh
source infra/python-tools.sh
python_tools

# shellcheck source=infra/moto.sh
source infra/moto.sh
# A moto of its own, even when the tests' one runs: that server has served
# the whole test suite, one request at a time, and holds every table it
# made; there a transaction of these functions twice outlasted their 1.5 s
# SDK operation timeout (a 503 for one sample event). A fresh server holds
# only this run's table.
unset MOTO_ENDPOINT MOTO_PID MOTO_LOG
moto_start
own_moto=1

work=$(mktemp -d -t lambda-e2e.XXXXXX)
table="cashback-lambda-e2e-$$"
watch_pid=""
cleanup() {
  if [ -n "$watch_pid" ]; then
    # cargo lambda watch and the function processes it started.
    kill -- "-$watch_pid" 2>/dev/null || kill "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
  fi
  if [ "$own_moto" = 1 ]; then moto_stop; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building the functions and cashback-local"
cargo build --quiet -p cashback-local -p order-webhook -p coupon-validate -p customer-api -p promote-pending -p send-reminders

if [ "${CASHBACK_PIE:-}" != 1 ]; then
  echo "== the functions are fixed-address executables (functions/link_fixed_address.rs)"
  command -v readelf >/dev/null || { echo "FAIL: readelf (binutils) is needed to check the binaries"; exit 1; }
  for f in order-webhook coupon-validate customer-api promote-pending send-reminders; do
    kind=$(LC_ALL=C readelf -h "target/debug/$f" 2>/dev/null | awk '/Type:/ {print $2}' || true)
    if [ "$kind" != EXEC ]; then
      echo "FAIL: target/debug/$f is ${kind:-unreadable}, not a fixed-address executable (EXEC)"
      exit 1
    fi
  done
fi

echo "== the sample events, the generic ones signed now (their signature is timestamped)"
cargo run --quiet -p order-webhook --example make-events -- --now --out "$work/events" >/dev/null

echo "== table ${table} on moto, with the demo shop"
target/debug/cashback-local seed --store dynamodb --endpoint-url "$MOTO_ENDPOINT" --table "$table"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export CASHBACK_STORE=dynamodb CASHBACK_TABLE="$table" CASHBACK_MAIL=outbox CASHBACK_OUTBOX_DIR="$work/outbox"
export CASHBACK_MAIL_FROM=cashback@demo.localhost CASHBACK_PUBLIC_URL="http://127.0.0.1:${port}"
# The link secret is an SSM SecureString (moto here), read by each function at start.
python3 -c "import boto3,sys; boto3.client('ssm', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').put_parameter(Name='/cashback/lambda-e2e/link-secret', Value='lambda-e2e-link-secret-0123456789abcdef', Type='SecureString', Overwrite=True)" "$MOTO_ENDPOINT"
export CASHBACK_LINK_SECRET_PARAM=/cashback/lambda-e2e/link-secret CASHBACK_SECRET_DEMO_WEBHOOK=demo-webhook-secret
# Local invocations get a short deadline: keep only a second back for the summary.
export CASHBACK_JOB_MARGIN_SECONDS=1
export AWS_ENDPOINT_URL="$MOTO_ENDPOINT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

echo "== cargo lambda watch on 127.0.0.1:${port}"
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --ignore-changes --timeout 120 >"$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 150); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', ${port}), 1)" 2>/dev/null; then break; fi
  sleep 0.2
done

export E2E_BASE="http://127.0.0.1:${port}" E2E_OUTBOX="$work/outbox" E2E_WORK="$work"
# Its failure is reported below with the functions' log, not by `set -e`.
status=0
python3 - <<'PY' || status=$?
import json, os, subprocess, sys, urllib.request, urllib.error, datetime, glob

base, outbox, work = os.environ["E2E_BASE"], os.environ["E2E_OUTBOX"], os.environ["E2E_WORK"]
shop, api_key, customer = "demo.myshopify.com", "cbk_demo_local_development_key", "7460129384756102938"
passed, failed = 0, 0

def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")

def request(method, path, body=None, headers=None):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    # The first call to each function compiles and starts it under watch.
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

def invoke(function, at):
    event = json.load(open(f"events/{function}.json"))
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = os.path.join(work, f"{function}.json")
    json.dump(event, open(path, "w"))
    out = subprocess.run(["cargo", "lambda", "invoke", function, "--data-file", path,
                          "--invoke-address", "127.0.0.1", "--invoke-port", base.rsplit(":", 1)[1], "--output-format", "json"],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return None, out.stderr[-2000:]
    return json.loads(out.stdout or "null"), ""

def view():
    return request("GET", f"/v1/shops/{shop}/customers/{customer}/cashback", headers={"Authorization": f"Bearer {api_key}"})

# 1. The Shopify orders/paid sample, exactly as API Gateway would pass it.
sample = json.load(open("events/shopify-orders-paid.json"))
status, answer = request("POST", sample["rawPath"], sample["body"], sample["headers"])
check("orders/paid webhook is applied", status == 200 and (answer or {}).get("applied", 0) >= 1, f"{status} {answer}")
status, again = request("POST", sample["rawPath"], sample["body"], sample["headers"])
check("a second delivery is a duplicate", status == 200 and (again or {}).get("duplicates", 0) >= 1, f"{status} {again}")

# 2. The customer sees pending cashback and a code.
status, v = view()
pending = float(((v or {}).get("pending") or {}).get("amount", "0"))
code = (v or {}).get("code")
check("the customer view shows pending cashback and a code", status == 200 and pending > 0 and bool(code), f"{status} {v}")

# 3. promote-pending on its next run: the sample order was paid months ago,
# so its 30-day hold is over and it is due at once (never before the engine
# recorded it). Pending becomes available and a ready email goes out.
later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=15)
result, error = invoke("promote-pending", later)
check("promote-pending releases the cashback", result is not None and result.get("released", 0) >= 1, f"{result} {error}")
status, v = view()
available = float(((v or {}).get("available") or {}).get("amount", "0"))
check("the released cashback is available", status == 200 and available > 0, f"{status} {v}")

# 4. send-reminders: position 0 of the series.
result, error = invoke("send-reminders", later + datetime.timedelta(minutes=1))
check("send-reminders sends the first reminder", result is not None and result.get("sent", result.get("emails_sent", 0)) >= 1, f"{result} {error}")

# 5. Checkout: the code takes its balance off a cart.
body = json.dumps({"code": code, "customer_id": customer, "currency": "USD",
                   "cart": {"lines": [{"quantity": 1, "unit_price": "200.00"}], "subtotal": "200.00"}})
status, answer = request("POST", f"/v1/shops/{shop}/coupons/validate", body,
                         {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
discount = float(((answer or {}).get("discount") or {}).get("amount", "0"))
check("the code validates at checkout for its balance", status == 200 and (answer or {}).get("valid") is True and abs(discount - available) < 0.005, f"{status} {answer}")

# 6. Every sample event of events/ through `cargo lambda invoke`, as Lambda
# would receive it from API Gateway (the generic ones re-signed now).
for path in sorted(glob.glob(os.path.join(work, "events", "*.json"))):
    name = os.path.basename(path)
    out = subprocess.run(["cargo", "lambda", "invoke", "order-webhook", "--data-file", path,
                          "--invoke-address", "127.0.0.1", "--invoke-port", base.rsplit(":", 1)[1], "--output-format", "json"],
                         capture_output=True, text=True, timeout=900)
    response = json.loads(out.stdout or "null") if out.returncode == 0 else None
    check(f"cargo lambda invoke order-webhook with {name} answers 200",
          isinstance(response, dict) and response.get("statusCode") == 200, f"{(response or {}).get('body') if response else out.stderr[-500:]}")

# 7. The emails, in the outbox.
names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(outbox, "*.eml")))
for kind in ("earned", "ready", "reminder"):
    check(f"a '{kind}' email is in the outbox", any(n.startswith(kind) for n in names), str(names))

print(f"lambda-e2e: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
if [ "$status" != 0 ]; then
  echo "---- cargo lambda watch log (tail)"; tail -50 "$work/watch.log"
fi
exit "$status"
