//! Semantic checks of parsed requests: everything serde cannot know (ranges, the served model,
//! cross-field rules). Each failure names the field and the valid range.

use std::collections::HashMap;

use axum::http::StatusCode;

use super::error::ApiError;
use super::wire::{GenerateRequest, InitGenerateRequest, Params, StatTest};
use crate::nonce::{NonceSequence, NonceSequenceError};

/// What the node serves and how much it accepts: the yardstick requests are checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The served model's name; `params.model` must equal it.
    pub model: String,
    /// The model's hidden size d: `k_dim` must not exceed it.
    pub hidden_size: u64,
    /// Longest sequence the node accepts (the model's context, or the operator's cap).
    pub max_seq_len: u64,
    /// When set, the only `seq_len` the node serves.
    pub pinned_seq_len: Option<u64>,
    /// When set, the only `k_dim` the node serves.
    pub pinned_k_dim: Option<u64>,
    /// Largest accepted `batch_size`.
    pub max_batch_size: u64,
    /// Most nonces queued at once (also the most in one request).
    pub queue_cap: u64,
    /// Longest accepted `block_hash` / `public_key` / `url`, in bytes.
    pub max_string_len: usize,
}

/// Which call a `params` mismatch happened in: the network answers 409 for init, 400 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `POST /init/generate`.
    Init,
    /// `POST /generate`.
    Generate,
}

impl Call {
    fn mismatch_status(self) -> StatusCode {
        match self {
            Call::Init => StatusCode::CONFLICT,
            Call::Generate => StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks `params` against the served model: a different model (or a pinned value that differs)
/// is a conflict; a value out of range is 422.
pub fn check_params(params: &Params, limits: &Limits, call: Call) -> Result<(), ApiError> {
    if params.model != limits.model {
        return Err(ApiError::new(
            call.mismatch_status(),
            format!(
                "params.model is {:?} but this node serves {:?}",
                params.model, limits.model
            ),
        )
        .with_field("params.model"));
    }
    if params.seq_len == 0 || params.seq_len > limits.max_seq_len {
        return Err(ApiError::field(
            "params.seq_len",
            format!(
                "params.seq_len = {} is out of range: it must be between 1 and {} for {}",
                params.seq_len, limits.max_seq_len, limits.model
            ),
        ));
    }
    if params.k_dim == 0 || params.k_dim > limits.hidden_size {
        return Err(ApiError::field(
            "params.k_dim",
            format!(
                "params.k_dim = {} is out of range: it must be between 1 and the model's hidden size {}",
                params.k_dim, limits.hidden_size
            ),
        ));
    }
    for (field, value, pinned) in [
        ("params.seq_len", params.seq_len, limits.pinned_seq_len),
        ("params.k_dim", params.k_dim, limits.pinned_k_dim),
    ] {
        if let Some(pinned) = pinned {
            if value != pinned {
                return Err(ApiError::new(
                    call.mismatch_status(),
                    format!("{field} = {value} but this node serves only {pinned}"),
                )
                .with_field(field));
            }
        }
    }
    Ok(())
}

fn check_string(field: &str, value: &str, limits: &Limits) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::field(field, format!("{field} must not be empty")));
    }
    if value.len() > limits.max_string_len {
        return Err(ApiError::field(
            field,
            format!(
                "{field} is {} bytes long; at most {} are accepted",
                value.len(),
                limits.max_string_len
            ),
        ));
    }
    Ok(())
}

fn check_batch_size(batch_size: u64, limits: &Limits) -> Result<(), ApiError> {
    if batch_size == 0 || batch_size > limits.max_batch_size {
        return Err(ApiError::field(
            "batch_size",
            format!(
                "batch_size = {batch_size} is out of range: it must be between 1 and {}",
                limits.max_batch_size
            ),
        ));
    }
    Ok(())
}

/// Checks a callback base URL: absolute `http://` or `https://` with a host.
pub fn check_url(url: &str, limits: &Limits) -> Result<(), ApiError> {
    check_string("url", url, limits)?;
    let parsed = reqwest::Url::parse(url).map_err(|err| {
        ApiError::field(
            "url",
            format!(
                "url {url:?} is not an absolute URL ({err}); expected e.g. http://host:port/path"
            ),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::field(
            "url",
            format!("url {url:?} must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(())
}

fn nonce_error(err: NonceSequenceError) -> ApiError {
    let field = match &err {
        NonceSequenceError::Zero { field } => *field,
        NonceSequenceError::IndexOutOfRange { field, .. } => *field,
        NonceSequenceError::Overflow => "n_groups",
    };
    ApiError::field(field, err.to_string())
}

/// Checks an init request and returns its nonce sequence.
pub fn check_init(req: &InitGenerateRequest, limits: &Limits) -> Result<NonceSequence, ApiError> {
    check_params(&req.params, limits, Call::Init)?;
    check_string("block_hash", &req.block_hash, limits)?;
    check_string("public_key", &req.public_key, limits)?;
    check_batch_size(req.batch_size, limits)?;
    if let Some(url) = &req.url {
        check_url(url, limits)?;
    }
    NonceSequence::new(req.node_id, req.node_count, req.group_id, req.n_groups).map_err(nonce_error)
}

fn check_stat_test(stat: &StatTest) -> Result<(), ApiError> {
    if !(stat.dist_threshold.is_finite() && stat.dist_threshold >= 0.0) {
        return Err(ApiError::field(
            "stat_test.dist_threshold",
            format!(
                "stat_test.dist_threshold = {} must be a finite number ≥ 0",
                stat.dist_threshold
            ),
        ));
    }
    for (field, value) in [
        ("stat_test.p_mismatch", stat.p_mismatch),
        ("stat_test.fraud_threshold", stat.fraud_threshold),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(ApiError::field(
                field,
                format!("{field} = {value} is a probability: it must be between 0 and 1"),
            ));
        }
    }
    Ok(())
}

/// Checks a `/generate` request (the queue cap is checked by the queue, which knows its depth).
pub fn check_generate(req: &GenerateRequest, limits: &Limits) -> Result<(), ApiError> {
    check_params(&req.params, limits, Call::Generate)?;
    check_string("block_hash", &req.block_hash, limits)?;
    check_string("public_key", &req.public_key, limits)?;
    check_batch_size(req.batch_size, limits)?;
    if req.node_count == 0 {
        return Err(ApiError::field(
            "node_count",
            "node_count is 0; it must be at least 1",
        ));
    }
    if req.nonces.is_empty() {
        return Err(ApiError::field(
            "nonces",
            "nonces is empty; give at least one nonce",
        ));
    }
    if req.nonces.len() as u64 > limits.queue_cap {
        return Err(ApiError::field(
            "nonces",
            format!(
                "{} nonces in one request exceed the queue cap of {}; split the request",
                req.nonces.len(),
                limits.queue_cap
            ),
        ));
    }
    if let Some(url) = &req.url {
        check_url(url, limits)?;
    }
    if let Some(stat) = &req.stat_test {
        check_stat_test(stat)?;
    }
    if let Some(validation) = &req.validation {
        check_validation_nonces(&req.nonces, validation)?;
    }
    Ok(())
}

/// The network's rule: the validation artifacts must be for exactly the request's nonces (we
/// accept them in any order, each as often as it appears in `nonces`). Otherwise 400.
fn check_validation_nonces(
    nonces: &[u64],
    validation: &super::wire::Validation,
) -> Result<(), ApiError> {
    let bad = |detail: String| {
        Err(ApiError::new(StatusCode::BAD_REQUEST, detail).with_field("validation.artifacts"))
    };
    if validation.artifacts.len() != nonces.len() {
        return bad(format!(
            "validation.artifacts has {} entries but nonces has {}: give exactly one artifact per nonce",
            validation.artifacts.len(),
            nonces.len()
        ));
    }
    let mut counts: HashMap<u64, i64> = HashMap::with_capacity(nonces.len());
    for nonce in nonces {
        *counts.entry(*nonce).or_default() += 1;
    }
    for artifact in &validation.artifacts {
        let count = counts.entry(artifact.nonce).or_default();
        *count -= 1;
        if *count < 0 {
            return bad(format!(
                "validation.artifacts has nonce {} which is not in nonces (or more often than there)",
                artifact.nonce
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::parse_json;

    fn limits() -> Limits {
        Limits {
            model: "synthetic:tiny".into(),
            hidden_size: 64,
            max_seq_len: 256,
            pinned_seq_len: None,
            pinned_k_dim: None,
            max_batch_size: 1024,
            queue_cap: 100,
            max_string_len: 1024,
        }
    }

    fn init(extra: &str) -> InitGenerateRequest {
        let body = format!(
            r#"{{"block_hash":"h","block_height":1,"public_key":"p","node_id":0,"node_count":2,
               "params":{{"model":"synthetic:tiny","seq_len":4}}{extra}}}"#
        );
        parse_json(body.as_bytes()).unwrap()
    }

    #[test]
    fn good_init_gives_its_sequence() {
        let seq = check_init(&init(""), &limits()).unwrap();
        assert_eq!((seq.start(), seq.step()), (0, 2));
    }

    #[test]
    fn absurd_values_name_their_field() {
        let l = limits();
        for (extra, field) in [
            (r#","batch_size":0"#, "batch_size"),
            (r#","batch_size":1000000000"#, "batch_size"),
            (r#","group_id":1"#, "group_id"),
            (r#","n_groups":0"#, "n_groups"),
            (r#","url":"not a url""#, "url"),
            (r#","url":"ftp://x/""#, "url"),
        ] {
            let err = check_init(&init(extra), &l).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
            assert_eq!(err.field.as_deref(), Some(field), "{extra}: {err}");
        }
        let mut req = init("");
        req.params.seq_len = 0;
        assert_eq!(
            check_init(&req, &l).unwrap_err().field.as_deref(),
            Some("params.seq_len")
        );
        req.params.seq_len = 4;
        req.params.k_dim = 65;
        let err = check_init(&req, &l).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("params.k_dim"));
        assert!(err.detail.contains("hidden size 64"), "{err}");
        let mut req = init("");
        req.block_hash.clear();
        assert_eq!(
            check_init(&req, &l).unwrap_err().field.as_deref(),
            Some("block_hash")
        );
    }

    #[test]
    fn another_model_is_409_on_init_and_400_on_generate() {
        let mut params = init("").params;
        params.model = "other".into();
        let l = limits();
        assert_eq!(
            check_params(&params, &l, Call::Init).unwrap_err().status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            check_params(&params, &l, Call::Generate)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        let mut l = limits();
        l.pinned_seq_len = Some(8);
        let params = init("").params;
        let err = check_params(&params, &l, Call::Init).unwrap_err();
        assert_eq!(err.status, StatusCode::CONFLICT);
        assert_eq!(err.field.as_deref(), Some("params.seq_len"));
    }

    fn generate(nonces: &str, validation: &str) -> GenerateRequest {
        let body = format!(
            r#"{{"block_hash":"h","block_height":1,"public_key":"p","node_id":0,"node_count":1,
               "nonces":{nonces},"params":{{"model":"synthetic:tiny","seq_len":4}}{validation}}}"#
        );
        parse_json(body.as_bytes()).unwrap()
    }

    #[test]
    fn validation_nonces_must_be_exactly_the_nonces() {
        let l = limits();
        let art = |n: u64| format!(r#"{{"nonce":{n},"vector_b64":"AAAA"}}"#);
        let ok = format!(r#","validation":{{"artifacts":[{},{}]}}"#, art(2), art(1));
        assert!(check_generate(&generate("[1,2]", &ok), &l).is_ok());
        let wrong = format!(r#","validation":{{"artifacts":[{},{}]}}"#, art(1), art(3));
        let err = check_generate(&generate("[1,2]", &wrong), &l).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let short = format!(r#","validation":{{"artifacts":[{}]}}"#, art(1));
        let err = check_generate(&generate("[1,2]", &short), &l).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let dup = format!(r#","validation":{{"artifacts":[{},{}]}}"#, art(1), art(1));
        assert!(check_generate(&generate("[1,2]", &dup), &l).is_err());
    }

    #[test]
    fn nonce_count_and_stat_test_are_checked() {
        let l = limits();
        let err = check_generate(&generate("[]", ""), &l).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("nonces"));
        let many = format!("[{}]", vec!["1"; 101].join(","));
        let err = check_generate(&generate(&many, ""), &l).unwrap_err();
        assert!(err.detail.contains("queue cap"), "{err}");
        let stat = r#","stat_test":{"p_mismatch":1.5}"#;
        let err = check_generate(&generate("[1]", stat), &l).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("stat_test.p_mismatch"));
        let stat = r#","stat_test":{"dist_threshold":-1}"#;
        let err = check_generate(&generate("[1]", stat), &l).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("stat_test.dist_threshold"));
    }

    mod never_panics {
        //! Network input, mutated at random: parsing and checking never panic, and every refusal
        //! is a 4xx that says something.
        use super::*;
        use proptest::prelude::*;
        use serde_json::{json, Value};

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                "[ -~]{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::hash_map("[a-z_]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn base() -> Value {
            json!({"block_hash": "h", "block_height": 1, "public_key": "p", "node_id": 0,
                   "node_count": 1, "nonces": [1, 2], "batch_size": 4,
                   "params": {"model": "synthetic:tiny", "seq_len": 4, "k_dim": 12},
                   "validation": {"artifacts": [{"nonce": 1, "vector_b64": "AAAA"},
                                                {"nonce": 2, "vector_b64": "AAAA"}]},
                   "stat_test": {"p_mismatch": 0.001}})
        }

        const POINTERS: &[&str] = &[
            "/block_hash",
            "/block_height",
            "/public_key",
            "/node_id",
            "/node_count",
            "/group_id",
            "/n_groups",
            "/nonces",
            "/nonces/0",
            "/batch_size",
            "/params",
            "/params/model",
            "/params/seq_len",
            "/params/k_dim",
            "/params/extra",
            "/url",
            "/wait",
            "/validation",
            "/validation/artifacts",
            "/validation/artifacts/0",
            "/validation/artifacts/0/nonce",
            "/validation/artifacts/1/vector_b64",
            "/stat_test",
            "/stat_test/p_mismatch",
            "/stat_test/fraud_threshold",
        ];

        fn set(mut value: Value, pointer: &str, to: Value) -> Value {
            let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.insert(key.to_string(), to);
                }
                Some(Value::Array(items)) => {
                    if let Some(item) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        *item = to;
                    }
                }
                _ => {}
            }
            value
        }

        fn judge(body: &[u8]) {
            let l = limits();
            let refusal = match parse_json::<GenerateRequest>(body) {
                Ok(request) => check_generate(&request, &l).err(),
                Err(err) => Some(err),
            };
            if let Some(err) = refusal {
                assert!(err.status.is_client_error(), "{err}");
                assert!(!err.detail.is_empty());
                assert!(err.field.as_deref() != Some(""));
            }
            let refusal = match parse_json::<InitGenerateRequest>(body) {
                Ok(request) => check_init(&request, &l).err(),
                Err(err) => Some(err),
            };
            if let Some(err) = refusal {
                assert!(err.status.is_client_error(), "{err}");
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn mutated_fields(mutations in prop::collection::vec(
                (prop::sample::select(POINTERS), any_json()), 1..4)) {
                let mut body = base();
                for (pointer, value) in mutations {
                    body = set(body, pointer, value);
                }
                judge(body.to_string().as_bytes());
            }

            #[test]
            fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                judge(&bytes);
            }

            #[test]
            fn truncated_bodies(cut in 0usize..400) {
                let text = base().to_string();
                judge(&text.as_bytes()[..cut.min(text.len())]);
            }
        }
    }
}
