//! The literal module against CPython itself: syntax, repr, equality, hostile input, CRUXEval.

use super::repr::is_printable;
use super::*;

fn parse(text: &str) -> PyValue {
    parse_literal(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn repr_of(text: &str) -> String {
    py_repr(&parse(text))
}

/// Runs `python3 -W ignore -c script` with `input` on stdin and returns its stdout.
fn python(script: &str, input: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-W", "ignore", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required by these tests");
    // Python reads all of stdin before writing, so writing first cannot deadlock.
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 from python3")
}

/// Texts `parse_literal` accepts, with the repr CPython gives them.
const ACCEPTED: &[(&str, &str)] = &[
    ("None", "None"),
    ("True", "True"),
    ("(False)", "False"),
    ("000", "0"),
    ("0_0", "0"),
    ("1_000", "1000"),
    ("0x_1f", "31"),
    ("0XfF", "255"),
    ("0o17", "15"),
    ("0B101", "5"),
    (
        "-123456789012345678901234567890",
        "-123456789012345678901234567890",
    ),
    ("1.", "1.0"),
    (".5", "0.5"),
    ("1e10", "10000000000.0"),
    ("1E-3", "0.001"),
    ("1_0.5", "10.5"),
    ("1e5_0", "1e+50"),
    ("1.e5", "100000.0"),
    ("007.5", "7.5"),
    ("1e400", "inf"),
    ("-1e400", "-inf"),
    ("2j", "2j"),
    ("1.5J", "1.5j"),
    ("1e3j", "1000j"),
    ("007j", "7j"),
    ("-3j", "(-0-3j)"),
    ("+1j", "1j"),
    ("-(1)", "-1"),
    ("- 0.0", "-0.0"),
    ("1+2j", "(1+2j)"),
    ("1 - 2j", "(1-2j)"),
    ("-1-2j", "(-1-2j)"),
    ("(1)+2j", "(1+2j)"),
    ("1-0j", "(1+0j)"),
    ("-0.0+1j", "1j"),
    ("-0.0-1j", "(-0-1j)"),
    ("1e400-1e400j", "(inf-infj)"),
    ("'a'", "'a'"),
    ("\"it's\"", "\"it's\""),
    ("'''tri\nple'''", "'tri\\nple'"),
    ("r'\\d+\\''", "\"\\\\d+\\\\'\""),
    ("u'x' \"y\"", "'xy'"),
    (
        "'\\n\\t\\\\\\'\\\"\\x41\\u00e9\\U0001F600\\101\\0'",
        "'\\n\\t\\\\\\'\"Aé😀A\\x00'",
    ),
    ("'a\\\nb'", "'ab'"),
    ("'\\q'", "'\\\\q'"),
    ("b'\\N'", "b'\\\\N'"),
    ("'\\777'", "'ǿ'"),
    ("b'\\x00\\xff\\u1234\\777'", "b'\\x00\\xff\\\\u1234\\xff'"),
    ("Rb'\\n' BR\"x\"", "b'\\\\nx'"),
    ("[]", "[]"),
    ("[1, [2, (3,)],]", "[1, [2, (3,)]]"),
    ("()", "()"),
    ("(1,)", "(1,)"),
    ("((1))", "1"),
    ("1, 2", "(1, 2)"),
    ("1,", "(1,)"),
    ("{}", "{}"),
    ("{1: 'a', 'b': [2],}", "{1: 'a', 'b': [2]}"),
    ("{1, 2,}", "{1, 2}"),
    ("set()", "set()"),
    ("set ( )", "set()"),
    ("{(1, 'a'): None}", "{(1, 'a'): None}"),
    ("[1, # comment\n 2\n]", "[1, 2]"),
    ("['a'\n 'b']", "['ab']"),
    ("  \t[1]  \n\n# trailing comment\n", "[1]"),
    ("\n# leading\n\x0c1", "1"),
    ("1 \\\n+ 2j", "(1+2j)"),
    ("[1,\r\n2]", "[1, 2]"),
    ("'''a\r\nb'''", "'a\\nb'"),
];

#[test]
fn accepts_literal_syntax() {
    for (text, want) in ACCEPTED {
        assert_eq!(repr_of(text), *want, "repr of {text:?}");
    }
}

/// Texts `parse_literal` must reject. All but [`DIVERGENT`] are rejected by CPython too.
    #[rustfmt::skip]
    const REJECTED: &[&str] = &[
        "", " ", "# only a comment", "x", "nan", "inf", "...", "Ellipsis", "frozenset()", "set([])",
        "set(1)", "print(1)", "1 + 2", "1j + 2j", "1 + 2j + 3j", "1 + -2j", "--1", "-(-1)", "-'a'",
        "+True", "True + 1j", "-(1,)", "1 if 1 else 2", "lambda: 1", "a.b", "[1][0]", "1 2",
        "(1 2)", "[,]", "(,)", "{,}", ",", "1,,", "{1: 2, 3}", "{1, 2: 3}", "{**{}}", "[*[]]",
        "1; 2", "007", "0_7", "09", "1__0", "1_", "1_.5", "1._5", "1e", "1e+", "1e-5_", "0x",
        "0b102", "0o8", "0x_", "1jx", "1a", "f'x'", "rf'x'", "ur'x'", "b'é'", "'a' b'b'", "'abc",
        "'''abc", "'a\nb'", "r'a\\'", "'\\x4'", "'\\u12'", "'\\U00110000'", "'\\ud800'",
        "'\\N{BULLET}'", "'\\N'", "'a'\n'b'", "1 +\n2j", "1\n2", "\n 1", "\\\n 1", "\x0c 1",
        "[1]\n  [2]", "(1", "[1", "{1", ")", "]", "}", "[)", "\u{feff}1", "1\0", "é", "\\",
        "1 \\ 2", "None = 1", "1 == 1", "-1e400j + 1", "{[1]}", "{(1, [2]): 3}", "{{}: 1}",
        "{set(): 1}", "[1 for x in y]",
    ];

/// What CPython's `ast.literal_eval` accepts but we deliberately do not (see the module docs).
const DIVERGENT: &[&str] = &["...", "'\\ud800'", "'\\N{BULLET}'"];

#[test]
fn rejects_non_literals() {
    for text in REJECTED {
        assert!(parse_literal(text).is_err(), "{text:?} should be rejected");
    }
    let huge = format!("1{}+1j", "0".repeat(400));
    let err = parse_literal(&huge).unwrap_err();
    assert!(err.0.contains("too large to convert to float"), "{err}");
}

#[test]
fn errors_carry_offsets() {
    let err = parse_literal("[1, 2, x]").unwrap_err();
    assert_eq!(err.0, "at byte 7: name 'x' is not a literal");
    assert!(parse_literal("{[1]: 2}")
        .unwrap_err()
        .0
        .contains("unhashable type: 'list'"));
    assert!(parse_literal("{(1, {}): 2}")
        .unwrap_err()
        .0
        .contains("unhashable type: 'dict'"));
}

#[test]
fn integer_size_limits() {
    let ok = format!("1{}", "0".repeat(4299));
    assert_eq!(repr_of(&ok), ok);
    assert!(parse_literal(&format!("1{}", "0".repeat(4300))).is_err());
    // Underscores do not count, as in CPython.
    assert!(parse_literal(&format!("{}1", "1_".repeat(4299))).is_ok());
    // Hex literals are cut where their decimal repr would pass 4300 digits.
    let ten = BigUint::from(10u32).pow(4300);
    assert!(parse_literal(&format!("0x{:x}", &ten - 1u32)).is_ok());
    assert!(parse_literal(&format!("0x{ten:x}")).is_err());
    // Long float literals are fine: they round like CPython's.
    assert_eq!(repr_of(&format!("{}.0", "9".repeat(5000))), "inf");
    assert_eq!(repr_of(&format!("0.{}1", "0".repeat(5000))), "0.0");
    assert_eq!(repr_of(&format!("{}j", "1".repeat(5000))), "infj");
}

#[test]
fn deduplicates_like_python() {
    assert_eq!(repr_of("{1: 'a', 1.0: 'b', True: 'c'}"), "{1: 'c'}");
    assert_eq!(repr_of("{1, 1.0, True}"), "{1}");
    assert_eq!(repr_of("{1.0, 1}"), "{1.0}");
    assert_eq!(repr_of("{0: 1, -0.0: 2, 0j: 3, False: 4}"), "{0: 4}");
    assert_eq!(repr_of("{(1, 2): 'a', (1.0, 2+0j): 'b'}"), "{(1, 2): 'b'}");
    assert_eq!(repr_of("{'a', b'a', 'a'}"), "{'a', b'a'}");
}

#[test]
fn equality_table() {
    let big = "9007199254740993";
    let cases: &[(&str, &str, bool)] = &[
        ("True", "1", true),
        ("1", "1.0", true),
        ("1.0", "1+0j", true),
        ("True", "1+0j", true),
        ("False", "0.0", true),
        ("False", "None", false),
        ("0.0", "-0.0", true),
        ("0j", "-0.0", true),
        ("2", "2.5", false),
        (big, "9007199254740992.0", false),
        (big, "9007199254740993.0", false), // the float literal rounds to ...992
        ("9007199254740992", "9007199254740992.0", true),
        ("10**400", "1e400", false),
        ("1e400", "1e400", true),
        ("1e400", "-1e400", false),
        ("1+2j", "1.0+2.0j", true),
        ("1+2j", "1", false),
        ("2j", "2j", true),
        ("'a'", "'a'", true),
        ("'a'", "b'a'", false),
        ("b''", "b''", true),
        ("''", "[]", false),
        ("[1, 2]", "[1.0, 2+0j]", true),
        ("[1, 2]", "(1, 2)", false),
        ("[1, 2]", "[2, 1]", false),
        ("[1]", "[1, 1]", false),
        ("(1, [2])", "(True, [2.0])", true),
        ("()", "[]", false),
        ("{1: 'a', 2: 'b'}", "{2: 'b', 1.0: 'a'}", true),
        ("{1: 'a'}", "{1: 'b'}", false),
        ("{1: 'a'}", "{2: 'a'}", false),
        ("{1: [1]}", "{True: [1.0]}", true),
        ("{}", "set()", false),
        ("{1, 2, 3}", "{3, 2, 1.0}", true),
        ("{1, 2}", "{1, 3}", false),
        ("{(1, 2)}", "{(1.0, 2)}", true),
        ("None", "None", true),
        ("None", "0", false),
        ("[[[]]]", "[[[]]]", true),
    ];
    for (a, b, want) in cases {
        // `10**400` is not a literal: spell it out.
        let expand = |t: &str| t.replace("10**400", &format!("1{}", "0".repeat(400)));
        let (x, y) = (parse(&expand(a)), parse(&expand(b)));
        assert_eq!(py_eq(&x, &y), *want, "{a} == {b}");
        assert_eq!(py_eq(&y, &x), *want, "{b} == {a}");
    }
    // Values the parser cannot produce.
    let nan = PyValue::Float(f64::NAN);
    assert!(!py_eq(&nan, &nan));
    assert!(!py_eq(&PyValue::Complex(f64::NAN, 0.0), &nan));
    let set = PyValue::Set(vec![PyValue::Int(1.into()), PyValue::Str("a".into())]);
    let frozen = PyValue::FrozenSet(vec![PyValue::Str("a".into()), PyValue::Float(1.0)]);
    assert!(py_eq(&set, &frozen));
    let inner = PyValue::FrozenSet(vec![PyValue::Int(1.into())]);
    let with_frozen = PyValue::Set(vec![inner.clone(), PyValue::Tuple(vec![inner])]);
    let with_frozen_float = parse("{(1.0,), 2}");
    assert!(!py_eq(&with_frozen, &with_frozen_float));
    assert!(py_eq(&with_frozen, &with_frozen.clone()));
}

#[test]
fn big_containers_compare_through_the_hash_index() {
    let n = 20_000;
    let forward: Vec<String> = (0..n).map(|i| format!("({i}, '{i}')")).collect();
    let backward: Vec<String> = (0..n).rev().map(|i| format!("({i}.0, '{i}')")).collect();
    let a = parse(&format!("{{{}}}", forward.join(", ")));
    let b = parse(&format!("{{{}}}", backward.join(", ")));
    assert!(py_eq(&a, &b));
    let c = parse(&format!("{{{}, (-1, '')}}", backward[1..].join(", ")));
    assert!(!py_eq(&a, &c));
    let d1 = parse(&format!(
        "{{{}}}",
        (0..n)
            .map(|i| format!("{i}: {i}"))
            .collect::<Vec<_>>()
            .join(",")
    ));
    let d2 = parse(&format!(
        "{{{}}}",
        (0..n)
            .rev()
            .map(|i| format!("{i}.0: {i}+0j"))
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert!(py_eq(&d1, &d2));
    // Dedup of many equal keys stays linear too.
    let dup = parse(&format!("{{{}}}", vec!["1, 1.0, True"; n].join(", ")));
    assert_eq!(py_repr(&dup), "{1}");
}

#[test]
fn repr_formats() {
    let f = |x: f64| py_repr(&PyValue::Float(x));
    let cases: &[(f64, &str)] = &[
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (1.5e-7, "1.5e-07"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
        (-f64::NAN, "nan"),
    ];
    for (x, want) in cases {
        assert_eq!(f(*x), *want);
    }
    let c = |re: f64, im: f64| py_repr(&PyValue::Complex(re, im));
    assert_eq!(c(1.0, 2.0), "(1+2j)");
    assert_eq!(c(0.0, 2.0), "2j");
    assert_eq!(c(-0.0, -1.0), "(-0-1j)");
    assert_eq!(c(1.5, 0.0), "(1.5+0j)");
    assert_eq!(c(0.0, -0.0), "-0j");
    assert_eq!(c(1e16, f64::NAN), "(1e+16+nanj)");
    assert_eq!(c(f64::NAN, f64::NEG_INFINITY), "(nan-infj)");
    let s = |t: &str| py_repr(&PyValue::Str(t.into()));
    assert_eq!(s("it's"), "\"it's\"");
    assert_eq!(s("'\""), "'\\'\"'");
    assert_eq!(s("a\\b\n\r\t\x00\x7f"), "'a\\\\b\\n\\r\\t\\x00\\x7f'");
    assert_eq!(
        s("é€😀\u{a0}\u{ad}\u{85}\u{2028}\u{e000}\u{fffe}\u{10ffff}"),
        "'é€😀\\xa0\\xad\\x85\\u2028\\ue000\\ufffe\\U0010ffff'"
    );
    let b = |t: &[u8]| py_repr(&PyValue::Bytes(t.to_vec()));
    assert_eq!(b(b"it's"), "b\"it's\"");
    assert_eq!(
        b(b"\x00\x7f\x80\xff\\'\""),
        "b'\\x00\\x7f\\x80\\xff\\\\\\'\"'"
    );
    let v = |items: Vec<PyValue>| items;
    assert_eq!(py_repr(&PyValue::Tuple(v(vec![]))), "()");
    assert_eq!(py_repr(&PyValue::Set(vec![])), "set()");
    assert_eq!(py_repr(&PyValue::FrozenSet(vec![])), "frozenset()");
    assert_eq!(
        py_repr(&PyValue::FrozenSet(vec![PyValue::Int(1.into())])),
        "frozenset({1})"
    );
    assert_eq!(
        repr_of("{1: {2: (3, [4.5, None])}, 'k': {True}}"),
        "{1: {2: (3, [4.5, None])}, 'k': {True}}"
    );
}

#[test]
fn repr_round_trips() {
    let texts = [
        "[1, -2.5, 1e-300, (3+4j), -0j, 'x\\ny', b'\\x00', None, True, ()]",
        "{'a': [1, {2, 3}], (1,): {}, 2.5: set()}",
        "'\\U0001f600\\u200b\\x85\\\\'",
        "-1e300-1e-300j",
    ];
    for text in texts {
        let v = parse(text);
        let again = parse(&py_repr(&v));
        assert!(py_eq(&v, &again), "{text}");
        // Not always the same text: as in CPython, `(-0-0j)` reads back as `0j`.
        let third = parse(&py_repr(&again));
        assert_eq!(py_repr(&third), py_repr(&again));
    }
}

#[test]
fn arguments() {
    let args = parse_arguments("1, 'a', x=[2], y = (3,) ,").expect("valid arguments");
    let got: Vec<(Option<&str>, String)> = args
        .iter()
        .map(|(k, v)| (k.as_deref(), py_repr(v)))
        .collect();
    assert_eq!(
        got,
        [
            (None, "1".to_string()),
            (None, "'a'".to_string()),
            (Some("x"), "[2]".to_string()),
            (Some("y"), "(3,)".to_string()),
        ]
    );
    assert!(parse_arguments("").expect("empty").is_empty());
    assert!(parse_arguments("  \n # nothing\n")
        .expect("blank")
        .is_empty());
    let multi = parse_arguments("\n  [1,\n 2],\n  set=set(), # c\n").expect("multi-line");
    assert_eq!(multi.len(), 2);
    assert_eq!(multi[1].0.as_deref(), Some("set"));
    assert_eq!(
        parse_arguments("(1, ), (1, ), (1, 2)")
            .expect("tuples")
            .len(),
        3
    );
    assert_eq!(parse_arguments("-1, 2+3j").expect("numbers").len(), 2);
    assert_eq!(parse_arguments("(1, 2)").expect("one tuple").len(), 1);
    let unicode = parse_arguments("é=1").expect("a non-ASCII keyword");
    assert_eq!(unicode[0].0.as_deref(), Some("é"));
    for bad in [
        ",",
        "1,,",
        "x=1, 2",
        "x=1, x=2",
        "1 2",
        "*a",
        "**k",
        "None=1",
        "if=1",
        "x==1",
        "1)",
        "(1",
        "f(1)",
        "x",
        "x=",
        "=1",
        "1=2",
        "a.b=1",
        "x for x in y",
        "1, lambda: 2",
    ] {
        assert!(parse_arguments(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn hostile_input_is_rejected_without_panicking() {
    for open in ["[", "(", "{", "-(", "{1:"] {
        let deep = open.repeat(100_000);
        assert!(parse_literal(&deep).is_err());
        assert!(parse_arguments(&deep).is_err());
    }
    assert!(parse_literal(&format!("{}1", "-".repeat(100_000))).is_err());
    // 200 levels is CPython's limit, and it is fine.
    let ok = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let v = parse(&ok);
    assert_eq!(py_repr(&v), ok);
    assert!(py_eq(&v, &v.clone()));
    assert!(parse_literal(&format!("{}{}", "[".repeat(201), "]".repeat(201))).is_err());
    // A megabyte of pseudo-random bytes, as text, in several shapes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let garbage = String::from_utf8_lossy(&bytes).into_owned();
    let ascii: String = bytes.iter().map(|b| char::from(b & 0x7f)).collect();
    for text in [&garbage, &ascii] {
        let _ = parse_literal(text);
        let _ = parse_arguments(text);
        let _ = parse_literal(&format!("'{text}'"));
        let _ = parse_literal(&format!("b'''{text}'''"));
        let _ = parse_literal(&format!("[{text}]"));
    }
    assert!(parse_literal(&"7".repeat(1_000_000)).is_err());
    assert!(parse_literal(&format!("0x{}", "f".repeat(1_000_000))).is_err());
    assert!(parse_literal(&format!("0b{}1", "1_".repeat(500_000))).is_err());
    assert!(parse_literal(&format!("'{}", "\\".repeat(1_000_000))).is_err());
    // Deep keys are hashed recursively: 200 levels are fine.
    let deep_key = format!("{{{}1{}}}", "(".repeat(199), ",)".repeat(199));
    assert!(parse_literal(&deep_key).is_ok());
    // Big but legal inputs parse in linear time.
    let kwargs: Vec<String> = (0..100_000).map(|i| format!("a{i}=[{i}]")).collect();
    assert_eq!(
        parse_arguments(&kwargs.join(", ")).map(|a| a.len()),
        Ok(100_000)
    );
    let positional = vec!["None"; 100_000].join(",");
    assert_eq!(parse_arguments(&positional).map(|a| a.len()), Ok(100_000));
    let list = format!("[{}]", vec!["'ab', 1.5, -2"; 100_000].join(", "));
    assert!(parse_literal(&list).is_ok());
    let set = format!(
        "{{{}}}",
        (0..100_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(parse_literal(&set).is_ok());
}

/// Texts whose fate (accepted with which repr, or rejected) must match CPython's
    /// `ast.literal_eval`. Known, deliberate differences (`...`, `\N{}`, lone surrogates) are
    /// left out.
    #[rustfmt::skip]
    const CORPUS: &[&str] = &[
        // numbers
        "0", "-0", "+0", "000", "0_0", "1_000_000", "0x_1f", "0XfF", "0o17", "0O7_7", "0b1",
        "0B1_0", "-0x10", "123456789012345678901234567890", "-98765432109876543210", "1.", ".5",
        "-.5", "1e10", "1E-3", "1_0.5", "1e5_0", "1.e5", "007.5", "007e1", "00.", "1e400", "-1e400",
        "1e-400", "-1e-400", "0.1", "0.30000000000000004", "1e16", "1e15", "123456789.123456789",
        "9007199254740993.0", "2.5e-5", "1.7976931348623157e308", "4.9e-324", "2j", "1.5J", "1e3j",
        "007j", "00j", "1.j", "-3j", "+1j", "-(1)", "(-1)", "- 0.0", "-(0j)", "-0j", "1+2j",
        "1 - 2j", "-1-2j", "(1)+2j", "1+(2j)", "1.5+0j", "1-0j", "-0.0+1j", "-0.0-1j", "0.0-0j",
        "-0.0-0j", "1e400-1e400j", "-1e400+1e400j", "+1.5-2.5j", "1e16+1e-7j", "(-1)-(2j)",
        "-(1)+2j", "--1", "-(-1)", "+True", "-None", "1+2", "1j+2j", "1+2j+3j", "1+-2j", "True+1j",
        "'a'+'b'", "1*2", "2**8", "1 2", "007", "0_7", "09", "1__0", "1_", "1_.5", "1._5", "1e",
        "1e+", "1e-5_", "0x", "0b102", "0o8", "0x_", "1jx", "1a", "0x1g", "0b", "1..5", "1.5.3",
        "5 .real",
        // strings and bytes
        "'a'", "\"it's\"", "'\"'", "'''tri\nple'''", "\"\"\"x\"y\"\"\"", "r'\\d+\\''", "R\"\\n\"",
        "u'x' \"y\"", "'a' 'b' 'c'", "'\\n\\t\\\\\\'\\\"\\x41\\u00e9\\U0001F600\\101\\0'",
        "'\\a\\b\\f\\v\\r'", "'a\\\nb'", "r'a\\\nb'", "'\\q\\N'", "'\\777'", "'\\1234'", "'\\8'",
        "'é€😀'", "'\\xa0\\xad\\x85'", "'\\u2028\\u200b\\ufeff'", "'\\ue000'", "'\\U0010ffff'",
        "'\\x7f\\x1b'", "b'\\x00\\xff\\u1234\\777'", "Rb'\\n' BR\"x\"", "rB'a'", "b'it\\'s'",
        "b\"'\"", "b'\\x80\\xfe'", "'a' b'b'", "b'a' 'b'", "b'é'", "'abc", "'''abc", "'a\nb'",
        "r'a\\'", "r'\\''", "'\\x4'", "'\\u12'", "'\\U00110000'", "f'x'", "rf'x'", "F'x'", "ur'x'",
        "x'a'", "'''a\r\nb'''", "'a\rb'", "''", "b''", "''''''",
        // containers
        "[]", "[1, [2, (3,)],]", "()", "(1,)", "((1))", "1, 2", "1,", "1,2,", "{}",
        "{1: 'a', 'b': [2],}", "{1, 2,}", "set()", "set ( )", "set([])", "set(1)", "frozenset()",
        "{(1, 'a'): None}", "[1, # comment\n 2\n]", "['a'\n 'b']", "{1: 'a', 1.0: 'b', True: 'c'}",
        "{1, 1.0, True}", "{1.0, 1}", "{0: 1, -0.0: 2, 0j: 3}", "{(1, 2): 'a', (1.0, 2+0j): 'b'}",
        "{'a', b'a', 'a'}", "{3, 1, 2}", "{-1: {-2: {-3}}}", "[(), [], {}, set()]", "[1,,]", "[,]",
        "(,)", "{,}", ",", "{1: 2, 3}", "{1, 2: 3}", "{1:}", "{:1}", "{**{}}", "[*[]]", "{[1]}",
        "{(1, [2]): 3}", "{{}: 1}", "{set(): 1}", "{1: [1], 2: {2: set()}}", "(1, 2)[0]", "[1][0]",
        "[1 for x in y]", "(1 2)", "[1)",
        // names, calls, operators, layout
        "None", "True", "False", "(None)", "none", "x", "nan", "inf", "Ellipsis", "print(1)",
        "lambda: 1", "a.b", "1 if 1 else 2", "not 1", "1 == 1", "1; 2", "None = 1", "", " ",
        "# only a comment", "  \t[1]  \n\n# trailing comment\n", "\n# leading\n\x0c1", "\n1",
        "\n 1", "\\\n1", "\\\n 1", "\x0c 1", " \x0c1", "1\n", "1\n 2", "1\n2", "'a'\n'b'",
        "1 +\n2j", "(1 +\n2j)", "1 \\\n+ 2j", "[1,\r\n2]", "[1,\r2]", "1\r", "1 # c", "1\0",
        "'\0'", "7\n ", "7\n\t", "7\n \n", "7\n #c", "7\n\x0c", "7 \\\n", "7\\\n ",
        "[7]\\\n\n", "7\n\\\n", "\n ",
        "\u{feff}1", "é", "\\", "1 \\ 2", "[1]\n  [2]", "(1", "[1", "{1", ")", "]", "}",
    ];

/// Python's verdict on each text: `["ok", repr, contains_a_set]` or `["err", exception]`.
const PY_LITERAL_EVAL: &str = r#"
import ast, json, sys
def has_set(v):
    if isinstance(v, (set, frozenset)): return True
    if isinstance(v, (list, tuple)): return any(map(has_set, v))
    if isinstance(v, dict): return any(has_set(k) or has_set(x) for k, x in v.items())
    return False
out = []
for t in json.load(sys.stdin):
    try:
        v = ast.literal_eval(t)
        out.append(["ok", repr(v), has_set(v)])
    except Exception as e:
        out.append(["err", type(e).__name__])
print(json.dumps(out))
"#;

/// Checks our verdicts on `texts` against CPython's.
fn check_against_cpython(texts: &[String]) {
    let input = serde_json::to_string(texts).expect("json");
    let verdicts: Vec<serde_json::Value> =
        serde_json::from_str(&python(PY_LITERAL_EVAL, &input)).expect("python's json");
    assert_eq!(verdicts.len(), texts.len());
    let mut failures = Vec::new();
    for (text, verdict) in texts.iter().zip(&verdicts) {
        let ours = parse_literal(text);
        match (verdict[0].as_str(), &ours) {
            (Some("ok"), Ok(v)) => {
                let theirs = verdict[1].as_str().unwrap_or_default();
                if py_repr(v) == theirs {
                    continue;
                }
                // Set order follows hashes in CPython: compare the values instead.
                let same_value = verdict[2].as_bool() == Some(true)
                    && parse_literal(theirs).is_ok_and(|t| py_eq(&t, v));
                if !same_value {
                    failures.push(format!("{text:?}: ours {}, CPython {theirs}", py_repr(v)));
                }
            }
            (Some("err"), Err(_)) => {}
            (_, Ok(v)) => failures.push(format!(
                "{text:?}: we accept ({}), CPython {verdict}",
                py_repr(v)
            )),
            (_, Err(e)) => failures.push(format!("{text:?}: we reject ({e}), CPython {verdict}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn deliberate_divergences_from_cpython() {
    let input = serde_json::to_string(DIVERGENT).expect("json");
    let verdicts: Vec<serde_json::Value> =
        serde_json::from_str(&python(PY_LITERAL_EVAL, &input)).expect("python's json");
    for (text, verdict) in DIVERGENT.iter().zip(verdicts) {
        assert_eq!(verdict[0], "ok", "CPython accepts {text:?}");
        assert!(parse_literal(text).is_err(), "we reject {text:?}");
    }
}

#[test]
fn literal_eval_agrees_with_cpython() {
    let mut texts: Vec<String> = CORPUS.iter().map(|t| t.to_string()).collect();
    texts.extend(ACCEPTED.iter().map(|(t, _)| t.to_string()));
    let rejected = REJECTED.iter().filter(|t| !DIVERGENT.contains(t));
    texts.extend(rejected.map(|t| t.to_string()));
    // int -> float conversion in `a + bj`, which must round like CPython's.
    for n in [
        "9007199254740993",
        "18014398509481985",
        "18014398509481987",
        "36028797018963971",
    ] {
        texts.push(format!("{n}+1j"));
        texts.push(format!("-{n}0000000000000000000000000000001-1j"));
    }
    // Halfway between f64::MAX and 2**1024: CPython rounds it up, to an OverflowError.
    let halfway: BigInt = (BigInt::from(1) << 1024) - (BigInt::from(1) << 970);
    texts.push(format!("{}+0j", &halfway - 1));
    texts.push(format!("{halfway}+0j"));
    // Nesting at and beyond the limit, and the integer digit limit.
    for depth in [199, 200, 201] {
        texts.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        texts.push(format!("{}1{}", "(".repeat(depth), ")".repeat(depth)));
    }
    texts.push(format!("1{}", "0".repeat(4299)));
    texts.push(format!("1{}", "0".repeat(4300)));
    texts.push(format!("1{}+1j", "0".repeat(400)));
    texts.push(format!("1{}+1j", "0".repeat(300)));
    check_against_cpython(&texts);
}

#[test]
fn equality_agrees_with_cpython() {
    let pool = [
        "1",
        "1.0",
        "True",
        "1+0j",
        "1-0j",
        "0",
        "-0.0",
        "False",
        "0j",
        "2.5",
        "2.5+0j",
        "2.5j",
        "'1'",
        "b'1'",
        "[1]",
        "[1.0]",
        "(1,)",
        "(True,)",
        "{1}",
        "{1.0}",
        "{1: 1}",
        "{1.0: True}",
        "{True: 1, 2: 3}",
        "{2: 3, 1: 1}",
        "None",
        "[]",
        "()",
        "{}",
        "set()",
        "9007199254740993",
        "9007199254740992",
        "9007199254740992.0",
        "1e400",
        "-1e400",
        "(1, [2])",
        "(1.0, [2+0j])",
        "[[1, 2], {3: (4,)}]",
        "[[1.0, 2], {3.0: (4+0j,)}]",
        "{(1, 2), 'a'}",
        "{'a', (1.0, 2.0)}",
    ];
    let pairs: Vec<[&str; 2]> = pool
        .iter()
        .flat_map(|a| pool.iter().map(move |b| [*a, *b]))
        .collect();
    let script = r#"
import ast, json, sys
print(json.dumps([ast.literal_eval(a) == ast.literal_eval(b) for a, b in json.load(sys.stdin)]))
"#;
    let input = serde_json::to_string(&pairs).expect("json");
    let want: Vec<bool> = serde_json::from_str(&python(script, &input)).expect("python's json");
    assert_eq!(want.len(), pairs.len());
    for ([a, b], want) in pairs.iter().zip(want) {
        assert_eq!(py_eq(&parse(a), &parse(b)), want, "{a} == {b}");
    }
}

#[test]
fn float_repr_agrees_with_cpython() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut floats: Vec<f64> = Vec::new();
    for _ in 0..3000 {
        floats.push(f64::from_bits(next()));
    }
    for _ in 0..2000 {
        let digits = (next() % 10_000_000) as f64;
        let scale = 10f64.powi((next() % 44) as i32 - 22);
        floats.push(digits * scale);
    }
    for e in -8..=18 {
        let p = 10f64.powi(e);
        floats.extend([
            p,
            -p,
            p * 0.999_999_999_999_999_9,
            p * 1.000_000_000_000_001,
            p / 3.0,
        ]);
    }
    floats.extend([
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    floats.retain(|f| !f.is_nan());
    let bits: Vec<u64> = floats.iter().map(|f| f.to_bits()).collect();
    let script = r#"
import json, struct, sys
fs = [struct.unpack('<d', struct.pack('<Q', b))[0] for b in json.load(sys.stdin)]
print(json.dumps([[repr(x), repr(complex(x, y))] for x, y in zip(fs, fs[1:] + fs[:1])]))
"#;
    let input = serde_json::to_string(&bits).expect("json");
    let want: Vec<[String; 2]> =
        serde_json::from_str(&python(script, &input)).expect("python's json");
    assert_eq!(want.len(), floats.len());
    for (i, [float_repr, complex_repr]) in want.iter().enumerate() {
        let (x, y) = (floats[i], floats[(i + 1) % floats.len()]);
        assert_eq!(&py_repr(&PyValue::Float(x)), float_repr, "{x:e}");
        assert_eq!(
            &py_repr(&PyValue::Complex(x, y)),
            complex_repr,
            "{x:e} {y:e}"
        );
        // And the text reads back as the same float.
        if x.is_finite() {
            assert!(
                py_eq(&parse(float_repr), &PyValue::Float(x)),
                "{float_repr}"
            );
        }
    }
}

#[test]
fn printable_agrees_with_cpython_for_assigned_characters() {
    // Ranges of non-printable code points, and of unassigned (Cn) ones, from CPython.
    let script = r#"
import json, sys, unicodedata
def ranges(pred):
    out, start = [], None
    for cp in range(0x80, 0x110001):
        hit = cp < 0x110000 and pred(chr(cp))
        if hit and start is None: start = cp
        if not hit and start is not None: out.append([start, cp - 1]); start = None
    return out
print(json.dumps([ranges(lambda c: not c.isprintable()), ranges(lambda c: unicodedata.category(c) == 'Cn')]))
"#;
    let [not_printable, unassigned]: [Vec<[u32; 2]>; 2] =
        serde_json::from_str(&python(script, "")).expect("python's json");
    let contains = |ranges: &[[u32; 2]], cp: u32| {
        let i = ranges.partition_point(|r| r[1] < cp);
        ranges.get(i).is_some_and(|r| r[0] <= cp)
    };
    for c in (0x80..=0x10ffff).filter_map(char::from_u32) {
        let cp = u32::from(c);
        let theirs = !contains(&not_printable, cp);
        if is_printable(c) != theirs {
            // Only unassigned code points may differ, and only towards "printable".
            assert!(contains(&unassigned, cp) && is_printable(c), "U+{cp:04X}");
        }
    }
}

/// The repository's copy of CRUXEval (`data/` at the workspace root).
fn cruxeval_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/code/cruxeval.jsonl")
}

#[test]
fn cruxeval_outputs_and_inputs() {
    let path = cruxeval_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(rows.len() >= 800, "{} rows", rows.len());
    let field =
        |row: &serde_json::Value, k: &str| row[k].as_str().expect("string field").to_string();
    let outputs: Vec<String> = rows.iter().map(|r| field(r, "output")).collect();
    let inputs: Vec<String> = rows.iter().map(|r| field(r, "input")).collect();
    for output in &outputs {
        let v = parse_literal(output).unwrap_or_else(|e| panic!("output {output:?}: {e}"));
        let again =
            parse_literal(&py_repr(&v)).unwrap_or_else(|e| panic!("repr of {output:?}: {e}"));
        assert!(py_eq(&v, &again), "round trip of {output:?}");
    }
    check_against_cpython(&outputs);
    // Inputs are argument lists; CPython decides whether each argument is a literal.
    let script = r#"
import ast, json, sys
def ok(t):
    try:
        call = ast.parse('f(' + t + '\n)', mode='eval').body
        if not isinstance(call, ast.Call): return False
        for a in call.args:
            if isinstance(a, ast.Starred): return False
            ast.literal_eval(a)
        for k in call.keywords:
            if k.arg is None: return False
            ast.literal_eval(k.value)
        return True
    except Exception:
        return False
print(json.dumps([ok(t) for t in json.load(sys.stdin)]))
"#;
    let input = serde_json::to_string(&inputs).expect("json");
    let want: Vec<bool> = serde_json::from_str(&python(script, &input)).expect("python's json");
    assert_eq!(want.len(), inputs.len());
    for (input, want) in inputs.iter().zip(want) {
        let ours = parse_arguments(input);
        assert_eq!(ours.is_ok(), want, "arguments {input:?}: {:?}", ours.err());
    }
}
