//! The console's endpoint forms: create (`…/t/{tenant}/new`), edit (`…/e/{id}/edit`: every
//! field of the contract, as the JSON the API takes), and delete (`…/e/{id}/delete`: a
//! confirmation saying how many pending deliveries it drops). Each posts to the API as the
//! viewer's caller and, when the API refuses, shows the form again with the API's message.

use super::auth::Scope;
use super::console::{esc, page, see_other, Csrf};
use super::console_viewer::Viewer;
use axum::extract::{Form, Path};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The fields of an endpoint the edit form holds: all a PATCH takes but `disabled` (the page's
/// Disable and Enable do that, keeping the reason) and the write-only `secret`, `tls` and
/// `oauth2` (added to the JSON, they replace what is stored; left out, they stay).
const EDITABLE: [&str; 16] = [
    "url",
    "event_types",
    "description",
    "rate_limit_per_s",
    "max_in_flight",
    "timeout_ms",
    "retry_schedule_s",
    "headers",
    "ordered",
    "signature",
    "filter",
    "payload_mode",
    "metadata",
    "transform",
    "kind",
    "email",
];

#[derive(Deserialize)]
pub(super) struct EndpointForm {
    csrf: String,
    url: Option<String>,
    description: Option<String>,
    /// Comma-separated; empty: the API's default.
    event_types: Option<String>,
    /// A JSON object of any other fields (on the edit form: all of them).
    settings: Option<String>,
}

impl EndpointForm {
    /// The API's body: `settings`, with the simple fields over it.
    fn body(&self) -> Result<Value, String> {
        let mut body = settings_object(self.settings.as_deref())?;
        let filled = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        if let Some(url) = filled(&self.url) {
            body.insert("url".into(), url.into());
        }
        if let Some(description) = filled(&self.description) {
            body.insert("description".into(), description.into());
        }
        if let Some(types) = filled(&self.event_types) {
            let types: Vec<Value> = types
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| t.into())
                .collect();
            body.insert("event_types".into(), types.into());
        }
        Ok(body.into())
    }
}

/// A form's "other settings" box: a JSON object (empty: none), or what is wrong with it.
pub(super) fn settings_object(text: Option<&str>) -> Result<Map<String, Value>, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("settings: not a JSON object ({e})")),
    }
}

fn text_area(name: &str, label: &str, rows: u32, value: &str) -> String {
    format!(
        "<label for=\"{name}\">{label}</label><textarea id=\"{name}\" name=\"{name}\" rows=\"{rows}\" \
         spellcheck=\"false\">{}</textarea>",
        esc(value)
    )
}

fn new_form(viewer: &Viewer, tenant: &str, form: Option<&EndpointForm>, error: Option<&str>) -> Response {
    let value = |f: fn(&EndpointForm) -> &Option<String>| form.and_then(|form| f(form).clone()).unwrap_or_default();
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<p><a href=\"{}\">← endpoints of {}</a></p><h2>New endpoint</h2>{error}\
         <form method=\"post\" action=\"{}\" class=\"card wide\" id=\"new-endpoint\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"url\">URL</label><input id=\"url\" name=\"url\" required value=\"{}\">\
         <label for=\"description\">Description</label><input id=\"description\" name=\"description\" value=\"{}\">\
         <label for=\"event_types\">Event types (comma-separated; empty: every type)</label>\
         <input id=\"event_types\" name=\"event_types\" value=\"{}\">{}\
         <button type=\"submit\" id=\"create\">Create</button></form>",
        viewer.link(tenant, ""),
        esc(tenant),
        viewer.link(tenant, "/new"),
        esc(&viewer.csrf),
        esc(&value(|f| &f.url)),
        esc(&value(|f| &f.description)),
        esc(&value(|f| &f.event_types)),
        text_area(
            "settings",
            "Other settings (JSON, optional: rate_limit_per_s, max_in_flight, timeout_ms, retry_schedule_s, \
             headers, ordered, signature, tls, oauth2, filter, payload_mode, metadata, transform, kind, email)",
            4,
            &value(|f| &f.settings)
        ),
    );
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page(status, "New endpoint", Some(viewer), &body)
}

/// `GET …/t/{tenant}/new`.
pub(super) async fn new_page(viewer: Viewer, Path(tenant): Path<String>) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::EndpointsWrite) {
        return answer;
    }
    new_form(&viewer, &tenant, None, None)
}

/// `POST …/t/{tenant}/new`: `POST /v1/tenants/{tenant}/endpoints`, then the new endpoint's page.
pub(super) async fn create(
    viewer: Viewer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Response {
    if let Some(answer) = viewer.refuse_post(&headers, &form.csrf) {
        return answer;
    }
    if !crate::ids::is_tenant(&tenant) {
        return viewer.not_found("tenant name");
    }
    let body = match form.body() {
        Ok(body) => body,
        Err(why) => return new_form(&viewer, &tenant, Some(&form), Some(&why)),
    };
    let answer = viewer
        .call(Method::POST, &format!("/v1/tenants/{tenant}/endpoints"), Some(&body))
        .await;
    match answer.body["id"].as_str() {
        Some(id) if answer.ok() => see_other(&format!("{}/t/{tenant}/e/{id}", viewer.base())),
        _ => {
            let mut again = new_form(&viewer, &tenant, Some(&form), Some(&answer.message()));
            *again.status_mut() = answer.status;
            again
        }
    }
}

fn edit_form(viewer: &Viewer, tenant: &str, id: &str, settings: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<p><a href=\"{}\">← endpoint {}</a></p><h2>Edit endpoint {}</h2>{error}\
         <p>Every field of the contract (docs/API.md, \"Endpoints\"), as the API takes it. \
         <code>secret</code>, <code>tls</code> and <code>oauth2</code> hold keys the node never shows: \
         add them to replace what is stored, leave them out to keep it.</p>\
         <form method=\"post\" action=\"{}\" class=\"card wide\" id=\"edit-endpoint\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">{}\
         <button type=\"submit\" id=\"save\">Save</button></form>",
        viewer.link(tenant, &format!("/e/{id}")),
        esc(id),
        esc(id),
        viewer.link(tenant, &format!("/e/{id}/edit")),
        esc(&viewer.csrf),
        text_area("settings", "Settings (JSON)", 18, settings),
    )
}

/// The endpoint as the API shows it to a viewer who may change it (the edit and delete pages),
/// or the page to answer instead.
async fn endpoint_to_change(viewer: &Viewer, tenant: &str, id: &str) -> Result<Value, Response> {
    if let Some(answer) = viewer.refuse_read(tenant, Scope::EndpointsWrite) {
        return Err(answer);
    }
    if !crate::ids::is_endpoint_id(id) {
        return Err(viewer.not_found("endpoint"));
    }
    let answer = viewer
        .call(Method::GET, &format!("/v1/tenants/{tenant}/endpoints/{id}"), None)
        .await;
    if !answer.ok() {
        return Err(viewer.error(answer.status, "Not found", &answer.message()));
    }
    Ok(answer.body)
}

/// `GET …/t/{tenant}/e/{id}/edit`: the endpoint as the API shows it to this viewer.
pub(super) async fn edit_page(viewer: Viewer, Path((tenant, id)): Path<(String, String)>) -> Response {
    let endpoint = match endpoint_to_change(&viewer, &tenant, &id).await {
        Ok(endpoint) => endpoint,
        Err(answer) => return answer,
    };
    let fields: Map<String, Value> = EDITABLE
        .iter()
        .filter_map(|k| endpoint.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let settings = serde_json::to_string_pretty(&fields).unwrap_or_default();
    let body = edit_form(&viewer, &tenant, &id, &settings, None);
    page(StatusCode::OK, "Edit endpoint", Some(&viewer), &body)
}

/// `POST …/t/{tenant}/e/{id}/edit`: a PATCH of the JSON, then the endpoint's page.
pub(super) async fn save(
    viewer: Viewer,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    Form(form): Form<EndpointForm>,
) -> Response {
    if let Some(answer) = viewer.refuse_endpoint_post(&headers, &form.csrf, &tenant, &id) {
        return answer;
    }
    let settings = form.settings.clone().unwrap_or_default();
    let (status, error) = match form.body() {
        Err(why) => (StatusCode::BAD_REQUEST, why),
        Ok(body) => {
            let answer = viewer
                .call(
                    Method::PATCH,
                    &format!("/v1/tenants/{tenant}/endpoints/{id}"),
                    Some(&body),
                )
                .await;
            if answer.ok() {
                return see_other(&format!("{}/t/{tenant}/e/{id}", viewer.base()));
            }
            (answer.status, answer.message())
        }
    };
    let body = edit_form(&viewer, &tenant, &id, &settings, Some(&error));
    page(status, "Edit endpoint", Some(&viewer), &body)
}

/// `GET …/t/{tenant}/e/{id}/delete`: what deleting drops, and the button that does it.
pub(super) async fn delete_page(viewer: Viewer, Path((tenant, id)): Path<(String, String)>) -> Response {
    let endpoint = match endpoint_to_change(&viewer, &tenant, &id).await {
        Ok(endpoint) => endpoint,
        Err(answer) => return answer,
    };
    let pending = endpoint["state"]["backlog"].as_u64().unwrap_or(0);
    let body = format!(
        "<p><a href=\"{}\">← endpoint {}</a></p><h2>Delete endpoint {}?</h2><p class=\"url\">{}</p>\
         <p>Deleting it drops <strong id=\"pending\">{pending}</strong> pending deliver{}: they end as dead, \
         reason <code>endpoint_deleted</code>. It cannot be undone.</p>\
         <form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"confirm-delete\" class=\"danger\">Delete</button></form>",
        viewer.link(&tenant, &format!("/e/{id}")),
        esc(&id),
        esc(&id),
        esc(endpoint["url"].as_str().unwrap_or_default()),
        if pending == 1 { "y" } else { "ies" },
        viewer.link(&tenant, &format!("/e/{id}/delete")),
        esc(&viewer.csrf),
    );
    page(StatusCode::OK, "Delete endpoint", Some(&viewer), &body)
}

/// `POST …/t/{tenant}/e/{id}/delete`: `DELETE` it, then the tenant's endpoints, saying how
/// many pending deliveries were dropped.
pub(super) async fn delete(
    viewer: Viewer,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> Response {
    if let Some(answer) = viewer.refuse_endpoint_post(&headers, &form.csrf, &tenant, &id) {
        return answer;
    }
    let answer = viewer
        .call(Method::DELETE, &format!("/v1/tenants/{tenant}/endpoints/{id}"), None)
        .await;
    if !answer.ok() {
        return viewer.error(answer.status, "Not deleted", &answer.message());
    }
    let dropped = answer
        .headers
        .get(super::endpoints::DROPPED_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    see_other(&format!("{}/t/{tenant}?deleted={id}&dropped={dropped}", viewer.base()))
}
