//! Reading `Cache-Control` (RFC 9111 section 5.2) and the dates the
//! freshness rules use.

use std::time::{Duration, SystemTime};

use http::header::{HeaderName, CACHE_CONTROL, DATE, PRAGMA};
use http::HeaderMap;

/// The directives of one message's `Cache-Control` fields (all of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
}

impl CacheControl {
    /// The directives of `headers`. A request's `Pragma: no-cache` counts
    /// as `no-cache` when it has no `Cache-Control` (RFC 9111 section 5.4).
    pub(crate) fn of(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        let mut any = false;
        for value in headers.get_all(CACHE_CONTROL) {
            any = true;
            for (name, arg) in directives(value.as_bytes()) {
                cc.apply(&name.to_ascii_lowercase(), arg);
            }
        }
        if !any
            && headers
                .get_all(PRAGMA)
                .iter()
                .any(|v| directives(v.as_bytes()).any(|(n, _)| n.eq_ignore_ascii_case(b"no-cache")))
        {
            cc.no_cache = true;
        }
        cc
    }

    fn apply(&mut self, name: &[u8], arg: Option<&[u8]>) {
        match name {
            b"no-store" => self.no_store = true,
            // Qualified forms (`no-cache="set-cookie"`) are read as the
            // unqualified ones: stricter, never wrong.
            b"no-cache" => self.no_cache = true,
            b"private" => self.private = true,
            b"public" => self.public = true,
            b"must-revalidate" => self.must_revalidate = true,
            b"proxy-revalidate" => self.proxy_revalidate = true,
            b"max-age" => merge(&mut self.max_age, arg),
            b"s-maxage" => merge(&mut self.s_maxage, arg),
            b"stale-while-revalidate" => merge(&mut self.stale_while_revalidate, arg),
            b"stale-if-error" => merge(&mut self.stale_if_error, arg),
            _ => {}
        }
    }
}

/// Sets a delta-seconds directive. An argument that is not a number, or a
/// second value that differs from the first, makes the directive 0: RFC
/// 9111 asks caches to treat invalid freshness information as stale.
fn merge(slot: &mut Option<u64>, arg: Option<&[u8]>) {
    let value = arg.and_then(delta_seconds).unwrap_or(0);
    *slot = match *slot {
        Some(old) if old != value => Some(0),
        _ => Some(value),
    };
}

/// Delta-seconds; values past `u64` saturate (RFC 9111 section 1.2.2).
fn delta_seconds(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        std::str::from_utf8(arg)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
    )
}

/// The directives of one field value: `name` or `name=token` or
/// `name="quoted, string"`, separated by commas outside quotes.
fn directives(value: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let mut in_quotes = false;
        let mut end = rest.len();
        for (i, b) in rest.iter().enumerate() {
            match b {
                b'"' => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let item = rest[..end].trim_ascii();
        rest = rest.get(end + 1..).unwrap_or_default();
        if item.is_empty() {
            continue;
        }
        return Some(match item.iter().position(|b| *b == b'=') {
            Some(eq) => {
                let arg = item[eq + 1..].trim_ascii();
                let arg = arg
                    .strip_prefix(b"\"")
                    .and_then(|a| a.strip_suffix(b"\""))
                    .unwrap_or(arg);
                (item[..eq].trim_ascii(), Some(arg))
            }
            None => (item, None),
        });
    })
}

/// The HTTP-date in header `name`, if it has a valid one.
pub(crate) fn date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

/// The `Age` header's delta-seconds (0 when absent or invalid).
pub(crate) fn age_header(headers: &HeaderMap) -> Duration {
    headers
        .get(http::header::AGE)
        .and_then(|v| delta_seconds(v.as_bytes().trim_ascii()))
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// How old a response already was when it arrived: the larger of its `Age`
/// and the time since its `Date` (RFC 9111 section 4.2.3, without the
/// response delay).
pub(crate) fn initial_age(headers: &HeaderMap, now: SystemTime) -> Duration {
    let apparent = date(headers, &DATE)
        .and_then(|d| now.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    apparent.max(age_header(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(value: &str) -> CacheControl {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, value.parse().unwrap());
        CacheControl::of(&h)
    }

    #[test]
    fn directives_are_read_with_arguments_and_quotes() {
        let c = cc("public, max-age=60, s-maxage=\"120\", stale-while-revalidate=5");
        assert!(c.public && !c.no_store);
        assert_eq!((c.max_age, c.s_maxage), (Some(60), Some(120)));
        assert_eq!(c.stale_while_revalidate, Some(5));
        let c = cc("private=\"x-a, x-b\", No-Store");
        assert!(c.private && c.no_store);
        assert_eq!(c.max_age, None);
    }

    #[test]
    fn invalid_or_conflicting_ages_read_as_stale() {
        assert_eq!(cc("max-age=abc").max_age, Some(0));
        assert_eq!(cc("max-age=10, max-age=20").max_age, Some(0));
        assert_eq!(cc("max-age=10, max-age=10").max_age, Some(10));
        assert_eq!(
            cc("max-age=99999999999999999999999").max_age,
            Some(u64::MAX)
        );
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, "no-cache".parse().unwrap());
        assert!(CacheControl::of(&h).no_cache);
        h.insert(CACHE_CONTROL, "max-age=5".parse().unwrap());
        assert!(!CacheControl::of(&h).no_cache);
    }
}
