//! Key extraction from `http::Request`: each extractor present and absent,
//! and the combinators.

#![cfg(feature = "http")]

use http::Request;
use tower_fleet::http::key::{
    Authority, Cookie, Header, HttpKeyExt, Path, PathAndQuery, PathSegment, Query,
};
use tower_fleet::key::KeyFn;

fn get(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn key_of<K: KeyFn<Request<()>>>(k: &K, req: &Request<()>) -> Option<String> {
    k.key(req)
        .map(|k| String::from_utf8(k.as_bytes().to_vec()).unwrap())
}

/// A name, an extractor, a request, and the key it should find.
type Case = (
    &'static str,
    Box<dyn Fn(&Request<()>) -> Option<String>>,
    Request<()>,
    Option<&'static str>,
);

#[test]
fn each_extractor_finds_its_key_or_none() {
    let user = Header::named("x-user").unwrap();
    let cases: Vec<Case> = vec![
        (
            "header",
            Box::new(move |r| key_of(&user, r)),
            get("/", &[("x-user", "ada")]),
            Some("ada"),
        ),
        (
            "header absent",
            Box::new(|r| key_of(&Header::named("x-user").unwrap(), r)),
            get("/", &[]),
            None,
        ),
        (
            "header repeated: first",
            Box::new(|r| key_of(&Header::named("x-user").unwrap(), r)),
            get("/", &[("x-user", "a"), ("x-user", "b")]),
            Some("a"),
        ),
        (
            "path",
            Box::new(|r| key_of(&Path, r)),
            get("/users/42?x=1", &[]),
            Some("/users/42"),
        ),
        (
            "path and query",
            Box::new(|r| key_of(&PathAndQuery, r)),
            get("/users/42?x=1", &[]),
            Some("/users/42?x=1"),
        ),
        (
            "path and query, no query",
            Box::new(|r| key_of(&PathAndQuery, r)),
            get("/users", &[]),
            Some("/users"),
        ),
        (
            "segment 0",
            Box::new(|r| key_of(&PathSegment(0), r)),
            get("/users/42/posts", &[]),
            Some("users"),
        ),
        (
            "segment 1",
            Box::new(|r| key_of(&PathSegment(1), r)),
            get("/users/42/posts", &[]),
            Some("42"),
        ),
        (
            "segment past the end",
            Box::new(|r| key_of(&PathSegment(3), r)),
            get("/users/42/posts", &[]),
            None,
        ),
        (
            "segment empty",
            Box::new(|r| key_of(&PathSegment(1), r)),
            get("/users//posts", &[]),
            None,
        ),
        (
            "query",
            Box::new(|r| key_of(&Query::new("user"), r)),
            get("/feed?page=2&user=ada&user=bob", &[]),
            Some("ada"),
        ),
        (
            "query raw value",
            Box::new(|r| key_of(&Query::new("q"), r)),
            get("/s?q=a%20b", &[]),
            Some("a%20b"),
        ),
        (
            "query flag",
            Box::new(|r| key_of(&Query::new("debug"), r)),
            get("/s?debug", &[]),
            Some(""),
        ),
        (
            "query absent",
            Box::new(|r| key_of(&Query::new("user"), r)),
            get("/feed?page=2", &[]),
            None,
        ),
        (
            "query prefix is not a match",
            Box::new(|r| key_of(&Query::new("user"), r)),
            get("/feed?username=x", &[]),
            None,
        ),
        (
            "no query",
            Box::new(|r| key_of(&Query::new("user"), r)),
            get("/feed", &[]),
            None,
        ),
        (
            "cookie",
            Box::new(|r| key_of(&Cookie::new("session"), r)),
            get("/", &[("cookie", "theme=dark; session=s-1")]),
            Some("s-1"),
        ),
        (
            "cookie quoted",
            Box::new(|r| key_of(&Cookie::new("session"), r)),
            get("/", &[("cookie", "session=\"s-2\"")]),
            Some("s-2"),
        ),
        (
            "cookie in a second header",
            Box::new(|r| key_of(&Cookie::new("session"), r)),
            get("/", &[("cookie", "a=1"), ("cookie", "session=s-3")]),
            Some("s-3"),
        ),
        (
            "cookie absent",
            Box::new(|r| key_of(&Cookie::new("session"), r)),
            get("/", &[("cookie", "sessions=x; theme=dark")]),
            None,
        ),
        (
            "authority from the URI",
            Box::new(|r| key_of(&Authority, r)),
            get("http://api.example:8080/x", &[("host", "other")]),
            Some("api.example:8080"),
        ),
        (
            "authority from Host",
            Box::new(|r| key_of(&Authority, r)),
            get("/x", &[("host", "api.example")]),
            Some("api.example"),
        ),
        (
            "authority absent",
            Box::new(|r| key_of(&Authority, r)),
            get("/x", &[]),
            None,
        ),
    ];
    for (name, extract, req, expected) in cases {
        assert_eq!(extract(&req).as_deref(), expected, "{name}");
    }
}

#[test]
fn keys_borrow_from_the_request() {
    let req = get("/users/42?user=ada", &[("x-user", "ada")]);
    // Borrowed keys point into the request itself: no copy was made.
    let k = Header::named("x-user").unwrap().key(&req).unwrap();
    let value = req.headers()["x-user"].as_bytes();
    assert_eq!(k.as_bytes().as_ptr(), value.as_ptr());
    let k = PathSegment(1).key(&req).unwrap();
    assert!(req
        .uri()
        .path()
        .as_bytes()
        .as_ptr_range()
        .contains(&k.as_bytes().as_ptr()));
}

#[test]
fn combinators_take_the_first_key_present_else_the_fallback() {
    let key = Header::named("x-user")
        .unwrap()
        .or(Query::new("user"))
        .or(Cookie::new("session"))
        .or_value("anonymous");
    let cases = [
        (
            get("/?user=q", &[("x-user", "h"), ("cookie", "session=c")]),
            "h",
        ),
        (get("/?user=q", &[("cookie", "session=c")]), "q"),
        (get("/", &[("cookie", "session=c")]), "c"),
        (get("/", &[]), "anonymous"),
    ];
    for (req, expected) in cases {
        assert_eq!(key_of(&key, &req).as_deref(), Some(expected));
    }
    // Without a fallback, a request may have no key.
    let key = Header::named("x-user").unwrap().or(Query::new("user"));
    assert_eq!(key_of(&key, &get("/", &[])), None);
    assert!(Header::named("not a header").is_err());
}
