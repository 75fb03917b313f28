//! The Countdown verifier (TinyZero protocol, SPEC section 13).
//!
//! A response is judged by the expression inside its **last**
//! `<answer>...</answer>` element. The expression must follow exactly this
//! grammar (ASCII spaces may appear between any two tokens):
//!
//! ```text
//! expr    := term   (('+' | '-') term)*
//! term    := factor (('*' | '/') factor)*
//! factor  := literal | '(' expr ')'
//! literal := '0' | [1-9][0-9]*
//! ```
//!
//! Nothing else is accepted: no unary minus or plus, no decimal point, no
//! leading zeros (`07`), no tabs or newlines, no Unicode digits or minus
//! signs, no `x` or `=`. Its literals must be exactly the given numbers as a
//! multiset (each used once, none left out), and its value, computed in exact
//! rational arithmetic ([`Rational`]), must equal the target.
//!
//! The verifier never evaluates text with a general-purpose evaluator and is
//! built for hostile input: it runs in time linear in the response, never
//! recurses deeper than [`MAX_DEPTH`] parenthesis levels (deeper nesting is
//! [`Outcome::Malformed`]), stores the parsed expression flat in postfix
//! order (so dropping or evaluating a long chain needs no recursion), checks
//! every arithmetic step for overflow and treats division by zero as a wrong
//! value. A literal too large for `u64` is still well-formed, but can never
//! match a given number, so it yields [`Outcome::WrongNumbers`].
//!
//! Which `<answer>` element is "last" follows TinyZero's
//! `re.finditer(r"<answer>(.*?)</answer>")`: elements are found left to
//! right, each from an opening tag to the first closing tag after it, and the
//! last one found wins. Nested tags therefore give a malformed expression.

use std::fmt;

use super::rational::Rational;

/// The deepest parenthesis nesting the parser accepts; deeper is malformed.
pub const MAX_DEPTH: usize = 256;

/// The reward for a well-formed but wrong answer unless configured otherwise.
pub const DEFAULT_FORMAT_SCORE: f32 = 0.0;

const OPEN_TAG: &str = "<answer>";
const CLOSE_TAG: &str = "</answer>";

/// The verdict on one Countdown response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The expression uses exactly the given numbers and equals the target.
    Correct,
    /// The expression uses exactly the given numbers but does not equal the
    /// target (including division by zero and arithmetic overflow).
    WrongValue,
    /// The expression is well-formed but its literals are not exactly the
    /// given numbers (one used twice, one missing, a foreign number).
    WrongNumbers,
    /// The last answer element does not hold an expression of the grammar.
    Malformed,
    /// The response has no complete `<answer>...</answer>` element.
    NoAnswer,
}

impl Outcome {
    /// Whether the answer is right.
    pub fn is_correct(self) -> bool {
        self == Outcome::Correct
    }

    /// Whether an answer element held a well-formed expression (right or
    /// wrong); such answers earn at least the format score.
    pub fn is_well_formed(self) -> bool {
        matches!(
            self,
            Outcome::Correct | Outcome::WrongValue | Outcome::WrongNumbers
        )
    }
}

/// The reward for an outcome: `1` if correct, `format_score` if the answer
/// element held a well-formed expression, `0` otherwise.
pub fn reward(outcome: Outcome, format_score: f32) -> f32 {
    match outcome {
        Outcome::Correct => 1.0,
        Outcome::WrongValue | Outcome::WrongNumbers => format_score,
        Outcome::Malformed | Outcome::NoAnswer => 0.0,
    }
}

/// The content of the last complete `<answer>...</answer>` element, if any.
///
/// Elements are matched like TinyZero's non-greedy regex: each opening tag
/// pairs with the first closing tag after it, and scanning resumes after that
/// closing tag. Runs in linear time.
pub fn extract_answer(response: &str) -> Option<&str> {
    let mut last = None;
    let mut pos = 0;
    while let Some(open) = response[pos..].find(OPEN_TAG) {
        let start = pos + open + OPEN_TAG.len();
        let Some(close) = response[start..].find(CLOSE_TAG) else {
            break;
        };
        last = Some(&response[start..start + close]);
        pos = start + close + CLOSE_TAG.len();
    }
    last
}

/// Judges a full response: the last answer element's expression against
/// `nums` and `target`.
pub fn verify(response: &str, nums: &[u32], target: u32) -> Outcome {
    match extract_answer(response) {
        None => Outcome::NoAnswer,
        Some(expr) => check_expression(expr, nums, target),
    }
}

/// Judges a bare expression (no tags) against `nums` and `target`.
///
/// Never returns [`Outcome::NoAnswer`].
pub fn check_expression(expr: &str, nums: &[u32], target: u32) -> Outcome {
    let Ok(expr) = Expr::parse(expr) else {
        return Outcome::Malformed;
    };
    if !expr.uses_exactly(nums) {
        return Outcome::WrongNumbers;
    }
    match expr.eval() {
        Ok(value) if value == Rational::from(target) => Outcome::Correct,
        _ => Outcome::WrongValue,
    }
}

/// A binary arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (exact rational division)
    Div,
}

impl Op {
    /// All four operators.
    pub const ALL: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

    /// The operator's symbol.
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
            Op::Div => '/',
        }
    }

    /// Binding strength: 1 for `+ -`, 2 for `* /`.
    pub fn precedence(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div => 2,
        }
    }

    /// `a op b` in exact arithmetic; `None` on division by zero or overflow.
    pub fn apply(self, a: Rational, b: Rational) -> Option<Rational> {
        match self {
            Op::Add => a.checked_add(b),
            Op::Sub => a.checked_sub(b),
            Op::Mul => a.checked_mul(b),
            Op::Div => a.checked_div(b),
        }
    }
}

/// Why a string is not an expression of the Countdown grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The string holds no token at all.
    #[error("empty expression")]
    Empty,
    /// A character outside the grammar, or a token where none may stand.
    #[error("unexpected {found:?} at byte {pos}")]
    Unexpected {
        /// Byte offset of the offending character.
        pos: usize,
        /// The offending character.
        found: char,
    },
    /// The string ended where an operand or `)` was required.
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    /// A multi-digit literal starting with `0`.
    #[error("literal with a leading zero at byte {pos}")]
    LeadingZero {
        /// Byte offset of the literal.
        pos: usize,
    },
    /// Parentheses nested deeper than [`MAX_DEPTH`].
    #[error("parentheses nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Why a well-formed expression has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A division by a zero-valued operand.
    #[error("division by zero")]
    DivisionByZero,
    /// An intermediate value does not fit in an `i128` rational.
    #[error("arithmetic overflow")]
    Overflow,
    /// A literal larger than `u64::MAX`.
    #[error("literal too large")]
    LiteralTooLarge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    /// A literal; `None` when it exceeds `u64::MAX`.
    Lit(Option<u64>),
    Op(Op),
}

/// A parsed Countdown expression, stored flat in postfix (RPN) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    items: Vec<Item>,
}

impl Expr {
    /// Parses `text` with the grammar in the module docs.
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            items: Vec::new(),
        };
        parser.skip_spaces();
        if parser.pos == parser.bytes.len() {
            return Err(ParseError::Empty);
        }
        parser.expr()?;
        parser.skip_spaces();
        if parser.pos < parser.bytes.len() {
            return Err(parser.unexpected());
        }
        Ok(Expr {
            items: parser.items,
        })
    }

    /// The literals in order of appearance; `None` marks a literal larger
    /// than `u64::MAX`.
    pub fn literals(&self) -> impl Iterator<Item = Option<u64>> + '_ {
        self.items.iter().filter_map(|item| match item {
            Item::Lit(value) => Some(*value),
            Item::Op(_) => None,
        })
    }

    /// Whether the literals are exactly `nums` as a multiset.
    pub fn uses_exactly(&self, nums: &[u32]) -> bool {
        let mut given: Vec<u64> = nums.iter().map(|&n| u64::from(n)).collect();
        let mut used = Vec::with_capacity(given.len());
        for literal in self.literals() {
            match literal {
                Some(value) if used.len() < given.len() => used.push(value),
                _ => return false,
            }
        }
        given.sort_unstable();
        used.sort_unstable();
        given == used
    }

    /// The exact value of the expression.
    pub fn eval(&self) -> Result<Rational, EvalError> {
        let mut stack: Vec<Rational> = Vec::new();
        for item in &self.items {
            match *item {
                Item::Lit(None) => return Err(EvalError::LiteralTooLarge),
                Item::Lit(Some(v)) => stack.push(Rational::from(v)),
                Item::Op(op) => {
                    // The parser only emits well-formed postfix, so both pops
                    // succeed; stay panic-free regardless.
                    let (Some(b), Some(a)) = (stack.pop(), stack.pop()) else {
                        return Err(EvalError::Overflow);
                    };
                    if op == Op::Div && b.is_zero() {
                        return Err(EvalError::DivisionByZero);
                    }
                    stack.push(op.apply(a, b).ok_or(EvalError::Overflow)?);
                }
            }
        }
        stack.pop().ok_or(EvalError::Overflow)
    }
}

impl fmt::Display for Expr {
    /// Prints the expression with the fewest parentheses that keep its
    /// structure under left-associative `+ - * /` with the usual precedence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (text, precedence of its top operator; 3 for a literal)
        let mut stack: Vec<(String, u8)> = Vec::new();
        for item in &self.items {
            match *item {
                Item::Lit(Some(v)) => stack.push((v.to_string(), 3)),
                Item::Lit(None) => stack.push(("<huge>".to_string(), 3)),
                Item::Op(op) => {
                    let (Some(b), Some(a)) = (stack.pop(), stack.pop()) else {
                        return Err(fmt::Error);
                    };
                    stack.push((join(op, a, b), op.precedence()));
                }
            }
        }
        match stack.pop() {
            Some((text, _)) => f.write_str(&text),
            None => Err(fmt::Error),
        }
    }
}

/// `a op b` with parentheses only where needed.
pub(crate) fn join(op: Op, a: (String, u8), b: (String, u8)) -> String {
    let p = op.precedence();
    let left = if a.1 < p { format!("({})", a.0) } else { a.0 };
    let right_needs = b.1 < p || (b.1 == p && matches!(op, Op::Sub | Op::Div));
    let right = if right_needs {
        format!("({})", b.0)
    } else {
        b.0
    };
    format!("{left} {} {right}", op.symbol())
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    items: Vec<Item>,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.bytes.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.bytes.get(self.pos).copied()
    }

    fn unexpected(&self) -> ParseError {
        match self
            .text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            Some(found) => ParseError::Unexpected {
                pos: self.pos,
                found,
            },
            None => ParseError::UnexpectedEnd,
        }
    }

    fn expr(&mut self) -> Result<(), ParseError> {
        self.term()?;
        loop {
            let op = match self.peek() {
                Some(b'+') => Op::Add,
                Some(b'-') => Op::Sub,
                _ => return Ok(()),
            };
            self.pos += 1;
            self.term()?;
            self.items.push(Item::Op(op));
        }
    }

    fn term(&mut self) -> Result<(), ParseError> {
        self.factor()?;
        loop {
            let op = match self.peek() {
                Some(b'*') => Op::Mul,
                Some(b'/') => Op::Div,
                _ => return Ok(()),
            };
            self.pos += 1;
            self.factor()?;
            self.items.push(Item::Op(op));
        }
    }

    fn factor(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'(') => {
                if self.depth >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                self.depth += 1;
                self.pos += 1;
                self.expr()?;
                if self.peek() != Some(b')') {
                    return Err(self.unexpected());
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(())
            }
            Some(b'0'..=b'9') => self.literal(),
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let mut value: Option<u64> = Some(0);
        while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.pos) {
            value = value
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(d - b'0')));
            self.pos += 1;
        }
        if self.bytes[start] == b'0' && self.pos - start > 1 {
            return Err(ParseError::LeadingZero { pos: start });
        }
        self.items.push(Item::Lit(value));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_and_display() {
        let e = Expr::parse("(1 + 2) * 3 - 4 / (5 - 6)").unwrap();
        assert_eq!(e.to_string(), "(1 + 2) * 3 - 4 / (5 - 6)");
        assert_eq!(e.eval(), Ok(Rational::integer(13)));
        let e = Expr::parse("1 - (2 + 3)").unwrap();
        assert_eq!(e.to_string(), "1 - (2 + 3)");
        let e = Expr::parse("((1)) + (2 * 3)").unwrap();
        assert_eq!(e.to_string(), "1 + 2 * 3");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Expr::parse("   "), Err(ParseError::Empty));
        assert_eq!(Expr::parse("1 +"), Err(ParseError::UnexpectedEnd));
        assert_eq!(Expr::parse("07"), Err(ParseError::LeadingZero { pos: 0 }));
        assert_eq!(
            Expr::parse("-1"),
            Err(ParseError::Unexpected { pos: 0, found: '-' })
        );
        let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(Expr::parse(&deep), Err(ParseError::TooDeep));
        let ok = format!("{}1{}", "(".repeat(256), ")".repeat(256));
        assert!(Expr::parse(&ok).is_ok());
    }
}
