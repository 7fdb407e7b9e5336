//! Tests of the client proxy configuration: Docker's selection and environment rules, its Go
//! JSON reading, the errors, the directory lookup, and properties of `env_for`.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

const FILE: &str = "/home/me/.docker/config.json";
const SOCK: &str = "unix:///run/berth/berth.sock";
const TCP: &str = "tcp://docker-daemon1.example.com";

fn parse(json: &str) -> ClientProxies {
    ClientProxies::parse(json, Path::new(FILE)).unwrap()
}

fn parse_err(json: &str) -> ProxyConfigError {
    ClientProxies::parse(json, Path::new(FILE)).unwrap_err()
}

const NONE: &[&str] = &[];

/// Checks a WrongType error: the file, the key path and the found kind, in the value and in
/// the message.
fn assert_wrong_type(err: &ProxyConfigError, want_key: &str, want_found: &str) {
    let ProxyConfigError::WrongType {
        path, key, found, ..
    } = err
    else {
        panic!("not WrongType: {err:?}");
    };
    assert_eq!(path, Path::new(FILE));
    assert_eq!(key, want_key);
    assert_eq!(*found, want_found);
    let message = err.to_string();
    assert!(message.contains(FILE), "{message}");
    assert!(message.contains(want_key), "{message}");
    assert!(message.contains(want_found), "{message}");
}

#[test]
fn host_entry_replaces_default_without_merging() {
    let p = parse(&format!(
        r#"{{"proxies": {{
            "default": {{"httpProxy": "http://d:1", "noProxy": "d.example"}},
            "{TCP}": {{"httpsProxy": "http://t:2"}}
        }}}}"#
    ));
    assert_eq!(
        p.env_for(TCP, NONE),
        ["HTTPS_PROXY=http://t:2", "https_proxy=http://t:2"]
    );
    assert_eq!(
        p.env_for(SOCK, NONE),
        [
            "HTTP_PROXY=http://d:1",
            "http_proxy=http://d:1",
            "NO_PROXY=d.example",
            "no_proxy=d.example",
        ]
    );
    // No default and no entry of its own: nothing.
    let only_tcp = parse(&format!(
        r#"{{"proxies": {{"{TCP}": {{"httpProxy": "x"}}}}}}"#
    ));
    assert!(only_tcp.env_for(SOCK, NONE).is_empty());
    assert_eq!(
        only_tcp.env_for(TCP, NONE),
        ["HTTP_PROXY=x", "http_proxy=x"]
    );
}

#[test]
fn every_setting_gives_both_cases_in_order() {
    let p = parse(
        r#"{"proxies": {"default": {"allProxy": "socks5://a:5", "noProxy": "n", "ftpProxy": "ftp://f:21",
            "httpsProxy": "http://s:3", "httpProxy": "http://h:1"}}}"#,
    );
    let env = p.env_for(SOCK, NONE);
    assert_eq!(
        env,
        [
            "HTTP_PROXY=http://h:1",
            "http_proxy=http://h:1",
            "HTTPS_PROXY=http://s:3",
            "https_proxy=http://s:3",
            "FTP_PROXY=ftp://f:21",
            "ftp_proxy=ftp://f:21",
            "NO_PROXY=n",
            "no_proxy=n",
            "ALL_PROXY=socks5://a:5",
            "all_proxy=socks5://a:5",
        ]
    );
    let names: Vec<&str> = env.iter().map(|e| env_name(e)).collect();
    assert_eq!(names, PROXY_ENV_NAMES);
}

#[test]
fn explicit_environment_wins_name_by_name() {
    let p = parse(r#"{"proxies": {"default": {"httpProxy": "http://h:1", "noProxy": "n"}}}"#);
    // The upper-case name set: only the lower-case one is added, and vice versa.
    assert_eq!(
        p.env_for(SOCK, &["HTTP_PROXY=http://mine:9"]),
        ["http_proxy=http://h:1", "NO_PROXY=n", "no_proxy=n"]
    );
    assert_eq!(
        p.env_for(SOCK, &["http_proxy=http://mine:9"]),
        ["HTTP_PROXY=http://h:1", "NO_PROXY=n", "no_proxy=n"]
    );
    // A bare KEY (value from the client's environment) and an empty value count as set.
    assert_eq!(
        p.env_for(SOCK, &["NO_PROXY", "no_proxy="]),
        ["HTTP_PROXY=http://h:1", "http_proxy=http://h:1"]
    );
    // Another spelling is another variable; a value containing '=' is still one name.
    assert_eq!(
        p.env_for(SOCK, &["Http_Proxy=x", "OTHER=HTTP_PROXY=y"])
            .len(),
        4
    );
    // Everything set explicitly: nothing added.
    assert!(p.env_for(SOCK, &PROXY_ENV_NAMES).is_empty());
}

#[test]
fn empty_and_null_values_are_unset() {
    let p =
        parse(r#"{"proxies": {"default": {"httpProxy": "", "httpsProxy": null, "noProxy": "n"}}}"#);
    assert_eq!(p.env_for(SOCK, NONE), ["NO_PROXY=n", "no_proxy=n"]);
    let config = p.get(DEFAULT_ENTRY).unwrap();
    assert_eq!(config.http_proxy, None);
    assert_eq!(config.https_proxy, None);
    // Set in code to an empty string: skipped as well.
    let mut p = ClientProxies::default();
    p.insert(
        DEFAULT_ENTRY,
        ProxyConfig {
            ftp_proxy: Some(String::new()),
            ..ProxyConfig::default()
        },
    );
    assert!(p.env_for(SOCK, NONE).is_empty());
}

#[test]
fn other_configuration_keys_are_not_looked_at() {
    let p = parse(
        r#"{
            "auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}},
            "credsStore": "desktop",
            "HttpHeaders": {"X-Meta": "1"},
            "detachKeys": 5,
            "pruneFilters": ["label=x"],
            "experimental": true,
            "proxies": {"default": {"httpProxy": "http://h:1"}},
            "currentContext": null
        }"#,
    );
    assert_eq!(
        p.env_for(SOCK, NONE),
        ["HTTP_PROXY=http://h:1", "http_proxy=http://h:1"]
    );
    assert!(p.ignored_keys().is_empty());
    // No proxies at all, empty, whitespace-only or null: no entries, nothing added.
    for json in [
        r#"{"auths": {}}"#,
        "",
        " \n\t\r\n",
        "null",
        r#"{"proxies": null}"#,
    ] {
        let p = parse(json);
        assert!(p.is_empty(), "{json:?}");
        assert!(p.env_for(SOCK, NONE).is_empty(), "{json:?}");
    }
}

#[test]
fn keys_match_like_go_and_the_last_match_wins() {
    let p = parse(
        r#"{"PROXIES": {"default": {
            "HTTPPROXY": "first", "httpProxy": "second", "HttpsProxy": "s", "noproxy": "n",
            "allProxy": "a", "allProxy": null
        }}}"#,
    );
    let config = p.get(DEFAULT_ENTRY).unwrap();
    assert_eq!(config.http_proxy.as_deref(), Some("second"));
    assert_eq!(config.https_proxy.as_deref(), Some("s"));
    assert_eq!(config.no_proxy.as_deref(), Some("n"));
    // null leaves an earlier value in place.
    assert_eq!(config.all_proxy.as_deref(), Some("a"));
    // Unicode folding: the long s (U+017F) matches 's'.
    let p = parse("{\"proxie\u{17F}\": {\"default\": {\"http\u{17F}Proxy\": \"x\"}}}");
    assert_eq!(
        p.get(DEFAULT_ENTRY).unwrap().https_proxy.as_deref(),
        Some("x")
    );
    // Host keys are exact: a differently written host is another entry.
    let p = parse(r#"{"proxies": {"TCP://H": {"httpProxy": "x"}}}"#);
    assert!(p.for_host("tcp://H").is_none());
}

#[test]
fn duplicate_entries_replace_and_proxies_objects_add_up() {
    let p = parse(
        r#"{"proxies": {"default": {"httpProxy": "old", "noProxy": "n"}, "default": {"ftpProxy": "f"}},
            "proxies": {"tcp://h": {"httpProxy": "t"}}}"#,
    );
    // The second "default" replaces the first entirely.
    let default = p.get(DEFAULT_ENTRY).unwrap();
    assert_eq!(
        (default.http_proxy.as_deref(), default.ftp_proxy.as_deref()),
        (None, Some("f"))
    );
    // The second "proxies" object adds its entries to the first.
    assert_eq!(
        p.iter().map(|(h, _)| h).collect::<Vec<_>>(),
        ["default", "tcp://h"]
    );
    // proxies: null drops what came before it.
    let p = parse(r#"{"proxies": {"default": {"httpProxy": "x"}}, "proxies": null}"#);
    assert!(p.is_empty());
}

#[test]
fn null_host_entry_hides_default() {
    let p = parse(r#"{"proxies": {"default": {"httpProxy": "x"}, "tcp://h": null}}"#);
    assert_eq!(p.for_host("tcp://h"), Some(&ProxyConfig::default()));
    assert!(p.env_for("tcp://h", NONE).is_empty());
    assert_eq!(p.env_for(SOCK, NONE).len(), 2);
}

#[test]
fn unknown_keys_in_an_entry_are_ignored_and_listed() {
    let p = parse(
        r#"{"proxies": {"default": {"https_proxy": "x", "httpProxy": "h", "proxy": 5},
            "tcp://h": {"noProxy ": "n"}}}"#,
    );
    assert_eq!(p.env_for(SOCK, NONE), ["HTTP_PROXY=h", "http_proxy=h"]);
    assert!(p.env_for("tcp://h", NONE).is_empty());
    assert_eq!(
        p.ignored_keys(),
        [
            "proxies.default.https_proxy",
            "proxies.default.proxy",
            r#"proxies."tcp://h"."noProxy ""#,
        ]
    );
}

#[test]
fn errors_name_the_file_and_the_key() {
    assert_wrong_type(&parse_err(r#"{"proxies": ["x"]}"#), "proxies", "an array");
    assert_wrong_type(&parse_err(r#"{"Proxies": "x"}"#), "Proxies", "a string");
    assert_wrong_type(
        &parse_err(r#"{"proxies": {"tcp://h": "http://x:1"}}"#),
        r#"proxies."tcp://h""#,
        "a string",
    );
    assert_wrong_type(
        &parse_err(r#"{"proxies": {"default": true}}"#),
        "proxies.default",
        "a boolean",
    );
    let err = parse_err(r#"{"proxies": {"tcp://h": {"httpProxy": 3128}}}"#);
    assert_wrong_type(&err, r#"proxies."tcp://h".httpProxy"#, "a number");
    assert!(err.to_string().contains("must be a string"), "{err}");
    assert_wrong_type(
        &parse_err(r#"{"proxies": {"default": {"NOPROXY": {"a": 1}}}}"#),
        "proxies.default.NOPROXY",
        "an object",
    );
    // The document itself.
    let err = parse_err("[1, 2]");
    assert_wrong_type(&err, "", "an array");
    assert!(
        err.to_string()
            .contains("the document must be a JSON object"),
        "{err}"
    );
}

#[test]
fn not_json_is_a_syntax_error_with_the_position() {
    for json in [
        r#"{"proxies": {"#,
        "{'proxies': {}}",
        r#"{"proxies": {}} trailing"#,
        "\u{feff}{}",
        r#"{"proxies": {"default": {"httpProxy": "\ud800"}}}"#,
    ] {
        let err = parse_err(json);
        assert!(
            matches!(err, ProxyConfigError::Syntax { .. }),
            "{json:?}: {err:?}"
        );
        assert_eq!(err.path(), Path::new(FILE));
        let message = err.to_string();
        assert!(
            message.contains(FILE) && message.contains("line 1"),
            "{message}"
        );
    }
    // Invalid UTF-8 too.
    let err = ClientProxies::parse(b"{\"proxies\": \"\xff\"}", Path::new(FILE)).unwrap_err();
    assert!(matches!(err, ProxyConfigError::Syntax { .. }), "{err:?}");
}

#[test]
fn load_reads_config_json_and_a_missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ClientProxies::load(dir.path()).unwrap().is_empty());
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"proxies": {"default": {"httpProxy": "http://h:1"}}}"#,
    )
    .unwrap();
    let p = ClientProxies::load(dir.path()).unwrap();
    assert_eq!(p.env_for(SOCK, NONE).len(), 2);
    // A missing directory is a missing file too.
    assert!(
        ClientProxies::load(&dir.path().join("absent"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(&file, r#"{"proxies": {"default": {"httpProxy": 1}}}"#).unwrap();
    let err = ClientProxies::load(dir.path()).unwrap_err();
    assert_eq!(err.path(), file);
    assert!(err.to_string().contains(&*file.to_string_lossy()), "{err}");
    // config.json that cannot be read (a directory).
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let err = ClientProxies::load(dir.path()).unwrap_err();
    assert!(matches!(err, ProxyConfigError::Read { .. }), "{err:?}");
    assert_eq!(err.path(), file);
    // And container_env passes the error on.
    let err = container_env(Some(dir.path()), SOCK, NONE).unwrap_err();
    assert!(matches!(err, ProxyConfigError::Read { .. }), "{err:?}");
}

#[test]
fn container_env_is_explicit_then_added() {
    let dir = tempfile::tempdir().unwrap();
    let explicit = ["A=1", "HTTP_PROXY=mine", "B", "A=2"];
    // No file: the explicit environment, unchanged.
    assert_eq!(
        container_env(Some(dir.path()), SOCK, &explicit).unwrap(),
        explicit
    );
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"proxies": {"default": {"httpProxy": "http://h:1", "allProxy": "socks5://a:1"}}}"#,
    )
    .unwrap();
    assert_eq!(
        container_env(Some(dir.path()), SOCK, &explicit).unwrap(),
        [
            "A=1",
            "HTTP_PROXY=mine",
            "B",
            "A=2",
            "http_proxy=http://h:1",
            "ALL_PROXY=socks5://a:1",
            "all_proxy=socks5://a:1",
        ]
    );
}

#[test]
fn config_dir_is_flag_then_docker_config_then_home() {
    let home = || Some(PathBuf::from("/home/me"));
    let flag = Path::new("/etc/engine");
    assert_eq!(
        config_dir_from(Some(flag), Some("/cfg".into()), home),
        Some(PathBuf::from("/etc/engine"))
    );
    assert_eq!(
        config_dir_from(None, Some("/cfg".into()), home),
        Some(PathBuf::from("/cfg"))
    );
    // DOCKER_CONFIG set but empty counts as unset.
    assert_eq!(
        config_dir_from(None, Some("".into()), home),
        Some(PathBuf::from("/home/me/.docker"))
    );
    assert_eq!(
        config_dir_from(None, None, home),
        Some(PathBuf::from("/home/me/.docker"))
    );
    assert_eq!(config_dir_from(None, None, || None), None);
}

/// The names an explicit environment may use: the ten, a near miss, others; with or without a
/// value.
fn explicit_entry() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        proptest::sample::select(PROXY_ENV_NAMES.to_vec()).prop_map(str::to_owned),
        Just("Http_Proxy".to_owned()),
        "[A-Za-z_=]{0,6}",
    ];
    (name, proptest::option::of("[a-z=:/]{0,5}")).prop_map(|(name, value)| match value {
        Some(value) => format!("{name}={value}"),
        None => name,
    })
}

fn proxy_config() -> impl Strategy<Value = ProxyConfig> {
    let value = || proptest::option::of("[a-z:/=]{0,4}");
    (value(), value(), value(), value(), value()).prop_map(|(h, s, f, n, a)| ProxyConfig {
        http_proxy: h,
        https_proxy: s,
        ftp_proxy: f,
        no_proxy: n,
        all_proxy: a,
    })
}

fn host() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![DEFAULT_ENTRY, SOCK, TCP, ""]).prop_map(str::to_owned)
}

/// JSON documents shaped like a client configuration: keys from the ones that matter (in
/// several spellings) and a few others, any JSON values.
fn config_like_json() -> impl Strategy<Value = String> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-z:/]{0,4}".prop_map(Value::String),
    ];
    let keys = proptest::sample::select(vec![
        "proxies",
        "PROXIES",
        "default",
        SOCK,
        "httpProxy",
        "HTTPSPROXY",
        "noProxy",
        "ftpproxy",
        "allProxy",
        "auths",
        "x",
    ]);
    leaf.prop_recursive(4, 32, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..5).prop_map(|members| {
                Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
    .prop_map(|v| v.to_string())
}

proptest! {
    /// env_for adds exactly the non-empty settings of the entry that applies, under the names the
    /// explicit environment does not set, each name once, in PROXY_ENV_NAMES order.
    #[test]
    fn env_for_matches_the_model(
        entries in proptest::collection::vec((host(), proxy_config()), 0..4),
        daemon_host in host(),
        explicit in proptest::collection::vec(explicit_entry(), 0..8),
    ) {
        let proxies: ClientProxies = entries.into_iter().collect();
        let added = proxies.env_for(&daemon_host, &explicit);
        let names: Vec<&str> = added.iter().map(|e| env_name(e)).collect();
        let mut seen = HashSet::new();
        for name in &names {
            prop_assert!(seen.insert(*name), "{name} twice in {added:?}");
            prop_assert!(!explicit.iter().any(|e| env_name(e) == *name), "{name} is explicit");
        }
        let order: Vec<usize> = names
            .iter()
            .map(|n| PROXY_ENV_NAMES.iter().position(|p| p == n).unwrap())
            .collect();
        prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{added:?}");
        // The model: what the applying entry sets, under both names, minus the explicit ones.
        let mut want = Vec::new();
        if let Some(config) = proxies.for_host(&daemon_host) {
            for (upper, lower, value) in config.settings() {
                for name in [upper, lower] {
                    if let Some(v) = value.filter(|v| !v.is_empty()) {
                        if !explicit.iter().any(|e| env_name(e) == name) {
                            want.push(format!("{name}={v}"));
                        }
                    }
                }
            }
        }
        prop_assert_eq!(added, want);
    }

    /// Any text: a configuration or a typed error naming the file, never a panic; what parses
    /// gives an environment of the ten names only, each once.
    #[test]
    fn parse_never_panics(
        json in prop_oneof![r#"[{}\[\]":, a-zA-Z0-9_\u{17F}]{0,40}"#, config_like_json()],
    ) {
        match ClientProxies::parse(&json, Path::new(FILE)) {
            Ok(p) => {
                let added = p.env_for(DEFAULT_ENTRY, NONE);
                let names: HashSet<&str> = added.iter().map(|e| env_name(e)).collect();
                prop_assert_eq!(names.len(), added.len());
                prop_assert!(names.iter().all(|n| PROXY_ENV_NAMES.contains(n)));
            }
            Err(e) => {
                prop_assert_eq!(e.path(), Path::new(FILE));
                prop_assert!(e.to_string().contains(FILE));
            }
        }
    }
}
