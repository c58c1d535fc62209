//! The `options` startup parameter: command-line switches for the server process
//! (libpq's `options`, `PGOPTIONS`). Of those, the settings `-c name=value` and
//! `--name=value` are what clients send; maitred applies them like the other startup
//! settings (before them, as the server does). Other switches (`-e`, `-d 5`, ...) are
//! refused: maitred cannot apply them to a pooled connection.
//!
//! Split as the server splits it (`pg_split_opts`): at whitespace, a backslash takes the next
//! character literally. Names have `-` read as `_` (`ParseLongOption`).

/// Why an `options` value cannot be applied: the client is told this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// The server's own words (`-c %s requires a value`), SQLSTATE 42601.
    #[error("{0}")]
    NoValue(String),
    /// A switch that is not a setting.
    #[error("maitred: the startup option \"{0}\" is not supported; only -c name=value and --name=value are")]
    Unsupported(String),
}

/// The settings of an `options` value, in order.
pub fn parse(options: &str) -> Result<Vec<(String, String)>, OptionsError> {
    let words = split(options);
    let mut settings = Vec::new();
    let mut it = words.iter();
    while let Some(word) = it.next() {
        let (switch, arg) = if word == "-c" {
            let Some(arg) = it.next() else {
                return Err(OptionsError::Unsupported(word.clone()));
            };
            ("-c", arg.as_str())
        } else if let Some(arg) = word.strip_prefix("--").filter(|a| !a.is_empty()) {
            ("--", arg)
        } else if let Some(arg) = word.strip_prefix("-c").filter(|a| !a.is_empty()) {
            ("-c", arg)
        } else {
            return Err(OptionsError::Unsupported(word.clone()));
        };
        let Some((name, value)) = arg.split_once('=') else {
            let spelled = if switch == "--" {
                format!("--{arg}")
            } else {
                format!("-c {arg}")
            };
            return Err(OptionsError::NoValue(format!("{spelled} requires a value")));
        };
        settings.push((name.replace('-', "_"), value.to_owned()));
    }
    Ok(settings)
}

fn split(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace()) {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) => word.push(escaped),
                    None => word.push('\\'),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn settings_in_every_spelling() {
        assert_eq!(
            parse("  -c search_path=x,y --statement-timeout=5s -cwork_mem=64kB ").as_ref(),
            Ok(&pairs(&[
                ("search_path", "x,y"),
                ("statement_timeout", "5s"),
                ("work_mem", "64kB"),
            ]))
        );
        assert_eq!(parse(""), Ok(Vec::new()));
    }

    #[test]
    fn backslash_escapes_the_next_character() {
        assert_eq!(
            parse(r"-c application_name=a\ b\\c"),
            Ok(pairs(&[("application_name", r"a b\c")]))
        );
    }

    #[test]
    fn other_switches_and_missing_values_are_refused() {
        assert_eq!(parse("-e"), Err(OptionsError::Unsupported("-e".into())));
        assert_eq!(
            parse("--search-path"),
            Err(OptionsError::NoValue(
                "--search-path requires a value".into()
            ))
        );
        assert_eq!(parse("-c"), Err(OptionsError::Unsupported("-c".into())));
        assert_eq!(
            parse("-c search_path"),
            Err(OptionsError::NoValue(
                "-c search_path requires a value".into()
            ))
        );
    }
}
