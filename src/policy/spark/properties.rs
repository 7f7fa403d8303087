//! spark-submit's `--properties-file`, read the way Spark reads it: with
//! `java.util.Properties.load` over a UTF-8 reader. kubesu checks every
//! setting in it, then hands Spark a copy it wrote itself (`serialize`), so
//! that what Spark reads is exactly what kubesu checked even where this
//! parser and a given Java release might differ on an odd input.
//!
//! Written by hand: no maintained Rust crate implements Java's exact rules
//! (comment lines, the three separators, continuation lines with an odd
//! number of backslashes, `\uXXXX` escapes as UTF-16 code units), and a
//! "close enough" parser is how a forbidden key would slip through.

use std::collections::BTreeMap;
use std::fmt;

/// One `key=value` of a properties file, as Java loads it, with the number
/// of the line it starts on (from 1), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Why a file cannot be read as Java would: Java itself fails on it, or
/// it holds a string Rust cannot represent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub why: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Java's whitespace in properties files: only these three.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// The file's settings in file order, duplicates included (the last one
/// wins for Spark, as in a `Hashtable`). Invalid UTF-8 becomes U+FFFD, as
/// Java's UTF-8 reader makes it.
pub fn parse(bytes: &[u8]) -> Result<Vec<Property>, Malformed> {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    let mut lines = Lines {
        chars: &chars,
        at: 0,
        line: 1,
    };
    let mut properties = Vec::new();
    while let Some((logical, line)) = lines.next_logical() {
        let (key, value) = split(&logical);
        properties.push(Property {
            key: unescape(key, line)?,
            value: unescape(value, line)?,
            line,
        });
    }
    Ok(properties)
}

/// The logical lines of a file: Java's `Properties.LineReader`, natural
/// lines joined where one ends in an odd number of backslashes, leading
/// blanks, blank lines and comment lines dropped.
struct Lines<'a> {
    chars: &'a [char],
    at: usize,
    /// The natural line `at` is on.
    line: usize,
}

impl Lines<'_> {
    fn take(&mut self) -> Option<char> {
        let c = *self.chars.get(self.at)?;
        self.at += 1;
        // "\r\n" is one line end: count it at its '\n'.
        if c == '\n' || (c == '\r' && self.chars.get(self.at) != Some(&'\n')) {
            self.line += 1;
        }
        Some(c)
    }

    /// The next logical line and the natural line it starts on.
    fn next_logical(&mut self) -> Option<(Vec<char>, usize)> {
        let mut buf: Vec<char> = Vec::new();
        let mut start = self.line;
        let mut skip_blank = true;
        let mut appended = false;
        let mut backslash = false;
        loop {
            let Some(c) = self.take() else {
                // End of input; a last odd backslash is dropped.
                if buf.is_empty() {
                    return None;
                }
                if backslash {
                    buf.pop();
                }
                return Some((buf, start));
            };
            if skip_blank {
                if is_blank(c) {
                    continue;
                }
                if !appended && (c == '\r' || c == '\n') {
                    continue;
                }
                skip_blank = false;
                appended = false;
            }
            if buf.is_empty() {
                // The logical line starts at c, even after a continuation
                // that left it empty: Java looks at its length, so that
                // "\\\n#x" is a comment.
                start = self.line;
                if c == '#' || c == '!' {
                    while let Some(c) = self.take() {
                        if c == '\r' || c == '\n' {
                            break;
                        }
                    }
                    skip_blank = true;
                    continue;
                }
            }
            if c != '\n' && c != '\r' {
                buf.push(c);
                backslash = c == '\\' && !backslash;
                continue;
            }
            if buf.is_empty() {
                skip_blank = true;
                continue;
            }
            if !backslash || self.at == self.chars.len() {
                // At the end of input an odd backslash is dropped, even if
                // that leaves the line empty: Java then loads "" = "".
                if backslash {
                    buf.pop();
                }
                return Some((buf, start));
            }
            // An escaped line end: drop the backslash, join the next line
            // without its leading blanks.
            buf.pop();
            skip_blank = true;
            appended = true;
            backslash = false;
            if c == '\r' && self.chars.get(self.at) == Some(&'\n') {
                self.take();
            }
        }
    }
}

/// Split a logical line into its raw key and raw value: the key ends at the
/// first unescaped '=', ':' or blank; blanks and one '=' or ':' after it
/// are skipped.
fn split(line: &[char]) -> (&[char], &[char]) {
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut separated = false;
    let mut backslash = false;
    for (i, &c) in line.iter().enumerate() {
        if !backslash && (c == '=' || c == ':') {
            key_end = i;
            value_start = i + 1;
            separated = true;
            break;
        }
        if !backslash && is_blank(c) {
            key_end = i;
            value_start = i + 1;
            break;
        }
        backslash = c == '\\' && !backslash;
    }
    while let Some(&c) = line.get(value_start) {
        if !is_blank(c) {
            if !separated && (c == '=' || c == ':') {
                separated = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (&line[..key_end], &line[value_start..])
}

/// Java's `loadConvert`: `\t \n \r \f`, `\uXXXX` (a UTF-16 code unit),
/// any other `\x` is x.
fn unescape(raw: &[char], line: usize) -> Result<String, Malformed> {
    let mut units: Vec<u16> = Vec::with_capacity(raw.len());
    let mut chars = raw.iter().copied();
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            // The line reader leaves no unpaired backslash at the end.
            match chars.next().unwrap_or('\\') {
                'u' => {
                    let mut unit: u16 = 0;
                    for _ in 0..4 {
                        let digit = chars.next().and_then(|d| d.to_digit(16)).ok_or(Malformed {
                            line,
                            why: "malformed \\uXXXX escape (Java refuses the whole file)",
                        })?;
                        unit = (unit << 4) | digit as u16;
                    }
                    units.push(unit);
                    continue;
                }
                't' => '\t',
                'n' => '\n',
                'r' => '\r',
                'f' => '\x0c',
                other => other,
            }
        } else {
            c
        };
        let mut buf = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buf));
    }
    String::from_utf16(&units).map_err(|_| Malformed {
        line,
        why: "a \\uXXXX escape leaves an unpaired UTF-16 surrogate; write the character itself",
    })
}

/// A properties file Java reads back as exactly these settings, in this
/// order: ASCII only (anything else as `\uXXXX`), every character that
/// could end a key or a line escaped. `heading` becomes a comment line.
pub fn serialize<'a>(
    heading: &str,
    settings: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    // escape_default: ASCII only, no line end.
    let mut out = format!("# {}\n", heading.escape_default());
    for (key, value) in settings {
        escape_into(&mut out, key, true);
        out.push('=');
        escape_into(&mut out, value, false);
        out.push('\n');
    }
    out.into_bytes()
}

fn escape_into(out: &mut String, text: &str, key: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            // In a key these end it; in a value a space is only dropped
            // when leading, but escaping every one is as exact and simpler.
            ' ' | '=' | ':' | '#' | '!' if key || c == ' ' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
}

/// The settings as Java's `Properties` holds them: the last of duplicate
/// keys wins.
pub fn as_map(properties: &[Property]) -> BTreeMap<&str, &str> {
    properties
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn one(text: &str) -> (String, String) {
        let all = pairs(text);
        assert_eq!(all.len(), 1, "{text:?}: {all:?}");
        all.into_iter().next().unwrap_or_default()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_are_equals_colon_or_blanks() {
        for text in [
            "a=b",
            "a:b",
            "a b",
            "a\tb",
            "a\x0cb",
            "a = b",
            "a : b",
            "  a=b",
            "a  =  b",
            "\t\x0c a \t=\x0c b",
        ] {
            assert_eq!(one(text), kv("a", "b"), "{text:?}");
        }
        // Only one separator is skipped; the rest is the value.
        assert_eq!(one("a==b"), kv("a", "=b"));
        assert_eq!(one("a = :b"), kv("a", ":b"));
        assert_eq!(one("a:=b"), kv("a", "=b"));
        assert_eq!(one("a b c"), kv("a", "b c"));
        assert_eq!(one("a=b "), kv("a", "b "));
        assert_eq!(one("a"), kv("a", ""));
        assert_eq!(one("a="), kv("a", ""));
        assert_eq!(one("=b"), kv("", "b"));
        assert_eq!(one(":"), kv("", ""));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        assert_eq!(
            pairs("# c\n! c\n\n   \n  # indented\na=b\n#x=y\n\t!z\n"),
            vec![kv("a", "b")]
        );
        // Not a comment after the line started.
        assert_eq!(one("a=#b"), kv("a", "#b"));
        // A comment line is never continued.
        assert_eq!(pairs("# c \\\na=b"), vec![kv("a", "b")]);
    }

    #[test]
    fn line_ends_are_lf_cr_or_crlf() {
        assert_eq!(
            pairs("a=1\rb=2\r\nc=3\nd=4"),
            vec![kv("a", "1"), kv("b", "2"), kv("c", "3"), kv("d", "4")]
        );
    }

    #[test]
    fn an_odd_number_of_trailing_backslashes_continues_the_line() {
        assert_eq!(one("a=b\\\n   c"), kv("a", "bc"));
        assert_eq!(one("a=b\\\r\n\t c"), kv("a", "bc"));
        assert_eq!(one("a=b\\\r c"), kv("a", "bc"));
        assert_eq!(one("a\\\n =b"), kv("a", "b"));
        assert_eq!(one("a=b\\\\\\\nc"), kv("a", "b\\c"));
        assert_eq!(pairs("a=b\\\\\nc"), vec![kv("a", "b\\"), kv("c", "")]);
        // A continued line's '#' is data, and an empty continuation ends it.
        assert_eq!(one("a=b\\\n#c"), kv("a", "b#c"));
        assert_eq!(pairs("a=b\\\n\nc=d"), vec![kv("a", "b"), kv("c", "d")]);
        // A last odd backslash at the end of the file is dropped.
        assert_eq!(one("a=b\\"), kv("a", "b"));
        assert_eq!(one("a=b\\\n"), kv("a", "b"));
        assert_eq!(one("\\\n"), kv("", ""));
        assert_eq!(one("\\"), kv("", ""));
        // A continuation that leaves the line empty lets a comment start.
        assert_eq!(pairs("\\\n#a=b"), Vec::new());
    }

    #[test]
    fn escapes_are_javas() {
        assert_eq!(one("a=\\t\\n\\r\\f"), kv("a", "\t\n\r\x0c"));
        assert_eq!(one("a=\\u0041\\u00e9\\u00E9"), kv("a", "Aéé"));
        assert_eq!(one("a=\\q\\=\\:\\ \\#\\\\"), kv("a", "q=: #\\"));
        assert_eq!(one("k\\ e\\=y\\:=v"), kv("k e=y:", "v"));
        assert_eq!(one("spark.mas\\\n  ter=x"), kv("spark.master", "x"));
        assert_eq!(one("spark.m\\u0061ster=x"), kv("spark.master", "x"));
        // A surrogate pair in two escapes is one character.
        assert_eq!(one("a=\\uD83D\\uDE00"), kv("a", "😀"));
        assert_eq!(one("a=😀"), kv("a", "😀"));
    }

    #[test]
    fn what_java_refuses_is_refused_with_its_line() {
        for (text, line) in [
            ("a=\\u12", 1),
            ("x=1\n\na=\\u12G4", 3),
            ("x=1\r\ny=2\\\nz\na=\\uD800", 4),
        ] {
            let err = parse(text.as_bytes()).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
    }

    #[test]
    fn lines_are_counted_where_each_setting_starts() {
        let parsed = parse(b"# c\n\na=1\\\n  2\r\nb=2\r\rc=3\n").unwrap();
        let lines: Vec<usize> = parsed.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 5, 7]);
    }

    #[test]
    fn invalid_utf8_reads_as_replacement_characters() {
        assert_eq!(
            pairs("a=\u{fffd}"),
            parse(b"a=\xff")
                .unwrap()
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn serialized_settings_read_back_exactly() {
        let settings = [
            ("spark.app.name", " lead and trail "),
            ("k e=y:#!", "v=a:l#!"),
            ("", ""),
            ("tab\tnl\ncr\rff\x0c", "\\ \\u0041 é 😀 \u{0}\u{7f}"),
            ("#key", "!value"),
        ];
        let bytes = serialize("heading\nsecond line", settings);
        assert!(bytes.is_ascii());
        let back = pairs(std::str::from_utf8(&bytes).unwrap());
        let expected: Vec<_> = settings.iter().map(|(k, v)| kv(k, v)).collect();
        assert_eq!(back, expected);
    }
}
