//! Every metric name and label in one place, described once at start-up. Dashboards, alert rules
//! (`docker/prometheus`) and scripts depend on these exact names.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Requests by outcome.
pub const REQUESTS_TOTAL: &str = "switchyard_requests_total";
/// Exchange latency, request start → response body end.
pub const REQUEST_DURATION: &str = "switchyard_request_duration_seconds";
/// Transport failures towards upstreams.
pub const UPSTREAM_ERRORS_TOTAL: &str = "switchyard_upstream_errors_total";
pub const IN_FLIGHT: &str = "switchyard_in_flight_requests";
/// The green color's share, whatever its role (kept: dashboards made before colors alternated).
pub const GREEN_WEIGHT: &str = "switchyard_green_weight_percent";
/// The candidate's share (0 without one): the number that rises as a release rolls out, in
/// whichever color it was deployed.
pub const CANDIDATE_WEIGHT: &str = "switchyard_candidate_weight_percent";
/// 1 per service and color, labelled with the color's role and release (rendered at scrape
/// time from `/status`, so a color that changed role leaves no stale series behind).
pub const RELEASE_INFO: &str = "switchyard_release_info";
/// 1 per endpoint that is healthy and not ejected, labelled with its color's role.
pub const ENDPOINT_UP: &str = "switchyard_endpoint_up";
/// Candidate responses whose constitutional hash was missing or wrong.
pub const HASH_MISMATCHES_TOTAL: &str = "switchyard_hash_mismatches_total";
/// Per-principle compliance reported by upstreams (histogram of scores).
pub const PRINCIPLE_COMPLIANCE: &str = "switchyard_principle_compliance";
/// Window measurement gauges.
pub const WINDOW_SAMPLES: &str = "switchyard_window_samples";
/// Window p50.
pub const WINDOW_P50: &str = "switchyard_window_p50_seconds";
/// Window p95.
pub const WINDOW_P95: &str = "switchyard_window_p95_seconds";
/// Window p99.
pub const WINDOW_P99: &str = "switchyard_window_p99_seconds";
pub const WINDOW_MAX: &str = "switchyard_window_max_seconds";
pub const WINDOW_ERROR_RATE: &str = "switchyard_window_error_rate";
pub const WINDOW_AVAILABILITY: &str = "switchyard_window_availability";
pub const WINDOW_COMPLIANCE: &str = "switchyard_window_compliance";
pub const WINDOW_RPS: &str = "switchyard_window_rps";
/// Share of responses with the statuses of a `status_rate` trigger, labelled `statuses="401,403"`.
pub const WINDOW_STATUS_RATE: &str = "switchyard_window_status_rate";
/// 1 for the service's current state.
pub const SERVICE_STATE: &str = "switchyard_service_state";
/// 0-based plan step, -1 without one (kept for existing dashboards; see `ROLLOUT_STEP_NUMBER`).
pub const ROLLOUT_STEP: &str = "switchyard_rollout_step";
/// 1-based plan step as `/status` and the CLI print it (`step 3/3` is 3); 0 when no step is in
/// effect.
pub const ROLLOUT_STEP_NUMBER: &str = "switchyard_rollout_step_number";
/// Steps in the service's plan (the `3` of `step 3/3`).
pub const ROLLOUT_STEPS: &str = "switchyard_rollout_steps";
/// 1 while any candidate takes traffic or runs its plan, through the last step's hold.
pub const MIGRATION_ACTIVE: &str = "switchyard_migration_active";
/// Rollbacks by trigger.
pub const ROLLBACKS_TOTAL: &str = "switchyard_rollbacks_total";
/// Decision → swap time.
pub const ROLLBACK_SWAP: &str = "switchyard_rollback_swap_seconds";
pub const DECISIONS_TOTAL: &str = "switchyard_control_decisions_total";
/// Config reloads by result.
pub const CONFIG_RELOADS_TOTAL: &str = "switchyard_config_reloads_total";
/// 1 while the config file was refused at the last start or reload (an older config runs).
pub const CONFIG_LAST_RELOAD_FAILED: &str = "switchyard_config_last_reload_failed";
pub const CONFIG_GENERATION: &str = "switchyard_config_generation";
/// Alerts by severity and result.
pub const ALERTS_TOTAL: &str = "switchyard_alerts_total";
/// Critical incidents nobody acknowledged yet, per service.
pub const UNACKNOWLEDGED: &str = "switchyard_incidents_unacknowledged";
/// System health score 0-100 (spec §5.3), per service and `service="_overall"`.
pub const HEALTH_SCORE: &str = "switchyard_system_health_score";
pub const RETRIES_TOTAL: &str = "switchyard_retries_total";
/// Access log lines dropped because the writer thread fell behind.
pub const ACCESS_LOG_DROPPED_TOTAL: &str = "switchyard_access_log_dropped_total";
/// Spans dropped: the export queue was full, or the collector refused or missed an export.
pub const TRACE_SPANS_DROPPED_TOTAL: &str = "switchyard_trace_spans_dropped_total";
/// OTLP export requests that failed (collector down, slow or refusing).
pub const TRACE_EXPORT_FAILURES_TOTAL: &str = "switchyard_trace_export_failures_total";
/// Samples dropped because the aggregator fell behind.
pub const STATS_DROPPED_TOTAL: &str = "switchyard_stats_dropped_total";
/// Connections accepted, by service and worker runtime (`--threads`): shows the kernel's
/// `SO_REUSEPORT` spread across workers.
pub const WORKER_CONNECTIONS_TOTAL: &str = "switchyard_worker_connections_total";

/// Live replicas in the fleet (members holding a lease).
pub const FLEET_REPLICAS: &str = "switchyard_fleet_replicas";
/// 1 while this replica is the fleet leader.
pub const FLEET_LEADER: &str = "switchyard_fleet_leader";
/// 1 while the fleet store answers.
pub const FLEET_STORE_UP: &str = "switchyard_fleet_store_up";
/// Store write (by any replica) to this replica's route swap.
pub const FLEET_APPLY_LAG: &str = "switchyard_fleet_apply_lag_seconds";
/// The `statuses` label of `switchyard_window_status_rate`: `401` or `401,403`.
pub fn statuses_label(statuses: &[u16]) -> String {
    statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// 1 per service whose config (release, plan) differs from the fleet's shared state.
pub const FLEET_CONFIG_SKEW: &str = "switchyard_fleet_config_skew";
/// Plan writes refused because this replica no longer led (fenced by the leader key).
pub const FLEET_FENCED_TOTAL: &str = "switchyard_fleet_fenced_writes_total";
/// Latency buckets in seconds: fine below 10 ms (proxy overhead), up to 30 s (spec triggers).
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0];

/// Registers help text for every metric (promtool warns on metrics without it).
pub fn describe_all() {
    describe_counter!(REQUESTS_TOTAL, "Proxied requests by service, color and status class (error = no response).");
    describe_histogram!(REQUEST_DURATION, Unit::Seconds, "Request start to response body end, per service and color.");
    describe_counter!(
        UPSTREAM_ERRORS_TOTAL,
        "Upstream transport failures by kind (connect, timeout, reset, protocol)."
    );
    describe_gauge!(IN_FLIGHT, "Requests currently being proxied per service.");
    describe_gauge!(
        GREEN_WEIGHT,
        "Percent of new requests routed to the green color, live or candidate (see switchyard_candidate_weight_percent)."
    );
    describe_gauge!(
        CANDIDATE_WEIGHT,
        "Percent of new requests routed to the candidate release (0 without a candidate)."
    );

    describe_histogram!(
        PRINCIPLE_COMPLIANCE,
        "Per-principle compliance scores from X-Constitutional-Principles (mean = _sum / _count)."
    );
    describe_counter!(
        ACCESS_LOG_DROPPED_TOTAL,
        "Access log lines dropped because the writer fell behind (queue full)."
    );
    describe_counter!(
        TRACE_SPANS_DROPPED_TOTAL,
        "Spans dropped: export queue full or the collector down, slow or refusing."
    );
    describe_counter!(TRACE_EXPORT_FAILURES_TOTAL, "OTLP trace export requests that failed.");
    describe_counter!(
        HASH_MISMATCHES_TOTAL,
        "Candidate responses with a missing or wrong constitutional hash, by color."
    );
    describe_gauge!(WINDOW_SAMPLES, "Requests in the control window per color.");
    describe_gauge!(WINDOW_P50, Unit::Seconds, "p50 latency over the control window.");
    describe_gauge!(WINDOW_P95, Unit::Seconds, "p95 latency over the control window.");
    describe_gauge!(WINDOW_P99, Unit::Seconds, "p99 latency over the control window.");
    describe_gauge!(WINDOW_MAX, Unit::Seconds, "Max latency over the control window.");
    describe_gauge!(WINDOW_ERROR_RATE, "Share of 5xx and transport failures over the control window.");
    describe_gauge!(WINDOW_AVAILABILITY, "Share of requests and probes answered by a live upstream.");
    describe_gauge!(WINDOW_COMPLIANCE, "Mean constitutional compliance reported by upstreams over the window.");
    describe_gauge!(WINDOW_RPS, "Requests per second over the control window.");
    describe_gauge!(
        WINDOW_STATUS_RATE,
        "Share of responses over the control window with the statuses of a status_rate trigger (label statuses)."
    );
    describe_gauge!(
        SERVICE_STATE,
        "1 for the service's current state (stable, canary, promoted, rolled_back, paused)."
    );
    describe_gauge!(
        ROLLOUT_STEP,
        "0-based step index of the candidate's plan (-1 without a plan); switchyard_rollout_step_number is 1-based."
    );
    describe_gauge!(
        ROLLOUT_STEP_NUMBER,
        "1-based step of the candidate's plan as switchyard status prints it (0: no step in effect, e.g. rolled back)."
    );
    describe_gauge!(ROLLOUT_STEPS, "Number of steps in the service's rollout plan.");
    describe_gauge!(
        MIGRATION_ACTIVE,
        "1 while any candidate takes traffic or runs its plan (through the last step's hold)."
    );
    describe_counter!(ROLLBACKS_TOTAL, "Rollbacks by service and trigger.");
    describe_counter!(
        WORKER_CONNECTIONS_TOTAL,
        "Client connections accepted, by service and worker runtime (1-based; 0 = the only runtime)."
    );
    describe_histogram!(ROLLBACK_SWAP, Unit::Seconds, "Time from rollback decision to the route swap.");
    describe_counter!(DECISIONS_TOTAL, "Control loop decisions by service.");
    describe_counter!(CONFIG_RELOADS_TOTAL, "Config reloads by result.");
    describe_counter!(
        crate::tls::CERT_RELOADS_TOTAL,
        "Changed TLS certificate files tried, by certificate path and result (ok = now served)."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_FAILED,
        "1 while the config file was refused at the last start or reload, so an older accepted config runs."
    );
    describe_gauge!(CONFIG_GENERATION, "Generation of the running config.");
    describe_counter!(ALERTS_TOTAL, "Alert deliveries by severity and result.");
    describe_gauge!(UNACKNOWLEDGED, "Critical incidents of the service not yet acknowledged (POST /incidents/ID/ack).");
    describe_gauge!(
        HEALTH_SCORE,
        "System health score 0-100 over the control window (spec 5.3; README), per service and service=\"_overall\"; NaN without traffic."
    );
    describe_counter!(RETRIES_TOTAL, "Failed candidate attempts retried on the live color.");
    describe_counter!(STATS_DROPPED_TOTAL, "Samples dropped because the statistics aggregator was behind.");
    describe_gauge!(FLEET_REPLICAS, "Live replicas in the fleet (fleet mode only).");
    describe_gauge!(FLEET_LEADER, "1 while this replica leads the fleet (fleet mode only).");
    describe_gauge!(FLEET_STORE_UP, "1 while the fleet store (etcd) answers (fleet mode only).");
    describe_histogram!(FLEET_APPLY_LAG, Unit::Seconds, "Shared-state store write to this replica's route swap.");
    describe_gauge!(FLEET_CONFIG_SKEW, "1 while this replica's config for the service differs from the fleet's.");
    describe_counter!(FLEET_FENCED_TOTAL, "Plan writes refused because this replica no longer led.");
}

/// Installs the Prometheus recorder with explicit buckets (summaries otherwise) and returns the
/// handle the admin server renders. Call once per process.
pub fn install_recorder(
) -> Result<metrics_exporter_prometheus::PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(PRINCIPLE_COMPLIANCE.into()), &[0.5, 0.8, 0.9, 0.95, 0.99, 1.0])?
        .set_buckets_for_metric(Matcher::Full(ROLLBACK_SWAP.into()), &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.1, 1.0])?
        .set_buckets_for_metric(
            Matcher::Full(FLEET_APPLY_LAG.into()),
            &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
        )?
        .install_recorder()?;
    describe_all();
    Ok(handle)
}
