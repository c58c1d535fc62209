//! The process-wide drain notice (see [`maitred_pool::shutdown`], shared by every
//! protocol). Once [`begin`] is called, PostgreSQL sessions that hold no server connection
//! say goodbye with FATAL 57P01 `admin_shutdown` and end; sessions in a transaction finish
//! it first and then do the same.

pub use maitred_pool::shutdown::{
    begin, logins_in_progress, started, wait, wait_for_logins, LoginInProgress,
};
