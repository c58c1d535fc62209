//! `${VAR}` expansion of the raw configuration text, before it is parsed.
//!
//! - `${NAME}` is replaced by the environment variable `NAME`
//!   (`[A-Za-z_][A-Za-z0-9_]*`); a variable that is not set is an error
//!   naming it.
//! - `$$` is a literal `$`. Any other `$` is kept as is, so SCRAM secrets
//!   (`SCRAM-SHA-256$4096:...`) need no escaping.
//! - Comments are left alone: a `${VAR}` in a comment is not expanded and
//!   need not be set.
//! - Inside a `"..."` string the value is escaped as TOML requires, so a
//!   password holding `"` or `\` works. Inside a `'...'` literal string a
//!   value holding `'` or a control character is an error (literal strings
//!   cannot hold them). Outside strings the value is inserted as is, so
//!   `size = ${POOL_SIZE}` works.
//!
//! Problems name variables and lines, never values.

use std::env::VarError;

/// The expanded text, and every value substituted (so error messages
/// about the expanded text can be redacted).
#[derive(Debug)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    pub(crate) values: Vec<String>,
}

/// One expansion problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// 1-based line number.
    pub(crate) line: usize,
    /// What is wrong; names the variable, never its value.
    pub(crate) message: String,
}

/// Where in the TOML text the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Bare,
    Comment,
    BasicString,
    MultiLineBasicString,
    LiteralString,
    MultiLineLiteralString,
}

/// Expands every `${VAR}` in `text`, looking variables up with `lookup`.
/// Returns every problem found, not just the first.
pub(crate) fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Result<String, VarError>,
) -> Result<Expanded, Vec<Problem>> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    let mut problems = Vec::new();
    let mut context = Context::Bare;
    let mut line = 1;
    // Start of the run of bytes not yet copied to `out`. Runs are cut only
    // at ASCII bytes, so every slice is valid UTF-8.
    let mut copied = 0;
    let mut i = 0;

    let starts_with = |at: usize, pattern: &[u8]| bytes[at..].starts_with(pattern);

    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'\n' {
            line += 1;
            if matches!(
                context,
                Context::Comment | Context::BasicString | Context::LiteralString
            ) {
                context = Context::Bare;
            }
            i += 1;
            continue;
        }
        match context {
            Context::Comment => {}
            Context::Bare => match byte {
                b'#' => context = Context::Comment,
                b'"' if starts_with(i, b"\"\"\"") => {
                    context = Context::MultiLineBasicString;
                    i += 3;
                    continue;
                }
                b'"' => context = Context::BasicString,
                b'\'' if starts_with(i, b"'''") => {
                    context = Context::MultiLineLiteralString;
                    i += 3;
                    continue;
                }
                b'\'' => context = Context::LiteralString,
                _ => {}
            },
            Context::BasicString | Context::MultiLineBasicString if byte == b'\\' => {
                // Skip the escaped character (an escaped newline still
                // counts as a line).
                if bytes.get(i + 1) == Some(&b'\n') {
                    line += 1;
                }
                i += 2;
                continue;
            }
            Context::BasicString if byte == b'"' => context = Context::Bare,
            Context::LiteralString if byte == b'\'' => context = Context::Bare,
            Context::MultiLineBasicString | Context::MultiLineLiteralString
                if byte == quote_of(context) =>
            {
                let run = bytes[i..].iter().take_while(|b| **b == byte).count();
                if run >= 3 {
                    context = Context::Bare;
                }
                i += run;
                continue;
            }
            _ => {}
        }

        if byte != b'$' || context == Context::Comment {
            i += 1;
            continue;
        }
        // A `$` outside comments.
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push_str(&text[copied..=i]);
                i += 2;
                copied = i;
            }
            Some(b'{') => {
                let name_start = i + 2;
                let close = bytes[name_start..]
                    .iter()
                    .position(|b| *b == b'}' || *b == b'\n')
                    .map(|offset| name_start + offset)
                    .filter(|end| bytes[*end] == b'}');
                let Some(close) = close else {
                    problems.push(Problem {
                        line,
                        message: "`${` without a closing `}` on the same line (write `$${` for a literal `${`)"
                            .to_owned(),
                    });
                    i += 2;
                    continue;
                };
                out.push_str(&text[copied..i]);
                i = close + 1;
                copied = i;
                let name = &text[name_start..close];
                if !is_variable_name(name) {
                    problems.push(Problem {
                        line,
                        message: "invalid variable name in `${...}`: names are letters, digits and `_`, not starting with a digit".to_owned(),
                    });
                    continue;
                }
                match lookup(name) {
                    Ok(value) => match escape(&value, context) {
                        Ok(escaped) => {
                            out.push_str(&escaped);
                            values.push(value);
                        }
                        Err(reason) => problems.push(Problem {
                            line,
                            message: format!("the value of environment variable {name} {reason}"),
                        }),
                    },
                    Err(VarError::NotPresent) => problems.push(Problem {
                        line,
                        message: format!(
                            "environment variable {name} is not set (used as ${{{name}}})"
                        ),
                    }),
                    Err(VarError::NotUnicode(_)) => problems.push(Problem {
                        line,
                        message: format!("environment variable {name} is not valid UTF-8"),
                    }),
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);

    if problems.is_empty() {
        Ok(Expanded { text: out, values })
    } else {
        Err(problems)
    }
}

fn quote_of(context: Context) -> u8 {
    if context == Context::MultiLineLiteralString {
        b'\''
    } else {
        b'"'
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value as it must be written at this place in the TOML text.
fn escape(value: &str, context: Context) -> Result<String, &'static str> {
    match context {
        Context::Bare | Context::Comment => Ok(value.to_owned()),
        Context::BasicString | Context::MultiLineBasicString => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            Ok(out)
        }
        Context::LiteralString | Context::MultiLineLiteralString => {
            if value
                .chars()
                .any(|c| c == '\'' || (c.is_control() && c != '\t'))
            {
                Err("holds a `'` or a control character, which a '...' string cannot; use a \"...\" string")
            } else {
                Ok(value.to_owned())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(text: &str, vars: &[(&str, &str)]) -> Result<Expanded, Vec<Problem>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand(text, |name| {
            vars.get(name).cloned().ok_or(VarError::NotPresent)
        })
    }

    fn ok(text: &str, vars: &[(&str, &str)]) -> String {
        run(text, vars).unwrap().text
    }

    #[test]
    fn expands_in_strings_and_bare_values() {
        assert_eq!(
            ok(
                "a = \"x${A}y\"\nsize = ${N}\nb = '${A}'\n",
                &[("A", "pw"), ("N", "12")]
            ),
            "a = \"xpwy\"\nsize = 12\nb = 'pw'\n"
        );
    }

    #[test]
    fn dollar_dollar_is_a_dollar_and_lone_dollars_stay() {
        assert_eq!(ok("a = \"$${A}\"", &[]), "a = \"${A}\"");
        assert_eq!(ok("a = \"$$\"", &[]), "a = \"$\"");
        let scram = "p = \"SCRAM-SHA-256$4096:c2FsdA==$YQ==:Yg==\"";
        assert_eq!(ok(scram, &[]), scram);
        assert_eq!(ok("a = \"cost: 5$\"", &[]), "a = \"cost: 5$\"");
    }

    #[test]
    fn comments_are_not_expanded() {
        let text = "# password = \"${UNSET}\"\na = \"#${A}\" # ${UNSET}\n";
        assert_eq!(
            ok(text, &[("A", "v")]),
            "# password = \"${UNSET}\"\na = \"#v\" # ${UNSET}\n"
        );
    }

    #[test]
    fn values_are_escaped_for_basic_strings() {
        let text = ok("a = \"${A}\"", &[("A", "q\"b\\s\nx")]);
        assert_eq!(text, "a = \"q\\\"b\\\\s\\nx\"");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["a"].as_str(), Some("q\"b\\s\nx"));
        let text = ok("a = \"\"\"\n${A}\"\"\"", &[("A", "\"\"\"")]);
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["a"].as_str(), Some("\"\"\""));
    }

    #[test]
    fn quotes_inside_strings_do_not_confuse_the_scanner() {
        // An escaped quote does not end the string; the `#` is inside it.
        let text = "a = \"\\\" # ${A}\"\nb = '''it's # ${A}'''\n";
        assert_eq!(
            ok(text, &[("A", "v")]),
            "a = \"\\\" # v\"\nb = '''it's # v'''\n"
        );
    }

    #[test]
    fn literal_strings_refuse_unrepresentable_values() {
        let problems = run("a = '${A}'", &[("A", "it's hunter2")]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("variable A"), "{problems:?}");
        assert!(!problems[0].message.contains("hunter2"));
    }

    #[test]
    fn every_missing_variable_is_reported_with_its_line() {
        let problems = run(
            "a = \"${ONE}\"\nb = \"${SET}\"\nc = \"${TWO}\"\n",
            &[("SET", "hunter2")],
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, 1);
        assert!(problems[0].message.contains("ONE"));
        assert_eq!(problems[1].line, 3);
        assert!(problems[1].message.contains("TWO"));
        assert!(problems.iter().all(|p| !p.message.contains("hunter2")));
    }

    #[test]
    fn malformed_references() {
        let problems = run("a = \"${A\"\nb = \"${1X}\"\nc = \"${}\"", &[]).unwrap_err();
        assert_eq!(problems.len(), 3);
        assert!(problems[0].message.contains("closing"));
        assert_eq!(problems[1].line, 2);
        assert!(problems[1].message.contains("invalid variable name"));
        assert_eq!(problems[2].line, 3);
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(ok("a = \"é${A}ü\" # ñ", &[("A", "ß")]), "a = \"éßü\" # ñ");
    }

    #[test]
    fn values_are_recorded_for_redaction() {
        let expanded = run("a = \"${A}\"\nb = \"${B}\"", &[("A", "one"), ("B", "two")]).unwrap();
        assert_eq!(expanded.values, vec!["one".to_owned(), "two".to_owned()]);
    }
}
