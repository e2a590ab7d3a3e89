#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for tests/test_web_demo.py
# (root; idempotent: does nothing when both are there). The test drives
# /usr/bin/chromium with Playwright (pip extra 'web'); it never downloads a
# browser of its own.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver \
    fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
