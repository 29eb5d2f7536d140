//! `BalanceConfig` as data: every strategy is a table that refuses unknown
//! fields (a typo must not silently fall back to a default).

use tower_fleet::balance::BalanceConfig;

#[test]
fn every_strategy_refuses_unknown_fields() {
    for kind in ["peak_ewma", "least_request", "round_robin", "random"] {
        let text = format!("[strategy]\nkind = \"{kind}\"\nbogus = 1");
        assert!(
            toml::from_str::<BalanceConfig>(&text).is_err(),
            "{kind} accepted an unknown field"
        );
        let ok = format!("[strategy]\nkind = \"{kind}\"");
        assert!(toml::from_str::<BalanceConfig>(&ok).is_ok(), "{kind}");
    }
}

mod quorum {
    use std::time::Duration;

    use tower_fleet::balance::{BalanceConfig, FanOut, QuorumConfig};
    use tower_fleet::config::Validate;

    fn parse(text: &str) -> Result<BalanceConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_quorum_table_parses_and_round_trips() {
        let cfg = parse(
            r#"
            [quorum]
            n = 3
            read = 1
            write = 3
            timeout = "250ms"
            straggler_timeout = "2s"
            max_stragglers = 10
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        let q = cfg.quorum.unwrap();
        assert_eq!(
            q,
            QuorumConfig {
                n: FanOut::Best(3),
                read: 1,
                write: 3,
                timeout: Duration::from_millis(250),
                straggler_timeout: Duration::from_secs(2),
                max_stragglers: 10,
            }
        );
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("n = 3"), "{text}");
        assert_eq!(parse(&text).unwrap(), cfg);

        let all = parse("[quorum]\nn = \"all\"").unwrap().quorum.unwrap();
        assert_eq!(all, QuorumConfig::default());
        let text = toml::to_string(&all).unwrap();
        assert!(text.contains("n = \"all\""), "{text}");
        assert!(text.contains("timeout = \"1s\""), "{text}");
        assert_eq!(toml::from_str::<QuorumConfig>(&text).unwrap(), all);

        // No table: no quorum settings, and none written back.
        let none = parse("").unwrap();
        assert_eq!(none.quorum, None);
        assert!(!toml::to_string(&none).unwrap().contains("quorum"));
    }

    #[test]
    fn the_quorum_table_refuses_unknown_fields_and_bad_fan_outs() {
        for text in [
            "[quorum]\nr = 2",
            "[quorum]\nn = \"some\"",
            "[quorum]\nn = -1",
            "[quorum]\nn = 1.5",
            "[quorum]\ntimeout = \"soon\"",
        ] {
            assert!(parse(text).is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn each_bad_quorum_field_is_named_with_its_value() {
        let bad = |text: &str| {
            let e = parse(text).unwrap().validate().unwrap_err();
            (e.field().to_string(), e.value().to_string())
        };
        let cases = [
            ("n = 0", "quorum.n", "0"),
            ("read = 0", "quorum.read", "0"),
            ("write = 0", "quorum.write", "0"),
            ("n = 2\nread = 3\nwrite = 1", "quorum.read", "3"),
            ("n = 2\nread = 1\nwrite = 3", "quorum.write", "3"),
            ("timeout = \"0s\"", "quorum.timeout", "0s"),
            (
                "straggler_timeout = \"0s\"",
                "quorum.straggler_timeout",
                "0s",
            ),
        ];
        for (body, field, value) in cases {
            let got = bad(&format!("[quorum]\n{body}"));
            assert_eq!(got, (field.to_string(), value.to_string()), "{body}");
        }
        // "all" bounds no quorum statically; zero stragglers is allowed.
        let ok = parse("[quorum]\nn = \"all\"\nread = 5\nwrite = 5\nmax_stragglers = 0").unwrap();
        assert!(ok.validate().is_ok());
    }
}
