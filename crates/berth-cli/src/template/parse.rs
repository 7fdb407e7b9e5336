//! Parsing: the tokens of each action into pipelines, and the actions into the node tree
//! (`if`/`else if`/`else`, `range`, `with`, closed by `end`), as [`Template::parse`].

use serde_json::Value;

use super::lex::{Piece, Tok, lex_action, line_of, split_pieces};
use super::{Command, Node, Operand, Pipeline, TResult, Template, TemplateError};

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
