//! The console's inbound sources: a tenant's sources with their ingest URLs and a form to create
//! one (`…/t/{tenant}/sources`), and a source's page with its recent rejections
//! (`…/t/{tenant}/sources/{id}`). Each is the API's answer to the viewer's caller; secrets and
//! credentials are never shown on these pages.

use super::auth::Scope;
use super::console::{esc, page, see_other};
use super::console_viewer::Viewer;
use crate::inbound::source::Kind;
use axum::extract::{Form, Path};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize, Default)]
pub(super) struct SourceForm {
    csrf: String,
    name: Option<String>,
    kind: Option<String>,
    /// The provider's signing secret, for the kinds that take one.
    secret: Option<String>,
    /// A JSON object of any other fields (`hmac`, `basic`, `api_key`, `allowed_ips`, …).
    settings: Option<String>,
}

impl SourceForm {
    fn body(&self) -> Result<Value, String> {
        let mut body = super::console_edit::settings_object(self.settings.as_deref())?;
        for (key, value) in [("name", &self.name), ("kind", &self.kind), ("secret", &self.secret)] {
            if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                body.insert(key.into(), value.into());
            }
        }
        Ok(body.into())
    }
}

fn sources_page(viewer: &Viewer, tenant: &str, list: &Value, form: &SourceForm, error: Option<String>) -> String {
    let mut rows = String::new();
    for source in list["data"].as_array().into_iter().flatten() {
        let id = source["id"].as_str().unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td class=\"id\"><a href=\"{}\">{}</a></td><td class=\"source-name\">{}</td><td>{}</td>\
             <td class=\"url\">{}</td><td>{}</td></tr>",
            viewer.link(tenant, &format!("/sources/{id}")),
            esc(id),
            esc(source["name"].as_str().unwrap_or_default()),
            esc(source["kind"].as_str().unwrap_or_default()),
            esc(source["ingest_url"].as_str().unwrap_or_default()),
            esc(source["created_at"].as_str().unwrap_or_default()),
        ));
    }
    let table = if rows.is_empty() {
        "<p>No sources yet.</p>".to_string()
    } else {
        format!(
            "<table class=\"sources\"><thead><tr><th>ID</th><th>Name</th><th>Kind</th><th>Ingest URL</th>\
             <th>Created</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let create = if viewer.may(Scope::SourcesWrite) {
        let chosen = form.kind.as_deref().unwrap_or("stripe");
        let options: String = Kind::ALL
            .iter()
            .map(|k| {
                format!(
                    "<option value=\"{0}\"{1}>{0}</option>",
                    k.name(),
                    if k.name() == chosen { " selected" } else { "" }
                )
            })
            .collect();
        format!(
            "<h3>New source</h3>{}<form method=\"post\" action=\"{}\" class=\"card wide\" id=\"new-source\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"name\">Name</label><input id=\"name\" name=\"name\" required value=\"{}\">\
             <label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">{options}</select>\
             <label for=\"secret\">The provider's signing secret (stripe, github, shopify, standard_webhooks, hmac)</label>\
             <input id=\"secret\" name=\"secret\" type=\"password\" autocomplete=\"off\">\
             <label for=\"settings\">Other settings (JSON, optional: hmac, basic, api_key, allowed_ips, tolerance_s, \
             type_prefix, rate_limit_per_s, dedup_window_s, dedup_header)</label>\
             <textarea id=\"settings\" name=\"settings\" rows=\"3\" spellcheck=\"false\">{}</textarea>\
             <button type=\"submit\" id=\"create-source\">Create</button></form>",
            error
                .map(|e| format!("<p class=\"error\">{}</p>", esc(&e)))
                .unwrap_or_default(),
            viewer.link(tenant, "/sources"),
            esc(&viewer.csrf),
            esc(form.name.as_deref().unwrap_or("")),
            esc(form.settings.as_deref().unwrap_or("")),
        )
    } else {
        String::new()
    };
    format!(
        "<p><a href=\"{}\">← endpoints of {}</a></p><h2>Sources</h2>\
         <p>Each source gives a provider a URL on any node (its ingest URL); what it verifies becomes an event.</p>\
         {table}{create}",
        viewer.link(tenant, ""),
        esc(tenant)
    )
}

async fn list(viewer: &Viewer, tenant: &str) -> Result<Value, Response> {
    let answer = viewer
        .call(Method::GET, &format!("/v1/tenants/{tenant}/sources?limit=500"), None)
        .await;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err(viewer.error(answer.status, "Sources", &answer.message()))
    }
}

/// `GET …/t/{tenant}/sources`.
pub(super) async fn sources(viewer: Viewer, Path(tenant): Path<String>) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::SourcesRead) {
        return answer;
    }
    let list = match list(&viewer, &tenant).await {
        Ok(list) => list,
        Err(answer) => return answer,
    };
    let body = sources_page(&viewer, &tenant, &list, &SourceForm::default(), None);
    page(StatusCode::OK, "Sources", Some(&viewer), &body)
}

/// `POST …/t/{tenant}/sources`: `POST /v1/tenants/{tenant}/sources`, then the new source's
/// page; refused, the form again with the API's message.
pub(super) async fn create(
    viewer: Viewer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(form): Form<SourceForm>,
) -> Response {
    if let Some(answer) = viewer.refuse_post(&headers, &form.csrf) {
        return answer;
    }
    if !crate::ids::is_tenant(&tenant) {
        return viewer.not_found("tenant name");
    }
    let (status, error) = match form.body() {
        Err(why) => (StatusCode::BAD_REQUEST, why),
        Ok(body) => {
            let answer = viewer
                .call(Method::POST, &format!("/v1/tenants/{tenant}/sources"), Some(&body))
                .await;
            match answer.body["id"].as_str() {
                Some(id) if answer.ok() => return see_other(&format!("{}/t/{tenant}/sources/{id}", viewer.base())),
                _ => (answer.status, answer.message()),
            }
        }
    };
    let list = match list(&viewer, &tenant).await {
        Ok(list) => list,
        Err(answer) => return answer,
    };
    let body = sources_page(&viewer, &tenant, &list, &form, Some(error));
    page(status, "Sources", Some(&viewer), &body)
}

/// `GET …/t/{tenant}/sources/{id}`: the source (without its secrets) and its last rejections.
pub(super) async fn source(viewer: Viewer, Path((tenant, id)): Path<(String, String)>) -> Response {
    if let Some(answer) = viewer.refuse_read(&tenant, Scope::SourcesRead) {
        return answer;
    }
    if !crate::ids::is_source_id(&id) {
        return viewer.not_found("source");
    }
    let path = format!("/v1/tenants/{tenant}/sources/{id}");
    let refused = format!("{path}/rejections");
    let (source, rejections) = tokio::join!(
        viewer.call(Method::GET, &path, None),
        viewer.call(Method::GET, &refused, None)
    );
    for answer in [&source, &rejections] {
        if !answer.ok() {
            return viewer.error(answer.status, "Source", &answer.message());
        }
    }
    let s = &source.body;
    let mut rows = String::new();
    for r in rejections.body["data"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"number\">{}</td><td class=\"reason\">{}</td><td>{}</td></tr>",
            esc(r["time"].as_str().unwrap_or_default()),
            esc(r["ip"].as_str().unwrap_or_default()),
            r["status"].as_u64().unwrap_or(0),
            esc(r["reason"].as_str().unwrap_or_default()),
            esc(r["message"].as_str().unwrap_or_default()),
        ));
    }
    let rejections = if rows.is_empty() {
        "<p>None refused.</p>".to_string()
    } else {
        format!(
            "<table class=\"rejections\"><thead><tr><th>Time</th><th>From</th><th>Status</th><th>Reason</th>\
             <th>Message</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let text = |v: &Value| esc(v.as_str().unwrap_or("–"));
    let body = format!(
        "<p><a href=\"{}\">← sources of {}</a></p><h2>Source {}</h2><dl><dt>Name</dt><dd>{}</dd>\
         <dt>Kind</dt><dd class=\"source-kind\">{}</dd><dt>Ingest URL</dt><dd class=\"url\">{}</dd>\
         <dt>Type prefix</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd></dl>\
         <h3>Recent rejections</h3><p>The last 100 requests it refused, newest first (never their body).</p>{rejections}",
        viewer.link(&tenant, "/sources"),
        esc(&tenant),
        esc(&id),
        text(&s["name"]),
        text(&s["kind"]),
        text(&s["ingest_url"]),
        text(&s["type_prefix"]),
        text(&s["created_at"]),
    );
    page(StatusCode::OK, "Source", Some(&viewer), &body)
}
