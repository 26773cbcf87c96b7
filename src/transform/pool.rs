//! The node's side of transforms: a pool of `hookline transform-worker` processes, started on
//! first use, each answering one job at a time. A worker that ran out of time, crashed or
//! stopped answering is killed and replaced before its next job.

use super::frame;
use super::worker::{Job, Reply};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Why a transform gave no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The program's own fault (an error, too slow, too big, a crash): dead-letter it.
    Program(String),
    /// No worker could be started or reached: the node's fault, worth trying again later.
    Unavailable(String),
}

/// Beyond the run's own limit (and a first compile's second): how long the node waits for a
/// worker that answers nothing (it may not even have been scheduled on a busy machine) before
/// killing it.
const UNRESPONSIVE: Duration = Duration::from_secs(3);

struct Task {
    job: Vec<u8>,
    reply: oneshot::Sender<Result<Reply, RunError>>,
}

pub struct Transforms {
    tasks: mpsc::Sender<Task>,
    timeout_ms: u64,
    /// The longest a caller waits for its answer, queued or running.
    wait: Duration,
}

impl Transforms {
    /// A pool of `workers` workers of this very binary (`std::env::current_exe`), each run
    /// limited to `timeout_ms` (`transform.*`).
    pub fn new(workers: usize, timeout_ms: u64) -> Arc<Transforms> {
        let exe = std::env::current_exe().map_err(|e| e.to_string());
        let (tasks, queue) = mpsc::channel(1024);
        let queue = Arc::new(Mutex::new(queue));
        let backstop = Duration::from_millis(timeout_ms) + UNRESPONSIVE;
        for _ in 0..workers {
            tokio::spawn(serve(exe.clone(), queue.clone(), backstop));
        }
        Arc::new(Transforms {
            tasks,
            timeout_ms,
            wait: backstop * 4,
        })
    }

    /// Does the program compile? `Err` says what is wrong with it (`RunError::Program`).
    pub async fn check(&self, program: &str) -> Result<(), RunError> {
        self.call(Job {
            program: program.to_string(),
            input: None,
            timeout_ms: self.timeout_ms,
        })
        .await
        .map(|_| ())
    }

    /// The program's one output on `input`.
    pub async fn run(&self, program: &str, input: Value) -> Result<Value, RunError> {
        self.call(Job {
            program: program.to_string(),
            input: Some(input),
            timeout_ms: self.timeout_ms,
        })
        .await
    }

    async fn call(&self, job: Job) -> Result<Value, RunError> {
        let job = serde_json::to_vec(&job).map_err(|e| RunError::Program(e.to_string()))?;
        let (reply, answer) = oneshot::channel();
        let gone = || RunError::Unavailable("the transform workers have stopped".into());
        // Waiting for a free worker is bounded too: a busy pool makes the delivery wait for a
        // retry, not hold its slot without end.
        let queued = async {
            self.tasks.send(Task { job, reply }).await.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        };
        let answered = tokio::time::timeout(self.wait, queued).await.map_err(|_| {
            RunError::Unavailable(format!(
                "the transform workers were busy for {} ms",
                self.wait.as_millis()
            ))
        })?;
        match answered? {
            Reply::Ok(v) => Ok(v),
            Reply::Error(e) | Reply::Timeout(e) => Err(RunError::Program(e)),
        }
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Worker {
    fn start(exe: &PathBuf) -> std::io::Result<Worker> {
        let mut child = Command::new(exe)
            .arg("transform-worker")
            // Nothing of the node's environment (its keys, its Redis URL) reaches a program.
            .env_clear()
            // The worker caps its heap (`worker::MEMORY_LIMIT`, RLIMIT_DATA); mimalloc's default
            // 1 GiB arena reservation would leave it no room for anything: reserve in 16 MiB steps.
            .env("MIMALLOC_ARENA_RESERVE", "16MiB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the worker has no pipes"));
        };
        Ok(Worker { child, stdin, stdout })
    }

    async fn stop(mut self) {
        self.child.start_kill().ok();
        self.child.wait().await.ok();
    }
}

/// One worker's life: take the next job, answer it, replace the process when it ends.
async fn serve(exe: Result<PathBuf, String>, queue: Arc<Mutex<mpsc::Receiver<Task>>>, backstop: Duration) {
    let mut worker: Option<Worker> = None;
    loop {
        let Some(task) = queue.lock().await.recv().await else {
            break;
        };
        let answer = match &exe {
            Ok(exe) => answer(exe, &mut worker, &task.job, backstop).await,
            Err(e) => Err(RunError::Unavailable(format!("cannot find the node's binary: {e}"))),
        };
        task.reply.send(answer).ok();
    }
    if let Some(w) = worker {
        w.stop().await;
    }
}

async fn answer(exe: &PathBuf, slot: &mut Option<Worker>, job: &[u8], backstop: Duration) -> Result<Reply, RunError> {
    // A worker that ended between jobs shows it on the write: one fresh start, then give up.
    for _ in 0..2 {
        let mut worker = match slot.take() {
            Some(w) => w,
            None => Worker::start(exe)
                .map_err(|e| RunError::Unavailable(format!("cannot start a transform worker: {e}")))?,
        };
        if frame::write_async(&mut worker.stdin, job).await.is_err() {
            worker.stop().await;
            continue;
        }
        let read = tokio::time::timeout(backstop, frame::read_async(&mut worker.stdout)).await;
        let reply = match read {
            // A whole answer that does not parse is the output's doing (the worker's framing
            // held), not the node's.
            Ok(Ok(Some(bytes))) => serde_json::from_slice::<Reply>(&bytes)
                .map_err(|e| RunError::Program(format!("the output could not be read back: {e}"))),
            Ok(Ok(None)) | Ok(Err(_)) => Err(RunError::Program(
                "the program crashed its worker (recursion too deep or out of memory)".into(),
            )),
            // The worker's own watchdog did not answer: the machine, not the program, is the
            // likelier cause; try the delivery again later.
            Err(_) => Err(RunError::Unavailable(format!(
                "no answer from a transform worker within {} ms",
                backstop.as_millis()
            ))),
        };
        match reply {
            Ok(Reply::Ok(_)) | Ok(Reply::Error(_)) => *slot = Some(worker),
            // A timed-out worker ends itself; any other failure leaves it in an unknown state.
            _ => worker.stop().await,
        }
        return reply;
    }
    Err(RunError::Unavailable(
        "transform workers end as soon as they start".into(),
    ))
}
