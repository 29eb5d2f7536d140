//! Properties of the HTTP readers on arbitrary input: they never panic,
//! extracted keys are slices of the request, and parsed freshness never
//! exceeds what the response allowed.

#![cfg(feature = "http")]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use proptest::prelude::*;
use tower_fleet::cache::Freshness;
use tower_fleet::http::key::{Cookie, Query};
use tower_fleet::http::{parse_pushback, parse_retry_after, HttpCachePolicy};
use tower_fleet::key::KeyFn;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hint_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let _ = parse_retry_after(&bytes, now);
        let _ = parse_pushback(&bytes);
    }

    #[test]
    fn cookie_and_query_keys_are_slices_of_the_request(
        cookie in "[a-z=; \"]{0,40}",
        query in "[a-z=&%0-9]{0,40}",
        name in "[a-z]{1,3}",
    ) {
        let Ok(value) = HeaderValue::from_str(&cookie) else { return Ok(()) };
        let Ok(req) = Request::get(format!("/p?{query}")).header("cookie", value).body(()) else {
            return Ok(());
        };
        if let Some(k) = Cookie::new(name.clone()).key(&req) {
            let header = req.headers()["cookie"].as_bytes();
            prop_assert!(header.as_ptr_range().contains(&k.as_bytes().as_ptr()) || k.as_bytes().is_empty());
        }
        if let Some(k) = Query::new(name).key(&req) {
            let q = req.uri().query().unwrap_or("").as_bytes();
            prop_assert!(q.as_ptr_range().contains(&k.as_bytes().as_ptr()) || k.as_bytes().is_empty());
        }
    }

    #[test]
    fn freshness_never_exceeds_the_responses_max_age(
        max_age in 0u64..100_000,
        age in 0u64..200_000,
        extra in "[a-z=, -]{0,30}",
    ) {
        let cc = format!("max-age={max_age}, {extra}");
        let Ok(value) = HeaderValue::from_str(&cc) else { return Ok(()) };
        let res = Response::builder()
            .header("cache-control", value)
            .header("age", age.to_string())
            .body(Bytes::new())
            .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let policy = HttpCachePolicy::default();
        if let Some(f) = policy.freshness_at(&res, Freshness::ttl(Duration::from_secs(60)), now) {
            prop_assert!(f.ttl <= Duration::from_secs(max_age.saturating_sub(age)));
        }
    }
}
