# Shared by the loadtest/compare modes (idle, tls, handshake, h2). Sourced, not run.
# One upstream nginx answers for blue and green; each proxy gets a cleartext HTTP/1.1 port, a
# TLS 1.3 port (ECDSA P-256, ALPN h2 + http/1.1) and an h2c port (Switchyard serves h2c on its
# cleartext port). Proxies are started and stopped per target so each measures alone.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# 10 000 client sockets, as many proxy sockets, and the upstream's.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

REPS=${REPS:-3} PORT_BASE=${PORT_BASE:-18000} WORKERS=${WORKERS:-1} TARGETS=${TARGETS:-"switchyard nginx haproxy"}
OUT=${OUT:-$ROOT/loadtest/results/$MODE-$(date -u +%Y%m%dT%H%M%SZ)}
OUT=$(realpath -m "$OUT")
RUN=$OUT/run
mkdir -p "$RUN"
BLUE_PORT=$((PORT_BASE + 90)) GREEN_PORT=$((PORT_BASE + 91)) ADMIN_PORT=$((PORT_BASE + 900))
declare -A PLAIN=([switchyard]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 2)) [haproxy]=$((PORT_BASE + 3)))
declare -A TLSP=([switchyard]=$((PORT_BASE + 11)) [nginx]=$((PORT_BASE + 12)) [haproxy]=$((PORT_BASE + 13)))
declare -A H2C=([switchyard]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 22)) [haproxy]=$((PORT_BASE + 23)))
trap stop_all EXIT

# Self-signed ECDSA P-256 certificate for localhost (HAProxy wants cert and key in one file).
make_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$RUN/key.pem" -out "$RUN/cert.pem" 2>/dev/null
  cat "$RUN/cert.pem" "$RUN/key.pem" >"$RUN/combined.pem"
}

start_upstream() {
  fill "$ROOT/loadtest/conf/upstream-nginx.conf.in" "$RUN/upstream.conf" RUN="$RUN" BLUE_PORT=$BLUE_PORT GREEN_PORT=$GREEN_PORT
  start upstream nginx -p "$RUN" -e "$RUN/upstream-error.log" -c "$RUN/upstream.conf"
  wait_http "http://127.0.0.1:$BLUE_PORT/" && wait_http "http://127.0.0.1:$GREEN_PORT/"
  UP_PIDS=$(tree_pids "$PID_upstream")
  set_affinity 1 $UP_PIDS
}

# start_target TARGET: starts one proxy on its three ports, pinned to CPU 0 unless
# PIN=0; sets TPIDS (the pids whose CPU and memory count) and TROOT (the pid to stop).
start_target() {
  local t=$1 C=$ROOT/loadtest/conf
  local ports=(RUN="$RUN" BLUE_PORT=$BLUE_PORT GREEN_PORT=$GREEN_PORT WORKERS="$WORKERS"
    PLAIN_PORT=${PLAIN[$t]} TLS_PORT=${TLSP[$t]} H2C_PORT=${H2C[$t]} ADMIN_PORT=$ADMIN_PORT)
  case $t in
    switchyard)
      fill "$C/switchyard-modes.toml.in" "$RUN/switchyard.toml" "${ports[@]}"
      RUST_LOG=warn start switchyard "$SY" run --config "$RUN/switchyard.toml" --threads "$WORKERS"
      TROOT=$PID_switchyard ;;
    nginx)
      fill "$C/proxy-nginx-modes.conf.in" "$RUN/proxy-nginx.conf" "${ports[@]}"
      start proxy-nginx nginx -p "$RUN" -e "$RUN/proxy-nginx-error.log" -c "$RUN/proxy-nginx.conf"
      TROOT=$PID_proxy_nginx ;;
    haproxy)
      fill "$C/proxy-haproxy-modes.cfg.in" "$RUN/proxy-haproxy.cfg" "${ports[@]}"
      start proxy-haproxy haproxy -db -f "$RUN/proxy-haproxy.cfg"
      TROOT=$PID_proxy_haproxy ;;
    *) die "unknown target $t" ;;
  esac
  wait_http "http://127.0.0.1:${PLAIN[$t]}/"
  curl -fsSk -o /dev/null --max-time 2 "https://localhost:${TLSP[$t]}/" --resolve "localhost:${TLSP[$t]}:127.0.0.1" ||
    die "$t does not answer over TLS"
  TPIDS=$(tree_pids "$TROOT" | tr '\n' ' ')
  [[ ${PIN:-1} == 1 ]] && set_affinity 0 $TPIDS
  return 0
}

# stop_target: stops the proxy start_target started (by its pid) and waits for it.
stop_target() {
  kill "$TROOT" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$TROOT" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$TROOT" 2>/dev/null || true
  wait "$TROOT" 2>/dev/null || true
}

# bench TARGET REP CMD...: runs the loader CMD on CPU 1 and appends a sample with the requests
# it completed and the proxy CPU they cost (utime + stime of TPIDS).
bench() {
  local t=$1 rep=$2; shift 2
  local raw="$OUT/raw-$MODE-$t-$rep.txt" p0 p1
  p0=$(cpu_ticks $TPIDS)
  taskset -c "${LOADER_CPUS:-1}" "$@" >"$raw" 2>&1 || log "loader exited non-zero for $t (see $raw)"
  p1=$(cpu_ticks $TPIDS)
  python3 "$ROOT/loadtest/modes/sample.py" "$raw" "$MODE" "$t" "$rep" $((p1 - p0)) "$(getconf CLK_TCK)" >>"$OUT/samples.jsonl"
}

# The run's table: per repetition, each target and Switchyard's ratio to the others.
summarize() {
  python3 "$ROOT/loadtest/modes/ratios.py" "$OUT/samples.jsonl" | tee "$OUT/table.md"
  log "raw output in $OUT"
}
