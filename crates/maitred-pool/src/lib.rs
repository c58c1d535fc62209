//! maitred-pool
