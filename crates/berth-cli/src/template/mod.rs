//! The subset of Go's `text/template` that `docker ... --format` users write, evaluated over JSON
//! values (the way the Docker CLI falls back to the raw JSON of an object).
//!
//! Supported: text and actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; fields
//! (`.Name`, `.IPAM.Config`), `.`, variables (`$`, `$v`, `$v.Field`, `{{$x := ...}}`); string,
//! number, `true`/`false`/`nil` literals; parenthesised pipelines and `|` pipes; `if`/`else if`/
//! `else`, `range` (with `$i, $v :=` or `$v :=`, and `else`), `with`; the functions `json`, `index`,
//! `len`, `join`, `split`, `upper`, `lower`, `title`, `pad`, `truncate`, `print`, `printf`,
//! `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`; and named methods supplied by
//! the caller (`{{.Label "com.example"}}`). Values print as Go prints them (`map[k:v]`, `[a b]`,
//! `<no value>` for null); a missing key is an error, as with `docker inspect`.
//!
//! ```
//! use berth_cli::template::Template;
//!
//! let t = Template::parse("{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}").unwrap();
//! let v = serde_json::json!({"Name": "isolated_nw", "IPAM": {"Config": [{"Subnet": "172.18.0.0/16"}]}});
//! assert_eq!(t.render(&v).unwrap(), "isolated_nw 172.18.0.0/16");
//! ```

mod exec;
mod funcs;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use exec::Exec;
pub use funcs::{go_json, print_value};

/// A template that failed to parse or execute. The message reads like Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template parsing error: template: {0}")]
pub struct TemplateError(String);

type TResult<T> = Result<T, TemplateError>;

/// Caller-supplied methods (`{{.Label "key"}}`): name to function of the evaluated arguments.
pub type Methods<'a> = BTreeMap<&'static str, &'a dyn Fn(&[Value]) -> Result<Value, String>>;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    source: String,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    pos: usize,
    decl: Vec<String>,
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Operand>,
}

#[derive(Debug, Clone)]
enum Operand {
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    /// `$name.A.B` (`$` is the root).
    Var(String, Vec<String>),
    /// A literal.
    Lit(Value),
    /// A function name.
    Ident(String),
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
}

impl Template {
    /// Executes the template with `data` as `.` and no methods.
    ///
    /// # Errors
    /// A [`TemplateError`] naming the action that failed (missing key, wrong type, bad call).
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        self.render_with(data, &Methods::new())
    }

    /// Executes the template with `data` as `.` and the given methods.
    ///
    /// # Errors
    /// As [`Template::render`].
    pub fn render_with(
        &self,
        data: &Value,
        methods: &Methods<'_>,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec {
            src: &self.source,
            methods,
            vars: vec![("$".to_owned(), data.clone())],
            out: String::new(),
            steps: 0,
        };
        ex.walk(&self.nodes, data)?;
        Ok(ex.out)
    }
}
