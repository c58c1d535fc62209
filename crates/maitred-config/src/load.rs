//! Loading: read the file, expand `${VAR}`, check the TOML, then let
//! the `config` crate layer the file and the `MAITRED_<SECTION>__<KEY>`
//! environment overrides and deserialize the result into [`Config`].
//!
//! Every function here has a `load_*` form (parse, then
//! [`Config::validate`]) and a `parse_*` form (no validation, for callers
//! that change the configuration before validating it).

use std::collections::HashMap;
use std::env::VarError;
use std::path::Path;

use crate::error::ConfigError;
use crate::model::Config;
use crate::secret::REDACTED;

/// Prefix of environment overrides (`MAITRED_LOG__LEVEL=debug`).
pub const ENV_PREFIX: &str = "MAITRED";
/// Separator between nested keys in environment overrides.
pub const ENV_SEPARATOR: &str = "__";
/// Top-level tables that environment overrides may reach.
const ENV_SECTIONS: &[&str] = &["admin", "runtime", "log"];
/// Expanded values shorter than this are not redacted from error messages
/// (they would mangle line numbers and the like, and hide nothing).
const MIN_REDACTED_LEN: usize = 4;

/// Reads, parses and validates a configuration file, with `${VAR}` and
/// overrides taken from the process environment.
pub fn load_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    validated(parse_file(path)?)
}

/// Parses and validates configuration text, with `${VAR}` and overrides
/// taken from the process environment.
pub fn load_str(text: &str) -> Result<Config, ConfigError> {
    validated(parse_str(text)?)
}

/// Reads and parses a configuration file without validating it.
pub fn parse_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string(), &Env::process())
}

/// Parses configuration text without validating it.
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(text, "<string>", &Env::process())
}

/// Parses configuration text without validating it, with `${VAR}` and
/// overrides taken from `vars` instead of the process environment (for
/// tests and embedding).
pub fn parse_str_with_env<K, V>(
    text: &str,
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<Config, ConfigError>
where
    K: Into<String>,
    V: Into<String>,
{
    let env = Env {
        vars: vars
            .into_iter()
            .map(|(k, v)| (k.into(), Ok(v.into())))
            .collect(),
    };
    parse(text, "<string>", &env)
}

fn validated(config: Config) -> Result<Config, ConfigError> {
    config.validate().map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// A snapshot of the environment. Values that are not UTF-8 are kept as
/// errors so they can be reported by name.
struct Env {
    vars: HashMap<String, Result<String, ()>>,
}

impl Env {
    fn process() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(key, value)| {
                let key = key.into_string().ok()?;
                Some((key, value.into_string().map_err(|_| ())))
            })
            .collect();
        Env { vars }
    }

    fn lookup(&self, name: &str) -> Result<String, VarError> {
        match self.vars.get(name) {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(())) => Err(VarError::NotUnicode(Default::default())),
            None => Err(VarError::NotPresent),
        }
    }

    /// `MAITRED_<SECTION>__<KEY>` variables, checked. Variables such as
    /// `MAITRED_LISTEN` (no `__` after the prefix) belong to the command
    /// line and are left out.
    fn overrides(&self) -> Result<config::Map<String, String>, ConfigError> {
        let prefix = format!("{ENV_PREFIX}_");
        let mut overrides = config::Map::new();
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        for name in names {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let Some((section, _)) = rest.split_once(ENV_SEPARATOR) else {
                continue;
            };
            let env_error = |reason: String| ConfigError::Env {
                name: name.clone(),
                reason,
            };
            let section = section.to_lowercase();
            if section == "pools" {
                return Err(env_error(
                    "pools cannot be overridden from the environment; use ${VAR} in the file"
                        .to_owned(),
                ));
            }
            if !ENV_SECTIONS.contains(&section.as_str()) {
                return Err(env_error(format!(
                    "unknown section `{section}` (overridable: {})",
                    ENV_SECTIONS.join(", ")
                )));
            }
            let value = match &self.vars[name] {
                Ok(value) => value.clone(),
                Err(()) => return Err(env_error("value is not valid UTF-8".to_owned())),
            };
            overrides.insert(name.clone(), value);
        }
        Ok(overrides)
    }
}

fn parse(text: &str, origin: &str, env: &Env) -> Result<Config, ConfigError> {
    let expanded = crate::expand::expand(text, |name| env.lookup(name)).map_err(|problems| {
        ConfigError::Expand(
            problems
                .into_iter()
                .map(|p| format!("{origin}:{}: {}", p.line, p.message))
                .collect(),
        )
    })?;
    let redact = |message: &str| redact(message, &expanded.values);

    // Deserialize the file alone with the toml crate first: its errors
    // point at the line and column of the bad key or value. (The config
    // crate's errors lack positions and, for syntax errors, quote the
    // offending line, which may hold an expanded secret.)
    if let Err(error) = toml::from_str::<Config>(&expanded.text) {
        let (line, column) = error
            .span()
            .map(|span| line_and_column(&expanded.text, span.start))
            .unwrap_or((0, 0));
        return Err(ConfigError::Toml {
            origin: origin.to_owned(),
            line,
            column,
            message: redact(error.message().trim()),
        });
    }

    // The file alone deserialized, so an error from here on comes from
    // the environment overrides: name them.
    let overrides = env.overrides()?;
    let origin = if overrides.is_empty() {
        origin.to_owned()
    } else {
        let mut names: Vec<&str> = overrides.keys().map(String::as_str).collect();
        names.sort_unstable();
        format!("{origin} with environment overrides {}", names.join(", "))
    };
    let parse_error = |error: config::ConfigError| ConfigError::Parse {
        origin: origin.clone(),
        message: redact(&error.to_string()),
    };
    let environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator(ENV_SEPARATOR)
        .source(Some(overrides));
    config::Config::builder()
        .add_source(config::File::from_str(
            &expanded.text,
            config::FileFormat::Toml,
        ))
        .add_source(environment)
        .build()
        .map_err(parse_error)?
        .try_deserialize::<Config>()
        .map_err(parse_error)
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

/// Replaces every expanded value (longest first) in a message by `***`.
fn redact(message: &str, values: &[String]) -> String {
    let mut values: Vec<&String> = values
        .iter()
        .filter(|value| value.len() >= MIN_REDACTED_LEN)
        .collect();
    values.sort_by_key(|value| std::cmp::Reverse(value.len()));
    let mut message = message.to_owned();
    for value in values {
        message = message.replace(value.as_str(), REDACTED);
    }
    message
}
