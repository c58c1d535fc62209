//! maitred-config
