//! Money as an integer count of nano-USD (10⁻⁹ USD).
//!
//! Every counter in Redis, every wire field and every charge is a [`NanoUsd`]. Prices and
//! reports use [`rust_decimal::Decimal`]; the only way from a decimal amount to a charge is
//! [`NanoUsd::from_usd_ceil`], which rounds **up** to the next nano-USD so that a charge is
//! never smaller than the exact price. Arithmetic is checked: an overflow is an error the
//! caller must handle, never a silent wrap.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Nano-USD in one USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// An amount of money in nano-USD. Serialized as a plain JSON integer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct NanoUsd(pub i64);

/// Money arithmetic or conversion that would not fit in an `i64` count of nano-USD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The result does not fit in an `i64` count of nano-USD (about ±9.2 billion USD).
    #[error("amount out of range for nano-USD: {0}")]
    OutOfRange(String),
}

impl NanoUsd {
    /// Zero USD.
    pub const ZERO: NanoUsd = NanoUsd(0);
    /// The largest representable amount.
    pub const MAX: NanoUsd = NanoUsd(i64::MAX);

    /// Wraps a raw nano-USD count.
    pub const fn new(nanos: i64) -> Self {
        NanoUsd(nanos)
    }

    /// The raw nano-USD count.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// `self + rhs`, or an error on overflow.
    pub fn checked_add(self, rhs: NanoUsd) -> Result<NanoUsd, MoneyError> {
        self.0
            .checked_add(rhs.0)
            .map(NanoUsd)
            .ok_or_else(|| MoneyError::OutOfRange(format!("{} + {}", self.0, rhs.0)))
    }

    /// `self - rhs`, or an error on overflow.
    pub fn checked_sub(self, rhs: NanoUsd) -> Result<NanoUsd, MoneyError> {
        self.0
            .checked_sub(rhs.0)
            .map(NanoUsd)
            .ok_or_else(|| MoneyError::OutOfRange(format!("{} - {}", self.0, rhs.0)))
    }

    /// `self × n`, or an error on overflow.
    pub fn checked_mul(self, n: i64) -> Result<NanoUsd, MoneyError> {
        self.0
            .checked_mul(n)
            .map(NanoUsd)
            .ok_or_else(|| MoneyError::OutOfRange(format!("{} * {n}", self.0)))
    }

    /// Sum of many amounts, or an error on overflow.
    pub fn checked_sum<I: IntoIterator<Item = NanoUsd>>(items: I) -> Result<NanoUsd, MoneyError> {
        items
            .into_iter()
            .try_fold(NanoUsd::ZERO, |acc, x| acc.checked_add(x))
    }

    /// `self + rhs`, clamped at the `i64` range. For display-only totals, never for charges.
    pub fn saturating_add(self, rhs: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(rhs.0))
    }

    /// Converts a USD amount to nano-USD, rounding **up** (towards +∞) to the next whole
    /// nano-USD: the rule for every charge, so rounding never undercharges.
    pub fn from_usd_ceil(usd: Decimal) -> Result<NanoUsd, MoneyError> {
        let nanos = usd
            .checked_mul(Decimal::from(NANOS_PER_USD))
            .ok_or_else(|| MoneyError::OutOfRange(usd.to_string()))?
            .round_dp_with_strategy(0, RoundingStrategy::ToPositiveInfinity);
        i64::try_from(nanos)
            .map(NanoUsd)
            .map_err(|_| MoneyError::OutOfRange(usd.to_string()))
    }

    /// Converts a USD amount that must already be a whole number of nano-USD (a limit an
    /// admin typed, for example). More than nine decimal places is an error, not a rounding.
    pub fn from_usd_exact(usd: Decimal) -> Result<NanoUsd, MoneyError> {
        let nanos = usd
            .checked_mul(Decimal::from(NANOS_PER_USD))
            .ok_or_else(|| MoneyError::OutOfRange(usd.to_string()))?;
        if !nanos.fract().is_zero() {
            return Err(MoneyError::OutOfRange(format!(
                "{usd} has more than 9 decimal places"
            )));
        }
        i64::try_from(nanos)
            .map(NanoUsd)
            .map_err(|_| MoneyError::OutOfRange(usd.to_string()))
    }

    /// The exact amount in USD (scale 9, trailing zeros removed).
    pub fn to_usd(self) -> Decimal {
        Decimal::new(self.0, 9).normalize()
    }
}

/// Displays as USD with at least two decimal places and no trailing zeros beyond them:
/// `$0.0123`, `$12.00`, `-$0.000000001`.
impl fmt::Display for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usd = self.to_usd();
        let sign = if usd.is_sign_negative() { "-" } else { "" };
        let abs = usd.abs();
        if abs.scale() < 2 {
            write!(f, "{sign}${abs:.2}")
        } else {
            write!(f, "{sign}${abs}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn usd(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn charges_round_up_to_the_next_nano() {
        assert_eq!(
            NanoUsd::from_usd_ceil(usd("0.0000000001")).unwrap(),
            NanoUsd(1)
        );
        assert_eq!(
            NanoUsd::from_usd_ceil(usd("0.0000000010")).unwrap(),
            NanoUsd(1)
        );
        assert_eq!(
            NanoUsd::from_usd_ceil(usd("0.0000000011")).unwrap(),
            NanoUsd(2)
        );
        assert_eq!(
            NanoUsd::from_usd_ceil(usd("2.5")).unwrap(),
            NanoUsd(2_500_000_000)
        );
        // Towards +infinity: a negative credit rounds towards zero, never away from it.
        assert_eq!(
            NanoUsd::from_usd_ceil(usd("-0.0000000015")).unwrap(),
            NanoUsd(-1)
        );
    }

    #[test]
    fn exact_conversion_refuses_sub_nano_amounts() {
        assert_eq!(
            NanoUsd::from_usd_exact(usd("12.5")).unwrap(),
            NanoUsd(12_500_000_000)
        );
        assert!(NanoUsd::from_usd_exact(usd("0.0000000001")).is_err());
    }

    #[test]
    fn amounts_beyond_i64_are_errors() {
        assert!(NanoUsd::from_usd_ceil(usd("10000000000")).is_err());
        assert!(NanoUsd::MAX.checked_add(NanoUsd(1)).is_err());
        assert!(NanoUsd(i64::MIN).checked_sub(NanoUsd(1)).is_err());
        assert!(NanoUsd(i64::MAX / 2 + 1).checked_mul(2).is_err());
    }

    #[test]
    fn display_is_usd() {
        assert_eq!(NanoUsd(12_300_000).to_string(), "$0.0123");
        assert_eq!(NanoUsd(12 * NANOS_PER_USD).to_string(), "$12.00");
        assert_eq!(NanoUsd(-1).to_string(), "-$0.000000001");
        assert_eq!(NanoUsd(0).to_string(), "$0.00");
    }

    #[test]
    fn serializes_as_a_bare_integer() {
        assert_eq!(serde_json::to_string(&NanoUsd(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<NanoUsd>("-7").unwrap(), NanoUsd(-7));
    }

    proptest! {
        #[test]
        fn checked_arithmetic_matches_i128_or_errors(a in any::<i64>(), b in any::<i64>()) {
            let wide = i128::from(a) + i128::from(b);
            match NanoUsd(a).checked_add(NanoUsd(b)) {
                Ok(sum) => prop_assert_eq!(i128::from(sum.0), wide),
                Err(_) => prop_assert!(wide > i128::from(i64::MAX) || wide < i128::from(i64::MIN)),
            }
            let wide = i128::from(a) - i128::from(b);
            match NanoUsd(a).checked_sub(NanoUsd(b)) {
                Ok(diff) => prop_assert_eq!(i128::from(diff.0), wide),
                Err(_) => prop_assert!(wide > i128::from(i64::MAX) || wide < i128::from(i64::MIN)),
            }
            let wide = i128::from(a) * i128::from(b);
            match NanoUsd(a).checked_mul(b) {
                Ok(p) => prop_assert_eq!(i128::from(p.0), wide),
                Err(_) => prop_assert!(wide > i128::from(i64::MAX) || wide < i128::from(i64::MIN)),
            }
        }

        #[test]
        fn usd_round_trip_is_exact(n in any::<i64>()) {
            let back = NanoUsd::from_usd_exact(NanoUsd(n).to_usd()).unwrap();
            prop_assert_eq!(back, NanoUsd(n));
            prop_assert_eq!(NanoUsd::from_usd_ceil(NanoUsd(n).to_usd()).unwrap(), NanoUsd(n));
        }

        #[test]
        fn ceil_never_undercharges(mantissa in -1_000_000_000_000i64..1_000_000_000_000i64, scale in 3u32..15) {
            let amount = Decimal::new(mantissa, scale);
            let charged = NanoUsd::from_usd_ceil(amount).unwrap();
            prop_assert!(charged.to_usd() >= amount);
            prop_assert!(charged.to_usd() - amount < Decimal::new(1, 9));
        }
    }
}
