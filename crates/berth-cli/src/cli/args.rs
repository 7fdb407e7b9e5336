//! The clap argument structs of the `berth` command line: the top-level [`Cli`], its verbs
//! (`daemon`, `network ...`, `sandbox ...`) and each verb's flags, as the docker CLI spells them.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use crate::config::DaemonFlags;

/// `berth`: Docker's container networking as a daemon and its client.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "berth: Docker's container networking (networks, sandboxes, endpoints) as a daemon and its client",
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// Daemon socket to connect to (for `berth daemon`: to serve)
    #[arg(
        short = 'H',
        long,
        env = "BERTH_HOST",
        global = true,
        value_name = "unix:///PATH"
    )]
    pub(super) host: Option<String>,
    /// Location of the client's configuration files, as docker's --config (default
    /// $DOCKER_CONFIG, else ~/.docker): the `proxies` of its config.json become the proxy
    /// environment of new sandboxes
    #[arg(long = "config", global = true, value_name = "DIR")]
    pub(super) config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub(super) cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum Cmd {
    /// Run the daemon (an HTTP API shaped like the Docker Engine API's /networks on a unix socket)
    Daemon(DaemonFlags),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage sandboxes (a container's network namespace)
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// berth's packet filter rules in the host namespace
    #[command(subcommand)]
    Firewall(FirewallCmd),
    /// Serve berth's drivers to dockerd as a plugin
    #[command(subcommand)]
    Plugin(crate::plugin::PluginCmd),
}

#[derive(Debug, Subcommand)]
pub(super) enum FirewallCmd {
    /// Compare berth's rules with what they must be, fix what differs, and print what was found
    Reconcile,
}

#[derive(Debug, Subcommand)]
pub(super) enum NetworkCmd {
    /// Create a network
    Create(NetCreate),
    /// List networks
    #[command(alias = "list")]
    Ls(NetLs),
    /// Display detailed information on one or more networks
    Inspect(NetInspect),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NetRm),
    /// Connect a sandbox to a network
    Connect(NetConnect),
    /// Disconnect a sandbox from a network
    Disconnect(NetDisconnect),
    /// Remove all unused networks
    Prune(NetPrune),
}

#[derive(Debug, Args)]
pub(super) struct NetCreate {
    /// Driver to manage the network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub(super) driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub(super) subnet: Vec<String>,
    /// Allocate container addresses from a sub-range
    #[arg(long = "ip-range")]
    pub(super) ip_range: Vec<String>,
    /// IPv4 or IPv6 gateway for the master subnet
    #[arg(long)]
    pub(super) gateway: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by the network driver (NAME=IP)
    #[arg(long = "aux-address")]
    pub(super) aux_address: Vec<String>,
    /// Enable IPv6 networking
    #[arg(long)]
    pub(super) ipv6: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub(super) internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub(super) attachable: bool,
    /// Set driver specific options (KEY=VALUE)
    #[arg(short = 'o', long = "opt")]
    pub(super) opt: Vec<String>,
    /// Set metadata on a network (KEY=VALUE)
    #[arg(long)]
    pub(super) label: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub(super) ipam_driver: String,
    /// Set IPAM driver specific options (KEY=VALUE)
    #[arg(long = "ipam-opt")]
    pub(super) ipam_opt: Vec<String>,
    /// Control the network's scope
    #[arg(long)]
    pub(super) scope: Option<String>,
    /// The network's name
    pub(super) name: String,
}

#[derive(Debug, Args)]
pub(super) struct NetLs {
    /// Only display network IDs
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long)]
    pub(super) filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    pub(super) format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub(super) no_trunc: bool,
}

#[derive(Debug, Args)]
pub(super) struct NetInspect {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    pub(super) format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub(super) verbose: bool,
    /// Networks
    #[arg(required = true)]
    pub(super) networks: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct NetRm {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub(super) force: bool,
    /// Networks
    #[arg(required = true)]
    pub(super) networks: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct NetConnect {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub(super) ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    pub(super) ip6: Option<String>,
    /// Add network-scoped alias for the sandbox
    #[arg(long)]
    pub(super) alias: Vec<String>,
    /// Add link to another sandbox (NAME:ALIAS)
    #[arg(long)]
    pub(super) link: Vec<String>,
    /// Add a link-local address for the sandbox
    #[arg(long = "link-local-ip")]
    pub(super) link_local_ip: Vec<String>,
    /// Driver options for the network (KEY=VALUE)
    #[arg(long = "driver-opt")]
    pub(super) driver_opt: Vec<String>,
    /// The network
    pub(super) network: String,
    /// The sandbox
    pub(super) container: String,
}

#[derive(Debug, Args)]
pub(super) struct NetDisconnect {
    /// Force the sandbox to disconnect from a network
    #[arg(short, long)]
    pub(super) force: bool,
    /// The network
    pub(super) network: String,
    /// The sandbox
    pub(super) container: String,
}

#[derive(Debug, Args)]
pub(super) struct NetPrune {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub(super) force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub(super) filter: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(super) enum SandboxCmd {
    /// Create a sandbox (a network namespace) and connect it to a network; prints its id
    Create(Box<SbCreate>),
    /// List sandboxes
    #[command(alias = "list")]
    Ls(SbLs),
    /// Display detailed information on one or more sandboxes
    Inspect(SbInspect),
    /// Remove one or more sandboxes
    #[command(alias = "remove")]
    Rm(SbRm),
    /// Run a command inside a sandbox's namespace
    Exec(SbExec),
    /// Rename a sandbox
    Rename(SbRename),
}

#[derive(Debug, Args)]
pub(super) struct SbRename {
    /// The sandbox
    pub(super) sandbox: String,
    /// Its new name
    pub(super) new_name: String,
}

#[derive(Debug, Args)]
pub(super) struct SbCreate {
    /// The sandbox's name
    #[arg(long)]
    pub(super) name: String,
    /// Set an environment variable of the sandbox's processes (KEY=VALUE, or KEY to pass this
    /// shell's value); it wins over the proxy settings of the client's configuration
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub(super) env: Vec<String>,
    /// Connect to a network (default "bridge"; "host" and "none" as in docker)
    #[arg(long = "network", alias = "net")]
    pub(super) network: Option<String>,
    /// IPv4 address on that network
    #[arg(long)]
    pub(super) ip: Option<String>,
    /// IPv6 address on that network
    #[arg(long)]
    pub(super) ip6: Option<String>,
    /// Network-scoped alias
    #[arg(long)]
    pub(super) alias: Vec<String>,
    /// MAC address of the interface
    #[arg(long = "mac-address")]
    pub(super) mac_address: Option<String>,
    /// Publish a port ([HOST_IP:][HOST_PORT:]PORT[/PROTO])
    #[arg(short = 'p', long = "publish")]
    pub(super) publish: Vec<String>,
    /// Expose a port or a range of ports (PORT[/PROTO])
    #[arg(long)]
    pub(super) expose: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long = "publish-all")]
    pub(super) publish_all: bool,
    /// Add link to another sandbox (NAME:ALIAS)
    #[arg(long)]
    pub(super) link: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub(super) dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub(super) dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option")]
    pub(super) dns_option: Vec<String>,
    /// The sandbox's hostname
    #[arg(long)]
    pub(super) hostname: Option<String>,
    /// The sandbox's domain name
    #[arg(long)]
    pub(super) domainname: Option<String>,
    /// Add a custom host-to-IP mapping (HOST:IP)
    #[arg(long = "add-host")]
    pub(super) add_host: Vec<String>,
    /// Adopt an existing network namespace (e.g. /proc/PID/ns/net) instead of making one
    #[arg(long)]
    pub(super) netns: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct SbLs {
    /// Only display sandbox IDs
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    pub(super) format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub(super) no_trunc: bool,
}

#[derive(Debug, Args)]
pub(super) struct SbInspect {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    pub(super) format: Option<String>,
    /// Sandboxes
    #[arg(required = true)]
    pub(super) sandboxes: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct SbRm {
    /// Do not error if the sandbox does not exist
    #[arg(short, long)]
    pub(super) force: bool,
    /// Sandboxes
    #[arg(required = true)]
    pub(super) sandboxes: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct SbExec {
    /// The sandbox
    pub(super) sandbox: String,
    /// The command and its arguments (after --)
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub(super) command: Vec<OsString>,
}
