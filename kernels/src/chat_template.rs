//! Chat templates rendered as transformers' `apply_chat_template` renders them: Jinja with
//! `trim_blocks` and `lstrip_blocks`, loop controls, Python string methods, `raise_exception`,
//! `strftime_now`, and a `tojson` filter that writes JSON as Python's `json.dumps` does.

use minijinja::{Environment, Error, ErrorKind, Value};
use serde_json::Value as Json;

/// What a template is rendered with.
#[derive(Debug, Clone, Default)]
pub struct ChatInputs<'a> {
    /// The conversation: objects with `role` and `content` (and whatever else the template reads).
    pub messages: &'a [Json],
    /// Whether to end with the header of an assistant turn.
    pub add_generation_prompt: bool,
    /// Tool definitions, where the template uses them.
    pub tools: Option<&'a [Json]>,
    /// Special tokens (`bos_token`, `eos_token`, ...) by name.
    pub special_tokens: Vec<(String, String)>,
}

/// Renders `template` over `inputs`.
pub fn render(template: &str, inputs: &ChatInputs) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
    env.add_filter("tojson", tojson);
    env.add_template("chat", template)?;
    let tmpl = env.get_template("chat")?;
    let mut ctx = serde_json::Map::new();
    ctx.insert("messages".into(), Json::Array(inputs.messages.to_vec()));
    ctx.insert(
        "add_generation_prompt".into(),
        Json::Bool(inputs.add_generation_prompt),
    );
    ctx.insert(
        "tools".into(),
        inputs.tools.map_or(Json::Null, |t| Json::Array(t.to_vec())),
    );
    ctx.insert("documents".into(), Json::Null);
    for (k, v) in &inputs.special_tokens {
        ctx.insert(k.clone(), Json::String(v.clone()));
    }
    tmpl.render(Value::from(minijinja::value::Serde(&ctx)))
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// sort_keys=sort_keys)`.
fn tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    python_json(&json, indent, sort_keys.unwrap_or(false), 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn python_json(v: &Json, indent: Option<usize>, sort: bool, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                python_json(item, indent, sort, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Json::Object(map) if !map.is_empty() => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            if sort {
                keys.sort();
            }
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::to_string(k).expect("string"));
                out.push_str(": ");
                python_json(&map[k], indent, sort, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        Json::Number(n) if n.is_f64() => {
            let f = n.as_f64().expect("f64");
            // Python prints floats with the shortest repr, always with a '.' or exponent.
            let s = format!("{f:?}");
            out.push_str(&s);
        }
        other => out.push_str(&serde_json::to_string(other).expect("JSON")),
    }
}

/// The current UTC time formatted with the strftime directives chat templates use.
fn strftime_now(fmt: &str) -> Result<String, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(strftime(fmt, secs))
}

/// Formats `unix_secs` (UTC) with `%d %m %Y %y %b %B %a %A %H %M %S %j %%`.
pub fn strftime(fmt: &str, unix_secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_march = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_march + 2) / 153;
    let day = doy_march - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const CUM: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strftime_matches_known_dates() {
        // 2024-07-26 00:00:00 UTC was a Friday.
        assert_eq!(strftime("%d %b %Y", 1_721_952_000), "26 Jul 2024");
        assert_eq!(
            strftime("%A %B %j %H:%M:%S", 1_721_952_000 + 3723),
            "Friday July 208 01:02:03"
        );
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }

    #[test]
    fn tojson_writes_like_python() {
        let msgs = [json!({"role": "user", "content": "x"})];
        let inputs = ChatInputs {
            messages: &msgs,
            ..Default::default()
        };
        let t = "{{ {'a': [1, 2.5, 'é\"<'], 'b': {}} | tojson }}|{{ {'k': 1} | tojson(indent=2) }}";
        assert_eq!(
            render(t, &inputs).unwrap(),
            "{\"a\": [1, 2.5, \"é\\\"<\"], \"b\": {}}|{\n  \"k\": 1\n}"
        );
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let err = render(
            "{{ raise_exception('only user and assistant') }}",
            &ChatInputs::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("only user and assistant"));
    }
}
