//! What the escalation tests share: one webhook receiver per step, and the configuration of a
//! policy whose every step notifies one of them.

use crate::{Inbox, serve};

/// One receiver per step, on one loopback server, each at `/NAME`; returns them in the steps'
/// order with the server's base URL.
pub async fn step_receivers(steps: &[(&str, u64)]) -> (Vec<Inbox>, String) {
    let inboxes: Vec<Inbox> = steps.iter().map(|_| Inbox::default()).collect();
    let mut app = axum::Router::new();
    for ((name, _), inbox) in steps.iter().zip(&inboxes) {
        app = app.route(&format!("/{name}"), inbox.handler());
    }
    (inboxes, serve(app).await)
}

/// A webhook channel per step (named as the step, posting to `hook/NAME`), an `on-call` policy
/// whose steps come `after` seconds from the firing, and a route of every alert to it.
pub fn policy_toml(hook: &str, steps: &[(&str, u64)]) -> String {
    let mut out = String::new();
    let mut list = Vec::new();
    for (name, after) in steps {
        out.push_str(&format!(
            "[[channels]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{hook}/{name}\"\n\n"
        ));
        list.push(format!(
            "{{ after = \"{after}s\", channels = [\"{name}\"] }}"
        ));
    }
    out.push_str(&format!(
        "[[escalations]]\nname = \"on-call\"\nsteps = [{}]\n\n[[routes]]\nescalation = \"on-call\"\ngroup_wait = \"0s\"\n",
        list.join(", ")
    ));
    out
}

/// The firing notes each receiver got, in the steps' order.
pub fn firings(inboxes: &[Inbox]) -> Vec<usize> {
    inboxes
        .iter()
        .map(|i| i.notes().iter().filter(|(k, _)| k == "firing").count())
        .collect()
}
