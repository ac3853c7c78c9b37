#!/usr/bin/env bash
# Run the Autobahn|Testsuite WebSocket conformance cases, all 517 of them
# (1.*-10.* with the 9.* limits/performance cases, and the permessage-deflate
# cases 12.* and 13.*) against Hive's /echo endpoint.
#
#   Tests/Conformance/run-conformance.sh PATH_TO_HIVE_BINARY
#
# Starts `hive start` on a free loopback port with 2 workers, a 16 MiB
# message limit (9.1.6/9.2.6 send 16 MiB messages) and --compression on, waits
# for it to log "ready", runs Tests/Conformance/autobahn/run.sh against
# ws://127.0.0.1:PORT/echo and stops hive again. Cases 1.*-7.* run without
# negotiating compression (so RSV1 must still fail them); 12.* and 13.* offer
# it. Nearly all the time goes to 12.* and 13.* (216 cases of 1000 compressed
# messages each, with wstest in Python 2 the bottleneck), so 13.* runs in a
# second wstest beside the rest, one per core: on an idle 2-core machine
# about 7 minutes instead of 12 (estimated from autobahn/README.md's per-group
# times; not measured here, the machine was never idle).
#
# Report: .build/autobahn-report/ (index.html, summary.txt, wstest.log) for all
# cases but 13.*, .build/autobahn-report-13/ for 13.*, with hive's own output
# in .build/autobahn-report/hive.log.
# Exit status: the suite's (0 no case FAILED; 1 a case FAILED or never ran;
# 2 usage, install or connection problem); 2 as well when hive does not start.
#
# Environment: AUTOBAHN_OUT (default .build/autobahn-report, relative to the
# repository root), AUTOBAHN_TIMEOUT (default 3600 s: on a 2-core machine
# shared with other jobs, load average 20, 12.* and 13.* did not finish in 30
# minutes), and the other AUTOBAHN_*
# variables of autobahn/run.sh (see autobahn/README.md).
set -euo pipefail

log() { echo "run-conformance: $*" >&2; }

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  echo "usage: $0 PATH_TO_HIVE_BINARY" >&2
  exit 2
fi
HIVE="$1"
case "$HIVE" in
  */*) ;;
  *) HIVE="$(command -v "$HIVE" || true)" ;;  # a bare name: look it up on PATH
esac
if [ -z "$HIVE" ] || [ ! -f "$HIVE" ] || [ ! -x "$HIVE" ]; then
  log "not an executable: $1"
  exit 2
fi
# absolute, because everything below runs from the repository root
HIVE="$(cd "$(dirname "$HIVE")" && pwd)/$(basename "$HIVE")"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/../.."

export AUTOBAHN_OUT="${AUTOBAHN_OUT:-.build/autobahn-report}"
export AUTOBAHN_TIMEOUT="${AUTOBAHN_TIMEOUT:-3600}"
export AUTOBAHN_AGENT="${AUTOBAHN_AGENT:-hive}"
READY_TIMEOUT=30   # seconds for hive to log "ready"
STOP_TIMEOUT=10    # seconds between SIGTERM and SIGKILL

mkdir -p "$AUTOBAHN_OUT"
HIVE_LOG="$AUTOBAHN_OUT/hive.log"
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hive-conformance.XXXXXX")"
HIVE_PID=""

show_log() {
  echo "----- hive log ($HIVE_LOG) -----" >&2
  cat "$HIVE_LOG" >&2 || true
  echo "----- end of hive log -----" >&2
}

# Stop hive by its PID: SIGTERM, up to STOP_TIMEOUT s to exit, then SIGKILL.
stop_hive() {
  local pid="$HIVE_PID" i
  [ -n "$pid" ] || return 0
  HIVE_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "hive (pid $pid) still running ${STOP_TIMEOUT} s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  stop_hive
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

log "starting $HIVE on port $PORT (run dir $RUN_DIR, log $HIVE_LOG)"
"$HIVE" start --port "$PORT" --workers 2 --max-message-size 16777216 --compression on --run-dir "$RUN_DIR" \
  >"$HIVE_LOG" 2>&1 </dev/null &
HIVE_PID=$!

# Wait until hive logs "ready"; give up early if it exits.
deadline=$((SECONDS + READY_TIMEOUT))
until grep -qw ready "$HIVE_LOG" 2>/dev/null; do
  if ! kill -0 "$HIVE_PID" 2>/dev/null; then
    rc=0
    wait "$HIVE_PID" || rc=$?
    HIVE_PID=""
    log "hive exited with status $rc before it was ready"
    show_log
    exit 2
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "hive did not log 'ready' within ${READY_TIMEOUT} s"
    show_log
    exit 2
  fi
  sleep 0.2
done
log "hive is ready (pid $HIVE_PID)"

# 13.* in a second wstest, its output shown once it ends.
OUT_13="$AUTOBAHN_OUT-13"
mkdir -p "$OUT_13"
AUTOBAHN_OUT="$OUT_13" Tests/Conformance/autobahn/run.sh "ws://127.0.0.1:$PORT/echo" --cases '13.*' \
  >"$OUT_13/run.log" 2>&1 &
PID_13=$!
rc=0
Tests/Conformance/autobahn/run.sh "ws://127.0.0.1:$PORT/echo" --exclude '13.*' || rc=$?
rc_13=0
wait "$PID_13" || rc_13=$?
echo "----- 13.* (report in $OUT_13) -----"
cat "$OUT_13/run.log"
# The worse status of the two: 2 (could not run) over 1 (a case failed) over 0.
[ "$rc_13" -le "$rc" ] || rc=$rc_13

if ! kill -0 "$HIVE_PID" 2>/dev/null; then
  hive_rc=0
  wait "$HIVE_PID" || hive_rc=$?
  HIVE_PID=""
  log "hive exited on its own (status $hive_rc) during the suite"
  [ "$rc" != 0 ] || rc=1
fi
stop_hive

if [ "$rc" != 0 ]; then
  show_log
  # repeat the suite's summary so that it is what the output ends with
  [ ! -f "$AUTOBAHN_OUT/summary.txt" ] || cat "$AUTOBAHN_OUT/summary.txt" >&2
  [ ! -f "$OUT_13/summary.txt" ] || cat "$OUT_13/summary.txt" >&2
  log "the conformance suite failed (status $rc); reports in $AUTOBAHN_OUT/index.html and $OUT_13/index.html"
fi
exit "$rc"
