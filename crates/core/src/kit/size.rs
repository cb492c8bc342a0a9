//! Byte sizes, in one unit system: powers of 1000 (kB, MB, GB, TB), as
//! PostgreSQL's `pg_size_pretty` does not but disks, networks and
//! Backstop's config do. Config may still be written in powers of 1024
//! (`"512KiB"`), which are read exactly.

use serde::{Deserialize, Deserializer};

/// Parses a byte size: a whole number of bytes, or text such as "1MB",
/// "1.5 GB", "512KiB" (kB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "mb" | "m" => 1000 * 1000,
        "gb" | "g" => 1000 * 1000 * 1000,
        "tb" | "t" => 1000 * 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("invalid size {text:?}: unknown unit {:?}", unit.trim())),
    };
    Ok((number * factor as f64).round() as u64)
}

/// `1.2 MB`, `930 kB`, `512 B`: a size for people, in powers of 1000.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Serde: a size written as a number of bytes or as text with a unit.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(n) => Ok(n),
        Raw::Text(text) => parse(&text).map_err(|e| {
            serde::de::Error::custom(format!("{e}; write it like 1048576, \"1MB\" or \"512KiB\""))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_and_read_in_powers_of_1000() {
        assert_eq!(parse("1048576"), Ok(1_048_576));
        assert_eq!(parse("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse("512KiB"), Ok(524_288));
        assert!(parse("12 furlongs").is_err());
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1_234_567), "1.2 MB");
        // What config calls 3.4 GB is what a report calls 3.4 GB.
        assert_eq!(human(parse("3.4 GB").unwrap()), "3.4 GB");
    }
}
