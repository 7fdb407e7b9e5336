//! berth's command-line binary, `berth`: a daemon that serves the controller over an HTTP API
//! shaped like the Docker Engine API's `/networks` endpoints, and the client verbs that talk to it.
//!
//! - `berth daemon [--host unix:///run/berth/berth.sock] [--netns PATH] [--config-file FILE] ...`
//!   runs a [`berth::Controller`] and serves it on a unix socket. The stock docker CLI works
//!   against it (`DOCKER_HOST=unix:///run/berth/berth.sock docker network ls|create|inspect|
//!   connect|disconnect|rm|prune`); a container name in `connect` means a berth sandbox.
//! - `berth network create|ls|inspect|rm|connect|disconnect|prune` with docker's flags and output.
//! - `berth sandbox create|ls|inspect|rm|exec` for sandboxes (a container's network namespace).
//!
//! The library part holds what is worth testing and fuzzing on its own: request decoding
//! ([`api`]), the `--format` template language ([`template`]), and the entry point
//! ([`main_entry`]).
//!
//! ```no_run
//! // As root, in one shell:
//! //   berth daemon --host unix:///tmp/berth.sock --netns /run/netns/test-host
//! // In another:
//! //   BERTH_HOST=unix:///tmp/berth.sock berth network create isolated_nw
//! //   BERTH_HOST=unix:///tmp/berth.sock berth sandbox create --name web --network isolated_nw
//! //   BERTH_HOST=unix:///tmp/berth.sock berth sandbox exec web -- ip -o addr
//! let req = berth_cli::api::decode("GET", "/v1.41/networks", None, b"")?;
//! assert!(matches!(req, berth_cli::api::Request::ListNetworks(_)));
//! # Ok::<(), berth_cli::api::ApiError>(())
//! ```

pub mod api;
mod cli;
mod client;
pub mod cluster;
pub mod config;
mod daemon;
mod error;
mod exec;
mod format;
mod plugin;
pub mod template;

pub use cli::main_entry;
pub use daemon::status_of;
pub use error::{Error, Result};
