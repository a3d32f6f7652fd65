//! Command-line interface (../shared/CONTRACT.md, "Commands").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::{ColorWhen, Format};

#[derive(Parser, Debug)]
#[command(
    name = "crashtrace",
    version,
    about = "eBPF crash and stack-unwind tracer: what crashed, where, why, and who killed it",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Common {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human, global = true)]
    pub format: Format,
    /// Write records to PATH (created mode 0600) instead of stdout (`run`:
    /// instead of stderr, which keeps the program's stdout clean for
    /// pipes); `-` is stdout.
    #[arg(short, long, value_name = "PATH", global = true)]
    pub output: Option<PathBuf>,
    /// No summary line or notices on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Notices about what is attached and skipped, on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    // The options below apply to some subcommands only: each of those
    // takes them after its name (and `crashtrace run --help` lists them);
    // given before the subcommand's name they are accepted here, for the
    // subcommands they apply to ([`inapplicable`]). [`Cli::resolve`]
    // merges both places.
    #[command(flatten)]
    pub options: TracerOptions,
}

/// Options of the commands that trace (run, attach, daemon).
#[derive(Args, Debug, Default, Clone)]
pub struct TracingOptions {
    /// Also export incidents and lost-event reports as OTLP/HTTP logs to
    /// URL (e.g. http://localhost:4318/v1/logs); service.name from
    /// OTEL_SERVICE_NAME.
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// Ring buffer size in KiB (a power of two, at least 4; default 4096).
    #[arg(long, value_name = "KIB", value_parser = ring_size)]
    pub ring_buffer_kib: Option<u32>,
}

/// Options of the commands that write records (run, attach, daemon,
/// report).
#[derive(Args, Debug, Default, Clone)]
pub struct RedactOptions {
    /// Mask text matching REGEX in messages (panic values, errors,
    /// exception texts) before any output or export; repeatable.
    #[arg(long, value_name = "REGEX")]
    pub redact: Vec<String>,
}

/// Options of the human view (run, attach, daemon, report).
#[derive(Args, Debug, Default, Clone)]
pub struct ViewOptions {
    /// Human output: show the Go runtime's own frames too (by default Go
    /// stacks show what the runtime's traceback prints, as with
    /// GOTRACEBACK=single; NDJSON always has every frame).
    #[arg(long)]
    pub all_frames: bool,
    /// Colour the human view: auto (on a terminal, unless NO_COLOR is
    /// set), always, never.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub color: Option<ColorWhen>,
    /// Human view: times in UTC instead of the local time zone (`report`
    /// shows dates and the zone; live views the time of day).
    #[arg(long)]
    pub utc: bool,
}

/// The options in effect, wherever they were given.
#[derive(Debug)]
pub struct Settings {
    pub format: Format,
    pub output: Option<PathBuf>,
    pub quiet: bool,
    pub verbose: bool,
    pub otlp: Option<String>,
    pub ring_buffer_kib: u32,
    pub redact: Vec<String>,
    pub all_frames: bool,
    pub color: ColorWhen,
    pub utc: bool,
}

/// Ring buffer size when none is given.
const RING_BUFFER_KIB: u32 = 4096;

impl Cli {
    /// The options in effect: those given after the subcommand's name,
    /// else those given before it, else the defaults.
    pub fn resolve(&self) -> Settings {
        let common = &self.common;
        // Given before the subcommand's name.
        let c = &common.options;
        let none = (
            TracingOptions::default(),
            RedactOptions::default(),
            ViewOptions::default(),
        );
        let (tracing, redaction, view) = match &self.command {
            Command::Run(RunArgs { options: o, .. })
            | Command::Attach(AttachArgs { options: o, .. })
            | Command::Daemon(DaemonArgs { options: o, .. }) => (&o.tracing, &o.redaction, &o.view),
            Command::Report(a) => (&none.0, &a.redaction, &a.view),
            _ => (&none.0, &none.1, &none.2),
        };
        Settings {
            format: common.format,
            output: common.output.clone(),
            quiet: common.quiet,
            verbose: common.verbose,
            otlp: tracing.otlp.clone().or_else(|| c.tracing.otlp.clone()),
            ring_buffer_kib: tracing
                .ring_buffer_kib
                .or(c.tracing.ring_buffer_kib)
                .unwrap_or(RING_BUFFER_KIB),
            redact: c
                .redaction
                .redact
                .iter()
                .chain(&redaction.redact)
                .cloned()
                .collect(),
            all_frames: view.all_frames || c.view.all_frames,
            color: view.color.or(c.view.color).unwrap_or(ColorWhen::Auto),
            utc: view.utc || c.view.utc,
        }
    }
}

/// The options that apply to some subcommands only: (option id, flag as
/// typed, the subcommands it applies to).
const SOME_COMMANDS_ONLY: &[(&str, &str, &[&str])] = &[
    ("otlp", "--otlp", &["run", "attach", "daemon"]),
    (
        "ring_buffer_kib",
        "--ring-buffer-kib",
        &["run", "attach", "daemon"],
    ),
    ("redact", "--redact", &["run", "attach", "daemon", "report"]),
    (
        "all_frames",
        "--all-frames",
        &["run", "attach", "daemon", "report"],
    ),
    ("color", "--color", &["run", "attach", "daemon", "report"]),
    ("utc", "--utc", &["run", "attach", "daemon", "report"]),
];

/// Options given before the subcommand's name that mean nothing to it:
/// rejected (exit 2) rather than silently ignored. (After its name, clap
/// rejects them: the subcommand does not define them.)
pub fn inapplicable(matches: &clap::ArgMatches) -> Option<String> {
    let (name, _) = matches.subcommand()?;
    SOME_COMMANDS_ONLY.iter().find_map(|(id, flag, applies)| {
        let given = matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        (given && !applies.contains(&name))
            .then(|| format!("{flag} does not apply to `crashtrace {name}`"))
    })
}

fn ring_size(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if v < 4 || !v.is_power_of_two() || v > 1 << 20 {
        return Err("must be a power of two between 4 and 1048576".into());
    }
    Ok(v)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start PROGRAM with probes in place before its first instruction; exit
    /// with its status (128+N when killed by signal N).
    #[command(after_help = "Examples:
  crashtrace run -- ./server --port 8080        # timeline on stderr
  crashtrace run -o crash.ndjson --format ndjson -- sh -c './job.sh'
  crashtrace run --otlp http://localhost:4318/v1/logs -- ./worker")]
    Run(RunArgs),
    /// Trace running processes until they all exit or Ctrl-C.
    #[command(after_help = "Examples:
  crashtrace attach -p 1234,5678                # and what they fork (--no-follow-forks: not)
  crashtrace attach --exe /srv/app/bin/api      # every process of that file, now and later
  crashtrace --format ndjson -o /var/log/ct.ndjson attach -p 1234")]
    Attach(AttachArgs),
    /// Long-running agent: selects processes by executable, comm or
    /// runtime, traces them from exec, exports (files, syslog, OTLP,
    /// metrics). SIGHUP reloads the config and reopens files.
    #[command(after_help = "Examples:
  crashtrace daemon --config /etc/crashtrace/crashtrace.toml
  kill -HUP $(pidof crashtrace)                 # reload the config, reopen files")]
    Daemon(DaemonArgs),
    /// Render recorded NDJSON (files, or - for stdin) as human timelines,
    /// re-symbolizing frames that lack names when the binaries are at hand.
    #[command(after_help = "Examples:
  crashtrace report /var/log/crashtrace/events.ndjson
  crashtrace report --group /var/log/crashtrace/*.ndjson   # one line per crash fingerprint
  crashtrace report --type incident --exe api --since 1h events.ndjson
  journalctl -t crashtrace -o cat --output-fields=CRASHTRACE_RECORD | crashtrace report -")]
    Report(ReportArgs),
    /// Print function, file:line and inlined frames for file addresses
    /// (hex), from DWARF, Go's .gopclntab or the symbol table.
    #[command(after_help = "Examples:
  crashtrace symbolize --exe ./server 0x4a1b2c 0x4a1c00
  cut -d' ' -f1 addrs.txt | crashtrace symbolize --exe ./server -")]
    Symbolize(SymbolizeArgs),
    /// What would be attached to a binary: runtime and version, probe
    /// points found or missing, debug info source.
    #[command(after_help = "Examples:
  crashtrace probes --exe /usr/bin/fzf
  crashtrace probes --format ndjson --exe ./server | jq .runtime_layout")]
    Probes(ProbesArgs),
    /// Print the man page or a shell's completion script (for packaging:
    /// `crashtrace generate man > crashtrace.1`, `crashtrace generate
    /// complete-bash > /usr/share/bash-completion/completions/crashtrace`).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to print.
    #[arg(value_enum)]
    pub what: Generated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    /// roff, for man(1).
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

/// The man page's sections clap does not write.
const MAN_EXTRA: &str = r#".SH "EXIT STATUS"
0 ok; 1 any other failure, with one line on stderr; 2 usage error;
77 missing privilege (the capability is named).
.B run
returns the traced program's own status instead (128+N when killed by signal N).
.SH EXAMPLES
.TP
.B crashtrace run -- ./server --port 8080
Trace a program from its first instruction; the timeline goes to stderr.
.TP
.B crashtrace attach -p 1234
Trace a running process and what it forks, until it exits or Ctrl-C.
.TP
.B crashtrace --format ndjson -o /var/log/crashtrace.ndjson attach --exe /srv/app/bin/api
Every process running that file, now and started later, as NDJSON.
.TP
.B crashtrace report --group /var/log/crashtrace/*.ndjson
One line per crash fingerprint: count, first and last seen, pids.
.SH FILES
.TP
.I /etc/crashtrace/crashtrace.toml
The daemon's configuration (selectors, outputs, metrics, limits).
.TP
.I /run/crashtrace/kernel-offsets
The running kernel's structure offsets, read from its BTF at the first
start of a boot and kept for the next starts (root only; /run is cleared
at reboot).
"#;

/// Writes what `generate` asks for to `out`.
pub fn generate(what: Generated, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let shell = match what {
        Generated::Man => {
            clap_mangen::Man::new(cmd).render(out)?;
            return out.write_all(MAN_EXTRA.as_bytes());
        }
        Generated::CompleteBash => clap_complete::Shell::Bash,
        Generated::CompleteZsh => clap_complete::Shell::Zsh,
        Generated::CompleteFish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "crashtrace", out);
    Ok(())
}

#[derive(Args, Debug)]
pub struct SymbolizeArgs {
    /// The binary (ELF).
    #[arg(long, value_name = "PATH")]
    pub exe: PathBuf,
    /// Addresses in the binary's own address space (hex, 0x optional); `-`
    /// reads them from stdin.
    #[arg(required = true, value_name = "ADDR")]
    pub addrs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ProbesArgs {
    /// The binary (ELF).
    #[arg(long, value_name = "PATH")]
    pub exe: PathBuf,
}

/// Whether the processes a traced one forks are traced too: yes by
/// default, for `run` and `attach` alike (strace's `-f` is accepted).
#[derive(Args, Debug, Default, Clone)]
pub struct ForkOptions {
    /// Trace the processes the traced ones fork too, and theirs (the
    /// default; strace's -f).
    #[arg(short = 'f', long, overrides_with = "no_follow_forks")]
    pub follow_forks: bool,
    /// Do not trace the processes the traced ones fork.
    #[arg(long, overrides_with = "follow_forks")]
    pub no_follow_forks: bool,
}

impl ForkOptions {
    pub fn follow(&self) -> bool {
        !self.no_follow_forks
    }
}

/// The options of the commands that trace (run, attach, daemon).
#[derive(Args, Debug, Default, Clone)]
pub struct TracerOptions {
    #[command(flatten)]
    pub tracing: TracingOptions,
    #[command(flatten)]
    pub redaction: RedactOptions,
    #[command(flatten)]
    pub view: ViewOptions,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub forks: ForkOptions,
    #[command(flatten)]
    pub options: TracerOptions,
    /// The program and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    pub argv: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(true).args(["pids", "exes"])))]
pub struct AttachArgs {
    /// Process ids to trace (`-p 1234,5678`, as strace and perf take them).
    #[arg(short = 'p', long = "pid", num_args = 1.., value_delimiter = ',', value_name = "PID")]
    pub pids: Vec<u32>,
    /// Trace every process running PATH: those running it now and those
    /// started later (from their first instruction), until Ctrl-C. A
    /// process that execs another program is no longer traced.
    #[arg(long = "exe", num_args = 1.., value_name = "PATH")]
    pub exes: Vec<PathBuf>,
    #[command(flatten)]
    pub forks: ForkOptions,
    #[command(flatten)]
    pub options: TracerOptions,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// TOML config (default /etc/crashtrace/crashtrace.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: TracerOptions,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// NDJSON files written by crashtrace; - reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One line per crash fingerprint instead of the timeline: how many
    /// incidents, first and last seen, which pids, and the verdict of the
    /// latest (e.g. `crashtrace report --group /var/log/crashtrace/*.ndjson`).
    #[arg(long)]
    pub group: bool,
    /// Only records of these processes (`--pid 1234,5678`).
    #[arg(short = 'p', long = "pid", value_delimiter = ',', value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only records of processes running this executable: a path or a glob
    /// (`/srv/*/bin/api`); without a `/`, the file name (`api`, `api-*`).
    #[arg(long, value_name = "PATH|GLOB")]
    pub exe: Option<String>,
    /// Only records of these types (`--type incident,signal`).
    #[arg(long = "type", value_delimiter = ',', value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only records at or after TIME: `2026-12-03 08:00:00` or
    /// `2026-12-03T08:00:00Z` (UTC), `2026-12-03`, or a span ago (`1h`,
    /// `30min`), like journalctl's.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records before TIME (as for --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[command(flatten)]
    pub redaction: RedactOptions,
    #[command(flatten)]
    pub view: ViewOptions,
}
