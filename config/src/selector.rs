//! Kubernetes label selectors: checking them and matching labels against them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Problems in a selector, as (sub-field path, message) pairs.
pub fn check(sel: &LabelSelector) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, _) in sel.match_labels.iter().flatten() {
        if let Err(e) = check_key(key) {
            out.push((format!("matchLabels[{key:?}]"), e));
        }
    }
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let path = format!("matchExpressions[{i}]");
        if let Err(e) = check_key(&expr.key) {
            out.push((format!("{path}.key"), e));
        }
        let has_values = expr.values.as_ref().is_some_and(|v| !v.is_empty());
        match expr.operator.as_str() {
            "In" | "NotIn" if !has_values => out.push((
                format!("{path}.values"),
                format!("operator {} needs at least one value", expr.operator),
            )),
            "Exists" | "DoesNotExist" if has_values => out.push((
                format!("{path}.values"),
                format!("operator {} takes no values", expr.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => out.push((
                format!("{path}.operator"),
                format!("unknown operator {other:?}; expected In, NotIn, Exists or DoesNotExist"),
            )),
        }
    }
    out
}

fn check_key(key: &str) -> Result<(), String> {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 63 || !name.chars().all(ok_char) {
        return Err(format!(
            "label key {key:?} is invalid: the name part must be 1-63 characters of letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// Whether `labels` match `sel`. An empty selector matches everything.
/// A selector with an unknown operator matches nothing.
pub fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    matches_with(sel, |k| labels.get(k).map(String::as_str))
}

/// [`matches`] for labels kept in any form: `get` returns a label's value.
pub fn matches_with<'a>(sel: &LabelSelector, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    for (k, v) in sel.match_labels.iter().flatten() {
        if get(k) != Some(v.as_str()) {
            return false;
        }
    }
    for expr in sel.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let actual = get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => actual.is_some_and(|a| values.iter().any(|v| v == a)),
            "NotIn" => actual.is_none_or(|a| !values.iter().any(|v| v == a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// [`matches_any`] for labels kept in any form: `get` returns a label's value.
pub fn matches_any_with<'a>(
    selectors: &[LabelSelector],
    get: impl Fn(&str) -> Option<&'a str>,
) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| matches_with(s, &get))
}

/// Whether `labels` match any of `selectors`; an empty list matches everything.
pub fn matches_any(selectors: &[LabelSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| matches(s, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn matching_follows_kubernetes_semantics() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["web", "api"]),
                expr("legacy", "DoesNotExist", &[]),
            ]),
        };
        assert!(matches(&sel, &labels(&[("team", "a"), ("tier", "web")])));
        assert!(!matches(&sel, &labels(&[("team", "a"), ("tier", "db")])));
        assert!(!matches(
            &sel,
            &labels(&[("team", "a"), ("tier", "web"), ("legacy", "1")])
        ));
        assert!(!matches(&sel, &labels(&[("tier", "web")])));
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        assert!(matches_any(&[], &labels(&[])));
        let notin = LabelSelector {
            match_expressions: Some(vec![expr("zone", "NotIn", &["x"])]),
            ..Default::default()
        };
        assert!(matches(&notin, &labels(&[])));
        assert!(!matches(&notin, &labels(&[("zone", "x")])));
    }

    #[test]
    fn check_reports_bad_selectors() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("bad key!", "x")])),
            match_expressions: Some(vec![
                expr("a", "In", &[]),
                expr("b", "Exists", &["v"]),
                expr("c", "Equals", &["v"]),
            ]),
        };
        let problems = check(&sel);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "matchLabels[\"bad key!\"]",
                "matchExpressions[0].values",
                "matchExpressions[1].values",
                "matchExpressions[2].operator"
            ]
        );
        assert!(!matches(&sel, &labels(&[("c", "v")])));
    }
}
