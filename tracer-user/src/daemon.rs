//! `crashtrace daemon --config FILE`: the long-running agent. Selects
//! processes by executable (paths and globs), comm, or "every Go program",
//! traces them from their exec on, and exports to files, syslog, OTLP and a
//! metrics endpoint. SIGHUP re-reads the config (a bad one is reported and
//! the old one kept) and reopens output files after logrotate; SIGTERM or
//! Ctrl-C flushes and exits 0.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    Failure,
    cli::{DaemonArgs, Settings},
    export::{self, Exporters, file::FileSink, sinks},
    output::Format,
    selection::{ExecSelect, SelectConfig},
};

/// Where a packaged install keeps the config.
pub const DEFAULT_CONFIG: &str = "/etc/crashtrace/crashtrace.toml";
/// How often exe globs are expanded again (new deploys, replaced files).
const RESCAN: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub select: Select,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub service: Service,
    #[serde(default)]
    pub output: Vec<Output>,
    pub metrics: Option<Metrics>,
    #[serde(default)]
    pub crashloop: CrashLoopConfig,
}

impl Config {
    /// The config's sections that differ in `new`, for the reload's log
    /// line.
    fn changed_sections(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.select != new.select {
            changed.push("[select]");
        }
        if self.limits != new.limits {
            changed.push("[limits]");
        }
        if self.service != new.service {
            changed.push("[service]");
        }
        if self.output != new.output {
            changed.push("[[output]]");
        }
        if self.metrics != new.metrics {
            changed.push("[metrics]");
        }
        if self.crashloop != new.crashloop {
            changed.push("[crashloop]");
        }
        changed
    }
}

/// `[crashloop]`: a `crashloop` record (and the metric
/// `crashtrace_crashloops_total{program=…}`) when one executable, or one
/// cgroup for processes without a known executable, dies `deaths` times
/// within `within_seconds` — restarts a supervisor hides. `deaths = 0`
/// turns it off.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopConfig {
    #[serde(default = "default_crashloop_deaths")]
    pub deaths: u32,
    #[serde(default = "default_crashloop_seconds")]
    pub within_seconds: u64,
}

fn default_crashloop_deaths() -> u32 {
    5
}
fn default_crashloop_seconds() -> u64 {
    60
}

impl Default for CrashLoopConfig {
    fn default() -> Self {
        Self {
            deaths: default_crashloop_deaths(),
            within_seconds: default_crashloop_seconds(),
        }
    }
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// Executables: absolute paths or globs (`/srv/*/bin/server`).
    #[serde(default)]
    pub exe: Vec<String>,
    /// Process names (the kernel's comm, 15 bytes) chosen at exec.
    #[serde(default)]
    pub comm: Vec<String>,
    /// Cgroup v2 paths or globs (`/system.slice/app.service`,
    /// `/kubepods.slice/*`): processes exec'd in such a cgroup or below it.
    #[serde(default)]
    pub cgroup: Vec<String>,
    /// Container ids (or their prefixes, e.g. the 12 digits `docker ps`
    /// shows): processes exec'd in those containers.
    #[serde(default)]
    pub container: Vec<String>,
    /// Every Go program exec'd.
    #[serde(default)]
    pub go: bool,
    /// Every program exec'd (noisy: for a dedicated host).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Executables watched at once.
    #[serde(default = "default_max_watched")]
    pub max_watched_files: usize,
    /// Records per second per process written and exported (incidents,
    /// exits and attaches always are); the rest are reported as lost.
    #[serde(default = "default_rate")]
    pub max_records_per_sec: u32,
}

fn default_max_watched() -> usize {
    256
}
fn default_rate() -> u32 {
    200
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_watched_files: default_max_watched(),
            max_records_per_sec: default_rate(),
        }
    }
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// OTLP `service.name` (else OTEL_SERVICE_NAME, else "crashtrace").
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Output {
    File {
        path: PathBuf,
        #[serde(default = "ndjson")]
        format: String,
        /// Rotate past this size (0: never; logrotate + SIGHUP works too).
        #[serde(default)]
        max_size_mb: u64,
        #[serde(default = "default_keep")]
        keep: u32,
    },
    Syslog {
        /// unix:///dev/log, udp://host:514, tcp://host:601
        #[serde(default = "dev_log")]
        address: String,
        #[serde(default = "daemon_facility")]
        facility: String,
        /// Record types sent (default: incidents and lost-event reports).
        records: Option<Vec<String>>,
    },
    Otlp {
        /// http://host:4318/v1/logs
        endpoint: String,
        records: Option<Vec<String>>,
    },
    /// systemd-journald, native protocol: `journalctl -t crashtrace`.
    Journald {
        /// A journal namespace (`systemd-journald@NAME`); the system
        /// journal when absent.
        namespace: Option<String>,
        /// Record types sent (default: incidents and lost-event reports).
        records: Option<Vec<String>>,
    },
}

fn ndjson() -> String {
    "ndjson".into()
}
fn default_keep() -> u32 {
    5
}
fn dev_log() -> String {
    "unix:///dev/log".into()
}
fn daemon_facility() -> String {
    "daemon".into()
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// host:port for the Prometheus `/metrics` endpoint.
    pub listen: String,
}

/// Incidents and lost-event reports: what a log pipeline wants by default.
const DEFAULT_EXPORTED: [&str; 2] = ["incident", "lost"];

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            // toml's own text draws the line with a caret over several
            // lines: an error is one line here, with where it is.
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(" line {line}, column {column}:")
                })
                .unwrap_or_default();
            anyhow::anyhow!(
                "config {}:{at} {}",
                path.display(),
                e.message().trim().replace('\n', "; ")
            )
        })?;
        config
            .check()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(config)
    }

    pub(crate) fn check(&self) -> Result<()> {
        let s = &self.select;
        if s.exe.is_empty()
            && s.comm.is_empty()
            && s.cgroup.is_empty()
            && s.container.is_empty()
            && !s.go
            && !s.all
        {
            bail!("[select] chooses no process: set exe, comm, cgroup, container, go or all");
        }
        for c in &s.cgroup {
            if !c.starts_with('/') {
                bail!("[select] cgroup {c:?}: a cgroup v2 path starts with /");
            }
            glob::Pattern::new(c).with_context(|| format!("[select] cgroup {c:?}"))?;
        }
        for c in &s.container {
            if c.len() < 4 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("[select] container {c:?}: a container id (hex, at least 4 digits)");
            }
        }
        for e in &s.exe {
            if !e.starts_with('/') {
                bail!("[select] exe {e:?}: use an absolute path or glob");
            }
            glob::Pattern::new(e).with_context(|| format!("[select] exe {e:?}"))?;
        }
        for o in &self.output {
            match o {
                Output::File { format, .. } => {
                    parse_format(format)?;
                }
                Output::Syslog {
                    address, facility, ..
                } => {
                    address.parse::<sinks::SyslogAddress>()?;
                    facility_code(facility)?;
                }
                Output::Otlp { endpoint, .. } => {
                    sinks::HttpUrl::parse(endpoint)?;
                }
                // A namespace is a path component: no slashes, no dots
                // leading out of /run/systemd.
                Output::Journald {
                    namespace: Some(ns),
                    ..
                } if ns.is_empty() || ns.contains('/') || ns.starts_with('.') => {
                    bail!("journald namespace {ns:?}: expected a name such as \"app\"");
                }
                Output::Journald { .. } => {}
            }
        }
        Ok(())
    }

    /// The executables the exe selectors name now.
    fn executables(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pattern in &self.select.exe {
            match glob::glob(pattern) {
                Ok(paths) => out.extend(paths.filter_map(|p| p.ok()).filter(|p| p.is_file())),
                Err(_) => continue,
            }
        }
        out.sort();
        out.dedup();
        out
    }

    async fn exporters(&self, common: &Settings) -> Result<Exporters> {
        let mut ex = Exporters::default();
        let service = export::service_name(self.service.name.as_deref());
        let host = export::hostname();
        for o in &self.output {
            match o {
                Output::File {
                    path,
                    format,
                    max_size_mb,
                    keep,
                } => ex.add_file(FileSink::open(
                    path.clone(),
                    parse_format(format)?,
                    max_size_mb.saturating_mul(1 << 20),
                    *keep,
                )?),
                Output::Syslog {
                    address,
                    facility,
                    records,
                } => ex.add_sink(sinks::spawn_syslog(
                    address.parse()?,
                    export::syslog::Syslog {
                        facility: facility_code(facility)?,
                        app_name: "crashtrace".into(),
                        hostname: host.clone(),
                    },
                    types(records),
                )),
                Output::Journald { namespace, records } => ex.add_sink(sinks::spawn_journald(
                    export::journald::socket_path(namespace.as_deref()),
                    types(records),
                )),
                Output::Otlp { endpoint, records } => ex.add_sink(sinks::spawn_otlp(
                    endpoint,
                    export::otlp::Resource {
                        service_name: service.clone(),
                        host_name: Some(host.clone()),
                        extra: Vec::new(),
                    },
                    types(records),
                )?),
            }
        }
        if let Some(url) = &common.otlp {
            ex.add_sink(sinks::spawn_otlp(
                url,
                export::otlp::Resource {
                    service_name: service.clone(),
                    host_name: Some(host.clone()),
                    extra: Vec::new(),
                },
                types(&None),
            )?);
        }
        Ok(ex)
    }
}

fn types(records: &Option<Vec<String>>) -> Vec<String> {
    records
        .clone()
        .unwrap_or_else(|| DEFAULT_EXPORTED.map(str::to_owned).to_vec())
}

fn parse_format(f: &str) -> Result<Format> {
    match f {
        "ndjson" => Ok(Format::Ndjson),
        "human" => Ok(Format::Human),
        _ => bail!("output format {f:?}: expected \"ndjson\" or \"human\""),
    }
}

/// RFC 5424 facility names.
fn facility_code(name: &str) -> Result<u8> {
    Ok(match name {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => bail!("syslog facility {name:?}: expected user, daemon, local0…local7, …"),
    })
}

impl Config {
    /// What process work applies: the executables named now, the
    /// exec-time selectors, the limits.
    fn selection(&self) -> SelectConfig {
        let s = &self.select;
        let select_at_exec = s.go || s.all || !s.cgroup.is_empty() || !s.container.is_empty();
        SelectConfig {
            executables: self.executables(),
            keep_others: !s.comm.is_empty()
                || !s.cgroup.is_empty()
                || !s.container.is_empty()
                || s.go
                || s.all,
            comms: s.comm.clone(),
            exec: select_at_exec.then(|| ExecSelect {
                cgroups: s
                    .cgroup
                    .iter()
                    .filter_map(|c| glob::Pattern::new(c).ok())
                    .collect(),
                containers: s.container.clone(),
                go: s.go,
                all: s.all,
                decided: Default::default(),
            }),
            max_watched_files: self.limits.max_watched_files,
            max_records_per_sec: (self.limits.max_records_per_sec > 0)
                .then_some(self.limits.max_records_per_sec),
            crashloop: (self.crashloop.deaths > 1 && self.crashloop.within_seconds > 0).then(
                || crate::crashloop::Rule {
                    deaths: self.crashloop.deaths,
                    window: Duration::from_secs(self.crashloop.within_seconds),
                },
            ),
        }
    }
}

/// What the daemon's loop wakes up for, besides records.
enum Wake {
    Stop,
    Reload,
    Rescan,
}

pub async fn daemon(common: &Settings, args: &DaemonArgs) -> Result<i32, Failure> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    // A config file that is missing, unreadable or wrong is a bad file
    // (status 1), as any other file crashtrace is given; 2 is for the
    // command line itself.
    let mut config = Config::load(&path).map_err(Failure::Other)?;
    // Its outputs are the configured ones; stdout (the journal under
    // systemd) only when none is, or with -o.
    let out = if !config.output.is_empty() && common.output.is_none() {
        crate::output::Output::discard()
    } else {
        crate::output::Output::new(common.format, common.output.as_deref())
            .map(|o| {
                o.with_all_frames(common.all_frames)
                    .with_color(common.color)
                    .with_time(false, common.utc)
            })
            .map_err(Failure::Other)?
    };
    let mut tracer = crate::commands::start(common, out)?;
    tracer.export.exporters = config.exporters(common).await.map_err(Failure::Other)?;
    let watched = tracer
        .apply(config.selection())
        .await
        .map_err(Failure::Other)?;
    // /metrics answering is how supervisors and tests see readiness: only
    // once the selection is applied, so a process started after it is
    // traced.
    let mut metrics_task = start_metrics(&config, &mut tracer.export.exporters, None)
        .await
        .map_err(Failure::Other)?;
    if !common.quiet {
        log::warn!(
            "daemon: config {}, {watched} executables watched",
            path.display(),
        );
    }

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Failure::Other(e.into()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Failure::Other(e.into()))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| Failure::Other(e.into()))?;
    let mut rescan = tokio::time::interval(RESCAN);
    rescan.tick().await;
    loop {
        let wake = tracer
            .serve(async {
                tokio::select! {
                    _ = sigint.recv() => Wake::Stop,
                    _ = sigterm.recv() => Wake::Stop,
                    _ = sighup.recv() => Wake::Reload,
                    _ = rescan.tick() => Wake::Rescan,
                }
            })
            .await;
        match wake {
            Wake::Stop => break,
            Wake::Rescan => {
                if let Err(err) = tracer.apply(config.selection()).await {
                    log::warn!("{err:#}");
                }
            }
            Wake::Reload => {
                if let Err(err) = tracer.export.exporters.reopen() {
                    log::warn!("reopening outputs: {err:#}");
                }
                match Config::load(&path) {
                    Ok(new) if new == config => {
                        if !common.quiet {
                            log::warn!(
                                "daemon: {} unchanged; output files reopened",
                                path.display()
                            );
                        }
                    }
                    Ok(new) => {
                        let changed = config.changed_sections(&new);
                        // Counters survive a reload (a scrape must never
                        // see them go back).
                        let kept_metrics = tracer.export.exporters.metrics.clone();
                        if new.output != config.output || new.service != config.service {
                            match new.exporters(common).await {
                                Ok(ex) => {
                                    let mut old =
                                        std::mem::replace(&mut tracer.export.exporters, ex);
                                    old.close(Duration::from_secs(2)).await;
                                }
                                Err(err) => log::warn!("outputs kept: {err:#}"),
                            }
                        }
                        let rebind = new.metrics != config.metrics || metrics_task.is_none();
                        config = new;
                        if rebind {
                            if let Some(task) = metrics_task.take() {
                                task.abort();
                                // The listener is dropped with the task:
                                // only then can the address be bound
                                // again (abort alone left it bound, and
                                // /metrics closed for good).
                                let _ = task.await;
                            }
                            metrics_task =
                                start_metrics(&config, &mut tracer.export.exporters, kept_metrics)
                                    .await
                                    .unwrap_or_else(|err| {
                                        log::warn!("{err:#}");
                                        None
                                    });
                        } else if let Some(m) = kept_metrics {
                            // Same listener; the new outputs' counters.
                            m.set_sinks(tracer.export.exporters.sink_stats());
                            tracer.export.exporters.metrics = Some(m);
                        }
                        if let Err(err) = tracer.apply(config.selection()).await {
                            log::warn!("applying {}: {err:#}", path.display());
                        }
                        if !common.quiet {
                            log::warn!(
                                "daemon: reloaded {} ({} changed)",
                                path.display(),
                                changed.join(", ")
                            );
                        }
                    }
                    Err(err) => log::warn!("config not reloaded, the old one stays: {err:#}"),
                }
            }
        }
    }
    let summary = tracer.finish(Duration::from_secs(3)).await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    if !common.quiet {
        eprintln!("{}", summary.line(common.verbose));
    }
    Ok(0)
}

/// Serves `[metrics]`, with the counters of `kept` when a reload rebinds.
async fn start_metrics(
    config: &Config,
    exporters: &mut Exporters,
    kept: Option<Arc<export::metrics::Metrics>>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(m) = &config.metrics else {
        exporters.metrics = None;
        return Ok(None);
    };
    let metrics = kept.unwrap_or_default();
    metrics.set_sinks(exporters.sink_stats());
    exporters.metrics = Some(Arc::clone(&metrics));
    Ok(Some(export::metrics::serve(&m.listen, metrics).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_bad_ones_say_why() {
        let text = r#"
            [select]
            exe = ["/usr/local/bin/app", "/srv/*/bin/server"]
            comm = ["nginx"]
            cgroup = ["/system.slice/app.service", "/kubepods.slice/*"]
            container = ["4f1c2a3b5d6e"]
            go = true

            [limits]
            max_watched_files = 10
            max_records_per_sec = 50

            [service]
            name = "payments"

            [[output]]
            type = "file"
            path = "/var/log/crashtrace/events.ndjson"
            max_size_mb = 100

            [[output]]
            type = "syslog"
            address = "udp://127.0.0.1:514"
            facility = "local3"

            [[output]]
            type = "otlp"
            endpoint = "http://127.0.0.1:4318/v1/logs"
            records = ["incident"]

            [metrics]
            listen = "127.0.0.1:9464"
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.check().unwrap();
        assert_eq!(c.select.exe.len(), 2);
        assert_eq!(c.limits.max_records_per_sec, 50);
        assert_eq!(c.output.len(), 3);
        assert!(matches!(&c.output[0], Output::File { format, keep: 5, .. } if format == "ndjson"));

        let none: Config = toml::from_str("[select]\n").unwrap();
        assert!(format!("{:#}", none.check().unwrap_err()).contains("chooses no process"));
        let typo = toml::from_str::<Config>("[select]\nexes = [\"/x\"]\n");
        assert!(
            typo.is_err(),
            "unknown keys are errors, not silently ignored"
        );
        let relative: Config = toml::from_str("[select]\nexe = [\"app\"]\n").unwrap();
        assert!(relative.check().is_err());
        let bad_out: Config = toml::from_str(
            "[select]\nall = true\n[[output]]\ntype = \"syslog\"\naddress = \"localhost:514\"\n",
        )
        .unwrap();
        assert!(bad_out.check().is_err());
    }

    #[test]
    fn the_packaged_example_config_is_valid() {
        let text = include_str!("../../packaging/crashtrace.toml");
        let c: Config = toml::from_str(text).unwrap();
        c.check().unwrap();
        assert_eq!(
            c.crashloop,
            CrashLoopConfig {
                deaths: 5,
                within_seconds: 60
            }
        );
        let k8s = include_str!("../../packaging/daemonset.yaml");
        let embedded: String = k8s
            .split("crashtrace.toml: |\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
            .collect();
        let c: Config = toml::from_str(&embedded).unwrap();
        c.check().unwrap();
    }
}
