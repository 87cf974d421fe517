//! The `numbers` command: `numbers serve` runs the service, `numbers token` mints a token,
//! `numbers bench` measures the service, and the admin commands (`numbers assign`, `numbers
//! list`, `numbers import`, ...) work with a running server.

use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory as _;
use clap::{Parser, Subcommand};
use number_management::app::TokenFor;
use number_management::auth::Role;
use number_management::config::{CommonArgs, ServeArgs, Settings};
use number_management::{admin, app, bench, telemetry};

/// mimalloc gives memory back to the system once a burst is over (a bulk call's 100,000 items),
/// where the system allocator keeps it in its arenas: the server's resident memory follows what
/// it holds. It is built without transparent huge pages (`no_thp`): on a kernel that gives them
/// to every mapping, its eagerly committed arenas were resident 2 MB at a time, 25 MB more at
/// rest and 40 MB more under a bulk call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mi_option_e` in its `mimalloc.h`, whose options keep
/// their numbers from version to version; the Rust bindings do not name this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before giving it back to the system, in milliseconds
/// (its default is 1,000): under a bulk call's steady churn, a second's worth of freed pages
/// stayed resident. 100,000 assignments peaked at 86 MB rather than 97 MB, at the same CPU.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Manages the telephone numbers of an organisation's users, over gRPC.
#[derive(Parser)]
#[command(name = "numbers", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service.
    // Boxed, as the admin commands are: their flags outweigh the other commands' many times.
    Serve(Box<ServeArgs>),
    /// Mint a bearer token with the local signing key; prints it as the last line.
    Token(TokenArgs),
    /// Measure the service: start `numbers serve` on a fresh database and drive it over gRPC
    /// with concurrent clients, printing throughput and latency per phase.
    Bench(bench::BenchArgs),
    /// Print the shell completion script of `numbers` for bash, zsh, fish, elvish or powershell
    /// (for bash: `numbers completions bash > /etc/bash_completion.d/numbers`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Admin(Box<admin::Command>),
}

#[derive(clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The tenant the token gives access to.
    #[arg(long, required_unless_present = "operator", requires = "role")]
    tenant: Option<String>,
    /// What the caller may do: admin (everything in the tenant), helpdesk (read, and assign,
    /// change and remove numbers and update their emergency locations) or reader (read only).
    #[arg(long, value_parser = Role::from_cli, requires = "tenant")]
    role: Option<Role>,
    /// Mint an Operator Connect operator's token instead (for the OperatorConnect service).
    #[arg(long, conflicts_with_all = ["tenant", "role"])]
    operator: Option<String>,
    /// Who the caller is, as recorded in the audit trail.
    #[arg(long, default_value = "cli")]
    subject: String,
    /// How many hours the token is valid: 1 to 24 (the service refuses longer-lived tokens of
    /// the local key).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=24))]
    hours: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    // SAFETY: sets one of the allocator's options, which it reads atomically whenever it
    // decides to purge; any thread may set it at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    let result = match Cli::parse().command {
        Command::Serve(args) => match Settings::for_serve(&args) {
            Ok(settings) => {
                let _log = telemetry::init(settings.log_format);
                app::serve(settings).await
            }
            Err(error) => Err(error),
        },
        Command::Token(args) => {
            Settings::token_key_for(&args.common).and_then(|(key, generate)| {
                let to = match (args.operator, args.tenant, args.role) {
                    (Some(operator), _, _) => TokenFor::Operator(operator),
                    (None, Some(tenant), Some(role)) => TokenFor::Tenant { tenant, role },
                    _ => anyhow::bail!("give --tenant and --role, or --operator"),
                };
                let token = app::mint_token(
                    &key,
                    generate,
                    &to,
                    &args.subject,
                    Duration::from_secs(args.hours * 3600),
                )?;
                println!("{token}");
                Ok(())
            })
        }
        Command::Bench(args) => bench::run(args).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "numbers",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Admin(command) => return admin::run(*command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
