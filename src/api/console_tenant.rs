//! A tenant's first page in the console and the portal: its endpoints (100 a page) with
//! their state, backlog and last 24 hours, and the ways on (new endpoint, deliveries, events,
//! sources).

use super::auth::Scope;
use super::console::{esc, page, unavailable, PAGE};
use super::console_viewer::Viewer;
use super::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

/// The page's query: which page of endpoints (`?at=<offset>`, default 0), and what it says
/// after a deletion (`?deleted=<id>&dropped=<n>`). A value that is not a number is ignored.
#[derive(Deserialize)]
pub(super) struct Deleted {
    at: Option<String>,
    deleted: Option<String>,
    dropped: Option<String>,
}

pub(super) async fn tenant_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(deleted): Query<Deleted>,
) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::EndpointsRead) {
        return answer;
    }
    let at = deleted
        .at
        .as_deref()
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1_000_000);
    let (endpoints, more) = match state.store.list_endpoints(&tenant, at, PAGE).await {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };
    // Each endpoint's backlog, breaker and last 24 hours, all read at once.
    let now_s = hookline_actors::now_ms() / 1000;
    let day_from = (now_s / 3_600).saturating_sub(23) * 3_600;
    // The last 24 hours are `deliveries:read` data, as in the API (backlog and breaker are part
    // of an endpoint's `state`).
    let sees_deliveries = viewer.may(Scope::DeliveriesRead);
    let store = &state.store;
    let facts = crate::store::join_all(endpoints.iter().map(|cfg| {
        let shard = state.node.shard_of(&cfg.id);
        async move {
            let day = async {
                if sees_deliveries {
                    store.endpoint_stats(&cfg.id, 3_600, day_from, now_s + 1).await
                } else {
                    Ok(Vec::new())
                }
            };
            tokio::try_join!(store.backlog(&cfg.id, shard), store.load_health(&cfg.id, shard), day)
        }
    }))
    .await;
    let mut rows = String::new();
    for (cfg, found) in endpoints.iter().zip(facts) {
        let (backlog, health, day) = match found {
            Ok(found) => found,
            Err(e) => return unavailable(e),
        };
        let status = match (&cfg.disabled_reason, cfg.disabled) {
            (Some(reason), true) => format!("disabled ({reason})"),
            (None, true) => "disabled".to_string(),
            _ => health.breaker.state.name().to_string(),
        };
        let (counts, latency) = super::console_endpoint::totals(&day);
        let attempts: u64 = counts.iter().sum();
        let success = if attempts == 0 {
            "–".to_string()
        } else {
            format!("{:.1}%", counts[0] as f64 * 100.0 / attempts as f64)
        };
        let p99 = crate::store::stats::quantile(&latency, 0.99).map_or("–".to_string(), |ms| format!("≤ {ms} ms"));
        let day = if sees_deliveries {
            format!("<td class=\"number success-rate\">{success}</td><td class=\"number p99\">{p99}</td>")
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr><td class=\"id\"><a href=\"{}\">{}</a></td><td>{}</td><td class=\"description\">{}</td>\
             <td>{}</td><td class=\"state\">{}</td><td class=\"number\">{backlog}</td>{day}</tr>",
            viewer.link(&tenant, &format!("/e/{}", cfg.id)),
            esc(&cfg.id),
            esc(&cfg.url),
            esc(cfg.description.as_deref().unwrap_or("")),
            esc(&cfg.event_types.join(", ")),
            esc(&status),
        ));
    }
    let table = if endpoints.is_empty() {
        "<p>No endpoints yet.</p>".to_string()
    } else {
        format!(
            "<table class=\"endpoints\"><thead><tr><th>ID</th><th>URL</th><th>Description</th><th>Event types</th>\
             <th>State</th><th>Backlog</th>{}</tr></thead><tbody>{rows}</tbody></table>{}",
            if sees_deliveries {
                "<th>Success, 24 h</th><th>p99, 24 h</th>"
            } else {
                ""
            },
            pager(&viewer, &tenant, at, endpoints.len(), more)
        )
    };
    let title = format!("Endpoints of {tenant}");
    let notice = match (
        deleted.deleted.filter(|id| crate::ids::is_endpoint_id(id)),
        deleted.dropped,
    ) {
        (Some(id), dropped) => format!(
            "<p class=\"notice\">Endpoint {} deleted; {} pending deliveries dropped.</p>",
            esc(&id),
            dropped.and_then(|d| d.parse::<u64>().ok()).unwrap_or(0)
        ),
        _ => String::new(),
    };
    let new = if viewer.may(Scope::EndpointsWrite) {
        format!(
            "<a class=\"action\" id=\"new\" href=\"{}\">New endpoint</a> · ",
            viewer.link(&tenant, "/new")
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h2>{}</h2>{notice}<p class=\"links\">{new}<a id=\"log\" href=\"{}\">Deliveries</a> · \
         <a href=\"{}\">Find an event</a> · <a id=\"sources\" href=\"{}\">Sources</a> · \
         <a id=\"notifications\" href=\"{}\">Notifications</a></p>{table}",
        esc(&title),
        viewer.link(&tenant, "/deliveries"),
        viewer.link(&tenant, "/events"),
        viewer.link(&tenant, "/sources"),
        viewer.link(&tenant, "/notifications"),
    );
    page(StatusCode::OK, &title, Some(&viewer), &body)
}

/// "Endpoints a–b · ← Previous · Next →" under the list, by offset.
fn pager(viewer: &Viewer, tenant: &str, at: usize, shown: usize, next: Option<usize>) -> String {
    if at == 0 && next.is_none() {
        return String::new();
    }
    let link = |offset: usize, id: &str, label: &str| {
        format!(
            "<a id=\"{id}\" href=\"{}\">{label}</a>",
            viewer.link(tenant, &format!("?at={offset}"))
        )
    };
    let mut parts = vec![format!("Endpoints {}–{}", at + 1, at + shown)];
    if at > 0 {
        parts.push(link(at.saturating_sub(PAGE), "previous", "← Previous"));
    }
    if let Some(offset) = next {
        parts.push(link(offset, "next", "Next →"));
    }
    format!("<p class=\"pager\">{}</p>", parts.join(" · "))
}
