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
