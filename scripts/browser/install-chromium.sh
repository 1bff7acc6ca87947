#!/usr/bin/env bash
# Debian's Chromium for the real-browser tests (driven by Playwright through executable_path:
# `playwright install` is never used, it downloads a browser build from outside the registries).
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "install-chromium: not root and no sudo; install Debian's chromium package by hand" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
