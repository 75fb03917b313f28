//! The math verifier (SPEC section 13): the last `\boxed{...}` against a
//! reference answer.
//!
//! **Extraction.** The prediction is the content of the last `\boxed{...}`
//! in the response whose braces balance (`\{` and `\}` are escaped braces
//! and do not count); a `\boxed{` left open, e.g. by a truncated response,
//! is ignored. The reference is, in order of preference, the text after the
//! last `####` (GSM8K's form), the content of its last balanced `\boxed{}`
//! (MATH's solutions), or the whole reference, trimmed.
//!
//! **Normalisation** ([`normalize`]), applied to both sides:
//! * `\left` and `\right` are dropped (`\left(` becomes `(`);
//! * `\dfrac` and `\tfrac` become `\frac`, and brace-less arguments are
//!   braced: `\frac34` and `\frac{3}{4}` read alike, as do `\sqrt2` and
//!   `\sqrt{2}`, `x^2` and `x^{2}` (one token, as in LaTeX: `x^23` is
//!   `x^{2}3`), `a_1` and `a_{1}`;
//! * `\text{...}`, `\textbf`, `\textrm`, `\textit`, `\mathrm`, `\mathbf` and
//!   `\mbox` are replaced by their contents;
//! * `\displaystyle` and the spacing commands `\,` `\;` `\:` `\!` `\ ` are
//!   dropped, then all whitespace;
//! * dollar signs (`$`, `\$`), percent signs (`%`, `\%`) and degree marks
//!   (`^\circ`, `^{\circ}`, `°`) are dropped, so `50\%` matches `50` (not
//!   `0.5`) and `\$1,000` matches `1000`;
//! * a trailing full stop is dropped.
//!
//! **Comparison.** If both normalised sides are numbers ([`parse_number`]),
//! they are compared exactly as rationals: integers, decimals with any number
//! of trailing zeros (`2.50` = `2.5`), thousands separators in groups of
//! three (`1,000`; `1,00` is not a number, so tuples like `1,2` are never
//! read as numbers), fractions `a/b` and `\frac{a}{b}`, each optionally with a
//! leading `-` or `+`. Otherwise the normalised strings must be equal.
//! There is no tolerance: `0.333` does not match `1/3`.
//!
//! Every pass is linear in the input and non-recursive, so hostile input
//! (megabytes, deep nesting) is safe.

use super::rational::Rational;

/// Commands replaced by their braced argument.
const UNWRAP: &[&str] = &[
    "text", "textbf", "textrm", "textit", "mathrm", "mathbf", "mbox",
];

/// Commands dropped outright.
const DROP: &[&str] = &["left", "right", "displaystyle"];

/// The content of the last `\boxed{...}` with balanced braces, if any.
pub fn extract_boxed(text: &str) -> Option<&str> {
    const BOXED: &[u8] = b"\\boxed{";
    let bytes = text.as_bytes();
    // Stack of open braces: `Some(content_start)` for a `\boxed{` brace.
    let mut stack: Vec<Option<usize>> = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes[i..].starts_with(BOXED) => {
                i += BOXED.len();
                stack.push(Some(i));
                continue;
            }
            b'\\' => {
                // Skip the escaped character (`\{`, `\}`, `\\`).
                i += 2;
                continue;
            }
            b'{' => stack.push(None),
            b'}' => {
                if let Some(Some(start)) = stack.pop() {
                    if best.is_none_or(|(s, _)| start > s) {
                        best = Some((start, i));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    best.map(|(s, e)| &text[s..e])
}

/// The answer part of a reference: after the last `####` if present, else
/// the last balanced `\boxed{}` content if present, else the whole text;
/// trimmed.
pub fn reference_answer(reference: &str) -> &str {
    if let Some(pos) = reference.rfind("####") {
        return reference[pos + 4..].trim();
    }
    if let Some(boxed) = extract_boxed(reference) {
        return boxed.trim();
    }
    reference.trim()
}

/// Whether a response's last boxed answer matches the reference.
///
/// A response without a balanced `\boxed{}` never matches.
pub fn verify(response: &str, reference: &str) -> bool {
    match extract_boxed(response) {
        Some(predicted) => answers_match(predicted, reference_answer(reference)),
        None => false,
    }
}

/// `1.0` if [`verify`] accepts the response, else `0.0`.
pub fn reward(response: &str, reference: &str) -> f32 {
    if verify(response, reference) {
        1.0
    } else {
        0.0
    }
}

/// Whether two bare answers (no `\boxed`, no `####`) are equivalent:
/// numerically if both normalise to numbers, else as normalised strings.
pub fn answers_match(predicted: &str, reference: &str) -> bool {
    let (p, r) = (normalize(predicted), normalize(reference));
    match (parse_number(&p), parse_number(&r)) {
        (Some(a), Some(b)) => a == b,
        _ => p == r,
    }
}

/// Normalises an answer string as described in the module docs.
pub fn normalize(answer: &str) -> String {
    let chars: Vec<char> = answer.chars().collect();
    let n = chars.len();

    // Matching close brace for every unescaped `{`, in one pass.
    let mut close = vec![usize::MAX; n];
    {
        let mut stack = Vec::new();
        let mut i = 0;
        while i < n {
            match chars[i] {
                '\\' => i += 1,
                '{' => stack.push(i),
                '}' => {
                    if let Some(open) = stack.pop() {
                        close[open] = i;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    // `drop_brace[i]`: the brace at `i` belongs to an unwrapped command.
    // `wrap_after[i]`: after copying the `}` at `i`, brace a bare argument.
    let mut drop_brace = vec![false; n];
    let mut wrap_after = vec![false; n];
    let mut out = String::with_capacity(answer.len());
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c == '\\' {
            let name_end = command_end(&chars, i + 1);
            if name_end == i + 1 {
                // `\` followed by a non-letter (or nothing).
                match chars.get(i + 1) {
                    Some(',' | ';' | ':' | '!' | ' ' | '%' | '$') => {}
                    Some(&other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                }
                i += 2;
                continue;
            }
            let name: String = chars[i + 1..name_end].iter().collect();
            i = name_end;
            match name.as_str() {
                name if DROP.contains(&name) => {}
                name if UNWRAP.contains(&name) => {
                    let j = skip_ws(&chars, i);
                    if chars.get(j) == Some(&'{') && close[j] != usize::MAX {
                        drop_brace[j] = true;
                        drop_brace[close[j]] = true;
                        i = j;
                    }
                }
                "frac" | "dfrac" | "tfrac" => {
                    out.push_str("\\frac");
                    i = skip_ws(&chars, i);
                    if chars.get(i) == Some(&'{') && close[i] != usize::MAX {
                        wrap_after[close[i]] = true;
                    } else {
                        i = push_bare_arg(&chars, i, &mut out);
                        i = skip_ws(&chars, i);
                        if chars.get(i) != Some(&'{') {
                            i = push_bare_arg(&chars, i, &mut out);
                        }
                    }
                }
                "sqrt" => {
                    out.push_str("\\sqrt");
                    i = skip_ws(&chars, i);
                    if !matches!(chars.get(i), Some('{' | '[')) {
                        i = push_bare_arg(&chars, i, &mut out);
                    }
                }
                _ => {
                    out.push('\\');
                    out.push_str(&name);
                }
            }
            continue;
        }
        if c == '^' || c == '_' {
            out.push(c);
            i = skip_ws(&chars, i + 1);
            if chars.get(i) != Some(&'{') {
                i = push_bare_arg(&chars, i, &mut out);
            }
            continue;
        }
        if (c == '{' || c == '}') && drop_brace[i] {
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
        if c == '}' && wrap_after[i - 1] {
            i = skip_ws(&chars, i);
            if chars.get(i) != Some(&'{') {
                i = push_bare_arg(&chars, i, &mut out);
            }
        }
    }

    let mut out: String = out
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '$' | '%' | '°'))
        .collect();
    out = out.replace("^{\\circ}", "");
    while out.ends_with('.') {
        out.pop();
    }
    out
}

/// End (exclusive) of the ASCII-letter command name starting at `start`.
fn command_end(chars: &[char], start: usize) -> usize {
    let mut j = start;
    while j < chars.len() && chars[j].is_ascii_alphabetic() {
        j += 1;
    }
    j
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Copies one bare argument token at `i` (a character or a `\command`) in
/// braces; returns the index after it.
fn push_bare_arg(chars: &[char], i: usize, out: &mut String) -> usize {
    let Some(&c) = chars.get(i) else {
        return i;
    };
    if c == '}' {
        return i;
    }
    out.push('{');
    let end = if c == '\\' {
        let end = command_end(chars, i + 1).max(i + 2).min(chars.len());
        out.extend(&chars[i..end]);
        end
    } else {
        out.push(c);
        i + 1
    };
    out.push('}');
    end
}

/// Reads a normalised answer as an exact number, if it is one: an optional
/// sign, then a decimal (`12`, `1,000`, `2.50`, `.5`), a fraction of two
/// decimals `a/b`, or `\frac{a}{b}`. `None` for anything else, including
/// values that overflow `i128` rationals.
pub fn parse_number(s: &str) -> Option<Rational> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let value = if let Some(rest) = body.strip_prefix("\\frac{") {
        let (num, rest) = rest.split_once("}{")?;
        let den = rest.strip_suffix('}')?;
        signed_decimal(num)?.checked_div(signed_decimal(den)?)?
    } else if let Some((num, den)) = body.split_once('/') {
        decimal(num)?.checked_div(decimal(den)?)?
    } else {
        decimal(body)?
    };
    if negative {
        value.checked_neg()
    } else {
        Some(value)
    }
}

fn signed_decimal(s: &str) -> Option<Rational> {
    match s.strip_prefix('-') {
        Some(rest) => decimal(rest)?.checked_neg(),
        None => decimal(s),
    }
}

/// An unsigned decimal: digits with optional thousands separators, then an
/// optional `.` and digits; at least one digit overall.
fn decimal(s: &str) -> Option<Rational> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (s, None),
    };
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return None;
    }
    let digits = strip_thousands(int)?;
    let mut num: i128 = 0;
    let mut scale: u32 = 0;
    for d in digits.bytes().chain(frac.unwrap_or("").bytes()) {
        if !d.is_ascii_digit() {
            return None;
        }
        num = num.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    if let Some(frac) = frac {
        scale = u32::try_from(frac.len()).ok()?;
    }
    Rational::integer(num).checked_div(Rational::pow10(scale)?)
}

/// The integer part with valid thousands separators removed; `None` if the
/// commas are misplaced.
fn strip_thousands(int: &str) -> Option<String> {
    if !int.contains(',') {
        return Some(int.to_string());
    }
    let mut groups = int.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 {
        return None;
    }
    let mut out = first.to_string();
    for group in groups {
        if group.len() != 3 {
            return None;
        }
        out.push_str(group);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_latex() {
        assert_eq!(normalize(r"\left( 1, 2 \right)"), "(1,2)");
        assert_eq!(normalize(r"\dfrac34"), r"\frac{3}{4}");
        assert_eq!(normalize(r"\frac{3}4"), r"\frac{3}{4}");
        assert_eq!(normalize(r"\tfrac{\pi}{2}"), r"\frac{\pi}{2}");
        assert_eq!(normalize(r"\frac\pi2"), r"\frac{\pi}{2}");
        assert_eq!(normalize(r"\text{ cm }"), "cm");
        assert_eq!(normalize(r"\text{\textbf{B}}"), "B");
        assert_eq!(normalize(r"90^\circ"), "90");
        assert_eq!(normalize(r"90^{\circ}"), "90");
        assert_eq!(normalize(r"\$5.00."), "5.00");
        assert_eq!(normalize(r"\sqrt2"), r"\sqrt{2}");
        assert_eq!(normalize(r"\leftarrow"), r"\leftarrow");
        assert_eq!(normalize(r"\{1,2\}"), r"\{1,2\}");
    }

    #[test]
    fn numbers() {
        let r = |n, d| Rational::new(n, d);
        assert_eq!(parse_number("1,000"), r(1000, 1));
        assert_eq!(parse_number("2.50"), r(5, 2));
        assert_eq!(parse_number(".5"), r(1, 2));
        assert_eq!(parse_number("-3/4"), r(-3, 4));
        assert_eq!(parse_number(r"\frac{3}{4}"), r(3, 4));
        assert_eq!(parse_number(r"-\frac{-3}{4}"), r(3, 4));
        assert_eq!(parse_number("1,00"), None);
        assert_eq!(parse_number("1/0"), None);
        assert_eq!(parse_number("."), None);
        assert_eq!(parse_number("1e5"), None);
        assert_eq!(parse_number(&"9".repeat(60)), None);
    }

    #[test]
    fn boxed() {
        assert_eq!(
            extract_boxed(r"\boxed{1} then \boxed{\frac{1}{2}}"),
            Some(r"\frac{1}{2}")
        );
        assert_eq!(extract_boxed(r"\boxed{7} \boxed{8"), Some("7"));
        assert_eq!(extract_boxed(r"\boxed{\{1\}}"), Some(r"\{1\}"));
        assert_eq!(extract_boxed("no box"), None);
    }
}
