//! Table tests for the Countdown, math and multiple-choice verifiers,
//! including hostile input.

use proptest::prelude::*;
use rhythm_rl::verify::countdown::{
    self, check_expression, extract_answer, reward, EvalError, Outcome,
};
use rhythm_rl::verify::{choice, math};

const NUMS: [u32; 4] = [19, 36, 55, 7];
const TARGET: u32 = 65;

fn tagged(expr: &str) -> String {
    format!("<think>working</think>\n<answer>{expr}</answer>")
}

#[test]
fn countdown_table() {
    use Outcome::*;
    let cases: &[(&str, Outcome)] = &[
        // Right answers, in several layouts.
        ("55 + 36 - 7 - 19", Correct),
        ("(55 + 36) - (7 + 19)", Correct),
        ("55+36-7-19", Correct),
        ("  55 +   36 - 7 -19  ", Correct),
        ("((55 + 36) - (7 + 19))", Correct),
        ("36 - 19 + 55 - 7", Correct),
        // Wrong value.
        ("55 + 36 + 7 + 19", WrongValue),
        ("55 * 36 / 7 - 19", WrongValue),
        // Wrong numbers: one used twice, one missing, a foreign one, extra.
        ("55 + 55 - 19 - 7 - 19", WrongNumbers),
        ("55 + 36 - 26", WrongNumbers),
        ("55 + 10", WrongNumbers),
        ("55 + 36 - 7 - 19 + 0", WrongNumbers),
        ("55 + 36 - 7 - 19 - 1 + 1", WrongNumbers),
        // Malformed: outside the grammar.
        ("", Malformed),
        ("   ", Malformed),
        ("-19 + 55 + 36 - 7", Malformed),
        ("+55 + 36 - 7 - 19", Malformed),
        ("55 + 36 - 7 - 19 = 65", Malformed),
        ("55 + 36 - 7 - 19.0", Malformed),
        ("55 + 36 - 07 - 19", Malformed),
        ("55 + 36 - 7 - 19)", Malformed),
        ("(55 + 36 - 7 - 19", Malformed),
        ("55 + 36 - 7 -- 19", Malformed),
        ("55 36", Malformed),
        ("55 x 36", Malformed),
        ("55 ** 36", Malformed),
        ("()", Malformed),
        ("55 + 36 - 7 - 19\n", Malformed),
        ("\t55 + 36 - 7 - 19", Malformed),
        ("55 + 36 \u{2212} 7 - 19", Malformed), // Unicode minus sign
        ("\u{0665}5 + 36 - 7 - 19", Malformed), // Arabic-Indic digit
        ("５5 + 36 - 7 - 19", Malformed),       // full-width digit
        ("55 + 36 - 7 - 19\u{00a0}", Malformed), // no-break space
        ("55 + 36 - 7 - 19 <answer>", Malformed),
    ];
    for (expr, expected) in cases {
        let got = countdown::verify(&tagged(expr), &NUMS, TARGET);
        assert_eq!(got, *expected, "expression {expr:?}");
        assert_eq!(
            check_expression(expr, &NUMS, TARGET),
            *expected,
            "bare {expr:?}"
        );
    }
}

#[test]
fn division_is_exact_and_by_zero_is_wrong() {
    // 8 / 3 * 3 = 8 exactly.
    assert_eq!(
        check_expression("8 / 3 * 3", &[8, 3, 3], 8),
        Outcome::Correct
    );
    // (1/3 + 1/3 + 1/3) exact sum.
    assert_eq!(
        check_expression("1 / 3 + 1 / 3 + 1 / 3", &[1, 1, 1, 3, 3, 3], 1),
        Outcome::Correct
    );
    // Integer division would give 2; exact gives 5/2.
    assert_eq!(check_expression("5 / 2", &[5, 2], 2), Outcome::WrongValue);
    assert_eq!(
        check_expression("5 / (2 - 2)", &[5, 2, 2], 0),
        Outcome::WrongValue
    );
    assert_eq!(
        check_expression("(3 - 3) / (2 - 2)", &[3, 3, 2, 2], 0),
        Outcome::WrongValue
    );
    assert_eq!(check_expression("0 / 5", &[0, 5], 0), Outcome::Correct);
    assert_eq!(check_expression("0", &[0], 0), Outcome::Correct);
}

#[test]
fn huge_numbers_never_panic() {
    let huge = "9".repeat(10_000);
    assert_eq!(
        check_expression(&format!("{huge} + 1"), &[1, 9], 10),
        Outcome::WrongNumbers
    );
    assert_eq!(
        check_expression("18446744073709551616", &[0], 0),
        Outcome::WrongNumbers
    );
    // Literal values beyond the given u32 numbers.
    assert_eq!(
        check_expression("4294967296", &[0], 0),
        Outcome::WrongNumbers
    );
    // Overflowing arithmetic with legitimately given numbers.
    let big = u32::MAX;
    let nums = vec![big; 6];
    let product = vec![big.to_string(); 6].join(" * ");
    assert_eq!(check_expression(&product, &nums, 1), Outcome::WrongValue);
    let quotient = format!("1 / ({product})");
    let mut with_one = nums.clone();
    with_one.push(1);
    assert_eq!(
        check_expression(&quotient, &with_one, 0),
        Outcome::WrongValue
    );
}

#[test]
fn deep_nesting_is_malformed_not_a_crash() {
    for depth in [257, 1_000, 100_000, 1_000_000] {
        let expr = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(
            check_expression(&expr, &[1], 1),
            Outcome::Malformed,
            "depth {depth}"
        );
        let open_only = "(".repeat(depth);
        assert_eq!(check_expression(&open_only, &[1], 1), Outcome::Malformed);
    }
    let ok = format!("{}1{}", "(".repeat(256), ")".repeat(256));
    assert_eq!(check_expression(&ok, &[1], 1), Outcome::Correct);
}

#[test]
fn very_long_inputs() {
    // A one-megabyte chain is well-formed but uses the wrong numbers.
    let chain = vec!["1"; 500_000].join("+");
    assert!(chain.len() > 999_000);
    assert_eq!(check_expression(&chain, &[1, 1], 2), Outcome::WrongNumbers);
    assert_eq!(
        countdown::verify(&tagged(&chain), &[1, 1], 2),
        Outcome::WrongNumbers
    );
    // A megabyte of junk, of spaces, of tags.
    let junk = "x".repeat(1 << 20);
    assert_eq!(countdown::verify(&junk, &NUMS, TARGET), Outcome::NoAnswer);
    assert_eq!(
        countdown::verify(&tagged(&junk), &NUMS, TARGET),
        Outcome::Malformed
    );
    let spaces = " ".repeat(1 << 20);
    assert_eq!(
        countdown::verify(&tagged(&spaces), &NUMS, TARGET),
        Outcome::Malformed
    );
    let tags = "<answer>".repeat(1 << 17);
    assert_eq!(countdown::verify(&tags, &NUMS, TARGET), Outcome::NoAnswer);
    let pairs = "<answer>1</answer>".repeat(1 << 16);
    assert_eq!(countdown::verify(&pairs, &[1], 1), Outcome::Correct);
}

#[test]
fn answer_tags() {
    use Outcome::*;
    let right = "55 + 36 - 7 - 19";
    let wrong = "55 + 36 + 7 + 19";
    let cases: Vec<(String, Outcome)> = vec![
        ("no tags at all".into(), NoAnswer),
        ("<answer>55 + 36 - 7 - 19".into(), NoAnswer),
        ("55 + 36 - 7 - 19</answer>".into(), NoAnswer),
        ("<ANSWER>55 + 36 - 7 - 19</ANSWER>".into(), NoAnswer),
        ("<answer></answer>".into(), Malformed),
        // Last answer wins, both ways round.
        (
            format!("<answer>{wrong}</answer> <answer>{right}</answer>"),
            Correct,
        ),
        (
            format!("<answer>{right}</answer> <answer>{wrong}</answer>"),
            WrongValue,
        ),
        (
            format!("<answer>{right}</answer> <answer>oops</answer>"),
            Malformed,
        ),
        // A trailing unclosed tag does not replace a complete answer.
        (format!("<answer>{right}</answer> <answer>{wrong}"), Correct),
        // Nested tags: the opening tag pairs with the first closing tag.
        (
            format!("<answer><answer>{right}</answer></answer>"),
            Malformed,
        ),
        (format!("<answer>{right}</answer></answer>"), Correct),
        // The example in the prompt does not count if an answer follows.
        (
            format!("for example <answer> (1 + 2) / 3 </answer> ... <answer> {right} </answer>"),
            Correct,
        ),
    ];
    for (response, expected) in cases {
        assert_eq!(
            countdown::verify(&response, &NUMS, TARGET),
            expected,
            "{response:?}"
        );
    }
    assert_eq!(
        extract_answer("<answer> a </answer><answer> b </answer>"),
        Some(" b ")
    );
}

#[test]
fn rewards() {
    for (outcome, with_zero, with_tenth) in [
        (Outcome::Correct, 1.0, 1.0),
        (Outcome::WrongValue, 0.0, 0.1),
        (Outcome::WrongNumbers, 0.0, 0.1),
        (Outcome::Malformed, 0.0, 0.0),
        (Outcome::NoAnswer, 0.0, 0.0),
    ] {
        assert_eq!(reward(outcome, countdown::DEFAULT_FORMAT_SCORE), with_zero);
        assert_eq!(reward(outcome, 0.1), with_tenth);
        assert_eq!(outcome.is_well_formed(), with_tenth > 0.0);
    }
}

#[test]
fn math_table() {
    let cases: &[(&str, &str, bool)] = &[
        // Integers, GSM8K references.
        (
            r"so \boxed{72}",
            "Natalia sold 48/2 = 24 clips.\n#### 72",
            true,
        ),
        (r"\boxed{72}", "#### 72", true),
        (r"\boxed{71}", "#### 72", false),
        (r"\boxed{1,000}", "#### 1000", true),
        (r"\boxed{1000}", "#### 1,000", true),
        (r"\boxed{1,00}", "#### 100", false),
        (r"\boxed{\$18}", "#### 18", true),
        (r"\boxed{18 \text{ dollars}}", "#### 18", false),
        (r"\boxed{-5}", "#### -5", true),
        // Decimals and trailing zeros.
        (r"\boxed{2.50}", "2.5", true),
        (r"\boxed{2.5}", "2.500", true),
        (r"\boxed{3.0}", "3", true),
        (r"\boxed{0.5}", ".5", true),
        (r"\boxed{0.33}", r"\frac{1}{3}", false),
        // Fractions.
        (r"\boxed{\frac{3}{4}}", "0.75", true),
        (r"\boxed{\dfrac{3}{4}}", "3/4", true),
        (r"\boxed{\dfrac34}", r"\frac{3}{4}", true),
        (r"\boxed{\tfrac{6}{8}}", "3/4", true),
        (r"\boxed{-\frac{1}{2}}", "-0.5", true),
        (r"\boxed{\frac{1}{2}}", "-0.5", false),
        // Percent and degrees.
        (r"\boxed{50\%}", "50", true),
        (r"\boxed{90^\circ}", "90", true),
        // Symbolic answers: normalised string comparison.
        (
            r"\boxed{\left( 3, \frac{\pi}{2} \right)}",
            r"(3,\frac{\pi}{2})",
            true,
        ),
        (
            r"\boxed{\left( 3, \dfrac\pi2 \right)}",
            r"\left(3, \frac{\pi}{2}\right)",
            true,
        ),
        (r"\boxed{\text{Evelyn}}", "Evelyn", true),
        (r"\boxed{\textbf{(C)}}", "(C)", true),
        (r"\boxed{x^2 + 1}", "x^{2}+1", true),
        (r"\boxed{x^23}", "x^{23}", false),
        (r"\boxed{\sqrt2}", r"\sqrt{2}", true),
        (r"\boxed{(1,2)}", "(2,1)", false),
        // Reference given as a MATH solution with a box.
        (r"\boxed{5}", r"Hence the answer is $\boxed{5}$.", true),
        // Last box wins; unbalanced last box is ignored.
        (r"\boxed{3} no wait \boxed{4}", "4", true),
        (r"\boxed{4} no wait \boxed{3}", "4", false),
        (r"\boxed{4} and then \boxed{3", "4", true),
        (r"\boxed{\frac{1}{2}}", r"\frac12", true),
        // No box: never right.
        ("The answer is 72.", "#### 72", false),
        (r"\boxed{}", "#### 72", false),
    ];
    for (response, reference, expected) in cases {
        assert_eq!(
            math::verify(response, reference),
            *expected,
            "{response:?} vs {reference:?}"
        );
        assert_eq!(
            math::reward(response, reference),
            if *expected { 1.0 } else { 0.0 }
        );
    }
}

#[test]
fn math_hostile_input() {
    let deep = format!("\\boxed{{{}1{}}}", "{".repeat(1 << 19), "}".repeat(1 << 19));
    assert!(!math::verify(&deep, "1"));
    let unclosed = "\\boxed{".repeat(1 << 17);
    assert_eq!(math::extract_boxed(&unclosed), None);
    let texts = format!(
        "\\boxed{{{}7{}}}",
        "\\text{".repeat(1 << 16),
        "}".repeat(1 << 16)
    );
    assert!(math::verify(&texts, "7"));
    let fracs = "\\frac".repeat(1 << 16);
    let _ = math::normalize(&fracs);
    let digits = format!("\\boxed{{{}}}", "9".repeat(1 << 20));
    assert!(!math::verify(&digits, "9"));
    let _ = math::normalize("\\");
    let _ = math::normalize("\\frac{");
    let _ = math::normalize("}{\\left");
}

#[test]
fn choice_table() {
    let cases: &[(&str, &str, bool)] = &[
        (r"Thus \boxed{B}.", "B", true),
        (r"Thus \boxed{B}.", "(B)", true),
        (r"Thus \boxed{b}.", "B", true),
        (r"Thus \boxed{\text{B}}.", "b", true),
        (r"Thus \boxed{(B)}.", "B", true),
        (r"Thus \boxed{C}.", "B", false),
        ("The answer is (D).", "D", true),
        ("the answer is D", "D", true),
        ("The correct answer is: D.", "D", true),
        ("Answer: A", "A", true),
        ("ANSWER: (A)", "A", true),
        ("answer:A", "A", true),
        ("The answer is **C**.", "C", true),
        // Last occurrence wins across forms.
        (r"answer: A. Hmm, actually the answer is (C)", "C", true),
        (r"answer: A. Hmm, actually the answer is (C)", "A", false),
        (r"\boxed{A} ... final answer: B", "B", true),
        (r"The answer is B ... \boxed{E}", "E", true),
        // Not a choice.
        ("The answer is a tricky one", "A", false),
        ("The answer is Apple", "A", false),
        ("The answer isn't B", "B", false),
        (r"\boxed{AB}", "A", false),
        ("I think B", "B", false),
        ("", "A", false),
        // Invalid key.
        (r"\boxed{B}", "BB", false),
        (r"\boxed{B}", "", false),
    ];
    for (response, key, expected) in cases {
        assert_eq!(
            choice::verify(response, key),
            *expected,
            "{response:?} key {key:?}"
        );
    }
    assert_eq!(choice::extract_choice("the answer is (c)"), None);
    let long = "answer is ".repeat(1 << 16) + "F";
    assert_eq!(choice::extract_choice(&long), Some('F'));
    let boxes = "\\boxed{".repeat(1 << 17);
    assert_eq!(choice::extract_choice(&boxes), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn countdown_never_panics(s in ".{0,200}") {
        let _ = check_expression(&s, &NUMS, TARGET);
        let _ = countdown::verify(&format!("<answer>{s}</answer>"), &NUMS, TARGET);
    }

    #[test]
    fn countdown_grammar_fuzz(s in "[0-9()+*/ -]{0,60}") {
        let outcome = check_expression(&s, &[1, 2, 3], 6);
        // Whatever parses must also round-trip through the printer.
        if let Ok(expr) = countdown::Expr::parse(&s) {
            prop_assert!(outcome != Outcome::Malformed);
            let printed = expr.to_string();
            let reparsed = countdown::Expr::parse(&printed).unwrap();
            // Re-association may move where an overflow happens, nothing else.
            match (reparsed.eval(), expr.eval()) {
                (Err(EvalError::Overflow), _) | (_, Err(EvalError::Overflow)) => {}
                (a, b) => prop_assert_eq!(a, b),
            }
        } else {
            prop_assert_eq!(outcome, Outcome::Malformed);
        }
    }

    #[test]
    fn math_and_choice_never_panic(s in ".{0,200}", r in ".{0,40}") {
        let _ = math::verify(&s, &r);
        let _ = math::normalize(&s);
        let _ = choice::verify(&s, &r);
    }

    #[test]
    fn latex_fuzz_never_panics(s in r"[\\{}a-z0-9 ,./$%^-]{0,80}") {
        let _ = math::verify(&format!("\\boxed{{{s}}}"), &s);
        let _ = choice::extract_choice(&s);
    }
}
