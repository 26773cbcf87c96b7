//! The console's node view (`/console/nodes`, operators only): the nodes sharing this Redis,
//! each shard's lease holder, the router's lag, and the backlog by tenant, as `GET /v1/cluster`
//! answers them to the signed-in admin.

use super::console::{esc, page};
use super::console_viewer::Viewer;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

pub(super) async fn nodes(viewer: Viewer) -> Response {
    let answer = viewer.call(Method::GET, "/v1/cluster", None).await;
    if !answer.ok() {
        return viewer.error(answer.status, "Nodes", &answer.message());
    }
    let view = &answer.body;
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut nodes = String::new();
    for node in list(&view["nodes"]) {
        let shards: Vec<String> = list(&node["shards"]).iter().map(|s| s.to_string()).collect();
        nodes.push_str(&format!(
            "<tr><td class=\"id node-id\">{}</td><td>{}</td><td class=\"number\">{}</td><td class=\"shard-list\">{}</td></tr>",
            esc(node["id"].as_str().unwrap_or_default()),
            esc(node["last_seen_at"].as_str().unwrap_or_default()),
            shards.len(),
            esc(&shards.join(" ")),
        ));
    }
    let shards = list(&view["shards"]);
    let unheld = shards.iter().filter(|s| s["node"].is_null()).count();
    let mut backlog = String::new();
    for row in list(&view["backlog"]) {
        let tenant = row["tenant"].as_str().unwrap_or_default();
        backlog.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            viewer.link(tenant, ""),
            esc(tenant),
            row["queued"].as_u64().unwrap_or(0),
            row["endpoints"].as_u64().unwrap_or(0),
        ));
    }
    let backlog = if backlog.is_empty() {
        "<p>Nothing is queued.</p>".to_string()
    } else {
        format!(
            "<table class=\"backlog\"><thead><tr><th>Tenant</th><th>Queued</th><th>Endpoints with a queue</th></tr>\
             </thead><tbody>{backlog}</tbody></table>"
        )
    };
    let body = format!(
        "<h2>Nodes</h2><p>Router lag: <strong id=\"router-lag\">{} ms</strong> · Shards: {} ({unheld} not held right now)</p>\
         <table class=\"nodes\"><thead><tr><th>Node</th><th>Last heartbeat</th><th>Shards</th><th>Which</th></tr></thead>\
         <tbody>{nodes}</tbody></table><h3>Backlog by tenant</h3>{backlog}",
        view["router_lag_ms"].as_u64().unwrap_or(0),
        shards.len(),
    );
    page(StatusCode::OK, "Nodes", Some(&viewer), &body)
}
