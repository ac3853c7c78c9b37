#!/usr/bin/env bash
# Hive benchmark: every scenario of the performance issue, 3 runs each, median and spread (min-max) per figure.
#
#   scripts/bench.sh                 full run: about 2.5 minutes on 2 cores, plus the release build (~3 min when cold)
#   BENCH_QUICK=1 scripts/bench.sh   each scenario once at reduced sizes (about 20 s; for development)
#   BENCH_RUNS=5 scripts/bench.sh    more runs per scenario
#   BENCH_ONLY="roundtrip idle_10k" scripts/bench.sh   a subset (scenario names as in the table)
#   BENCH_ONLY=reload_10k scripts/bench.sh    10,000 clients at 20 msg/s, a reload every 2 s: lost/duplicated, p99
#   BENCH_ONLY=channels scripts/bench.sh      10,000 clients on 100 channels: a channel message against a broadcast
#                                             (channels_20ps: the same paced at 20/s)
#   BENCH_ONLY=channels_floor scripts/bench.sh  channels_20ps beside a paced broadcast to 100 clients on hive and on
#                                             the C reference, and the C reference's to 10,000 (what bounds the ratio)
#   BENCH_ONLY=fanout_vs_c scripts/bench.sh   the fan-out scenarios (paced and bursts) on hive and on the C fan-out reference,
#                                             side by side with their ratio (fanout_c_* alone: the reference only)
#   BENCH_ONLY=conn_100k scripts/bench.sh    100,000 WebSocket clients over ceil(100k / (ulimit -n - 2,000)) workers
#                                             (6 at 20,000 descriptors): time to accept, RSS per connection, broadcasts
#                                             reaching all, then a worker killed and 10,000 clients connecting at once
#                                             (opt-in: about 2.5 GB of memory and 2-3 minutes; one run)
#   BENCH_INTERLEAVE=1 scripts/bench.sh  the fan-out scenarios (paced and back to back) alternate with their C reference run by run
#                                    (hive, C, hive, C, ...; a fresh hive per run), so a drift of the machine
#                                    within the sitting reaches both sides of each ratio alike
#   BENCH_NO_DOC=1 scripts/bench.sh  a full run that leaves Docs/BENCHMARKS.md alone (a full run rewrites its
#                                    generated section at the end; the text above it is written by hand)
#
# It builds release, starts its own redis-server and its own `hive start` (release, 2 workers) on free loopback
# ports, drives them with .build/release/hive-bench (Sources/hive-bench) and Debian's wrk, and writes everything under
# .build/bench/<UTC time>/: one JSON per run (*.runN.json), the generator's stderr (*.runN.log), `hive status --json`
# before and after each run, the exact commands (commands.txt), the machine (machine.txt) and the table (summary.md).
# Scenario http_c_reference runs the same wrk against scripts/reference/http-minimal.c, a minimal C server, to show
# what this machine allows an HTTP server; it is not Hive. http_post_echo and http_c_post_echo do the same with a 1 KB
# POST echoed back (POST /echo: Hive's demo and the C reference both answer with the body). Scenarios fanout_c_* run hive-bench fanout against
# scripts/reference/fanout-minimal.c (a minimal C WebSocket fan-out server, 2 processes, not Hive; *_perframe: one
# send per frame instead of one per Redis read, only when named in BENCH_ONLY), with hive stopped.
#
# Generator, server and Redis share the machine's 2 cores: each run reports the generator's CPU (getrusage of itself
# and its shard processes), hive's and Redis' CPU over the same window, and flags runs where the generator was the
# bottleneck. Only 127.0.0.x is used. Every wait is bounded; only processes started here are stopped (by pid).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
RUNS=${BENCH_RUNS:-3}
[[ "$QUICK" == 1 ]] && RUNS=1
ONLY=${BENCH_ONLY:-}
# A group name: the fan-out scenarios (latency and bursts) on hive and on the C reference, for the side-by-side ratio.
[[ " $ONLY " == *" fanout_vs_c "* ]] &&
  ONLY="$ONLY fanout_1k_20ps fanout_10k_5ps fanout_10k_20ps fanout_c_1k_20ps fanout_c_10k_5ps fanout_c_10k_20ps"
[[ " $ONLY " == *" fanout_vs_c "* ]] && ONLY="$ONLY fanout_1k_b2b fanout_10k_b2b fanout_c_1k_b2b fanout_c_10k_b2b"
# A group name: the channels scenario with what bounds its ratio on this machine: a paced message to 100 clients as
# a broadcast on hive and on the C reference (the same kernel work per delivery as a channel message to 100),
# and the C reference's paced broadcast to 10,000.
[[ " $ONLY " == *" channels_floor "* ]] &&
  ONLY="$ONLY channels_20ps channels_c_20ps fanout_100_20ps fanout_c_100_20ps fanout_c_10k_20ps"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/.build/bench/$STAMP"
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hive-bench.XXXXXX")
HIVE="$ROOT/.build/release/hive"
GEN="$ROOT/.build/release/hive-bench"
REDIS_PID=""
REDIS_PORT=""
HIVE_PID=""
HIVE_PORT=""
HIVE_RUN_DIR=""
CHILD_PID=""
REFERENCE_PID=""
FANOUT_REFERENCE_PID=""
FANOUT_REFERENCE_PORT=""
STARTED=$(date +%s)

log() { echo "bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Records the exact command line in commands.txt, then runs it.
record() {
  printf '%q ' "$@" >>"$OUT/commands.txt"
  echo >>"$OUT/commands.txt"
}

stop_pid() { # pid, seconds before SIGKILL
  local pid=$1 limit=$2 i
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop in ${limit}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_hive() {
  stop_pid "$HIVE_PID" 15
  HIVE_PID=""
}

stop_redis() {
  stop_pid "$REDIS_PID" 10
  REDIS_PID=""
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$CHILD_PID" 5 # a generator or wrk run in progress (its shards exit when it does)
  stop_pid "$REFERENCE_PID" 5 # the C reference server (it stops and reaps its serving processes)
  stop_pid "$FANOUT_REFERENCE_PID" 5 # the C fan-out reference (likewise)
  stop_hive
  stop_redis
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port outside the ephemeral range (32768-60999), so no client socket can take it between the check and bind.
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randint(20000, 30000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port in 20000-30000")
PY
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------------------------
# Preparation: tools, limits, build, machine.

command -v redis-server >/dev/null || die "redis-server is not installed (make deps)"
command -v python3 >/dev/null || die "python3 is needed to aggregate results"
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get install -y wrk)"
  (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }) ||
    die "cannot install wrk"
fi

# Each generator process holds at most 10,000 connections; each hive worker up to 15,000 in the 30k scenario.
hard=$(ulimit -Hn)
[[ "$hard" == unlimited ]] && hard=1048576
ulimit -n "$hard" || true
soft=$(ulimit -n)
((soft >= 12000)) || die "ulimit -n is $soft: the generator needs 12,000 descriptors per process (10,000 connections each)"
CAN_30K=1
if ((soft < 16500)); then
  CAN_30K=0
  log "ulimit -n is $soft: skipping the 30k scenario (2 hive workers need about 15,000 descriptors each)"
fi

# The Makefile's RELEASE_FLAGS: no run-time exclusivity checks in release (about 15 % of an HTTP request).
read -r -a RELEASE_FLAGS <<<"${RELEASE_FLAGS--Xswiftc -enforce-exclusivity=unchecked}"
log "building release (swift build -c release ${RELEASE_FLAGS[*]}) ..."
record swift build -c release "${RELEASE_FLAGS[@]}"
swift build -c release "${RELEASE_FLAGS[@]}" >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >&2; die "release build failed (see $OUT/build.log)"; }
[[ -x "$HIVE" && -x "$GEN" ]] || die "release binaries missing after the build"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
  echo "swift: $(swift --version 2>&1 | head -1)"
  echo "redis: $(redis-server --version | head -1)"
  echo "wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "ulimit -n: $soft"
  echo "runs per scenario: $RUNS (quick: $QUICK)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---------------------------------------------------------------------------------------------------------------
# Services: our own redis-server and hive, started and stopped by pid.

start_redis() {
  REDIS_PORT=$(free_port)
  local cmd=(redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no
    --logfile "$OUT/redis.log")
  record "${cmd[@]}"
  "${cmd[@]}" &
  REDIS_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    port_open "$REDIS_PORT" && { log "redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"; return 0; }
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited (see $OUT/redis.log)"
    sleep 0.1
  done
  die "redis-server did not listen on $REDIS_PORT within 10 s"
}

start_hive() { # name of the scenario (for the log file), extra options of hive start
  local name=$1
  shift
  stop_hive
  HIVE_PORT=$(free_port)
  HIVE_RUN_DIR="$TMP/run-$HIVE_PORT"
  local logfile="$OUT/hive-$name-$HIVE_PORT.log"
  local cmd=("$HIVE" start --port "$HIVE_PORT" --workers "${HIVE_WORKERS:-2}" --run-dir "$HIVE_RUN_DIR"
    --redis "redis://127.0.0.1:$REDIS_PORT" --max-connections "${HIVE_MAX_CONNECTIONS:-40000}" --log-level notice "$@")
  record "${cmd[@]}"
  "${cmd[@]}" >"$logfile" 2>&1 &
  HIVE_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    if grep -qw ready "$logfile" 2>/dev/null; then
      log "hive pid $HIVE_PID ready on 127.0.0.1:$HIVE_PORT"
      return 0
    fi
    kill -0 "$HIVE_PID" 2>/dev/null || { tail -20 "$logfile" >&2; die "hive exited before it was ready"; }
    sleep 0.05
  done
  die "hive not ready within 15 s (see $logfile)"
}

hive_status() { # file
  "$HIVE" status --run-dir "$HIVE_RUN_DIR" --json >"$1" 2>/dev/null || echo '{}' >"$1"
}

# The C reference server (scripts/reference/http-minimal.c): what this machine allows an HTTP server, measured the
# same way as Hive. Built with the C compiler of the system or of the Swift toolchain.
start_reference() { # sets REFERENCE_PID and REFERENCE_PORT
  local binary="$OUT/http-minimal" compiler
  compiler=$(command -v cc || command -v clang) || die "no C compiler (cc or clang) for the reference server"
  record "$compiler" -O2 -o "$binary" scripts/reference/http-minimal.c
  "$compiler" -O2 -o "$binary" scripts/reference/http-minimal.c || die "cannot build scripts/reference/http-minimal.c"
  REFERENCE_PORT=$(free_port)
  record "$binary" "$REFERENCE_PORT" 2
  "$binary" "$REFERENCE_PORT" 2 &
  REFERENCE_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    port_open "$REFERENCE_PORT" && return 0
    sleep 0.05
  done
  die "the reference server did not listen within 5 s"
}

# The C fan-out reference (scripts/reference/fanout-minimal.c): what this machine allows a WebSocket fan-out server,
# driven by the same hive-bench fanout. It subscribes to "test" on our Redis from each of its 2 processes, so hive
# must not run at the same time (its worker 0 would be a third subscriber). Built once per bench run with gcc -O2.
start_fanout_reference() { # mode (coalesce or per-frame) [channels]; sets FANOUT_REFERENCE_PID and _PORT
  local mode=$1 channels=${2:-0} binary="$OUT/fanout-minimal" compiler
  stop_hive
  if [[ ! -x "$binary" ]]; then
    compiler=$(command -v gcc || command -v cc || command -v clang) || die "no C compiler (gcc, cc or clang) for the fan-out reference"
    record "$compiler" -O2 -o "$binary" scripts/reference/fanout-minimal.c
    "$compiler" -O2 -o "$binary" scripts/reference/fanout-minimal.c || die "cannot build scripts/reference/fanout-minimal.c"
  fi
  FANOUT_REFERENCE_PORT=$(free_port)
  local cmd=("$binary" "$FANOUT_REFERENCE_PORT" "$REDIS_PORT" test 2 "$mode" "$channels")
  record "${cmd[@]}"
  "${cmd[@]}" 2>"$OUT/fanout-minimal-$FANOUT_REFERENCE_PORT.log" &
  FANOUT_REFERENCE_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    port_open "$FANOUT_REFERENCE_PORT" && return 0
    kill -0 "$FANOUT_REFERENCE_PID" 2>/dev/null || die "the fan-out reference exited (see $OUT/fanout-minimal-$FANOUT_REFERENCE_PORT.log)"
    sleep 0.05
  done
  die "the fan-out reference did not listen within 5 s"
}

stop_fanout_reference() {
  stop_pid "$FANOUT_REFERENCE_PID" 5
  FANOUT_REFERENCE_PID=""
}

# Before a run: the previous run's connections must be gone from hive (its clients exited), or they would count.
wait_hive_idle() {
  local i n
  for ((i = 0; i < 300; i++)); do
    n=$("$HIVE" status --run-dir "$HIVE_RUN_DIR" --json 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"]["total"])' 2>/dev/null || echo "?")
    [[ "$n" == 0 ]] && return 0
    sleep 0.1
  done
  log "warning: hive still reports $n connections after 30 s"
}

want() { [[ -z "$ONLY" || " $ONLY " == *" $1 "* ]]; }
# Scenarios outside the default list: run only when named.
named() { [[ " $ONLY " == *" $1 "* ]]; }

# One run of the generator: JSON to <name>.runN.json, its summary to <name>.runN.log, hive status around it.
run_generator() { # name run args...
  local name=$1 run=$2
  shift 2
  local base="$OUT/$name.run$run"
  if [[ -n "$HIVE_PID" ]]; then
    wait_hive_idle
    hive_status "$base.status-before.json"
  else
    echo '{}' >"$base.status-before.json" # a reference server, not hive: no status to ask for
  fi
  record "$GEN" "$@" --json
  local rc=0
  # In the background and waited for, so that a signal to this script is handled at once, not after the run.
  "$GEN" "$@" --json >"$base.json" 2>"$base.log" &
  CHILD_PID=$!
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  if [[ -n "$HIVE_PID" ]]; then hive_status "$base.status-after.json"; else echo '{}' >"$base.status-after.json"; fi
  echo "$rc" >"$base.rc"
  sed 's/^/    /' "$base.log" >&2
  ((rc <= 1)) || log "warning: $name run $run: hive-bench exited $rc"
}

fanout() { # name clients messages rate(- for back to back) processes [size (64)] [deflate: --compression on]
  local name=$1 clients=$2 messages=$3 rate=$4 processes=$5 size=${6:-64} deflate=${7:-} run
  want "$name" || return 0
  log "== $name: $clients clients, $messages messages of $size B, rate $rate, $processes generator process(es) $deflate"
  local extra=() hive_extra=()
  [[ "$rate" != - ]] && extra=(--rate "$rate")
  # permessage-deflate: hive accepts it and every client offers it (Chrome's offer).
  [[ "$deflate" == deflate ]] && extra+=(--compression) && hive_extra=(--compression on)
  start_hive "$name" "${hive_extra[@]}"
  for ((run = ${FIRST_RUN:-1}; run <= ${LAST_RUN:-$RUNS}; run++)); do
    run_generator "$name" "$run" fanout --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --clients "$clients" --messages "$messages" --size "$size" --processes "$processes" --http-idle 10 \
      --hive-pids "$HIVE_PID" "${extra[@]}"
  done
}

# Issue 12: the paced fan-out without reloads, then with `hive reload` (SIGUSR1 to the master) every EVERY seconds
# while publishing; every delivery once and in order, no client closed. A fresh hive, since it ends up reloaded.
reload_bench() { # name clients seconds rate every processes
  local name=$1 clients=$2 seconds=$3 rate=$4 every=$5 processes=$6 run
  want "$name" || return 0
  log "== $name: $clients clients, $rate msg/s for $seconds s, a reload every $every s, $processes generator process(es)"
  for ((run = 1; run <= RUNS; run++)); do
    start_hive "$name"
    run_generator "$name" "$run" reload --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --clients "$clients" --seconds "$seconds" --rate "$rate" --reload-every "$every" --processes "$processes" \
      --http-idle 0 --master-pid "$HIVE_PID" --hive-pids "$HIVE_PID"
  done
  stop_hive
}

# The same paced or back-to-back fan-out against the C reference (no plain HTTP probes: it speaks only WebSocket).
fanout_reference() { # name clients messages rate(- for back to back) processes mode(coalesce|per-frame)
  local name=$1 clients=$2 messages=$3 rate=$4 processes=$5 mode=$6 run
  if [[ "$mode" == per-frame ]]; then named "$name" || return 0; else want "$name" || return 0; fi
  [[ " $PAIRED " == *" $name "* ]] && return 0 # already run, alternating with hive's (fanout_pair)
  log "== $name: C fan-out reference ($mode), $clients clients, $messages messages of 64 B, rate $rate, $processes generator process(es)"
  local extra=()
  [[ "$rate" != - ]] && extra=(--rate "$rate")
  start_fanout_reference "$mode"
  for ((run = ${FIRST_RUN:-1}; run <= ${LAST_RUN:-$RUNS}; run++)); do
    ((run > ${FIRST_RUN:-1})) && sleep 1 # the previous run's clients are closing: let the reference drop them
    run_generator "$name" "$run" fanout --port "$FANOUT_REFERENCE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --clients "$clients" --messages "$messages" --size 64 --processes "$processes" --http-idle 0 \
      --expect-subscribers 2 --hive-pids "$FANOUT_REFERENCE_PID" "${extra[@]}"
  done
  stop_fanout_reference
}

# A paced or back-to-back fan-out scenario on hive; with BENCH_INTERLEAVE=1 also its C reference (coalescing),
# alternating run by run.
PAIRED=""
fanout_pair() { # hive-name reference-name clients messages rate processes
  local hive=$1 reference=$2 run
  shift 2
  if [[ "${BENCH_INTERLEAVE:-0}" != 1 ]]; then
    fanout "$hive" "$@"
    return 0
  fi
  want "$hive" || want "$reference" || return 0
  for ((run = 1; run <= RUNS; run++)); do
    FIRST_RUN=$run LAST_RUN=$run fanout "$hive" "$@"
    FIRST_RUN=$run LAST_RUN=$run fanout_reference "$reference" "$@" coalesce
  done
  stop_hive
  PAIRED="$PAIRED $reference"
}

# Clients spread over channels (?channels=ch<i % K>), a channel message against a broadcast on the same connections.
# Server `reference`: the C fan-out reference started with K channels (hive stopped), what a minimal server with
# channels reaches for the same ratio on this machine (issue 11).
channels() { # name clients channels channel-messages broadcast-messages processes [rate] [hive|reference]
  local name=$1 clients=$2 count=$3 on_channels=$4 broadcasts=$5 processes=$6 rate=${7:--} server=${8:-hive} run
  want "$name" || return 0
  log "== $name: $clients clients on $count channels, $on_channels channel messages then $broadcasts broadcasts, rate $rate, on $server"
  local extra=() port pid
  [[ "$rate" != - ]] && extra=(--rate "$rate")
  if [[ "$server" == reference ]]; then
    start_fanout_reference coalesce "$count"
    port=$FANOUT_REFERENCE_PORT pid=$FANOUT_REFERENCE_PID
    extra+=(--expect-subscribers 2)
  else
    start_hive "$name"
    port=$HIVE_PORT pid=$HIVE_PID
  fi
  for ((run = 1; run <= RUNS; run++)); do
    ((run > 1)) && [[ "$server" == reference ]] && sleep 1 # the previous run's clients are closing: let it drop them
    run_generator "$name" "$run" channels --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --clients "$clients" --channels "$count" --channel-messages "$on_channels" --broadcast-messages "$broadcasts" \
      --size 64 --processes "$processes" --hive-pids "$pid" "${extra[@]}"
  done
  [[ "$server" == reference ]] && stop_fanout_reference
  return 0
}

# Issue 13: publishing through the history script against a plain PUBLISH, the same payload on the same path
# (POST /api/publish on K keep-alive connections; channel hist.bench keeps history, plain.bench is excluded by a
# --history rule), runs interleaved. Scenarios history_publish and plain_publish (either name runs both).
BENCH_API_KEY="bench-$(date +%s%N)-key"
publish_pair() { # messages connections
  local messages=$1 connections=$2 run
  want history_publish || want plain_publish || return 0
  log "== history_publish / plain_publish: $messages messages of 64 B through POST /api/publish on $connections connections"
  start_hive history_publish --history-size 1000 --history 'plain.*=0' --api-key "$BENCH_API_KEY"
  for ((run = 1; run <= RUNS; run++)); do
    run_generator plain_publish "$run" publish --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --api-key "$BENCH_API_KEY" --channel plain.bench --messages "$messages" --connections "$connections" \
      --size 64 --hive-pids "$HIVE_PID"
    run_generator history_publish "$run" publish --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --api-key "$BENCH_API_KEY" --channel hist.bench --messages "$messages" --connections "$connections" \
      --size 64 --hive-pids "$HIVE_PID"
  done
}

# Issue 13: the latency cost of envelopes. One channel with history, messages through POST /api/publish at a steady
# rate; every other client asks for envelope=json, the others get the payload as published: the same messages,
# measured side by side in one run.
envelope_latency() { # name clients messages rate
  local name=$1 clients=$2 messages=$3 rate=$4 run
  want "$name" || return 0
  log "== $name: $clients clients (half with envelope=json), $messages messages at $rate/s through POST /api/publish"
  start_hive "$name" --history-size 10000 --api-key "$BENCH_API_KEY"
  for ((run = 1; run <= RUNS; run++)); do
    run_generator "$name" "$run" recovery --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --api-key "$BENCH_API_KEY" --channel "env$run" --clients "$clients" --messages "$messages" --rate "$rate" \
      --plain-every 2 --drain 10
  done
}

# Issue 13's proof as a scenario: worker 1 killed with SIGKILL under a steady publish; every client (like the demo
# page: back-off, since=) must end with every message exactly once, in order. Run only when named.
recovery_kill9() { # name clients messages rate
  local name=$1 clients=$2 messages=$3 rate=$4 run victim
  named "$name" || return 0
  log "== $name: $clients clients with envelopes, $messages messages at $rate/s, worker 1 killed after a third"
  for ((run = 1; run <= RUNS; run++)); do
    start_hive "$name" --dispatch round-robin --history-size 10000 --api-key "$BENCH_API_KEY"
    victim=$("$HIVE" status --run-dir "$HIVE_RUN_DIR" --json |
      python3 -c 'import json,sys; print([w["pid"] for w in json.load(sys.stdin)["workers"] if w["id"] == 1][0])')
    run_generator "$name" "$run" recovery --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
      --api-key "$BENCH_API_KEY" --channel "kill$run" --clients "$clients" --messages "$messages" --rate "$rate" \
      --kill-pid "$victim" --drain 20
  done
}

roundtrip() { # name clients messages
  local name=$1 clients=$2 messages=$3 run
  want "$name" || return 0
  log "== $name: $clients clients x $messages messages of 64 B on /echo"
  start_hive "$name"
  for ((run = 1; run <= RUNS; run++)); do
    run_generator "$name" "$run" roundtrip --port "$HIVE_PORT" --clients "$clients" --messages "$messages" \
      --size 64 --hive-pids "$HIVE_PID"
  done
}

idle() { # name clients [deflate]: a fresh hive for every run, so "before" is a server that never held a connection
  local name=$1 clients=$2 deflate=${3:-} run
  want "$name" || return 0
  log "== $name: $clients idle WebSocket connections $deflate"
  local extra=() hive_extra=()
  [[ "$deflate" == deflate ]] && extra=(--compression) && hive_extra=(--compression on)
  for ((run = 1; run <= RUNS; run++)); do
    start_hive "$name" "${hive_extra[@]}"
    run_generator "$name" "$run" idle --port "$HIVE_PORT" --clients "$clients" --hive-pids "$HIVE_PID" "${extra[@]}"
  done
}

# Issue 14 item 5: many connections over as many workers as the descriptor limit needs (each worker below
# ulimit -n less 2,000, room for the storm's rebalancing), clients over 127.0.0.2, .3, … (10,000 per source address),
# then a worker killed with SIGKILL and a storm of new clients connecting at once. One run: it is the largest.
connections() { # name clients storm
  local name=$1 clients=$2 storm=$3 per_worker workers
  named "$name" || return 0
  per_worker=$((soft - 2000))
  workers=$(((clients + per_worker - 1) / per_worker))
  ((workers >= 2)) || workers=2
  log "== $name: $clients clients over $workers workers ($per_worker each at most), storm of $storm after a worker crash"
  HIVE_WORKERS=$workers HIVE_MAX_CONNECTIONS=$((clients + storm + 10000)) start_hive "$name"
  run_generator "$name" 1 connections --port "$HIVE_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
    --clients "$clients" --processes $(((clients + 9999) / 10000)) --broadcasts 3 --storm "$storm" \
    --hive-pids "$HIVE_PID"
  stop_hive # a worker was killed and replaced: the next scenario gets a fresh hive
}

http_wrk() { # name seconds [server: hive (default) or reference, the C server of start_reference] [request: get or post]
  local name=$1 seconds=$2 server=${3:-hive} request=${4:-get} run pid port path=/hello script=()
  want "$name" || return 0
  if [[ "$request" == post ]]; then
    # wrk sends the body with its Content-Length; the response is the same 1024 bytes.
    printf '%s\n' 'wrk.method = "POST"' 'wrk.body = string.rep("x", 1024)' \
      'wrk.headers["Content-Type"] = "application/octet-stream"' >"$OUT/post-1k.lua"
    path=/echo script=(-s "$OUT/post-1k.lua")
  fi
  log "== $name: wrk -t2 -c100 -d${seconds}s --latency ${script[*]} ${request^^} $path ($server)"
  if [[ "$server" == hive ]]; then
    start_hive "$name"
    pid=$HIVE_PID port=$HIVE_PORT
  else
    start_reference
    pid=$REFERENCE_PID port=$REFERENCE_PORT
  fi
  for ((run = 1; run <= RUNS; run++)); do
    local base="$OUT/$name.run$run"
    if [[ "$server" == hive ]]; then
      wait_hive_idle
      hive_status "$base.status-before.json"
    fi
    record wrk -t2 -c100 "-d${seconds}s" --latency "${script[@]}" "http://127.0.0.1:$port$path"
    # wrk under a small Python wrapper: its CPU (RUSAGE_CHILDREN) and the server's (/proc) over the same window.
    python3 - "$pid" "$seconds" "http://127.0.0.1:$port$path" "${script[@]}" >"$base.json" 2>"$base.log" <<'PY' &
import json, os, re, resource, signal, subprocess, sys, time

master, seconds, url, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]

def pids():
    result = [master]
    try:
        for tid in os.listdir(f"/proc/{master}/task"):
            with open(f"/proc/{master}/task/{tid}/children") as f:
                result += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return result

def cpu(pid_list):
    total = 0.0
    for pid in pid_list:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total

def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

def machine_busy():
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")

hive = pids()
machine_before = machine_busy()
hive_before, wall_before = cpu(hive), time.monotonic()
child = subprocess.Popen(["wrk", "-t2", "-c100", f"-d{seconds}s", "--latency"] + extra + [url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

def stop(*_):
    child.kill()  # wrk dies with its wrapper (bench.sh stops the wrapper on exit)
    sys.exit(143)

signal.signal(signal.SIGTERM, stop)
try:
    out, _ = child.communicate(timeout=int(seconds) + 60)
except subprocess.TimeoutExpired:
    child.kill()
    out, _ = child.communicate()
wall = time.monotonic() - wall_before
hive_after = cpu(hive)
machine = (machine_busy() - machine_before) / wall
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(out)
report = {"scenario": "http", "request": "POST 1 KB /echo" if extra else "GET /hello", "exitStatus": child.returncode, "seconds": wall}
m = re.search(r"Requests/sec:\s+([\d.]+)", out)
report["requestsPerSecond"] = float(m.group(1)) if m else 0.0
m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
report["requests"] = int(m.group(1)) if m else 0
for pct in ("50", "75", "90", "99"):
    m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
    report[f"p{pct}Ms"] = ms(m.group(1)) if m else None
m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
report["maxMs"] = ms(m.group(3)) if m else None
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
report["socketErrors"] = sum(int(x) for x in m.groups()) if m else 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
report["non2xx"] = int(m.group(1)) if m else 0
report["cpu"] = {
    "windowSeconds": wall,
    "generatorCores": (usage.ru_utime + usage.ru_stime) / wall,
    "busiestGeneratorProcessCores": (usage.ru_utime + usage.ru_stime) / wall,
    "generatorThreadsPerProcess": 2,
    "hiveCores": (hive_after - hive_before) / wall,
    "generatorTotal": {"user": usage.ru_utime, "system": usage.ru_stime},
}
gen = report["cpu"]["generatorCores"]
report["cpu"]["generatorBottleneck"] = gen >= 0.85 * 2
used = machine
report["cpu"]["machineCores"] = os.cpu_count()
report["cpu"]["machineBusyCores"] = machine
report["cpu"]["note"] = "wrk used %.2f cores, hive %.2f" % (gen, report["cpu"]["hiveCores"])
if used >= 0.85 * os.cpu_count():
    report["cpu"]["note"] += "; the machine was CPU-bound (%.2f of %d cores busy; generator %.0f%% of that)" % (used, os.cpu_count(), 100 * gen / used)
report["ok"] = child.returncode == 0 and report["socketErrors"] == 0 and report["non2xx"] == 0 and report["requests"] > 0
print(json.dumps(report, indent=2))
PY
    CHILD_PID=$!
    wait "$CHILD_PID" || log "warning: $name run $run: the wrk wrapper failed (see $base.log)"
    CHILD_PID=""
    if [[ "$server" == hive ]]; then hive_status "$base.status-after.json"; fi
    sed 's/^/    /' "$base.log" >&2
  done
  if [[ "$server" != hive ]]; then
    stop_pid "$REFERENCE_PID" 5
    REFERENCE_PID=""
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# Scenarios. Full sizes are the issue's; quick sizes only exercise the machinery.

start_redis
if [[ "$QUICK" == 1 ]]; then
  fanout fanout_1k_b2b 200 200 - 2
  fanout fanout_10k_b2b 2000 50 - 2
  fanout fanout_10k_20ps 2000 20 20 2
  fanout fanout_10k_5ps 2000 10 5 2
  fanout fanout_1k_20ps 200 20 20 2
  http_wrk http_hello 3
  http_wrk http_c_reference 3 reference
  http_wrk http_post_echo 3 hive post
  http_wrk http_c_post_echo 3 reference post
  roundtrip roundtrip 100 200
  idle idle_10k 2000
  fanout fanout_10k_2k 2000 20 - 2 2048
  fanout fanout_10k_2k_deflate 2000 20 - 2 2048 deflate
  idle idle_10k_deflate 2000 deflate
  ((CAN_30K)) && fanout fanout_30k 3000 20 - 3
  channels channels 2000 100 200 20 2
  channels channels_20ps 2000 100 40 10 2 20
  reload_bench reload_10k 2000 6 20 2 2
  fanout fanout_100_20ps 100 40 20 1
  fanout_reference fanout_c_100_20ps 100 40 20 1 coalesce
  channels channels_c 2000 100 200 20 2 - reference
  channels channels_c_20ps 2000 100 40 10 2 20 reference
  fanout_reference fanout_c_10k_20ps 2000 20 20 2 coalesce
  fanout_reference fanout_c_10k_5ps 2000 10 5 2 coalesce
  fanout_reference fanout_c_1k_20ps 200 20 20 2 coalesce
  fanout_reference fanout_c_1k_b2b 200 200 - 2 coalesce
  fanout_reference fanout_c_10k_b2b 2000 50 - 2 coalesce
  fanout_reference fanout_c_1k_b2b_perframe 200 200 - 2 per-frame
  fanout_reference fanout_c_10k_b2b_perframe 2000 50 - 2 per-frame
  publish_pair 2000 8
  envelope_latency envelope_latency 200 100 100
  recovery_kill9 recovery_kill9 200 300 100
  connections conn_100k 6000 1000
else
  fanout_pair fanout_1k_b2b fanout_c_1k_b2b 1000 1000 - 2
  fanout_pair fanout_10k_b2b fanout_c_10k_b2b 10000 100 - 2
  fanout_pair fanout_10k_20ps fanout_c_10k_20ps 10000 100 20 2
  fanout_pair fanout_10k_5ps fanout_c_10k_5ps 10000 50 5 2
  fanout_pair fanout_1k_20ps fanout_c_1k_20ps 1000 100 20 2
  http_wrk http_hello 10
  http_wrk http_c_reference 10 reference
  # Issue 14: a 1 KB POST echoed back, Hive's demo (POST /echo) against the C reference.
  http_wrk http_post_echo 10 hive post
  http_wrk http_c_post_echo 10 reference post
  roundtrip roundtrip 100 1000
  idle idle_10k 10000
  # A 2 KB JSON broadcast to 10k clients without and with permessage-deflate (compressed once per worker).
  fanout fanout_10k_2k 10000 50 - 2 2048
  fanout fanout_10k_2k_deflate 10000 50 - 2 2048 deflate
  idle idle_10k_deflate 10000 deflate
  ((CAN_30K)) && fanout fanout_30k 30000 100 - 3
  # Issue 11: 10,000 clients on 100 channels (100 each); 1,000 messages each to one channel, then 100 broadcasts.
  channels channels 10000 100 1000 100 2
  # The same paced at 20/s (each message alone: no batching of a burst on either side).
  channels channels_20ps 10000 100 200 40 2 20
  # Issue 12: 10,000 clients, 20 messages/s for 20 s, a reload every 2 s (and the same 20 s without, for p99).
  reload_bench reload_10k 10000 20 20 2 2
  # What a paced message to 100 clients costs as a broadcast, on hive and on the C reference: the floor of a
  # channel message's cost (Docs/BENCHMARKS.md, "Channels").
  fanout fanout_100_20ps 100 200 20 1
  fanout_reference fanout_c_100_20ps 100 200 20 1 coalesce
  # The channels scenarios on the C reference with 100 channels: the same ratio for a minimal server.
  channels channels_c 10000 100 1000 100 2 - reference
  channels channels_c_20ps 10000 100 200 40 2 20 reference
  # Issue 14: the same fan-out runs against the C reference (hive stopped), for the Hive / C table.
  fanout_reference fanout_c_10k_20ps 10000 100 20 2 coalesce
  fanout_reference fanout_c_10k_5ps 10000 50 5 2 coalesce
  fanout_reference fanout_c_1k_20ps 1000 100 20 2 coalesce
  fanout_reference fanout_c_1k_b2b 1000 1000 - 2 coalesce
  fanout_reference fanout_c_10k_b2b 10000 100 - 2 coalesce
  fanout_reference fanout_c_1k_b2b_perframe 1000 1000 - 2 per-frame
  fanout_reference fanout_c_10k_b2b_perframe 10000 100 - 2 per-frame
  # Issue 13: history script against plain PUBLISH (20,000 publishes each), envelopes against none (1,000 clients,
  # 1,000 messages at 100/s), and on request (BENCH_ONLY=recovery_kill9) the kill -9 proof at 1,000 clients.
  publish_pair 20000 8
  envelope_latency envelope_latency 1000 1000 100
  recovery_kill9 recovery_kill9 1000 600 100
  # Issue 14 item 5, opt-in (BENCH_ONLY=conn_100k): 100,000 clients, a storm of 10,000 after a worker crash.
  connections conn_100k 100000 10000
fi
stop_hive

# ---------------------------------------------------------------------------------------------------------------
# The table: median [min-max] over the runs of each scenario, from the JSON files.

ELAPSED=$(($(date +%s) - STARTED))
python3 - "$OUT" "$ELAPSED" >"$OUT/summary.md" <<'PY'
import glob, json, os, re, statistics, sys

out, elapsed = sys.argv[1], int(sys.argv[2])
order = ["fanout_1k_b2b", "fanout_10k_b2b", "fanout_10k_20ps", "fanout_10k_5ps", "fanout_1k_20ps",
         "http_hello", "http_c_reference", "http_post_echo", "http_c_post_echo", "roundtrip", "idle_10k", "fanout_10k_2k", "fanout_10k_2k_deflate",
         "idle_10k_deflate", "fanout_30k", "channels", "channels_20ps", "channels_c", "channels_c_20ps", "fanout_100_20ps", "fanout_c_100_20ps", "reload_10k", "fanout_c_10k_20ps", "fanout_c_10k_5ps", "fanout_c_1k_20ps",
         "fanout_c_1k_b2b", "fanout_c_10k_b2b", "fanout_c_1k_b2b_perframe", "fanout_c_10k_b2b_perframe",
         "plain_publish", "history_publish", "envelope_latency", "recovery_kill9", "conn_100k"]
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.run*.json"))):
    m = re.match(r"(.+)\.run(\d+)\.json$", os.path.basename(path))
    if not m:
        continue
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {"ok": False, "problems": ["no JSON result (see the .log)"]}
    status = {}
    for side in ("before", "after"):
        try:
            with open(path[:-5] + f".status-{side}.json") as f:
                status[side] = json.load(f)
        except (OSError, ValueError):
            status[side] = {}
    data["_status"] = status
    data["_run"] = int(m.group(2))
    runs.setdefault(m.group(1), []).append(data)
for rs in runs.values():
    rs.sort(key=lambda r: r["_run"])  # run10 after run9, not after run1

def get(d, path):
    for key in path.split("."):
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d

def spread(values, fmt="{:.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"

def total(values):
    values = [v for v in values if v is not None]
    return str(int(sum(values))) if values else "-"

def ms(values):
    return spread([v / 1000 if v is not None else None for v in values], "{:.1f}")

def server_counters(rs):
    """Deltas of hive's own counters over each run: anything non-zero deserves a look."""
    notes = {}
    for r in rs:
        b, a = r["_status"].get("before", {}), r["_status"].get("after", {})
        def wsum(s, key):
            return sum(w.get(key, 0) or 0 for w in s.get("workers", []))
        for key in ("slowConsumers", "pushesFailed", "protocolErrors", "restarts"):
            d = wsum(a, key) - wsum(b, key)
            if d:
                notes[key] = notes.get(key, 0) + d
        for key in ("dropped", "reconnects"):
            d = (get(a, f"redis.{key}") or 0) - (get(b, f"redis.{key}") or 0)
            if d:
                notes[f"redis.{key}"] = notes.get(f"redis.{key}", 0) + d
        for key in ("refusedBusy", "refusedFull", "acceptErrors"):
            d = (get(a, f"master.{key}") or 0) - (get(b, f"master.{key}") or 0)
            if d:
                notes[f"master.{key}"] = notes.get(f"master.{key}", 0) + d
    return ", ".join(f"{k} +{v}" for k, v in notes.items())

lines = []
with open(os.path.join(out, "machine.txt")) as f:
    lines.append("Machine: " + "; ".join(l.strip() for l in f if l.strip()))
lines.append(f"Total time of this bench run: {elapsed // 60} min {elapsed % 60} s. Figures: median [min-max] over the runs.")
lines.append("")
lines.append("| scenario | runs | throughput | lost | dup | out of order | p50 ms | p90 ms | p99 ms | max ms | HTTP conns w/ bytes | generator CPU (cores; busiest proc) | hive CPU | redis CPU | machine busy | notes |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
problems = []
for name in order + sorted(set(runs) - set(order)):
    rs = runs.get(name)
    if not rs:
        continue
    kind = rs[0].get("scenario", "?")
    notes = []
    if any(get(r, "cpu.generatorBottleneck") for r in rs):
        notes.append("GENERATOR-BOUND in %d/%d runs" % (sum(1 for r in rs if get(r, "cpu.generatorBottleneck")), len(rs)))
    bound = [r for r in rs if "machine was CPU-bound" in (get(r, "cpu.note") or "")]
    if bound:
        share = statistics.median([get(r, "cpu.generatorCores") / max(1e-9, get(r, "cpu.machineBusyCores") or (get(r, "cpu.generatorCores") + (get(r, "cpu.hiveCores") or 0) + (get(r, "cpu.redisCores") or 0))) for r in bound])
        notes.append("machine CPU-bound in %d/%d runs (generator processes: %.0f%% of the busy CPU)" % (len(bound), len(rs), 100 * share))
    counters = server_counters(rs)
    if counters:
        notes.append("hive counters: " + counters)
    for i, r in enumerate(rs, 1):
        if not r.get("ok", False):
            problems.append(f"{name} run {i}: " + "; ".join(r.get("problems", []) or ["not ok"]))
    cpu = spread([get(r, "cpu.generatorCores") for r in rs], "{:.2f}") + "; " + \
        spread([get(r, "cpu.busiestGeneratorProcessCores") for r in rs], "{:.2f}")
    hive = spread([get(r, "cpu.hiveCores") for r in rs], "{:.2f}")
    redis = spread([get(r, "cpu.redisCores") for r in rs], "{:.2f}")
    machine = spread([get(r, "cpu.machineBusyCores") for r in rs], "{:.2f}")
    if kind == "fanout":
        r0 = rs[0]
        label = f"{name} ({r0['clients']} clients, {r0['messages']} msgs of {r0['size']} B, " + \
            (f"{r0['publish']['targetRate']:.0f}/s" if r0["publish"].get("targetRate") else "back to back") + \
            f", {r0['processes']} gen procs)"
        thr = spread([r.get("deliveriesPerSecond") for r in rs]) + " deliveries/s"
        row = [label, len(rs), thr, total([r.get("lost") for r in rs]), total([r.get("duplicated") for r in rs]),
               total([r.get("outOfOrder") for r in rs]),
               ms([get(r, "latency.p50Us") for r in rs]), ms([get(r, "latency.p90Us") for r in rs]),
               ms([get(r, "latency.p99Us") for r in rs]), ms([get(r, "latency.maxUs") for r in rs]),
               total([get(r, "http.receivedAnything") for r in rs]) + "/" + total([get(r, "http.connections") for r in rs]),
               cpu, hive, redis, machine]
        pub = spread([get(r, "publish.seconds") * 1000 for r in rs if get(r, "publish.seconds") is not None], "{:.1f}")
        notes.append(f"publish {pub} ms")
        conn = spread([r.get("connectSeconds") for r in rs], "{:.1f}")
        notes.append(f"connect {conn} s")
        if r0.get("hiveMicrosPerMessage") is not None:
            notes.append("server CPU " + spread([r.get("hiveMicrosPerMessage") for r in rs]) + " µs per message, " +
                         spread([r.get("hiveMicrosPerDelivery") for r in rs], "{:.2f}") + " µs per delivery")
        if r0.get("hiveSwitchesPerMessage") is not None:
            notes.append("server threads switched in " + spread([r.get("hiveSwitchesPerMessage") for r in rs], "{:.1f}") +
                         " times per message")
        if name.startswith("fanout_c_"):
            notes.append("not Hive: scripts/reference/fanout-minimal.c (" +
                         ("one send per frame" if name.endswith("_perframe") else "frames of one Redis read coalesced") +
                         "), 2 processes each subscribed; its CPU is in the hive column")
        if r0.get("wireBytes"):
            notes.append("wire " + spread([r.get("wireBytesPerDelivery") for r in rs]) + " B/delivery, " +
                         spread([r.get("wireBytes", 0) / 1048576 for r in rs], "{:.1f}") + " MiB in all" +
                         (", permessage-deflate (" + total([r.get("compressedFrames") for r in rs]) + " frames compressed)"
                          if r0.get("compression") else ""))
    elif kind == "channels":
        r0 = rs[0]
        def ph(r, i, key):
            p = r.get("phases", [])
            return p[i].get(key) if len(p) > i else None
        label = (f"{name} ({r0['clients']} clients on {r0['channels']} channels; {ph(r0, 0, 'messages')} msgs to one "
                 f"channel of {ph(r0, 0, 'recipientsPerMessage')} each, then {ph(r0, 1, 'messages')} broadcasts, " +
                 (f"{get(r0['phases'][0], 'publish.targetRate'):.0f}/s, " if get(r0['phases'][0], 'publish.targetRate') else "back to back, ") +
                 f"{r0['processes']} gen procs)")
        thr = ("channel " + spread([ph(r, 0, "deliveriesPerSecond") for r in rs]) + " / broadcast " +
               spread([ph(r, 1, "deliveriesPerSecond") for r in rs]) + " deliveries/s")
        lost = total([(ph(r, 0, "lost") or 0) + (ph(r, 1, "lost") or 0) for r in rs])
        dup = total([(ph(r, 0, "duplicated") or 0) + (ph(r, 1, "duplicated") or 0) for r in rs])
        ooo = total([(ph(r, 0, "outOfOrder") or 0) + (ph(r, 1, "outOfOrder") or 0) for r in rs])
        lat = lambda i, k: ms([get(r["phases"][i], f"latency.{k}") if len(r.get("phases", [])) > i else None for r in rs])
        row = [label, len(rs), thr, lost, dup, ooo, lat(0, "p50Us") + " / " + lat(1, "p50Us"), lat(0, "p90Us") + " / " + lat(1, "p90Us"),
               lat(0, "p99Us") + " / " + lat(1, "p99Us"), lat(0, "maxUs") + " / " + lat(1, "maxUs"), "-",
               spread([get(r["phases"][1], "cpu.generatorCores") if r.get("phases") else None for r in rs], "{:.2f}"),
               spread([get(r["phases"][1], "cpu.hiveCores") if r.get("phases") else None for r in rs], "{:.2f}"), "-",
               spread([get(r["phases"][1], "cpu.machineBusyCores") if r.get("phases") else None for r in rs], "{:.2f}")]
        notes.append("hive CPU per channel message " + spread([ph(r, 0, "hiveMicrosPerMessage") for r in rs], "{:.1f}") +
                     " µs, per broadcast " + spread([ph(r, 1, "hiveMicrosPerMessage") for r in rs], "{:.1f}") +
                     " µs: a channel message costs " + spread([r.get("costRatio") for r in rs], "{:.4f}") +
                     " of a broadcast (it reaches " + spread([r.get("reachedShare") for r in rs], "{:.4f}") + " of the clients)")
        notes.append("less hive's idle CPU (" + spread([r.get("hiveIdleCores") for r in rs], "{:.3f}") + " cores with every client connected): " +
                     spread([ph(r, 0, "hiveNetMicrosPerMessage") for r in rs], "{:.1f}") + " µs against " +
                     spread([ph(r, 1, "hiveNetMicrosPerMessage") for r in rs], "{:.1f}") + " µs, " +
                     spread([r.get("netCostRatio") for r in rs], "{:.4f}") + " of a broadcast")
        if name.startswith("channels_c"):
            notes.append("not Hive: scripts/reference/fanout-minimal.c with 100 channels (each client joins the one its "
                         "?channels= names; 2 processes, each subscribed); its CPU is in the hive columns")
        notes.append("strays " + total([ph(r, 0, "strays") for r in rs]) + "; clients with exactly their messages " +
                     total([r.get("exactClients") for r in rs]) + "/" + total([r.get("connected") for r in rs]) +
                     "; latency and CPU columns: channel / broadcast (CPU columns: the broadcast phase)")
    elif kind == "reload":
        r0 = rs[0]
        rl = lambda k: ms([get(r, f"reloading.latency.{k}") for r in rs])
        bl = lambda k: ms([get(r, f"baseline.latency.{k}") for r in rs])
        label = (f"{name} ({get(r0, 'reloading.clients')} clients, {get(r0, 'reloading.messages')} msgs at "
                 f"{get(r0, 'reloading.publish.targetRate') or 0:.0f}/s, a reload every {r0.get('reloadEverySeconds')} s)")
        thr = spread([get(r, "reloading.deliveriesPerSecond") for r in rs]) + " deliveries/s"
        row = [label, len(rs), thr, total([r.get("lost") for r in rs]), total([r.get("duplicated") for r in rs]),
               total([get(r, "reloading.outOfOrder") for r in rs]),
               rl("p50Us") + " / " + bl("p50Us"), rl("p90Us") + " / " + bl("p90Us"), rl("p99Us") + " / " + bl("p99Us"),
               rl("maxUs") + " / " + bl("maxUs"), "-",
               spread([get(r, "reloading.cpu.generatorCores") for r in rs], "{:.2f}"),
               spread([get(r, "reloading.cpu.hiveCores") for r in rs], "{:.2f}"), "-",
               spread([get(r, "reloading.cpu.machineBusyCores") for r in rs], "{:.2f}")]
        notes.append("latency columns: with reloads / without; reloads signalled " + total([r.get("reloadsSignalled") for r in rs]) +
                     ", worker processes started " + total([r.get("workerProcessesStarted") for r in rs]) +
                     ", clients closed by the server " + total([get(r, "reloading.closedDuringRun") for r in rs]))
    elif kind == "roundtrip":
        r0 = rs[0]
        label = f"{name} ({r0['clients']} clients x {r0['messagesPerClient']} msgs on /echo)"
        thr = spread([r.get("messagesPerSecond") for r in rs]) + " messages/s"
        row = [label, len(rs), thr, total([r.get("expected", 0) - r.get("roundTrips", 0) for r in rs]),
               "-", "-", ms([get(r, "latency.p50Us") for r in rs]), ms([get(r, "latency.p90Us") for r in rs]),
               ms([get(r, "latency.p99Us") for r in rs]), ms([get(r, "latency.maxUs") for r in rs]), "-", cpu, hive, "-", machine]
        notes.append("mismatched echoes " + total([r.get("mismatched") for r in rs]))
    elif kind == "http":
        label = f"{name} (wrk -t2 -c100 {rs[0].get('request', 'GET /hello')})"
        thr = spread([r.get("requestsPerSecond") for r in rs]) + " requests/s"
        row = [label, len(rs), thr, "-", "-", "-", spread([r.get("p50Ms") for r in rs], "{:.2f}"),
               spread([r.get("p90Ms") for r in rs], "{:.2f}"), spread([r.get("p99Ms") for r in rs], "{:.2f}"),
               spread([r.get("maxMs") for r in rs], "{:.2f}"), "-", cpu, hive, "-", machine]
        notes.append("socket errors " + total([r.get("socketErrors") for r in rs]) + ", non-2xx " + total([r.get("non2xx") for r in rs]))
        if name in ("http_c_reference", "http_c_post_echo"):
            notes.append("not Hive: scripts/reference/http-minimal.c, a minimal C epoll server giving the same "
                         "response, i.e. what this machine allows; its CPU is in the hive column")
    elif kind == "idle":
        r0 = rs[0]
        label = f"{name} ({r0['clients']} idle WebSocket connections, fresh hive per run)"
        thr = spread([r.get("rssPerConnectionBytes") for r in rs]) + " B RSS/conn"
        row = [label, len(rs), thr, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
        notes.append("PSS/conn " + spread([r.get("pssPerConnectionBytes") for r in rs]) + " B")
        notes.append("without file pages (code) " + spread([r.get("anonPerConnectionBytes") for r in rs]) + " B/conn")
        notes.append("RSS " + spread([r.get("rssBeforeBytes", 0) / 1048576 for r in rs], "{:.1f}") + " -> " +
                     spread([r.get("rssAfterBytes", 0) / 1048576 for r in rs], "{:.1f}") + " MiB")
        notes.append("hive fds " + spread([r.get("fdsBefore") for r in rs]) + " -> " + spread([r.get("fdsAfter") for r in rs]))
        notes.append("generator " + spread([r.get("generatorRSSPerConnectionBytes") for r in rs]) + " B/conn")
    elif kind == "publish":
        r0 = rs[0]
        label = f"{name} ({r0['messages']} msgs of {r0['size']} B to {r0['channel']} through POST /api/publish, {r0['connections']} connections)"
        thr = spread([r.get("publishesPerSecond") for r in rs]) + " publishes/s"
        row = [label, len(rs), thr, total([r.get("failed") for r in rs]), "-", "-",
               ms([get(r, "latency.p50Us") for r in rs]), ms([get(r, "latency.p90Us") for r in rs]),
               ms([get(r, "latency.p99Us") for r in rs]), ms([get(r, "latency.maxUs") for r in rs]), "-", cpu, hive, redis, machine]
        notes.append("hive CPU " + spread([r.get("hiveMicrosPerMessage") for r in rs], "{:.1f}") + " µs/msg, redis CPU " +
                     spread([r.get("redisMicrosPerMessage") for r in rs], "{:.1f}") + " µs/msg; latency: request to answer")
    elif kind == "recovery":
        r0 = rs[0]
        label = (f"{name} ({r0['clients']} clients on one channel, {r0['messages']} msgs at {r0['targetRate']:.0f}/s through POST /api/publish" +
                 (f", worker killed after {r0.get('killedAfter')}" if r0.get("killedPid") else "") + ")")
        thr = spread([r.get("achievedRate") for r in rs]) + " msgs/s to " + str(r0["clients"]) + " clients"
        row = [label, len(rs), thr, total([r.get("lost") for r in rs]), total([r.get("duplicated") for r in rs]),
               total([r.get("outOfOrder") for r in rs]),
               ms([get(r, "envelopeLatency.p50Us") for r in rs]), ms([get(r, "envelopeLatency.p90Us") for r in rs]),
               ms([get(r, "envelopeLatency.p99Us") for r in rs]), ms([get(r, "envelopeLatency.maxUs") for r in rs]),
               "-", "-", "-", "-", "-"]
        notes.append("latency columns: clients with envelopes (" + total([r.get("envelopeClients") for r in rs[:1]]) + ")")
        if r0.get("plainClients"):
            notes.append("without envelopes (" + str(r0["plainClients"]) + " clients): p50 " + ms([get(r, "plainLatency.p50Us") for r in rs]) +
                         " ms, p99 " + ms([get(r, "plainLatency.p99Us") for r in rs]) + " ms")
        notes.append("exact clients " + total([r.get("exactClients") for r in rs]) + "/" + total([r.get("clients") for r in rs]) +
                     ", recovered:false " + total([r.get("recoveredFalse") for r in rs]))
        if r0.get("killedPid"):
            notes.append("reconnected clients " + spread([r.get("reconnectedClients") for r in rs]) + ", every client whole " +
                         spread([r.get("recoverySeconds") for r in rs], "{:.2f}") + " s after the kill")
    elif kind == "connections":
        r0 = rs[0]
        label = (f"{name} ({r0['clients']} WebSocket clients from {r0['processes']} gen procs over {r0['sourceAddresses']} "
                 f"source addresses; hive master + {r0['workers']} workers; {r0['broadcasts']} broadcasts)")
        thr = (spread([r.get("acceptSeconds") for r in rs], "{:.1f}") + " s to accept all (" +
               spread([r.get("acceptPerSecond") for r in rs]) + " conn/s); " +
               spread([r.get("rssPerConnectionBytes") for r in rs]) + " B RSS/conn")
        row = [label, len(rs), thr, total([r.get("lost") for r in rs]), total([r.get("duplicated") for r in rs]),
               total([r.get("outOfOrder") for r in rs]), ms([get(r, "broadcastLatency.p50Us") for r in rs]),
               ms([get(r, "broadcastLatency.p90Us") for r in rs]), ms([get(r, "broadcastLatency.p99Us") for r in rs]),
               ms([get(r, "broadcastLatency.maxUs") for r in rs]), "-", "-", "-", "-", "-"]
        notes.append("PSS/conn " + spread([r.get("pssPerConnectionBytes") for r in rs]) + " B")
        notes.append("without file pages (code) " + spread([r.get("anonPerConnectionBytes") for r in rs]) + " B/conn")
        notes.append("RSS " + spread([r.get("rssBeforeBytes", 0) / 1048576 for r in rs], "{:.1f}") + " -> " +
                     spread([r.get("rssAfterBytes", 0) / 1048576 for r in rs], "{:.1f}") + " MiB (all hive processes)")
        notes.append("worker descriptors " + ", ".join(str(x) for x in r0.get("connectionsPerWorker", [])))
        if r0.get("storm"):
            notes.append("storm: " + total([get(r, "storm.connected") for r in rs]) + "/" + total([get(r, "storm.clients") for r in rs]) +
                         " clients at once after SIGKILL of a worker (" + total([get(r, "storm.killedWorkerDescriptors") for r in rs]) +
                         " descriptors): " + spread([get(r, "storm.connectionsPerSecond") for r in rs]) + " conn/s, connect p50 " +
                         ms([get(r, "storm.connectTime.p50Us") for r in rs]) + " / p99 " + ms([get(r, "storm.connectTime.p99Us") for r in rs]) +
                         " / max " + ms([get(r, "storm.connectTime.maxUs") for r in rs]) + " ms, " +
                         total([get(r, "storm.retried") for r in rs]) + " retried; worker replaced within " +
                         spread([get(r, "storm.workerRestartedWithinSeconds") for r in rs], "{:.2f}") + " s (looked for after the storm)")
    else:
        continue
    row.append("; ".join(notes))
    lines.append("| " + " | ".join(str(c) for c in row) + " |")

lines.append("")
lines.append("Throughput: fan-out deliveries/s = unique deliveries / (last receive - first publish); latency = receive time "
             "minus the CLOCK_MONOTONIC publish time carried in each payload. CPU is per measurement window, in cores "
             "(2 cores in all, shared by generator, hive and Redis; loopback TCP work done in softirq is charged to no "
             "process, so 'machine busy' from /proc/stat can exceed their sum). GENERATOR-BOUND: a generator "
             "process used >= 85% of its threads; machine CPU-bound: the machine was >= 85% busy over the window.")
# Issue 14: hive against the C fan-out reference, scenario by scenario, from the medians above.
pairs = [(h, "fanout_c_" + h[len("fanout_"):]) for h in ("fanout_1k_20ps", "fanout_10k_5ps", "fanout_10k_20ps",
                                                         "fanout_1k_b2b", "fanout_10k_b2b", "fanout_100_20ps")]
pairs = [(h, c) for h, c in pairs if runs.get(h) and runs.get(c)]
if pairs:
    def med(rs, path):
        values = [get(r, path) for r in rs if get(r, path) is not None]
        return statistics.median(values) if values else None
    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "-"
    def msv(v):
        return f"{v / 1000:.1f}" if v is not None else "-"
    lines.append("")
    lines.append("Hive against the C fan-out reference (scripts/reference/fanout-minimal.c, coalescing), medians of this run; "
                 "the issue 14 targets: Hive / C <= 1.1 on p50 and p99 at 1k x 20/s, 10k x 5/s, 10k x 20/s with 0 lost, "
                 ">= 0.9 on burst deliveries/s:")
    lines.append("")
    lines.append("| scenario | Hive p50 / p99 ms | C p50 / p99 ms | Hive / C p50 | Hive / C p99 | Hive deliveries/s | C deliveries/s | Hive / C deliveries/s | lost (Hive, C) | hive CPU / C CPU (cores) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for h, c in pairs:
        H, C = runs[h], runs[c]
        hp50, hp99, cp50, cp99 = med(H, "latency.p50Us"), med(H, "latency.p99Us"), med(C, "latency.p50Us"), med(C, "latency.p99Us")
        hd, cd = med(H, "deliveriesPerSecond"), med(C, "deliveriesPerSecond")
        lines.append(f"| {h[len('fanout_'):]} | {msv(hp50)} / {msv(hp99)} | {msv(cp50)} / {msv(cp99)} | {ratio(hp50, cp50)} | "
                     f"{ratio(hp99, cp99)} | {hd or 0:.0f} | {cd or 0:.0f} | {ratio(hd, cd)} | "
                     f"{total([r.get('lost') for r in H])}, {total([r.get('lost') for r in C])} | "
                     f"{med(H, 'cpu.hiveCores') or 0:.2f} / {med(C, 'cpu.hiveCores') or 0:.2f} |")
    # Interleaved runs: hive's run k ran right before the reference's run k, so each pair shares the machine's state
    # of that moment; the median of the pairs' ratios is the figure a drift within the sitting moves least.
    if os.environ.get("BENCH_INTERLEAVE") == "1":
        def pair_ratios(h, c, path):
            C = {r["_run"]: get(r, path) for r in runs[c]}
            return [get(r, path) / C[r["_run"]] for r in runs[h]
                    if get(r, path) is not None and C.get(r["_run"])]
        def pair_spread(values):
            if not values:
                return "-"
            return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"
        lines.append("")
        lines.append("Run by run (BENCH_INTERLEAVE=1: each hive run right before its C run), median [min-max] of the "
                     "pairs' Hive / C ratios:")
        lines.append("")
        lines.append("| scenario | pairs | Hive / C p50 | Hive / C p99 | Hive / C deliveries/s | Hive / C server CPU per message |")
        lines.append("|---|---|---|---|---|---|")
        for h, c in pairs:
            p50 = pair_ratios(h, c, "latency.p50Us")
            lines.append(f"| {h[len('fanout_'):]} | {len(p50)} | {pair_spread(p50)} | "
                         f"{pair_spread(pair_ratios(h, c, 'latency.p99Us'))} | "
                         f"{pair_spread(pair_ratios(h, c, 'deliveriesPerSecond'))} | "
                         f"{pair_spread(pair_ratios(h, c, 'hiveMicrosPerMessage'))} |")
# Issue 13, side by side: the history script against a plain PUBLISH, envelopes against none (medians of this run).
if runs.get("history_publish") and runs.get("plain_publish") or runs.get("envelope_latency"):
    def med2(rs, path):
        values = [get(r, path) for r in rs or [] if get(r, path) is not None]
        return statistics.median(values) if values else None
    def fmt(v, f="{:.0f}"):
        return f.format(v) if v is not None else "-"
    def rat(a, b):
        return f"{a / b:.2f}" if a is not None and b else "-"
    lines.append("")
    lines.append("Channel history (issue 13), medians of this run:")
    lines.append("")
    lines.append("| figure | plain | with history | with / plain |")
    lines.append("|---|---|---|---|")
    H, P = runs.get("history_publish"), runs.get("plain_publish")
    if H and P:
        for label, path, f in [("publishes/s through POST /api/publish", "publishesPerSecond", "{:.0f}"),
                               ("hive CPU µs per publish", "hiveMicrosPerMessage", "{:.1f}"),
                               ("redis CPU µs per publish", "redisMicrosPerMessage", "{:.1f}"),
                               ("publish request p50 ms", "latency.p50Us", "{:.0f}"), ("publish request p99 ms", "latency.p99Us", "{:.0f}")]:
            p, h = med2(P, path), med2(H, path)
            if path.startswith("latency"):
                p, h = (p / 1000 if p is not None else None), (h / 1000 if h is not None else None)
                f = "{:.2f}"
            lines.append(f"| {label} | {fmt(p, f)} | {fmt(h, f)} | {rat(h, p)} |")
    E = runs.get("envelope_latency")
    if E:
        for label, key in [("delivery p50 ms (without / with envelope=json)", "p50Us"), ("delivery p99 ms", "p99Us")]:
            p, h = med2(E, f"plainLatency.{key}"), med2(E, f"envelopeLatency.{key}")
            lines.append(f"| {label} | {fmt(p and p / 1000, '{:.2f}')} | {fmt(h and h / 1000, '{:.2f}')} | {rat(h, p)} |")
# Issue 14: HTTP requests/s of hive against the C reference (target >= 0.8 on both).
http_pairs = [(h, c) for h, c in (("http_hello", "http_c_reference"), ("http_post_echo", "http_c_post_echo"))
              if runs.get(h) and runs.get(c)]
if http_pairs:
    lines.append("")
    lines.append("Hive against the C HTTP reference (scripts/reference/http-minimal.c), median requests/s of this run; "
                 "the issue 14 target: Hive / C >= 0.8 on both:")
    lines.append("")
    lines.append("| scenario | Hive requests/s | C requests/s | Hive / C |")
    lines.append("|---|---|---|---|")
    for h, c in http_pairs:
        hr = statistics.median([r.get("requestsPerSecond") or 0 for r in runs[h]])
        cr = statistics.median([r.get("requestsPerSecond") or 0 for r in runs[c]])
        lines.append(f"| {h} / {c} | {hr:.0f} | {cr:.0f} | {hr / cr if cr else 0:.2f} |")
# Issue 11: a channel message to 100 against a broadcast to 10,000, beside what bounds that ratio on this machine:
# the same paced message to 100 clients as a plain broadcast (hive), and on the C reference against its own
# broadcast to 10,000 (the kernel's work per delivery is most of a small message's cost, and larger per delivery
# than within a large broadcast, for any server).
floor = {n: runs.get(n) for n in ("channels_20ps", "fanout_100_20ps", "fanout_c_100_20ps", "fanout_c_10k_20ps")}
if all(floor.values()):
    def medv(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None
    def phase(r, i):
        p = r.get("phases", [])
        return p[i].get("hiveMicrosPerMessage") if len(p) > i else None
    channel = medv([phase(r, 0) for r in floor["channels_20ps"]])
    broadcast = medv([phase(r, 1) for r in floor["channels_20ps"]])
    hive100 = medv([r.get("hiveMicrosPerMessage") for r in floor["fanout_100_20ps"]])
    c100 = medv([r.get("hiveMicrosPerMessage") for r in floor["fanout_c_100_20ps"]])
    c10k = medv([r.get("hiveMicrosPerMessage") for r in floor["fanout_c_10k_20ps"]])
    if None not in (channel, broadcast, hive100, c100, c10k):
        lines.append("")
        lines.append("A paced message (20/s) to 100 clients against one to 10,000, server CPU per message, medians: "
                     f"hive channel message {channel:.0f} µs, hive broadcast to the 100 {hive100:.0f} µs, hive broadcast to "
                     f"10,000 {broadcast:.0f} µs: ratio 1/{broadcast / channel:.0f}; the C reference {c100:.0f} µs against "
                     f"{c10k:.0f} µs: ratio 1/{c10k / c100:.0f} (what a minimal server reaches on this machine).")
for hive_name, c_name in (("channels", "channels_c"), ("channels_20ps", "channels_c_20ps")):
    if not (runs.get(hive_name) and runs.get(c_name)):
        continue
    def medp(name, i):
        values = [r["phases"][i].get("hiveMicrosPerMessage") for r in runs[name] if len(r.get("phases", [])) > i]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None
    hc, hb, cc, cb = medp(hive_name, 0), medp(hive_name, 1), medp(c_name, 0), medp(c_name, 1)
    if None not in (hc, hb, cc, cb) and hc > 0 and cc > 0:
        lines.append("")
        lines.append(f"{hive_name} against {c_name} (the C reference with the same channels), server CPU per message, "
                     f"medians: hive channel message {hc:.0f} µs, broadcast {hb:.0f} µs, ratio 1/{hb / hc:.0f}; "
                     f"C channel message {cc:.0f} µs, broadcast {cb:.0f} µs, ratio 1/{cb / cc:.0f}.")
if problems:
    lines.append("")
    lines.append("Problems found:")
    lines += [f"- {p}" for p in problems]
else:
    lines.append("")
    lines.append("No problems: nothing lost, duplicated or reordered; no byte on a plain HTTP connection; every check passed.")
print("\n".join(lines))
PY
cat "$OUT/summary.md"
log "raw results in $OUT (total ${ELAPSED}s)"

# ---------------------------------------------------------------------------------------------------------------
# Docs/BENCHMARKS.md: a full run rewrites the generated section at its end (this run's commit, machine, commands and
# table). The text above it (results, what each change bought, where the targets stand) is written by hand and kept.
# BENCH_NO_DOC=1 leaves the file alone; quick and partial runs never touch it.

if [[ "$QUICK" == 0 && -z "$ONLY" && "${BENCH_NO_DOC:-0}" != 1 ]]; then
  commit=$(git log -1 --format='%h "%s"' 2>/dev/null || echo "unknown")
  [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && commit="$commit, with uncommitted changes"
  python3 - "$OUT" "$ROOT/Docs/BENCHMARKS.md" "$commit" <<'PY'
import os, sys

out, doc, commit = sys.argv[1], sys.argv[2], sys.argv[3]
begin = "<!-- generated by make bench: begin -->"
end = "<!-- generated by make bench: end -->"

def read(name):
    with open(os.path.join(out, name)) as f:
        return f.read().rstrip("\n")

# The exact commands, consecutive repeats (one per run) folded.
commands, previous, count = [], None, 0
for line in read("commands.txt").splitlines() + [None]:
    if line == previous:
        count += 1
        continue
    if previous is not None:
        commands.append(previous.rstrip() + (f"   # x{count}" if count > 1 else ""))
    previous, count = line, 1

section = "\n".join([
    begin,
    "## Latest full run (written by `make bench`)",
    "",
    f"Commit {commit}; raw results in `{os.path.relpath(out, os.path.dirname(os.path.dirname(doc)))}/` (not in git).",
    "",
    "Machine:",
    "",
    *[f"- {line}" for line in read("machine.txt").splitlines()],
    "",
    "Commands, in order (ports are picked free for each run):",
    "",
    "```",
    *commands,
    "```",
    "",
    read("summary.md"),
    end,
])
with open(doc) as f:
    text = f.read()
if begin in text and end in text:
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
with open(doc, "w") as f:
    f.write(text)
PY
  log "Docs/BENCHMARKS.md: its generated section now shows this run"
else
  log "quick or partial run: Docs/BENCHMARKS.md left as it is"
fi
