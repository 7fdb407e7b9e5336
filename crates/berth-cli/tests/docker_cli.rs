//! The stock docker CLI drives berth: `DOCKER_HOST=unix://.../berth.sock docker network
//! ls|create|inspect|connect|disconnect|rm|prune`, with every docker client binary on the machine
//! (the one on PATH and Debian's docker.io client), checked by output, exit codes and traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, docker_clients, stderr, stdout};
use serde_json::Value;

#[test]
fn docker_cli_network_verbs() {
    let f = Fixture::new();
    f.ok(&["sandbox", "create", "--name", "web", "--network", "none"]);
    f.ok(&["network", "disconnect", "none", "web"]);
    f.ok(&["sandbox", "create", "--name", "peer", "--network", "none"]);
    f.ok(&["network", "disconnect", "none", "peer"]);
    for docker in docker_clients() {
        let d = |args: &[&str]| f.docker(&docker, args);
        let ok = |args: &[&str]| {
            let o = d(args);
            assert!(
                o.status.success(),
                "{} {args:?} failed: {}\n{}\ndaemon log:\n{}",
                docker.display(),
                stdout(&o),
                stderr(&o),
                f.log()
            );
            stdout(&o)
        };
        let tag = docker.display().to_string();

        let ls = ok(&["network", "ls"]);
        assert!(
            ls.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
            "{tag}: {ls}"
        );
        for n in ["bridge", "host", "none"] {
            assert!(ls.contains(&format!(" {n} ")), "{tag}: {ls}");
        }
        let id = ok(&[
            "network",
            "create",
            "--subnet",
            "10.80.0.0/24",
            "--label",
            "by=docker",
            "dnet",
        ]);
        assert_eq!(id.trim().len(), 64, "{tag}: {id}");
        let inspect: Value = serde_json::from_str(&ok(&["network", "inspect", "dnet"])).unwrap();
        assert_eq!(inspect[0]["Name"], "dnet", "{tag}");
        assert_eq!(
            inspect[0]["IPAM"]["Config"][0]["Subnet"], "10.80.0.0/24",
            "{tag}"
        );
        assert_eq!(
            ok(&["network", "inspect", "-f", "{{.Name}} {{.Labels}}", "dnet"]),
            "dnet map[by:docker]\n",
            "{tag}"
        );
        assert_eq!(
            ok(&["network", "ls", "-q", "--filter", "label=by=docker"]),
            format!("{}\n", &id.trim()[..12]),
            "{tag}"
        );

        // connect (a container name means a berth sandbox), with --ip and --alias; traffic flows.
        assert_eq!(
            ok(&[
                "network",
                "connect",
                "--ip",
                "10.80.0.10",
                "--alias",
                "w",
                "dnet",
                "web"
            ]),
            ""
        );
        ok(&["network", "connect", "dnet", "peer"]);
        let peer_ip = f.ip_of("peer", "dnet");
        assert!(f.ping("web", &peer_ip), "{tag}: web reaches peer on dnet");
        assert!(
            f.ping("peer", "10.80.0.10"),
            "{tag}: peer reaches web on dnet"
        );
        let members = ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{end}}",
            "dnet",
        ]);
        let mut members: Vec<&str> = members.split_whitespace().collect();
        members.sort();
        assert_eq!(members, ["peer", "web"], "{tag}");

        // Docker's errors and exit code 1.
        let o = d(&["network", "connect", "dnet", "web"]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        assert!(
            stderr(&o).contains("endpoint with name web already exists in network dnet"),
            "{tag}: {}",
            stderr(&o)
        );
        let o = d(&["network", "connect", "dnet", "nosuch"]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        assert!(
            stderr(&o).contains("No such container: nosuch"),
            "{tag}: {}",
            stderr(&o)
        );
        let o = d(&["network", "rm", "dnet"]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        assert!(
            stderr(&o).contains("has active endpoints"),
            "{tag}: {}",
            stderr(&o)
        );
        let o = d(&["network", "inspect", "nonet"]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        assert!(stderr(&o).contains("nonet"), "{tag}: {}", stderr(&o));
        let o = d(&["network", "create", "dnet"]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        assert!(
            stderr(&o).contains("network with name dnet already exists"),
            "{tag}: {}",
            stderr(&o)
        );

        // disconnect cuts the traffic; rm and prune.
        assert_eq!(ok(&["network", "disconnect", "dnet", "web"]), "");
        assert!(!f.ping("peer", "10.80.0.10"), "{tag}: web left dnet");
        let o = d(&["network", "disconnect", "dnet", "web"]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        ok(&["network", "disconnect", "--force", "dnet", "peer"]);
        ok(&["network", "create", "unused"]);
        let pruned = ok(&["network", "prune", "-f"]);
        assert_eq!(pruned, "Deleted Networks:\ndnet\nunused\n\n", "{tag}");
        ok(&["network", "create", "gone"]);
        assert_eq!(ok(&["network", "rm", "gone"]), "gone\n", "{tag}");
        assert_eq!(
            ok(&["network", "ls", "--format", "{{.Name}}"]),
            "bridge\nhost\nnone\n",
            "{tag}"
        );
        let v = ok(&["version", "--format", "{{.Server.APIVersion}}"]);
        assert_eq!(v.trim(), "1.41", "{tag}");
    }
}

#[test]
fn docker_info_and_the_paths_berth_does_not_serve() {
    let f = Fixture::new();
    for docker in docker_clients() {
        let tag = docker.display().to_string();
        let o = f.docker(
            &docker,
            &[
                "info",
                "--format",
                "{{.ServerVersion}}|{{.Plugins.Network}}|{{.IPv4Forwarding}}|{{len .DefaultAddressPools}}",
            ],
        );
        assert!(o.status.success(), "{tag}: docker info: {}", stderr(&o));
        let out = stdout(&o);
        let fields: Vec<&str> = out.trim().split('|').collect();
        assert_eq!(fields[0], env!("CARGO_PKG_VERSION"), "{tag}: {out}");
        assert_eq!(
            fields[1], "[bridge host ipvlan macvlan null]",
            "{tag}: {out}"
        );
        assert_eq!(fields[3], "7", "{tag}: Docker's local default pools: {out}");
        // Options Docker accepts are accepted: a real 20.10 option and a vendor key (kept and
        // shown, as Docker keeps it).
        let name = "opts_nw"; // removed at the end of each client's turn
        let o = f.docker(
            &docker,
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.container_iface_prefix=eth",
                "-o",
                "foo=bar",
                name,
            ],
        );
        assert!(o.status.success(), "{tag}: {}", stderr(&o));
        let o = f.docker(
            &docker,
            &[
                "network",
                "inspect",
                "-f",
                "{{index .Options \"foo\"}}",
                name,
            ],
        );
        assert_eq!(stdout(&o), "bar\n", "{tag}: {}", stderr(&o));
        assert!(f.docker(&docker, &["network", "rm", name]).status.success());
        // The engine's paths answer with what berth serves, not "page not found".
        let o = f.docker(&docker, &["ps"]);
        assert!(!o.status.success(), "{tag}: docker ps succeeded");
        assert!(
            stderr(&o).contains("berth serves networks and sandboxes only"),
            "{tag}: {}",
            stderr(&o)
        );
    }
}
