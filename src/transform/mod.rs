//! Endpoint transforms (issue 21): a jq program (jaq) per endpoint that reshapes each
//! delivery before it is signed and sent (`shape`). Programs never run in the node: a pool of
//! worker processes (`pool`, running `worker` as `hookline transform-worker`) compiles and runs
//! them, so a program that loops, recurses too deep or eats memory harms only its worker.

pub mod frame;
pub mod pool;
pub mod shape;
pub mod worker;

pub use pool::{RunError, Transforms};

use hookline_actors::transport::FailureKind;
use hookline_actors::{AttemptRequest, TransformSpec};
use shape::Shaped;

/// `hookline_transforms_total{outcome}`: runs by what came of them.
pub const RUNS: &str = "hookline_transforms_total";

/// The request as the endpoint's transform shapes it (and whether it set the body), or why
/// there is nothing to send:
/// `Cancelled`, `TransformFailed` (the program's fault, never retried) or `Other` (no worker:
/// retried).
pub async fn apply(
    transforms: &Transforms,
    require_https: bool,
    spec: &TransformSpec,
    mut req: AttemptRequest,
) -> Result<(AttemptRequest, bool), (FailureKind, String)> {
    let failed = |why: String| {
        metrics::counter!(RUNS, "outcome" => "failed").increment(1);
        (FailureKind::TransformFailed, format!("transform_failed: {why}"))
    };
    let input = shape::input(&req.event_id, &spec.event, spec).map_err(failed)?;
    let output = match transforms.run(&spec.program, input).await {
        Ok(output) => output,
        Err(RunError::Program(why)) => return Err(failed(why)),
        Err(RunError::Unavailable(why)) => {
            metrics::counter!(RUNS, "outcome" => "unavailable").increment(1);
            return Err((FailureKind::Other, format!("transform not run: {why}")));
        }
    };
    match shape::shape(output, require_https).map_err(failed)? {
        Shaped::Cancel => {
            metrics::counter!(RUNS, "outcome" => "cancelled").increment(1);
            Err((FailureKind::Cancelled, "cancelled by the endpoint's transform".into()))
        }
        Shaped::Send { body, headers, url } => {
            metrics::counter!(RUNS, "outcome" => "ok").increment(1);
            let body_set = body.is_some();
            if let Some(body) = body {
                req.body = body.into();
            }
            for (name, value) in headers {
                req.headers.retain(|have, _| !have.eq_ignore_ascii_case(&name));
                req.headers.insert(name, value);
            }
            if let Some(url) = url {
                req.url = url;
            }
            Ok((req, body_set))
        }
    }
}
