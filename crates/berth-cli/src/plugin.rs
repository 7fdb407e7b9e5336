//! `berth plugin serve`: berth's bridge driver and IPAM served to a stock dockerd as a legacy
//! plugin (Docker's remote plugin protocol, `berth_plugin::server`).
//!
//! ```text
//! berth plugin serve --name berth            # serves /run/docker/plugins/berth.sock
//! docker network create -d berth --ipam-driver berth --subnet 10.90.0.0/24 net1
//! ```
//!
//! It stays in the foreground until SIGTERM or SIGINT, then stops serving, removes its socket and
//! exits 0; the networks, endpoints and published ports stay in the kernel and in the state
//! directory for the next start (dockerd does not create a plugin's networks again).

use std::path::PathBuf;

use berth_plugin::PluginServer;
use berth_plugin::server::{Backend, ServerConfig, TerminationSignals};
use clap::{Args, Subcommand};

/// `berth plugin ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum PluginCmd {
    /// Serve berth's bridge driver and IPAM to dockerd as a plugin (in the foreground; SIGTERM
    /// or SIGINT stops it)
    Serve(ServeArgs),
}

/// `berth plugin serve`'s flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The plugin's name, as dockerd is given it: `docker network create -d NAME --ipam-driver NAME`
    #[arg(long)]
    pub(crate) name: String,
    /// The state directory (default /var/lib/berth/plugins/NAME)
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// The socket to serve (default /run/docker/plugins/NAME.sock, where dockerd looks for plugins)
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// The network namespace dockerd runs in, as a path (default: this process's own)
    #[arg(long, value_name = "PATH")]
    pub(crate) netns: Option<PathBuf>,
    /// The packet filter backend: iptables (as dockerd 20.10), nftables, or none
    #[arg(long, value_name = "BACKEND", default_value = "iptables",
          value_parser = ["iptables", "nftables", "none"])]
    pub(crate) firewall: String,
    /// Leave IP forwarding as it is (by default it is switched on when off, and the FORWARD
    /// policy then becomes DROP, as dockerd does)
    #[arg(long)]
    pub(crate) no_ip_forward: bool,
    /// Refuse network options (-o) the bridge driver does not know (by default they are
    /// ignored with a warning, as dockerd's own bridge driver ignores them)
    #[arg(long)]
    pub(crate) strict_options: bool,
    /// Log level: error, warn, info, debug or trace
    #[arg(long, value_name = "LEVEL", default_value = "info",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub(crate) log_level: String,
}

impl ServeArgs {
    /// The server's configuration these flags give.
    pub(crate) fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(&self.name)
            .with_firewall(match self.firewall.as_str() {
                "nftables" => Some(Backend::Nftables),
                "none" => None,
                _ => Some(Backend::Iptables),
            })
            .with_ip_forward(!self.no_ip_forward)
            .with_strict_options(self.strict_options);
        if let Some(state) = &self.state {
            config = config.with_state_dir(state);
        }
        if let Some(socket) = &self.socket {
            config = config.with_socket(socket);
        }
        if let Some(netns) = &self.netns {
            config = config.with_host_netns(netns);
        }
        config
    }
}

/// Runs `berth plugin ...`; returns the exit code.
pub(crate) fn plugin(cmd: PluginCmd) -> u8 {
    match cmd {
        PluginCmd::Serve(args) => match serve(&args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth plugin serve: {e}");
                1
            }
        },
    }
}

/// Serves until SIGTERM or SIGINT. The signals are blocked before the server's threads start
/// (they inherit the mask), so only this thread takes them.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), berth_plugin::ServerError> {
    let level = match args.log_level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let signals = TerminationSignals::block()?;
    let server = PluginServer::start(args.config())?;
    let signal = signals.wait()?;
    tracing::info!(%signal, "stopping");
    server.shutdown();
    Ok(())
}
