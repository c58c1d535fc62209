//! maitred-pg
