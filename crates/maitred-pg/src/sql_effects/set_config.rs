//! `set_config(name, value, is_local)` calls: a call with literal arguments and `is_local`
//! false is a SET that maitred can follow; a transaction-local one ends with its
//! transaction; any other call cannot be followed (the caller treats it as unknown).

use super::lexer::is_ident_byte;
use super::{setting, Effect};
use crate::settings::is_setting_name;

/// The settings whose list values PostgreSQL quotes as identifiers (`GUC_LIST_QUOTE`): a
/// raw `set_config` value for them is not the same as a single literal after `SET ... TO`.
pub(crate) const LIST_QUOTED_SETTINGS: [&str; 4] = [
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
];

/// The arguments of a `set_config(` call, after its parenthesis: `Some(Some(Set))` for a
/// session-level call with literal arguments, `Some(None)` for a transaction-local one (or a
/// `transaction_*` setting), `None` when the call cannot be followed.
pub(super) fn set_config_call(p: &mut Cursor<'_>) -> Option<Option<Effect>> {
    p.skip_blank();
    let name = p.string_literal()?;
    p.comma()?;
    let value = p.string_literal()?;
    p.comma()?;
    let local = p.bool_argument()?;
    p.skip_blank();
    if !p.eat(b')') {
        return None;
    }
    if local {
        return Some(None);
    }
    // Setting names are case-insensitive.
    let name = name.to_ascii_lowercase();
    if !is_setting_name(&name) {
        return None;
    }
    let value = if LIST_QUOTED_SETTINGS.contains(&name.as_str()) {
        quote_identifier_list(&value)?
    } else {
        crate::settings::quote_literal(&value)
    };
    match setting(name, value) {
        Effect::None => Some(None),
        e => Some(Some(e)),
    }
}

/// A raw list value (as `set_config` and the server's list parser take it: identifiers
/// separated by commas, unquoted ones folded to lower case) as the SQL text of `SET name TO`
/// that gives the same list. None for an empty list (SET cannot write one) or a malformed
/// value.
pub(crate) fn quote_identifier_list(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_space(&mut i);
    if i == b.len() {
        return None;
    }
    loop {
        let element = if b[i] == b'"' {
            let end = string_end(b, i)?;
            if end - i < 3 {
                return None;
            }
            let inner = &raw[i + 1..end - 1];
            i = end;
            inner.replace("\"\"", "\"")
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b',' && b[i] != b'"' {
                i += 1;
            }
            if i == start {
                return None;
            }
            raw[start..i].to_ascii_lowercase()
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(&element.replace('"', "\"\""));
        out.push('"');
        skip_space(&mut i);
        if i == b.len() {
            return Some(out);
        }
        if b[i] != b',' {
            return None;
        }
        i += 1;
        skip_space(&mut i);
        if i == b.len() {
            return None;
        }
    }
}

/// A position in a statement, for reading the arguments of a call.
pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

impl Cursor<'_> {
    /// Skips whitespace and comments.
    fn skip_blank(&mut self) {
        loop {
            match self.b.get(self.i) {
                Some(c) if c.is_ascii_whitespace() => self.i += 1,
                Some(b'-') if self.b.get(self.i + 1) == Some(&b'-') => {
                    self.i = skip_line_comment(self.b, self.i)
                }
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'*') => {
                    self.i = skip_block_comment(self.b, self.i)
                }
                _ => return,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// `,` after optional blanks, then blanks.
    fn comma(&mut self) -> Option<()> {
        self.skip_blank();
        if !self.eat(b',') {
            return None;
        }
        self.skip_blank();
        Some(())
    }

    /// A plain `'...'` literal (`''` for a quote) and its value. None for anything else,
    /// and for a backslash, whose meaning depends on `standard_conforming_strings`.
    fn string_literal(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'\'') {
            return None;
        }
        let mut value = Vec::new();
        let mut j = self.i + 1;
        loop {
            match *self.b.get(j)? {
                b'\\' => return None,
                b'\'' if self.b.get(j + 1) == Some(&b'\'') => {
                    value.push(b'\'');
                    j += 2;
                }
                b'\'' => break,
                c => {
                    value.push(c);
                    j += 1;
                }
            }
        }
        self.i = j + 1;
        String::from_utf8(value).ok()
    }

    /// `true`/`false`, or a literal PostgreSQL reads as a boolean.
    fn bool_argument(&mut self) -> Option<bool> {
        let text = if self.b.get(self.i) == Some(&b'\'') {
            self.string_literal()?
        } else {
            let start = self.i;
            while self.i < self.b.len() && is_ident_byte(self.b[self.i]) {
                self.i += 1;
            }
            let word = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            if !word.eq_ignore_ascii_case("true") && !word.eq_ignore_ascii_case("false") {
                return None;
            }
            word.to_owned()
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

/// The index after the closing quote of the string (or identifier) opening at `i`: `''`
/// (or `""`) inside continues it.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

fn skip_line_comment(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|c| *c == b'\n')
        .map_or(b.len(), |n| i + n)
}

fn skip_block_comment(b: &[u8], i: usize) -> usize {
    super::lexer::block_comment_end(b, i).unwrap_or(b.len())
}
