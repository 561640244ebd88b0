//! Prompt templates: the defaults in `prompts.yaml` (English and Chinese), and the overrides
//! a DAG writes under `prompts:`. A template's `{name}` placeholders are filled by
//! [`fill`]; `{{` and `}}` are literal braces.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The default templates, as shipped.
pub const DEFAULTS_YAML: &str = include_str!("prompts.yaml");

/// One language's templates; unset ones keep the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// The multiple-choice question as an open question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// The reasoning expert: the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The critic: a proposed step rated 0/1 with feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critique: Option<String>,
    /// The critic: whether the accepted steps reach the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<String>,
    /// The accepted steps as one self-talking chain of thought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The judge's 0–100 rubric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
}

/// Template overrides by language (`en`, `zh`).
pub type Overrides = BTreeMap<String, Templates>;

/// The languages with templates.
pub const LANGUAGES: [&str; 2] = ["en", "zh"];

/// The placeholders templates may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "question",
    "open_question",
    "options",
    "answer",
    "steps",
    "feedback",
    "step",
    "response",
    "language",
];

fn defaults() -> &'static BTreeMap<String, Templates> {
    static D: OnceLock<BTreeMap<String, Templates>> = OnceLock::new();
    D.get_or_init(|| serde_yaml_ng::from_str(DEFAULTS_YAML).expect("prompts.yaml is valid"))
}

/// Template `name` (a field of [`Templates`]) in `lang`: the override, else the default.
pub fn get(overrides: &Overrides, lang: &str, name: &str) -> String {
    let pick = |t: &Templates| -> Option<String> {
        match name {
            "rewrite" => t.rewrite.clone(),
            "reason" => t.reason.clone(),
            "critique" => t.critique.clone(),
            "coverage" => t.coverage.clone(),
            "chain" => t.chain.clone(),
            "judge" => t.judge.clone(),
            _ => None,
        }
    };
    overrides
        .get(lang)
        .and_then(pick)
        .or_else(|| defaults().get(lang).and_then(pick))
        .unwrap_or_else(|| panic!("no template `{name}` in `{lang}`"))
}

/// Checks overrides: known languages, known placeholders, balanced braces.
pub fn check(overrides: &Overrides) -> Result<(), String> {
    for (lang, t) in overrides {
        if !LANGUAGES.contains(&lang.as_str()) {
            return Err(format!(
                "prompts: `{lang}` is not a language with templates ({})",
                LANGUAGES.join(", ")
            ));
        }
        let v = serde_json::to_value(t).map_err(|e| e.to_string())?;
        for (name, text) in v.as_object().into_iter().flatten() {
            let text = text.as_str().unwrap_or_default();
            placeholders(text)
                .map_err(|e| format!("prompts.{lang}.{name}: {e}"))?
                .iter()
                .find(|p| !PLACEHOLDERS.contains(&p.as_str()))
                .map_or(Ok(()), |p| {
                    Err(format!(
                        "prompts.{lang}.{name}: unknown placeholder `{{{p}}}` (known: {})",
                        PLACEHOLDERS.join(", ")
                    ))
                })?;
        }
    }
    Ok(())
}

/// The placeholders of `template`, in order.
fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err("a lone `}` (write `}}` for a brace)".into());
        }
        let end = after
            .find('}')
            .ok_or("a `{` without its `}` (write `{{` for a brace)")?;
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// `template` with every `{name}` replaced by `values[name]` (unknown names stay empty).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
            continue;
        }
        match (c, after.find('}')) {
            (b'{', Some(end)) => {
                let name = &after[..end];
                if let Some((_, v)) = values.iter().find(|(k, _)| *k == name) {
                    out.push_str(v);
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push(c as char);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_exists_in_both_languages_and_checks() {
        for lang in LANGUAGES {
            for name in [
                "rewrite", "reason", "critique", "coverage", "chain", "judge",
            ] {
                let t = get(&Overrides::new(), lang, name);
                assert!(!t.is_empty());
                let mut o = Overrides::new();
                o.insert(
                    lang.into(),
                    serde_json::from_value(serde_json::json!({name: t})).unwrap(),
                );
                check(&o).unwrap();
            }
        }
    }

    #[test]
    fn placeholders_fill_and_braces_stay() {
        let t = "Q: {question}\nReply {{\"score\": 1}} {step}";
        assert_eq!(
            fill(t, &[("question", "why?"), ("step", "s1")]),
            "Q: why?\nReply {\"score\": 1} s1"
        );
    }

    #[test]
    fn overrides_win_and_bad_ones_are_named() {
        let mut o = Overrides::new();
        o.insert(
            "en".into(),
            Templates {
                reason: Some("Next step for {open_question}".into()),
                ..Templates::default()
            },
        );
        assert_eq!(get(&o, "en", "reason"), "Next step for {open_question}");
        assert!(get(&o, "zh", "reason").contains("下一步"));
        o.insert(
            "en".into(),
            Templates {
                critique: Some("{answr}".into()),
                ..Templates::default()
            },
        );
        assert!(check(&o)
            .unwrap_err()
            .contains("prompts.en.critique: unknown placeholder `{answr}`"));
        o.remove("en");
        o.insert("fr".into(), Templates::default());
        assert!(check(&o).unwrap_err().contains("`fr` is not a language"));
    }
}
