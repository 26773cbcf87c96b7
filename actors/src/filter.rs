//! Content filters (an endpoint's `filter`, issue 21): a JSON document matched against
//! `{"type", "payload", "metadata"}` of an event, in the shape MongoDB's queries made familiar.
//!
//! - A filter is an object, and every key of it must hold. A key is `$and` / `$or` (an array
//!   of filters), `$not` (a filter), or a dotted path into the event starting at `type`,
//!   `payload` or `metadata` (`payload.order.total`; a number is also an array index).
//! - A path's value is an object of operators (`$eq $ne $gt $gte $lt $lte $in $nin $exists
//!   $regex $startsWith`), all of which must hold, or any other JSON value, meaning `$eq` it.
//! - Where a path meets an array it looks into every item, and an operator holds when it holds
//!   for any value found (or any item of a value that is an array): `payload.items.sku` with
//!   `{"$eq": "a"}` matches when some item's sku is "a". `$ne` and `$nin` are the negations
//!   (no value is equal), and so hold for a missing field, as `$exists: false` does.
//! - `$gt $gte $lt $lte` compare numbers with numbers and strings with strings (so ISO 8601
//!   times compare in time order); other pairs never match. Numbers are equal by value (1 ==
//!   1.0). `$regex` is Rust's `regex` (linear time, size-limited: no pattern can hang a router).
//!
//! [`Filter::compile`] checks a document once (when an endpoint is saved: an error names the
//! place in the filter, as `filter.$or[1].payload.total.$gt`, and what is wrong);
//! [`Filter::matches`] then costs no allocation beyond the values a path finds.

use serde_json::{Map, Value};

/// The most nested `$and`/`$or`/`$not` levels, paths and operators one filter may hold.
pub const MAX_DEPTH: usize = 8;
pub const MAX_TESTS: usize = 256;
/// The largest compiled `$regex`, in bytes of the regex crate's program.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
const MAX_PATTERN_CHARS: usize = 1_000;
const MAX_IN_ITEMS: usize = 1_000;

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Field { path: Vec<String>, tests: Vec<Test> },
}

/// One operator on the values a path finds.
#[derive(Debug, Clone)]
pub enum Test {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Regex(regex::Regex),
    StartsWith(String),
}

/// Why a filter document was refused: where in it (`filter.…`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

impl std::error::Error for FilterError {}

struct Compiler {
    tests: usize,
}

impl Filter {
    /// Check and compile a filter document.
    pub fn compile(doc: &Value) -> Result<Filter, FilterError> {
        Compiler { tests: 0 }.filter(doc, "filter", 0)
    }

    /// Does the event (`{"type", "payload", "metadata"}`) match?
    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Filter::All(all) => all.iter().all(|f| f.matches(event)),
            Filter::Any(any) => any.iter().any(|f| f.matches(event)),
            Filter::Not(not) => !not.matches(event),
            Filter::Field { path, tests } => {
                let mut found = Vec::new();
                values_at(event, path, &mut found);
                tests.iter().all(|t| t.holds(&found))
            }
        }
    }
}

/// What a filter sees of an event: `{"type", "payload", "metadata"}`, from the body endpoints
/// receive (`{"id", "type", "timestamp", "tenant", "data", …}`: the payload is `data`).
/// `None` if the body is not a JSON object.
pub fn content(body: &str) -> Option<Value> {
    let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    let mut content = Map::with_capacity(3);
    content.insert("type".into(), body.remove("type").unwrap_or(Value::Null));
    content.insert("payload".into(), body.remove("data").unwrap_or(Value::Null));
    content.insert(
        "metadata".into(),
        body.remove("metadata").unwrap_or_else(|| Value::Object(Map::new())),
    );
    Some(Value::Object(content))
}

fn refuse(path: &str, problem: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_string(),
        problem: problem.into(),
    }
}

impl Compiler {
    fn filter(&mut self, doc: &Value, at: &str, depth: usize) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            return Err(refuse(at, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let Value::Object(keys) = doc else {
            return Err(refuse(at, "must be an object"));
        };
        let mut all = Vec::with_capacity(keys.len());
        for (key, value) in keys {
            let here = format!("{at}.{key}");
            all.push(match key.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = value else {
                        return Err(refuse(&here, "must be an array of filters"));
                    };
                    if items.is_empty() {
                        return Err(refuse(&here, "must hold at least one filter"));
                    }
                    let parts = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.filter(item, &format!("{here}[{i}]"), depth + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    if key == "$and" {
                        Filter::All(parts)
                    } else {
                        Filter::Any(parts)
                    }
                }
                "$not" => Filter::Not(Box::new(self.filter(value, &here, depth + 1)?)),
                op if op.starts_with('$') => {
                    return Err(refuse(&here, "unknown operator here ($and, $or, $not, or a path)"));
                }
                path => self.field(path, value, &here)?,
            });
        }
        Ok(match all.len() {
            1 => all.pop().expect("one"),
            _ => Filter::All(all),
        })
    }

    fn field(&mut self, path: &str, value: &Value, at: &str) -> Result<Filter, FilterError> {
        let segments: Vec<String> = path.split('.').map(String::from).collect();
        if !matches!(segments[0].as_str(), "type" | "payload" | "metadata") {
            return Err(refuse(at, "a path starts at type, payload or metadata"));
        }
        if segments.iter().any(String::is_empty) {
            return Err(refuse(at, "a path has no empty parts"));
        }
        let tests = match value {
            Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => self.operators(ops, at)?,
            plain => vec![Test::Eq(plain.clone())],
        };
        self.count(tests.len(), at)?;
        Ok(Filter::Field { path: segments, tests })
    }

    fn count(&mut self, tests: usize, at: &str) -> Result<(), FilterError> {
        self.tests += tests;
        match self.tests > MAX_TESTS {
            true => Err(refuse(at, format!("a filter holds at most {MAX_TESTS} tests"))),
            false => Ok(()),
        }
    }

    fn operators(&mut self, ops: &Map<String, Value>, at: &str) -> Result<Vec<Test>, FilterError> {
        ops.iter()
            .map(|(op, arg)| {
                let here = format!("{at}.{op}");
                let comparable = || match arg {
                    Value::Number(_) | Value::String(_) => Ok(arg.clone()),
                    _ => Err(refuse(&here, "compares with a number or a string")),
                };
                let list = || match arg {
                    Value::Array(items) if items.len() <= MAX_IN_ITEMS => Ok(items.clone()),
                    Value::Array(_) => Err(refuse(&here, format!("at most {MAX_IN_ITEMS} values"))),
                    _ => Err(refuse(&here, "must be an array of values")),
                };
                let text = || match arg {
                    Value::String(s) if s.chars().count() <= MAX_PATTERN_CHARS => Ok(s.clone()),
                    Value::String(_) => Err(refuse(&here, format!("at most {MAX_PATTERN_CHARS} characters"))),
                    _ => Err(refuse(&here, "must be a string")),
                };
                Ok(match op.as_str() {
                    "$eq" => Test::Eq(arg.clone()),
                    "$ne" => Test::Ne(arg.clone()),
                    "$gt" => Test::Gt(comparable()?),
                    "$gte" => Test::Gte(comparable()?),
                    "$lt" => Test::Lt(comparable()?),
                    "$lte" => Test::Lte(comparable()?),
                    "$in" => Test::In(list()?),
                    "$nin" => Test::Nin(list()?),
                    "$exists" => match arg {
                        Value::Bool(b) => Test::Exists(*b),
                        _ => return Err(refuse(&here, "must be true or false")),
                    },
                    "$regex" => Test::Regex(
                        regex::RegexBuilder::new(&text()?)
                            .size_limit(REGEX_SIZE_LIMIT)
                            .build()
                            .map_err(|e| refuse(&here, format!("not a usable regular expression: {e}")))?,
                    ),
                    "$startsWith" => Test::StartsWith(text()?),
                    _ => {
                        return Err(refuse(
                            &here,
                            "unknown operator (one of $eq $ne $gt $gte $lt $lte $in $nin $exists $regex $startsWith)",
                        ))
                    }
                })
            })
            .collect()
    }
}

/// Every value at `path` from `value`, looking into each item of the arrays on the way.
fn values_at<'a>(value: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    let Some((key, rest)) = path.split_first() else {
        out.push(value);
        return;
    };
    match value {
        Value::Object(map) => {
            if let Some(next) = map.get(key) {
                values_at(next, rest, out);
            }
        }
        Value::Array(items) => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|i| items.get(i)) {
                values_at(item, rest, out);
            }
            for item in items {
                if item.is_object() {
                    values_at(item, path, out);
                }
            }
        }
        _ => {}
    }
}

/// Each value found, and the items of those that are arrays.
fn candidates<'a>(found: &'a [&'a Value]) -> impl Iterator<Item = &'a Value> {
    found.iter().flat_map(|v| {
        let items = match v {
            Value::Array(items) => items.as_slice(),
            _ => &[],
        };
        std::iter::once(*v).chain(items.iter())
    })
}

/// Equal as JSON, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

impl Test {
    fn holds(&self, found: &[&Value]) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let any = |f: &dyn Fn(&Value) -> bool| candidates(found).any(f);
        match self {
            Test::Eq(x) => any(&|c| same(c, x)),
            Test::Ne(x) => !any(&|c| same(c, x)),
            Test::Gt(x) => any(&|c| order(c, x) == Some(Greater)),
            Test::Gte(x) => any(&|c| matches!(order(c, x), Some(Greater | Equal))),
            Test::Lt(x) => any(&|c| order(c, x) == Some(Less)),
            Test::Lte(x) => any(&|c| matches!(order(c, x), Some(Less | Equal))),
            Test::In(xs) => any(&|c| xs.iter().any(|x| same(c, x))),
            Test::Nin(xs) => !any(&|c| xs.iter().any(|x| same(c, x))),
            Test::Exists(wanted) => found.is_empty() != *wanted,
            Test::Regex(re) => any(&|c| c.as_str().is_some_and(|s| re.is_match(s))),
            Test::StartsWith(prefix) => any(&|c| c.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))),
        }
    }
}

#[cfg(test)]
mod tests;
