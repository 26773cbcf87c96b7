//! A realistic event for the validation benchmark (`drive --catalogue off|warn|enforce`): an
//! order of about 2 KB and the JSON Schema it follows (formats, patterns, ranges, nested
//! objects, an array of items), as a platform would register for `order.created`.

use serde_json::{json, Value};

/// The order's schema (draft 2020-12).
pub fn schema() -> Value {
    let money = json!({"type": "integer", "minimum": 0});
    let address = json!({
        "type": "object",
        "required": ["line1", "city", "postal_code", "country"],
        "properties": {
            "line1": {"type": "string", "maxLength": 200},
            "line2": {"type": ["string", "null"], "maxLength": 200},
            "city": {"type": "string", "maxLength": 100},
            "postal_code": {"type": "string", "pattern": "^[A-Z0-9 -]{3,10}$"},
            "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
        }
    });
    json!({
        "type": "object",
        "required": ["sent_ms", "n", "order"],
        "properties": {
            "sent_ms": {"type": "integer"},
            "n": {"type": "integer", "minimum": 0},
            "order": {
                "type": "object",
                "required": ["id", "status", "currency", "customer", "items", "totals", "shipping"],
                "properties": {
                    "id": {"type": "string", "pattern": "^ord_[a-z0-9]{12}$"},
                    "status": {"enum": ["pending", "paid", "shipped", "cancelled"]},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "created_at": {"type": "string", "maxLength": 40},
                    "customer": {
                        "type": "object",
                        "required": ["id", "email"],
                        "properties": {
                            "id": {"type": "string", "pattern": "^cus_[a-z0-9]{10}$"},
                            "email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"},
                            "name": {"type": "string", "maxLength": 200},
                            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20}
                        }
                    },
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 100,
                        "items": {
                            "type": "object",
                            "required": ["sku", "quantity", "unit_price"],
                            "properties": {
                                "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                                "name": {"type": "string", "maxLength": 200},
                                "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                                "unit_price": money,
                                "discounts": {"type": "array", "items": {"type": "object"}}
                            }
                        }
                    },
                    "totals": {
                        "type": "object",
                        "required": ["subtotal", "tax", "total"],
                        "properties": {"subtotal": money, "tax": money, "shipping": money, "total": money}
                    },
                    "shipping": address,
                    "billing": address,
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }
        }
    })
}

/// Order `n`, about 2 KB as JSON, valid against `schema`.
pub fn payload(n: usize, sent_ms: u64) -> Value {
    let items: Vec<Value> = (0..10)
        .map(|i| {
            json!({
                "sku": format!("SKU-{:04}", (n + i) % 10_000),
                "name": format!("Item number {i} of order {n}, a product with a longish name"),
                "quantity": 1 + i % 3,
                "unit_price": 1_250 + 100 * i,
                "discounts": []
            })
        })
        .collect();
    let address = json!({
        "line1": "221B Baker Street", "line2": null, "city": "London",
        "postal_code": "NW1 6XE", "country": "GB"
    });
    json!({
        "sent_ms": sent_ms,
        "n": n,
        "order": {
            "id": format!("ord_{:012}", n),
            "status": "paid",
            "currency": "EUR",
            "created_at": "2026-12-04T10:00:00.000Z",
            "customer": {
                "id": format!("cus_{:010}", n % 1_000_000),
                "email": format!("customer{n}@example.com"),
                "name": "Ada Lovelace",
                "tags": ["vip", "newsletter"]
            },
            "items": items,
            "totals": {"subtotal": 15_000, "tax": 3_000, "shipping": 500, "total": 18_500},
            "shipping": address,
            "billing": address,
            "metadata": {"channel": "web", "campaign": "winter-sale"}
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_order_is_about_two_kilobytes() {
        let size = super::payload(123, 1).to_string().len();
        assert!((1_800..2_600).contains(&size), "{size} bytes");
    }
}
