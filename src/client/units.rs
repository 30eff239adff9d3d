//! Byte sizes for people: parsing `64GiB`, `512MiB`, `1.5TiB` or plain bytes on the command line,
//! and printing byte counts as `64 GiB` in tables.
//!
//! Binary suffixes (`KiB`, `MiB`, `GiB`, `TiB`, `PiB`) and bare letters (`K`, `M`, `G`, `T`, `P`,
//! as qemu-img reads them) are powers of 1024; SI suffixes (`KB`, `MB`, `GB`, `TB`, `PB`) are
//! powers of 1000. Suffixes are case-insensitive and may follow a space.

/// Binary units from largest to smallest, for printing.
const BINARY: [(&str, u64); 5] =
    [("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

/// The multiplier of a size suffix, or `None` if it is not one.
fn multiplier(suffix: &str) -> Option<u64> {
    let m = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "p" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ => return None,
    };
    Some(m)
}

/// Parses a size such as `64GiB`, `512 MiB`, `1.5TiB`, `10GB` or `1048576` into bytes.
///
/// Fractions are allowed as long as the result is a whole number of bytes. Usable directly as a
/// clap `value_parser`.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let hint = "expected a size such as 1073741824, 512MiB, 64GiB or 1.5TiB";
    if number.is_empty() {
        return Err(format!("`{input}` is not a size; {hint}"));
    }
    let mult = multiplier(suffix.trim())
        .ok_or_else(|| format!("`{}` is not a size unit in `{input}`; {hint}", suffix.trim()))?;
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) || frac.len() > 18 {
        return Err(format!("`{input}` is not a size; {hint}"));
    }
    let too_large = || format!("`{input}` is too large (at most {} bytes)", u64::MAX);
    // The number as an integer of `frac.len()` decimal places, then scaled exactly in u128.
    let digits: u128 = format!("{whole}{frac}").parse().map_err(|_| too_large())?;
    let scale = 10u128.pow(frac.len() as u32);
    let scaled = digits.checked_mul(u128::from(mult)).ok_or_else(too_large)?;
    if scaled % scale != 0 {
        return Err(format!("`{input}` is not a whole number of bytes"));
    }
    u64::try_from(scaled / scale).map_err(|_| too_large())
}

/// Formats a byte count with the largest binary unit it reaches, e.g. `64 GiB`, `1.5 TiB`,
/// `512 B`. At most one decimal is shown, and none when the value is whole.
pub fn format_size(bytes: u64) -> String {
    for (name, unit) in BINARY {
        if bytes >= unit {
            // Tenths of the unit, rounded half up.
            let tenths = (u128::from(bytes) * 10 + u128::from(unit) / 2) / u128::from(unit);
            return if tenths % 10 == 0 {
                format!("{} {name}", tenths / 10)
            } else {
                format!("{}.{} {name}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_bytes_and_binary_units() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("64GiB").unwrap(), 64 << 30);
        assert_eq!(parse_size("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse_size("2 PiB").unwrap(), 2 << 50);
        assert_eq!(parse_size(" 4k ").unwrap(), 4096);
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("8gib").unwrap(), 8 << 30);
        assert_eq!(parse_size("100B").unwrap(), 100);
    }

    #[test]
    fn parses_si_units_and_fractions() {
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("1kb").unwrap(), 1000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("0.5KiB").unwrap(), 512);
        assert_eq!(parse_size(".25MiB").unwrap(), 1 << 18);
        assert_eq!(parse_size("2.TiB").unwrap(), 2 << 40);
    }

    #[test]
    fn refuses_nonsense_with_a_useful_message() {
        for bad in ["", "GiB", "abc", "12XB", "1.2.3GiB", "-5GiB", ".", "1..5"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("size"), "{bad}: {err}");
        }
        assert!(parse_size("1.5B").unwrap_err().contains("whole number"));
        assert!(parse_size("0.1KiB").unwrap_err().contains("whole number"));
        assert!(parse_size("16384PiB").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
        assert_eq!(parse_size("18446744073709551615").unwrap(), u64::MAX);
    }

    #[test]
    fn formats_with_the_largest_unit() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(64 << 30), "64 GiB");
        assert_eq!(format_size(3 << 39), "1.5 TiB");
        assert_eq!(format_size((1 << 30) - 1), "1024 MiB");
        assert_eq!(format_size(u64::MAX), "16384 PiB");
    }

    #[test]
    fn format_then_parse_round_trips_whole_values() {
        for bytes in [1u64 << 20, 64 << 30, 3 << 39, 7 << 40] {
            assert_eq!(parse_size(&format_size(bytes)).unwrap(), bytes);
        }
    }
}
