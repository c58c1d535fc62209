//! maitred-e2e: end-to-end tests of the built `maitred` binary between real
//! clients and real servers. The tests live beside this file (pg_e2e.rs);
//! the helpers they use are in the `maitred-testkit` crate. Run them with
//! `scripts/test.sh`, which starts the PostgreSQL they need.

pub use maitred_testkit as testkit;

pub mod mysql_client;
pub mod pg_client;
pub mod pg_raw;
