//! Acknowledgement: what a channel hears when someone takes a firing alert on.
//!
//! An acknowledgement (the API's `POST /api/v1/alerts/{id}/ack`, the admin page's button, or a
//! signed link from a message, [`super::link`]) stops the alert's reminders and tells the
//! channels that were sent its firing that someone has it: an `acknowledged` note with
//! `acked_by`, queued in the outbox in the same transaction as the acknowledgement
//! ([`AlertStore::ack_alert`]), so that either both are stored or neither. Each channel renders
//! the note its own way (PagerDuty's `acknowledge` event, Slack's and email's "acknowledged by").
//!
//! Exactly once per channel and firing: the note's dedup key is `fingerprint/acknowledged/`
//! and the firing's start in Unix milliseconds, so a second acknowledgement of the same firing
//! (another person, the same link twice, two collectors at once) meets the outbox's unique key
//! and queues nothing; a later firing of the same alert is a new key.

use chrono::{DateTime, Utc};

use super::message::{AlertNote, NoteKind};
use crate::store::StoreError;
use crate::store::alerting::{AlertStore, NewNotification, Notification};

/// The note an acknowledgement by `by` at `at` queues to the channel of `sent`, a notification
/// of the alert's current firing: its firing or a reminder, told again as `acknowledged`, in
/// the same group. `None` for any other note, and for a payload that cannot be read (logged).
pub fn acknowledged(sent: &Notification, by: &str, at: DateTime<Utc>) -> Option<NewNotification> {
    let mut note: AlertNote = match serde_json::from_value(sent.payload.clone()) {
        Ok(note) => note,
        Err(e) => {
            tracing::warn!(notification = sent.id, error = %e, "unreadable outbox payload: no acknowledgement for it");
            return None;
        }
    };
    if !matches!(note.kind, NoteKind::Firing | NoteKind::Reminder) {
        return None;
    }
    note.kind = NoteKind::Acknowledged;
    note.acked_by = Some(by.to_string());
    note.ack_link = None;
    let payload = match serde_json::to_value(&note) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(notification = sent.id, error = %e, "cannot write an acknowledgement");
            return None;
        }
    };
    Some(NewNotification {
        channel: sent.channel.clone(),
        dedup_key: dedup_key(&note),
        group_key: sent.group_key.clone(),
        payload,
        not_before: at,
        escalation: None,
    })
}

/// The dedup key of an acknowledged note: one per alert, firing and channel.
fn dedup_key(note: &AlertNote) -> String {
    format!(
        "{}/{}/{}",
        note.fingerprint,
        NoteKind::Acknowledged.as_str(),
        note.fired_at.timestamp_millis()
    )
}

/// Acknowledges the firing alert `alert_id` for `by` at `at`, queuing the [`acknowledged`] notes
/// in the same transaction. False when there is no such firing alert. The caller wakes the
/// sender.
pub async fn acknowledge(
    store: &dyn AlertStore,
    alert_id: i64,
    by: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let note = move |sent: &Notification| acknowledged(sent, by, at);
    store.ack_alert(alert_id, by, at, &note).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(kind: NoteKind) -> Notification {
        let t = DateTime::from_timestamp_millis(1_790_000_000_123).unwrap();
        let note = AlertNote {
            fingerprint: "uptime/api".into(),
            rule: "uptime".into(),
            labels: [("check".to_string(), "api".to_string())].into(),
            kind,
            summary: "api is down".into(),
            fired_at: t,
            resolved_at: None,
            link: Some("https://lookout.example/#check-api".into()),
            acked_by: None,
            ack_link: Some("https://lookout.example/ack/x".into()),
            detail: None,
        };
        Notification {
            id: 7,
            channel: "mail".into(),
            dedup_key: format!("uptime/api/{}/1", kind.as_str()),
            group_key: "route0:".into(),
            payload: serde_json::to_value(&note).unwrap(),
            attempts: 1,
            created: t,
            alert_id: Some(3),
        }
    }

    #[test]
    fn a_firing_or_reminder_becomes_one_acknowledged_note_per_firing() {
        let at = DateTime::from_timestamp(1_790_000_600, 0).unwrap();
        let firing = acknowledged(&sent(NoteKind::Firing), "alice", at).unwrap();
        let reminder = acknowledged(&sent(NoteKind::Reminder), "alice", at).unwrap();
        assert_eq!(firing.dedup_key, "uptime/api/acknowledged/1790000000123");
        assert_eq!(firing.dedup_key, reminder.dedup_key, "one per channel");
        assert_eq!(
            (firing.channel.as_str(), firing.group_key.as_str()),
            ("mail", "route0:")
        );
        assert_eq!(firing.not_before, at);
        let note: AlertNote = serde_json::from_value(firing.payload).unwrap();
        assert_eq!(note.kind, NoteKind::Acknowledged);
        assert_eq!(note.acked_by.as_deref(), Some("alice"));
        assert_eq!(
            note.ack_link, None,
            "an acknowledged note offers no link to acknowledge"
        );
        assert_eq!(note.summary, "api is down");
        for kind in [NoteKind::Resolved, NoteKind::Acknowledged] {
            assert!(acknowledged(&sent(kind), "alice", at).is_none(), "{kind:?}");
        }
        let mut garbage = sent(NoteKind::Firing);
        garbage.payload = serde_json::json!({"kind": 3});
        assert!(acknowledged(&garbage, "alice", at).is_none());
    }
}
