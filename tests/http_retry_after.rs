//! `Retry-After` and `grpc-retry-pushback-ms`: both forms, past dates,
//! huge values (which the retry layer does not wait for), and malformed
//! values (ignored and counted).

#![cfg(feature = "http")]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Response};
use tower_fleet::http::{parse_pushback, parse_retry_after, HttpRetryAfter, Trailers};
use tower_fleet::signal::{RetryAfter, Unavailable, UnavailableKind};
use tower_fleet::BoxError;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn retry_after_reads_delta_seconds_and_http_dates() {
    // Wed, 21 Oct 2015 07:28:00 GMT
    let date = 1_445_412_480;
    let now = at(date - 90);
    let table: [(&str, Option<Duration>); 14] = [
        ("0", Some(Duration::ZERO)),
        ("1", Some(Duration::from_secs(1))),
        (" 120 ", Some(Duration::from_secs(120))),
        (
            "Wed, 21 Oct 2015 07:28:00 GMT",
            Some(Duration::from_secs(90)),
        ),
        // The obsolete formats are HTTP-dates too.
        (
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            Some(Duration::from_secs(90)),
        ),
        ("Wed Oct 21 07:28:00 2015", Some(Duration::from_secs(90))),
        // A date in the past: retry at once.
        ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", Some(Duration::ZERO)),
        // Huge: returned as given, saturated.
        (
            "99999999999999999999999999",
            Some(Duration::from_secs(u64::MAX)),
        ),
        // Garbage.
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ];
    for (value, expected) in table {
        assert_eq!(
            parse_retry_after(value.as_bytes(), now).ok(),
            expected,
            "{value:?}"
        );
    }
    assert!(parse_retry_after(&[0xff, 0x31], now).is_err());
}

#[test]
fn pushback_reads_milliseconds_and_negative_means_do_not_retry() {
    let table: [(&str, Option<Duration>); 7] = [
        ("0", Some(Duration::ZERO)),
        ("250", Some(Duration::from_millis(250))),
        ("-1", Some(Duration::MAX)),
        (
            "99999999999999999999999",
            Some(Duration::from_millis(u64::MAX)),
        ),
        ("2s", None),
        ("", None),
        ("-", None),
    ];
    for (value, expected) in table {
        assert_eq!(parse_pushback(value.as_bytes()).ok(), expected, "{value:?}");
    }
}

fn res(headers: &[(&str, &str)]) -> Result<Response<()>, BoxError> {
    let mut b = Response::builder().status(503);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Ok(b.body(()).unwrap())
}

#[test]
fn the_reader_ignores_and_counts_malformed_values() {
    let reader = HttpRetryAfter::new();
    assert_eq!(
        reader.retry_after(&res(&[("retry-after", "3")])),
        Some(Duration::from_secs(3))
    );
    assert_eq!(reader.retry_after(&res(&[("retry-after", "later")])), None);
    assert_eq!(
        reader.retry_after(&res(&[("grpc-retry-pushback-ms", "x")])),
        None
    );
    assert_eq!(reader.retry_after(&res(&[])), None);
    assert_eq!(reader.handle().snapshot().retry_after_malformed, 2);
    // A future date, read against the system clock.
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let hint = reader
        .retry_after(&res(&[("retry-after", &later)]))
        .unwrap();
    assert!(
        hint <= Duration::from_secs(120) && hint >= Duration::from_secs(110),
        "{hint:?}"
    );
}

#[test]
fn pushback_wins_and_is_read_from_kept_trailers_too() {
    let reader = HttpRetryAfter::new();
    let both = res(&[("grpc-retry-pushback-ms", "40"), ("retry-after", "9")]);
    assert_eq!(reader.retry_after(&both), Some(Duration::from_millis(40)));
    let mut trailed = res(&[("retry-after", "9")]).unwrap();
    let mut t = HeaderMap::new();
    t.insert("grpc-retry-pushback-ms", "75".parse().unwrap());
    trailed.extensions_mut().insert(Trailers(t));
    assert_eq!(
        reader.retry_after(&Ok::<_, BoxError>(trailed)),
        Some(Duration::from_millis(75))
    );
}

#[test]
fn errors_give_their_unavailable_signals_retry_after() {
    let reader = HttpRetryAfter::new();
    let err: Result<Response<()>, BoxError> = Err(Box::new(
        Unavailable::new(UnavailableKind::CircuitOpen)
            .with_retry_after(Some(Duration::from_secs(4))),
    ));
    assert_eq!(reader.retry_after(&err), Some(Duration::from_secs(4)));
    let plain: Result<Response<()>, BoxError> = Err("boom".into());
    assert_eq!(reader.retry_after(&plain), None);
}
