//! The container images end to end (deploy/container/Containerfile, docs/deployment.md): podman
//! builds the collector and agent images from the binaries this test run uses (the
//! `*-prebuilt` targets, on the Debian base image scripts/lib/deploy.sh imports), then:
//! - the collector container, on the image's own configuration and a few variables, is the
//!   quickstart: its health check turns healthy, it runs as the image's user (uid 7700, read
//!   from the host's /proc), prints a generated admin token, and its local agent's
//!   `lookout-self` check is up;
//! - an agent container, configured by variables only, enrols and ships: its host is listed
//!   with host metrics;
//! - the collector is replaced by one with a configuration file mounted over the image's (a
//!   check for that agent) on the same volume: the admin token, the enrolled agent's
//!   credential and the results from before the restart are all still there, and the check the
//!   agent runs is up.
//!
//! Every container runs with a read-only root file system: all they write is in their volume.
//!
//! The oracles are the collector's API, podman's own health check and inspect, and the host's
//! /proc. Every container, volume and image made here is removed at the end, pass or fail; the
//! base image is kept for the next run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lookout_tests::{bin, eventually, free_port};

const ENROL: &str = "container-fleet-enrol-token-0123456789";
const AGENT: &str = "container-agent";
const WAIT: Duration = Duration::from_secs(60);
const BASE: &str = "docker.io/library/debian:bookworm-slim";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
}

/// `podman` with the test machines' configuration (runc, no default ulimits).
fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(args);
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        c.env(
            "CONTAINERS_CONF",
            workspace().join("deploy/test/containers.conf"),
        );
    }
    c
}

/// Runs podman and returns its standard output; an error carries its standard error.
fn run(args: &[&str]) -> Result<String> {
    let out: Output = podman(args)
        .output()
        .with_context(|| format!("podman {}", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "podman {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What this test made in podman, removed when dropped.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman(&["rm", "--force", "--volumes", "--time", "2", c]).output();
        }
        for v in &self.volumes {
            let _ = podman(&["volume", "rm", "--force", v]).output();
        }
        for i in &self.images {
            let _ = podman(&["rmi", "--force", i]).output();
        }
    }
}

/// A build context holding what the Containerfile's `*-prebuilt` targets copy: the image's
/// configuration files and, in target/container/, the binaries and a CA bundle.
fn context(dir: &Path) -> Result<PathBuf> {
    let ctx = dir.join("context");
    let conf = ctx.join("deploy/container");
    let bins = ctx.join("target/container");
    std::fs::create_dir_all(&conf)?;
    std::fs::create_dir_all(&bins)?;
    for file in ["collector.toml", "agent.toml"] {
        std::fs::copy(
            workspace().join("deploy/container").join(file),
            conf.join(file),
        )?;
    }
    for name in ["lookout-collector", "lookout-agent"] {
        let from = bin(name);
        // A link where the file system allows it: the debug binaries are 160 MB.
        if std::fs::hard_link(&from, bins.join(name)).is_err() {
            std::fs::copy(&from, bins.join(name))?;
        }
    }
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        bins.join("ca-certificates.crt"),
    )
    .context("the host's CA bundle (Debian's ca-certificates)")?;
    Ok(ctx)
}

/// The admin token the quickstart printed on its first start.
fn printed_admin_token(container: &str) -> Result<Option<String>> {
    let logs = run(&["logs", container])?;
    Ok(logs
        .lines()
        .find_map(|l| l.split_once("Lookout made an admin token"))
        .and_then(|(_, rest)| rest.split_once("): "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(String::from))
}

/// GETs JSON from the collector's API as the admin.
async fn api(base: &str, token: &str, path: &str) -> Result<serde_json::Value> {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(status.is_success(), "{path}: {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// Polls podman's health check of `container` until it says healthy.
async fn healthy(container: &str) -> Result<()> {
    eventually("the health check passes", WAIT, || async {
        let running = run(&["inspect", "--format", "{{.State.Running}}", container])?;
        ensure!(running == "true", "{container} is not running");
        Ok(podman(&["healthcheck", "run", container])
            .output()?
            .status
            .success()
            .then_some(()))
    })
    .await?;
    let status = run(&["inspect", "--format", "{{.State.Health.Status}}", container])?;
    ensure!(status == "healthy", "podman inspect says {status:?}");
    Ok(())
}

/// The user ids of a container's first process, as the host's /proc has them.
fn uids(container: &str) -> Result<String> {
    let pid = run(&["inspect", "--format", "{{.State.Pid}}", container])?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|u| u.split_whitespace().collect::<Vec<_>>().join(" "))
        .context("no Uid line")
}

/// Check `name`'s status and the agents that reported it.
async fn check(base: &str, token: &str, name: &str) -> Result<(String, Vec<String>)> {
    let j = api(base, token, "/api/v1/checks").await?;
    let c = j["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_default();
    let agents = c["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["agent"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok((c["status"].as_str().unwrap_or("").to_string(), agents))
}

#[tokio::test]
async fn the_images_run_the_quickstart_enrol_an_agent_and_keep_their_data() {
    let made = &mut Made::default();
    let started = Instant::now();
    if let Err(e) = scenario(made).await {
        for c in &made.containers {
            let logs = podman(&["logs", c]).output().ok();
            let logs = logs.map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            });
            eprintln!("--- {c}:\n{}", logs.unwrap_or_default());
        }
        panic!("{e:?}");
    }
    eprintln!("container test took {:?}", started.elapsed());
}

async fn scenario(made: &mut Made) -> Result<()> {
    let probe = podman(&["--version"]).output();
    ensure!(
        probe.is_ok_and(|o| o.status.success()),
        "podman is not installed: run scripts/test, which installs it (scripts/lib/deploy.sh)"
    );
    ensure!(
        run(&["image", "exists", BASE]).is_ok(),
        "no base image {BASE}: run scripts/test, or `. scripts/lib/deploy.sh && make_base_image`"
    );
    let dir = tempfile::tempdir()?;
    let ctx = context(dir.path())?;
    let tag = format!(
        "localhost/lookout-test-{}-{:x}",
        std::process::id(),
        fastrand::u32(..)
    );
    let containerfile = workspace().join("deploy/container/Containerfile");
    for target in ["collector", "agent"] {
        let image = format!("{tag}:{target}");
        made.images.push(image.clone());
        let built = Instant::now();
        run(&[
            "build",
            "--quiet",
            "--network=host",
            "--format=docker",
            "--file",
            containerfile.to_str().context("path")?,
            "--target",
            &format!("{target}-prebuilt"),
            "--tag",
            &image,
            ctx.to_str().context("path")?,
        ])?;
        eprintln!("built {image} in {:?}", built.elapsed());
    }
    let collector_image = format!("{tag}:collector");
    let agent_image = format!("{tag}:agent");
    let volume = format!("{}-data", tag.trim_start_matches("localhost/"));
    run(&["volume", "create", &volume])?;
    made.volumes.push(volume.clone());

    // The quickstart: the image's configuration, a port and the enrolment token.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let first = format!("{}-collector-1", tag.trim_start_matches("localhost/"));
    made.containers.push(first.clone());
    run(&[
        "run",
        "--detach",
        "--name",
        &first,
        "--network=host",
        "--read-only",
        "--env",
        &format!("LOOKOUT_PORT={port}"),
        "--env",
        &format!("LOOKOUT_ENROLL_TOKEN={ENROL}"),
        "--volume",
        &format!("{volume}:/var/lib/lookout"),
        &collector_image,
    ])?;
    healthy(&first).await?;
    let ids = uids(&first)?;
    ensure!(
        ids == "7700 7700 7700 7700",
        "the collector runs as uids {ids}"
    );
    let token = eventually("the admin token is printed", WAIT, || async {
        printed_admin_token(&first)
    })
    .await?;
    let (status, agents) = eventually("lookout-self is up", WAIT, || async {
        let (status, agents) = check(&base, &token, "lookout-self").await?;
        Ok((status == "up").then_some((status, agents)))
    })
    .await?;
    ensure!(
        agents == ["local"],
        "lookout-self run by {agents:?} ({status})"
    );

    // An agent configured by variables only.
    let agent = format!("{}-agent", tag.trim_start_matches("localhost/"));
    made.containers.push(agent.clone());
    run(&[
        "run",
        "--detach",
        "--name",
        &agent,
        "--network=host",
        "--read-only",
        "--env",
        &format!("LOOKOUT_COLLECTOR_URL={base}"),
        "--env",
        &format!("LOOKOUT_AGENT_NAME={AGENT}"),
        "--env",
        &format!("LOOKOUT_ENROLL_TOKEN={ENROL}"),
        "--env",
        "LOOKOUT_AGENT_LABELS=role=container-test,env=ci",
        &agent_image,
    ])?;
    let agent_ids = uids(&agent)?;
    ensure!(
        agent_ids == "7700 7700 7700 7700",
        "the agent runs as uids {agent_ids}"
    );
    eventually(
        "the agent's host is listed with its metrics",
        WAIT,
        || async {
            let j = api(&base, &token, "/api/v1/hosts").await?;
            let host = j["hosts"]
                .as_array()
                .and_then(|h| h.iter().find(|h| h["name"] == AGENT))
                .cloned();
            Ok(host.filter(|h| h["metrics"].as_array().is_some_and(|m| !m.is_empty())))
        },
    )
    .await?;
    let kept = result_times(&base, &token).await?;
    ensure!(
        !kept.is_empty(),
        "no lookout-self results before the restart"
    );

    // The same volume, a configuration file mounted over the image's: a check for the agent.
    run(&["stop", "--time", "10", &first])?;
    let config = dir.path().join("collector.toml");
    let image_config =
        std::fs::read_to_string(workspace().join("deploy/container/collector.toml"))?;
    std::fs::write(
        &config,
        format!(
            "{image_config}\n[[checks]]\nname = \"agent-probe\"\ntype = \"http\"\n\
             url = \"{base}/healthz\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\
             run_on = [\"name={AGENT}\"]\n"
        ),
    )?;
    let second = format!("{}-collector-2", tag.trim_start_matches("localhost/"));
    made.containers.push(second.clone());
    run(&[
        "run",
        "--detach",
        "--name",
        &second,
        "--network=host",
        "--read-only",
        "--env",
        &format!("LOOKOUT_PORT={port}"),
        "--env",
        &format!("LOOKOUT_ENROLL_TOKEN={ENROL}"),
        "--volume",
        &format!("{volume}:/var/lib/lookout"),
        "--volume",
        &format!("{}:/etc/lookout/collector.toml:ro", config.display()),
        &collector_image,
    ])?;
    healthy(&second).await?;
    // The token made on the first start is read back from the volume, not made again.
    ensure!(
        printed_admin_token(&second)?.is_none(),
        "a second admin token was made: the volume lost the first"
    );
    let (_, agents) = eventually("the agent's check is up", WAIT, || async {
        let (status, agents) = check(&base, &token, "agent-probe").await?;
        Ok((status == "up").then_some((status, agents)))
    })
    .await?;
    ensure!(agents == [AGENT], "agent-probe run by {agents:?}");
    // The results stored before the restart are still there.
    let after = result_times(&base, &token).await?;
    let lost: Vec<_> = kept.iter().filter(|t| !after.contains(t)).collect();
    ensure!(
        lost.is_empty(),
        "lookout-self results stored before the restart are gone: {lost:?}"
    );
    Ok(())
}

/// The times of the `lookout-self` results the API lists, newest first.
async fn result_times(base: &str, token: &str) -> Result<Vec<String>> {
    let j = api(base, token, "/api/v1/checks/lookout-self/results").await?;
    let rows = j["results"].as_array().context("no results")?;
    Ok(rows
        .iter()
        .filter_map(|x| x["time"].as_str().map(String::from))
        .collect())
}
