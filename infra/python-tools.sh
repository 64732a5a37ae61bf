#!/usr/bin/env bash
# Sourced by the test scripts: creates the project's Python virtual
# environment once (moto, cfn-lint, schemathesis, cargo-lambda, from
# infra/python-requirements.txt) and puts it first on PATH, so `python3`,
# `cfn-lint` and `cargo lambda` are the project's own whatever the system
# interpreter allows (a Debian python refuses `pip install` outside a venv).
#   source infra/python-tools.sh && python_tools
# CASHBACK_VENV chooses where it lives; by default outside the checkout, so a
# fresh clone on the same machine reuses it. It is rebuilt when the
# requirements change.

python_tools() {
  local root venv requirements stamp wanted
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${CASHBACK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cashback-engine/venv}"
  requirements="$root/infra/python-requirements.txt"
  stamp="$venv/.requirements.sha256"
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python3" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    local system_python
    system_python="$(command -v python3)" || { echo "python3 is required for the test tools" >&2; return 1; }
    echo "creating the Python tools environment in $venv ..." >&2
    rm -rf "$venv"
    "$system_python" -m venv "$venv" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; return 1; }
    "$venv/bin/python3" -m pip install --quiet --upgrade pip >&2 || return 1
    "$venv/bin/python3" -m pip install --quiet -r "$requirements" >&2 || return 1
    echo "$wanted" >"$stamp"
  fi
  case ":$PATH:" in
    *":$venv/bin:"*) ;;
    *) export PATH="$venv/bin:$PATH" ;;
  esac
  export VIRTUAL_ENV="$venv"
}
