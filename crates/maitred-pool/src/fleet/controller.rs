//! The controller: one task per pool in a fleet. It keeps the coordination session,
//! acquires tokens while clients wait, gives back tokens left unused, and keeps the
//! replica to its fair share while other replicas want tokens.
//!
//! Each round (every `tick`, or at once when a checkout found no token):
//! 1. survey: announce whether clients wait here; learn the fleet's live replicas `n` and
//!    how many want tokens;
//! 2. fair share `ceil((budget - n) / n)` data tokens (coordination tokens aside), at least
//!    `min_keep`; the cap is the pool size, or the fair share while another replica wants;
//! 3. grow: with clients waiting, acquire free tokens up to the cap;
//! 4. shrink: connections above the cap close as they come back or sit idle; tokens not
//!    covering a connection go back once the pool saw no waiting client for
//!    `idle_release` (or at once when above the cap).
//!
//! Losing the coordination session (an error or a call past `call_timeout`) frees every
//! token on the server: the share is marked lost, nothing new is opened, idle connections
//! close at once and leased ones when they come back. A new session re-acquires tokens
//! for the connections still open before anything new is opened.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{Coordinator, FleetSettings, FleetShare};
use crate::manager::Manager;
use crate::pool::Pool;
use crate::shared::Shared;

/// Puts `pool` in the fleet and spawns its controller; returns the share the pool spends.
/// Call before the pool serves its first checkout.
///
/// # Panics
///
/// Outside a Tokio runtime, or if the pool is in a fleet already.
pub fn start<M: Manager, C: Coordinator>(
    pool: &Pool<M>,
    coordinator: C,
    settings: FleetSettings,
) -> Arc<FleetShare> {
    let share = Arc::new(FleetShare::new(settings.idle_release, settings.min_keep));
    let shared = pool.shared();
    assert!(
        shared.fleet.set(Arc::clone(&share)).is_ok(),
        "pool {} is in a fleet already",
        shared.name()
    );
    tokio::spawn(run(
        Arc::downgrade(shared),
        Arc::clone(&share),
        coordinator,
        settings,
    ));
    share
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

async fn timed<T, E: std::fmt::Display>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

async fn run<M: Manager, C: Coordinator>(
    pool: Weak<Shared<M>>,
    share: Arc<FleetShare>,
    coordinator: C,
    settings: FleetSettings,
) {
    let mut backoff = Duration::from_millis(50);
    let mut budget = settings.budget;
    loop {
        match pool.upgrade() {
            Some(shared) if !shared.is_closed() => shared.fleet_reap(&share),
            _ => return,
        }
        let mut session = match timed(settings.call_timeout, coordinator.open()).await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(fleet = %settings.name, %error, "fleet: cannot open the coordination connection");
                pause(&mut backoff).await;
                continue;
            }
        };
        let b = match budget {
            Some(b) => b,
            None => match timed(settings.call_timeout, coordinator.auto_budget(&mut session)).await
            {
                Ok(b) => {
                    tracing::info!(fleet = %settings.name, budget = b, "fleet: budget read from the server");
                    budget = Some(b);
                    b
                }
                Err(error) => {
                    tracing::warn!(fleet = %settings.name, %error, "fleet: cannot read the server's connection limit");
                    pause(&mut backoff).await;
                    continue;
                }
            },
        };
        // The coordination connection's own token first.
        let own = match timed(
            settings.call_timeout,
            coordinator.acquire(&mut session, b, &[], 1),
        )
        .await
        {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                tracing::warn!(fleet = %settings.name, budget = b, "fleet: every token is held; the coordination connection waits for one");
                drop(session);
                pause(&mut backoff).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(fleet = %settings.name, %error, "fleet: coordination failed");
                pause(&mut backoff).await;
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        tracing::info!(fleet = %settings.name, budget = b, "fleet: joined");
        let mut round = Round {
            coordinator: &coordinator,
            share: &share,
            settings: &settings,
            budget: b,
            own,
            data: Vec::new(),
            returning: Vec::new(),
            last_demand: Instant::now(),
            last_replicas: 0,
        };
        match round.serve(&pool, &mut session).await {
            Ok(()) => return,
            Err(error) => {
                let freed = share.forget_all();
                tracing::warn!(fleet = %settings.name, %error, tokens = freed + 1,
                    "fleet: coordination connection lost; its tokens are freed by the server, this replica opens nothing until it has them again and closes its connections as they come back");
                if let Some(shared) = pool.upgrade() {
                    shared.fleet_reap(&share);
                }
            }
        }
    }
}

async fn pause(backoff: &mut Duration) {
    // A little jitter so replicas that lost the server together do not return in step.
    let jitter = Duration::from_millis(u64::from(std::process::id() % 50));
    tokio::time::sleep(*backoff + jitter).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

struct Round<'a, C: Coordinator> {
    coordinator: &'a C,
    share: &'a FleetShare,
    settings: &'a FleetSettings,
    budget: usize,
    /// The coordination connection's token.
    own: Vec<u32>,
    /// Tokens held for server connections (as many as `granted`, or more while some are
    /// being given back).
    data: Vec<u32>,
    /// Tokens no longer granted, given back to the server once RETURN_DELAY has passed.
    returning: Vec<(Instant, Vec<u32>)>,
    last_demand: Instant,
    /// Live replicas at the last survey.
    last_replicas: usize,
}

/// How long a token that stopped covering a connection is kept before it goes back.
const RETURN_DELAY: Duration = Duration::from_millis(200);

/// Tokens left free for a joining replica's coordination connection.
const DOOR: usize = 1;

/// How long tokens freed by a departed replica are left alone: the server processes of
/// its connections end a moment after its coordination connection's.
const DEPARTURE_GRACE: Duration = Duration::from_millis(500);

/// The fair share of data tokens: the budget less one coordination token per replica,
/// split evenly (rounded up), at least `min_keep` when the budget allows.
pub(crate) fn fair_share(budget: usize, replicas: usize, min_keep: usize) -> usize {
    let n = replicas.max(1);
    let data = budget.saturating_sub(n);
    let fair = data.div_ceil(n);
    if data >= n * min_keep {
        fair.max(min_keep)
    } else {
        fair
    }
}

impl<C: Coordinator> Round<'_, C> {
    fn held(&self) -> Vec<u32> {
        self.own
            .iter()
            .chain(&self.data)
            .chain(self.returning.iter().flat_map(|(_, t)| t))
            .copied()
            .collect()
    }

    async fn acquire(&mut self, session: &mut C::Session, n: usize) -> Result<usize, String> {
        if n == 0 {
            return Ok(0);
        }
        let held = self.held();
        let got = timed(
            self.settings.call_timeout,
            self.coordinator.acquire(session, self.budget, &held, n),
        )
        .await?;
        let k = got.len();
        self.data.extend(got);
        Ok(k)
    }

    /// Ends `Ok` when the pool is gone or closed, `Err` when the session is lost.
    async fn serve<M: Manager>(
        &mut self,
        pool: &Weak<Shared<M>>,
        session: &mut C::Session,
    ) -> Result<(), String> {
        let share = self.share;
        let settings = self.settings;
        // Cover the connections still open from before (a session lost and found again).
        loop {
            let (granted, used) = share.counts();
            let need = used.saturating_sub(granted);
            let got = self.acquire(session, need).await?;
            if share.recover(got) {
                break;
            }
            if let Some(shared) = pool.upgrade() {
                shared.fleet_reap(share);
            }
            tokio::time::sleep(settings.tick).await;
        }
        loop {
            {
                let Some(shared) = pool.upgrade() else {
                    return Ok(());
                };
                if shared.is_closed() {
                    return Ok(());
                }
            }
            let state = match pool.upgrade() {
                Some(shared) => shared.state(),
                None => return Ok(()),
            };
            let now = Instant::now();
            let (granted, used) = share.counts();
            let max = state.max_size;
            let waiting = state.waiting;
            if waiting > 0 {
                self.last_demand = now;
            }
            let wanting = waiting > 0 && granted < max;
            let survey = timed(
                settings.call_timeout,
                self.coordinator.survey(session, self.budget, wanting),
            )
            .await?;
            if survey.replicas < self.last_replicas {
                tracing::info!(fleet = %settings.name, replicas = survey.replicas,
                    "fleet: a replica left; its tokens are used after a grace period");
                self.last_replicas = survey.replicas;
                tokio::time::sleep(DEPARTURE_GRACE).await;
                continue;
            }
            self.last_replicas = survey.replicas;
            let fair = fair_share(self.budget, survey.replicas, settings.min_keep);
            let others_want = survey.wanting > usize::from(wanting);
            let cap = if others_want { fair.min(max) } else { max };

            share.set_target(cap);
            // Grow: clients wait, or below the guaranteed minimum.
            let floor = settings.min_keep.min(cap);
            let goal = if waiting > 0 {
                (used + waiting).min(cap)
            } else {
                floor
            };
            // One token stays free, when the budget allows, for a replica that joins (its
            // coordination connection takes it; then everyone's fair share shrinks).
            let free = self.budget.saturating_sub(survey.held);
            // Below the guaranteed minimum a replica may take the door token too.
            let room = free
                .saturating_sub(DOOR)
                .max(floor.saturating_sub(granted).min(free));
            if granted < goal && room > 0 {
                let got = self.acquire(session, (goal - granted).min(room)).await?;
                if got > 0 {
                    // A replica that left since the last look may have freed these tokens by
                    // dying: its server connections end a moment after its coordination
                    // connection (each server process notices on its own). Wait that out.
                    let after = timed(
                        settings.call_timeout,
                        self.coordinator.survey(session, self.budget, wanting),
                    )
                    .await?;
                    if after.replicas < survey.replicas.max(self.last_replicas) {
                        tracing::info!(fleet = %settings.name, replicas = after.replicas,
                            "fleet: a replica left; its tokens are used after a grace period");
                        tokio::time::sleep(DEPARTURE_GRACE).await;
                    }
                    self.last_replicas = after.replicas;
                    share.grant(got);
                    if let Some(shared) = pool.upgrade() {
                        shared.fleet_dispatch();
                    }
                }
            }

            // Shrink: above the cap at once; unused tokens after idle_release.
            let idle = now.saturating_duration_since(self.last_demand) >= settings.idle_release;
            let (granted, used) = share.counts();
            let keep = if idle {
                used.max(floor).min(cap.max(used))
            } else {
                cap.max(used.min(granted))
            };
            if granted > keep {
                let k = share.take_back(granted - keep);
                if k > 0 {
                    let back: Vec<u32> = self.data.split_off(self.data.len().saturating_sub(k));
                    self.returning.push((now, back));
                }
            }
            // Tokens go back to the server only RETURN_DELAY after they stopped covering a
            // connection: the server process of a connection closed just now may still be
            // ending (it notices the closed socket and exits on its own time).
            let due: Vec<u32> = {
                let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.returning)
                    .into_iter()
                    .partition(|(at, _)| now.saturating_duration_since(*at) >= RETURN_DELAY);
                self.returning = later;
                due.into_iter().flat_map(|(_, t)| t).collect()
            };
            if !due.is_empty() {
                timed(
                    settings.call_timeout,
                    self.coordinator.release(session, &due),
                )
                .await?;
            }
            if let Some(shared) = pool.upgrade() {
                shared.fleet_reap(share);
            }
            let (_, used) = share.counts();
            share.set_gauges(
                self.held().len(),
                1 + (used + waiting).min(max),
                survey.replicas,
                self.budget,
            );
            // At most one round per `tick / 5` however often clients wake it.
            let gap = settings.tick / 5;
            tokio::time::sleep(gap).await;
            tokio::select! {
                () = tokio::time::sleep(settings.tick.saturating_sub(gap)) => {}
                () = share.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_share_leaves_each_replica_its_coordination_token() {
        assert_eq!(fair_share(15, 5, 1), 2);
        assert_eq!(fair_share(16, 5, 1), 3);
        assert_eq!(fair_share(15, 1, 1), 14);
        assert_eq!(fair_share(6, 6, 1), 0);
        assert_eq!(fair_share(7, 6, 1), 1);
        assert_eq!(fair_share(80, 10, 1), 7);
    }
}
