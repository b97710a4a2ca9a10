# shellcheck shell=bash
# Shared by scripts/bench/writes, failover and providers: finding and
# building the binaries, starting and stopping local clusters on 127.0.0.1,
# and cleaning up every process they started. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/orrery-bench"
# Every port is BENCH_PORT_BASE plus an offset: etcd clients +1..3, etcd
# peers +11..13, Orrery nodes +21..23.
PORT_BASE="${BENCH_PORT_BASE:-24000}"

PIDS=()      # every process started, stopped on exit
WORK=""      # the temp dir with data dirs and logs

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Stops every process we started, one at a time (SIGTERM, then SIGKILL after
# 10 s), and removes the temp dir unless BENCH_KEEP=1.
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
      log "kept $WORK (data dirs and logs)"
    else
      rm -rf "$WORK"
    fi
  fi
}

setup_work() {
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/orrery-bench.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Removes $1 from PIDS (after it was stopped or killed by someone else).
forget_pid() {
  local pid keep=()
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
}

# Waits until process $1 is gone (started processes are disowned, so
# `wait` does not apply), at most 10 s.
wait_gone() {
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.05
  done
  return 1
}

# Stops process $1 with SIGTERM, then SIGKILL if it is still there after
# 10 s, reaps it and forgets it.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "process $pid ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait_gone "$pid" || true
  forget_pid "$pid"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_ports() {
  local port
  for port in "$@"; do
    port_free "$port" || die "port $port on 127.0.0.1 is in use (set BENCH_PORT_BASE to move every port)"
  done
}

build_bench() {
  log "building orrery-bench (release)"
  (cd "$ROOT" && cargo build --release --quiet -p orrery-bench) || die "cannot build orrery-bench"
}

# Sets ORRERY to the node binary: $ORRERY_BIN, else the workspace's `orrery`
# binary, built in release mode. Returns 1 (with a message) when there is none.
find_orrery() {
  if [ -n "${ORRERY_BIN:-}" ]; then
    [ -x "$ORRERY_BIN" ] || die "ORRERY_BIN=$ORRERY_BIN is not an executable"
    ORRERY="$ORRERY_BIN"
    return 0
  fi
  local out
  if out="$(cd "$ROOT" && cargo build --release --quiet --bin orrery 2>&1)"; then
    ORRERY="$TARGET_DIR/release/orrery"
    return 0
  fi
  if grep -q "no bin target named" <<<"$out"; then
    log "the Orrery node binary does not exist yet: the workspace has no 'orrery' binary and ORRERY_BIN is not set"
    return 1
  fi
  printf '%s\n' "$out" >&2
  die "cannot build the orrery binary"
}

ORRERY_ENDPOINTS=""
declare -A ORRERY_PIDS=()

orrery_port() { echo $((PORT_BASE + 20 + $1)); }

orrery_initial_cluster() {
  echo "1=127.0.0.1:$(orrery_port 1),2=127.0.0.1:$(orrery_port 2),3=127.0.0.1:$(orrery_port 3)"
}

# Starts (or restarts, with its data dir as it was) Orrery node $1.
start_orrery_node() {
  local id=$1 port
  port=$(orrery_port "$id")
  mkdir -p "$WORK/orrery-$id"
  "$ORRERY" node --id "$id" --listen "127.0.0.1:$port" --data-dir "$WORK/orrery-$id" \
    --initial-cluster "$(orrery_initial_cluster)" >>"$WORK/orrery-$id.log" 2>&1 &
  ORRERY_PIDS[$id]=$!
  PIDS+=("$!")
  # Out of the job table: no "Killed" notices when a trial kills it.
  disown "$!"
}

# Starts a 3-node Orrery cluster and waits for a leader.
start_orrery() {
  require_free_ports "$(orrery_port 1)" "$(orrery_port 2)" "$(orrery_port 3)"
  local id
  for id in 1 2 3; do start_orrery_node "$id"; done
  ORRERY_ENDPOINTS="127.0.0.1:$(orrery_port 1),127.0.0.1:$(orrery_port 2),127.0.0.1:$(orrery_port 3)"
  local leader
  if ! leader="$("$BENCH" leader --endpoints "$ORRERY_ENDPOINTS" --timeout 60s)"; then
    tail -n 20 "$WORK"/orrery-*.log >&2 || true
    die "the Orrery cluster elected no leader (logs above)"
  fi
  log "orrery cluster up on $ORRERY_ENDPOINTS, leader $leader"
}

# Stops the Orrery nodes one at a time with SIGTERM (a clean stop).
stop_orrery() {
  local id
  for id in "${!ORRERY_PIDS[@]}"; do stop_pid "${ORRERY_PIDS[$id]}"; done
  ORRERY_PIDS=()
}
