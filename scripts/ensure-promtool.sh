#!/usr/bin/env bash
# Puts Prometheus' `promtool` at .build/tools/promtool for the metrics tests (`promtool check metrics`), taken from
# Debian's prometheus package without installing it: the package would also install a Prometheus server, its user
# and its service, which a test machine does not need. Idempotent; prints the path.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOL="$ROOT/.build/tools/promtool"
if [[ -x "$TOOL" ]]; then echo "$TOOL"; exit 0; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hive-promtool.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# A fresh machine has no package lists yet: update once, only when the package is unknown.
apt-cache show prometheus >/dev/null 2>&1 || apt-get update -qq
apt-get download -qq prometheus >/dev/null 2> >(grep -v "unsandboxed" >&2)
dpkg-deb -x prometheus_*.deb extracted
mkdir -p "$(dirname "$TOOL")"
cp extracted/usr/bin/promtool "$TOOL"
"$TOOL" --version >/dev/null
echo "$TOOL"
