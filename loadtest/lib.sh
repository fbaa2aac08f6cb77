# Shared helpers of loadtest/compare, loadtest/reaction and loadtest/soak. Sourced, not run.
# Everything binds 127.0.0.1 only; every wait is bounded.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SY=${SY:-$ROOT/target/release/switchyard}
LOAD=${LOAD:-$ROOT/target/release/switchyard-load}
STARTED_PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Builds both release binaries unless SKIP_BUILD=1.
build_release() {
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries (cargo build --release -p switchyard -p switchyard-load)"
    (cd "$ROOT" && cargo build --release -q -p switchyard -p switchyard-load)
  fi
  [[ -x $SY && -x $LOAD ]] || die "missing $SY or $LOAD"
}

# Installs nginx and haproxy with apt-get when missing (apt-get update once).
ensure_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  command -v haproxy >/dev/null || missing+=(haproxy)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# fill TEMPLATE OUT KEY=VALUE... : replaces @KEY@ placeholders.
fill() {
  local tpl=$1 out=$2; shift 2
  local text; text=$(<"$tpl")
  local kv
  for kv in "$@"; do text=${text//@${kv%%=*}@/${kv#*=}}; done
  # Scripts that do not choose get Switchyard's access log off, like nginx's and HAProxy's.
  text=${text//@ACCESS_LOG_ENABLED@/false}
  text=${text//@ACCESS_LOG_FORMAT@/json}
  text=${text//@ACCESS_LOG_PATH@//dev/null}
  printf '%s\n' "$text" >"$out"
}

# start NAME CMD... : runs CMD in the background (stdout+stderr to $RUN/NAME.log), records its pid.
start() {
  local name=$1; shift
  "$@" >"$RUN/$name.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
}

# Stops every process this script started, by pid.
stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

# wait_http URL [TRIES]: until URL answers (bounded: TRIES × 0.1 s).
wait_http() {
  local url=$1 tries=${2:-100}
  for _ in $(seq 1 "$tries"); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$url did not answer"
}

# The process and its children (nginx master + workers).
tree_pids() {
  local p
  for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done
}

# cpu_ticks PID...: utime+stime in clock ticks, summed (fields 14, 15 of /proc/PID/stat).
cpu_ticks() {
  local sum=0 p f
  for p in "$@"; do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    sum=$((sum + ${12} + ${13}))
  done
  echo "$sum"
}

# cpu_ticks_split PID...: "UTIME STIME" in clock ticks, each summed over the pids.
cpu_ticks_split() {
  local u=0 s=0 p f
  for p in "$@"; do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    u=$((u + ${12})) s=$((s + ${13}))
  done
  echo "$u $s"
}

# Busy jiffies of the whole machine (everything but idle and iowait).
machine_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }

# Sets CHILD_TICKS: CPU of this shell's waited-for children (the loader), in ticks. `times` must
# run in this shell, not in a pipeline or $(...) subshell, which would report its own children.
children_ticks() {
  times >"$RUN/.times"
  CHILD_TICKS=$(awk -v hz="$(getconf CLK_TCK)" 'NR==2 { split($1,u,/[ms]/); split($2,s,/[ms]/);
    printf "%d\n", (u[1]*60+u[2]+s[1]*60+s[2])*hz + 0.5 }' "$RUN/.times")
}

# Peak RSS in kB: the largest VmHWM among the pids.
peak_rss_kb() {
  local max=0 v p
  for p in "$@"; do
    v=$(awk '/^VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    ((v > max)) && max=$v
  done
  echo "$max"
}

# set_affinity CPUS PID...: every thread of every pid.
set_affinity() {
  local cpus=$1 p; shift
  for p in "$@"; do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true; done
}

loadavg1() { cut -d' ' -f1 /proc/loadavg; }

# admin METHOD PATH [JSON]: calls the Switchyard admin API.
admin() {
  local method=$1 path=$2 body=${3:-}
  curl -fsS --max-time 5 -X "$method" -H "Authorization: Bearer ${SWITCHYARD_ADMIN_TOKEN}" \
    -H 'content-type: application/json' ${body:+--data "$body"} "http://127.0.0.1:${ADMIN_PORT}$path"
}
