#!/usr/bin/env bash
# Install everything the test suite needs, then run it.  Debian packages are installed
# only when running as root with apt-get available (CI); elsewhere the tests that need
# them say what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(redis-server postgresql chromium wrk curl nginx)
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

# The real Claude Code, for the test that points it at `ccgate demo` (a binary inside an npm package).
CLAUDE_CODE_VERSION=2.1.330
if command -v npm >/dev/null 2>&1 && [ ! -x .tools/node_modules/.bin/claude ]; then
  npm install --prefix .tools --no-audit --no-fund --silent "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >/dev/null 2>&1 \
    || echo "Claude Code could not be installed; its test will say so"
fi

# The official Node SDK, for the test that runs the /docs page's Node snippet as pasted.
ANTHROPIC_NODE_SDK_VERSION=1.15.0
if command -v npm >/dev/null 2>&1 && [ ! -d .tools/node_modules/@anthropic-ai/sdk ]; then
  npm install --prefix .tools --no-audit --no-fund --silent "@anthropic-ai/sdk@$ANTHROPIC_NODE_SDK_VERSION" >/dev/null 2>&1 \
    || echo "the Anthropic Node SDK could not be installed; the docs snippet test will say so"
fi

# The OpenAI-speaking clients of the Responses API tests: Codex CLI and the AI SDK's openai() provider
# (versions that still run on Node 18 and 20).
CODEX_VERSION=0.171.0
AI_SDK_VERSION=6.0.325
AI_SDK_OPENAI_VERSION=3.0.141
if command -v npm >/dev/null 2>&1 && { [ ! -x .tools/node_modules/.bin/codex ] || [ ! -d .tools/node_modules/@ai-sdk/openai ]; }; then
  npm install --prefix .tools --no-audit --no-fund --silent "@openai/codex@$CODEX_VERSION" "ai@$AI_SDK_VERSION" \
    "@ai-sdk/openai@$AI_SDK_OPENAI_VERSION" >/dev/null 2>&1 \
    || echo "Codex CLI or the AI SDK could not be installed; their tests will say so"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# Lint, types and the import layers first: zero findings, or nothing runs.
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports

# Every test on one process and SQLite; then the policy suite again, unchanged, against three worker
# processes sharing PostgreSQL and Redis (test_scale, test_mixed_load and test_obs_e2e run their own
# multi-worker deployments in the first run). The tests wait on servers far more than they compute,
# so three run side by side on two cores.
.venv/bin/python -m pytest -n 3 "$@"
CCGATE_TEST_DEPLOYMENT=scaled .venv/bin/python -m pytest -n 3 "$@" tests/test_policy.py
