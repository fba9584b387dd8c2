#!/usr/bin/env bash
# ./run.sh              serve the app on 127.0.0.1:8080 (embedded PostgreSQL unless DATABASE_URL)
# ./run.sh test [ARGS]  lint, then the whole test suite (pytest ARGS pass through);
#                       the quick loop: ./run.sh test -m "not slow and not browser" -n 2
# ./run.sh lint         ruff and mypy (settings in pyproject.toml)
# ./run.sh schema       regenerate sql/schema.sql from the migrations
# ./run.sh bench [ROWS] side-by-side benchmark against psql \copy
# ./run.sh WORDS...     python -m server WORDS... (import, generate, serve --port ...)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PYTHON=${PYTHON:-python3}

# Install into .venv when it is missing or setup.py changed since the last install.
ensure_venv() {
  local extras=$1 stamp want
  want="$(sha256sum setup.py | cut -d' ' -f1)-$extras"
  stamp="$VENV/.installed"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || ! grep -qx -- "$want" "$stamp"; then
    # A test install also satisfies a plain one, so never downgrade it.
    if [ "$extras" = "" ] && [ -f "$stamp" ] && grep -qx -- "${want}test" "$stamp"; then
      return
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
    echo "$want" > "$stamp"
  fi
}

ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
}

ensure_nginx() {
  # tests/test_deploy.py runs Debian's nginx with deploy/nginx/csv-import.conf.
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "installing Debian's nginx for the deployment test" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
  fi
}

# Defects the tests may never reach: unused names, blocking calls in async code, types.
lint() {
  local failed=0
  "$VENV/bin/ruff" check --quiet server tests setup.py || failed=1
  "$VENV/bin/mypy" || failed=1
  return $failed
}

case "${1:-serve}" in
  test)
    shift
    ensure_venv test
    ensure_chromium
    ensure_nginx
    # The tests run even when lint fails (both results are worth seeing); either fails the run.
    lint_status=0
    lint || lint_status=$?
    test_status=0
    "$VENV/bin/python" -m pytest "$@" || test_status=$?
    if [ "$lint_status" != 0 ]; then
      echo "./run.sh lint: ruff or mypy found problems (listed above the tests)" >&2
      [ "$test_status" = 0 ] && test_status=1
    fi
    exit "$test_status"
    ;;
  lint)
    ensure_venv test
    lint
    ;;
  schema)
    shift
    ensure_venv ""
    exec "$VENV/bin/python" -m server.schema "$@"
    ;;
  bench)
    shift
    ensure_venv ""
    exec "$VENV/bin/python" -m server bench "$@"
    ;;
  serve)
    [ $# -gt 0 ] && shift
    ensure_venv ""
    exec "$VENV/bin/python" -m server serve "$@"
    ;;
  *)
    ensure_venv ""
    exec "$VENV/bin/python" -m server "$@"
    ;;
esac
