//! A strict reader of the Prometheus text format 0.0.4, to check what `/metrics` serves.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Family {
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// `{a="x",b="y"}` (without the braces) into a map; panics on bad syntax.
fn parse_labels(text: &str, line: usize) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("line {line}: bad label in {text:?}"));
        assert!(valid_name(name), "line {line}: bad label name {name:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("line {line}: bad escape {other:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("line {line}: unterminated label value"),
            }
        };
        assert!(
            labels.insert(name.to_owned(), value).is_none(),
            "line {line}: duplicate label {name}"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// The family a sample name belongs to, given the declared families.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
            {
                return Some(base);
            }
        }
    }
    None
}

pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    let mut helped = std::collections::HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_name(name), "line {number}: bad name {name:?}");
            assert!(
                helped.insert(name.to_owned()),
                "line {number}: second HELP for {name}"
            );
            out.families.entry(name.to_owned()).or_default().help = help.to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("line {number}: TYPE without a type"));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "line {number}: unknown type {kind}"
            );
            let family = out.families.entry(name.to_owned()).or_default();
            assert!(
                family.kind.is_empty(),
                "line {number}: second TYPE for {name}"
            );
            assert!(
                family.samples.is_empty(),
                "line {number}: TYPE after samples of {name}"
            );
            family.kind = kind.to_owned();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("line {number}: sample without a value: {line:?}"));
        let value =
            parse_value(value).unwrap_or_else(|| panic!("line {number}: bad value {value:?}"));
        let (name, labels) = match head.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("line {number}: unclosed labels"));
                (name, parse_labels(labels, number))
            }
            None => (head, BTreeMap::new()),
        };
        assert!(valid_name(name), "line {number}: bad sample name {name:?}");
        let family = family_of(name, &out.families)
            .unwrap_or_else(|| panic!("line {number}: sample {name} of no declared family"))
            .to_owned();
        if name.ends_with("_bucket") {
            assert!(
                labels.contains_key("le"),
                "line {number}: bucket without le"
            );
        }
        out.families
            .get_mut(&family)
            .map(|f| {
                f.samples.push(Sample {
                    name: name.to_owned(),
                    labels,
                    value,
                })
            })
            .unwrap_or_else(|| panic!("line {number}: family {family} vanished"));
    }
    for (name, family) in &out.families {
        assert!(!family.kind.is_empty(), "{name} has no TYPE");
    }
    out
}

impl Exposition {
    /// The value of the sample `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// The sum of every sample `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    pub fn kind(&self, family: &str) -> Option<&str> {
        self.families.get(family).map(|f| f.kind.as_str())
    }
}
