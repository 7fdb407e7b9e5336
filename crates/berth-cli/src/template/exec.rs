//! Execution: walking the node tree over a JSON value, with variables, caller-supplied methods
//! and bounds on steps and output size.

use serde_json::Value;

use super::funcs::{call, has_key, lookup, print_value, truthy, type_name};
use super::lex::{col_of, line_of};
use super::{Command, Methods, Node, Operand, Pipeline, TResult, TemplateError};

/// Upper bound on evaluation steps (ranges over huge values, nested loops).
const MAX_STEPS: usize = 1_000_000;
/// Upper bound on the output of one execution.
const MAX_OUTPUT: usize = 16 << 20;

pub(super) struct Exec<'a> {
    pub(super) src: &'a str,
    pub(super) methods: &'a Methods<'a>,
    pub(super) vars: Vec<(String, Value)>,
    pub(super) out: String,
    pub(super) steps: usize,
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

    pub(super) fn walk(&mut self, nodes: &[Node], dot: &Value) -> TResult<()> {
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
