//! Agents that leave: a clean stop, said with a goodbye, and ephemeral agents (servers that an
//! autoscaling group adds and removes) that go silent.
//!
//! - A permanent agent that says goodbye is `stopped`: its silence does not page until it ships
//!   again. One that stops without a word (killed, its host lost) pages as before.
//! - An ephemeral agent's silence never pages. Its goodbye, or silence past its `retire_after`,
//!   retires it.
//! - Either way, each check it reported forgets it, so a quorum counts the agents that remain
//!   rather than waiting for the leaver's last results to go stale, and the store records the
//!   agent as `stopped` or `retired` (its history stays) until its next batch.
//!
//! On a shared database the goodbye may reach a collector that does not lead: it is recorded
//! in the store there, and the leader's tick, which reads the store for agents gone silent,
//! takes it from there ([`Engine::tick`]).

use chrono::{DateTime, Utc};

use super::engine::{Engine, agent_decision};
use super::settings::Settings;
use super::state::{AgentBeat, State};
use crate::alert::Sink;
use crate::store::alerting::AlertState;
use crate::store::{Presence, StoreError};

impl Engine {
    /// `agent` said at `now` that it is stopping.
    pub async fn goodbye(&self, agent: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.lock().await;
        self.left(&mut state, &settings, agent, now).await
    }

    /// `agent` left at `now`: retired if ephemeral, stopped if permanent.
    pub(super) async fn left(
        &self,
        state: &mut State,
        settings: &Settings,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.retire_after(settings, agent).is_some() {
            return self.retire(state, settings, agent, now).await;
        }
        self.forget(state, settings, agent, now).await?;
        state
            .agents
            .entry(agent.to_string())
            .or_insert(AgentBeat::new(now))
            .stopped = true;
        self.store
            .set_agent_presence(agent, Some(Presence::Stopped), now)
            .await?;
        tracing::info!(
            agent,
            "agent stopped: it said so; its silence does not page"
        );
        Ok(())
    }

    /// Retires `agent` at `now`: the engine forgets it, and the store says so.
    pub(super) async fn retire(
        &self,
        state: &mut State,
        settings: &Settings,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.forget(state, settings, agent, now).await?;
        state.agents.remove(agent);
        if state.agent_down(agent) {
            // It became ephemeral while it was down: nothing is wrong any more.
            let summary = format!("agent {agent} retired");
            self.record(
                state,
                agent_decision(agent, AlertState::Resolved, now, summary),
            )
            .await?;
        }
        self.store
            .set_agent_presence(agent, Some(Presence::Retired), now)
            .await?;
        tracing::info!(agent, "ephemeral agent retired");
        Ok(())
    }

    /// Each check `agent` reported forgets it, and the changes that makes are recorded.
    async fn forget(
        &self,
        state: &mut State,
        settings: &Settings,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let checks: Vec<String> = state.checks.keys().cloned().collect();
        for check in checks {
            let change = state
                .checks
                .get_mut(&check)
                .and_then(|r| r.uptime.forget(agent, now));
            if let Some(change) = change {
                self.apply(&mut Sink::Own, state, settings, &check, change)
                    .await?;
            }
        }
        Ok(())
    }
}
