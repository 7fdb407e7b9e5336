//! An example container engine that embeds berth, with `berth` (and an example driver of its
//! own) as its only dependencies: what an engine author does on day one.
//!
//! `berth-example-engine HOST_NETNS STATE_DIR` treats the network namespace at `HOST_NETNS` as its
//! host (never the caller's own), keeps berth's state under `STATE_DIR`, and:
//! 1. creates a network and two sandboxes on it, one publishing 8080 -> 80;
//! 2. serves TCP in one sandbox and reaches it from the other, directly and through the
//!    published port (on the network's gateway address);
//! 3. restarts the controller on the same state and finds it all, traffic included;
//! 4. registers its own driver (the routed point-to-point example) and reaches a sandbox on it
//!    from the host namespace;
//! 5. tears everything down.
//!
//! It prints one line per step and exits 0 when every step worked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth::{
    Config, Controller, EndpointOptions, IpamPoolConfig, Netns, NetworkCreate, SandboxCreate,
};
use berth_example_p2p::P2pDriver;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(3);

fn main() {
    if let Err(e) = run() {
        eprintln!("berth-example-engine: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(host), Some(state)) = (args.next(), args.next()) else {
        return Err("usage: berth-example-engine HOST_NETNS STATE_DIR".into());
    };
    let (host, state) = (PathBuf::from(host), PathBuf::from(state));
    let mut config = Config::new(state.join("data"), state.join("run"));
    config.host_netns = Some(host.clone());
    let host_ns = Netns::open(&host)?;
    let p2p = Arc::new(P2pDriver::new(&host_ns)?);
    let start = || -> Result<Controller> {
        Ok(Controller::builder(config.clone())
            .driver_arc(p2p.clone())
            .build()?)
    };

    // 1. A network, two sandboxes, a published port.
    let ctl = start()?;
    ctl.create_network(NetworkCreate::new("appnet"))?;
    let mut web = SandboxCreate::new("web");
    web.network = Some("appnet".into());
    web.endpoint.ports = vec!["8080:80".parse()?];
    ctl.create_sandbox(web)?;
    let mut client = SandboxCreate::new("client");
    client.network = Some("appnet".into());
    ctl.create_sandbox(client)?;
    println!("made appnet, web (8080:80) and client");

    // 2. Traffic, directly and through the published port.
    check_traffic(&ctl)?;
    println!("client reaches web directly and through the published port");

    // 3. A restart on the same state.
    drop(ctl);
    let ctl = start()?;
    check_traffic(&ctl)?;
    println!("after a restart: both sandboxes and the port are back");

    // 4. Its own driver.
    let mut routed = NetworkCreate::new("routed");
    routed.driver = "p2p".into();
    routed.ipam.push(IpamPoolConfig {
        subnet: Some("10.97.0.0/24".parse()?),
        ..Default::default()
    });
    ctl.create_network(routed)?;
    ctl.connect("client", "routed", EndpointOptions::default())?;
    let ip = ctl.inspect_sandbox("client")?.networks["routed"]
        .ip_address
        .clone();
    let server = serve(&ctl.sandbox_netns("client")?, &format!("{ip}:7"), "p2p")?;
    let got = fetch(&host_ns, &format!("{ip}:7"))?;
    server.join().map_err(|_| "the server thread panicked")??;
    if got != "p2p" {
        return Err(format!("over the p2p driver: got {got:?}").into());
    }
    println!("the host reaches client over the engine's own p2p driver");

    // 5. Teardown.
    let report = ctl.teardown()?;
    println!(
        "torn down: {} sandboxes, {} networks, {} firewall entries, restored {:?}",
        report.sandboxes.len(),
        report.networks.len(),
        report.firewall.len(),
        report.restored
    );
    Ok(())
}

/// client -> web:80 directly, and client -> gateway:8080 (the published port, hairpinned).
fn check_traffic(ctl: &Controller) -> Result<()> {
    let web = ctl.inspect_sandbox("web")?.networks["appnet"].clone();
    let gateway = web.gateway.clone();
    let client = ctl.sandbox_netns("client")?;
    for (to, what) in [
        (format!("{}:80", web.ip_address), "directly"),
        (format!("{gateway}:8080"), "through the published port"),
    ] {
        let server = serve(&ctl.sandbox_netns("web")?, "0.0.0.0:80", "web")?;
        let got = fetch(&client, &to)?;
        server.join().map_err(|_| "the server thread panicked")??;
        if got != "web" {
            return Err(format!("client to web {what} ({to}): got {got:?}").into());
        }
    }
    Ok(())
}

/// A one-connection TCP server in `ns` that writes `banner`.
fn serve(
    ns: &Netns,
    at: &str,
    banner: &'static str,
) -> Result<std::thread::JoinHandle<std::io::Result<()>>> {
    let addr: SocketAddr = at.parse()?;
    let listener = ns.run(|| TcpListener::bind(addr))??;
    Ok(std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        s.write_all(banner.as_bytes())
    }))
}

/// Connects from inside `ns` and reads what the server writes.
fn fetch(ns: &Netns, to: &str) -> Result<String> {
    let addr: SocketAddr = to.parse()?;
    let mut s = ns.run(|| TcpStream::connect_timeout(&addr, TIMEOUT))??;
    s.set_read_timeout(Some(TIMEOUT))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
