//! The `berth-cni` binary: a CNI plugin (see the `berth_cni` crate for what it does and its
//! configuration keys).

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut vars = Vec::new();
    let mut bad_var = None;
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => vars.push((k, v)),
            (Ok(k), Err(_)) if k.starts_with("CNI_") => bad_var = Some(k),
            _ => {}
        }
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(berth_cni::MAX_STDIN + 1)
        .read_to_end(&mut stdin);
    let outcome = berth_cni::run_process(vars, bad_var, read.map(|_| stdin));
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    if !outcome.stderr.is_empty() {
        eprintln!("{}", outcome.stderr);
    }
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
