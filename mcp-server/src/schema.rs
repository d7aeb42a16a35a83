//! JSON Schemas for tools, converted from the very utoipa schemas the REST API publishes in
//! `/openapi.json`. One source for both surfaces, so a tool's input can never drift from the
//! REST request it mirrors: the request types live in `warden-governance` and derive
//! `utoipa::ToSchema` once.
//!
//! OpenAPI 3.1 schemas are JSON Schema 2020-12 documents except for `$ref`s into
//! `#/components/schemas`; those are inlined here (the request and response types are small
//! trees without cycles), so each tool schema stands alone as MCP requires.

use std::collections::HashMap;

use rmcp::model::JsonObject;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// The standalone JSON Schema of `T`, as the REST API documents it.
pub fn of<T: ToSchema>() -> JsonObject {
    let mut named = Vec::new();
    T::schemas(&mut named);
    let defs: HashMap<String, Value> = named
        .into_iter()
        .map(|(name, s)| (name, serde_json::to_value(s).expect("a schema serializes")))
        .collect();
    let root = serde_json::to_value(T::schema()).expect("a schema serializes");
    match inline(root, &defs, 0) {
        Value::Object(o) => o,
        other => panic!("the schema of {} is not an object: {other}", T::name()),
    }
}

fn inline(v: Value, defs: &HashMap<String, Value>, depth: usize) -> Value {
    assert!(depth < 32, "schema references nest too deep (a cycle?)");
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                let name = r.rsplit('/').next().unwrap_or_default();
                let target = defs
                    .get(name)
                    .unwrap_or_else(|| panic!("schema reference {r} is not defined"));
                return inline(target.clone(), defs, depth + 1);
            }
            Value::Object(
                o.into_iter()
                    .map(|(k, v)| (k, inline(v, defs, depth)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|v| inline(v, defs, depth)).collect()),
        other => other,
    }
}

/// An object schema whose one property `key` holds an array of `T` (MCP output schemas must be
/// objects, so list answers are wrapped as REST wraps them).
pub fn list_of<T: ToSchema>(key: &str) -> JsonObject {
    let mut o = Map::new();
    o.insert("type".into(), json!("object"));
    o.insert(
        "properties".into(),
        json!({ key: {"type": "array", "items": Value::Object(of::<T>())} }),
    );
    o.insert("required".into(), json!([key]));
    o
}

/// `schema` with one more required string property in front (a REST path parameter that the
/// tool takes as an argument).
pub fn with_path_param(mut schema: JsonObject, name: &str, description: &str) -> JsonObject {
    let props = schema
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is an object");
    props.insert(
        name.into(),
        json!({"type": "string", "description": description}),
    );
    let required = schema
        .entry("required")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("required is an array");
    required.insert(0, json!(name));
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_references_are_inlined() {
        let s = Value::Object(of::<warden_governance::Proposal>());
        assert_eq!(s["type"], "object");
        let text = s.to_string();
        assert!(!text.contains("$ref"), "{text}");
        assert_eq!(
            s["properties"]["mic_conditions"]["items"]["properties"]["passed"]["type"],
            "boolean"
        );
    }

    #[test]
    fn a_path_parameter_becomes_a_required_property() {
        let s = with_path_param(
            of::<warden_governance::Resolve>(),
            "thread_id",
            "the thread",
        );
        assert_eq!(s["required"][0], "thread_id");
        assert!(s["properties"]["resolution"].is_object());
    }
}
