//! crashtrace: eBPF crash and stack-unwind tracer. A thin CLI over the
//! `tracer_user` library; see ARCHITECTURE.md for how a probe hit becomes a
//! line.

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use tracer_user::{Failure, cli, commands, daemon, diag, inspect, privilege, report};

/// Exit statuses of crashtrace itself (CONTRACT.md).
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_NO_PRIVILEGE: u8 = 77;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    if let Some(msg) = cli::inapplicable(&matches) {
        diag::init(false);
        log::error!("{msg} (see `crashtrace help`)");
        return ExitCode::from(EXIT_USAGE);
    }
    diag::init(cli.common.verbose && !cli.common.quiet);

    if let cli::Command::Generate(args) = &cli.command {
        return match cli::generate(args.what, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                log::error!("writing: {err}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    // Inspecting a file needs no privilege.
    let inspect_only = matches!(
        cli.command,
        cli::Command::Symbolize(_) | cli::Command::Probes(_) | cli::Command::Report(_)
    );
    let missing = privilege::missing_capabilities();
    if !inspect_only && !missing.is_empty() {
        log::error!(
            "missing capability {}: run as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE",
            missing.join(", ")
        );
        return ExitCode::from(EXIT_NO_PRIVILEGE);
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            log::error!("cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let settings = cli.resolve();
    let result = runtime.block_on(async {
        match &cli.command {
            cli::Command::Run(args) => commands::run(&settings, args).await,
            cli::Command::Attach(args) => commands::attach(&settings, args).await,
            cli::Command::Daemon(args) => daemon::daemon(&settings, args).await,
            cli::Command::Report(args) => report::report(&settings, args),
            cli::Command::Symbolize(args) => inspect::symbolize(&settings, args),
            cli::Command::Probes(args) => inspect::probes(&settings, args),
            cli::Command::Generate(_) => Ok(0), // handled above
        }
    });
    match result {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(Failure::Usage(msg)) => {
            log::error!("{msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Privilege(msg)) => {
            log::error!("{msg}");
            ExitCode::from(EXIT_NO_PRIVILEGE)
        }
        Err(Failure::Other(err)) => {
            log::error!("{err:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
