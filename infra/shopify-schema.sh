#!/usr/bin/env bash
# Fetches Shopify's Admin GraphQL schema (an introspection result) for the
# API version the engine's Shopify adapter uses, so the schema test
# (shared/platform-codes/tests/platform_codes/shopify_schema.rs) can check every document
# and variable the adapter sends. The schema ships in the npm package
# @shopify/dev-mcp (dist/data/admin_<version>.json.gz); only the npm registry
# is needed. Idempotent: a file already fetched is kept.
#
#   bash infra/shopify-schema.sh            # prints the schema's path
#   SHOPIFY_API_VERSION=2026-10 SHOPIFY_DEV_MCP_VERSION=1.16.0 bash infra/shopify-schema.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The version of shared/platform-codes/src/shopify.rs (API_VERSION).
version="${SHOPIFY_API_VERSION:-$(sed -n 's/^pub const API_VERSION: &str = "\(.*\)";/\1/p' shared/platform-codes/src/shopify.rs)}"
package="@shopify/dev-mcp@${SHOPIFY_DEV_MCP_VERSION:-1.16.0}"
cache="${HOME}/.cache/cashback-engine"
schema="${cache}/shopify-admin-${version}.json"

if [ ! -s "$schema" ]; then
    mkdir -p "$cache"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "$package" >/dev/null)
    tarball="$(ls "$work"/*.tgz)"
    if ! tar -xzf "$tarball" -C "$work" "package/dist/data/admin_${version}.json.gz" 2>/dev/null; then
        echo "shopify-schema: $package has no admin schema for $version" >&2
        exit 1
    fi
    gunzip -c "$work/package/dist/data/admin_${version}.json.gz" >"$schema.tmp"
    mv "$schema.tmp" "$schema"
fi
echo "$schema"
