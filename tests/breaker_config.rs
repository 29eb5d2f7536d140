//! `BreakerConfig`: serde, defaults, presets and validation.

use std::time::Duration;

use tower::Layer;
use tower_fleet::breaker::{
    BreakerBuildError, BreakerConfig, CircuitBreaker, CircuitBreakerLayer, InitialState, OpenMode,
    WindowConfig,
};
use tower_fleet::Validate;

#[test]
fn defaults_are_resilience4j_s() {
    let c = BreakerConfig::default();
    assert_eq!(c.window, WindowConfig::Count { size: 100 });
    assert_eq!(c.minimum_calls, 100);
    assert_eq!(c.failure_rate_threshold, 50.0);
    assert_eq!(c.open_duration, Duration::from_secs(60));
    assert_eq!(c.half_open_calls, 10);
    assert_eq!(c.slow_call_duration, None);
    assert_eq!(c.consecutive_failures, None);
    assert_eq!(c.open_mode, OpenMode::FailFast);
    assert_eq!(BreakerConfig::standard(), c);
    for preset in [
        BreakerConfig::standard(),
        BreakerConfig::sensitive(),
        BreakerConfig::replica(),
    ] {
        preset.validate().unwrap();
    }
    assert_eq!(BreakerConfig::replica().open_mode, OpenMode::NotReady);
}

#[test]
fn parses_a_document_with_human_durations_and_round_trips() {
    let text = r#"
        failure_rate_threshold = 25.0
        minimum_calls = 20
        slow_call_duration = "750ms"
        slow_call_rate_threshold = 80.0
        consecutive_failures = 5
        open_duration = "10s"
        open_duration_multiplier = 2.0
        max_open_duration = "5m"
        open_jitter = 0.2
        half_open_calls = 3
        max_half_open_duration = "30s"
        open_mode = "not_ready"
        initial_state = "metrics_only"
        clock_resolution = "1ms"

        [window]
        kind = "time"
        duration = "30s"
        buckets = 30
    "#;
    let c: BreakerConfig = toml::from_str(text).unwrap();
    c.validate().unwrap();
    assert_eq!(c.slow_call_duration, Some(Duration::from_millis(750)));
    assert_eq!(
        c.window,
        WindowConfig::Time {
            duration: Duration::from_secs(30),
            buckets: 30
        }
    );
    assert_eq!(c.initial_state, InitialState::MetricsOnly);
    assert_eq!(c.max_open_duration, Duration::from_secs(300));
    let back: BreakerConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let empty: BreakerConfig = toml::from_str("").unwrap();
    assert_eq!(empty, BreakerConfig::default());
    let default_text = toml::to_string(&BreakerConfig::default()).unwrap();
    assert_eq!(
        toml::from_str::<BreakerConfig>(&default_text).unwrap(),
        BreakerConfig::default()
    );
    let buckets: BreakerConfig =
        toml::from_str("[window]\nkind = \"time\"\nduration = \"10s\"").unwrap();
    assert_eq!(
        buckets.window,
        WindowConfig::Time {
            duration: Duration::from_secs(10),
            buckets: 10
        }
    );
}

#[test]
fn unknown_fields_are_refused() {
    assert!(toml::from_str::<BreakerConfig>("failure_rate = 50.0").is_err());
    assert!(
        toml::from_str::<BreakerConfig>("[window]\nkind = \"count\"\nsize = 5\nbuckets = 2")
            .is_err()
    );
    assert!(toml::from_str::<BreakerConfig>("[window]\nkind = \"sliding\"").is_err());
    assert!(toml::from_str::<BreakerConfig>("open_mode = \"block\"").is_err());
}

#[test]
fn each_out_of_range_field_is_named_with_its_value() {
    let bad = |text: &str| {
        toml::from_str::<BreakerConfig>(text)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    let cases = [
        (
            "failure_rate_threshold = 0.0",
            "failure_rate_threshold",
            "0",
        ),
        (
            "failure_rate_threshold = 100.5",
            "failure_rate_threshold",
            "100.5",
        ),
        (
            "failure_rate_threshold = nan",
            "failure_rate_threshold",
            "NaN",
        ),
        (
            "slow_call_rate_threshold = -1.0",
            "slow_call_rate_threshold",
            "-1",
        ),
        ("minimum_calls = 0", "minimum_calls", "0"),
        ("slow_call_duration = \"0s\"", "slow_call_duration", "0s"),
        ("consecutive_failures = 0", "consecutive_failures", "0"),
        ("open_duration = \"0s\"", "open_duration", "0s"),
        (
            "open_duration_multiplier = 0.5",
            "open_duration_multiplier",
            "0.5",
        ),
        (
            "open_duration = \"2m\"\nmax_open_duration = \"1m\"",
            "max_open_duration",
            "1m",
        ),
        ("open_jitter = 1.5", "open_jitter", "1.5"),
        ("half_open_calls = 0", "half_open_calls", "0"),
        ("half_open_calls = 256", "half_open_calls", "256"),
        (
            "max_half_open_duration = \"0s\"",
            "max_half_open_duration",
            "0s",
        ),
        ("clock_resolution = \"0s\"", "clock_resolution", "0s"),
        ("[window]\nkind = \"count\"\nsize = 0", "window.size", "0"),
        (
            "[window]\nkind = \"count\"\nsize = 1000001",
            "window.size",
            "1000001",
        ),
        (
            "[window]\nkind = \"time\"\nduration = \"2h\"",
            "window.duration",
            "2h",
        ),
        (
            "[window]\nkind = \"time\"\nduration = \"1s\"\nbuckets = 0",
            "window.buckets",
            "0",
        ),
        (
            "[window]\nkind = \"time\"\nduration = \"5ms\"\nbuckets = 10",
            "window.duration",
            "5ms",
        ),
    ];
    for (text, field, value) in cases {
        let e = bad(text);
        assert_eq!((e.field(), e.value()), (field, value), "{text}");
    }
}

#[test]
fn builders_and_layers_refuse_what_validate_refuses() {
    let e = CircuitBreaker::builder()
        .half_open_calls(0)
        .build(())
        .unwrap_err();
    assert!(
        matches!(e, BreakerBuildError::Config(ref c) if c.field() == "half_open_calls"),
        "{e}"
    );
    let e = CircuitBreaker::builder()
        .count_window(0)
        .layer()
        .unwrap_err();
    assert!(e.to_string().contains("window.size"), "{e}");
    let e = CircuitBreakerLayer::new(BreakerConfig {
        failure_rate_threshold: 0.0,
        ..BreakerConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("failure_rate_threshold"), "{e}");
}

#[test]
fn a_coarse_clock_needs_a_runtime() {
    let e = CircuitBreaker::builder()
        .clock_resolution(Duration::from_millis(1))
        .build(())
        .unwrap_err();
    assert!(matches!(e, BreakerBuildError::NoRuntime(_)), "{e}");
}

#[tokio::test]
async fn each_service_a_layer_wraps_gets_its_own_breaker() {
    let layer = CircuitBreakerLayer::new(BreakerConfig::replica()).unwrap();
    let a = layer.layer(());
    let b = layer.layer(());
    a.handle().force_open();
    assert!(a.handle().state().is_open());
    assert!(!b.handle().state().is_open());
    assert!(
        a.clone().handle().state().is_open(),
        "clones share one state"
    );
    assert_eq!(layer.config(), &BreakerConfig::replica());
}
