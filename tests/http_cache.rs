//! The RFC 9111 cache policy: each storing rule on its own, then through the
//! cache layer over hyper (in-memory pipes, paused clock): Age, 304
//! revalidation, Vary, unsafe methods, stale windows, bypasses.

#![cfg(feature = "http")]

mod http_common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use http_common::{response, Origin};
use tower::{Layer, Service, ServiceExt};
use tower_fleet::cache::{Cache, Freshness, Policy, RequestMode};
use tower_fleet::http::key::PathAndQuery;
use tower_fleet::http::{Http, HttpCacheConfig, HttpCachePolicy};

const NOW: u64 = 1_700_000_000;

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn res(status: u16, headers: &[(&str, &str)]) -> Response<Bytes> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::new()).unwrap()
}

fn fresh(ttl: u64, swr: u64, sie: u64) -> Option<Freshness> {
    Some(Freshness {
        ttl: Duration::from_secs(ttl),
        stale_while_revalidate: Duration::from_secs(swr),
        stale_if_error: Duration::from_secs(sie),
    })
}

#[test]
fn storing_rules_follow_rfc_9111_for_a_shared_cache() {
    let policy = HttpCachePolicy::default();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    let d = date(NOW);
    let past = |s: u64| date(NOW - s);
    let later = |s: u64| date(NOW + s);
    let default = Freshness::ttl(Duration::from_secs(600));
    let with_sie = Freshness {
        stale_if_error: Duration::from_secs(300),
        ..default
    };
    let cases: Vec<(&str, Response<Bytes>, Freshness, Option<Freshness>)> = vec![
        (
            "max-age",
            res(200, &[("cache-control", "max-age=60")]),
            default,
            fresh(60, 0, 0),
        ),
        (
            "s-maxage wins over max-age, closes the windows",
            res(
                200,
                &[(
                    "cache-control",
                    "max-age=60, s-maxage=30, stale-while-revalidate=9",
                )],
            ),
            default,
            fresh(30, 0, 0),
        ),
        (
            "max-age wins over Expires",
            res(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("date", &d),
                    ("expires", &later(999)),
                ],
            ),
            default,
            fresh(60, 0, 0),
        ),
        (
            "Expires minus Date",
            res(200, &[("date", &d), ("expires", &later(120))]),
            default,
            fresh(120, 0, 0),
        ),
        (
            "an invalid Expires is expired",
            res(200, &[("date", &d), ("expires", "0"), ("etag", "\"v\"")]),
            default,
            fresh(0, 0, 0),
        ),
        (
            "the Age it arrived with counts",
            res(200, &[("cache-control", "max-age=60"), ("age", "20")]),
            default,
            fresh(40, 0, 0),
        ),
        (
            "so does the time since its Date",
            res(200, &[("cache-control", "max-age=60"), ("date", &past(15))]),
            default,
            fresh(45, 0, 0),
        ),
        (
            "older than its max-age: stale, revalidated",
            res(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("age", "90"),
                    ("etag", "\"v\""),
                ],
            ),
            default,
            fresh(0, 0, 0),
        ),
        (
            "no-store",
            res(200, &[("cache-control", "no-store, max-age=60")]),
            default,
            None,
        ),
        (
            "private",
            res(200, &[("cache-control", "private, max-age=60")]),
            default,
            None,
        ),
        (
            "no-cache with a validator: stored stale",
            res(
                200,
                &[("cache-control", "no-cache, max-age=60"), ("etag", "\"v\"")],
            ),
            default,
            fresh(0, 0, 0),
        ),
        (
            "no-cache without a validator",
            res(200, &[("cache-control", "no-cache")]),
            default,
            None,
        ),
        (
            "stale-while-revalidate and stale-if-error",
            res(
                200,
                &[(
                    "cache-control",
                    "max-age=10, stale-while-revalidate=20, stale-if-error=30",
                )],
            ),
            default,
            fresh(10, 20, 30),
        ),
        (
            "stale-if-error defaults to the cache's window",
            res(200, &[("cache-control", "max-age=10")]),
            with_sie,
            fresh(10, 0, 300),
        ),
        (
            "must-revalidate closes the windows",
            res(
                200,
                &[(
                    "cache-control",
                    "max-age=10, must-revalidate, stale-while-revalidate=20",
                )],
            ),
            with_sie,
            fresh(10, 0, 0),
        ),
        (
            "proxy-revalidate closes the windows",
            res(
                200,
                &[(
                    "cache-control",
                    "max-age=10, proxy-revalidate, stale-if-error=20",
                )],
            ),
            default,
            fresh(10, 0, 0),
        ),
        (
            "Vary on a keyed header",
            res(
                200,
                &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            ),
            default,
            fresh(60, 0, 0),
        ),
        (
            "Vary on a header requests are not keyed by",
            res(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("vary", "accept-encoding, x-tenant"),
                ],
            ),
            default,
            None,
        ),
        (
            "Vary: *",
            res(200, &[("cache-control", "max-age=60"), ("vary", "*")]),
            default,
            None,
        ),
        (
            "Set-Cookie",
            res(
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            ),
            default,
            None,
        ),
        (
            "heuristic: 10% of the time since Last-Modified",
            res(200, &[("date", &d), ("last-modified", &past(5000))]),
            default,
            fresh(500, 0, 0),
        ),
        (
            "heuristic capped at a day",
            res(200, &[("date", &d), ("last-modified", &past(100 * 86_400))]),
            default,
            fresh(86_400, 0, 0),
        ),
        (
            "no freshness and no validator",
            res(200, &[]),
            default,
            None,
        ),
        (
            "a 404 is cacheable",
            res(404, &[("cache-control", "max-age=5")]),
            default,
            fresh(5, 0, 0),
        ),
        (
            "a 302 only with explicit freshness",
            res(302, &[("date", &d), ("last-modified", &past(5000))]),
            default,
            None,
        ),
        (
            "a 302 with max-age",
            res(302, &[("cache-control", "max-age=5")]),
            default,
            fresh(5, 0, 0),
        ),
        (
            "a 500 is never stored",
            res(500, &[("cache-control", "max-age=60")]),
            default,
            None,
        ),
        (
            "a 206 is not understood",
            res(206, &[("cache-control", "max-age=60")]),
            default,
            None,
        ),
    ];
    for (name, response, default, expected) in cases {
        assert_eq!(
            policy.freshness_at(&response, default, now),
            expected,
            "{name}"
        );
    }
    let cookies = HttpCachePolicy::new(&HttpCacheConfig {
        store_set_cookie: true,
        ..HttpCacheConfig::default()
    })
    .unwrap();
    let with_cookie = res(
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
    );
    assert_eq!(
        cookies.freshness_at(&with_cookie, Freshness::ttl(Duration::ZERO), now),
        fresh(60, 0, 0)
    );
}

#[test]
fn requests_are_looked_up_bypassed_or_invalidate() {
    let policy = HttpCachePolicy::default();
    let mode = |method: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder().method(method).uri("/r");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Policy::<Request<Full<Bytes>>, Response<Bytes>>::request_mode(
            &policy,
            &b.body(Full::default()).unwrap(),
        )
    };
    use RequestMode::*;
    let table = [
        ("GET", vec![], Lookup),
        ("GET", vec![("accept-encoding", "gzip")], Lookup),
        ("GET", vec![("authorization", "Bearer t")], Bypass),
        ("GET", vec![("range", "bytes=0-10")], Bypass),
        ("GET", vec![("if-none-match", "\"v\"")], Bypass),
        ("GET", vec![("cache-control", "no-store")], Bypass),
        ("GET", vec![("cache-control", "no-cache")], Bypass),
        ("GET", vec![("cache-control", "max-age=0")], Bypass),
        ("GET", vec![("pragma", "no-cache")], Bypass),
        ("HEAD", vec![], Bypass),
        ("OPTIONS", vec![], Bypass),
        ("POST", vec![], Invalidate),
        ("PUT", vec![], Invalidate),
        ("DELETE", vec![], Invalidate),
        ("PATCH", vec![], Invalidate),
    ];
    for (method, headers, expected) in table {
        assert_eq!(mode(method, &headers), expected, "{method} {headers:?}");
    }
}

type Svc = Cache<
    tower_fleet::http::BufferResponse<http_common::Duplex>,
    Response<Bytes>,
    PathAndQuery,
    tower_fleet::cache::MemoryStore<Response<Bytes>>,
    HttpCachePolicy,
    tower_fleet::http::HttpClassify,
>;

fn cache(origin: &Origin, stale_if_error: Duration) -> Svc {
    let http = Http::builder().build().unwrap();
    Cache::builder()
        .key_fn(PathAndQuery)
        .stale_if_error(stale_if_error)
        .policy(http.cache_policy())
        .classify(http.classify())
        .build(http.buffer_response_layer().layer(origin.duplex()))
        .unwrap()
}

async fn get(svc: &mut Svc, headers: &[(&str, &str)]) -> Response<Bytes> {
    send(svc, "GET", headers).await
}

async fn send(svc: &mut Svc, method: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    let mut b = Request::builder().method(method).uri("/doc");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req: Request<Full<Bytes>> = b.body(Full::default()).unwrap();
    ServiceExt::<Request<Full<Bytes>>>::ready(svc)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap()
}

fn age(res: &Response<Bytes>) -> Option<&str> {
    res.headers().get("age").map(|v| v.to_str().unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_fresh_response_is_served_from_the_store_with_its_age() {
    let origin =
        Origin::new(|_r, n| response(200, &[("cache-control", "max-age=60")], &format!("v{n}")));
    let mut svc = cache(&origin, Duration::ZERO);
    let first = get(&mut svc, &[]).await;
    assert_eq!(age(&first), None, "straight from the origin");
    tokio::time::advance(Duration::from_secs(10)).await;
    let second = get(&mut svc, &[]).await;
    assert_eq!(second.body(), &Bytes::from_static(b"v1"));
    assert_eq!(age(&second), Some("10"));
    assert_eq!(origin.calls(), 1);
    tokio::time::advance(Duration::from_secs(51)).await;
    assert_eq!(get(&mut svc, &[]).await.body(), &Bytes::from_static(b"v2"));
}

#[tokio::test(start_paused = true)]
async fn a_304_refreshes_the_stored_entry() {
    let origin = Origin::new(|r, n| {
        if r.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            response(
                304,
                &[
                    ("cache-control", "max-age=60"),
                    ("x-validated", &n.to_string()),
                ],
                "",
            )
        } else {
            response(
                200,
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                "body-1",
            )
        }
    });
    let mut svc = cache(&origin, Duration::ZERO);
    assert_eq!(
        get(&mut svc, &[]).await.body(),
        &Bytes::from_static(b"body-1")
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    // Stale: revalidated with If-None-Match; the 304 keeps the body.
    let revalidated = get(&mut svc, &[]).await;
    assert_eq!(revalidated.status(), 200);
    assert_eq!(revalidated.body(), &Bytes::from_static(b"body-1"));
    assert_eq!(revalidated.headers()["x-validated"], "2");
    assert_eq!(revalidated.headers()["etag"], "\"v1\"");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");
    // The entry was refreshed: fresh for the 304's max-age=60.
    tokio::time::advance(Duration::from_secs(30)).await;
    let hit = get(&mut svc, &[]).await;
    assert_eq!(hit.body(), &Bytes::from_static(b"body-1"));
    assert_eq!(hit.headers()["x-validated"], "2");
    assert_eq!(age(&hit), Some("30"));
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_cache_revalidates_every_time_with_last_modified() {
    let modified = date(NOW);
    let origin = Origin::new(move |r, _n| {
        if r.headers.contains_key("if-modified-since") {
            response(304, &[], "")
        } else {
            response(
                200,
                &[("cache-control", "no-cache"), ("last-modified", &modified)],
                "doc",
            )
        }
    });
    let mut svc = cache(&origin, Duration::ZERO);
    for _ in 0..3 {
        let res = get(&mut svc, &[]).await;
        assert_eq!(
            (res.status(), res.body().clone()),
            (http::StatusCode::OK, Bytes::from_static(b"doc"))
        );
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 3, "each use goes to the origin");
    assert!(!seen[0].headers.contains_key("if-modified-since"));
    assert_eq!(seen[1].headers["if-modified-since"], date(NOW).as_str());
    assert_eq!(seen[2].headers["if-modified-since"], date(NOW).as_str());
}

#[tokio::test(start_paused = true)]
async fn requests_that_differ_in_a_vary_header_do_not_share_an_entry() {
    let origin = Origin::new(|r, _n| {
        let encoding = r
            .headers
            .get("accept-encoding")
            .map_or("identity".to_string(), |v| v.to_str().unwrap().to_string());
        response(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            &format!("encoded with {encoding}"),
        )
    });
    let mut svc = cache(&origin, Duration::ZERO);
    let gzip = get(&mut svc, &[("accept-encoding", "gzip")]).await;
    let br = get(&mut svc, &[("accept-encoding", "br")]).await;
    assert_eq!(gzip.body(), &Bytes::from_static(b"encoded with gzip"));
    assert_eq!(br.body(), &Bytes::from_static(b"encoded with br"));
    assert_eq!(
        origin.calls(),
        2,
        "the br request did not get the gzip entry"
    );
    // Each is served from its own entry afterwards.
    let gzip = get(&mut svc, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzip.body(), &Bytes::from_static(b"encoded with gzip"));
    assert!(age(&gzip).is_some());
    let plain = get(&mut svc, &[]).await;
    assert_eq!(plain.body(), &Bytes::from_static(b"encoded with identity"));
    assert_eq!(origin.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_unsafe_method_invalidates_the_uri() {
    let origin = Origin::new(|r, n| {
        if r.method == http::Method::GET {
            response(200, &[("cache-control", "max-age=60")], &format!("v{n}"))
        } else {
            response(204, &[], "")
        }
    });
    let mut svc = cache(&origin, Duration::ZERO);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let before = get(&mut svc, &[]).await;
        assert_eq!(
            get(&mut svc, &[]).await.body(),
            before.body(),
            "{method}: a hit"
        );
        let calls = origin.calls();
        assert_eq!(send(&mut svc, method, &[]).await.status(), 204);
        assert_eq!(origin.calls(), calls + 1, "{method} went to the origin");
        let after = get(&mut svc, &[]).await;
        assert_ne!(
            after.body(),
            before.body(),
            "{method} invalidated the entry"
        );
        assert_eq!(origin.calls(), calls + 2);
    }
}

#[tokio::test(start_paused = true)]
async fn authorized_and_head_requests_bypass_the_store() {
    let origin =
        Origin::new(|_r, n| response(200, &[("cache-control", "max-age=60")], &format!("v{n}")));
    let mut svc = cache(&origin, Duration::ZERO);
    assert_eq!(get(&mut svc, &[]).await.body(), &Bytes::from_static(b"v1"));
    let authed = get(&mut svc, &[("authorization", "Bearer t")]).await;
    assert_eq!(
        authed.body(),
        &Bytes::from_static(b"v2"),
        "not answered from the store"
    );
    assert_eq!(send(&mut svc, "HEAD", &[]).await.status(), 200);
    assert_eq!(origin.calls(), 3);
    assert_eq!(
        get(&mut svc, &[]).await.body(),
        &Bytes::from_static(b"v1"),
        "nor stored"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let origin = Origin::new(|_r, n| {
        response(
            200,
            &[("cache-control", "max-age=1, stale-while-revalidate=30")],
            &format!("v{n}"),
        )
    });
    let mut svc = cache(&origin, Duration::ZERO);
    get(&mut svc, &[]).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    let stale = get(&mut svc, &[]).await;
    assert_eq!(stale.body(), &Bytes::from_static(b"v1"));
    assert_eq!(age(&stale), Some("5"));
    // Let the background refresh finish.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(origin.calls(), 2);
    let refreshed = get(&mut svc, &[]).await;
    assert_eq!(refreshed.body(), &Bytes::from_static(b"v2"));
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_the_stale_response_when_the_origin_fails() {
    let origin = Origin::new(|_r, n| {
        if n == 1 {
            response(
                200,
                &[("cache-control", "max-age=1, stale-if-error=60")],
                "good",
            )
        } else {
            response(503, &[], "down")
        }
    });
    let mut svc = cache(&origin, Duration::ZERO);
    get(&mut svc, &[]).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let res = get(&mut svc, &[]).await;
    assert_eq!(
        (res.status(), res.body().clone()),
        (http::StatusCode::OK, Bytes::from_static(b"good"))
    );
    assert_eq!(age(&res), Some("10"));
    assert_eq!(origin.calls(), 2);
    // Past the window, the failure is the answer.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(get(&mut svc, &[]).await.status(), 503);
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_never_serves_stale_on_error() {
    let origin = Origin::new(|_r, n| {
        if n == 1 {
            response(
                200,
                &[("cache-control", "max-age=1, must-revalidate")],
                "good",
            )
        } else {
            response(503, &[], "down")
        }
    });
    let mut svc = cache(&origin, Duration::from_secs(300));
    get(&mut svc, &[]).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(get(&mut svc, &[]).await.status(), 503);
}
