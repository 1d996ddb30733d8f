//! Flags that take a number of seconds: parsed and bounded in one place.

use std::time::Duration;

/// A range of seconds a flag accepts. Bounded so that every value is a `Duration` and every
/// deadline computed from it (now + value) is representable: unbounded floats (`1e300`,
/// `18446744073709551615`) would otherwise panic on conversion or on the addition.
pub(super) struct SecondsRange {
    min: f64,
    max: f64,
}

/// `--interval`: from ten writes a second to one a day.
pub(super) const INTERVAL: SecondsRange = SecondsRange {
    min: 0.1,
    max: 86_400.0,
};

/// `--duration`: from a millisecond to 365 days.
pub(super) const DURATION: SecondsRange = SecondsRange {
    min: 0.001,
    max: 31_536_000.0,
};

/// `verify --timeout` and `audit --verify-timeout`: from a tenth of a second to 365 days.
pub(super) const TIMEOUT: SecondsRange = SecondsRange {
    min: 0.1,
    max: 31_536_000.0,
};

impl SecondsRange {
    /// A clap value parser: a bad value is a usage error (exit 2) that names the flag (clap
    /// adds it) and the range.
    pub(super) fn parser(&'static self) -> impl Fn(&str) -> Result<Duration, String> + Clone {
        move |text| self.parse(text)
    }

    fn parse(&self, text: &str) -> Result<Duration, String> {
        let range = format!("a number of seconds from {} to {}", self.min, self.max);
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("not a number: expected {range}"))?;
        // NaN fails both comparisons, so it is refused too.
        if value >= self.min && value <= self.max {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(format!("out of range: expected {range}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded_and_never_panic() {
        assert_eq!(INTERVAL.parse("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(INTERVAL.parse("86400"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            DURATION.parse("31536000"),
            Ok(Duration::from_secs(31_536_000))
        );
        for bad in [
            "18446744073709551615",
            "1e300",
            "inf",
            "-inf",
            "NaN",
            "0",
            "-1",
            "0.01",
            "86400.5",
            "",
            "5s",
        ] {
            let err = INTERVAL.parse(bad).unwrap_err();
            assert!(err.contains("from 0.1 to 86400"), "{bad}: {err}");
        }
        assert!(DURATION.parse("1e300").is_err());
        assert!(DURATION.parse("31536001").is_err());
        assert_eq!(TIMEOUT.parse("2.5"), Ok(Duration::from_millis(2500)));
        assert!(TIMEOUT
            .parse("0.05")
            .unwrap_err()
            .contains("from 0.1 to 31536000"));
    }
}
