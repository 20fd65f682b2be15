//! Executing a parsed template: Go `text/template` semantics for dot,
//! variables and their scopes, fields, pipelines, `if`/`with`/`range`
//! (with `else`, `break`, `continue`), `template`, and truth. Missing map
//! keys give the zero value (Prometheus sets `missingkey=zero`).

use super::Value;
use super::funcs::{self, Context};
use super::gofmt::{go_type_name, sprint_value};
use super::parse::{Arg, Branch, Cmd, Node, Pipe, Tree};

/// How deep `template` calls may nest (Go's limit is 100000; far less is
/// plenty and keeps the stack small).
const MAX_DEPTH: usize = 1000;

/// Executes `tree` with `data` as dot.
///
/// # Errors
/// The first execution error, worded as Go's `template: NAME:LINE:COL:
/// executing "NAME" at <...>: ...`.
pub fn execute(
    name: &str,
    src: &str,
    tree: &Tree,
    data: Value,
    ctx: &mut Context<'_>,
) -> std::result::Result<String, String> {
    let mut state = State {
        name,
        src,
        tree,
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        ctx,
        depth: 0,
        at: (0, String::new()),
    };
    match state.walk_list(&data, &tree.root) {
        Ok(_) => Ok(state.out),
        Err(message) => Err(state.located(&message)),
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a, 'c> {
    name: &'a str,
    src: &'a str,
    tree: &'a Tree,
    vars: Vec<(String, Value)>,
    out: String,
    ctx: &'a mut Context<'c>,
    depth: usize,
    /// The node being evaluated: byte offset and text, for error context.
    at: (usize, String),
}

type Result<T> = std::result::Result<T, String>;

impl State<'_, '_> {
    fn located(&self, message: &str) -> String {
        let (pos, context) = &self.at;
        let before = &self.src[..(*pos).min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let column = match before.rfind('\n') {
            Some(newline) => before.len() - newline - 1,
            None => before.len(),
        };
        format!(
            "template: {name}:{line}:{column}: executing \"{name}\" at <{context}>: {message}",
            name = self.name
        )
    }

    fn walk_list(&mut self, dot: &Value, nodes: &[Node]) -> Result<Flow> {
        for node in nodes {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> Result<Flow> {
        match node {
            Node::Text(text) => self.out.push_str(text),
            Node::Action(pipe) => {
                let value = self.eval_pipe(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.out.push_str(&print_value(&value));
                }
            }
            Node::If(branch) => return self.walk_if_or_with(dot, branch, false),
            Node::With(branch) => return self.walk_if_or_with(dot, branch, true),
            Node::Range(branch) => return self.walk_range(dot, branch),
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
            Node::Template { pos, name, pipe } => {
                self.at = (*pos, format!("template {name:?}"));
                let Some(body) = self.tree.defines.get(name) else {
                    return Err(format!(
                        "template: no template {name:?} associated with template {:?}",
                        self.name
                    ));
                };
                let new_dot = match pipe {
                    Some(pipe) => self.eval_pipe(dot, pipe)?,
                    None => Value::Nil,
                };
                if self.depth >= MAX_DEPTH {
                    return Err(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                }
                let saved =
                    std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
                self.depth += 1;
                let walked = self.walk_list(&new_dot, body);
                self.depth -= 1;
                self.vars = saved;
                walked?;
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, dot: &Value, branch: &Branch, with: bool) -> Result<Flow> {
        let mark = self.vars.len();
        let value = self.eval_pipe(dot, &branch.pipe)?;
        let flow = if truth(&value) {
            let new_dot = if with { value } else { dot.clone() };
            self.walk_list(&new_dot, &branch.list)
        } else if let Some(else_list) = &branch.else_list {
            self.walk_list(dot, else_list)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        flow
    }

    fn walk_range(&mut self, dot: &Value, branch: &Branch) -> Result<Flow> {
        let mark = self.vars.len();
        let value = self.eval_pipe(dot, &branch.pipe)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Samples(samples) => samples
                .iter()
                .enumerate()
                .map(|(i, s)| (Value::Int(i as i64), Value::Sample(s.clone())))
                .collect(),
            Value::StrMap(map) => map
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
                .collect(),
            Value::Map(map) => map
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => return Err(format!("range can't iterate over {}", sprint_value(other))),
        };
        if items.is_empty() {
            let flow = match &branch.else_list {
                Some(else_list) => self.walk_list(dot, else_list),
                None => Ok(Flow::Normal),
            };
            self.vars.truncate(mark);
            return flow.map(|_| Flow::Normal);
        }
        for (key, element) in items {
            let iteration_mark = self.vars.len();
            match branch.pipe.decl.as_slice() {
                [single] => self.set_var(single, element.clone(), branch.pipe.is_assign),
                [k, v] => {
                    self.set_var(k, key, branch.pipe.is_assign);
                    self.set_var(v, element.clone(), branch.pipe.is_assign);
                }
                _ => {}
            }
            let flow = self.walk_list(&element, &branch.list)?;
            if !branch.pipe.is_assign {
                self.vars.truncate(iteration_mark);
            }
            if let Flow::Break = flow {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, value: Value, assign: bool) {
        if assign && let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = value;
            return;
        }
        self.vars.push((name.to_string(), value));
    }

    fn var(&self, name: &str) -> Result<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable: {name}"))
    }

    fn eval_pipe(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_cmd(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        match pipe.decl.as_slice() {
            [] => {}
            [name] if pipe.is_assign => self.set_var(name, value.clone(), true),
            [name] => self.vars.push((name.clone(), value.clone())),
            // Two variables only appear in range, which binds them itself.
            _ => {}
        }
        Ok(value)
    }

    fn eval_cmd(&mut self, dot: &Value, cmd: &Cmd, last: Option<Value>) -> Result<Value> {
        self.at = (cmd.pos, cmd.text.clone());
        let Some(first) = cmd.args.first() else {
            return Err("empty command".into());
        };
        if let Arg::Ident(name) = first {
            return self.call(dot, name, &cmd.args[1..], last);
        }
        if cmd.args.len() > 1 || last.is_some() {
            return Err(format!(
                "can't give argument to non-function {}",
                cmd.text.split_whitespace().next().unwrap_or_default()
            ));
        }
        self.eval_arg(dot, first)
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> Result<Value> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(n) => Value::Int(*n),
            Arg::Float(f) => Value::Float(*f),
            Arg::String(s) => Value::String(s.clone()),
            Arg::Field(fields) => fields_of(dot.clone(), fields)?,
            Arg::Variable(name, fields) => fields_of(self.var(name)?, fields)?,
            Arg::Ident(name) => self.call(dot, name, &[], None)?,
            Arg::Chain(inner, fields) => {
                let base = self.eval_arg(dot, inner)?;
                fields_of(base, fields)?
            }
            Arg::Pipe(pipe) => {
                let mark = self.vars.len();
                let value = self.eval_pipe(dot, pipe);
                self.vars.truncate(mark);
                value?
            }
        })
    }

    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        last: Option<Value>,
    ) -> Result<Value> {
        // `and` and `or` evaluate their arguments only as far as needed and
        // return the deciding argument itself.
        if name == "and" || name == "or" {
            let is_or = name == "or";
            let total = args.len() + usize::from(last.is_some());
            if total == 0 {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut last = last;
            for i in 0..total {
                let value = match args.get(i) {
                    Some(arg) => self.eval_arg(dot, arg)?,
                    None => last.take().unwrap_or(Value::Nil),
                };
                if i + 1 == total || truth(&value) == is_or {
                    return Ok(value);
                }
            }
            return Ok(Value::Nil);
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for arg in args {
            values.push(self.eval_arg(dot, arg)?);
        }
        if let Some(last) = last {
            values.push(last);
        }
        funcs::call(name, values, self.ctx).map_err(|e| format!("error calling {name}: {e}"))
    }
}

/// Follows `.A.B` from `base`.
fn fields_of(mut base: Value, fields: &[String]) -> Result<Value> {
    for field in fields {
        base = field_of(&base, field)?;
    }
    Ok(base)
}

fn field_of(base: &Value, field: &str) -> Result<Value> {
    match base {
        Value::Struct(fields) => fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                format!(
                    "can't evaluate field {field} in type {}",
                    go_type_name(base)
                )
            }),
        Value::StrMap(map) => Ok(Value::String(map.get(field).cloned().unwrap_or_default())),
        Value::Map(map) => Ok(map.get(field).cloned().unwrap_or(Value::Nil)),
        Value::Sample(sample) => match field {
            "Labels" => Ok(Value::StrMap(sample.labels.clone())),
            "Value" => Ok(Value::Float(sample.value)),
            _ => Err(format!(
                "can't evaluate field {field} in type *template.sample"
            )),
        },
        Value::Nil => Err(format!("nil pointer evaluating interface {{}}.{field}")),
        other => Err(format!(
            "can't evaluate field {field} in type {}",
            go_type_name(other)
        )),
    }
}

/// Go's truth: false, 0, nil and empty strings, maps and lists are false.
pub fn truth(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(n) => *n != 0,
        Value::Float(f) => *f != 0.0,
        Value::String(s) | Value::Html(s) => !s.is_empty(),
        Value::StrMap(m) => !m.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Samples(s) => !s.is_empty(),
        Value::Sample(_) | Value::Time(_) | Value::Duration(_) | Value::Struct(_) => true,
    }
}

/// How an action prints its value.
fn print_value(value: &Value) -> String {
    match value {
        Value::Nil => "<no value>".to_string(),
        other => sprint_value(other),
    }
}
