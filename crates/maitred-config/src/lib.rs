//! maitred-config: the configuration of the maitred daemon — the model,
//! how it is loaded from a TOML file (or built from the one-line command
//! line), and how it is validated.
//!
//! Where things live:
//! - [`model`]: the serde structs ([`Config`], [`PoolConfig`], ...), one per
//!   TOML table, unknown keys rejected.
//! - [`defaults`]: the default of every optional key.
//! - [`secret`]: [`Secret`], a string that prints as `***`, and
//!   [`PasswordKind`] (plaintext, md5 hash or SCRAM secret).
//! - [`upstream`]: [`UpstreamUrl`] and [`Protocol`], parsed from
//!   `postgres://user:password@host:port/database`.
//! - `expand`: `${VAR}` expansion of the raw file text.
//! - [`load`]: file → `${VAR}` expansion → TOML → `MAITRED_<SECTION>__<KEY>`
//!   overrides → [`Config`] ([`load_file`], [`load_str`], ...).
//! - `validate`: [`Config::validate`], every problem at once.
//! - [`one_line`]: [`OneLine`], the single pool of
//!   `maitred --listen ... --upstream ...`.
//! - `summary`: [`Config::summary`], the short description `maitred check`
//!   prints.
//! - [`error`]: [`ConfigError`], the crate's one error type.
//!
//! The user-facing reference is `config/maitred.toml`; the full
//! description, `docs/configuration.md`. Tests check that both name every
//! key of the model.

mod expand;
mod summary;
mod validate;

pub mod defaults;
pub mod error;
pub mod load;
pub mod model;
pub mod one_line;
pub mod secret;
pub mod upstream;

pub use error::ConfigError;
pub use load::{load_file, load_str, parse_file, parse_str, parse_str_with_env};
pub use model::{
    AdminConfig, ClientAuth, Config, LogConfig, LogFormat, PoolConfig, PoolMode, RuntimeConfig,
    UserConfig,
};
pub use one_line::OneLine;
pub use secret::{PasswordKind, Secret};
pub use upstream::{Protocol, UpstreamUrl};
