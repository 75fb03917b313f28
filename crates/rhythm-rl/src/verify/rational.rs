//! Exact rational numbers on `i128` with checked arithmetic.
//!
//! The Countdown verifier and solver and the numeric branch of the math
//! verifier all compare values exactly: `1 / 3 * 3` is exactly `1`, and an
//! operation that would overflow `i128` reports `None` instead of wrapping or
//! panicking.

use std::fmt;

/// An exact rational number `numer / denom` in lowest terms with `denom > 0`.
///
/// Every constructor and operation is checked: a zero denominator or a result
/// that does not fit in `i128` yields `None`, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// Zero.
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    /// One.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// The integer `n` as a rational.
    pub const fn integer(n: i128) -> Rational {
        Rational { num: n, den: 1 }
    }

    /// `num / den` reduced to lowest terms; `None` if `den == 0` or the
    /// reduced value does not fit (only possible when an argument is
    /// `i128::MIN`).
    pub fn new(num: i128, den: i128) -> Option<Rational> {
        if den == 0 {
            return None;
        }
        let negative = (num < 0) != (den < 0);
        let (n, d) = (num.unsigned_abs(), den.unsigned_abs());
        let g = gcd(n, d);
        let d = i128::try_from(d / g).ok()?;
        let num = if negative {
            0i128.checked_sub_unsigned(n / g)?
        } else {
            i128::try_from(n / g).ok()?
        };
        Some(Rational { num, den: d })
    }

    /// The numerator (carries the sign).
    pub const fn numer(&self) -> i128 {
        self.num
    }

    /// The denominator (always positive).
    pub const fn denom(&self) -> i128 {
        self.den
    }

    /// Whether the value is zero.
    pub const fn is_zero(&self) -> bool {
        self.num == 0
    }

    /// Whether the value is an integer.
    pub const fn is_integer(&self) -> bool {
        self.den == 1
    }

    /// The value as an integer, if it is one.
    pub const fn to_integer(&self) -> Option<i128> {
        if self.den == 1 {
            Some(self.num)
        } else {
            None
        }
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Rational) -> Option<Rational> {
        let g = i128::try_from(gcd(self.den.unsigned_abs(), rhs.den.unsigned_abs())).ok()?;
        let (bd, dd) = (self.den / g, rhs.den / g);
        let num = self
            .num
            .checked_mul(dd)?
            .checked_add(rhs.num.checked_mul(bd)?)?;
        let den = bd.checked_mul(rhs.den)?;
        Rational::new(num, den)
    }

    /// `self - rhs`, or `None` on overflow.
    pub fn checked_sub(self, rhs: Rational) -> Option<Rational> {
        self.checked_add(rhs.checked_neg()?)
    }

    /// `-self`, or `None` on overflow.
    pub fn checked_neg(self) -> Option<Rational> {
        Some(Rational {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    /// `self * rhs`, or `None` on overflow.
    pub fn checked_mul(self, rhs: Rational) -> Option<Rational> {
        if self.num == 0 || rhs.num == 0 {
            return Some(Rational::ZERO);
        }
        let g1 = i128::try_from(gcd(self.num.unsigned_abs(), rhs.den.unsigned_abs())).ok()?;
        let g2 = i128::try_from(gcd(rhs.num.unsigned_abs(), self.den.unsigned_abs())).ok()?;
        let num = (self.num / g1).checked_mul(rhs.num / g2)?;
        let den = (self.den / g2).checked_mul(rhs.den / g1)?;
        Rational::new(num, den)
    }

    /// `self / rhs`, or `None` if `rhs` is zero or on overflow.
    pub fn checked_div(self, rhs: Rational) -> Option<Rational> {
        self.checked_mul(rhs.checked_recip()?)
    }

    /// `1 / self`, or `None` if `self` is zero.
    pub fn checked_recip(self) -> Option<Rational> {
        if self.num == 0 {
            return None;
        }
        Rational::new(self.den, self.num)
    }

    /// `10^exp` as a rational, or `None` on overflow.
    pub fn pow10(exp: u32) -> Option<Rational> {
        Some(Rational::integer(10i128.checked_pow(exp)?))
    }
}

impl From<i64> for Rational {
    fn from(n: i64) -> Rational {
        Rational::integer(i128::from(n))
    }
}

impl From<u64> for Rational {
    fn from(n: u64) -> Rational {
        Rational::integer(i128::from(n))
    }
}

impl From<u32> for Rational {
    fn from(n: u32) -> Rational {
        Rational::integer(i128::from(n))
    }
}

impl fmt::Display for Rational {
    /// `n` for integers, `n/d` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_and_normalises_sign() {
        let r = Rational::new(6, -4).unwrap();
        assert_eq!((r.numer(), r.denom()), (-3, 2));
        assert_eq!(Rational::new(1, 0), None);
        assert_eq!(
            Rational::new(i128::MIN, 1),
            Some(Rational::integer(i128::MIN))
        );
        assert_eq!(Rational::new(i128::MIN, -1), None);
        assert_eq!(Rational::new(i128::MIN, i128::MIN), Some(Rational::ONE));
    }

    #[test]
    fn exact_arithmetic() {
        let third = Rational::new(1, 3).unwrap();
        let three = Rational::integer(3);
        assert_eq!(third.checked_mul(three), Some(Rational::ONE));
        assert_eq!(
            third.checked_add(Rational::new(1, 6).unwrap()),
            Rational::new(1, 2)
        );
        assert_eq!(three.checked_div(Rational::ZERO), None);
        assert_eq!(
            Rational::integer(i128::MAX).checked_add(Rational::ONE),
            None
        );
        assert_eq!(
            Rational::integer(i128::MAX).checked_mul(Rational::integer(2)),
            None
        );
        assert_eq!(Rational::integer(i128::MIN).checked_neg(), None);
    }
}
