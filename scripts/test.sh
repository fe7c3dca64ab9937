#!/usr/bin/env bash
# Install everything the test suite needs, then run it.  Debian packages are installed
# only when running as root with apt-get available (CI); elsewhere the tests that need
# them say what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=()
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ ${#DEBIAN_PACKAGES[@]} -gt 0 ]; then
  missing=()
  for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
