//! Group commit of lone events (`RedisStore::ingest_plain`): the requests that each store one
//! event with nothing to check hand their two writes (the record's `SET … EX`, the entry's
//! `XADD`) to their events partition's committer task, which pipelines all the writes waiting at
//! that moment in one round trip, at most `MAX_EVENTS`, and answers each request with its own
//! event's result. With nothing in flight an event goes at once (no added wait); under load the
//! events that came during one round trip go together in the next, so many producers cost Redis
//! one read and one reply per round trip instead of one per event, and the node one pipeline and
//! one socket write. Each event keeps its own outcome: it is stored only if both its writes were,
//! and an entry whose record was refused is taken back (`XDEL`), as for an event written alone.
//!
//! One committer per partition: a partition's keys share one hash tag, so on Redis Cluster a
//! round trip goes to one master, and a master that fails or is slow holds up only its own
//! partitions' events, as it did when each event went alone. A round trip that fails as a whole
//! (no connection, the command timeout) fails each of its events; while one is in flight the
//! next group waits, so an event may wait up to two command timeouts when Redis is away.
//!
//! A producer's next event is sent after its last was answered, so the stream keeps each
//! producer's order; events of one round trip are appended in the order they were handed over.

use super::{text, Error, Result};
use fred::clients::Pool;
use fred::prelude::*;
use fred::types::streams::{XCap, XCapKind, XCapTrim, XID};
use fred::types::Value;
use tokio::sync::{mpsc, oneshot};

/// At most this many events in one round trip; the rest go in the next.
const MAX_EVENTS: usize = 256;

/// One event's two writes, built by the request that stores it.
pub(super) struct Write {
    /// The event record's key and its value (`event_record::encode`).
    pub record_key: String,
    pub record: String,
    /// The partition's stream and the entry's fields.
    pub stream: String,
    pub entry: Vec<(&'static str, String)>,
}

type Queued = (Write, oneshot::Sender<Result<()>>);

/// The handles of the committer tasks, one per events partition; the tasks end when the store
/// (holding this) is dropped.
pub(super) struct Committer {
    queues: Vec<mpsc::Sender<Queued>>,
    pool: Pool,
    retention_s: u64,
}

impl Committer {
    /// Start a committer per partition on this pool (it must run inside the Tokio runtime).
    pub fn start(pool: Pool, retention_s: u64, partitions: u32) -> Committer {
        let queues = (0..partitions.max(1))
            .map(|_| {
                let (queue, queued) = mpsc::channel(4 * MAX_EVENTS);
                tokio::spawn(run(pool.clone(), retention_s, queued));
                queue
            })
            .collect();
        Committer {
            queues,
            pool,
            retention_s,
        }
    }

    /// Store one event's writes (for this partition) with whatever else is waiting; its own
    /// result. Should the partition's committer be gone (it cannot panic on anything it is
    /// given, but if it did), the event is written alone.
    pub async fn commit(&self, partition: u32, write: Write) -> Result<()> {
        let queue = &self.queues[partition as usize % self.queues.len()];
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((write, _))) = queue.send((write, reply)).await {
            tracing::error!(partition, "the ingest committer is gone; writing alone");
            let mut write = write;
            let written = write_all(self.pool.next(), self.retention_s, std::slice::from_mut(&mut write)).await;
            return written
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(Error::corrupt("ingest reply")));
        }
        // Gone with the event in hand: whether it was written is unknown, as for a lost reply.
        answer.await.unwrap_or_else(|_| {
            Err(Error::from(fred::error::Error::new(
                ErrorKind::Canceled,
                "the ingest committer stopped during the write",
            )))
        })
    }
}

async fn run(pool: Pool, retention_s: u64, mut queued: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_EVENTS);
    while queued.recv_many(&mut batch, MAX_EVENTS).await > 0 {
        let (mut writes, replies): (Vec<Write>, Vec<_>) = batch.drain(..).unzip();
        let results = write_all(pool.next(), retention_s, &mut writes).await;
        for (reply, result) in replies.into_iter().zip(results) {
            reply.send(result).ok();
        }
    }
}

/// Pipeline the writes of these events on one connection, in order, and say for each whether
/// both of its writes were made (an entry whose record was refused is deleted again). The
/// records and entries are moved into the pipeline (a record holds the event's body: no copy).
pub(super) async fn write_all(client: &Client, retention_s: u64, writes: &mut [Write]) -> Vec<Result<()>> {
    let started = std::time::Instant::now();
    let now = hookline_actors::now_ms();
    let oldest_kept = format!("{}-0", now.saturating_sub(retention_s * 1000));
    let cap = match XCap::try_from((XCapKind::MinID, XCapTrim::AlmostExact, oldest_kept)) {
        Ok(cap) => cap,
        Err(e) => return writes.iter().map(|_| Err(e.clone().into())).collect(),
    };
    let pipeline = client.pipeline();
    let expiry = Some(Expiration::EX(retention_s as i64));
    for write in writes.iter_mut() {
        // Queueing in a pipeline only buffers the command: it fails on nothing these carry.
        let record = std::mem::take(&mut write.record);
        let queued: std::result::Result<(), _> = pipeline
            .set(&write.record_key, record, expiry.clone(), None, false)
            .await;
        let entry = std::mem::take(&mut write.entry);
        let appended: std::result::Result<(), _> =
            pipeline.xadd(&write.stream, false, cap.clone(), XID::Auto, entry).await;
        if let Err(e) = queued.and(appended) {
            return writes.iter().map(|_| Err(e.clone().into())).collect();
        }
    }
    let replies = pipeline.try_all::<Value>().await;
    metrics::histogram!(hookline_actors::names::REDIS_LATENCY, "op" => "ingest")
        .record(started.elapsed().as_secs_f64());
    if replies.len() != 2 * writes.len() {
        // The pipeline failed as a whole (no connection, a timeout): one error for all of it.
        let error = match replies.into_iter().find_map(|r| r.err()) {
            Some(e) => Error::from(e),
            None => Error::corrupt("ingest reply"),
        };
        return writes.iter().map(|_| Err(error.clone())).collect();
    }
    let mut replies = replies.into_iter();
    let mut results = Vec::with_capacity(writes.len());
    for write in writes.iter() {
        results.push(match (replies.next(), replies.next()) {
            (Some(Ok(_)), Some(Ok(_))) => Ok(()),
            (Some(Err(e)), Some(Ok(id))) => {
                if let Some(id) = text(&id) {
                    let taken: std::result::Result<u64, _> = client.xdel(&write.stream, &id).await;
                    if let Err(x) = taken {
                        tracing::warn!(stream = write.stream, entry = id, error = %x, "an entry whose record was refused stays");
                    }
                }
                Err(e.into())
            }
            (_, Some(Err(e))) | (Some(Err(e)), _) => Err(e.into()),
            _ => Err(Error::corrupt("ingest reply")),
        });
    }
    results
}
