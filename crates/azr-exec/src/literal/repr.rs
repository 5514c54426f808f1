//! CPython's `repr()` of a parsed value.

use super::*;

// ---------------------------------------------------------------------------------------------
// repr
// ---------------------------------------------------------------------------------------------

/// Python's `repr()` of the value. Sets keep insertion order (CPython's order follows hashes).
pub fn py_repr(v: &PyValue) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

pub(super) fn write_repr(v: &PyValue, out: &mut String) {
    match v {
        PyValue::None => out.push_str("None"),
        PyValue::Bool(true) => out.push_str("True"),
        PyValue::Bool(false) => out.push_str("False"),
        PyValue::Int(n) => {
            let _ = write!(out, "{n}"); // writing to a String cannot fail
        }
        PyValue::Float(f) => out.push_str(&format_float(*f, true)),
        PyValue::Complex(re, im) => {
            // CPython: a +0.0 real part is left out, and then so are the parentheses.
            let im_text = format_float(*im, false);
            if *re == 0.0 && re.is_sign_positive() {
                let _ = write!(out, "{im_text}j");
            } else {
                let sign = if im_text.starts_with('-') { "" } else { "+" };
                let _ = write!(out, "({}{sign}{im_text}j)", format_float(*re, false));
            }
        }
        PyValue::Str(s) => write_str_repr(s, out),
        PyValue::Bytes(b) => write_bytes_repr(b, out),
        PyValue::List(items) => write_items(items, "[", "]", out),
        PyValue::Tuple(items) if items.len() == 1 => write_items(items, "(", ",)", out),
        PyValue::Tuple(items) => write_items(items, "(", ")", out),
        PyValue::Dict(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(k, out);
                out.push_str(": ");
                write_repr(v, out);
            }
            out.push('}');
        }
        PyValue::Set(items) if items.is_empty() => out.push_str("set()"),
        PyValue::Set(items) => write_items(items, "{", "}", out),
        PyValue::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
        PyValue::FrozenSet(items) => write_items(items, "frozenset({", "})", out),
    }
}

pub(super) fn write_items(items: &[PyValue], open: &str, close: &str, out: &mut String) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(item, out);
    }
    out.push_str(close);
}

/// CPython's `float_repr_style = 'short'` ('r' format): the shortest digits that round-trip,
/// positional for decimal exponents -4 <= e < 16, else scientific with at least two exponent
/// digits. `add_dot_0` gives `1.0` (float repr) rather than `1` (inside a complex repr).
pub(super) fn format_float(f: f64, add_dot_0: bool) -> String {
    if f.is_nan() {
        return "nan".into(); // CPython ignores a NaN's sign
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` also prints the shortest round-tripping digits: "1.2345e-7", "0e0".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let (first, rest) = digits.split_at(digits.len().min(1));
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    // The decimal point goes after `point` digits.
    let point = exp + 1;
    if !(-3..=16).contains(&point) {
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point.unsigned_abs() as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point - digits.len()));
            if add_dot_0 {
                out.push_str(".0");
            }
        } else {
            let (int_part, frac_part) = digits.split_at(point);
            let _ = write!(out, "{int_part}.{frac_part}");
        }
    }
    out
}

/// CPython's quote choice: single quotes unless the text has `'` and no `"`.
pub(super) fn repr_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

pub(super) fn write_str_repr(s: &str, out: &mut String) {
    let quote = repr_quote(s.contains('\''), s.contains('"'));
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if !c.is_ascii() && is_printable(c) => out.push(c),
            // ASCII control characters, and what `str.isprintable()` rejects.
            c => {
                let code = u32::from(c);
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
            }
        }
    }
    out.push(quote);
}

pub(super) fn write_bytes_repr(b: &[u8], out: &mut String) {
    let quote = repr_quote(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if char::from(c) == quote => {
                out.push('\\');
                out.push(char::from(c));
            }
            b' '..=b'~' => out.push(char::from(c)),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote);
}

/// Non-ASCII code points `str.isprintable()` rejects in CPython 3.13 (Unicode 15.1), as sorted
/// inclusive ranges. Exact for every assigned character (categories Cc, Cf, Co, Zs, Zl, Zp); of
/// the unassigned ones (Cn) only the large blocks (256+ code points) and the noncharacters are
/// listed, so a stray unassigned code point inside an assigned block is kept as printable. An
/// older Python, with an older Unicode, escapes the characters assigned since, where this prints
/// them: the same string either way, and Python reads both.
#[rustfmt::skip]
pub(super) const NOT_PRINTABLE: &[(u32, u32)] = &[
    (0x80, 0xa0), (0xad, 0xad), (0x600, 0x605), (0x61c, 0x61c), (0x6dd, 0x6dd), (0x70f, 0x70f),
    (0x890, 0x891), (0x8e2, 0x8e2), (0x1680, 0x1680), (0x180e, 0x180e), (0x2000, 0x200f),
    (0x2028, 0x202f), (0x205f, 0x2064), (0x2066, 0x206f), (0x3000, 0x3000), (0xe000, 0xf8ff),
    (0xfdd0, 0xfdef), (0xfeff, 0xfeff), (0xfff9, 0xfffb), (0xfffe, 0xffff), (0x10d3a, 0x10e5f),
    (0x110bd, 0x110bd), (0x110cd, 0x110cd), (0x11daa, 0x11edf), (0x12544, 0x12f8f),
    (0x13430, 0x1343f), (0x13456, 0x143ff), (0x14647, 0x167ff), (0x16b90, 0x16e3f),
    (0x18d09, 0x1afef), (0x1b2fc, 0x1bbff), (0x1bca0, 0x1ceff), (0x1d173, 0x1d17a),
    (0x1dab0, 0x1deff), (0x1e150, 0x1e28f), (0x1e300, 0x1e4cf), (0x1e4fa, 0x1e7df),
    (0x1e960, 0x1ec70), (0x1eef2, 0x1efff), (0x1fbfa, 0x1ffff), (0x2ee5e, 0x2f7ff),
    (0x2fa1e, 0x2ffff), (0x323b0, 0xe0001), (0xe0020, 0xe007f), (0xe01f0, 0x10ffff),
];

/// Approximates `str.isprintable()` for one non-ASCII character; see [`NOT_PRINTABLE`].
pub(super) fn is_printable(c: char) -> bool {
    let code = u32::from(c);
    // U+xxFFFE and U+xxFFFF are noncharacters in every plane.
    if code & 0xfffe == 0xfffe {
        return false;
    }
    let i = NOT_PRINTABLE.partition_point(|&(_, hi)| hi < code);
    NOT_PRINTABLE.get(i).is_none_or(|&(lo, _)| code < lo)
}
