#!/usr/bin/env bash
# Starts a local redis-server on 127.0.0.1:${REDIS_PORT:-6379} unless one already answers there.
set -euo pipefail
port="${REDIS_PORT:-6379}"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "redis: already reachable on 127.0.0.1:$port"
  exit 0
fi
command -v redis-server >/dev/null || { echo "redis: redis-server is not installed; run 'make deps'" >&2; exit 1; }
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --logfile "${TMPDIR:-/tmp}/hive-redis-$port.log" --pidfile "${TMPDIR:-/tmp}/hive-redis-$port.pid"
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "redis: started redis-server on 127.0.0.1:$port (pid $(cat "${TMPDIR:-/tmp}/hive-redis-$port.pid"))"
    exit 0
  fi
  sleep 0.1
done
echo "redis: redis-server did not come up on 127.0.0.1:$port; see ${TMPDIR:-/tmp}/hive-redis-$port.log" >&2
exit 1
