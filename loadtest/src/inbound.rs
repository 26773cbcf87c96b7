//! W8, the inbound gateway: requests signed as GitHub signs them (HMAC-SHA256 of the raw body,
//! hex, in `X-Hub-Signature-256`), posted to a source's `/in/{id}`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret of the source W8 creates.
pub const SECRET: &str = "w8-bench-secret";
/// The type the events get (`type_prefix` + `X-GitHub-Event`), which the endpoint subscribes to.
pub const EVENT_TYPE: &str = "github.push";

/// A source's body: GitHub kind, the secret above, the prefix that makes `EVENT_TYPE`.
pub fn source() -> serde_json::Value {
    serde_json::json!({"name": "w8", "kind": "github", "secret": SECRET, "type_prefix": "github."})
}

/// The headers of one delivery of `body`, named `delivery` (unique per request).
pub fn headers(body: &[u8], delivery: &str) -> [(&'static str, String); 3] {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    [
        ("X-Hub-Signature-256", format!("sha256={hex}")),
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
    ]
}
