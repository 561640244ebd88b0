//! Durations (`500ms`, `2s`, `10m`, `1h30m`) and memory sizes (`512MiB`, `2GiB`, `1G`).

use std::time::Duration;

/// Parses a duration written as one or more `<number><unit>` parts, units `ms`, `s`, `m`,
/// `h`, `d`. A bare integer is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration `{text}`: expected a number at `{rest}`"
            ));
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| {
            format!(
                "invalid duration `{text}`: bad number `{}`",
                &rest[..num_len]
            )
        })?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: missing unit (ms, s, m, h, d)"
                ))
            }
            u => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{u}` (use ms, s, m, h, d)"
                ))
            }
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("duration `{text}` is too long"))
}

/// Formats a duration compactly (`1h2m3s`, `1.5s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// Parses a memory size: a byte count, or a number with `K`, `M`, `G`, `T` (powers of 1000),
/// `Ki`, `Mi`, `Gi`, `Ti` (powers of 1024), optionally followed by `B`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if num_len == 0 {
        return Err(format!(
            "invalid memory size `{text}`: expected a number like 512MiB or 2GiB"
        ));
    }
    let n: f64 = t[..num_len]
        .parse()
        .map_err(|_| format!("invalid memory size `{text}`"))?;
    let unit = t[num_len..].trim();
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let scale: f64 = match unit {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("invalid memory size `{text}`: unknown unit `{u}` (use KiB, MiB, GiB, TiB or K, M, G, T)")),
    };
    let bytes = n * scale;
    if !bytes.is_finite() || bytes > MAX_BYTES as f64 {
        return Err(format!(
            "memory size `{text}` is larger than any machine (the most is 1024TiB)"
        ));
    }
    Ok(bytes.round() as u64)
}

/// The largest memory size accepted (1 PiB): anything larger is a typo.
pub const MAX_BYTES: u64 = 1 << 50;

/// Formats bytes with binary units.
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("512Mi").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("2GB7").is_err());
    }
}
