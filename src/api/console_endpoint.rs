//! The console's page of one endpoint: its attempts by outcome and its latency p50/p99 over the
//! last hour (by minute), day or week (by hour), as SVG charts drawn here (no script); its
//! recent deliveries; and its buttons, each one call of the API as the viewer.

use super::auth::Scope;
use super::console::{esc, page, see_other, unavailable};
use super::console_viewer::Viewer;
use super::AppState;
use crate::store::stats::{quantile, Bucket, Outcome, LATENCY_EDGES_MS};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

/// Recent deliveries listed.
const RECENT: usize = 20;
const CHART_W: u64 = 720;
const CHART_H: u64 = 160;

/// What an endpoint's charts cover: the last hour by minute, the last day or week by hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    /// (bucket width in seconds, buckets)
    fn buckets(self) -> (u64, u64) {
        match self {
            Range::Hour => (60, 60),
            Range::Day => (3_600, 24),
            Range::Week => (3_600, 168),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Range::Hour => "the last hour",
            Range::Day => "the last 24 hours",
            Range::Week => "the last 7 days",
        }
    }

    /// The start of the first bucket shown at `now_s`.
    fn first(self, now_s: u64) -> u64 {
        let (step, count) = self.buckets();
        (now_s / step).saturating_sub(count - 1) * step
    }
}

/// The chart: one stacked bar per bucket (success, retry, failed, dead from the bottom), each
/// with a `<title>` giving its counts; `buckets` are those that had attempts.
pub(super) fn chart(buckets: &[Bucket], now_s: u64, range: Range) -> String {
    let (step, count) = range.buckets();
    let first = range.first(now_s);
    let tallest = buckets
        .iter()
        .map(|b| b.counts.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let bar_w = CHART_W / count;
    let mut bars = String::new();
    for b in buckets.iter().filter(|b| b.start_s >= first) {
        let x = (b.start_s - first) / step * bar_w;
        let mut y = CHART_H;
        for outcome in Outcome::ALL {
            let n = b.count(outcome);
            if n == 0 {
                continue;
            }
            let h = (n * CHART_H).div_ceil(tallest);
            y = y.saturating_sub(h);
            bars.push_str(&format!(
                "<rect class=\"{}\" x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{h}\"><title>{} {}: {n}</title></rect>",
                name(outcome),
                bar_w.saturating_sub(1).max(1),
                esc(&super::rfc3339(b.start_s * 1000)),
                name(outcome),
            ));
        }
    }
    format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"attempts per {}, {}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" \
         width=\"{CHART_W}\" height=\"{CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect class=\"frame\" x=\"0\" y=\"0\" width=\"{CHART_W}\" height=\"{CHART_H}\"></rect>{bars}</svg>",
        if step == 60 { "minute" } else { "hour" },
        range.label()
    )
}

/// Latency p50 and p99 of each bucket with attempts, as two lines (each point titled).
pub(super) fn latency_chart(buckets: &[Bucket], now_s: u64, range: Range) -> String {
    let (step, count) = range.buckets();
    let first = range.first(now_s);
    let bar_w = CHART_W / count;
    let points: Vec<(u64, u64, u64)> = buckets
        .iter()
        .filter(|b| b.start_s >= first)
        .filter_map(|b| {
            let x = (b.start_s - first) / step * bar_w + bar_w / 2;
            Some((x, quantile(&b.latency, 0.5)?, quantile(&b.latency, 0.99)?))
        })
        .collect();
    let highest = points.iter().map(|p| p.2).max().unwrap_or(0).max(1);
    let y = |ms: u64| CHART_H - (ms.min(highest) * (CHART_H - 4)) / highest;
    let mut lines = String::new();
    for (class, pick) in [("p50", 1usize), ("p99", 2usize)] {
        let value = |p: &(u64, u64, u64)| if pick == 1 { p.1 } else { p.2 };
        let path: Vec<String> = points.iter().map(|p| format!("{},{}", p.0, y(value(p)))).collect();
        lines.push_str(&format!(
            "<polyline class=\"{class}\" fill=\"none\" points=\"{}\"></polyline>",
            path.join(" ")
        ));
        for p in &points {
            lines.push_str(&format!(
                "<circle class=\"{class}\" cx=\"{}\" cy=\"{}\" r=\"2\"><title>{class} ≤ {} ms</title></circle>",
                p.0,
                y(value(p)),
                value(p)
            ));
        }
    }
    format!(
        "<svg class=\"chart latency\" role=\"img\" aria-label=\"latency p50 and p99, {}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" \
         width=\"{CHART_W}\" height=\"{CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect class=\"frame\" x=\"0\" y=\"0\" width=\"{CHART_W}\" height=\"{CHART_H}\"></rect>{lines}</svg>",
        range.label()
    )
}

fn name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Retry => "retry",
        Outcome::Failed => "failed",
        Outcome::Dead => "dead",
    }
}

/// The buckets added up: attempts by outcome, and the latency histogram.
pub(super) fn totals(buckets: &[Bucket]) -> ([u64; 4], [u64; LATENCY_EDGES_MS.len() + 1]) {
    let mut totals = [0u64; 4];
    let mut latency = [0u64; LATENCY_EDGES_MS.len() + 1];
    for b in buckets {
        for (t, n) in totals.iter_mut().zip(b.counts) {
            *t += n;
        }
        for (l, n) in latency.iter_mut().zip(b.latency) {
            *l += n;
        }
    }
    (totals, latency)
}

/// "N attempts in …: … ; latency p50 … ms, p99 … ms" over the buckets.
fn summary(buckets: &[Bucket], range: Range) -> String {
    let (totals, latency) = totals(buckets);
    let parts: Vec<String> = Outcome::ALL
        .iter()
        .zip(totals)
        .map(|(o, n)| format!("<span class=\"{}\">{n} {}</span>", name(*o), name(*o)))
        .collect();
    let ms = |q| quantile(&latency, q).map_or("–".to_string(), |v| format!("≤ {v} ms"));
    let total = totals.iter().sum::<u64>();
    format!(
        "<p class=\"summary\">{total} {} in {}: {}. Latency p50 {}, p99 {}.</p>",
        if total == 1 { "attempt" } else { "attempts" },
        range.label(),
        parts.join(", "),
        ms(0.5),
        ms(0.99)
    )
}

/// What an endpoint's page says after an action: `?sent=<event id>`, `?rotated=1`.
#[derive(Deserialize)]
pub(super) struct Notice {
    sent: Option<String>,
    rotated: Option<String>,
    /// `1h` (default), `24h` or `7d`; anything else is the default.
    range: Option<String>,
}

pub(super) async fn endpoint_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::EndpointsRead) {
        return answer;
    }
    let missing = || viewer.not_found("endpoint");
    if !crate::ids::is_endpoint_id(&id) {
        return missing();
    }
    let cfg = match state.store.get_endpoint(&id).await {
        Ok(Some(cfg)) if cfg.tenant == tenant => cfg,
        Ok(_) => return missing(),
        Err(e) => return unavailable(e),
    };
    let shard = state.node.shard_of(&id);
    let now_s = hookline_actors::now_ms() / 1000;
    let range = Range::ALL
        .into_iter()
        .find(|r| notice.range.as_deref() == Some(r.name()))
        .unwrap_or(Range::Hour);
    let which = [(shard, id.clone())];
    // Its attempts and deliveries are `deliveries:read` data, as in the API: a session without
    // that scope sees the endpoint's settings only.
    let sees_deliveries = viewer.may(Scope::DeliveriesRead);
    let (buckets, log) = if sees_deliveries {
        match tokio::try_join!(
            state
                .store
                .endpoint_stats(&id, range.buckets().0, range.first(now_s), now_s + 1),
            state.store.delivery_log_newest(&which, None, RECENT)
        ) {
            Ok(found) => found,
            Err(e) => return unavailable(e),
        }
    } else {
        (Vec::new(), Vec::new())
    };
    let newest: Vec<String> = log.into_iter().flatten().map(|(event_id, _)| event_id).collect();
    let items: Vec<(u32, &str, &str)> = newest.iter().map(|e| (shard, id.as_str(), e.as_str())).collect();
    let rows = match state.store.delivery_rows(&items).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let mut table = String::new();
    for (event_id, row) in newest.iter().zip(rows) {
        let Some(row) = row else { continue };
        table.push_str(&format!(
            "<tr><td class=\"id\"><a href=\"{}\">{}</a></td><td class=\"status\">{}</td>\
             <td class=\"number\">{}</td><td>{}</td><td>{}</td></tr>",
            viewer.link(&tenant, &format!("/d/{}", crate::ids::delivery_id(&id, event_id))),
            esc(event_id),
            esc(&row.status),
            row.attempts,
            esc(&super::rfc3339(row.created_ms)),
            esc(row.reason.as_deref().unwrap_or("")),
        ));
    }
    let deliveries = if table.is_empty() {
        "<p>No deliveries yet.</p>".to_string()
    } else {
        format!(
            "<table class=\"deliveries\"><thead><tr><th>Event</th><th>Status</th><th>Attempts</th><th>Created</th>\
             <th>Reason</th></tr></thead><tbody>{table}</tbody></table>"
        )
    };
    let title = format!("Endpoint {id}");
    let state_text = match (&cfg.disabled_reason, cfg.disabled) {
        (Some(reason), true) => format!("disabled ({reason})"),
        (None, true) => "disabled".to_string(),
        _ => "enabled".to_string(),
    };
    // Each action a form or a link, shown only to a viewer who may (a read-only portal session
    // may not), checked again by the API when posted.
    let toggle = if cfg.disabled {
        button(&viewer, &tenant, &id, "enable", "Enable", Scope::EndpointsWrite)
    } else {
        button(&viewer, &tenant, &id, "disable", "Disable", Scope::EndpointsWrite)
    };
    let mut actions = toggle;
    actions.push_str(&button(
        &viewer,
        &tenant,
        &id,
        "test",
        "Send a test event",
        Scope::EndpointsWrite,
    ));
    if viewer.may(Scope::EndpointsWrite) {
        actions.push_str(&format!(
            "<form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" id=\"rotate\">Rotate secret</button> keeping the old one for \
             <input name=\"overlap_s\" type=\"number\" min=\"0\" max=\"604800\" value=\"86400\" class=\"seconds\"> s</form>",
            viewer.link(&tenant, &format!("/e/{id}/rotate")),
            esc(&viewer.csrf)
        ));
    }
    actions.push_str(&button(
        &viewer,
        &tenant,
        &id,
        "secret",
        "Reveal secret",
        Scope::EndpointsSecrets,
    ));
    if viewer.may(Scope::EndpointsWrite) {
        actions.push_str(&format!(
            "<a class=\"action\" id=\"edit\" href=\"{}\">Edit</a><a class=\"action\" id=\"delete\" href=\"{}\">Delete…</a>",
            viewer.link(&tenant, &format!("/e/{id}/edit")),
            viewer.link(&tenant, &format!("/e/{id}/delete")),
        ));
    }
    let notice = match (&notice.sent, notice.rotated.is_some()) {
        (Some(event), _) if crate::ids::is_event_id(event) => format!(
            "<p class=\"notice\">Test event {} sent: <a id=\"test-delivery\" href=\"{}\">its delivery</a>.</p>",
            esc(event),
            viewer.link(&tenant, &format!("/d/{}", crate::ids::delivery_id(&id, event)))
        ),
        (_, true) => "<p class=\"notice\">Secret rotated: the old one signs beside it for the overlap.</p>".to_string(),
        _ => String::new(),
    };
    let ranges: Vec<String> = Range::ALL
        .iter()
        .map(|r| {
            if *r == range {
                format!("<strong>{}</strong>", r.name())
            } else {
                format!(
                    "<a id=\"range-{0}\" href=\"{1}?range={0}\">{0}</a>",
                    r.name(),
                    viewer.link(&tenant, &format!("/e/{id}"))
                )
            }
        })
        .collect();
    let ranges = ranges.join(" · ");
    let links = format!(
        "<p class=\"links\"><a href=\"{}\">All its deliveries</a> · <a id=\"dead-letters\" href=\"{}\">Dead letters</a></p>",
        viewer.link(&tenant, &format!("/deliveries?endpoint_id={id}")),
        viewer.link(&tenant, &format!("/e/{id}/dead-letters")),
    );
    let activity = if sees_deliveries {
        format!(
            "<h3>Attempts and latency over {}</h3><p class=\"ranges\">{ranges}</p>{}{}{}\
             <h3>Recent deliveries</h3>{links}{deliveries}",
            range.label(),
            chart(&buckets, now_s, range),
            summary(&buckets, range),
            latency_chart(&buckets, now_s, range),
        )
    } else {
        "<p class=\"no-deliveries\">This session may not read deliveries (deliveries:read).</p>".to_string()
    };
    let body = format!(
        "<p><a href=\"{}\">← endpoints of {}</a></p><h2>{}</h2>{notice}<p class=\"url\">{}</p>\
         <p>State: <span class=\"endpoint-state\">{}</span></p><div class=\"actions\">{actions}</div>{activity}",
        viewer.link(&tenant, ""),
        esc(&tenant),
        esc(&title),
        esc(&cfg.url),
        esc(&state_text),
    );
    page(StatusCode::OK, &title, Some(&viewer), &body)
}

/// What an endpoint's buttons post: the CSRF token, and the rotation's overlap.
#[derive(Deserialize)]
pub(super) struct Act {
    csrf: String,
    overlap_s: Option<String>,
}

/// A button of an endpoint's page: a form posting to `…/e/{id}/{action}` with the viewer's
/// CSRF token, shown only to a viewer whose caller may do it.
fn button(viewer: &Viewer, tenant: &str, id: &str, action: &str, label: &str, scope: Scope) -> String {
    if !viewer.may(scope) {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"{action}\">{label}</button></form>",
        viewer.link(tenant, &format!("/e/{id}/{action}")),
        esc(&viewer.csrf)
    )
}

/// `POST …/t/{tenant}/e/{id}/{action}`: `disable`, `enable`, `test` (send a test event),
/// `rotate` (a new secret, the old one signing beside it for `overlap_s`, a day by default) and `secret` (show it).
/// Each is one call of the API as the viewer's caller: what the API refuses, the page refuses.
pub(super) async fn act(
    viewer: Viewer,
    headers: HeaderMap,
    Path((tenant, id, action)): Path<(String, String, String)>,
    Form(form): Form<Act>,
) -> Response {
    if let Some(answer) = viewer.refuse_endpoint_post(&headers, &form.csrf, &tenant, &id) {
        return answer;
    }
    let api = format!("/v1/tenants/{tenant}/endpoints/{id}");
    let (method, path, body) = match action.as_str() {
        "disable" => (Method::PATCH, api, Some(json!({"disabled": true}))),
        "enable" => (Method::POST, format!("{api}/enable"), None),
        "test" => (Method::POST, format!("{api}/test"), None),
        "rotate" => {
            // As typed: the API checks the value and says what is wrong with it.
            let path = super::console_log::with_query(
                &format!("{api}/rotate-secret"),
                &[("overlap_s", form.overlap_s.as_deref())],
            );
            (Method::POST, path, None)
        }
        "secret" => (Method::GET, format!("{api}/secret"), None),
        _ => return viewer.not_found("action"),
    };
    let answer = viewer.call(method, &path, body.as_ref()).await;
    if !answer.ok() {
        return viewer.error(answer.status, "Not done", &answer.message());
    }
    let back = format!("{}/t/{tenant}/e/{id}", viewer.base());
    match action.as_str() {
        "test" => see_other(&format!(
            "{back}?sent={}",
            answer.body["id"].as_str().unwrap_or_default()
        )),
        "rotate" => see_other(&format!("{back}?rotated=1")),
        "secret" => {
            let secret = answer.body["secret"].as_str().unwrap_or_default();
            let body = format!(
                "<p><a href=\"{}\">← endpoint {}</a></p><h2>Signing secret</h2>\
                 <p>Receivers verify this endpoint's signatures with it. Reading it is recorded in the audit log.</p>\
                 <p><code class=\"secret\">{}</code></p>",
                viewer.link(&tenant, &format!("/e/{id}")),
                esc(&id),
                esc(secret)
            );
            page(StatusCode::OK, "Signing secret", Some(&viewer), &body)
        }
        _ => see_other(&back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_by_outcome_and_scale_to_the_busiest_minute() {
        let now_s = 1_800_000_030; // 30 s into a minute
        let minute = now_s / 60 * 60;
        let mut busy = Bucket {
            start_s: minute,
            ..Default::default()
        };
        busy.counts = [6, 2, 0, 0];
        let mut quiet = Bucket {
            start_s: minute - 600,
            ..Default::default()
        };
        quiet.counts = [0, 0, 1, 1];
        let svg = chart(&[quiet, busy], now_s, Range::Hour);
        // The busiest minute fills the height: 6 + 2 of 8.
        assert!(
            svg.contains("class=\"success\" x=\"708\" y=\"40\" width=\"11\" height=\"120\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"retry\" x=\"708\" y=\"0\" width=\"11\" height=\"40\""),
            "{svg}"
        );
        // Ten minutes earlier, two small bars; nothing is drawn for an outcome without attempts.
        assert!(svg.contains("class=\"failed\" x=\"588\""), "{svg}");
        assert!(svg.contains("class=\"dead\" x=\"588\""), "{svg}");
        assert_eq!(svg.matches("<rect class=\"success\"").count(), 1);
        assert_eq!(svg.matches("<title>").count(), 4);
        // Outside the hour: not drawn.
        let old = Bucket {
            start_s: minute - 7200,
            counts: [5, 0, 0, 0],
            ..Default::default()
        };
        assert!(!chart(&[old], now_s, Range::Hour).contains("<rect class=\"success\""));
    }

    #[test]
    fn a_week_is_drawn_by_the_hour_with_its_latency_lines() {
        let now_s = 1_800_000_030;
        let hour = now_s / 3_600 * 3_600;
        let mut b = Bucket {
            start_s: hour - 72 * 3_600,
            counts: [3, 0, 0, 1],
            ..Default::default()
        };
        // Three fast answers, one slow.
        b.latency[crate::store::stats::latency_bucket(8)] = 3;
        b.latency[crate::store::stats::latency_bucket(900)] = 1;
        let range = Range::Week;
        assert_eq!(range.first(now_s), hour - 167 * 3_600);
        // 168 bars of 4 px: 72 hours ago is bar 95.
        let svg = chart(std::slice::from_ref(&b), now_s, range);
        assert!(svg.contains("class=\"success\" x=\"380\""), "{svg}");
        assert!(svg.contains("attempts per hour, the last 7 days"), "{svg}");
        let lines = latency_chart(&[b], now_s, range);
        assert_eq!(lines.matches("<polyline").count(), 2, "{lines}");
        assert!(lines.contains("<title>p50 ≤ 10 ms</title>"), "{lines}");
        assert!(lines.contains("<title>p99 ≤ 1000 ms</title>"), "{lines}");
        // Outside the week: nothing.
        let old = Bucket {
            start_s: hour - 200 * 3_600,
            counts: [1, 0, 0, 0],
            ..Default::default()
        };
        assert!(!chart(&[old], now_s, range).contains("<rect class=\"success\""));
    }
}
