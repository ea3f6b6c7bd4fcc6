//! The answers of podman 4.3.1's Docker-compatible API, captured here with `podman system
//! service` and `curl --unix-socket` (`agent/src/integrations/fixtures/podman-4.3-*`): a
//! Compose-labelled container running with a healthy health check (`fx-web`, printing
//! `out-N` and `err-N` each second), and one that exits 3 under `--restart=on-failure:2`
//! (`fx-exit`); read as the integration reads them.

use std::collections::BTreeMap;

use chrono::Utc;

use super::logs::{Dedup, source, split_timestamp};
use super::model::{Inspect, Listed, Stats};
use super::mux::{Demux, Lines, Stream};
use super::{Reading, Seen, Source};

const LIST: &str = include_str!("../fixtures/podman-4.3-list.json");
const HEALTHY: &str = include_str!("../fixtures/podman-4.3-inspect-running-healthy.json");
const EXITED: &str = include_str!("../fixtures/podman-4.3-inspect-exited.json");
const STATS: &str = include_str!("../fixtures/podman-4.3-stats.json");
const LOGS: &[u8] = include_bytes!("../fixtures/podman-4.3-logs.bin");

fn listed() -> Vec<Listed> {
    serde_json::from_str(LIST).unwrap()
}

#[test]
fn the_list_gives_names_images_states_and_compose_labels() {
    let l = listed();
    assert_eq!(l.len(), 2);
    let exit = l.iter().find(|c| c.name() == "fx-exit").unwrap();
    let web = l.iter().find(|c| c.name() == "fx-web").unwrap();
    assert_eq!(exit.state, "exited");
    assert_eq!(web.state, "running");
    assert_eq!(web.image, "docker.io/library/debian:bookworm-slim");
    assert_eq!(
        (web.compose_project(), web.compose_service()),
        (Some("shop"), Some("web"))
    );
    assert_eq!(
        (exit.compose_project(), exit.compose_service()),
        (None, None)
    );
    assert_eq!(
        source(web, Stream::Stderr),
        "container:shop/web/fx-web/stderr"
    );
    assert_eq!(source(exit, Stream::Stdout), "container:fx-exit/stdout");
    // An engine that writes null for no names and no labels: the id's first 12 digits name it.
    let bare: Vec<Listed> = serde_json::from_str(
        r#"[{"Id":"9c2d5ba4b2c3399625f053e3","Names":null,"Labels":null,"State":"created"}]"#,
    )
    .unwrap();
    assert_eq!(bare[0].name(), "9c2d5ba4b2c3");
    assert!(bare[0].labels.is_empty());
}

#[test]
fn inspect_gives_restarts_exit_code_and_health() {
    let web: Inspect = serde_json::from_str(HEALTHY).unwrap();
    assert!(web.state.running);
    assert_eq!((web.restart_count, web.state.exit_code), (0, 0));
    assert_eq!(web.health(), "healthy");
    assert!(!web.config.tty);
    let exit: Inspect = serde_json::from_str(EXITED).unwrap();
    assert!(!exit.state.running);
    assert_eq!(exit.state.status, "exited");
    assert_eq!((exit.restart_count, exit.state.exit_code), (2, 3));
    assert_eq!(exit.health(), "none");
}

#[test]
fn samples_carry_the_container_labels_and_the_inspect_and_stats_figures() {
    let l = listed();
    let stats: Stats = serde_json::from_str(STATS).unwrap();
    let reading = Reading {
        containers: l
            .iter()
            .map(|c| {
                let web = c.name() == "fx-web";
                Seen {
                    listed: c.clone(),
                    inspect: Some(
                        serde_json::from_str(if web { HEALTHY } else { EXITED }).unwrap(),
                    ),
                    stats: web.then(|| stats.clone()),
                }
            })
            .collect(),
        skipped: 0,
    };
    let mut source = Source::new("unix:///nowhere.sock").unwrap();
    let labels = BTreeMap::from([("integration".to_string(), "containers".to_string())]);
    let samples = source.samples(&reading, Utc::now(), &labels);
    let value = |name: &str, container: &str, extra: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels["container"] == container
                    && extra.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
    };
    assert_eq!(value("container.restarts", "fx-exit", None), Some(2.0));
    assert_eq!(value("container.exit_code", "fx-exit", None), Some(3.0));
    assert_eq!(value("container.running", "fx-exit", None), Some(0.0));
    assert_eq!(value("container.running", "fx-web", None), Some(1.0));
    assert_eq!(
        value("container.health", "fx-web", Some(("status", "healthy"))),
        Some(1.0)
    );
    assert_eq!(
        value("container.health", "fx-web", Some(("status", "none"))),
        Some(0.0)
    );
    assert_eq!(
        value("container.health", "fx-exit", Some(("status", "none"))),
        Some(1.0)
    );
    assert_eq!(
        value("container.memory.usage", "fx-web", None),
        Some(2_908_160.0)
    );
    assert_eq!(
        value("container.memory.limit", "fx-web", None),
        Some(25_276_182_528.0)
    );
    assert_eq!(
        value("container.cpu.time", "fx-web", None),
        Some(0.062_303_331)
    );
    assert_eq!(
        value(
            "container.network.io",
            "fx-web",
            Some(("direction", "receive"))
        ),
        Some(0.0)
    );
    // No stats for a stopped container, and no CPU usage before a second reading.
    assert_eq!(value("container.memory.usage", "fx-exit", None), None);
    assert_eq!(value("container.cpu.usage", "fx-web", None), None);
    let web = samples
        .iter()
        .find(|s| s.labels["container"] == "fx-web")
        .unwrap();
    assert_eq!(web.labels["compose_project"], "shop");
    assert_eq!(web.labels["compose_service"], "web");
    assert_eq!(
        web.labels["image"],
        "docker.io/library/debian:bookworm-slim"
    );
    assert_eq!(web.labels["integration"], "containers");
    let exit = samples
        .iter()
        .find(|s| s.labels["container"] == "fx-exit")
        .unwrap();
    assert!(!exit.labels.contains_key("compose_service"));
    // A second reading gives the CPU used between the two, in cores.
    let samples = source.samples(&reading, Utc::now(), &labels);
    assert!(
        samples
            .iter()
            .any(|s| s.name == "container.cpu.usage" && s.value == 0.0)
    );
}

#[test]
fn the_captured_log_stream_gives_each_line_once_in_order_with_its_stream() {
    let mut demux = Demux::default();
    let mut lines: BTreeMap<&str, Lines> = BTreeMap::new();
    let mut got = Vec::new();
    // Cut into 7-byte pieces: frames and lines cross the reads.
    for chunk in LOGS.chunks(7) {
        demux.push(chunk);
        while let Some((stream, payload)) = demux.next_frame().unwrap() {
            let mut out = Vec::new();
            lines
                .entry(stream.as_str())
                .or_default()
                .push(&payload, &mut out);
            for (bytes, _) in out {
                let (time, text) = split_timestamp(&bytes);
                got.push((stream, time.unwrap(), text));
            }
        }
    }
    // The fixture ends on a frame's end: 16 lines, out-1 err-1 ... out-8 err-8.
    let texts: Vec<String> = got.iter().map(|(_, _, t)| t.clone()).collect();
    let expected: Vec<String> = (1..=8)
        .flat_map(|i| [format!("out-{i}"), format!("err-{i}")])
        .collect();
    assert_eq!(texts, expected);
    assert!(got.iter().step_by(2).all(|(s, _, _)| *s == Stream::Stdout));
    assert!(
        got.iter()
            .skip(1)
            .step_by(2)
            .all(|(s, _, _)| *s == Stream::Stderr)
    );
    // podman's timestamps are whole seconds: many lines share one. Read again from the mark
    // after the 5th line, only the 11 after it are new.
    let mut d = Dedup::new(None);
    for (_, t, _) in &got[..5] {
        assert!(d.is_new(*t));
    }
    let mut again = Dedup::new(d.mark);
    let new: Vec<&str> = got
        .iter()
        .filter(|(_, t, _)| again.is_new(*t))
        .map(|(_, _, text)| text.as_str())
        .collect();
    assert_eq!(
        new,
        expected[5..].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn an_answer_that_is_not_the_list_is_an_error_and_missing_stats_are_absent() {
    // The API's error object where the list was expected (its size bound is api.rs's).
    assert!(serde_json::from_str::<Vec<Listed>>(r#"{"message":"x"}"#).is_err());
    // A stopped container's reading from some engines: no figure, none shipped.
    let s: Stats = serde_json::from_str(r#"{"memory_stats":{},"networks":null}"#).unwrap();
    assert_eq!((s.memory_stats.usage, s.network()), (None, None));
}
