//! The console's page of one delivery: its state and every attempt (time, status, latency,
//! error, the start of the answer), and a Replay button that starts a new attempt cycle through
//! the same code as the API (`deliveries::replay_delivery`, audited as the signed-in admin).

use super::audit::Origin;
use super::auth::Caller;
use super::console::{esc, not_found, page, posted, see_other, signed_in, unavailable, Csrf};
use super::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct Notice {
    replayed: Option<String>,
}

pub(super) async fn delivery_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let missing = || not_found(&session, "delivery");
    let Some((endpoint_id, event_id)) = crate::ids::parse_delivery_id(&id).filter(|_| crate::ids::is_tenant(&tenant))
    else {
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
        "<dl><dt>Status</dt><dd class=\"delivery-status\">{}</dd><dt>Endpoint</dt><dd><a href=\"/console/t/{}/e/{}\">{}</a></dd>\
         <dt>Event</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd><dt>Next attempt</dt><dd>{}</dd><dt>Reason</dt><dd>{}</dd></dl>",
        esc(&delivery.status),
        esc(&tenant),
        esc(&endpoint_id),
        esc(&endpoint_id),
        esc(&event_id),
        esc(&super::rfc3339(delivery.created_ms)),
        delivery.next_ms.map_or("–".to_string(), |ms| esc(&super::rfc3339(ms))),
        esc(delivery.reason.as_deref().unwrap_or("–")),
    );
    let replay = format!(
        "<form method=\"post\" action=\"/console/t/{}/d/{}/replay\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"replay\">Replay</button></form>",
        esc(&tenant),
        esc(&id),
        esc(&session.csrf)
    );
    let title = format!("Delivery {id}");
    let body = format!(
        "<h2>{}</h2>{notice}{facts}{replay}<h3>Attempts</h3>{attempts}",
        esc(&title)
    );
    page(StatusCode::OK, &title, Some(&session), &body)
}

pub(super) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    origin: Origin,
    Path((tenant, id)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> Response {
    let session = match posted(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    if !crate::ids::is_tenant(&tenant) {
        return not_found(&session, "delivery");
    }
    let author = origin.by(&Caller::Admin {
        id: session.admin.clone(),
    });
    match super::deliveries::replay_delivery(&state, &author, &tenant, &id).await {
        Ok(()) => see_other(&format!("/console/t/{tenant}/d/{id}?replayed=1")),
        Err(e) => page(
            e.status,
            "Not replayed",
            Some(&session),
            &format!("<p class=\"error\">{}</p>", esc(&e.message)),
        ),
    }
}
