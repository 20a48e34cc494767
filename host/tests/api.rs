//! The API's answers to bad input: malformed JSON, wrong types, missing and unknown fields,
//! huge bodies and absurd values all get a 4xx whose message names the field; never a panic.
//! Also authentication, the state machine's conflicts, and `/metrics`.

mod common;

use std::time::Duration;

use common::{MODEL, SEQ_LEN};
use host::config::Config;
use host::device::DeviceConfig;
use serde_json::{json, Value};

struct Server {
    base: String,
    client: reqwest::Client,
    _data: tempfile::TempDir,
    node: std::sync::Arc<host::node::Node>,
}

async fn server(token: Option<&str>, max_body: usize, queue_cap: u64) -> Server {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::quick(MODEL.into(), vec![DeviceConfig::parse_spec("cpu").unwrap()]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = data.path().to_path_buf();
    config.auth.token = token.map(str::to_string);
    config.limits.max_body_bytes = max_body;
    config.limits.queue_cap = queue_cap;
    config.validate().unwrap();
    let (node, addr) = host::daemon::spawn(&config).await.unwrap();
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        _data: data,
        node,
    }
}

impl Server {
    async fn raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.raw(path, body.to_string()).await
    }
}

fn init() -> Value {
    json!({"block_hash": "0xabc", "block_height": 5, "public_key": "pk", "node_id": 0,
           "node_count": 1, "params": {"model": MODEL, "seq_len": SEQ_LEN}})
}

fn generate() -> Value {
    json!({"block_hash": "0xabc", "block_height": 5, "public_key": "pk", "node_id": 0,
           "node_count": 1, "nonces": [1, 2, 3], "params": {"model": MODEL, "seq_len": SEQ_LEN}})
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    match pointer.rsplit_once('/') {
        // A top-level key: set it, present or not.
        Some(("", key)) => {
            base.as_object_mut().unwrap().insert(key.to_string(), value);
        }
        _ => *base.pointer_mut(pointer).expect("field exists") = value,
    }
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

#[tokio::test]
async fn bad_requests_get_4xx_naming_the_field() {
    let s = server(None, 64 << 10, 1000).await;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/init/generate",
            without(init(), "node_count"),
            422,
            "node_count",
        ),
        (
            "/init/generate",
            with(init(), "/params/seq_len", json!(0)),
            422,
            "params.seq_len",
        ),
        (
            "/init/generate",
            with(init(), "/params/seq_len", json!(1_000_000_000)),
            422,
            "params.seq_len",
        ),
        (
            "/init/generate",
            with(init(), "/params/seq_len", json!("16")),
            422,
            "params.seq_len",
        ),
        (
            "/init/generate",
            with(
                init(),
                "/params",
                json!({"model": MODEL, "seq_len": 4, "k_dim": 65}),
            ),
            422,
            "params.k_dim",
        ),
        (
            "/init/generate",
            with(
                init(),
                "/params",
                json!({"model": MODEL, "seq_len": 4, "k_dim": 0}),
            ),
            422,
            "params.k_dim",
        ),
        (
            "/init/generate",
            with(
                init(),
                "/params",
                json!({"model": MODEL, "seq_len": 4, "top_p": 1}),
            ),
            422,
            "params",
        ),
        (
            "/init/generate",
            with(init(), "/params/model", json!("other")),
            409,
            "params.model",
        ),
        (
            "/init/generate",
            with(init(), "/node_id", json!(-1)),
            422,
            "node_id",
        ),
        (
            "/init/generate",
            with(init(), "/node_id", json!(1)),
            422,
            "node_id",
        ),
        (
            "/init/generate",
            with(init(), "/block_height", json!(1.5)),
            422,
            "block_height",
        ),
        (
            "/init/generate",
            with(init(), "/block_hash", json!("")),
            422,
            "block_hash",
        ),
        (
            "/init/generate",
            with(init(), "/block_hash", json!(null)),
            422,
            "block_hash",
        ),
        (
            "/init/generate",
            with(init(), "/params", json!([])),
            422,
            "params",
        ),
        (
            "/generate",
            with(generate(), "/batch_size", json!(0)),
            422,
            "batch_size",
        ),
        (
            "/generate",
            with(generate(), "/batch_size", json!(1_000_000_000u64)),
            422,
            "batch_size",
        ),
        (
            "/generate",
            with(generate(), "/nonces", json!([])),
            422,
            "nonces",
        ),
        (
            "/generate",
            with(generate(), "/nonces", json!([1, "two"])),
            422,
            "nonces[1]",
        ),
        (
            "/generate",
            with(generate(), "/nonces", json!([1, -2])),
            422,
            "nonces[1]",
        ),
        (
            "/generate",
            with(generate(), "/params/model", json!("other")),
            400,
            "params.model",
        ),
        (
            "/generate",
            with(generate(), "/url", json!("not a url")),
            422,
            "url",
        ),
        (
            "/generate",
            with(generate(), "/wait", json!("yes")),
            422,
            "wait",
        ),
        (
            "/generate",
            json!({"stat_test": {"p_mismatch": 2}, "validation": null}),
            422,
            "block_hash",
        ),
        (
            "/generate",
            with(
                generate(),
                "/validation",
                json!({"artifacts": [{"nonce": 1, "vector_b64": "AA=="}]}),
            ),
            400,
            "validation.artifacts",
        ),
    ];
    for (path, body, status, field) in cases {
        let (code, answer) = s.post(&format!("/api/v1/pow{path}"), &body).await;
        assert_eq!(code, status, "{path} {body}: {answer}");
        let named = answer["field"].as_str().unwrap_or("");
        assert!(
            named.starts_with(field),
            "{path} {body}: field {named:?} should name {field:?} ({answer})"
        );
        assert!(!answer["detail"].as_str().unwrap_or("").is_empty());
    }
    // Malformed JSON: 400 with a message, no field.
    for body in ["", "{", "not json", "{\"block_hash\": }", "[1,2,3"] {
        let (code, answer) = s.raw("/api/v1/pow/init/generate", body).await;
        assert!(code == 400 || code == 422, "{body:?}: {code} {answer}");
        assert!(!answer["detail"].as_str().unwrap_or("").is_empty());
    }
    // A body above the limit: 413, and the daemon still answers afterwards.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(100 << 10));
    let (code, answer) = s.raw("/api/v1/pow/generate", huge).await;
    assert_eq!(code, 413, "{answer}");
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .contains("max_body_bytes"));
    // Unknown routes and methods.
    let (code, answer) = s.raw("/api/v1/pow/nope", "{}").await;
    assert_eq!(code, 404);
    assert!(answer["detail"].as_str().unwrap().contains("/api/v1/pow/"));
    let response = s
        .client
        .get(format!("{}/api/v1/pow/stop", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    // Still alive, still idle.
    let status: Value = s
        .client
        .get(format!("{}/api/v1/pow/status", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "IDLE");
    s.node.shutdown().await;
}

#[tokio::test]
async fn the_queue_cap_answers_429() {
    let s = server(None, 1 << 20, 10).await;
    let mut body = generate();
    body["nonces"] = json!((0..11).collect::<Vec<u64>>());
    let (code, answer) = s.post("/api/v1/pow/generate", &body).await;
    assert_eq!(
        code, 422,
        "a single request above the cap is refused outright: {answer}"
    );
    // Fill the queue with jobs faster than one device can drain it.
    let mut saw_429 = false;
    for round in 0..50u64 {
        let mut body = generate();
        body["nonces"] = json!((round * 10..round * 10 + 10).collect::<Vec<u64>>());
        let (code, answer) = s.post("/api/v1/pow/generate", &body).await;
        match code {
            200 => assert_eq!(answer["status"], "queued"),
            429 => {
                assert!(
                    answer["detail"].as_str().unwrap().contains("cap of 10"),
                    "{answer}"
                );
                saw_429 = true;
                break;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert!(saw_429, "the queue never reached its cap");
    s.node.shutdown().await;
}

#[tokio::test]
async fn bearer_token_guards_everything() {
    let s = server(Some("s3cret"), 1 << 20, 1000).await;
    for path in ["/api/v1/pow/status", "/metrics"] {
        let url = format!("{}{path}", s.base);
        let response = s.client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let response = s
            .client
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let response = s
            .client
            .get(&url)
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    s.node.shutdown().await;
}

#[tokio::test]
async fn state_machine_and_metrics() {
    let s = server(None, 1 << 20, 1000).await;
    let (code, answer) = s.post("/api/v1/pow/init/generate", &init()).await;
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = s.post("/api/v1/pow/init/generate", &init()).await;
    assert_eq!(code, 409);
    assert!(
        answer["detail"].as_str().unwrap().contains("stop"),
        "{answer}"
    );
    let (code, answer) = s.post("/api/v1/pow/stop", &json!({})).await;
    assert_eq!(
        (code, &answer["pow_status"]["status"]),
        (200, &json!("STOPPED"))
    );
    // After a stop, a new init is accepted.
    let (code, _) = s.post("/api/v1/pow/init/generate", &init()).await;
    assert_eq!(code, 200);
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "host_info{model=\"synthetic:tiny\"",
        "host_generating 1",
        "host_queue_depth_nonces",
        "host_callback_backlog_artifacts",
        "host_device_up{device=\"cpu0\",backend=\"cpu\"} 1",
        "host_device_hardware_errors_total{device=\"cpu0\",backend=\"cpu\"} 0",
        "host_http_requests_total{route=\"/api/v1/pow/init/generate\",code=\"409\"} 1",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
    s.post("/api/v1/pow/stop", &json!({})).await;
    s.node.shutdown().await;
}
