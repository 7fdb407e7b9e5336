//! `berth network ...` end to end against a daemon in a test host: output shapes, exit codes and
//! messages, and real traffic to prove that connect and disconnect did what they said.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Fixture;
use serde_json::Value;

#[test]
fn ls_create_inspect_filters_and_formats() {
    let f = Fixture::new();
    let ls = f.ok(&["network", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines[0], "NETWORK ID     NAME      DRIVER    SCOPE");
    assert_eq!(lines.len(), 4, "{ls}");
    for (line, (name, driver)) in
        lines[1..]
            .iter()
            .zip([("bridge", "bridge"), ("host", "host"), ("none", "null")])
    {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0].len(), 12, "{line}");
        assert_eq!(&cols[1..], [name, driver, "local"], "{line}");
    }

    let id = f.ok(&[
        "network",
        "create",
        "--subnet",
        "10.50.0.0/16",
        "--ip-range",
        "10.50.1.0/24",
        "--gateway",
        "10.50.0.1",
        "--aux-address",
        "router=10.50.0.2",
        "--label",
        "tier=front",
        "--label",
        "owner",
        "-o",
        "com.docker.network.bridge.enable_icc=true",
        "isolated_nw",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    // Inspect: a JSON array in Docker's shape and key order.
    let out = f.ok(&["network", "inspect", "isolated_nw"]);
    assert!(
        out.starts_with("[\n    {\n        \"Name\": \"isolated_nw\",\n        \"Id\": "),
        "{out}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let n = &v[0];
    assert_eq!(n["Id"], id);
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Scope"], "local");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.50.0.0/16");
    assert_eq!(n["IPAM"]["Config"][0]["IPRange"], "10.50.1.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.50.0.1");
    assert_eq!(
        n["IPAM"]["Config"][0]["AuxiliaryAddresses"]["router"],
        "10.50.0.2"
    );
    assert_eq!(n["Labels"]["tier"], "front");
    assert_eq!(n["Labels"]["owner"], "");
    assert_eq!(n["Options"]["com.docker.network.bridge.enable_icc"], "true");
    assert!(n["Containers"].as_object().unwrap().is_empty());

    // Templates and json.
    assert_eq!(
        f.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}} {{index .Labels \"tier\"}}",
            "isolated_nw"
        ]),
        "isolated_nw 10.50.0.0/16 front\n"
    );
    assert_eq!(
        f.ok(&[
            "network",
            "inspect",
            "--format",
            "{{json .Labels}}",
            "isolated_nw"
        ]),
        "{\"owner\":\"\",\"tier\":\"front\"}\n"
    );
    let j = f.ok(&["network", "inspect", "-f", "json", "isolated_nw", "bridge"]);
    let arr: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 2);
    let e = f.fails(&["network", "inspect", "-f", "{{.Nope}}", "isolated_nw"], 1);
    assert!(e.contains("map has no entry for key \"Nope\""), "{e}");

    // A missing network: `[]`, Docker's message, exit 1; found ones still print.
    let out = f.berth(&["network", "inspect", "nonet"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::stdout(&out), "[]\n");
    assert_eq!(
        common::stderr(&out),
        "Error response from daemon: network nonet not found\n"
    );
    let out = f.berth(&["network", "inspect", "-f", "{{.Name}}", "bridge", "nonet"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::stdout(&out), "bridge\n");

    // ls: -q, filters, --format (plain, table, json, .Label), --no-trunc.
    assert_eq!(
        f.ok(&["network", "ls", "-q", "--filter", "name=isolated"]),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        f.ok(&[
            "network",
            "ls",
            "--no-trunc",
            "-q",
            "-f",
            "label=tier=front"
        ]),
        format!("{id}\n")
    );
    assert_eq!(f.ok(&["network", "ls", "-q", "-f", "label=tier=back"]), "");
    assert_eq!(
        f.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "-f",
            "driver=null"
        ]),
        "none\n"
    );
    assert_eq!(
        f.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "-f",
            "type=custom"
        ]),
        "isolated_nw\n"
    );
    assert_eq!(
        f.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "-f",
            "dangling=true"
        ]),
        "isolated_nw\n"
    );
    assert_eq!(
        f.ok(&["network", "ls", "--format", "{{.Name}}", "-f", "name=^b"]),
        "bridge\n"
    );
    assert_eq!(
        f.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}|{{.Label \"tier\"}}|{{.Labels}}",
            "-f",
            "name=isolated"
        ]),
        "isolated_nw|front|owner=,tier=front\n"
    );
    assert_eq!(
        f.ok(&["network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}"]),
        "NAME          DRIVER\nbridge        bridge\nhost          host\nisolated_nw   bridge\nnone          null\n"
    );
    let j = f.ok(&["network", "ls", "--format", "json", "-f", "name=isolated"]);
    let row: Value = serde_json::from_str(j.trim()).unwrap();
    assert_eq!(row["Name"], "isolated_nw");
    assert_eq!(row["ID"], &id[..12]);
    assert_eq!(row["Labels"], "owner=,tier=front");
    assert!(row["CreatedAt"].as_str().unwrap().ends_with(" +0000 UTC"));
    let e = f.fails(&["network", "ls", "--filter", "foo=bar"], 1);
    assert_eq!(e, "Error response from daemon: Invalid filter 'foo'\n");
    let e = f.fails(&["network", "ls", "--filter", "foo"], 1);
    assert!(e.contains("bad format of filter"), "{e}");

    // Create errors: duplicates (409), predefined names, bad subnets, unknown drivers, usage.
    let e = f.fails(&["network", "create", "isolated_nw"], 1);
    assert_eq!(
        e,
        "Error response from daemon: network with name isolated_nw already exists\n"
    );
    let e = f.fails(&["network", "create", "bridge"], 1);
    assert!(
        e.contains("operation is not permitted on predefined bridge network"),
        "{e}"
    );
    let e = f.fails(&["network", "create", "--subnet", "10.1.0.0/33", "x"], 1);
    assert!(e.contains("10.1.0.0/33"), "{e}");
    let e = f.fails(&["network", "create", "-d", "nodrv", "x"], 1);
    assert_eq!(
        e,
        "Error response from daemon: plugin \"nodrv\" not found\n"
    );
    let e = f.fails(&["network", "create", "--gateway", "10.9.0.1", "x"], 1);
    assert!(e.contains("corresponding subnet"), "{e}");
    let e = f.fails(
        &["network", "create", "--subnet", "10.50.128.0/24", "overlap"],
        1,
    );
    assert!(e.to_lowercase().contains("overlap"), "{e}");
    f.fails(&["network", "create"], 1);
    f.fails(&["network", "create", "--bogus", "x"], 125);
    f.fails(&["network", "bogus"], 1);
}

#[test]
fn connect_disconnect_rm_prune_with_traffic() {
    let f = Fixture::new();
    f.ok(&[
        "network",
        "create",
        "--subnet",
        "10.60.0.0/24",
        "isolated_nw",
    ]);
    f.ok(&["network", "create", "other_nw"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "a",
        "--network",
        "isolated_nw",
        "--ip",
        "10.60.0.10",
    ]);
    f.ok(&["sandbox", "create", "--name", "b", "--network", "none"]);
    assert_eq!(f.ip_of("a", "isolated_nw"), "10.60.0.10");

    // b has only loopback: no way to reach a.
    assert!(!f.ping("b", "10.60.0.10"));
    let e = f.fails(&["network", "connect", "isolated_nw", "b"], 1);
    assert!(e.contains("private (none) mode"), "{e}");
    f.ok(&["network", "disconnect", "none", "b"]);

    // connect with --ip and --alias; traffic both ways.
    assert_eq!(
        f.ok(&[
            "network",
            "connect",
            "--ip",
            "10.60.0.20",
            "--alias",
            "bee",
            "isolated_nw",
            "b"
        ]),
        ""
    );
    assert_eq!(f.ip_of("b", "isolated_nw"), "10.60.0.20");
    assert!(f.ping("b", "10.60.0.10"), "b reaches a after connect");
    assert!(f.ping("a", "10.60.0.20"), "a reaches b after connect");
    let aliases = f.ok(&[
        "sandbox",
        "inspect",
        "-f",
        "{{json (index .Networks \"isolated_nw\").Aliases}}",
        "b",
    ]);
    assert_eq!(aliases.trim(), "[\"bee\"]");
    let members = f.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
        "isolated_nw",
    ]);
    let mut members: Vec<&str> = members.split_whitespace().collect();
    members.sort();
    assert_eq!(members, ["a=10.60.0.10/24", "b=10.60.0.20/24"]);

    // Docker's errors and exit codes.
    let e = f.fails(&["network", "connect", "isolated_nw", "b"], 1);
    assert_eq!(
        e,
        "Error response from daemon: endpoint with name b already exists in network isolated_nw\n"
    );
    let e = f.fails(&["network", "connect", "nonet", "b"], 1);
    assert_eq!(e, "Error response from daemon: network nonet not found\n");
    let e = f.fails(&["network", "connect", "isolated_nw", "nosuch"], 1);
    assert_eq!(e, "Error response from daemon: No such container: nosuch\n");
    let e = f.fails(
        &["network", "connect", "--ip", "10.60.0.10", "other_nw", "b"],
        1,
    );
    assert!(!e.is_empty());
    let e = f.fails(&["network", "connect", "--ip", "1.2.3", "other_nw", "b"], 1);
    assert!(e.contains("1.2.3"), "{e}");
    let e = f.fails(
        &["network", "connect", "--driver-opt", "x=y", "other_nw", "b"],
        1,
    );
    // Handed to the network's driver, which names what it does not know.
    assert!(
        e.contains("unknown option \"x\" for the bridge driver"),
        "{e}"
    );
    f.fails(&["network", "connect", "isolated_nw"], 1);

    // rm refuses a network with endpoints, and the predefined ones.
    let out = f.berth(&["network", "rm", "isolated_nw", "bridge", "nonet"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::stdout(&out), "");
    let err = common::stderr(&out);
    assert!(err.contains("has active endpoints"), "{err}");
    assert!(
        err.contains("bridge is a pre-defined network and cannot be removed"),
        "{err}"
    );
    assert!(err.contains("network nonet not found"), "{err}");
    assert_eq!(f.ok(&["network", "rm", "-f", "nonet"]), "");

    // disconnect cuts the traffic.
    f.ok(&["network", "disconnect", "isolated_nw", "b"]);
    assert!(!f.ping("a", "10.60.0.20"), "b is gone from isolated_nw");
    let e = f.fails(&["network", "disconnect", "isolated_nw", "b"], 1);
    assert!(e.contains("not connected"), "{e}");
    let e = f.fails(&["network", "disconnect", "isolated_nw", "nosuch"], 1);
    assert_eq!(e, "Error response from daemon: No such container: nosuch\n");

    // prune removes only unused user networks (with filters, too).
    f.ok(&["network", "create", "--label", "keep=1", "kept"]);
    let out = f.ok(&["network", "prune", "--force", "--filter", "label!=keep"]);
    assert_eq!(out, "Deleted Networks:\nother_nw\n\n");
    let out = f.ok(&["network", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(out, "", "kept was created less than an hour ago");
    let out = f.ok(&["network", "prune", "-f"]);
    assert_eq!(out, "Deleted Networks:\nkept\n\n");
    let names = f.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "bridge\nhost\nisolated_nw\nnone\n");
    // Without --force and without a "y", nothing happens.
    f.ok(&["network", "create", "spare"]);
    f.ok(&["network", "prune"]);
    assert!(f.ok(&["network", "ls", "-q", "-f", "name=spare"]).len() == 13);

    // rm of an unused network prints its name; the bridge disappears from the host.
    f.ok(&["sandbox", "rm", "a"]);
    let br = f.ok(&["network", "inspect", "-f", "{{.Id}}", "isolated_nw"]);
    let bridge = format!("br-{}", &br.trim()[..12]);
    assert!(f.host.ip(&["-o", "link"]).unwrap().contains(&bridge));
    assert_eq!(
        f.ok(&["network", "rm", "isolated_nw", "spare"]),
        "isolated_nw\nspare\n"
    );
    assert!(!f.host.ip(&["-o", "link"]).unwrap().contains(&bridge));
}
