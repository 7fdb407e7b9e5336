//! `berth daemon`: a controller behind a Docker-Engine-API-shaped HTTP server on a unix socket.
//!
//! hyper 1 (HTTP/1.1) on a tokio runtime that lives only inside the daemon; the blocking
//! controller runs on tokio's blocking pool. Bodies are capped at [`api::MAX_BODY_BYTES`], headers
//! must arrive within [`HEADER_TIMEOUT`] (also between requests on a kept-alive connection),
//! bodies within [`BODY_TIMEOUT`], and each response must be taken by its client within
//! [`WRITE_TIMEOUT`]; at most [`MAX_CONNECTIONS`] connections are served at once, so no client can
//! make the daemon die or hang. The socket is owned by root and the `--group` (dockerd's rule:
//! `docker` when it exists), mode 0660, from the moment it appears (see [`listen::bind`]).
//! SIGTERM and SIGINT stop the listener, let requests in flight finish, and leave networks,
//! sandboxes and rules in place for the next start to reconcile.

mod deadline;
mod listen;
mod plugins;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::{Controller, NetworkInspect};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::json;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use crate::api::{
    self, ApiError, NetworkCreateResponse, NetworkPruneResponse, Request, SandboxCreateResponse,
    SandboxSpec,
};
use crate::config::DaemonSettings;
use crate::error::{Error, Result};

/// How long a client may take to send its request headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request body.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to read a response (all of it, from its first byte); a connection
/// whose client takes longer is closed. Debug builds read `BERTH_TEST_WRITE_TIMEOUT_MS` instead,
/// for tests.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// How long a stop waits for requests in flight.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// The first wait before retrying what the start could not restore; it doubles after each
/// try that leaves something degraded, up to [`RETRY_LONGEST`].
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between two retries of degraded sandboxes.
const RETRY_LONGEST: Duration = Duration::from_secs(60);

type Body = Full<Bytes>;

struct State {
    ctl: Controller,
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
/// When the socket group does not exist, the socket is served by another daemon, the data root is
/// locked by another daemon, the controller cannot start, or the socket cannot be bound.
pub(crate) fn run(settings: DaemonSettings) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_max_level(settings.log_level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    for note in &settings.notes {
        tracing::warn!("{note}");
    }
    // Before anything is started or created: a group that does not exist stops the daemon here.
    let gid = listen::socket_gid(&settings.socket_group)?;
    let socket = settings.socket.clone();
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Err(Error::AlreadyServing { socket });
    }
    let started = Instant::now();
    let ctl = if settings.cluster.is_none() && settings.network_plugins.is_empty() {
        Controller::new(settings.config.clone())?
    } else {
        let host = match &settings.config.host_netns {
            Some(p) => berth_netlink::Netns::open(p),
            None => berth_netlink::Netns::current(),
        }
        .map_err(|e| Error::usage(format!("opening the host namespace: {e}")))?;
        let mut builder = Controller::builder(settings.config.clone());
        if let Some(cluster) = &settings.cluster {
            let (store, overlay) =
                crate::cluster::start(cluster, &host, settings.config.netns_dir())?;
            tracing::info!(store = ?cluster.endpoints, "cluster store connected; overlay networks on");
            // One lease for the host's keys: the overlay's peer entries and the controller's
            // endpoint marks and names (its time to live is the overlay's, from the same
            // `discovery.ttl`).
            builder = builder
                .cluster_store(store)
                .cluster_lease(overlay.host_lease())
                .driver_arc(overlay);
        }
        for name in &settings.network_plugins {
            builder = plugins::network_plugin(builder, name, &host, &settings.config)?;
        }
        builder.build()?
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        data_root = %settings.config.data_root.display(),
        host_netns = %settings.config.host_netns.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(own)".into()),
        "controller ready"
    );
    if settings.teardown {
        let report = ctl.teardown()?;
        for s in &report.sandboxes {
            println!("removed sandbox {s}");
        }
        for n in &report.networks {
            println!("removed network {n}");
        }
        for f in &report.firewall {
            println!("removed firewall {f}");
        }
        for r in &report.restored {
            println!("restored {r}");
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("berth-daemon")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the daemon's runtime", e))?;
    let state = Arc::new(State { ctl });
    let result = runtime.block_on(serve(state.clone(), socket.clone(), gid));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    drop(state);
    tracing::info!("stopped; networks, sandboxes and rules stay in place");
    result
}

/// Retries what the start could not restore (see [`Controller::retry_degraded`]) with a
/// doubling back-off, until nothing is degraded. Nothing becomes degraded after the start, so
/// the task then ends.
async fn retry_degraded(state: Arc<State>) {
    let mut wait = retry_first();
    loop {
        tokio::time::sleep(wait).await;
        let st = state.clone();
        let left = match tokio::task::spawn_blocking(move || st.ctl.retry_degraded()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "retrying degraded sandboxes");
                return;
            }
        };
        if left == 0 {
            return;
        }
        tracing::info!(
            degraded = left,
            next_in_s = wait.as_secs(),
            "sandboxes still degraded"
        );
        wait = (wait * 2).min(RETRY_LONGEST);
    }
}

/// [`RETRY_FIRST`], or in debug builds `BERTH_TEST_RETRY_MS` when set (for tests).
fn retry_first() -> Duration {
    test_override_ms("BERTH_TEST_RETRY_MS").unwrap_or(RETRY_FIRST)
}

/// [`WRITE_TIMEOUT`], or in debug builds `BERTH_TEST_WRITE_TIMEOUT_MS` when set (for tests).
fn write_timeout() -> Duration {
    test_override_ms("BERTH_TEST_WRITE_TIMEOUT_MS").unwrap_or(WRITE_TIMEOUT)
}

/// In debug builds, a duration in milliseconds from the environment variable `name` (tests
/// shorten the daemon's timers this way); never in release builds.
fn test_override_ms(name: &str) -> Option<Duration> {
    if cfg!(debug_assertions) {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    } else {
        None
    }
}

async fn serve(state: Arc<State>, socket: PathBuf, gid: nix::unistd::Gid) -> Result<()> {
    let listener = listen::bind(&socket, gid)?;
    let listener = UnixListener::from_std(listener)
        .map_err(|e| Error::io(format!("serving unix://{}", socket.display()), e))?;
    let write_limit = write_timeout();
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("installing a SIGINT handler", e))?;
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tracing::info!(socket = %socket.display(), "API listening on unix://{}", socket.display());
    tokio::spawn(retry_degraded(state.clone()));
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let st = state.clone();
        let service = hyper::service::service_fn(move |req| handle(st.clone(), req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(64 * 1024)
            .serve_connection(
                TokioIo::new(deadline::WriteDeadline::new(stream, write_limit)),
                service,
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed on an error");
            }
            drop(permit);
        });
    }
    tracing::info!("stopping: no new requests; waiting for requests in flight");
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    Ok(())
}

fn with_headers(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(api::API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

fn response(status: u16, content_type: Option<&'static str>, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    with_headers(r)
}

fn json_response<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            response(status, Some("application/json"), body)
        }
        Err(e) => error_response(&ApiError::new(500, format!("encoding the answer: {e}"))),
    }
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = response(e.status, Some("application/json"), e.body());
    if !e.allow.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&e.allow.join(", ")) {
            r.headers_mut().insert(header::ALLOW, v);
        }
    }
    r
}

async fn handle(
    state: Arc<State>,
    req: hyper::Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let resp = if declared_len.is_some_and(|n| n > api::MAX_BODY_BYTES as u64) {
        error_response(&too_large())
    } else {
        let limited = Limited::new(req.into_body(), api::MAX_BODY_BYTES);
        match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
            Err(_) => error_response(&ApiError::new(
                408,
                format!("the request body did not arrive within {BODY_TIMEOUT:?}"),
            )),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                error_response(&too_large())
            }
            Ok(Err(e)) => error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            ))),
            Ok(Ok(collected)) => {
                let body = collected.to_bytes();
                match api::decode(&method, &target, content_type.as_deref(), &body) {
                    Err(e) => error_response(&e),
                    Ok(request) => execute(&state, request).await,
                }
            }
        }
    };
    tracing::debug!(
        method = %method,
        target = %target,
        status = resp.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(resp)
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        format!(
            "request body larger than {} bytes: send a smaller request",
            api::MAX_BODY_BYTES
        ),
    )
}

/// Runs a blocking controller call on tokio's blocking pool.
async fn blocking<T, F>(state: &Arc<State>, f: F) -> std::result::Result<T, ApiError>
where
    F: FnOnce(&Controller) -> std::result::Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let st = state.clone();
    match tokio::task::spawn_blocking(move || f(&st.ctl)).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::new(
            500,
            format!("internal error: the operation did not complete ({e}); please report it"),
        )),
    }
}

/// The HTTP status of a controller error (Docker's where Docker has one).
pub fn status_of(e: &berth::Error) -> u16 {
    use berth::Error as E;
    match e {
        E::NetworkNotFound(_) | E::SandboxNotFound(_) | E::DriverNotFound(_) => 404,
        E::NetworkExists(_) | E::SandboxExists { .. } | E::Degraded { .. } => 409,
        E::AlreadyConnected { .. }
        | E::PredefinedNetwork(_)
        | E::ActiveEndpoints { .. }
        | E::NotConnected { .. }
        | E::NoClusterStore => 403,
        E::NetworkAmbiguous(_) | E::InvalidRequest(_) => 400,
        E::MissingPrivileges { .. } => 500,
        E::Ipam(ie) => {
            use berth_ipam::Error as I;
            match ie {
                I::PoolOverlap { .. }
                | I::NoAvailablePool { .. }
                | I::NoAvailableAddresses { .. }
                | I::NoDefaultPools { .. } => 403,
                I::AddressInUse { .. } => 409,
                I::UnknownPool { .. }
                | I::AddressNotAllocated { .. }
                | I::AuxAddressRelease { .. } => 500,
                _ => 400,
            }
        }
        E::Driver(de) => {
            use berth_driver::DriverError as D;
            match de {
                D::UnknownOption { .. }
                | D::InvalidOption { .. }
                | D::InvalidConfig(_)
                | D::Unsupported { .. } => 400,
                D::Exists(_) => 409,
                D::PortMapping(inner) => match inner.downcast_ref::<berth_portmap::Error>() {
                    Some(
                        berth_portmap::Error::PortAllocated { .. }
                        | berth_portmap::Error::AddressInUse { .. }
                        | berth_portmap::Error::NoFreePort { .. },
                    ) => 409,
                    Some(
                        berth_portmap::Error::InvalidSpec { .. }
                        | berth_portmap::Error::Unsupported { .. },
                    ) => 400,
                    _ => 500,
                },
                _ => 500,
            }
        }
        _ => 500,
    }
}

fn ctl_err(e: berth::Error) -> ApiError {
    match &e {
        // Docker's words at Docker's API (the library says what an embedder can do about it).
        berth::Error::DriverNotFound(name) => {
            ApiError::new(status_of(&e), format!("plugin \"{name}\" not found"))
        }
        _ => ApiError::new(status_of(&e), e.to_string()),
    }
}

/// On Docker's endpoints a missing sandbox is a missing container, with Docker's message.
fn docker_ctl_err(e: berth::Error) -> ApiError {
    match e {
        berth::Error::SandboxNotFound(name) => {
            ApiError::not_found(format!("No such container: {name}"))
        }
        other => ctl_err(other),
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A field of the machine's os-release file (`/etc/os-release`, else `/usr/lib/os-release`).
fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The machine's memory in bytes (`/proc/meminfo`'s MemTotal), 0 when unreadable.
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn version_body() -> serde_json::Value {
    let version = env!("CARGO_PKG_VERSION");
    let kernel = kernel_release();
    json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": version,
            "Details": {
                "ApiVersion": api::API_VERSION,
                "MinAPIVersion": api::MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel,
                "Experimental": "false",
            }
        }],
        "Version": version,
        "ApiVersion": api::API_VERSION,
        "MinAPIVersion": api::MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

/// `GET /info`: what applies to a networking daemon, in the shape of Docker's `SystemInfo` (the
/// docker CLI's `docker info` and tools that call it at start-up read it): name, id, version,
/// the network drivers, forwarding and bridge-netfilter state, the firewall backend, the default
/// address pools.
fn info_body(ctl: &berth::Controller) -> serde_json::Value {
    let cfg = ctl.config();
    let sysctl = |name: &str| {
        berth_netlink::sysctl_get(ctl.host_netns(), name).is_ok_and(|v| v.trim() == "1")
    };
    let pools: Vec<serde_json::Value> = match &cfg.default_address_pools {
        Some(pools) => pools
            .iter()
            .map(|p| json!({"Base": p.base().to_string(), "Size": p.size()}))
            .collect(),
        None => berth_ipam::DefaultPool::docker_local_defaults()
            .iter()
            .map(|p| json!({"Base": p.base().to_string(), "Size": p.size()}))
            .collect(),
    };
    let name = nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "ID": ctl.instance_id(),
        "Name": name,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "OperatingSystem": os_release("PRETTY_NAME").unwrap_or_else(|| "linux".into()),
        "OSVersion": os_release("VERSION_ID").unwrap_or_default(),
        "OSType": "linux",
        // As Docker's info: the kernel's machine name (its /version says GOARCH).
        "Architecture": nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default(),
        "KernelVersion": kernel_release(),
        "MemTotal": mem_total(),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "DockerRootDir": cfg.data_root.display().to_string(),
        "Driver": "",
        "Plugins": {"Volume": [], "Network": ctl.drivers(), "Authorization": null, "Log": []},
        "IPv4Forwarding": sysctl("net.ipv4.ip_forward"),
        "BridgeNfIptables": sysctl("net.bridge.bridge-nf-call-iptables"),
        "BridgeNfIp6tables": sysctl("net.bridge.bridge-nf-call-ip6tables"),
        "FirewallBackend": {"Driver": match cfg.firewall {
            Some(berth::FirewallBackend::Iptables) => "iptables",
            Some(berth::FirewallBackend::Nftables) => "nftables",
            None => "",
        }},
        "DefaultAddressPools": pools,
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": false},
        "SecurityOptions": [],
        "Warnings": null,
    })
}

/// What a sandbox create asks for that the controller cannot do yet: one message naming each.
async fn execute(state: &Arc<State>, request: Request) -> Response<Body> {
    let result: std::result::Result<Response<Body>, ApiError> = match request {
        Request::Ping { head } => {
            let mut r = response(
                200,
                Some("text/plain; charset=utf-8"),
                if head { Vec::new() } else { b"OK".to_vec() },
            );
            let h = r.headers_mut();
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            Ok(r)
        }
        Request::Version => Ok(json_response(200, &version_body())),
        Request::Info => blocking(state, move |ctl| Ok(json_response(200, &info_body(ctl)))).await,
        Request::ListNetworks(filters) => {
            blocking(state, move |ctl| {
                let nets = filters.apply(ctl.networks());
                Ok(json_response(200, &nets))
            })
            .await
        }
        Request::InspectNetwork { id, scope } => {
            blocking(state, move |ctl| {
                let net = ctl.inspect_network(&id).map_err(ctl_err)?;
                if scope.as_deref().is_some_and(|s| s != net.scope) {
                    return Err(ApiError::not_found(format!("network {id} not found")));
                }
                Ok(json_response(200, &net))
            })
            .await
        }
        Request::CreateNetwork(req, api::CheckDuplicate(checked)) => {
            blocking(state, move |ctl| {
                let (id, warnings) = ctl
                    .create_network_with_warnings(req)
                    .map_err(|e| match e {
                        berth::Error::NetworkExists(name) if !checked => ApiError::new(
                            409,
                            format!("network with name {name} already exists: berth keeps network names unique, also for a create without CheckDuplicate"),
                        ),
                        other => ctl_err(other),
                    })?;
                Ok(json_response(
                    201,
                    &NetworkCreateResponse {
                        id: id.to_string(),
                        warning: warnings.join("; "),
                    },
                ))
            })
            .await
        }
        Request::Connect {
            network,
            container,
            options,
        } => {
            blocking(state, move |ctl| {
                ctl.connect(&container, &network, options)
                    .map_err(docker_ctl_err)?;
                Ok(response(200, None, Vec::new()))
            })
            .await
        }
        Request::Disconnect {
            network,
            container,
            force,
        } => {
            blocking(state, move |ctl| {
                if !force {
                    ctl.disconnect(&container, &network)
                        .map_err(docker_ctl_err)?;
                    return Ok(response(200, None, Vec::new()));
                }
                // Docker's forced disconnect looks the network up first, then the endpoint by
                // the container's name (which may be gone): its messages say so.
                ctl.inspect_network(&network).map_err(ctl_err)?;
                ctl.disconnect(&container, &network).map_err(|e| match e {
                    berth::Error::SandboxNotFound(name) => {
                        ApiError::not_found(format!("endpoint {name} not found"))
                    }
                    other => ctl_err(other),
                })?;
                Ok(response(200, None, Vec::new()))
            })
            .await
        }
        Request::RemoveNetwork { id } => {
            blocking(state, move |ctl| {
                ctl.remove_network(&id).map_err(ctl_err)?;
                Ok(response(204, None, Vec::new()))
            })
            .await
        }
        Request::PruneNetworks(filters) => {
            blocking(state, move |ctl| {
                let removed = if filters.is_empty() {
                    ctl.prune_networks().map_err(ctl_err)?
                } else {
                    prune_filtered(ctl, &filters)?
                };
                let deleted = NetworkPruneResponse {
                    networks_deleted: (!removed.is_empty()).then_some(removed),
                };
                Ok(json_response(200, &deleted))
            })
            .await
        }
        Request::CreateSandbox(spec) => {
            blocking(state, move |ctl| create_sandbox(ctl, *spec)).await
        }
        Request::ListSandboxes => {
            blocking(state, move |ctl| Ok(json_response(200, &ctl.sandboxes()))).await
        }
        Request::InspectSandbox { id } => {
            blocking(state, move |ctl| {
                let sb = ctl.inspect_sandbox(&id).map_err(ctl_err)?;
                Ok(json_response(200, &sb))
            })
            .await
        }
        Request::RenameSandbox { id, name } => {
            blocking(state, move |ctl| {
                ctl.rename_sandbox(&id, &name).map_err(ctl_err)?;
                Ok(response(204, None, Vec::new()))
            })
            .await
        }
        Request::RemoveSandbox { id } => {
            blocking(state, move |ctl| {
                ctl.remove_sandbox(&id).map_err(ctl_err)?;
                Ok(response(204, None, Vec::new()))
            })
            .await
        }
        Request::ReconcileFirewall => {
            blocking(state, move |ctl| {
                let report = ctl.reconcile_firewall().map_err(ctl_err)?;
                Ok(json_response(
                    200,
                    &serde_json::json!({
                        "Clean": report.is_clean(),
                        "Structure": report.structure,
                        "Missing": report.missing,
                        "Unexpected": report.unexpected,
                    }),
                ))
            })
            .await
        }
    };
    match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn prune_filtered(
    ctl: &Controller,
    filters: &api::PruneFilters,
) -> std::result::Result<Vec<String>, ApiError> {
    let candidates: Vec<NetworkInspect> = ctl
        .networks()
        .into_iter()
        .filter(|n| !berth::PREDEFINED_NETWORKS.contains(&n.name.as_str()))
        .filter(|n| n.containers.is_empty())
        .filter(|n| filters.keeps(n))
        .collect();
    let mut removed = Vec::new();
    for n in candidates {
        match ctl.remove_network(&n.id) {
            Ok(()) => removed.push(n.name),
            Err(berth::Error::ActiveEndpoints { .. } | berth::Error::NetworkNotFound(_)) => {}
            Err(e) => return Err(ctl_err(e)),
        }
    }
    removed.sort();
    Ok(removed)
}

fn create_sandbox(
    ctl: &Controller,
    spec: SandboxSpec,
) -> std::result::Result<Response<Body>, ApiError> {
    // The controller connects the new sandbox to its network and removes it again if that fails.
    let id = ctl.create_sandbox(spec.create).map_err(ctl_err)?;
    Ok(json_response(
        201,
        &SandboxCreateResponse {
            id: id.to_string(),
            warnings: Vec::new(),
        },
    ))
}
