//! The command line: `berth daemon`, `berth network ...` and `berth sandbox ...`, with the docker
//! CLI's flags, output and exit codes.
//!
//! The clap structs are in `args`, the verbs in `network` and `sandbox`, the `ls` rows in `rows`;
//! this root parses, dispatches, and holds the helpers the verbs share.

mod args;
mod network;
mod rows;
mod sandbox;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use serde_json::Value;

pub(crate) use args::Cli;
use args::{Cmd, FirewallCmd, SandboxCmd};
use network::network;
use sandbox::{sandbox, sandbox_exec};

use crate::client::{Client, encode_component};
use crate::error::{Error, Result};
use crate::format::reindent;
use crate::template::Template;

/// Runs the binary: parses the command line and dispatches. Exit codes follow the docker CLI:
/// 0 success, 1 an error (daemon or usage), 125 an unknown flag or bad flag value; for
/// `sandbox exec`, the command's own code (125/126/127 when it could not run).
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let code = match e.kind() {
                K::DisplayHelp
                | K::DisplayVersion
                | K::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                K::MissingRequiredArgument | K::MissingSubcommand | K::InvalidSubcommand => 1,
                _ => 125,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let host = cli.host.clone();
    let code = match cli.cmd {
        Cmd::Daemon(flags) => {
            match crate::config::resolve(host.as_deref(), flags).and_then(crate::daemon::run) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth daemon: {e}");
                    1
                }
            }
        }
        Cmd::Network(cmd) => with_client(host.as_deref(), |c| network(c, cmd)),
        Cmd::Sandbox(SandboxCmd::Exec(args)) => with_client(host.as_deref(), |c| {
            sandbox_exec(c, &args.sandbox, &args.command)
        }),
        Cmd::Sandbox(cmd) => {
            with_client(host.as_deref(), |c| sandbox(c, cmd, cli.config.as_deref()))
        }
        Cmd::Firewall(FirewallCmd::Reconcile) => with_client(host.as_deref(), firewall_reconcile),
        Cmd::Plugin(cmd) => crate::plugin::plugin(cmd),
    };
    ExitCode::from(code)
}

/// `berth firewall reconcile`: what the daemon found (one line per difference, as its start-up
/// log reports it), then whether it was repaired.
fn firewall_reconcile(c: &Client) -> Result<u8> {
    let report: serde_json::Value = c.post("/firewall/reconcile", &serde_json::json!({}))?;
    let mut out = String::new();
    for (key, label) in [
        ("Structure", "structure"),
        ("Missing", "missing"),
        ("Unexpected", "unexpected"),
    ] {
        for line in report[key].as_array().into_iter().flatten() {
            out.push_str(&format!("{label}: {}\n", line.as_str().unwrap_or_default()));
        }
    }
    if report["Clean"].as_bool().unwrap_or(false) {
        out.push_str("no drift: berth's rules are as they must be\n");
    } else {
        out.push_str("repaired\n");
    }
    print(&out);
    Ok(0)
}

fn with_client(host: Option<&str>, f: impl FnOnce(&Client) -> Result<u8>) -> u8 {
    let result = Client::new(host).and_then(|c| f(&c));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// `inspect` for networks and sandboxes: a JSON array (in the daemon's key order), `-f json`, or
/// a template per element.
/// `rm` of networks or sandboxes: each name removed in turn and printed, each failure printed
/// (a missing one is no failure with `force`); the exit code is 1 when any failed.
fn remove_many(c: &Client, base: &str, names: &[String], force: bool) -> u8 {
    let mut failed = false;
    for n in names {
        match c.call("DELETE", &format!("{base}/{}", encode_component(n)), None) {
            Ok(_) => print(&format!("{n}\n")),
            Err(Error::Daemon { status: 404, .. }) if force => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    u8::from(failed)
}

fn inspect_many(
    c: &Client,
    base: &str,
    names: &[String],
    format: Option<&str>,
    not_found: impl Fn(&str) -> String,
) -> Result<u8> {
    let mut found: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match c.call("GET", &format!("{base}/{}", encode_component(n)), None) {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body).trim().to_owned();
                if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
                    return Err(Error::Protocol {
                        socket: String::new(),
                        message: format!("the answer for {n} is not JSON"),
                    });
                }
                found.push(text);
            }
            Err(Error::Daemon {
                status: 404,
                message,
            }) => errors.push(if message.is_empty() {
                not_found(n)
            } else {
                message
            }),
            Err(e) => return Err(e),
        }
    }
    let array = format!("[{}]", found.join(","));
    match format {
        None | Some("") => print(&format!("{}\n", reindent(&array))),
        Some("json") => print(&format!("{array}\n")),
        Some(f) => {
            let t = Template::parse(f)?;
            let mut out = String::new();
            for raw in &found {
                let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
                out.push_str(&t.render(&v)?);
                out.push('\n');
            }
            print(&out);
        }
    }
    for e in &errors {
        eprintln!("Error response from daemon: {e}");
    }
    Ok(u8::from(!errors.is_empty()))
}
