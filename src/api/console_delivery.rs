//! The console's page of one delivery: its state and every attempt (time, status, latency,
//! error, the start of the answer), and a Replay button that starts a new attempt cycle through
//! the same code as the API (`deliveries::replay_delivery`, audited as the viewer: the admin,
//! or the portal session).

use super::auth::Scope;
use super::console::{esc, page, see_other, unavailable, Csrf};
use super::console_viewer::Viewer;
use super::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct Notice {
    replayed: Option<String>,
}

pub(super) async fn delivery_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::DeliveriesRead) {
        return answer;
    }
    let missing = || viewer.not_found("delivery");
    let Some((endpoint_id, event_id)) = crate::ids::parse_delivery_id(&id) else {
        return missing();
    };
    match state.store.get_endpoint(&endpoint_id).await {
        Ok(Some(cfg)) if cfg.tenant == tenant => {}
        Ok(_) => return missing(),
        Err(e) => return unavailable(e),
    }
    let shard = state.node.shard_of(&endpoint_id);
    let delivery = match state.store.get_delivery(shard, &endpoint_id, &event_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return missing(),
        Err(e) => return unavailable(e),
    };
    let mut rows = String::new();
    for a in &delivery.attempts {
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"status-code\">{}</td><td class=\"number\">{}</td><td class=\"error\">{}</td>\
             <td class=\"excerpt\">{}</td></tr>",
            esc(&super::rfc3339(a.at_ms)),
            a.status_code.map_or("–".to_string(), |c| c.to_string()),
            a.latency_ms,
            esc(a.error.as_deref().unwrap_or("")),
            esc(&a.response_excerpt.chars().take(200).collect::<String>()),
        ));
    }
    let attempts = if rows.is_empty() {
        "<p>No attempt yet.</p>".to_string()
    } else {
        format!(
            "<table class=\"attempts\"><thead><tr><th>At</th><th>Status</th><th>Latency (ms)</th><th>Error</th>\
             <th>Answer</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let notice = if notice.replayed.is_some() {
        "<p class=\"notice\">Replayed: a new attempt cycle has started.</p>"
    } else {
        ""
    };
    let facts = format!(
        "<dl><dt>Status</dt><dd class=\"delivery-status\">{}</dd><dt>Endpoint</dt><dd><a href=\"{}\">{}</a></dd>\
         <dt>Event</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd><dt>Next attempt</dt><dd>{}</dd><dt>Reason</dt><dd>{}</dd></dl>",
        esc(&delivery.status),
        viewer.link(&tenant, &format!("/e/{endpoint_id}")),
        esc(&endpoint_id),
        esc(&event_id),
        esc(&super::rfc3339(delivery.created_ms)),
        delivery.next_ms.map_or("–".to_string(), |ms| esc(&super::rfc3339(ms))),
        esc(delivery.reason.as_deref().unwrap_or("–")),
    );
    let replay = if viewer.may(Scope::DeliveriesReplay) {
        format!(
            "<form method=\"post\" action=\"{}\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"replay\">Replay</button></form>",
            viewer.link(&tenant, &format!("/d/{id}/replay")),
            esc(&viewer.csrf)
        )
    } else {
        String::new()
    };
    let title = format!("Delivery {id}");
    let body = format!(
        "<h2>{}</h2>{notice}{facts}{replay}<h3>Attempts</h3>{attempts}",
        esc(&title)
    );
    page(StatusCode::OK, &title, Some(&viewer), &body)
}

/// `POST …/t/{tenant}/d/{id}/replay`: what `POST /v1/tenants/{t}/deliveries/{id}/replay` does,
/// as the viewer's caller.
pub(super) async fn replay(
    viewer: Viewer,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> Response {
    if let Some(answer) = viewer.refuse_post(&headers, &form.csrf) {
        return answer;
    }
    if !crate::ids::is_tenant(&tenant) || crate::ids::parse_delivery_id(&id).is_none() {
        return viewer.not_found("delivery");
    }
    let answer = viewer
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant}/deliveries/{id}/replay"),
            None,
        )
        .await;
    if !answer.ok() {
        return viewer.error(answer.status, "Not replayed", &answer.message());
    }
    see_other(&format!("{}/t/{tenant}/d/{id}?replayed=1", viewer.base()))
}
