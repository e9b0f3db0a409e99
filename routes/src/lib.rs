#![forbid(unsafe_code)]
//! Route file: parse, validate, match. Filled by the route-file issue.
