//! `HttpConfig`: TOML in and out, defaults, and validation naming the field.

#![cfg(feature = "http")]

use tower_fleet::http::{GrpcCode, Http, HttpConfig};
use tower_fleet::Validate;

#[test]
fn the_default_configuration_round_trips_through_toml() {
    let config = HttpConfig::default();
    assert!(config.validate().is_ok());
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("max_heuristic = \"1day\""), "{text}");
    let back: HttpConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, config);
    let empty: HttpConfig = toml::from_str("").unwrap();
    assert_eq!(empty, config);
}

#[test]
fn unknown_fields_are_refused() {
    assert!(toml::from_str::<HttpConfig>("fail_on_503 = true").is_err());
    assert!(toml::from_str::<HttpConfig>("[cache]\nvary = []").is_err());
    assert!(toml::from_str::<HttpConfig>("grpc_failures = [\"NOPE\"]").is_err());
}

#[test]
fn invalid_values_name_their_field() {
    let cases: Vec<(&str, &str)> = vec![
        ("idempotency_header = \"bad header\"", "idempotency_header"),
        ("grpc_failures = [\"OK\"]", "grpc_failures"),
        ("max_response_body = 0", "max_response_body"),
        (
            "[cache]\nvary_on = [\"accept\", \"no good\"]",
            "cache.vary_on[1]",
        ),
        (
            "[cache]\nheuristic_percent = 101",
            "cache.heuristic_percent",
        ),
        ("[cache]\nmax_heuristic = \"0s\"", "cache.max_heuristic"),
    ];
    for (text, field) in cases {
        let config: HttpConfig = toml::from_str(text).unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.field(), field, "{text}");
        assert_eq!(Http::new(config).unwrap_err().field(), field, "{text}");
    }
}

#[test]
fn the_builder_validates_like_the_configuration() {
    let err = Http::builder()
        .grpc_failures([GrpcCode::Ok])
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "grpc_failures");
    let http = Http::builder()
        .fail_on_408(false)
        .idempotency_header(None)
        .grpc_failures([GrpcCode::Unavailable])
        .build()
        .unwrap();
    assert!(!http.config().fail_on_408);
    assert!(http.classify().grpc_codes().contains(GrpcCode::Unavailable));
    assert!(!http.classify().grpc_codes().contains(GrpcCode::Internal));
}
