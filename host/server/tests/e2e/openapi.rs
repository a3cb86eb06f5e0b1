//! The OpenAPI document against the service that serves it: it parses as OpenAPI 3.1,
//! every `$ref` resolves, parameters are where the routes take them, the documented
//! operations are exactly the routes, and the plugin upload's documented media types
//! are the ones the service accepts.

use std::collections::BTreeSet;

use oas3::Spec;
use oas3::spec::{
    Callback, Example, FromRef, Header, ObjectOrReference, Operation, Parameter, ParameterIn, Ref,
    RefError, RefType, RequestBody, Response, Schema, SchemaType, SchemaTypeSet, SecurityScheme,
};
use reqwest::Method;
use serde_json::Value;
use tally_test_support::components;

use crate::Service;

const ADMIN_TOKEN: &str = "openapi-admin-token-0123456789";

/// Methods the routes could have; the ones a path does not have must answer 405.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// A service with an admin token, and its document both as JSON and parsed.
async fn served_document() -> (tempfile::TempDir, Service, Value, Spec) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--admin-token", ADMIN_TOKEN]).await;
    let (status, json) = service.get("/openapi.json").await;
    assert_eq!(status, 200, "{json}");
    let spec = oas3::from_json(json.to_string()).expect("the document parses as OpenAPI 3.1");
    (dir, service, json, spec)
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let (_dir, service, json, spec) = served_document().await;
    check_document(&json, &spec);
    service.stop();
}

#[tokio::test]
async fn parameters_are_where_the_routes_take_them() {
    let (_dir, service, _, spec) = served_document().await;
    check_parameters(&spec);
    service.stop();
}

#[tokio::test]
async fn the_documented_operations_are_the_routes() {
    let (_dir, service, _, spec) = served_document().await;
    let documented: BTreeSet<String> = spec.operations().map(|(path, ..)| path).collect();
    assert_eq!(
        documented,
        router_paths(),
        "the router's paths (left: documented)"
    );
    let http = reqwest::Client::new();
    for (path, method, operation) in spec.operations() {
        let url = service.path(&sample_path(&path));
        let response = send(&http, method.clone(), &url, "").await;
        assert!(is_routed(&response), "{method} {path}: {response:?}");
        for parameter in query_parameters(&spec, operation) {
            let value = sample_value(&spec, &parameter);
            let query = format!("?{}={value}", parameter.name);
            let response = send(&http, method.clone(), &url, &query).await;
            assert!(
                !response.1.to_string().contains("unknown field"),
                "{method} {path}{query} refuses its documented parameter: {response:?}"
            );
        }
    }
    for path in &documented {
        check_other_methods(&http, &service, &spec, path).await;
    }
    service.stop();
}

#[tokio::test]
async fn the_plugin_upload_accepts_exactly_its_documented_media_types() {
    let (_dir, service, json, spec) = served_document().await;
    let body = spec
        .operation(&Method::POST, "/v1/plugins")
        .expect("POST /v1/plugins")
        .request_body(&spec)
        .expect("resolves")
        .expect("a request body");
    let documented: Vec<&String> = body.content.keys().collect();
    assert!(documented.iter().any(|media| *media == "application/wasm"));
    for media in &documented {
        let schema =
            &json["paths"]["/v1/plugins"]["post"]["requestBody"]["content"][media]["schema"];
        assert_eq!(
            (&schema["type"], &schema["format"]),
            (&Value::from("string"), &Value::from("binary")),
            "{media}: {schema}"
        );
    }
    let http = reqwest::Client::new();
    let component = std::fs::read(components::BANK_ACCOUNT_V1).unwrap();
    let upload = |content_type: Option<&str>| {
        let mut request = http
            .post(service.path("/v1/plugins"))
            .bearer_auth(ADMIN_TOKEN)
            .body(component.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        async move { answer(request.send().await.expect("upload")).await }
    };
    for media in documented
        .iter()
        .map(|media| Some(media.as_str()))
        .chain([None])
    {
        let (status, body) = upload(media).await;
        assert_eq!(status, 200, "{media:?}: {body}");
        assert_eq!(body["already_installed"], true, "{media:?}: {body}");
    }
    for media in [
        "text/plain",
        "application/json",
        "application/x-www-form-urlencoded",
    ] {
        let (status, body) = upload(Some(media)).await;
        assert_eq!(status, 415, "{media}: {body}");
        assert_eq!(body["error"]["code"], "unsupported-media-type", "{body}");
    }
    service.stop();
}

/// Version 3.1, every `$ref` resolves to a component of its kind, and every security
/// requirement names a declared scheme.
fn check_document(json: &Value, spec: &Spec) {
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1), "{version}");
    let mut references = BTreeSet::new();
    collect_references(json, &mut references);
    assert!(!references.is_empty(), "the types are shared components");
    let dangling: Vec<String> = references
        .iter()
        .filter_map(|path| {
            resolve(spec, path)
                .err()
                .map(|error| format!("{path}: {error}"))
        })
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:#?}");
    let schemes = &spec
        .components
        .as_ref()
        .expect("components")
        .security_schemes;
    for (path, method, operation) in spec.operations() {
        for requirement in &operation.security {
            for scheme in requirement.0.keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{method} {path}: unknown scheme {scheme}"
                );
            }
        }
    }
}

/// Every `$ref` string anywhere in the document.
fn collect_references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(path)) = map.get("$ref") {
                found.insert(path.clone());
            }
            map.values()
                .for_each(|value| collect_references(value, found));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, found)),
        _ => {}
    }
}

/// Resolves a `$ref` with the parser's own resolution, as the kind of object it names.
fn resolve(spec: &Spec, path: &str) -> Result<(), RefError> {
    match path.parse::<Ref>()?.kind {
        RefType::Schema => Schema::from_ref(spec, path).map(drop),
        RefType::Response => Response::from_ref(spec, path).map(drop),
        RefType::Parameter => Parameter::from_ref(spec, path).map(drop),
        RefType::Example => Example::from_ref(spec, path).map(drop),
        RefType::RequestBody => RequestBody::from_ref(spec, path).map(drop),
        RefType::Header => Header::from_ref(spec, path).map(drop),
        RefType::SecurityScheme => SecurityScheme::from_ref(spec, path).map(drop),
        RefType::Callback => Callback::from_ref(spec, path).map(drop),
        RefType::Link => Err(RefError::Unresolvable(format!("{path} (links unused)"))),
    }
}

/// Every `{name}` of a path template is a required path parameter, and every path
/// parameter is in the template: a query parameter is never `in: path`.
fn check_parameters(spec: &Spec) {
    let mut problems = Vec::new();
    for (path, method, operation) in spec.operations() {
        let parameters = operation.parameters(spec).expect("parameters resolve");
        let in_path: BTreeSet<&str> = parameters
            .iter()
            .filter(|parameter| parameter.location == ParameterIn::Path)
            .map(|parameter| parameter.name.as_str())
            .collect();
        let template = placeholders(&path);
        if in_path != template {
            problems.push(format!(
                "{method} {path}: in path {in_path:?}, template {template:?}"
            ));
        }
        for parameter in &parameters {
            let required = parameter.required.unwrap_or(false);
            if parameter.location == ParameterIn::Path && !required {
                problems.push(format!("{method} {path}: {} not required", parameter.name));
            }
        }
        let unique: BTreeSet<_> = parameters
            .iter()
            .map(|parameter| {
                (
                    parameter.name.to_ascii_lowercase(),
                    format!("{:?}", parameter.location),
                )
            })
            .collect();
        if unique.len() != parameters.len() {
            problems.push(format!("{method} {path}: a parameter is declared twice"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The `{name}`s of a path template.
fn placeholders(path: &str) -> BTreeSet<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The paths `api::router` registers, read from its source: a route added there
/// without documentation shows here.
fn router_paths() -> BTreeSet<String> {
    let source = include_str!("../../src/api/mod.rs");
    let start = source.find("pub fn router(").expect("api::router");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").expect("the end of api::router")];
    body.split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

/// A path with its placeholders filled: routing takes any segment, and the
/// aggregate routes get values that pass their checks.
fn sample_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{aggregate_type}" => "bank-account",
            "{aggregate_id}" => "alice",
            _ if segment.starts_with('{') => "sample",
            _ => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn query_parameters(spec: &Spec, operation: &Operation) -> Vec<Parameter> {
    let parameters = operation.parameters(spec).expect("parameters resolve");
    parameters
        .into_iter()
        .filter(|parameter| parameter.location == ParameterIn::Query)
        .collect()
}

/// A value of a query parameter's type: its first enum value, else 1, true or `x`.
fn sample_value(spec: &Spec, parameter: &Parameter) -> String {
    let schema = parameter
        .schema
        .as_ref()
        .unwrap_or_else(|| panic!("{} has no schema", parameter.name))
        .resolve(spec)
        .expect("the schema resolves");
    let Schema::Object(object) = schema else {
        return "x".to_owned();
    };
    let ObjectOrReference::Object(object) = *object else {
        unreachable!("a resolved schema is not a reference")
    };
    if let Some(Value::String(first)) = object.enum_values.first() {
        return first.clone();
    }
    let types = match &object.schema_type {
        Some(SchemaTypeSet::Single(single)) => vec![*single],
        Some(SchemaTypeSet::Multiple(types)) => types.clone(),
        None => Vec::new(),
    };
    if types.contains(&SchemaType::Integer) {
        "1".to_owned()
    } else if types.contains(&SchemaType::Boolean) {
        "true".to_owned()
    } else {
        "x".to_owned()
    }
}

/// Every method a path does not document answers 405, in the JSON error shape, with
/// an `Allow` header naming exactly the documented ones.
async fn check_other_methods(http: &reqwest::Client, service: &Service, spec: &Spec, path: &str) {
    let url = service.path(&sample_path(path));
    let documented: BTreeSet<Method> = METHODS
        .into_iter()
        .filter(|method| spec.operation(method, path).is_some())
        .collect();
    for method in METHODS.into_iter().filter(|m| !documented.contains(m)) {
        let response = http
            .request(method.clone(), &url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("send");
        let allow: BTreeSet<String> = response
            .headers()
            .get("allow")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|method| method.trim().to_owned())
            .filter(|method| method != "HEAD")
            .collect();
        let (status, body) = answer(response).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "method-not-allowed", "{body}");
        let expected: BTreeSet<String> = documented.iter().map(ToString::to_string).collect();
        assert_eq!(allow, expected, "{method} {path}: Allow");
    }
}

/// Sends a request with the admin token; the status and body (JSON, else the text).
/// A live event stream is not read: its status and headers are the answer.
async fn send(http: &reqwest::Client, method: Method, url: &str, query: &str) -> (u16, Value) {
    let response = http
        .request(method, format!("{url}{query}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("send");
    let is_stream = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if is_stream {
        return (response.status().as_u16(), Value::Null);
    }
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Whether a route answered: neither the router's 404 fallback nor a 405.
fn is_routed((status, body): &(u16, Value)) -> bool {
    let fallback = *status == 404
        && body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("no such endpoint"));
    !fallback && *status != 405
}
