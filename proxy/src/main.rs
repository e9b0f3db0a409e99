//! The `ringress` binary. `main` is a plain function: pingora builds its own
//! runtimes inside `Server::run`.
use std::process::ExitCode;

use clap::Parser;
use ringress::cli::serve::{self, Rules, Settings};
use ringress::cli::{Cli, Command};
use ringress_routes::RouteTable;

/// pingora allocates per request (headers, tasks, buffers); mimalloc's
/// thread-local free lists halve glibc malloc's share of CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { file }) => check(&file),
        Some(Command::Ring(args)) => ringress::cli::ring::run(&args),
        None => serve(cli.serve),
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let origin = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{origin}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match RouteTable::parse(&origin, &text) {
        Ok(table) => {
            println!("{origin}: ok, {} routes", table.routes().len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{origin}: {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ringress::cli::ServeArgs) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Some(routes) = args.routes else {
        eprintln!("ringress: --routes FILE is required (see --help)");
        return ExitCode::from(2);
    };
    let settings = Settings {
        routes,
        listen: args.listen,
        admin: args.admin,
        threads: args.threads,
        grace_period: args.grace_period,
        reload_interval: args.reload_interval,
        access_log: args.access_log,
        kubeconfig: args.kubeconfig,
        listener_limit: args
            .max_concurrency
            .map(|n| ringress::data::lifo::LifoConfig {
                max_concurrency: n as usize,
                max_queue_size: args.max_queue,
                timeout: args.queue_timeout,
            }),
        header_limits: ringress::data::transport::front::HeaderLimits {
            idle: args.idle_timeout,
            header_timeout: args.request_header_timeout,
            max_header: args.max_request_header,
        },
        screen: Rules {
            max_body: args.max_request_body,
            strict_paths: args.strict_paths,
        },
        fast_path: args.fast_path,
        tls: match args.tls_listen {
            Some(listen) => {
                if args.tls_cert.len() != args.tls_key.len() {
                    eprintln!(
                        "ringress: --tls-cert and --tls-key come in pairs: {} certificate(s), {} key(s)",
                        args.tls_cert.len(),
                        args.tls_key.len()
                    );
                    return ExitCode::from(2);
                }
                Some(serve::TlsListener {
                    listen,
                    pairs: args
                        .tls_cert
                        .into_iter()
                        .zip(args.tls_key)
                        .map(|(cert, key)| ringress::control::certificates::CertPair { cert, key })
                        .collect(),
                })
            }
            None => None,
        },
    };
    match serve::run(settings) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("ringress: {e}");
            ExitCode::FAILURE
        }
    }
}
