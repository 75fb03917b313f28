//! The multiple-choice verifier (SPEC section 13): the chosen letter against
//! the key.
//!
//! A response's choice is the letter of the **last** (by position) of these
//! forms:
//!
//! * `\boxed{X}`, where the box holds one letter, optionally wrapped in
//!   parentheses or `\text{...}` and spaces (`\boxed{(B)}`,
//!   `\boxed{\text{B}}`); here a lowercase letter is accepted too;
//! * `answer is X`, `answer is (X)`, `answer is: X`;
//! * `answer: X`, `answer: (X)`;
//!
//! where "answer" is matched case-insensitively, spaces may separate the
//! parts, `X` is an uppercase ASCII letter `A`-`Z`, and the letter must not
//! be followed by another letter or digit (so "the answer is Apple" names no
//! choice). Lowercase letters are not accepted outside `\boxed{}`, because
//! "the answer is a ..." is ordinary English. Markdown bold around the
//! letter (`answer is **C**`) is tolerated.
//!
//! The key may be given as `B`, `b`, `(B)` or ` B ` ([`parse_key`]).

/// The chosen letter (uppercase), if the response names one.
pub fn extract_choice(response: &str) -> Option<char> {
    let bytes = response.as_bytes();
    let mut best: Option<(usize, char)> = None;
    let mut consider = |pos: usize, letter: char| {
        if best.is_none_or(|(p, _)| pos >= p) {
            best = Some((pos, letter));
        }
    };

    // `\boxed{...}` forms.
    let mut from = 0;
    while let Some(found) = response[from..].find("\\boxed{") {
        let pos = from + found;
        let start = pos + "\\boxed{".len();
        from = start;
        // A one-letter box is short: look for its closing brace nearby.
        let Some(end) = matching_brace(&bytes[start..], 64).map(|e| start + e) else {
            continue;
        };
        let inner = &response[start..end];
        if let Some(letter) = boxed_letter(inner) {
            consider(pos, letter);
        }
    }

    // `answer is X` / `answer: X` forms.
    let lower = response.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("answer") {
        let pos = from + found;
        from = pos + "answer".len();
        if let Some(letter) = letter_after_answer(bytes, from) {
            consider(pos, letter);
        }
    }

    best.map(|(_, letter)| letter)
}

/// The letter in a box's content such as `B`, ` (b) `, `\text{B}`.
fn boxed_letter(inner: &str) -> Option<char> {
    let mut s = inner.trim();
    if let Some(rest) = s.strip_prefix("\\text{").and_then(|r| r.strip_suffix('}')) {
        s = rest.trim();
    }
    if let Some(rest) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        s = rest.trim();
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Some(c.to_ascii_uppercase()),
        _ => None,
    }
}

/// The offset of the `}` closing an already opened brace within the first
/// `limit` bytes of `bytes`.
fn matching_brace(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 1usize;
    for (i, &b) in bytes.iter().enumerate().take(limit) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// After "answer" at byte `i`: `\s*(is\s*:?|:)\s*` then the letter form.
fn letter_after_answer(bytes: &[u8], mut i: usize) -> Option<char> {
    let skip_spaces = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    i = skip_spaces(i);
    if bytes.get(i) == Some(&b':') {
        i += 1;
    } else if bytes
        .get(i..i + 2)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"is"))
    {
        i += 2;
        if bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
            return None; // "answer isn't", "answer issues"
        }
        i = skip_spaces(i);
        if bytes.get(i) == Some(&b':') {
            i += 1;
        }
    } else {
        return None;
    }
    i = skip_spaces(i);
    let bold = bytes.get(i..i + 2) == Some(b"**");
    if bold {
        i += 2;
    }
    let paren = bytes.get(i) == Some(&b'(');
    if paren {
        i += 1;
    }
    let letter = *bytes.get(i)?;
    if !letter.is_ascii_uppercase() {
        return None;
    }
    i += 1;
    if paren {
        if bytes.get(i) != Some(&b')') {
            return None;
        }
        i += 1;
    }
    if bold && bytes.get(i..i + 2) == Some(b"**") {
        i += 2;
    }
    if bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(char::from(letter))
}

/// The key's letter (uppercase) from `B`, `b`, `(B)` and the like.
pub fn parse_key(key: &str) -> Option<char> {
    boxed_letter(key)
}

/// Whether the response's chosen letter equals the key's.
///
/// A key that is not a single letter never matches.
pub fn verify(response: &str, key: &str) -> bool {
    match (extract_choice(response), parse_key(key)) {
        (Some(chosen), Some(key)) => chosen == key,
        _ => false,
    }
}

/// `1.0` if [`verify`] accepts the response, else `0.0`.
pub fn reward(response: &str, key: &str) -> f32 {
    if verify(response, key) {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(extract_choice(r"so \boxed{C}"), Some('C'));
        assert_eq!(extract_choice(r"\boxed{\text{D}}"), Some('D'));
        assert_eq!(extract_choice(r"\boxed{(b)}"), Some('B'));
        assert_eq!(extract_choice("The answer is (E)."), Some('E'));
        assert_eq!(extract_choice("ANSWER: A"), Some('A'));
        assert_eq!(extract_choice("the answer is: **F**"), Some('F'));
        assert_eq!(extract_choice("the answer is a cat"), None);
        assert_eq!(extract_choice("the answer is Apple"), None);
        assert_eq!(extract_choice(r"answer: A ... \boxed{B}"), Some('B'));
        assert_eq!(extract_choice(r"\boxed{B} ... the answer is C"), Some('C'));
        assert_eq!(extract_choice(r"\boxed{42}"), None);
    }
}
