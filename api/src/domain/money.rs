//! Money in kopecks (1/100 of a rouble), never floating point.

use std::fmt;

/// An amount in kopecks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kopecks(i64);

/// The largest price Vizit accepts for a consultation: 1 000 000 roubles.
pub const MAX_PRICE: Kopecks = Kopecks(100_000_000);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an amount must be between 0 and {} kopecks", MAX_PRICE.0)]
pub struct InvalidAmount;

impl Kopecks {
    /// A price: not negative, at most [`MAX_PRICE`].
    pub fn price(kopecks: i64) -> Result<Kopecks, InvalidAmount> {
        if (0..=MAX_PRICE.0).contains(&kopecks) {
            Ok(Kopecks(kopecks))
        } else {
            Err(InvalidAmount)
        }
    }

    /// An amount read back from the database, which stores only amounts it was given.
    pub fn from_stored(kopecks: i64) -> Kopecks {
        Kopecks(kopecks)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// `1500.00` — roubles with two decimals, as payment systems write amounts.
impl fmt::Display for Kopecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_bounded_and_print_as_roubles() {
        assert_eq!(Kopecks::price(150_000).unwrap().to_string(), "1500.00");
        assert_eq!(Kopecks::price(5).unwrap().to_string(), "0.05");
        assert_eq!(Kopecks::price(0).unwrap().get(), 0);
        assert_eq!(Kopecks::price(-1), Err(InvalidAmount));
        assert_eq!(Kopecks::price(100_000_001), Err(InvalidAmount));
        assert_eq!(Kopecks::from_stored(-250).to_string(), "-2.50");
    }
}
