//! Green weight in basis points. Integers make the split exact and comparisons total; percent
//! with two decimals (the config's resolution) maps onto 0..=10 000 without rounding surprises.

use std::fmt;

/// Share of requests sent to green, in basis points (0..=10 000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(u16);

/// Why a percentage is not a weight.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    /// Outside 0..=100.
    #[error("weight {0} is outside 0..=100 percent")]
    OutOfRange(f64),
    /// Finer than 0.01 %.
    #[error("weight {0} has more precision than 0.01 percent")]
    TooPrecise(f64),
}

impl Weight {
    /// All traffic on blue.
    pub const ZERO: Weight = Weight(0);
    /// All traffic on green.
    pub const FULL: Weight = Weight(10_000);

    /// From a percentage such as `10` or `0.25`.
    pub fn from_percent(pct: f64) -> Result<Weight, WeightError> {
        if !pct.is_finite() || !(0.0..=100.0).contains(&pct) {
            return Err(WeightError::OutOfRange(pct));
        }
        let bp = pct * 100.0;
        if (bp - bp.round()).abs() > 1e-6 {
            return Err(WeightError::TooPrecise(pct));
        }
        Ok(Weight(bp.round() as u16))
    }

    /// From basis points; `None` above 10 000.
    pub fn from_bp(bp: u16) -> Option<Weight> {
        (bp <= 10_000).then_some(Weight(bp))
    }

    pub fn bp(self) -> u16 {
        self.0
    }

    /// The rest of the traffic: a candidate's share seen from the other color.
    pub fn complement(self) -> Weight {
        Weight(10_000 - self.0)
    }

    /// Percent, for display and metrics.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.percent())
    }
}

impl serde::Serialize for Weight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.percent())
    }
}

impl<'de> serde::Deserialize<'de> for Weight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pct = f64::deserialize(d)?;
        Weight::from_percent(pct).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_maps_to_basis_points() {
        assert_eq!(Weight::from_percent(10.0).unwrap().bp(), 1000);
        assert_eq!(Weight::from_percent(0.01).unwrap().bp(), 1);
        assert_eq!(Weight::from_percent(100.0).unwrap(), Weight::FULL);
    }

    #[test]
    fn out_of_range_and_too_precise_are_rejected() {
        assert!(matches!(Weight::from_percent(-1.0), Err(WeightError::OutOfRange(_))));
        assert!(matches!(Weight::from_percent(100.5), Err(WeightError::OutOfRange(_))));
        assert!(matches!(Weight::from_percent(f64::NAN), Err(WeightError::OutOfRange(_))));
        assert!(matches!(Weight::from_percent(0.001), Err(WeightError::TooPrecise(_))));
    }
}
