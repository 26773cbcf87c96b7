//! `hookline transform-worker`: compiles and runs jq programs (jaq) for the node, one job at a
//! time, over its stdin and stdout. The node never runs a program itself: a program that loops,
//! recurses too deep or eats memory takes down this process only, and the node starts another.
//!
//! A job is a frame (`frame`) holding `{"program": "…", "input": …}` (no `input`: compile
//! only); the answer is `{"ok": <output>}` or `{"error": "…"}`. A watchdog thread answers for a
//! job past its time and ends the process (`"exit": true` tells the node so).

use super::frame;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Bind, Compiler, Ctx, Error, Exn, Native, RcIter};
use jaq_json::Val;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest program accepted (bytes).
pub const MAX_PROGRAM: usize = 16 * 1024;
/// The largest output of one run (bytes of JSON).
pub const MAX_OUTPUT: usize = 1 << 20;
/// How long compiling one program may take.
const COMPILE_LIMIT: Duration = Duration::from_secs(1);
/// Compiled programs kept per worker (all dropped when it is full).
const CACHE: usize = 256;
/// The most memory a worker's heap may take: a program that allocates past it ends its worker
/// (an allocation failure aborts it), never the node.
pub const MEMORY_LIMIT: u64 = 512 << 20;

/// A compiled program.
pub type Program = jaq_core::Filter<Native<Val>>;

#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub program: String,
    /// Absent: compile only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The run's time limit.
    pub timeout_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(Value),
    Error(String),
    /// Past its time: the worker ends after this answer.
    Timeout(String),
}

/// Natives a transform may not call: they read the node's environment or end the process.
const REFUSED: &[(&str, usize)] = &[("env", 0), ("halt", 0), ("halt_error", 1), ("input", 0), ("inputs", 0)];

fn refused<'a>(_: &'a jaq_core::compile::Lut<Native<Val>>, _: jaq_core::Cv<'a, Val>) -> jaq_core::ValXs<'a, Val> {
    jaq_core::box_iter::box_once(Err(Exn::from(Error::str(
        "env, halt, halt_error, input and inputs are not available in a transform",
    ))))
}

fn natives() -> impl Iterator<Item = (&'static str, Box<[Bind]>, Native<Val>)> {
    let allowed = jaq_std::funs()
        .chain(jaq_json::funs())
        .filter(|(name, args, _)| !REFUSED.contains(&(*name, args.len())));
    allowed.chain(REFUSED.iter().map(|(name, arity)| {
        (
            *name,
            vec![Bind::Var(()); *arity].into_boxed_slice(),
            Native::new(refused),
        )
    }))
}

/// Parse and compile a program, or say what is wrong with it and where.
pub fn compile(code: &str) -> Result<Program, String> {
    if code.chars().count() > MAX_PROGRAM {
        return Err(format!("at most {MAX_PROGRAM} characters"));
    }
    if code.trim().is_empty() {
        return Err("is empty".into());
    }
    let at = |s: &str| {
        let offset = (s.as_ptr() as usize)
            .saturating_sub(code.as_ptr() as usize)
            .min(code.len());
        let line = code[..offset].matches('\n').count() + 1;
        let column = offset - code[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
        format!("line {line}, column {column}")
    };
    let arena = Arena::default();
    let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
    let modules = loader.load(&arena, File { code, path: () }).map_err(|errors| {
        use jaq_core::load::Error as E;
        let first = errors.into_iter().next().map(|(_, e)| match e {
            E::Io(errs) => errs.into_iter().next().map(|(s, why)| format!("{why} ({})", at(s))),
            E::Lex(errs) => errs
                .into_iter()
                .next()
                .map(|(expect, s)| format!("expected {} at {}", expect.as_str(), at(s))),
            E::Parse(errs) => errs
                .into_iter()
                .next()
                .map(|(expect, s)| format!("expected {} at {}", expect.as_str(), at(s))),
        });
        format!(
            "syntax error: {}",
            first.flatten().unwrap_or_else(|| "unreadable".into())
        )
    })?;
    Compiler::default()
        .with_funs(natives())
        .compile(modules)
        .map_err(|errors| {
            let first = errors.into_iter().flat_map(|(_, errs)| errs).next();
            match first {
                Some((name, undefined)) => format!("undefined {} {name} at {}", undefined.as_str(), at(name)),
                None => "does not compile".into(),
            }
        })
}

/// Run a program on one input: exactly one output, at most `MAX_OUTPUT` bytes of JSON.
pub fn run(program: &Program, input: Value) -> Result<Value, String> {
    let inputs = RcIter::new(core::iter::empty());
    let mut outputs = program.run((Ctx::new([], &inputs), Val::from(input)));
    let first = match outputs.next() {
        None => return Err("the program gave no output".into()),
        Some(Err(e)) => return Err(format!("the program failed: {e}")),
        Some(Ok(v)) => Value::from(v),
    };
    if outputs.next().is_some() {
        return Err("the program gave more than one output".into());
    }
    if depth(&first) > MAX_DEPTH {
        return Err(format!("the output is nested deeper than {MAX_DEPTH} levels"));
    }
    let size = serde_json::to_vec(&first).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_OUTPUT {
        return Err(format!("the output is {size} bytes, more than {MAX_OUTPUT}"));
    }
    Ok(first)
}

/// The deepest output accepted (the node reads answers with serde_json, which stops at 128).
pub const MAX_DEPTH: usize = 100;

/// How deep a value nests (a scalar is 0), without recursion.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// What the watchdog watches: the job running now and when its time is up.
#[derive(Default)]
struct Running {
    deadline: Option<(Instant, String)>,
}

/// The worker's loop: read a job, answer it, until stdin closes.
pub fn main() -> ExitCode {
    limit_memory(MEMORY_LIMIT);
    let watch = Arc::new((Mutex::new(Running::default()), Condvar::new()));
    {
        let watch = watch.clone();
        std::thread::spawn(move || watchdog(&watch));
    }
    let mut stdin = std::io::stdin().lock();
    let mut cache: HashMap<String, Arc<Program>> = HashMap::new();
    loop {
        let job = match frame::read(&mut stdin) {
            Ok(Some(bytes)) => serde_json::from_slice::<Job>(&bytes),
            Ok(None) => return ExitCode::SUCCESS,
            Err(_) => return ExitCode::FAILURE,
        };
        let reply = match job {
            Err(e) => Reply::Error(format!("unreadable job: {e}")),
            Ok(job) => answer(job, &mut cache, &watch),
        };
        // The answer is written under the watchdog's lock with the deadline cleared, so a job
        // gets exactly one answer.
        let mut running = watch.0.lock().unwrap_or_else(|e| e.into_inner());
        running.deadline = None;
        if send(&reply).is_err() {
            return ExitCode::FAILURE;
        }
        drop(running);
    }
}

/// Cap this process's data segment and mappings (the heap) at `bytes`.
fn limit_memory(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) };
    if set != 0 {
        // Without the limit the time bound still ends a run; say so where an operator looks.
        eprintln!(
            "transform worker: could not limit memory: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn answer(job: Job, cache: &mut HashMap<String, Arc<Program>>, watch: &(Mutex<Running>, Condvar)) -> Reply {
    let arm = |limit: Duration, what: String| {
        let mut running = watch.0.lock().unwrap_or_else(|e| e.into_inner());
        running.deadline = Some((Instant::now() + limit, what));
        watch.1.notify_one();
    };
    let program = match cache.get(&job.program) {
        Some(p) => p.clone(),
        None => {
            arm(
                COMPILE_LIMIT,
                format!("compiling took longer than {} ms", COMPILE_LIMIT.as_millis()),
            );
            match compile(&job.program) {
                Ok(p) => {
                    if cache.len() >= CACHE {
                        cache.clear();
                    }
                    let p = Arc::new(p);
                    cache.insert(job.program.clone(), p.clone());
                    p
                }
                Err(e) => return Reply::Error(e),
            }
        }
    };
    let Some(input) = job.input else {
        return Reply::Ok(Value::Null);
    };
    let limit = Duration::from_millis(job.timeout_ms.max(1));
    arm(limit, format!("the program ran longer than {} ms", limit.as_millis()));
    match run(&program, input) {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Error(e),
    }
}

fn send(reply: &Reply) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    frame::write(&mut out, &bytes)?;
    out.flush()
}

/// Answers for a job past its deadline, then ends the process (the job cannot be stopped
/// any other way).
fn watchdog(watch: &(Mutex<Running>, Condvar)) {
    let mut running = watch.0.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match &running.deadline {
            None => running = watch.1.wait(running).unwrap_or_else(|e| e.into_inner()),
            Some((at, what)) => {
                let now = Instant::now();
                if now >= *at {
                    send(&Reply::Timeout(what.clone())).ok();
                    std::process::exit(3);
                }
                let wait = *at - now;
                running = watch.1.wait_timeout(running, wait).unwrap_or_else(|e| e.into_inner()).0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_code(code: &str, input: Value) -> Result<Value, String> {
        run(&compile(code)?, input)
    }

    /// Why a program does not compile (it must not).
    fn compile_error(code: &str) -> String {
        compile(code).err().expect("a program that does not compile")
    }

    #[test]
    fn a_program_reshapes_its_input() {
        let input = json!({"type": "order.paid", "payload": {"total": 12, "items": [1, 2]}});
        assert_eq!(
            run_code("{payload: {kind: .type, n: (.payload.items | length)}}", input.clone()).unwrap(),
            json!({"payload": {"kind": "order.paid", "n": 2}})
        );
        // The standard library is there (map, select, ascii_downcase, @base64, test …).
        assert_eq!(
            run_code(
                r#"{payload: [.payload.items[] | select(. > 1)], headers: {"x-kind": (.type | ascii_upcase)}}"#,
                input
            )
            .unwrap(),
            json!({"payload": [2], "headers": {"x-kind": "ORDER.PAID"}})
        );
    }

    #[test]
    fn compile_errors_say_where() {
        let e = compile_error("{payload: .payload");
        assert!(e.starts_with("syntax error: expected"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let e = compile_error(".a |\n  nosuchfilter(1)");
        assert_eq!(e, "undefined filter nosuchfilter at line 2, column 3");
        assert_eq!(compile_error("  "), "is empty");
        assert!(compile_error(&"1+".repeat(MAX_PROGRAM)).contains("at most"));
        // No modules from disk.
        assert!(compile(r#"include "x"; ."#).is_err());
    }

    #[test]
    fn a_run_gives_exactly_one_output_or_an_error() {
        assert_eq!(run_code("empty", json!(1)).unwrap_err(), "the program gave no output");
        assert_eq!(
            run_code("1, 2", json!(1)).unwrap_err(),
            "the program gave more than one output"
        );
        let e = run_code(r#"error("no total")"#, json!(1)).unwrap_err();
        assert!(e.starts_with("the program failed:") && e.contains("no total"), "{e}");
        let e = run_code(".a.b", json!({"a": 3})).unwrap_err();
        assert!(e.starts_with("the program failed:"), "{e}");
    }

    #[test]
    fn the_environment_and_process_are_out_of_reach() {
        for code in [
            "env",
            "halt",
            "halt_error",
            "halt_error(1)",
            "input",
            "[inputs]",
            "$ENV",
        ] {
            let outcome = run_code(code, json!(null));
            assert!(outcome.is_err(), "{code}: {outcome:?}");
        }
    }

    #[test]
    fn an_output_over_a_mebibyte_is_refused() {
        let e = run_code(r#"[range(200000) | "abcdefgh"]"#, json!(null)).unwrap_err();
        assert!(e.contains("more than 1048576"), "{e}");
        assert!(run_code(r#"[range(1000) | "abcdefgh"] | length"#, json!(null)).is_ok());
        let deep = run_code("reduce range(130) as $_ (0; [.])", json!(null)).unwrap_err();
        assert!(deep.contains("deeper than 100"), "{deep}");
        assert!(run_code("reduce range(90) as $_ (0; [.])", json!(null)).is_ok());
    }
}
