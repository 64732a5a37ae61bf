#!/usr/bin/env bash
# Whole-process figures for BENCHMARKS.md: side-by-side timings, callgrind
# instruction counts, DynamoDB costs on moto, cold starts on a stub Lambda
# Runtime API, zip sizes, and the scheduled jobs at scale.
#
#   benches/run.sh [section ...]
#   sections: machine build measure callgrind criterion dynamo coldstart scale
#   (default: all but criterion and scale, which take minutes each)
#
# Run from anywhere; it works in the repository root. Needs python3 (the stub
# runtime and moto), valgrind for callgrind, zip for the sizes. Nothing here
# asserts a timing: it prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."

FUNCTIONS=(admin-api coupon-validate customer-api order-webhook promote-pending send-reminders)
RELEASE=target/release
RUNS=${RUNS:-15}
SECTIONS=("$@")
[ ${#SECTIONS[@]} -eq 0 ] && SECTIONS=(machine build measure callgrind dynamo coldstart)

want() { local s; for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

machine() {
  echo "## machine"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo | sed 's/^model name\s*:/cpu:/'
  awk '/MemTotal/ {printf "memory: %.1f GiB\n", $2/1048576}' /proc/meminfo
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  rustc --version
  git log -1 --format='commit: %h %s'
}

build() {
  # One cargo invocation for every release binary (same profile, shared
  # dependencies built once), then the measuring examples.
  local packages=()
  for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
  cargo build --release "${packages[@]}" -p cashback-benches --bins
  cargo build --release -p cashback-benches --examples
}

measure() {
  echo "## webhook: handler vs floor, alternating rounds"
  "$RELEASE/examples/measure" webhook "${WEBHOOK_ROUNDS:-21}" "${WEBHOOK_PER_ROUND:-500}"
  echo "## validate: p50 / p99"
  "$RELEASE/examples/measure" validate "${VALIDATE_ROUNDS:-5}" "${VALIDATE_SAMPLES:-4000}"
}

# Instructions per item of a workload: (count(n) - count(0)) / n, counted
# inside `measured_section` only; deterministic, unlike wall time here.
instructions() {
  local what=$1 n=$2 out total
  out=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --collect-atstart=no \
    --toggle-collect='*measured_section*' "$RELEASE/examples/measure" count "$what" "$n" \
    >/dev/null 2>"$out/log"
  total=$(grep -E '^(summary|totals):' "$out/cg.out" | tail -1 | awk '{print $2}')
  rm -rf "$out"
  echo "$total"
}

callgrind() {
  command -v valgrind >/dev/null || { echo "valgrind is not installed"; return 0; }
  echo "## callgrind: instructions per item"
  local n=${CALLGRIND_N:-300}
  local floor new dup
  for what in floor new duplicate validate1 validate10 validate100; do
    local a b
    a=$(instructions "$what" 0)
    b=$(instructions "$what" "$n")
    local per=$(( (b - a) / n ))
    echo "$what: $per instructions per item (n=$n)"
    case $what in floor) floor=$per ;; new) new=$per ;; duplicate) dup=$per ;; esac
  done
  python3 -c "print(f'ratio new/floor: {$new/$floor:.2f}; duplicate/floor: {$dup/$floor:.2f}')"
}

criterion() {
  echo "## criterion"
  cargo bench -p cashback-benches
}

with_moto() {
  # shellcheck source=/dev/null
  source infra/moto.sh
  moto_start
  trap moto_stop EXIT
}

dynamo() {
  echo "## DynamoDB on moto: round trips and capacity units"
  [ -n "${MOTO_ENDPOINT:-}" ] || with_moto
  "$RELEASE/examples/dynamo_costs" "${SCHEDULED_SMALL:-100}" "${SCHEDULED_LARGE:-400}" "${SCHEDULED_DUE:-20}"
}

coldstart() {
  echo "## zips (release binary as bootstrap, zip -9)"
  local dir
  dir=$(mktemp -d)
  for bin in bare-lambda "${FUNCTIONS[@]}"; do
    cp "$RELEASE/$bin" "$dir/bootstrap"
    (cd "$dir" && rm -f f.zip && zip -q -9 f.zip bootstrap)
    local zipped
    zipped=$(stat -c %s "$dir/f.zip")
    # What `strip = true` in the release profile would give (not set today).
    strip "$dir/bootstrap"
    (cd "$dir" && rm -f f.zip && zip -q -9 f.zip bootstrap)
    echo "$bin: binary $(stat -c %s "$RELEASE/$bin") bytes, zip $zipped bytes; stripped: binary $(stat -c %s "$dir/bootstrap") bytes, zip $(stat -c %s "$dir/f.zip") bytes"
  done

  echo "## cold start: exec to first GET /next, ${RUNS} runs each, interleaved"
  [ -n "${MOTO_ENDPOINT:-}" ] || with_moto
  local table
  table=$("$RELEASE/examples/coldstart_setup" "$dir" | sed -n 's/^CASHBACK_TABLE=//p')
  # The link secret is an SSM SecureString on Lambda, read at start.
  python3 -c "import boto3,sys; boto3.client('ssm', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').put_parameter(Name='/cashback/bench/link-secret', Value='bench-link-secret-0123456789abcdef', Type='SecureString', Overwrite=True)" "$MOTO_ENDPOINT"
  local env=(--env CASHBACK_STORE=dynamodb --env "CASHBACK_TABLE=$table"
    --env "AWS_ENDPOINT_URL=$MOTO_ENDPOINT" --env CASHBACK_MAIL=outbox
    --env "CASHBACK_OUTBOX_DIR=$dir/outbox" --env CASHBACK_LINK_SECRET_PARAM=/cashback/bench/link-secret
    --env CASHBACK_SECRET_DEMO_WEBHOOK=demo-webhook-secret
    --env CASHBACK_ADMIN_TOKEN=bench-admin-token --env AWS_LAMBDA_LOG_FORMAT=json)
  # Interleaved: one run of each binary in turn, so load changes hit all alike.
  local round bin
  for round in $(seq 1 "$RUNS"); do
    for bin in bare-lambda "${FUNCTIONS[@]}"; do
      python3 benches/stub_runtime.py --binary "$RELEASE/$bin" --runs 1 --json "${env[@]}" \
        >>"$dir/start-$bin.jsonl"
    done
  done
  python3 - "$dir" bare-lambda "${FUNCTIONS[@]}" <<'EOF'
import json, statistics, sys
d, names = sys.argv[1], sys.argv[2:]
def load(n):
    return [v for line in open(f"{d}/start-{n}.jsonl") for v in json.loads(line)["start_ms"] if v is not None]
bare = load("bare-lambda")
rounds = len(bare)
for n in names:
    s = load(n)
    ratios = sorted(a / b for a, b in zip(s, bare))
    s = sorted(s)
    print(f"{n}: start median {statistics.median(s):.2f} ms ({s[0]:.2f}..{s[-1]:.2f}); "
          f"per-round ratio to bare median {statistics.median(ratios):.2f} ({ratios[0]:.2f}..{ratios[-1]:.2f})")
EOF

  # What the fix would give: the same binaries with the system trust store
  # cut to one certificate (rustls-native-certs honours SSL_CERT_FILE and
  # SSL_CERT_DIR), so loading it costs nothing; see BENCHMARKS.md.
  echo "## cold start with a one-certificate trust store (what-if)"
  awk '/BEGIN CERT/{n++} n==1{print} /END CERT/{if(n==1) exit}' /etc/ssl/certs/ca-certificates.crt >"$dir/one.pem"
  mkdir -p "$dir/no-certs"
  for round in $(seq 1 "$RUNS"); do
    for bin in bare-lambda promote-pending order-webhook; do
      python3 benches/stub_runtime.py --binary "$RELEASE/$bin" --runs 1 --json "${env[@]}" \
        --env "SSL_CERT_FILE=$dir/one.pem" --env "SSL_CERT_DIR=$dir/no-certs" >>"$dir/certs-$bin.jsonl"
    done
  done
  python3 - "$dir" <<'EOF2'
import json, statistics, sys
d = sys.argv[1]
def load(n):
    return [v for line in open(f"{d}/certs-{n}.jsonl") for v in json.loads(line)["start_ms"] if v is not None]
bare = load("bare-lambda")
for n in ["promote-pending", "order-webhook"]:
    s = load(n)
    ratios = sorted(a / b for a, b in zip(s, bare))
    print(f"{n} (one cert): start median {statistics.median(s):.2f} ms; ratio to bare median {statistics.median(ratios):.2f} ({ratios[0]:.2f}..{ratios[-1]:.2f}); bare {statistics.median(bare):.2f} ms")
EOF2

  echo "## first invocation vs warm (two invocations per process)"
  python3 benches/stub_runtime.py --binary "$RELEASE/bare-lambda" --runs "$RUNS" \
    --event "$dir/scheduled.json" --event "$dir/scheduled.json" "${env[@]}"
  # A new table per round would be fairer to the webhook's second order;
  # the same two orders are replayed, so runs after the first are
  # duplicates: the first run is reported on its own line.
  python3 benches/stub_runtime.py --binary "$RELEASE/order-webhook" --runs 1 --label "order-webhook (orders applied)" \
    --event "$dir/webhook-paid-1.json" --event "$dir/webhook-paid-2.json" "${env[@]}"
  python3 benches/stub_runtime.py --binary "$RELEASE/order-webhook" --runs "$RUNS" --label "order-webhook (replays: duplicates)" \
    --event "$dir/webhook-paid-1.json" --event "$dir/webhook-paid-2.json" "${env[@]}"
  for job in promote-pending send-reminders; do
    python3 benches/stub_runtime.py --binary "$RELEASE/$job" --runs "$RUNS" \
      --event "$dir/scheduled.json" --event "$dir/scheduled.json" "${env[@]}"
  done
  rm -rf "$dir"
}

scale() {
  echo "## scheduled runs at scale (in-memory), peak memory by /usr/bin/time -v"
  cargo build --release -p promote-pending -p send-reminders --examples
  local accounts due
  for pair in "100000 10000" "1000000 100000"; do
    read -r accounts due <<<"$pair"
    for example in scale reminders-scale; do
      echo "### $example: $accounts accounts, $due due"
      /usr/bin/time -v "$RELEASE/examples/$example" "$accounts" "$due" 2>"/tmp/scale-time.$$" || true
      grep -E 'Maximum resident|Elapsed' "/tmp/scale-time.$$" || true
    done
  done
  rm -f "/tmp/scale-time.$$"
}

want machine && machine
want build && build
want measure && measure
want callgrind && callgrind
want criterion && criterion
want dynamo && dynamo
want coldstart && coldstart
want scale && scale
exit 0
