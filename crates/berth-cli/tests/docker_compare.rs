//! The stock docker CLI against berth and against a real Docker 20.10 engine, compared (issue 20):
//! every docker client on the machine (the one on PATH and Debian's 20.10) runs the same network,
//! version and info commands against a berth daemon and against Debian's dockerd, each in its own
//! test namespace; exit codes, stdout (after normalising what legitimately differs: ids, dates,
//! the subnets the engines chose themselves), stderr's message and inspect's JSON keys must agree,
//! except for the few intended differences in [`INTENDED`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::LazyLock;
use std::time::Instant;

use berth_testhost::refdocker::RefDocker;
use common::{Fixture, docker_clients};
use regex::Regex;
use serde_json::Value;

/// How a case's outputs are compared. Every kind compares the exit codes and stderr's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Normalised stdout, byte for byte.
    Text,
    /// Normalised stdout byte for byte, and stdout's JSON key paths (reported by path).
    Json,
    /// `network prune`: normalised stdout with the names under "Deleted Networks:" sorted
    /// (Docker lists them in its map's order, which changes from run to run).
    Prune,
    /// `version --format {{json .Server}}`: key paths, and the values the API is about.
    Version,
    /// Plain `version`: the labels of the lines of the server's Engine part.
    VersionText,
    /// `info --format {{json .}}`: the keys that apply to a networking daemon.
    Info,
    /// Plain `info`: nothing more (its lines are the engine's container inventory).
    ExitOnly,
}

/// One docker command. `{idN:NAME}` in an argument is the first N characters of the id of the
/// network NAME on the daemon the command goes to.
struct Case {
    kind: Kind,
    args: &'static [&'static str],
}

const fn c(kind: Kind, args: &'static [&'static str]) -> Case {
    Case { kind, args }
}

use Kind::{ExitOnly, Info, Json, Prune, Text, Version, VersionText};

/// The commands, in order. Both daemons start empty (their predefined networks only) and end
/// so, so the list runs again for the next client.
#[rustfmt::skip]
const CASES: &[Case] = &[
    c(Text, &["network", "ls"]),
    // Create, with every option and IPAM flag.
    c(Text, &["network", "create", "--driver", "bridge", "--subnet", "10.61.0.0/16",
        "--ip-range", "10.61.1.0/24", "--gateway", "10.61.0.254", "--aux-address", "a=10.61.0.5",
        "--aux-address", "b=10.61.0.6", "--label", "l1=v1", "--label", "l2",
        "-o", "com.docker.network.bridge.name=cmpfull0",
        "-o", "com.docker.network.bridge.enable_icc=false",
        "-o", "com.docker.network.driver.mtu=1400",
        "-o", "com.docker.network.container_iface_prefix=eth",
        "-o", "com.example.vendor=x",
        "--internal", "--attachable", "--scope", "local", "full"]),
    c(Text, &["network", "create", "--ipv6", "--subnet", "fd00:1::/64", "v6"]),
    c(Text, &["network", "create", "--ipv6", "--subnet", "10.67.0.0/24", "--gateway", "10.67.0.1",
        "--subnet", "fd00:2::/64", "--ip-range", "fd00:2::/80", "--gateway", "fd00:2::1", "dual"]),
    c(Text, &["network", "create", "--subnet", "10.63.0.5/24", "hostbits"]),
    c(Text, &["network", "create", "--label", "solo=1",
        "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
        "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", "plain"]),
    // Refused creates.
    c(Text, &["network", "create", "--subnet", "10.62.0.0/31", "n31"]),
    c(Text, &["network", "create", "--subnet", "10.62.0.0/32", "n32"]),
    c(Text, &["network", "create", "full"]),
    c(Text, &["network", "create", "--subnet", "10.61.5.0/24", "overlap"]),
    c(Text, &["network", "create", "--ip-range", "10.64.0.0/24", "norange"]),
    c(Text, &["network", "create", "--subnet", "10.65.0.0/24", "--gateway", "10.66.0.1", "badgw"]),
    c(Text, &["network", "create", "--ipv6", "v6auto"]),
    c(Text, &["network", "create", "-o", "com.docker.network.driver.mtu=abc", "badmtu"]),
    c(Text, &["network", "create", "-o", "com.docker.network.bridge.enable_icc=maybe", "badicc"]),
    c(Text, &["network", "create", "-o", "com.docker.network.bridge.name=averyveryverylongname",
        "longbr"]),
    c(Text, &["network", "create", "-d", "host", "host2"]),
    c(Text, &["network", "create", "-d", "null", "null2"]),
    c(Text, &["network", "create", "--scope", "swarm", "swarmnet"]),
    c(Text, &["network", "create", "--ingress", "ingressnet"]),
    c(Text, &["network", "create", "-d", "overlay", "overlaynet"]),
    c(Text, &["network", "create", "--config-only", "configonly"]),
    c(Text, &["network", "rm", "configonly"]),
    c(Text, &["network", "create", "--subnet", "fd00:3::/64", "v6noflag"]),
    c(Text, &["network", "rm", "v6noflag"]),
    // ls: every filter and format.
    c(Text, &["network", "ls"]),
    c(Text, &["network", "ls", "-q"]),
    c(Text, &["network", "ls", "--no-trunc"]),
    c(Text, &["network", "ls", "-q", "--no-trunc", "--filter", "type=builtin"]),
    c(Text, &["network", "ls", "--filter", "driver=bridge"]),
    c(Text, &["network", "ls", "--filter", "driver=null"]),
    c(Text, &["network", "ls", "--filter", "id={id5:full}"]),
    c(Text, &["network", "ls", "--filter", "id={id12:dual}", "--no-trunc"]),
    c(Text, &["network", "ls", "--filter", "label=l1"]),
    c(Text, &["network", "ls", "--filter", "label=l1=v1"]),
    c(Text, &["network", "ls", "--filter", "label=l1=nope"]),
    c(Text, &["network", "ls", "--filter", "name=ful"]),
    c(Text, &["network", "ls", "--filter", "name=v6", "--filter", "name=plain"]),
    c(Text, &["network", "ls", "--filter", "scope=local"]),
    c(Text, &["network", "ls", "--filter", "scope=swarm"]),
    c(Text, &["network", "ls", "--filter", "type=custom"]),
    c(Text, &["network", "ls", "--filter", "type=builtin"]),
    c(Text, &["network", "ls", "--filter", "dangling=true"]),
    c(Text, &["network", "ls", "--filter", "dangling=0"]),
    c(Text, &["network", "ls", "--filter", "driver=bridge", "--filter", "label=solo"]),
    c(Text, &["network", "ls", "--filter", "dangling=maybe"]),
    c(Text, &["network", "ls", "--filter", "type=bogus"]),
    c(Text, &["network", "ls", "--filter", "foo=bar"]),
    // Labels: only networks with one label (the CLI joins several in its map's random order).
    c(Text, &["network", "ls", "--filter", "label=solo", "--format",
        "{{.ID}}|{{.Name}}|{{.Driver}}|{{.Scope}}|{{.IPv6}}|{{.Internal}}|{{.Labels}}|{{.CreatedAt}}"]),
    c(Text, &["network", "ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.IPv6}}\t{{.Internal}}"]),
    c(Text, &["network", "ls", "--format", "table"]),
    c(Text, &["network", "ls", "--filter", "label=solo", "--format", "json"]),
    c(Text, &["network", "ls", "--filter", "label=solo", "--format", "{{json .}}"]),
    c(Text, &["network", "ls", "--format", "{{.Label \"l1\"}}|{{.Name}}"]),
    c(Text, &["network", "ls", "--format", "{{.Bogus}}"]),
    // inspect, with and without -f.
    c(Json, &["network", "inspect", "full"]),
    c(Json, &["network", "inspect", "v6", "dual"]),
    c(Json, &["network", "inspect", "hostbits", "plain"]),
    c(Json, &["network", "inspect", "bridge", "none", "host"]),
    c(Json, &["network", "inspect", "{id12:full}"]),
    c(Json, &["network", "inspect", "--verbose", "full"]),
    c(Json, &["network", "inspect", "zzznosuch"]),
    c(Text, &["network", "inspect", "-f", "{{.Name}} {{.Id}} {{.Created}} {{.Driver}} {{.Scope}} \
        {{.EnableIPv6}} {{.Internal}} {{.Attachable}} {{.Ingress}} {{.Labels}} {{.Options}} \
        {{.IPAM.Driver}} {{.IPAM.Config}} {{.IPAM.Options}} {{.Containers}} {{.ConfigFrom}} \
        {{.ConfigOnly}} {{.Peers}} {{.Services}}", "full", "bridge", "dual"]),
    c(Text, &["network", "inspect", "-f", "{{json .}}", "v6"]),
    c(Text, &["network", "inspect", "--format", "{{json .IPAM}}", "plain", "hostbits"]),
    c(Text, &["network", "inspect", "-f", "{{.Name}}", "full", "zzznosuch"]),
    c(Text, &["network", "inspect", "-f", "{{.Nope}}", "full"]),
    // connect and disconnect: the errors that need no container.
    c(Text, &["network", "connect", "zzznosuchnet", "ghost"]),
    c(Text, &["network", "connect", "full", "ghost"]),
    c(Text, &["network", "connect", "--ip", "10.61.1.9", "--alias", "g", "full", "ghost"]),
    c(Text, &["network", "connect", "--ip", "notanip", "full", "ghost"]),
    c(Text, &["network", "connect", "host", "ghost"]),
    c(Text, &["network", "disconnect", "zzznosuchnet", "ghost"]),
    c(Text, &["network", "disconnect", "full", "ghost"]),
    c(Text, &["network", "disconnect", "-f", "zzznosuchnet", "ghost"]),
    c(Text, &["network", "disconnect", "-f", "full", "ghost"]),
    // rm: one, several, missing, predefined.
    c(Text, &["network", "rm", "hostbits"]),
    c(Text, &["network", "rm", "v6", "dual"]),
    c(Text, &["network", "rm", "zzznosuch"]),
    c(Text, &["network", "rm", "plain", "zzznosuch"]),
    c(Text, &["network", "rm", "bridge"]),
    c(Text, &["network", "rm", "none", "host"]),
    // prune, with filters.
    c(Text, &["network", "create", "--label", "keep=1", "p1"]),
    c(Text, &["network", "create", "--label", "keep=2", "p2"]),
    c(Text, &["network", "create", "p3"]),
    c(Prune, &["network", "prune", "-f", "--filter", "until=1h"]),
    c(Prune, &["network", "prune", "-f", "--filter", "label=keep=1"]),
    c(Prune, &["network", "prune", "-f", "--filter", "label!=keep=2"]),
    c(Prune, &["network", "prune", "-f", "--filter", "bogus=1"]),
    c(Prune, &["network", "prune", "-f", "--filter", "until=notatime"]),
    c(Prune, &["network", "prune", "-f"]),
    c(Text, &["network", "ls"]),
    // version and info.
    c(Text, &["version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}"]),
    c(Version, &["version", "--format", "{{json .Server}}"]),
    c(VersionText, &["version"]),
    c(Info, &["info", "--format", "{{json .}}"]),
    c(ExitOnly, &["info"]),
    // Docker's default IPAM keeps options it does not use and shows them in inspect.
    c(Text, &["network", "create", "--ipam-opt", "foo=bar", "ipamopt"]),
    c(Json, &["network", "inspect", "ipamopt"]),
    c(Text, &["network", "rm", "ipamopt"]),
    // `info`'s Architecture is the kernel's (x86_64; `version`'s Arch is Go's, amd64), its
    // OperatingSystem and OSVersion /etc/os-release's PRETTY_NAME and VERSION_ID.
    c(Text, &["info", "--format", "{{.Architecture}}|{{.OperatingSystem}}|{{.OSVersion}}"]),
];

/// Cases Docker takes 15 s to answer (it looks an unknown plugin up again and again before it
/// gives up): they run in threads of their own while the others run, and change nothing.
#[rustfmt::skip]
const SLOW_CASES: &[Case] = &[
    c(Text, &["network", "create", "-d", "nosuchdriver", "nodrv"]),
    c(Text, &["network", "create", "--ipam-driver", "nosuchipam", "noipam"]),
];

/// What may differ in an intended difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diff {
    /// Same exit code (and stdout); stderr says it in berth's words.
    Stderr,
    /// One engine refuses what the other accepts: exit code, stdout and stderr.
    Outcome,
    /// These JSON key paths are in Docker's answer and not in berth's, or the reverse.
    Keys(&'static [&'static str]),
}

/// The intended differences: the cases (their arguments joined with spaces) and what may differ.
const INTENDED: &[(&[&str], Diff)] = &[
    // berth's error texts where the exit code matches Docker's: they name the value, the rule
    // and the way out. Docker answers these with its parser's words (and HTTP 500 where berth
    // answers 400 for an invalid option value; `connect --ip notanip` gets 400 from berth, which
    // checks the request before it looks the container up, where Docker's 404 is for the
    // missing container).
    (
        &[
            "network create -o com.docker.network.driver.mtu=abc badmtu",
            "network create -o com.docker.network.bridge.enable_icc=maybe badicc",
            "network create -o com.docker.network.bridge.name=averyveryverylongname longbr",
            "network create --ipv6 v6auto",
            "network ls --filter dangling=maybe",
            "network prune -f --filter until=notatime",
            "network connect --ip notanip full ghost",
        ],
        Diff::Stderr,
    ),
    // Swarm mode is not berth's: a swarm-scoped, ingress or overlay network is refused (as
    // Docker refuses it without a swarm) saying what berth supports.
    (
        &[
            "network create --scope swarm swarmnet",
            "network create --ingress ingressnet",
            "network create -d overlay overlaynet",
        ],
        Diff::Stderr,
    ),
    // Config-only networks (templates for `--config-from`, used with swarm services) are not
    // supported: refused at create, so the rm that follows finds nothing.
    (
        &[
            "network create --config-only configonly",
            "network rm configonly",
        ],
        Diff::Outcome,
    ),
    // An IPv6 subnet on a network without --ipv6 is refused: Docker 20.10 keeps it and gives
    // no endpoint an IPv6 address from it, which is never what the user meant.
    (
        &[
            "network create --subnet fd00:3::/64 v6noflag",
            "network rm v6noflag",
        ],
        Diff::Outcome,
    ),
    // berth is not a Go program and is built with no build stamp: its Engine component has no
    // GoVersion, GitCommit or BuildTime details, and no BuildTime (the CLI drops it when empty).
    (
        &["version --format {{json .Server}}"],
        Diff::Keys(&[
            "BuildTime",
            "Components[].Details.BuildTime",
            "Components[].Details.GitCommit",
            "Components[].Details.GoVersion",
        ]),
    ),
    // berth runs no containers and says so (no memory, swap, cpu or oom-kill support): the
    // 20.10 client prints a WARNING line for each on stderr. Exit code 0 as Docker's.
    (&["info"], Diff::Stderr),
];

/// Key paths of `docker info` whose values must be the same on both engines (same machine).
#[rustfmt::skip]
const INFO_SAME: &[&str] = &[
    "Name", "KernelVersion", "OSType", "NCPU", "IPv4Forwarding", "Containers", "ContainersRunning",
    "ContainersPaused", "ContainersStopped", "Images", "Debug", "ExperimentalBuild",
    "LiveRestoreEnabled", "Swarm.LocalNodeState", "Swarm.ControlAvailable",
];

/// Key paths of `docker info` that must be non-empty strings on both engines.
const INFO_PRESENT: &[&str] = &[
    "ID",
    "Name",
    "ServerVersion",
    "DockerRootDir",
    "KernelVersion",
];

/// Key paths of `docker version`'s server part whose values must be the same on both engines.
#[rustfmt::skip]
const VERSION_SAME: &[&str] = &[
    "ApiVersion", "MinAPIVersion", "Os", "Arch", "KernelVersion", "Components[0].Name",
    "Components[0].Details.ApiVersion", "Components[0].Details.MinAPIVersion",
    "Components[0].Details.Os", "Components[0].Details.Arch",
    "Components[0].Details.KernelVersion", "Components[0].Details.Experimental",
];

/// Docker's and berth's addresses and client configuration directories.
fn engines(reference: &RefDocker, berth: &Fixture) -> [(String, PathBuf); 2] {
    [
        (reference.host_arg(), reference.dir().join("client-config")),
        (berth.host_arg(), berth.dir.path().join("docker-config")),
    ]
}

#[test]
fn docker_cli_against_berth_and_docker_20_10() {
    let started = Instant::now();
    let reference = RefDocker::start().expect("Debian's dockerd in a test host (run as root)");
    let berth = Fixture::new();
    let mut run = Comparison::default();
    let clients = docker_clients();
    let engines = engines(&reference, &berth);
    std::thread::scope(|scope| {
        let mut slow = Vec::new();
        for client in &clients {
            for case in SLOW_CASES {
                let args: Vec<String> = case.args.iter().map(|a| (*a).to_owned()).collect();
                let engines = &engines;
                slow.push((
                    client,
                    case,
                    scope
                        .spawn(move || engines.clone().map(|(h, c)| docker(client, &h, &c, &args))),
                ));
            }
        }
        let mut pairs = Vec::new();
        for client in &clients {
            let mut pair = Pair::new(client, &engines);
            for case in CASES {
                pair.run(case, &mut run);
            }
            pairs.push(pair);
        }
        for (client, case, thread) in slow {
            let [d, b] = thread.join().unwrap();
            let pair = pairs.iter().find(|p| p.client == client.as_path()).unwrap();
            pair.judge(case, &d, &b, &mut run);
        }
    });
    for (i, (cases, diff)) in INTENDED.iter().enumerate() {
        if !run.used.contains(&i) {
            run.failures.push(format!(
                "allow-list entry {i} ({diff:?} for {cases:?}) matched no difference: remove it"
            ));
        }
    }
    assert!(
        run.failures.is_empty(),
        "{} difference(s) between berth and Docker 20.10:\n\n{}\n\nberth's log:\n{}",
        run.failures.len(),
        run.failures.join("\n\n"),
        berth.log()
    );
    let took = started.elapsed();
    assert!(took.as_secs() < 50, "the comparison took {took:?}");
}

/// What a whole run found.
#[derive(Default)]
struct Comparison {
    failures: Vec<String>,
    /// The allow-list entries that matched a difference.
    used: BTreeSet<usize>,
}

/// One engine as the comparison sees it: where it listens and the ids of its networks.
struct Engine {
    host_arg: String,
    config: PathBuf,
    /// Full network id -> name, of every network seen (ids are never reused).
    names: BTreeMap<String, String>,
    /// Name -> full id, of the networks there now.
    ids: BTreeMap<String, String>,
}

/// One docker client against both engines.
struct Pair<'a> {
    client: &'a Path,
    tag: String,
    docker: Engine,
    berth: Engine,
}

impl<'a> Pair<'a> {
    /// The engines' addresses and client configuration directories: Docker's, then berth's.
    fn new(client: &'a Path, engines: &[(String, PathBuf); 2]) -> Pair<'a> {
        let engine = |(host_arg, config): &(String, PathBuf)| Engine {
            host_arg: host_arg.clone(),
            config: config.clone(),
            names: BTreeMap::new(),
            ids: BTreeMap::new(),
        };
        let mut pair = Pair {
            client,
            tag: client.display().to_string(),
            docker: engine(&engines[0]),
            berth: engine(&engines[1]),
        };
        pair.refresh_ids();
        pair
    }

    fn docker(&self, engine: &Engine, args: &[String]) -> Output {
        docker(self.client, &engine.host_arg, &engine.config, args)
    }

    /// Learns the ids of the networks on both engines now.
    fn refresh_ids(&mut self) {
        let args = [
            "network",
            "ls",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Name}}",
        ];
        for engine in [&mut self.docker, &mut self.berth] {
            let out = docker(
                self.client,
                &engine.host_arg,
                &engine.config,
                &args.map(String::from),
            );
            assert!(out.status.success(), "{}: network ls: {out:?}", self.tag);
            engine.ids.clear();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let (id, name) = line.split_once(' ').unwrap();
                engine.ids.insert(name.to_owned(), id.to_owned());
                engine.names.insert(id.to_owned(), name.to_owned());
            }
        }
    }

    /// Runs one case against both engines and records what differs.
    fn run(&mut self, case: &Case, run: &mut Comparison) {
        let d = self.docker(&self.docker, &expand(case.args, &self.docker.ids));
        let b = self.docker(&self.berth, &expand(case.args, &self.berth.ids));
        if case.args.get(1) == Some(&"create") {
            self.refresh_ids();
        }
        self.judge(case, &d, &b, run);
    }

    /// Compares one case's outputs (Docker's, berth's) and records what differs.
    fn judge(&self, case: &Case, d: &Output, b: &Output, run: &mut Comparison) {
        let sides = Sides {
            out: [
                normalise(&String::from_utf8_lossy(&d.stdout), &self.docker.names),
                normalise(&String::from_utf8_lossy(&b.stdout), &self.berth.names),
            ],
            err: [
                normalise(&String::from_utf8_lossy(&d.stderr), &self.docker.names),
                normalise(&String::from_utf8_lossy(&b.stderr), &self.berth.names),
            ],
            code: [d.status.code(), b.status.code()],
        };
        let name = case.args.join(" ");
        let mut allowed = |diff: Diff| {
            let hit = INTENDED
                .iter()
                .position(|(cases, d)| *d == diff && cases.contains(&name.as_str()));
            if let Some(i) = hit {
                run.used.insert(i);
            }
            hit.is_some()
        };
        let mut found = Vec::new();
        if sides.code[0] != sides.code[1] {
            if !allowed(Diff::Outcome) {
                found.push(format!(
                    "exit code {:?} (Docker) vs {:?} (berth)",
                    sides.code[0], sides.code[1]
                ));
            }
        } else {
            found.extend(compare_stdout(case.kind, &sides, &mut allowed));
            if !stderr_gist_matches(&sides.err[0], &sides.err[1]) && !allowed(Diff::Stderr) {
                found.push("stderr's message differs".into());
            }
        }
        if !found.is_empty() {
            run.failures.push(format!(
                "[{}] docker {name}\n  {}\n  --- Docker (exit {:?}):\n{}{}  --- berth (exit {:?}):\n{}{}",
                self.tag,
                found.join("\n  "),
                sides.code[0],
                indent(&sides.out[0]),
                indent(&sides.err[0]),
                sides.code[1],
                indent(&sides.out[1]),
                indent(&sides.err[1]),
            ));
        }
    }
}

/// Runs the docker client `client` with `args` against the engine at `host_arg`.
fn docker(client: &Path, host_arg: &str, config: &Path, args: &[String]) -> Output {
    std::process::Command::new(client)
        .args(args)
        .env("DOCKER_HOST", host_arg)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Both engines' normalised outputs: index 0 is Docker's, 1 berth's.
struct Sides {
    out: [String; 2],
    err: [String; 2],
    code: [Option<i32>; 2],
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    | {l}\n")).collect()
}

/// The case's arguments with `{idN:NAME}` replaced by the engine's id of NAME (its first N
/// characters).
fn expand(args: &[&str], ids: &BTreeMap<String, String>) -> Vec<String> {
    args.iter()
        .map(|a| {
            let Some(inner) = a.strip_prefix("{id").and_then(|a| a.strip_suffix('}')) else {
                return (*a).to_owned();
            };
            let (n, name) = inner.split_once(':').unwrap();
            let id = ids
                .get(name)
                .unwrap_or_else(|| panic!("no network {name} for {a}"));
            id[..n.parse::<usize>().unwrap()].to_owned()
        })
        .collect()
}

static TIMES: LazyLock<[Regex; 2]> = LazyLock::new(|| {
    [
        // RFC 3339 as Go's JSON writes it: no trailing zero in the fraction (so a berth that
        // printed one would not match and would show).
        Regex::new(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)").unwrap(),
        // Go's time.String(), as the CLI prints CreatedAt.
        Regex::new(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d*[1-9])? [+-]\d{4} ([A-Z]{2,5}|[+-]\d\d(\d\d)?)\b")
            .unwrap(),
    ]
});

/// The subnets (and their addresses) the engines pick themselves from Docker's local default
/// pools, other than the default bridge's 172.17.0.0/16: Docker 20.10 moves on to the next pool
/// after a network is removed, berth takes the first free one. The cases give their own subnets
/// outside these pools.
static AUTO_SUBNET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(172\.(1[89]|2\d|3[01])|192\.168)\.\d{1,3}\.\d{1,3}(/\d{1,2})?\b").unwrap()
});

/// What legitimately differs between the engines, made equal: the ids of the networks (full and
/// short, replaced by `<id:NAME>`), creation times, and the subnets chosen from the pools.
fn normalise(text: &str, names: &BTreeMap<String, String>) -> String {
    let mut s = text.to_owned();
    for (id, name) in names {
        s = s.replace(id.as_str(), &format!("<id:{name}>"));
        s = s.replace(&id[..12], &format!("<id:{name}>"));
    }
    for re in TIMES.iter() {
        s = re.replace_all(&s, "<time>").into_owned();
    }
    AUTO_SUBNET
        .replace_all(&s, |c: &regex::Captures<'_>| {
            if c.get(3).is_some() {
                "<auto-subnet>"
            } else {
                "<auto-address>"
            }
        })
        .into_owned()
}

/// Docker's message, line by line, is found in berth's: both with the client's `Error response
/// from daemon: ` or both without, and Docker's words within berth's line (which may say more
/// around them).
fn stderr_gist_matches(docker: &str, berth: &str) -> bool {
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (d, b) = (lines(docker), lines(berth));
    let same = |d: &str, b: &str| {
        let prefix = "Error response from daemon: ";
        match (d.strip_prefix(prefix), b.strip_prefix(prefix)) {
            (Some(d), Some(b)) => b.contains(d),
            (None, None) => b.contains(d),
            _ => false,
        }
    };
    d.len() == b.len() && d.iter().zip(&b).all(|(d, b)| same(d, b))
}

/// What differs on stdout, for the case's kind (the exit codes are equal).
fn compare_stdout(kind: Kind, s: &Sides, allowed: &mut impl FnMut(Diff) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    let json = |i: usize| -> Option<Value> { serde_json::from_str(&s.out[i]).ok() };
    match kind {
        Kind::Text | Kind::Json => {
            if kind == Kind::Json {
                match (json(0), json(1)) {
                    (Some(d), Some(b)) => found.extend(key_differences(&d, &b, allowed)),
                    _ => found.push("stdout is not JSON".into()),
                }
            }
            if s.out[0] != s.out[1] {
                found.push("stdout differs".into());
            }
        }
        Kind::Prune => {
            if sorted_prune(&s.out[0]) != sorted_prune(&s.out[1]) {
                found.push("stdout differs (names sorted)".into());
            }
        }
        Kind::Version => match (json(0), json(1)) {
            (Some(d), Some(b)) => {
                found.extend(key_differences(&d, &b, allowed));
                found.extend(value_differences(&d, &b, VERSION_SAME));
            }
            _ => found.push("stdout is not JSON".into()),
        },
        Kind::VersionText => {
            let (d, b) = (engine_labels(&s.out[0]), engine_labels(&s.out[1]));
            if d.is_empty() || d != b {
                found.push(format!(
                    "the Engine part's lines: {d:?} (Docker) vs {b:?} (berth)"
                ));
            }
        }
        Kind::Info => match (json(0), json(1)) {
            (Some(d), Some(b)) => found.extend(info_differences(&d, &b)),
            _ => found.push("stdout is not JSON".into()),
        },
        Kind::ExitOnly => {}
    }
    found
}

/// What differs in `docker info` among the keys that apply to a networking daemon.
fn info_differences(d: &Value, b: &Value) -> Vec<String> {
    let mut found = value_differences(d, b, INFO_SAME);
    for (who, v) in [("Docker", d), ("berth", b)] {
        for path in INFO_PRESENT {
            let text = lookup(v, path).and_then(Value::as_str);
            if text.is_none_or(str::is_empty) {
                found.push(format!("{who}'s {path} is not a non-empty string"));
            }
        }
    }
    let drivers = |v: &Value| -> BTreeSet<String> {
        let list = lookup(v, "Plugins.Network").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let (dd, bd) = (drivers(d), drivers(b));
    if !bd.contains("bridge") || !bd.is_subset(&dd) {
        found.push(format!(
            "Plugins.Network: berth's {bd:?} is not within Docker's {dd:?}"
        ));
    }
    found
}

/// Every key path of a JSON value: `A.B`, with `[]` for the elements of an array (the union of
/// their keys).
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn key_differences(d: &Value, b: &Value, allowed: &mut impl FnMut(Diff) -> bool) -> Vec<String> {
    let (mut dk, mut bk) = (BTreeSet::new(), BTreeSet::new());
    key_paths(d, "", &mut dk);
    key_paths(b, "", &mut bk);
    let differing: BTreeSet<&String> = dk.symmetric_difference(&bk).collect();
    if differing.is_empty() {
        return Vec::new();
    }
    let covers = |diff: &Diff| matches!(diff, Diff::Keys(keys) if differing.iter().all(|k| keys.contains(&k.as_str())));
    if INTENDED
        .iter()
        .any(|(_, diff)| covers(diff) && allowed(*diff))
    {
        return Vec::new();
    }
    vec![format!(
        "JSON keys only Docker has: {:?}; only berth has: {:?}",
        dk.difference(&bk).collect::<Vec<_>>(),
        bk.difference(&dk).collect::<Vec<_>>()
    )]
}

/// The value at a path such as `Swarm.LocalNodeState` or `Components[0].Name`.
fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(v, |v, part| match part.split_once('[') {
            Some((key, index)) => v
                .get(key)?
                .get(index.trim_end_matches(']').parse::<usize>().ok()?),
            None => v.get(part),
        })
}

fn value_differences(d: &Value, b: &Value, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| {
            let (dv, bv) = (lookup(d, p), lookup(b, p));
            (dv.is_none() || dv != bv).then(|| format!("{p}: {dv:?} (Docker) vs {bv:?} (berth)"))
        })
        .collect()
}

/// Prune's output with the deleted names sorted.
fn sorted_prune(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    if lines.first().is_some_and(|l| l == "Deleted Networks:") {
        let end = lines
            .iter()
            .position(String::is_empty)
            .unwrap_or(lines.len());
        lines[1..end].sort();
    }
    lines
}

/// The labels of the lines of the server's Engine part of plain `docker version`.
fn engine_labels(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("Server"))
        .skip(1)
        .skip_while(|l| l.trim() == "Engine:")
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_once(':').map(|(label, _)| label.trim().to_owned()))
        .collect()
}
