//! Lexing: splitting a template source into text and actions (with `{{-`/`-}}` trimming),
//! positions as line and column, and the tokens of one action.

use serde_json::Number;

use super::{TResult, TemplateError};

// ----- lexing of the whole template into text and actions -----

pub(super) enum Piece {
    Text(String),
    Action { pos: usize, body: String },
}

pub(super) fn split_pieces(src: &str) -> TResult<Vec<Piece>> {
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

pub(super) fn line_of(src: &str, pos: usize) -> usize {
    src.get(..pos.min(src.len()))
        .map_or(1, |p| p.bytes().filter(|&c| c == b'\n').count() + 1)
}

pub(super) fn col_of(src: &str, pos: usize) -> usize {
    let p = src.get(..pos.min(src.len())).unwrap_or("");
    match p.rfind('\n') {
        Some(nl) => pos - nl - 1,
        None => pos,
    }
}

// ----- lexing of one action -----

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) fn lex_action(body: &str, err: &dyn Fn(String) -> TemplateError) -> TResult<Vec<Tok>> {
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
