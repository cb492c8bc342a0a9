//! The small kits every floor may use: one way to read and write a
//! duration, a byte size, a JSON path, a Markdown table cell, an
//! `${ENV}` reference and a place in a text. Pure: no database, no domain,
//! nothing of Backstop's own above it.

pub mod duration;
pub mod env;
pub mod error;
pub mod jsonpath;
pub mod markdown;
pub mod size;
pub mod text;
