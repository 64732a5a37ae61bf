#!/usr/bin/env bash
# Runs every check and every test, as CI does: formatting, clippy with
# warnings denied, the template lint, and the whole workspace's tests with
# moto's server (started and stopped here) standing in for DynamoDB and SES.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The criterion benches sit behind a feature (benches/Cargo.toml says why).
cargo clippy -p cashback-benches --all-targets --features criterion --locked -- -D warnings

echo "== cargo doc (warnings denied: broken links, bad code blocks)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

echo "== Python tools (moto, cfn-lint, schemathesis, cargo-lambda) in the project's venv"
# shellcheck source=infra/python-tools.sh
source infra/python-tools.sh
python_tools

echo "== cfn-lint and sam validate --lint: template.yaml"
cfn-lint template.yaml
# No AWS account is needed: validation is local (a region names the schema).
SAM_CLI_TELEMETRY=0 sam validate --lint --region us-east-1 --template-file template.yaml

echo "== headless Chromium, chromedriver and axe-core for the browser test"
# shellcheck source=infra/browser.sh
source infra/browser.sh
browser_tools

echo "== tests (moto for DynamoDB and SES v2; the pages in headless Chromium)"
# shellcheck source=infra/moto.sh
source infra/moto.sh
moto_start
trap moto_stop EXIT
# With REQUIRE_MOTO=1 a moto-backed test fails instead of skipping.
SHOPIFY_ADMIN_SCHEMA="$(bash infra/shopify-schema.sh)" && export SHOPIFY_ADMIN_SCHEMA
REQUIRE_SHOPIFY_SCHEMA=1 REQUIRE_MOTO=1 cargo test --workspace --locked

echo "== cargo lambda: watch and invoke, one order end to end (moto)"
bash infra/lambda-e2e.sh

echo "== schemathesis: the HTTP API against docs/openapi.yaml on the local server"
bash infra/schemathesis.sh
