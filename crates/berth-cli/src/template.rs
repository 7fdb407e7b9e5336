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

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

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

// ----- lexing of the whole template into text and actions -----

enum Piece {
    Text(String),
    Action { pos: usize, body: String },
}

fn split_pieces(src: &str) -> TResult<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut offset = 0usize;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_owned();
        if trim_next {
            text = text.trim_start().to_owned();
        }
        let after = &rest[start + 2..];
        let (trim_prev, body_start) = if after.starts_with('-')
            && after[1..].starts_with(|c: char| c.is_ascii_whitespace())
        {
            (true, 1)
        } else {
            (false, 0)
        };
        if trim_prev {
            text = text.trim_end().to_owned();
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        let inner = &after[body_start..];
        let end = find_action_end(inner).ok_or_else(|| {
            TemplateError(format!(
                ":{}: unclosed action",
                line_of(src, offset + start)
            ))
        })?;
        let mut body = &inner[..end];
        trim_next = false;
        if body.ends_with('-')
            && body[..body.len() - 1].ends_with(|c: char| c.is_ascii_whitespace())
        {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        let pos = offset + start + 2 + body_start;
        out.push(Piece::Action {
            pos,
            body: body.to_owned(),
        });
        let consumed = start + 2 + body_start + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    let mut text = rest.to_owned();
    if trim_next {
        text = text.trim_start().to_owned();
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// The index of the closing `}}` of an action, skipping quoted strings and comments.
fn find_action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let close = s[i + 2..].find("*/")?;
                i += close + 3;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn line_of(src: &str, pos: usize) -> usize {
    src.get(..pos.min(src.len()))
        .map_or(1, |p| p.bytes().filter(|&c| c == b'\n').count() + 1)
}

fn col_of(src: &str, pos: usize) -> usize {
    let p = src.get(..pos.min(src.len())).unwrap_or("");
    match p.rfind('\n') {
        Some(nl) => pos - nl - 1,
        None => pos,
    }
}

// ----- lexing of one action -----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(Number),
    Pipe,
    LParen,
    RParen,
    Declare,
    Comma,
    /// `.X` right after `)`: a field chain on a parenthesised value.
    Chain(Vec<String>),
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex_action(body: &str, err: &dyn Fn(String) -> TemplateError) -> TResult<Vec<Tok>> {
    let chars: Vec<char> = body.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let read_chain = |i: &mut usize| -> Vec<String> {
        let mut parts = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            let start = *i + 1;
            let mut j = start;
            while j < chars.len() && is_ident_char(chars[j]) {
                j += 1;
            }
            if j == start {
                break;
            }
            parts.push(chars[start..j].iter().collect());
            *i = j;
        }
        parts
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
                if i < chars.len() && chars[i] == '.' {
                    let chain = read_chain(&mut i);
                    toks.push(Tok::Chain(chain));
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Declare);
                i += 1;
            }
            '.' => {
                if chars.get(i + 1).is_some_and(|c| is_ident_char(*c)) {
                    let chain = read_chain(&mut i);
                    toks.push(Tok::Field(chain));
                } else {
                    toks.push(Tok::Field(Vec::new()));
                    i += 1;
                }
            }
            '$' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_ident_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                i = j;
                let chain = read_chain(&mut i);
                toks.push(Tok::Var(name, chain));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err("unterminated quoted string".into()));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err(err("unterminated quoted string".into()));
                            };
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                '\'' => '\'',
                                '0' => '\0',
                                other => {
                                    return Err(err(format!(
                                        "unknown escape sequence \\{other} in quoted string"
                                    )));
                                }
                            });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '`' {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(err("unterminated raw quoted string".into()));
                }
                toks.push(Tok::Str(chars[start..j].iter().collect()));
                i = j + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let num = if let Ok(n) = text.parse::<i64>() {
                    Number::from(n)
                } else if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                    n
                } else {
                    return Err(err(format!("bad number syntax: {text:?}")));
                };
                toks.push(Tok::Num(num));
            }
            c if is_ident_char(c) => {
                let start = i;
                while i < chars.len() && (is_ident_char(chars[i])) {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(err(format!("unexpected {other:?} in command"))),
        }
    }
    Ok(toks)
}

// ----- parsing -----

struct ActionParser<'t> {
    toks: &'t [Tok],
    i: usize,
    err: &'t dyn Fn(String) -> TemplateError,
}

impl ActionParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }

    fn pipeline(&mut self, pos: usize, allow_decl: bool) -> TResult<Pipeline> {
        let mut decl = Vec::new();
        if allow_decl {
            // `$x :=` or `$i, $v :=`
            let save = self.i;
            let mut names = Vec::new();
            while let Some(Tok::Var(name, chain)) = self.peek() {
                if !chain.is_empty() {
                    break;
                }
                names.push(name.clone());
                self.i += 1;
                match self.peek() {
                    Some(Tok::Comma) => self.i += 1,
                    _ => break,
                }
            }
            if !names.is_empty() && self.peek() == Some(&Tok::Declare) && names.len() <= 2 {
                self.i += 1;
                decl = names;
            } else {
                self.i = save;
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command()?;
            cmds.push(cmd);
            match self.peek() {
                Some(Tok::Pipe) => self.i += 1,
                _ => break,
            }
        }
        Ok(Pipeline { pos, decl, cmds })
    }

    fn command(&mut self) -> TResult<Command> {
        let mut args = Vec::new();
        while let Some(tok) = self.peek().cloned() {
            let op = match tok {
                Tok::Pipe | Tok::RParen => break,
                Tok::Field(chain) => Operand::Field(chain),
                Tok::Var(name, chain) => Operand::Var(name, chain),
                Tok::Str(s) => Operand::Lit(Value::String(s)),
                Tok::Num(n) => Operand::Lit(Value::Number(n)),
                Tok::Ident(name) => match name.as_str() {
                    "true" => Operand::Lit(Value::Bool(true)),
                    "false" => Operand::Lit(Value::Bool(false)),
                    "nil" => Operand::Lit(Value::Null),
                    _ => Operand::Ident(name),
                },
                Tok::LParen => {
                    self.i += 1;
                    let inner = self.pipeline(0, false)?;
                    if self.peek() != Some(&Tok::RParen) {
                        return Err((self.err)("unclosed left paren".into()));
                    }
                    self.i += 1;
                    let chain = match self.peek() {
                        Some(Tok::Chain(c)) => {
                            let c = c.clone();
                            self.i += 1;
                            c
                        }
                        _ => Vec::new(),
                    };
                    args.push(Operand::Sub(Box::new(inner), chain));
                    continue;
                }
                Tok::Chain(_) | Tok::Comma | Tok::Declare => {
                    return Err((self.err)(format!("unexpected {tok:?} in operand")));
                }
            };
            self.i += 1;
            args.push(op);
        }
        if args.is_empty() {
            return Err((self.err)("missing value for command".into()));
        }
        Ok(Command { args })
    }
}

enum Frame {
    Root,
    If {
        cond: Pipeline,
        then: Option<Vec<Node>>,
    },
    Range {
        pipe: Pipeline,
        body: Option<Vec<Node>>,
    },
    With {
        pipe: Pipeline,
        body: Option<Vec<Node>>,
    },
    /// An `else if`: closes together with its parent.
    ElseIf {
        cond: Pipeline,
        then: Option<Vec<Node>>,
    },
}

impl Template {
    /// Parses `source`.
    ///
    /// # Errors
    /// A [`TemplateError`] naming the line and what is wrong.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let pieces = split_pieces(source)?;
        // A stack of (frame, nodes collected in the current branch).
        let mut stack: Vec<(Frame, Vec<Node>)> = vec![(Frame::Root, Vec::new())];
        for piece in pieces {
            let (pos, body) = match piece {
                Piece::Text(t) => {
                    if let Some((_, nodes)) = stack.last_mut() {
                        nodes.push(Node::Text(t));
                    }
                    continue;
                }
                Piece::Action { pos, body } => (pos, body),
            };
            let line = line_of(source, pos);
            let err = move |m: String| TemplateError(format!(":{line}: {m}"));
            let trimmed = body.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") {
                    return Err(err("unclosed comment".into()));
                }
                continue;
            }
            let toks = lex_action(&body, &err)?;
            let keyword = match toks.first() {
                Some(Tok::Ident(k))
                    if matches!(k.as_str(), "if" | "else" | "end" | "range" | "with") =>
                {
                    Some(k.clone())
                }
                Some(Tok::Ident(k))
                    if matches!(
                        k.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(err(format!("{k:?} is not supported by berth's templates")));
                }
                None => return Err(err("missing value for command".into())),
                _ => None,
            };
            let mut parser = ActionParser {
                toks: &toks,
                i: 0,
                err: &err,
            };
            let rest_pipeline = |parser: &mut ActionParser<'_>, decl: bool| -> TResult<Pipeline> {
                parser.i = 1;
                let p = parser.pipeline(pos, decl)?;
                if parser.i != toks.len() {
                    return Err(err(format!(
                        "unexpected {:?} in operand",
                        toks.get(parser.i)
                    )));
                }
                Ok(p)
            };
            match keyword.as_deref() {
                None => {
                    let p = parser.pipeline(pos, true)?;
                    if parser.i != toks.len() {
                        return Err(err(format!(
                            "unexpected {:?} in operand",
                            toks.get(parser.i)
                        )));
                    }
                    if let Some((_, nodes)) = stack.last_mut() {
                        nodes.push(Node::Action(p));
                    }
                }
                Some("if") => {
                    let cond = rest_pipeline(&mut parser, false)?;
                    stack.push((Frame::If { cond, then: None }, Vec::new()));
                }
                Some("range") => {
                    let pipe = rest_pipeline(&mut parser, true)?;
                    stack.push((Frame::Range { pipe, body: None }, Vec::new()));
                }
                Some("with") => {
                    let pipe = rest_pipeline(&mut parser, false)?;
                    stack.push((Frame::With { pipe, body: None }, Vec::new()));
                }
                Some("else") => {
                    let Some((frame, nodes)) = stack.last_mut() else {
                        return Err(err("unexpected {{else}}".into()));
                    };
                    let branch = std::mem::take(nodes);
                    let slot = match frame {
                        Frame::If { then, .. } | Frame::ElseIf { then, .. } => then,
                        Frame::Range { body, .. } | Frame::With { body, .. } => body,
                        Frame::Root => return Err(err("unexpected {{else}}".into())),
                    };
                    if slot.is_some() {
                        return Err(err("expected end; found {{else}}".into()));
                    }
                    *slot = Some(branch);
                    if matches!(toks.get(1), Some(Tok::Ident(k)) if k == "if") {
                        parser.i = 2;
                        let cond = parser.pipeline(pos, false)?;
                        if parser.i != toks.len() {
                            return Err(err("unexpected token after else if".into()));
                        }
                        stack.push((Frame::ElseIf { cond, then: None }, Vec::new()));
                    } else if toks.len() != 1 {
                        return Err(err("unexpected token after else".into()));
                    }
                }
                Some("end") => {
                    if toks.len() != 1 {
                        return Err(err("unexpected token after end".into()));
                    }
                    // Close an else-if chain down to its `if`.
                    let mut node = close_frame(stack.pop(), &err)?;
                    loop {
                        match node {
                            Closed::Node(n) => {
                                let Some((_, nodes)) = stack.last_mut() else {
                                    return Err(err("unexpected {{end}}".into()));
                                };
                                nodes.push(n);
                                break;
                            }
                            Closed::ElseIf(n) => {
                                // The parent `if` (or else-if) gets it as its else branch.
                                let Some((_, nodes)) = stack.last_mut() else {
                                    return Err(err("unexpected {{end}}".into()));
                                };
                                nodes.push(n);
                                node = close_frame(stack.pop(), &err)?;
                            }
                        }
                    }
                }
                Some(_) => return Err(err("unexpected keyword".into())),
            }
        }
        if stack.len() != 1 {
            return Err(TemplateError(format!(
                ":{}: unexpected EOF",
                line_of(source, source.len())
            )));
        }
        let nodes = stack.pop().map(|(_, n)| n).unwrap_or_default();
        Ok(Template {
            nodes,
            source: source.to_owned(),
        })
    }

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

enum Closed {
    Node(Node),
    ElseIf(Node),
}

fn close_frame(
    top: Option<(Frame, Vec<Node>)>,
    err: &dyn Fn(String) -> TemplateError,
) -> TResult<Closed> {
    let Some((frame, nodes)) = top else {
        return Err(err("unexpected {{end}}".into()));
    };
    let split = |first: Option<Vec<Node>>, nodes: Vec<Node>| match first {
        Some(first) => (first, nodes),
        None => (nodes, Vec::new()),
    };
    Ok(match frame {
        Frame::Root => return Err(err("unexpected {{end}}".into())),
        Frame::If { cond, then } => {
            let (then, otherwise) = split(then, nodes);
            Closed::Node(Node::If {
                cond,
                then,
                otherwise,
            })
        }
        Frame::ElseIf { cond, then } => {
            let (then, otherwise) = split(then, nodes);
            Closed::ElseIf(Node::If {
                cond,
                then,
                otherwise,
            })
        }
        Frame::Range { pipe, body } => {
            let (body, otherwise) = split(body, nodes);
            Closed::Node(Node::Range {
                pipe,
                body,
                otherwise,
            })
        }
        Frame::With { pipe, body } => {
            let (body, otherwise) = split(body, nodes);
            Closed::Node(Node::With {
                pipe,
                body,
                otherwise,
            })
        }
    })
}

// ----- execution -----

/// Upper bound on evaluation steps (ranges over huge values, nested loops).
const MAX_STEPS: usize = 1_000_000;
/// Upper bound on the output of one execution.
const MAX_OUTPUT: usize = 16 << 20;

struct Exec<'a> {
    src: &'a str,
    methods: &'a Methods<'a>,
    vars: Vec<(String, Value)>,
    out: String,
    steps: usize,
}

impl Exec<'_> {
    fn fail(&self, pos: usize, what: &str, msg: impl std::fmt::Display) -> TemplateError {
        TemplateError(format!(
            ":{}:{}: executing \"\" at <{what}>: {msg}",
            line_of(self.src, pos),
            col_of(self.src, pos)
        ))
    }

    fn tick(&mut self, pos: usize) -> TResult<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.fail(pos, "range", "too many steps"));
        }
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> TResult<()> {
        for node in nodes {
            if self.out.len() > MAX_OUTPUT {
                return Err(TemplateError(format!(
                    ": executing \"\": the output is larger than {MAX_OUTPUT} bytes"
                )));
            }
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        let text = print_value(&v);
                        self.out.push_str(&text);
                    }
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let v = self.pipeline(cond, dot)?;
                    let depth = self.vars.len();
                    if truthy(&v) {
                        self.walk(then, dot)?;
                    } else {
                        self.walk(otherwise, dot)?;
                    }
                    self.vars.truncate(depth);
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let v = self.pipeline(pipe, dot)?;
                    let depth = self.vars.len();
                    if truthy(&v) {
                        self.walk(body, &v)?;
                    } else {
                        self.walk(otherwise, dot)?;
                    }
                    self.vars.truncate(depth);
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mut plain = pipe.clone();
                    plain.decl.clear();
                    let v = self.pipeline(&plain, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Value::Object(m) => m
                            .iter()
                            .map(|(k, x)| (Value::String(k.clone()), x.clone()))
                            .collect(),
                        Value::Null => Vec::new(),
                        Value::Number(n) if n.as_u64().is_some() => {
                            let count = n.as_u64().unwrap_or(0);
                            if count > MAX_STEPS as u64 {
                                return Err(self.fail(
                                    pipe.pos,
                                    "range",
                                    format!("range over {count} is too long"),
                                ));
                            }
                            (0..count)
                                .map(|i| (Value::from(i), Value::from(i)))
                                .collect()
                        }
                        other => {
                            return Err(self.fail(
                                pipe.pos,
                                "range",
                                format!("range can't iterate over {}", print_value(other)),
                            ));
                        }
                    };
                    if items.is_empty() {
                        self.walk(otherwise, dot)?;
                        continue;
                    }
                    for (key, item) in items {
                        self.tick(pipe.pos)?;
                        let depth = self.vars.len();
                        match pipe.decl.as_slice() {
                            [v] => self.vars.push((v.clone(), item.clone())),
                            [k, v] => {
                                self.vars.push((k.clone(), key));
                                self.vars.push((v.clone(), item.clone()));
                            }
                            _ => {}
                        }
                        self.walk(body, &item)?;
                        self.vars.truncate(depth);
                    }
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> TResult<Value> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(p.pos, cmd, dot, last.take())?);
        }
        let v = last.unwrap_or(Value::Null);
        match p.decl.as_slice() {
            [] => {}
            [name] => self.vars.push((name.clone(), v.clone())),
            _ => {
                return Err(self.fail(p.pos, "declaration", "too many declarations"));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        pos: usize,
        cmd: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> TResult<Value> {
        let first = &cmd.args[0];
        match first {
            Operand::Ident(name) => {
                let mut args = Vec::new();
                for a in &cmd.args[1..] {
                    args.push(self.operand(pos, a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                let v = call(name, &args).map_err(|m| self.fail(pos, name, m))?;
                if matches!(&v, Value::String(s) if s.len() > MAX_OUTPUT) {
                    return Err(self.fail(pos, name, "the result is too large"));
                }
                Ok(v)
            }
            Operand::Field(chain) if cmd.args.len() > 1 || piped.is_some() => {
                // A method call such as `.Label "key"`.
                let name = chain.join(".");
                let Some(method) = (chain.len() == 1)
                    .then(|| self.methods.get(chain[0].as_str()))
                    .flatten()
                else {
                    return Err(self.fail(
                        pos,
                        &format!(".{name}"),
                        format!("{name} is not a method but has arguments"),
                    ));
                };
                let mut args = Vec::new();
                for a in &cmd.args[1..] {
                    args.push(self.operand(pos, a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                method(&args).map_err(|m| self.fail(pos, &format!(".{name}"), m))
            }
            _ if cmd.args.len() > 1 || piped.is_some() => {
                Err(self.fail(pos, "command", "can't give argument to non-function"))
            }
            op => self.operand(pos, op, dot),
        }
    }

    fn operand(&mut self, pos: usize, op: &Operand, dot: &Value) -> TResult<Value> {
        match op {
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Field(chain) => {
                if chain.len() == 1 {
                    if let Some(m) = self.methods.get(chain[0].as_str()) {
                        if !has_key(dot, &chain[0]) {
                            return m(&[])
                                .map_err(|e| self.fail(pos, &format!(".{}", chain[0]), e));
                        }
                    }
                }
                self.chain(pos, dot, chain, "")
            }
            Operand::Var(name, chain) => {
                let base = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name || (name.is_empty() && n == "$"))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        self.fail(
                            pos,
                            &format!("${name}"),
                            format!("undefined variable: ${name}"),
                        )
                    })?;
                self.chain(pos, &base, chain, &format!("${name}"))
            }
            Operand::Ident(name) => call(name, &[]).map_err(|m| self.fail(pos, name, m)),
            Operand::Sub(p, chain) => {
                let v = self.pipeline(p, dot)?;
                self.chain(pos, &v, chain, "(...)")
            }
        }
    }

    fn chain(&self, pos: usize, base: &Value, chain: &[String], prefix: &str) -> TResult<Value> {
        let mut cur = base.clone();
        let mut path = prefix.to_owned();
        for field in chain {
            path.push('.');
            path.push_str(field);
            cur = match &cur {
                Value::Object(m) => match lookup(m, field) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(self.fail(
                            pos,
                            &path,
                            format!("map has no entry for key \"{field}\""),
                        ));
                    }
                },
                Value::Null => {
                    return Err(self.fail(
                        pos,
                        &path,
                        format!("nil pointer evaluating interface {{}}.{field}"),
                    ));
                }
                other => {
                    return Err(self.fail(
                        pos,
                        &path,
                        format!("can't evaluate field {field} in type {}", type_name(other)),
                    ));
                }
            };
        }
        Ok(cur)
    }
}

fn has_key(v: &Value, key: &str) -> bool {
    matches!(v, Value::Object(m) if lookup(m, key).is_some())
}

/// Exact key first; then a case-insensitive match (`.ID` finds `Id`, as the Docker CLI's typed
/// structs allow both spellings).
fn lookup<'m>(m: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Go's `fmt.Sprint` of a decoded JSON value.
pub fn print_value(v: &Value) -> String {
    let mut s = String::new();
    print_into(&mut s, v, true);
    s
}

fn print_into(out: &mut String, v: &Value, top: bool) {
    match v {
        Value::Null => out.push_str(if top { "<no value>" } else { "<nil>" }),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_into(out, x, false);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_into(out, x, false);
            }
            out.push(']');
        }
    }
}

fn format_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() >= 1e21 {
            format!("{f:e}")
        } else {
            format!("{f:.0}")
        }
    } else {
        f.to_string()
    }
}

/// JSON as Go's encoder writes it: compact, with `<`, `>` and `&` escaped.
pub fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn as_str<'v>(v: &'v Value, what: &str) -> Result<&'v str, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("{what} wants a string, got {}", type_name(other))),
    }
}

fn as_int(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| format!("{what} wants an integer")),
        other => Err(format!("{what} wants an integer, got {}", type_name(other))),
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y)
                .ok_or_else(|| "incomparable numbers".to_owned())
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Null, Value::Null) => Ok(std::cmp::Ordering::Equal),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            type_name(a),
            type_name(b)
        )),
    }
}

fn want(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::String(_));
        let prev_str = i > 0 && matches!(args[i - 1], Value::String(_));
        if i > 0 && !is_str && !prev_str {
            out.push(' ');
        }
        out.push_str(&print_value(a));
    }
    out
}

fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = it.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        match verb {
            'q' => out.push_str(&serde_json::to_string(&print_value(arg)).unwrap_or_default()),
            'd' => match arg {
                Value::Number(n) => out.push_str(&format_number(n)),
                other => {
                    let _ = write!(out, "%!d({})", print_value(other));
                }
            },
            _ => out.push_str(&print_value(arg)),
        }
    }
    let extra: Vec<String> = it.map(print_value).collect();
    if !extra.is_empty() {
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    Ok(match name {
        "json" => {
            want(args, 1, name)?;
            Value::String(go_json(&args[0]))
        }
        "len" => {
            want(args, 1, name)?;
            Value::from(match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => return Err(format!("len of type {}", type_name(other))),
            })
        }
        "index" => {
            let Some((base, keys)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut cur = base.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Object(m), Value::String(key)) => {
                        m.get(key).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(_)) => {
                        let i = as_int(k, "index")?;
                        let idx = usize::try_from(i)
                            .ok()
                            .filter(|&i| i < a.len())
                            .ok_or_else(|| {
                                format!("error calling index: index out of range: {i}")
                            })?;
                        a[idx].clone()
                    }
                    (Value::Null, _) => Value::Null,
                    (base, key) => {
                        return Err(format!(
                            "error calling index: cannot index {} with {}",
                            type_name(base),
                            type_name(key)
                        ));
                    }
                };
            }
            cur
        }
        "join" => {
            want(args, 2, name)?;
            let sep = as_str(&args[1], "join")?;
            let parts: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(print_value).collect(),
                Value::Null => Vec::new(),
                other => return Err(format!("join wants a list, got {}", type_name(other))),
            };
            Value::String(parts.join(sep))
        }
        "split" => {
            want(args, 2, name)?;
            let s = as_str(&args[0], "split")?;
            let sep = as_str(&args[1], "split")?;
            if sep.is_empty() {
                Value::Array(s.chars().map(|c| Value::String(c.to_string())).collect())
            } else {
                Value::Array(s.split(sep).map(|p| Value::String(p.to_owned())).collect())
            }
        }
        "upper" => {
            want(args, 1, name)?;
            Value::String(print_value(&args[0]).to_uppercase())
        }
        "lower" => {
            want(args, 1, name)?;
            Value::String(print_value(&args[0]).to_lowercase())
        }
        "title" => {
            want(args, 1, name)?;
            let s = print_value(&args[0]);
            let mut out = String::with_capacity(s.len());
            let mut start = true;
            for c in s.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Value::String(out)
        }
        "pad" => {
            want(args, 3, name)?;
            let l = usize::try_from(as_int(&args[1], "pad")?)
                .unwrap_or(0)
                .min(4096);
            let r = usize::try_from(as_int(&args[2], "pad")?)
                .unwrap_or(0)
                .min(4096);
            Value::String(format!(
                "{}{}{}",
                " ".repeat(l),
                print_value(&args[0]),
                " ".repeat(r)
            ))
        }
        "truncate" => {
            want(args, 2, name)?;
            let s = print_value(&args[0]);
            let n = usize::try_from(as_int(&args[1], "truncate")?).unwrap_or(0);
            Value::String(s.chars().take(n).collect())
        }
        "print" => Value::String(sprint(args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(print_value).collect();
            Value::String(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Value::String(sprintf(as_str(f, "printf")?, rest))
        }
        "eq" => {
            let Some((a, rest)) = args.split_first() else {
                return Err("missing argument for comparison".into());
            };
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            let mut any = false;
            for b in rest {
                if compare(a, b)? == std::cmp::Ordering::Equal {
                    any = true;
                }
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(args, 2, name)?;
            let o = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "not" => {
            want(args, 1, name)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => {
            let Some(first) = args.first() else {
                return Err("wrong number of args for and: want at least 1 got 0".into());
            };
            match args.iter().find(|a| !truthy(a)) {
                Some(a) => a.clone(),
                None => args.last().unwrap_or(first).clone(),
            }
        }
        "or" => {
            let Some(first) = args.first() else {
                return Err("wrong number of args for or: want at least 1 got 0".into());
            };
            match args.iter().find(|a| truthy(a)) {
                Some(a) => a.clone(),
                None => args.last().unwrap_or(first).clone(),
            }
        }
        other => return Err(format!("function \"{other}\" not defined")),
    })
}

#[cfg(test)]
mod tests {
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
}
