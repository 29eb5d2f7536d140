//! The kv example under load: the load generator's maths and the summary.
#![cfg(all(feature = "http", feature = "metrics"))]
#![allow(dead_code)]

#[path = "../examples/kv_cluster/flags.rs"]
mod flags;
#[path = "../examples/kv_cluster/load.rs"]
mod load;
#[path = "../examples/kv_cluster/summary.rs"]
mod summary;
#[path = "../examples/kv_cluster/zipf.rs"]
mod zipf;

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(s: &str, first: fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(first) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Parses the Prometheus text format (version 0.0.4) strictly: every line
/// is empty, a comment (`# HELP` / `# TYPE` well formed), or a sample
/// `name{label="value",...} value [timestamp]`.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    if !is_name(name, metric_start) {
                        return Err(err("bad metric name"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(err("bad type"));
                    }
                }
                ["HELP", name, ..] if !is_name(name, metric_start) => {
                    return Err(err("bad metric name"))
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c == ' ')
            .ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !is_name(name, metric_start) {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = rest.find('=').ok_or_else(|| err("label without ="))?;
                let label = &rest[..eq];
                if !is_name(label, label_start) {
                    return Err(err("bad label name"));
                }
                let mut chars = rest[eq + 1..].char_indices();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("unquoted label value"));
                }
                let mut value = String::new();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => return Err(err("bad escape")),
                        },
                        '"' => {
                            end = Some(eq + 1 + i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| err("unterminated label value"))?;
                labels.push((label.to_string(), value));
                rest = &rest[end..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| err("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("bad value"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(err("trailing text"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

#[test]
fn the_prometheus_parser_reads_samples_and_refuses_malformed_lines() {
    let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n\
                b{shard=\"s1\",replica=\"s1r0\"} 0.5 1700000000\n\
                c{v=\"q\\\"\\\\\\n\"} +Inf\n";
    let samples = parse_prometheus(text).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].value, 3.0);
    assert_eq!(samples[1].label("shard"), Some("s1"));
    assert_eq!(samples[1].label("replica"), Some("s1r0"));
    assert_eq!(samples[2].label("v"), Some("q\"\\\n"));
    for bad in [
        "a-b 1",
        "a{shard=s1} 1",
        "a{shard=\"s1\" 1",
        "a one",
        "a",
        "a 1 2 3",
        "# TYPE a countr",
        "a{1x=\"\"} 1",
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}
