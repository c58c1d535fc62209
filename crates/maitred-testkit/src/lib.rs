//! maitred-testkit
