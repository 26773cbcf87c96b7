//! The console's notification channels (issue 22): a tenant's endpoints that take the node's
//! own events (`hookline.*`), with where they go, and a form to add one: a Slack channel, email
//! recipients, or a webhook (`…/t/{tenant}/notifications`). The list and the creation are the
//! API's answers to the viewer's caller.

use super::auth::Scope;
use super::console::{esc, page, see_other};
use super::console_viewer::Viewer;
use axum::extract::{Form, Path};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub(super) struct ChannelForm {
    csrf: String,
    kind: Option<String>,
    /// A Slack or webhook URL, or email addresses separated by commas.
    target: Option<String>,
    /// Comma-separated; empty: `hookline.*`.
    event_types: Option<String>,
    description: Option<String>,
}

impl ChannelForm {
    /// The endpoint the form asks for, as the API takes it.
    fn body(&self) -> Value {
        let kind = self.kind.as_deref().unwrap_or("slack");
        let target = self.target.as_deref().unwrap_or("").trim();
        let types: Vec<&str> = self
            .event_types
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let mut body = json!({
            "kind": kind,
            "event_types": if types.is_empty() { vec!["hookline.*"] } else { types },
        });
        if kind == "email" {
            let to: Vec<&str> = target.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
            body["email"] = json!({ "to": to });
        } else {
            body["url"] = json!(target);
        }
        if let Some(d) = self.description.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            body["description"] = json!(d);
        }
        body
    }
}

/// Does the endpoint take any of the node's own events?
fn is_channel(endpoint: &Value) -> bool {
    endpoint["event_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|p| p.starts_with("hookline."))
}

fn channels_page(viewer: &Viewer, tenant: &str, list: &Value, form: &ChannelForm, error: Option<String>) -> String {
    let mut rows = String::new();
    for endpoint in list["data"].as_array().into_iter().flatten().filter(|e| is_channel(e)) {
        let id = endpoint["id"].as_str().unwrap_or_default();
        let target = match endpoint["email"]["to"].as_array() {
            Some(to) => to.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
            None => endpoint["url"].as_str().unwrap_or_default().to_string(),
        };
        let types: Vec<&str> = endpoint["event_types"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let state = match endpoint["state"]["disabled_reason"].as_str() {
            Some(reason) => format!("disabled ({reason})"),
            None => endpoint["state"]["breaker"].as_str().unwrap_or_default().to_string(),
        };
        rows.push_str(&format!(
            "<tr><td class=\"id\"><a href=\"{}\">{}</a></td><td class=\"kind\">{}</td><td class=\"target\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            viewer.link(tenant, &format!("/e/{id}")),
            esc(id),
            esc(endpoint["kind"].as_str().unwrap_or_default()),
            esc(&target),
            esc(&types.join(", ")),
            esc(endpoint["description"].as_str().unwrap_or_default()),
            esc(&state),
        ));
    }
    let table = if rows.is_empty() {
        "<p>No notification channels yet.</p>".to_string()
    } else {
        format!(
            "<table class=\"channels\"><thead><tr><th>ID</th><th>Kind</th><th>Where</th><th>Events</th>\
             <th>Description</th><th>State</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let create = if viewer.may(Scope::EndpointsWrite) {
        let chosen = form.kind.as_deref().unwrap_or("slack");
        let options: String = ["slack", "email", "webhook"]
            .iter()
            .map(|k| {
                format!(
                    "<option value=\"{k}\"{}>{k}</option>",
                    if *k == chosen { " selected" } else { "" }
                )
            })
            .collect();
        format!(
            "<h3>New channel</h3><form method=\"post\" action=\"{}\" class=\"card wide\" id=\"new-channel\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">{options}</select>\
             <label for=\"target\">Slack incoming-webhook URL, email addresses (comma-separated), or webhook URL</label>\
             <input id=\"target\" name=\"target\" required value=\"{}\">\
             <label for=\"event_types\">Events (comma-separated; empty: hookline.*)</label>\
             <input id=\"event_types\" name=\"event_types\" value=\"{}\">\
             <label for=\"description\">Description</label><input id=\"description\" name=\"description\" value=\"{}\">\
             <button type=\"submit\" id=\"create-channel\">Create</button></form>",
            viewer.link(tenant, "/notifications"),
            esc(&viewer.csrf),
            esc(form.target.as_deref().unwrap_or("")),
            esc(form.event_types.as_deref().unwrap_or("")),
            esc(form.description.as_deref().unwrap_or("")),
        )
    } else {
        String::new()
    };
    format!(
        "<p><a href=\"{}\">← endpoints of {}</a></p><h2>Notifications</h2>\
         <p>Where this tenant hears of its endpoints failing, recovering, being disabled or dead-lettering, and of \
         its sources refusing bursts of requests: the endpoints that take <code>hookline.*</code> events.</p>\
         {}{table}{create}",
        viewer.link(tenant, ""),
        esc(tenant),
        // A refusal is shown whether or not this viewer gets the form (a read-only session).
        error
            .map(|e| format!("<p class=\"error\">{}</p>", esc(&e)))
            .unwrap_or_default(),
    )
}

async fn list(viewer: &Viewer, tenant: &str) -> Result<Value, Response> {
    let answer = viewer
        .call(Method::GET, &format!("/v1/tenants/{tenant}/endpoints?limit=500"), None)
        .await;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err(viewer.error(answer.status, "Notifications", &answer.message()))
    }
}

/// `GET …/t/{tenant}/notifications`.
pub(super) async fn channels(viewer: Viewer, Path(tenant): Path<String>) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::EndpointsRead) {
        return answer;
    }
    let list = match list(&viewer, &tenant).await {
        Ok(list) => list,
        Err(answer) => return answer,
    };
    let body = channels_page(&viewer, &tenant, &list, &ChannelForm::default(), None);
    page(StatusCode::OK, "Notifications", Some(&viewer), &body)
}

/// `POST …/t/{tenant}/notifications`: `POST /v1/tenants/{tenant}/endpoints`, then the new
/// channel's endpoint page; refused, the form again with the API's message.
pub(super) async fn create(
    viewer: Viewer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(form): Form<ChannelForm>,
) -> Response {
    if let Some(answer) = viewer.refuse_post(&headers, &form.csrf) {
        return answer;
    }
    if !crate::ids::is_tenant(&tenant) {
        return viewer.not_found("tenant name");
    }
    let answer = viewer
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant}/endpoints"),
            Some(&form.body()),
        )
        .await;
    if let Some(id) = answer.body["id"].as_str().filter(|_| answer.ok()) {
        return see_other(&format!("{}/t/{tenant}/e/{id}", viewer.base()));
    }
    let (status, error) = (answer.status, answer.message());
    let list = match list(&viewer, &tenant).await {
        Ok(list) => list,
        Err(answer) => return answer,
    };
    let body = channels_page(&viewer, &tenant, &list, &form, Some(error));
    page(status, "Notifications", Some(&viewer), &body)
}
