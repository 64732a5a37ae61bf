#!/usr/bin/env bash
# What the browser test needs (shared/pages/tests/browser.rs): headless
# Chromium and its WebDriver from Debian's packages (no browser download),
# and axe-core from the npm registry. Sourced by infra/test.sh; exports
# AXE_CORE_JS and REQUIRE_BROWSER=1 so the test fails instead of skipping.

AXE_CORE_VERSION="4.14.1"

browser_tools() {
  # Only what is missing: Debian's npm conflicts with a Node.js from
  # elsewhere (NodeSource's bundles its own npm).
  local wanted=()
  command -v chromium >/dev/null || wanted+=(chromium)
  command -v chromedriver >/dev/null || wanted+=(chromium-driver)
  command -v npm >/dev/null || wanted+=(npm)
  if [ ${#wanted[@]} -gt 0 ]; then
    echo "installing ${wanted[*]} (Debian packages)"
    local sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${wanted[@]}" >/dev/null
  fi
  local dir="${CARGO_TARGET_DIR:-target}/axe-core-${AXE_CORE_VERSION}"
  if [ ! -f "$dir/package/axe.min.js" ]; then
    echo "fetching axe-core ${AXE_CORE_VERSION} from the npm registry"
    mkdir -p "$dir"
    (cd "$dir" && npm pack "axe-core@${AXE_CORE_VERSION}" --silent >/dev/null \
      && tar xzf "axe-core-${AXE_CORE_VERSION}.tgz" package/axe.min.js)
  fi
  AXE_CORE_JS="$(cd "$dir/package" && pwd)/axe.min.js"
  export AXE_CORE_JS
  export REQUIRE_BROWSER=1
}
