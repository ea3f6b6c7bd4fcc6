//! The `lookout-collector` binary: parses the command line, wires signals and hands over to the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lookout_config::CollectorConfig;
use lookout_runtime::signal::{cancel_on_signal, reload_on_sighup};
use lookout_runtime::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

/// Lookout's collector: ingests from agents, stores, and serves the API and status page.
#[derive(Parser)]
#[command(name = "lookout-collector", version, about)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "LOOKOUT_CONFIG",
        default_value = "/etc/lookout/collector.toml"
    )]
    config: PathBuf,
    /// How the collector's own log lines are written to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or `RUST_LOG`-style directives (`debug`, `info,lookout_collector=debug`).
    /// Default: `RUST_LOG`, else `LOOKOUT_LOG`, else `info`.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration and exit: 0 when valid, 1 with every problem listed otherwise.
    Validate,
    /// Send a test message through one channel and say what happened: 0 when delivered.
    NotifyTest {
        /// The channel's name (`[[channels]] name`).
        #[arg(long)]
        channel: String,
    },
    /// Copy the store to FILE while the collector runs (SQLite); for PostgreSQL, say the
    /// pg_dump command to run instead (and exit 1, having made no backup).
    Backup {
        /// Where to write the copy (mode 0600).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List, revoke or rotate agents, in the store the configuration names (works while a
    /// collector runs; it sees the change within 5 s).
    Agents {
        #[command(subcommand)]
        action: AgentsAction,
    },
    /// Ask the collector's `/healthz` once: 0 when it answers 200 "ok" within the timeout, 1
    /// with the reason otherwise (the container image's HEALTHCHECK).
    Healthcheck {
        /// The URL to ask. Default: `/healthz` of the `listen` address in the configuration, on
        /// loopback (required when the configuration has `[server.tls]`).
        #[arg(long, env = "LOOKOUT_HEALTHCHECK_URL")]
        url: Option<String>,
        /// How long to wait for the answer, at most 60s.
        #[arg(long, default_value = "5s", value_parser = lookout_collector::healthcheck::parse_timeout)]
        timeout: Duration,
    },
}

#[derive(Subcommand)]
enum AgentsAction {
    /// Every agent, configured and enrolled, with where it comes from.
    List,
    /// Revoke an enrolled agent's credential: its next request is refused.
    Revoke {
        /// The agent's name.
        name: String,
    },
    /// Give an enrolled agent a new credential (printed once); the agent picks it up on its
    /// next request, and the old one works for [enrollment] rotation_grace.
    Rotate {
        /// The agent's name.
        name: String,
    },
    /// Let an enrolled name enrol once more within [enrollment] reenroll_window.
    AllowReenroll {
        /// The agent's name.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match CollectorConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Healthcheck { url, timeout }) = &cli.command {
        return healthcheck(&config, url.as_deref(), *timeout);
    }
    let no_labels = Default::default();
    let local_agent = config.local_agent.as_ref().filter(|a| a.enabled);
    let _telemetry = match telemetry::init(telemetry::Options {
        service: "lookout-collector",
        instance: local_agent.map(|a| a.name.as_str()),
        labels: local_agent.map_or(&no_labels, |a| &a.labels),
        log_format: cli.log_format,
        log_level: cli.log_level.as_deref(),
        config: &config.telemetry,
    }) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Validate) = cli.command {
        println!(
            "{}: valid ({} checks, {} agents{})",
            cli.config.display(),
            config.checks.len(),
            config.agents.len(),
            if config.local_agent.is_some() {
                ", local agent"
            } else {
                ""
            }
        );
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Backup { to, force }) = &cli.command {
        return match lookout_collector::backup::run(&config, to, *force) {
            Ok(said) => {
                println!("{said}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::NotifyTest { channel }) = cli.command {
        return runtime.block_on(async {
            match lookout_collector::notify::send_test(&config.channels, &channel).await {
                Ok(said) => {
                    println!("{said}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        });
    }
    if let Some(Command::Agents { action }) = cli.command {
        use lookout_collector::enrolment::cli::{AgentsCommand, run};
        let command = match action {
            AgentsAction::List => AgentsCommand::List,
            AgentsAction::Revoke { name } => AgentsCommand::Revoke(name),
            AgentsAction::Rotate { name } => AgentsCommand::Rotate(name),
            AgentsAction::AllowReenroll { name } => AgentsCommand::AllowReenroll(name),
        };
        return runtime.block_on(async {
            match run(&config, command).await {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        });
    }
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(reload_on_sighup(reload_tx));
        match lookout_collector::run(config, cli.config, shutdown, reload_rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Asks `/healthz` once, without the collector's telemetry (it runs every few seconds in a
/// container and says what it found on its own output).
fn healthcheck(config: &CollectorConfig, url: Option<&str>, timeout: Duration) -> ExitCode {
    use lookout_collector::healthcheck;
    let url = match url.map_or_else(|| healthcheck::url_for(config), |u| Ok(u.to_string())) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(healthcheck::check(&url, timeout)) {
        Ok(()) => {
            println!("{url}: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
