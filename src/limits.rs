//! Allowed ranges of settings, and the error that names a setting, its value and its range.
//! The configuration, the loss, the viewer's sliders and the command line's help all read the
//! same ranges, so what a slider offers is what the validator accepts.

use std::fmt;

/// A setting outside its allowed range.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    /// The configuration key (`radius_scale`); the command line shows it as its flag.
    pub key: String,
    pub value: String,
    /// The allowed values, as a reader would say them (`2 to 64`).
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is out of range: allowed {}",
            self.key, self.value, self.allowed
        )
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(error: ConfigError) -> String {
        error.to_string()
    }
}

impl ConfigError {
    fn out_of_range(
        key: &str,
        value: impl fmt::Display,
        low: impl fmt::Display,
        high: impl fmt::Display,
    ) -> Self {
        Self {
            key: key.to_string(),
            value: value.to_string(),
            allowed: format!("{low} to {high}"),
        }
    }
}

/// A real-valued setting must be finite and inside `[low, high]`.
pub fn check_range(key: &str, value: f64, (low, high): (f64, f64)) -> Result<(), ConfigError> {
    if value.is_finite() && value >= low && value <= high {
        Ok(())
    } else {
        Err(ConfigError::out_of_range(key, value, low, high))
    }
}

/// A count must lie inside `[low, high]`.
pub fn check_count(
    key: &str,
    value: usize,
    (low, high): (usize, usize),
) -> Result<(), ConfigError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::out_of_range(key, value, low, high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_inside_and_anything_else_is_named() {
        assert!(check_range("alpha", 1.0, (1.0, 10.0)).is_ok());
        assert!(check_range("alpha", 10.0, (1.0, 10.0)).is_ok());
        let below = check_range("alpha", 0.999, (1.0, 10.0)).unwrap_err();
        assert_eq!(
            below.to_string(),
            "alpha = 0.999 is out of range: allowed 1 to 10"
        );
        assert!(check_range("alpha", f64::NAN, (1.0, 10.0)).is_err());
        assert!(check_range("alpha", f64::INFINITY, (1.0, f64::INFINITY)).is_err());
        assert!(check_count("views", 2, (2, 64)).is_ok());
        let above = check_count("views", 65, (2, 64)).unwrap_err();
        assert_eq!((above.key.as_str(), above.value.as_str()), ("views", "65"));
        assert_eq!(above.allowed, "2 to 64");
    }
}
