//! The console's logs: a tenant's deliveries with filters (`…/t/{tenant}/deliveries`), an event
//! looked up by id with where it went (`…/t/{tenant}/events?id=`), and an endpoint's dead
//! letters with replay one and replay all since (`…/e/{id}/dead-letters`). Every list is the
//! API's own answer, read as the viewer's caller; the pages only render it.

use super::auth::Scope;
use super::console::{esc, page, see_other};
use super::console_viewer::{Answer, Viewer};
use axum::extract::{Form, Path, Query};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

/// `path` with the query `pairs` that have a value, encoded.
pub(super) fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://node").expect("a fixed base");
    url.set_path(path);
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
                query.append_pair(name, value);
            }
        }
    }
    match url.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}", url.path()),
        _ => url.path().to_string(),
    }
}

/// A delivery's first two cells: its id and its endpoint's, each a link to its page.
fn delivery_cells(viewer: &Viewer, tenant: &str, d: &Value) -> String {
    let id = d["id"].as_str().unwrap_or_default();
    let endpoint = d["endpoint_id"].as_str().unwrap_or_default();
    format!(
        "<td class=\"id\"><a href=\"{}\">{}</a></td><td class=\"id\"><a href=\"{}\">{}</a></td>",
        viewer.link(tenant, &format!("/d/{id}")),
        esc(id),
        viewer.link(tenant, &format!("/e/{endpoint}")),
        esc(endpoint),
    )
}

fn text(value: &Value) -> String {
    esc(value.as_str().unwrap_or(""))
}

/// The API's refusal as the page's error line, or nothing.
fn refusal(answer: &Answer) -> String {
    if answer.ok() {
        String::new()
    } else {
        format!("<p class=\"error\">{}</p>", esc(&answer.message()))
    }
}

fn status_of(answer: &Answer) -> StatusCode {
    if answer.ok() {
        StatusCode::OK
    } else {
        answer.status
    }
}

#[derive(Deserialize)]
pub(super) struct DeliveryFilter {
    endpoint_id: Option<String>,
    event_id: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

/// `GET …/t/{tenant}/deliveries?endpoint_id=&event_id=&status=&from=&to=&cursor=`.
pub(super) async fn deliveries(
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(filter): Query<DeliveryFilter>,
) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::DeliveriesRead) {
        return answer;
    }
    let filters = [
        ("endpoint_id", filter.endpoint_id.as_deref()),
        ("event_id", filter.event_id.as_deref()),
        ("status", filter.status.as_deref()),
        ("from", filter.from.as_deref()),
        ("to", filter.to.as_deref()),
    ];
    let mut asked = filters.to_vec();
    asked.push(("cursor", filter.cursor.as_deref()));
    let answer = viewer
        .call(
            Method::GET,
            &with_query(&format!("/v1/tenants/{tenant}/deliveries"), &asked),
            None,
        )
        .await;
    let mut rows = String::new();
    for d in answer.body["data"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr>{}<td class=\"id\"><a href=\"{}\">{}</a></td><td class=\"status\">{}</td><td class=\"number\">{}</td>\
             <td>{}</td><td>{}</td></tr>",
            delivery_cells(&viewer, &tenant, d),
            esc(&with_query(
                &format!("{}/t/{tenant}/events", viewer.base()),
                &[("id", d["event_id"].as_str())]
            )),
            text(&d["event_id"]),
            text(&d["status"]),
            d["attempts"].as_u64().unwrap_or(0),
            text(&d["created_at"]),
            text(&d["reason"]),
        ));
    }
    let table = if rows.is_empty() {
        "<p>No deliveries match.</p>".to_string()
    } else {
        format!(
            "<table class=\"log\"><thead><tr><th>Delivery</th><th>Endpoint</th><th>Event</th><th>Status</th>\
             <th>Attempts</th><th>Created</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let next = match answer.body["next_cursor"].as_str() {
        Some(cursor) => {
            let mut pairs = filters.to_vec();
            pairs.push(("cursor", Some(cursor)));
            format!(
                "<p><a id=\"older\" href=\"{}\">Older →</a></p>",
                esc(&with_query(&format!("{}/t/{tenant}/deliveries", viewer.base()), &pairs))
            )
        }
        None => String::new(),
    };
    let chosen = filter.status.as_deref().unwrap_or("");
    let options: String = ["", "pending", "delivered", "failed", "dead"]
        .iter()
        .map(|s| {
            format!(
                "<option value=\"{s}\"{}>{}</option>",
                if *s == chosen { " selected" } else { "" },
                if s.is_empty() { "any" } else { s }
            )
        })
        .collect();
    let body = format!(
        "<p><a href=\"{}\">← endpoints of {}</a></p><h2>Deliveries</h2>\
         <form method=\"get\" action=\"{}\" class=\"filters\">\
         <label>Endpoint <input name=\"endpoint_id\" value=\"{}\" placeholder=\"ep_…\"></label>\
         <label>Event <input name=\"event_id\" value=\"{}\" placeholder=\"evt_…\"></label>\
         <label>Status <select name=\"status\">{options}</select></label>\
         <label>From <input name=\"from\" value=\"{}\" placeholder=\"2026-01-31T12:00:00Z\"></label>\
         <label>To <input name=\"to\" value=\"{}\" placeholder=\"(now)\"></label>\
         <button type=\"submit\" id=\"filter\">Filter</button></form>{}{table}{next}",
        viewer.link(&tenant, ""),
        esc(&tenant),
        viewer.link(&tenant, "/deliveries"),
        esc(filter.endpoint_id.as_deref().unwrap_or("")),
        esc(filter.event_id.as_deref().unwrap_or("")),
        esc(filter.from.as_deref().unwrap_or("")),
        esc(filter.to.as_deref().unwrap_or("")),
        refusal(&answer),
    );
    page(status_of(&answer), "Deliveries", Some(&viewer), &body)
}

#[derive(Deserialize)]
pub(super) struct EventQuery {
    id: Option<String>,
}

/// `GET …/t/{tenant}/events?id=`: the event's type, time and payload, and its deliveries.
pub(super) async fn event(viewer: Viewer, Path(tenant): Path<String>, Query(q): Query<EventQuery>) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::EventsRead) {
        return answer;
    }
    let id = q.id.as_deref().map(str::trim).unwrap_or("");
    let form = format!(
        "<form method=\"get\" action=\"{}\" class=\"filters\"><label>Event id \
         <input name=\"id\" value=\"{}\" placeholder=\"evt_…\"></label><button type=\"submit\" id=\"find\">Find</button></form>",
        viewer.link(&tenant, "/events"),
        esc(id)
    );
    let back = format!(
        "<p><a href=\"{}\">← endpoints of {}</a></p><h2>Event</h2>",
        viewer.link(&tenant, ""),
        esc(&tenant)
    );
    if id.is_empty() {
        return page(StatusCode::OK, "Event", Some(&viewer), &format!("{back}{form}"));
    }
    if !crate::ids::is_event_id(id) {
        let body = format!(
            "{back}{form}<p class=\"error\">{} is not an event id (evt_…).</p>",
            esc(&format!("{id:?}"))
        );
        return page(StatusCode::BAD_REQUEST, "Event", Some(&viewer), &body);
    }
    let answer = viewer
        .call(Method::GET, &format!("/v1/tenants/{tenant}/events/{id}"), None)
        .await;
    if !answer.ok() {
        let body = format!("{back}{form}{}", refusal(&answer));
        return page(answer.status, "Event", Some(&viewer), &body);
    }
    let e = &answer.body;
    let mut rows = String::new();
    for d in e["deliveries"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr>{}<td class=\"status\">{}</td><td class=\"number\">{}</td></tr>",
            delivery_cells(&viewer, &tenant, d),
            text(&d["status"]),
            d["attempts"].as_u64().unwrap_or(0),
        ));
    }
    let went = if rows.is_empty() {
        "<p>It went to no endpoint.</p>".to_string()
    } else {
        format!(
            "<table class=\"event-deliveries\"><thead><tr><th>Delivery</th><th>Endpoint</th><th>Status</th>\
             <th>Attempts</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let payload = serde_json::to_string_pretty(&e["payload"]).unwrap_or_default();
    let body = format!(
        "{back}{form}<dl><dt>Id</dt><dd class=\"event-id\">{}</dd><dt>Type</dt><dd class=\"event-type\">{}</dd>\
         <dt>Time</dt><dd>{}</dd></dl><h3>Payload</h3><pre class=\"payload\">{}</pre><h3>Where it went</h3>{went}",
        text(&e["id"]),
        text(&e["type"]),
        text(&e["timestamp"]),
        esc(&payload),
    );
    page(StatusCode::OK, "Event", Some(&viewer), &body)
}

#[derive(Deserialize)]
pub(super) struct LetterQuery {
    cursor: Option<String>,
    /// How many the last "replay all" replayed (not a number: no notice).
    replayed: Option<String>,
}

/// `GET …/t/{tenant}/e/{id}/dead-letters`: the endpoint's dead letters, newest first, each with
/// a Replay button, and a form that replays every letter dead since a time.
pub(super) async fn dead_letters(
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Query(q): Query<LetterQuery>,
) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::DeliveriesRead) {
        return answer;
    }
    if !crate::ids::is_endpoint_id(&id) {
        return viewer.not_found("endpoint");
    }
    let answer = viewer
        .call(
            Method::GET,
            &with_query(
                &format!("/v1/tenants/{tenant}/endpoints/{id}/dead-letters"),
                &[("cursor", q.cursor.as_deref())],
            ),
            None,
        )
        .await;
    let replay_one = |delivery: &str| {
        if viewer.may(Scope::DeliveriesReplay) {
            format!(
                "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" class=\"replay-one\">Replay</button></form>",
                viewer.link(&tenant, &format!("/d/{delivery}/replay")),
                esc(&viewer.csrf)
            )
        } else {
            String::new()
        }
    };
    let mut rows = String::new();
    for letter in answer.body["data"].as_array().into_iter().flatten() {
        let delivery = letter["delivery_id"].as_str().unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td class=\"id\"><a href=\"{}\">{}</a></td><td>{}</td><td class=\"reason\">{}</td>\
             <td class=\"number\">{}</td><td>{}</td></tr>",
            viewer.link(&tenant, &format!("/d/{delivery}")),
            esc(delivery),
            text(&letter["dead_at"]),
            text(&letter["reason"]),
            letter["attempts"].as_u64().unwrap_or(0),
            replay_one(delivery),
        ));
    }
    let table = if rows.is_empty() {
        "<p>No dead letters.</p>".to_string()
    } else {
        format!(
            "<table class=\"letters\"><thead><tr><th>Delivery</th><th>Dead at</th><th>Reason</th><th>Attempts</th>\
             <th></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let next = answer.body["next_cursor"]
        .as_str()
        .map(|cursor| {
            format!(
                "<p><a href=\"{}\">Older →</a></p>",
                esc(&with_query(
                    &format!("{}/t/{tenant}/e/{id}/dead-letters", viewer.base()),
                    &[("cursor", Some(cursor))]
                ))
            )
        })
        .unwrap_or_default();
    let replay_all = if viewer.may(Scope::DeliveriesReplay) {
        format!(
            "<form method=\"post\" action=\"{}\" class=\"filters\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>Replay every letter dead since <input name=\"since\" placeholder=\"2026-01-01T00:00:00Z (empty: all)\">\
             </label><button type=\"submit\" id=\"replay-all\">Replay</button></form>",
            viewer.link(&tenant, &format!("/e/{id}/dead-letters")),
            esc(&viewer.csrf)
        )
    } else {
        String::new()
    };
    let notice = q
        .replayed
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| format!("<p class=\"notice\">{n} dead letters replayed: each starts a new attempt cycle.</p>"))
        .unwrap_or_default();
    let body = format!(
        "<p><a href=\"{}\">← endpoint {}</a></p><h2>Dead letters</h2>{notice}{}{replay_all}{table}{next}",
        viewer.link(&tenant, &format!("/e/{id}")),
        esc(&id),
        refusal(&answer),
    );
    page(status_of(&answer), "Dead letters", Some(&viewer), &body)
}

#[derive(Deserialize)]
pub(super) struct ReplayAll {
    csrf: String,
    since: Option<String>,
}

/// `POST …/t/{tenant}/e/{id}/dead-letters`: `POST …/dead-letters/replay` with `since`.
pub(super) async fn replay_dead_letters(
    viewer: Viewer,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    Form(form): Form<ReplayAll>,
) -> Response {
    if let Some(answer) = viewer.refuse_endpoint_post(&headers, &form.csrf, &tenant, &id) {
        return answer;
    }
    let body = match form.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(since) => json!({ "since": since }),
        None => json!({}),
    };
    let answer = viewer
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant}/endpoints/{id}/dead-letters/replay"),
            Some(&body),
        )
        .await;
    if !answer.ok() {
        return viewer.error(answer.status, "Not replayed", &answer.message());
    }
    see_other(&format!(
        "{}/t/{tenant}/e/{id}/dead-letters?replayed={}",
        viewer.base(),
        answer.body["replayed"].as_u64().unwrap_or(0)
    ))
}
