//! What every protocol's pool does alike in a fleet: its settings from the configuration,
//! and its gauges for the admin endpoint.

use maitred_config::model::PoolConfig;
use maitred_pool::fleet::{FleetSettings, FleetStatus};

/// The fleet settings of a configured pool (which has `fleet` set).
pub(super) fn settings(p: &PoolConfig) -> FleetSettings {
    let name = p.fleet.clone().unwrap_or_default();
    let mut settings = FleetSettings::new(name, p.budget.and_then(|b| b.count()));
    settings.idle_release = p.fleet_idle_release;
    settings.call_timeout = p.server_connect_timeout;
    settings
}

/// `maitred_fleet_*` gauges: tokens held (the coordination connection's included), wanted,
/// used by server connections, the fleet's live replicas and its budget, and whether the
/// coordination connection is lost.
pub(super) fn gauges(f: &FleetStatus) -> Vec<(&'static str, f64)> {
    vec![
        ("fleet_tokens_held", f.tokens_held as f64),
        ("fleet_tokens_wanted", f.tokens_wanted as f64),
        ("fleet_tokens_used", f.tokens_used as f64),
        ("fleet_replicas", f.replicas as f64),
        ("fleet_budget", f.budget as f64),
        ("fleet_coordination_lost", if f.lost { 1.0 } else { 0.0 }),
    ]
}
