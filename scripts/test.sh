#!/usr/bin/env bash
# Install everything kiln's test suite needs on a fresh Debian 12 machine, build, and run every test.
# System packages are installed only when missing; nothing is skipped: a test that needs a tool fails
# when the tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the suite runs for real (see docs/testing.md).
# `arduino` ships the example sketches (/usr/share/doc/arduino/examples) and the tools folder that
# arduino-builder needs (/usr/share/arduino/hardware/tools) for the parity tests.
need_pkgs=(gcc g++ make binutils bsdutils gcc-avr avr-libc binutils-avr arduino-core-avr arduino-builder arduino avrdude simavr socat openssl bzip2 xz-utils zstd zip ninja-build)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npm run build
npx tsc -p tsconfig.json
npx eslint lib test

mapfile -t files < <(find build-test/test -name '*.test.js' | sort)
exec node --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
