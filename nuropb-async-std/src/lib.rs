//! NuroPb on async-std and smol
#![forbid(unsafe_code)]
