# Helpers of the observability cost runs (`loadtest/compare observe`, `loadtest/collector_down`):
# Switchyard configs with the access log and tracing set per variant, the stand-in OTLP sink, and
# the counters that show whether spans arrived. Sourced after lib.sh, with RUN set.

# sy_config FILE LISTEN_PORT ADMIN_PORT STATE_DIR LOG SAMPLE ENDPOINT: the bench config
# (loadtest/conf/switchyard-bench.toml.in, 90/10 manual split to BLUE_PORT/GREEN_PORT) with the
# access log LOG (off|json|text, every request to RUN/logs/access-<config name>.log) and, unless SAMPLE is
# empty, `[tracing]` sampling SAMPLE of the requests (none carry a traceparent) to ENDPOINT.
sy_config() {
  local file=$1 listen=$2 admin=$3 state=$4 log=$5 sample=$6 endpoint=$7
  local on=true fmt=$log
  [[ $log == off ]] && on=false fmt=json
  fill "$ROOT/loadtest/conf/switchyard-bench.toml.in" "$file" STATE_DIR="$state" ADMIN_PORT="$admin" \
    INTERVAL=1s WINDOW=10s MIN_SAMPLES=100 LISTEN_PORT="$listen" GREEN_WEIGHT=10 \
    BLUE_PORT="$BLUE_PORT" GREEN_PORT="$GREEN_PORT" ACCESS_LOG_ENABLED=$on ACCESS_LOG_FORMAT="$fmt" \
    ACCESS_LOG_PATH="$RUN/logs/access-$(basename "$file" .toml).log"
  # Out of the config's directory, as in a deployment: the reload watcher watches that directory.
  mkdir -p "$RUN/logs"
  if [[ -n $sample ]]; then
    # A table after the [[services]] entry: valid TOML, it closes the array entry.
    printf '\n[tracing]\nendpoint = "%s"\nsample = %s\n' "$endpoint" "$sample" >>"$file"
    if [[ -n ${TRACE_QUEUE:-} ]]; then echo "queue = $TRACE_QUEUE" >>"$file"; fi
  fi
}

# start_sink PORT...: the stand-in collector (loadtest/conf/otlp-sink-nginx.conf.in) listening on
# each PORT; sets SINK_PIDS. Every export it took is a line "POST 200 <bytes>" in
# RUN/otlp-sink-<port>.log.
start_sink() {
  local servers="" p
  for p in "$@"; do
    servers+="  server {
    listen 127.0.0.1:$p backlog=1024;
    location = /v1/traces { access_log $RUN/otlp-sink-$p.log export; return 200; }
    location / { return 404; }
  }
"
  done
  fill "$ROOT/loadtest/conf/otlp-sink-nginx.conf.in" "$RUN/otlp-sink.conf" RUN="$RUN" SERVERS="$servers"
  start otlp-sink nginx -p "$RUN" -e "$RUN/otlp-sink-error.log" -c "$RUN/otlp-sink.conf"
  for p in "$@"; do wait_http "http://127.0.0.1:$p/v1/traces"; done
  SINK_PIDS=$(tree_pids "$PID_otlp_sink" | tr '\n' ' ')
}

# sink_summary PORT: "N exports (M not 200), K kB" from the sink's log of PORT.
sink_summary() {
  awk '$1 == "POST" { n++; b += $3; if ($2 != 200) bad++ }
    END { printf "%d exports (%d not 200), %.0f kB\n", n, bad, b / 1024 }' "$RUN/otlp-sink-$1.log" 2>/dev/null \
    || echo "0 exports"
}

# metrics ADMIN_PORT: Switchyard's /metrics text (empty when it does not answer).
metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null || true; }

# counter TEXT NAME: the sum of every series of counter NAME in the /metrics TEXT (0 if absent).
counter() {
  awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }' <<<"$1"
}

# observe_counters ADMIN_PORT: one line with the requests served and the observability counters.
observe_counters() {
  local m; m=$(metrics "$1")
  echo "requests $(counter "$m" switchyard_requests_total)," \
    "spans dropped $(counter "$m" switchyard_trace_spans_dropped_total)," \
    "export failures $(counter "$m" switchyard_trace_export_failures_total)," \
    "access log lines dropped $(counter "$m" switchyard_access_log_dropped_total)"
}

# The span queue's default capacity, read from the source so the printed bound stays true.
span_queue_default() {
  sed -n 's/^const SPAN_QUEUE: usize = \([0-9_]*\);.*/\1/p' "$ROOT/src/config/validate/observe.rs" | tr -d _
}
