#!/usr/bin/env bash
# Whole-process figures for BENCHMARKS.md: side-by-side timings, callgrind
# instruction counts, DynamoDB costs on moto, cold starts on a stub Lambda
# Runtime API, zip sizes, and the scheduled jobs at scale.
#
#   benches/run.sh [section ...]
#   sections: machine build measure callgrind criterion dynamo coldstart scale
#   (default: all but criterion and scale, which take minutes each)
#
# coldstart: RUNS (rounds, 15), COMPARE="label=dir ..." (release binaries of
# other builds, started in the same rounds), FUNCTIONS_ONLY="f g" (only
# those functions, built and started), SYSTEM_ROOTS=1 (see coldstart()).
#
# Run from anywhere; it works in the repository root. Needs python3 (the stub
# runtime and moto), valgrind for callgrind, zip for the sizes. Nothing here
# asserts a timing: it prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."

FUNCTIONS=(admin-api coupon-validate customer-api event-delivery order-webhook pages platform-sync promote-pending report-aggregator send-reminders ses-events)
# FUNCTIONS_ONLY="order-webhook coupon-validate" measures (and builds) only those.
if [ -n "${FUNCTIONS_ONLY:-}" ]; then read -r -a FUNCTIONS <<<"$FUNCTIONS_ONLY"; fi
# An explicit --target, as `cargo lambda build` (and so `sam build`) passes:
# with the same profile and features (Cargo.toml) the two builds share every
# compiled crate, so a `sam build` after this one only links.
TARGET=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
RELEASE="${CARGO_TARGET_DIR:-target}/$TARGET/release"
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
  # One cargo invocation for every release binary and every example (the
  # measuring ones and the functions' own, such as `scale`): cargo resolves
  # features per invocation, and the examples' dev-dependencies (criterion)
  # turn on features of crates the SDK depends on (num-traits/std), so a
  # second invocation compiled the SDK again. One invocation compiles each
  # crate once. Its time is printed (BENCHMARKS.md, "One release build").
  local packages=()
  for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
  local started=$SECONDS
  cargo build --release --locked --target "$TARGET" "${packages[@]}" -p cashback-benches --bins --examples
  echo "release build: $((SECONDS - started)) s"
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
  cargo bench -p cashback-benches --features criterion
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
  local dir
  if [ -n "${BEFORE_DIR:-}" ]; then COMPARE="before=$BEFORE_DIR ${COMPARE:-}"; fi
  dir=$(mktemp -d)
  echo "## binaries and zips (the release profile of Cargo.toml; the binary zipped as bootstrap, zip -9)"
  for bin in bare-lambda "${FUNCTIONS[@]}"; do
    cp "$RELEASE/$bin" "$dir/bootstrap"
    (cd "$dir" && rm -f f.zip && zip -q -9 f.zip bootstrap)
    echo "$bin: binary $(stat -c %s "$RELEASE/$bin") bytes, zip $(stat -c %s "$dir/f.zip") bytes"
  done
  local pair label compare_dir
  for pair in ${COMPARE:-}; do
    label=${pair%%=*}
    compare_dir=${pair#*=}
    for bin in bare-lambda "${FUNCTIONS[@]}"; do
      [ -x "$compare_dir/$bin" ] || continue
      cp "$compare_dir/$bin" "$dir/bootstrap"
      (cd "$dir" && rm -f f.zip && zip -q -9 f.zip bootstrap)
      echo "$bin, $label: binary $(stat -c %s "$compare_dir/$bin") bytes, zip $(stat -c %s "$dir/f.zip") bytes"
    done
  done

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

  # Every variant once per round, rounds interleaved, so load changes hit
  # all alike; a function's ratio is to the bare binary of the same round
  # and the same build. Variants: the binaries as built; with
  # COMPARE="label=dir ..." (directories of release binaries of another
  # build: an earlier commit, another profile) those too, each against the
  # bare binary of its own directory where it has one; with SYSTEM_ROOTS=1
  # the binaries as built on the system's trust store
  # (CASHBACK_TLS_ROOTS=system: what the compiled-in one saves).
  local variants=("bare-lambda|$RELEASE/bare-lambda|")
  # (Its own name: `dir` above holds this run's files, which the first
  # request part below reads.)
  local f
  for f in "${FUNCTIONS[@]}"; do variants+=("$f|$RELEASE/$f|"); done
  for pair in ${COMPARE:-}; do
    label=${pair%%=*}
    compare_dir=${pair#*=}
    for f in bare-lambda "${FUNCTIONS[@]}"; do
      if [ -x "$compare_dir/$f" ]; then variants+=("$f, $label|$compare_dir/$f|"); fi
    done
  done
  if [ -n "${SYSTEM_ROOTS:-}" ]; then
    for f in "${FUNCTIONS[@]}"; do variants+=("$f, system trust store|$RELEASE/$f|CASHBACK_TLS_ROOTS=system"); done
  fi
  echo "## cold start: exec to the first GET /next, ${RUNS} rounds of every variant, interleaved"
  local round variant name binary extra n
  for round in $(seq 1 "$RUNS"); do
    n=0
    for variant in "${variants[@]}"; do
      IFS='|' read -r name binary extra <<<"$variant"
      local more=()
      if [ -n "$extra" ]; then more=(--env "$extra"); fi
      python3 benches/stub_runtime.py --binary "$binary" --runs 1 --json --label "$name" \
        "${env[@]}" "${more[@]}" >>"$dir/start-$n.jsonl"
      n=$((n + 1))
    done
  done
  python3 benches/coldstart_table.py start "$dir" "${#variants[@]}"

  # The first request beside the start, so that nothing put off until the
  # first request hides its cost: start, first and second invocation of a
  # process, and start + first against the bare binary's in the same round.
  echo "## first request: start, invocation 1 and 2 of each process, ${RUNS} rounds, interleaved"
  # The first round of the webhook applies its two orders; later rounds
  # replay them (duplicates), as a retried delivery would.
  local requests=(
    "bare-lambda|scheduled.json scheduled.json"
    "order-webhook|webhook-paid-1.json webhook-paid-2.json"
    "customer-api|customer-view.json customer-view.json"
    "coupon-validate|coupon-validate-@A.json coupon-validate-@B.json"
    "admin-api|admin-program.json admin-program.json"
    "pages|pages-login.json pages-login.json"
    "promote-pending|scheduled.json scheduled.json"
    "send-reminders|scheduled.json scheduled.json"
  )
  # Only the functions measured (FUNCTIONS_ONLY), and each also from the
  # COMPARE builds that have it ("<binary>, <label>", against that build's
  # bare binary where it has one), in the same rounds.
  local firsts=() request events e
  for request in "${requests[@]}"; do
    name=${request%%|*}
    if [ "$name" = bare-lambda ] || printf '%s\n' "${FUNCTIONS[@]}" | grep -qx "$name"; then
      firsts+=("$name|$RELEASE/$name|${request#*|}")
    fi
  done
  for pair in ${COMPARE:-}; do
    label=${pair%%=*}
    compare_dir=${pair#*=}
    for request in "${firsts[@]}"; do
      IFS='|' read -r name binary events <<<"$request"
      case $name in *,*) continue ;; esac
      if [ -x "$compare_dir/$name" ]; then firsts+=("$name, $label|$compare_dir/$name|$events"); fi
    done
  done
  for round in $(seq 1 "$RUNS"); do
    n=0
    for request in "${firsts[@]}"; do
      IFS='|' read -r name binary events <<<"$request"
      # Events that must differ between rounds (coldstart_setup says why).
      events=${events//@A/$((2 * round - 1))}
      events=${events//@B/$((2 * round))}
      local args=()
      for e in $events; do args+=(--event "$dir/$e"); done
      python3 benches/stub_runtime.py --binary "$binary" --runs 1 --json --label "$name" \
        "${args[@]}" "${env[@]}" >>"$dir/first-$n.jsonl"
      n=$((n + 1))
    done
  done
  python3 benches/coldstart_table.py first "$dir" "${#firsts[@]}"
  rm -rf "$dir"
}

scale() {
  echo "## scheduled runs at scale (in-memory), peak memory by /usr/bin/time -v"
  # The examples come from `build` (one invocation, one feature set).
  [ -x "$RELEASE/examples/scale" ] || build
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
