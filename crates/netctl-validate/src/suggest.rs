//! "Did you mean" suggestions for misspelt keys and names.

/// The candidate closest to `given`, if it is close enough to be a plausible typo: equal after
/// lowercasing and treating `-` as `_`, or within an edit distance of a third of its length
/// (at least 1).
pub(crate) fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let folded = fold(given);
    let limit = (given.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != given)
        .map(|c| {
            let distance = if fold(c) == folded {
                0
            } else {
                strsim::damerau_levenshtein(&folded, &fold(c))
            };
            (distance, c)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, c)| c)
}

fn fold(text: &str) -> String {
    text.to_ascii_lowercase().replace('-', "_")
}

/// `; did you mean `x`?` or nothing.
pub(crate) fn hint<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(given, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 4] = ["subnets", "gateway", "lease_range", "mtu"];

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(did_you_mean("subnet", KEYS), Some("subnets"));
        assert_eq!(did_you_mean("gatway", KEYS), Some("gateway"));
        assert_eq!(did_you_mean("lease-range", KEYS), Some("lease_range"));
        assert_eq!(did_you_mean("MTU", KEYS), Some("mtu"));
        assert_eq!(did_you_mean("mut", KEYS), Some("mtu"));
        assert_eq!(did_you_mean("address", KEYS), None);
        assert_eq!(did_you_mean("mtu", KEYS), None);
        assert_eq!(hint("x", KEYS), "");
    }
}
