//! Tests of whole templates: parsing and rendering together.

use super::*;
use serde_json::json;

fn r(t: &str, v: &Value) -> String {
    Template::parse(t).unwrap().render(v).unwrap()
}

#[test]
fn fields_and_printing() {
    let v = json!({"Name": "n", "Id": "abc", "Labels": {"b": "2", "a": "1"},
        "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}], "Options": null}, "Num": 1500, "T": true});
    assert_eq!(r("{{.Name}}/{{.ID}}", &v), "n/abc");
    assert_eq!(r("{{.Labels}}", &v), "map[a:1 b:2]");
    assert_eq!(r("{{.IPAM.Config}}", &v), "[map[Subnet:10.0.0.0/24]]");
    assert_eq!(r("{{.IPAM.Options}}", &v), "<no value>");
    assert_eq!(r("{{.Num}} {{.T}}", &v), "1500 true");
    assert_eq!(r("{{json .Labels}}", &v), r#"{"a":"1","b":"2"}"#);
    assert_eq!(r("{{.Labels | json}}", &v), r#"{"a":"1","b":"2"}"#);
    assert_eq!(r("{{index .Labels \"a\"}}", &v), "1");
    assert_eq!(r("{{len .Labels}}", &v), "2");
}

#[test]
fn control_flow() {
    let v = json!({"L": ["x", "y"], "M": {"k1": "v1", "k2": "v2"}, "E": [], "S": "s"});
    assert_eq!(r("{{range .L}}<{{.}}>{{end}}", &v), "<x><y>");
    assert_eq!(
        r("{{range $i, $e := .L}}{{$i}}={{$e}};{{end}}", &v),
        "0=x;1=y;"
    );
    assert_eq!(
        r("{{range $k, $v := .M}}{{$k}}:{{$v}} {{end}}", &v),
        "k1:v1 k2:v2 "
    );
    assert_eq!(r("{{range .E}}x{{else}}empty{{end}}", &v), "empty");
    assert_eq!(r("{{if .E}}a{{else if .S}}b{{else}}c{{end}}", &v), "b");
    assert_eq!(r("{{if eq .S \"s\"}}yes{{end}}", &v), "yes");
    assert_eq!(r("{{with .M}}{{.k1}}{{end}}", &v), "v1");
    assert_eq!(r("{{$x := .S}}{{$x}}{{$.S}}", &v), "ss");
    assert_eq!(r("a  {{- .S -}}  b", &v), "asb");
    assert_eq!(r("{{/* note */}}z", &v), "z");
    assert_eq!(r("{{join .L \",\"}} {{upper .S}}", &v), "x,y S");
    assert_eq!(r("{{printf \"%s-%d\" .S 3}}", &v), "s-3");
    assert_eq!(r("{{(index .L 1)}}", &v), "y");
}

#[test]
fn errors_read_like_go() {
    let v = json!({"Name": "n"});
    let e = Template::parse("{{.Name}} {{.Nope}}")
        .unwrap()
        .render(&v)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "template parsing error: template: :1:12: executing \"\" at <.Nope>: map has no entry for key \"Nope\""
    );
    assert!(Template::parse("{{.Name").is_err());
    assert!(Template::parse("{{if .Name}}").is_err());
    assert!(Template::parse("{{end}}").is_err());
    assert!(Template::parse("{{nofunc}}").unwrap().render(&v).is_err());
}

#[test]
fn runaway_templates_are_bounded() {
    let v = json!({});
    let t = Template::parse("{{range 100000000000}}x{{end}}").unwrap();
    assert!(t.render(&v).is_err());
    let mut src = String::from("{{$x := \"ab\"}}");
    for _ in 0..40 {
        src.push_str("{{$x = print $x $x}}");
    }
    // Assignments redeclare here; either way the size is capped.
    let t = Template::parse(&src).unwrap();
    let _ = t.render(&v);
    let t = Template::parse("{{range 1000}}{{range 1000}}{{range 1000}}x{{end}}{{end}}{{end}}")
        .unwrap();
    assert!(t.render(&v).is_err());
}

#[test]
fn methods() {
    let labels = json!({"k": "v"});
    let f = |args: &[Value]| -> Result<Value, String> {
        let key = args
            .first()
            .and_then(Value::as_str)
            .ok_or("Label wants a key")?;
        Ok(labels
            .get(key)
            .cloned()
            .unwrap_or(Value::String(String::new())))
    };
    let mut m = Methods::new();
    m.insert("Label", &f);
    let t = Template::parse("{{.Label \"k\"}}|{{.Label \"x\"}}").unwrap();
    assert_eq!(t.render_with(&json!({}), &m).unwrap(), "v|");
}
