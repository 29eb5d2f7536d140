//! `RetryConfig` as data: TOML documents, defaults, refusals that name the
//! field, and the builder validating the same way.

use std::time::Duration;

use tower_fleet::config::Validate;
use tower_fleet::retry::{
    Backoff, BudgetConfig, HedgeConfig, Jitter, Retry, RetryConfig, RetryLayer,
};

#[test]
fn a_document_parses_and_round_trips() {
    let text = r#"
        max_attempts = 4
        attempt_timeout = "500ms"
        timeout = "2s"
        max_retry_after = "30s"

        [backoff]
        base = "20ms"
        max = "800ms"
        jitter = "decorrelated"

        [budget]
        ratio = 0.1
        min_per_second = 5
        ttl = "30s"

        [hedge]
        delay = "15ms"
        percentile = 0.95
        window = "5s"
        min_samples = 50
    "#;
    let cfg: RetryConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.max_attempts, 4);
    assert_eq!(cfg.attempt_timeout, Some(Duration::from_millis(500)));
    assert_eq!(cfg.timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        cfg.backoff,
        Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(800),
            Jitter::Decorrelated
        )
        .unwrap()
    );
    assert_eq!(cfg.budget.ttl, Duration::from_secs(30));
    let hedge = cfg.hedge.clone().unwrap();
    assert_eq!(
        (hedge.delay, hedge.percentile, hedge.min_samples),
        (Duration::from_millis(15), Some(0.95), 50)
    );
    let back: RetryConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn an_empty_document_is_the_default_and_the_defaults_are_documented_ones() {
    let cfg: RetryConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, RetryConfig::default());
    assert_eq!(cfg.max_attempts, 3);
    assert_eq!(
        (cfg.attempt_timeout, cfg.timeout, cfg.hedge.as_ref()),
        (None, None, None)
    );
    assert_eq!(cfg.backoff.jitter, Jitter::Full);
    let b = &cfg.budget;
    assert_eq!(
        (b.enabled, b.ratio, b.min_per_second, b.ttl),
        (true, 0.2, 10, Duration::from_secs(10))
    );
    // Absent optional fields stay absent when written back.
    let text = toml::to_string(&cfg).unwrap();
    assert!(
        !text.contains("attempt_timeout") && !text.contains("hedge"),
        "{text}"
    );
    // A bare [hedge] table turns hedging on with its defaults.
    let cfg: RetryConfig = toml::from_str("[hedge]").unwrap();
    assert_eq!(cfg.hedge, Some(HedgeConfig::default()));
}

#[test]
fn unknown_fields_are_refused() {
    for text in [
        "max_attempt = 3",
        "[backoff]\nbase = \"1s\"\nfactor = 2",
        "[budget]\npercent = 20",
        "[hedge]\ndelay = \"1s\"\nburst = 2",
        "[backoff]\njitter = \"random\"",
    ] {
        assert!(toml::from_str::<RetryConfig>(text).is_err(), "{text}");
    }
}

#[test]
fn each_bad_field_is_named_with_its_value() {
    let bad = |text: &str| {
        toml::from_str::<RetryConfig>(text)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    let cases = [
        ("max_attempts = 0", "max_attempts", "0"),
        ("max_attempts = 101", "max_attempts", "101"),
        ("attempt_timeout = \"0s\"", "attempt_timeout", "0s"),
        ("timeout = \"0s\"", "timeout", "0s"),
        ("max_retry_after = \"0s\"", "max_retry_after", "0s"),
        ("[backoff]\nbase = \"0s\"", "backoff.base", "0s"),
        (
            "[backoff]\nbase = \"2s\"\nmax = \"1s\"",
            "backoff.max",
            "1s",
        ),
        ("[budget]\nratio = -0.5", "budget.ratio", "-0.5"),
        ("[budget]\nttl = \"500ms\"", "budget.ttl", "500ms"),
        (
            "[budget]\nmin_per_second = 2000000",
            "budget.min_per_second",
            "2000000",
        ),
        ("[hedge]\npercentile = 1.0", "hedge.percentile", "1"),
        ("[hedge]\nwindow = \"10ms\"", "hedge.window", "10ms"),
        ("[hedge]\nmin_samples = 0", "hedge.min_samples", "0"),
    ];
    for (text, field, value) in cases {
        let e = bad(text);
        assert_eq!((e.field(), e.value()), (field, value), "{text}");
    }
}

#[test]
fn builders_and_layers_refuse_what_validation_refuses() {
    assert_eq!(
        Retry::builder()
            .max_attempts(0)
            .layer()
            .unwrap_err()
            .field(),
        "max_attempts"
    );
    let bad_budget = BudgetConfig {
        ratio: f64::INFINITY,
        ..BudgetConfig::default()
    };
    assert_eq!(
        Retry::builder()
            .budget(bad_budget)
            .layer()
            .unwrap_err()
            .field(),
        "budget.ratio"
    );
    let cfg = RetryConfig {
        hedge: Some(HedgeConfig::at_percentile(0.0, Duration::ZERO)),
        ..RetryConfig::default()
    };
    assert_eq!(
        RetryLayer::new(cfg).unwrap_err().field(),
        "hedge.percentile"
    );
}
