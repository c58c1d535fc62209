//! End-to-end tests live beside this file; see pg_e2e.rs.
