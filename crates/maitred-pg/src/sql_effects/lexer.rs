//! A PostgreSQL SQL lexer: one pass over a query string that yields its tokens with
//! comments skipped, and splits it into statements. It does not parse; it only makes sure
//! that no classifier mistakes a comment, a string or a quoted identifier for a keyword.
//!
//! Handles `--` and nested `/* */` comments, `'...'` (with `''`), `E'...'` (backslash
//! escapes), `U&'...'`, `B'...'`, `X'...'`, `N'...'`, dollar-quoted bodies (`$$...$$`,
//! `$tag$...$tag$`), quoted identifiers (`"..."`, `U&"..."`), parameters (`$1`) and `;`
//! between statements. Spec:
//! <https://www.postgresql.org/docs/15/sql-syntax-lexical.html>.

use smallvec::SmallVec;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An unquoted identifier or key word.
    Word,
    /// A `"quoted identifier"`.
    QuotedIdent,
    /// A string constant of any form.
    Str,
    /// A numeric constant.
    Number,
    /// A positional parameter (`$1`).
    Param,
    /// Any other single byte (operators, parentheses, commas, dots).
    Punct(u8),
}

/// One token: its kind and where it is in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// A plain `'...'` string that holds a backslash: its meaning depends on
    /// `standard_conforming_strings`, so classifiers treat it as ambiguous.
    pub backslash: bool,
}

impl Token {
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start..self.end).unwrap_or("")
    }

    /// Whether this is the unquoted word `w` (ASCII case ignored; `w` is lower case).
    pub fn is_word(&self, sql: &str, w: &str) -> bool {
        self.kind == Kind::Word && self.text(sql).eq_ignore_ascii_case(w)
    }

    pub fn is_punct(&self, c: u8) -> bool {
        self.kind == Kind::Punct(c)
    }
}

/// Statements an application sends hold a few tokens, and every Query is scanned: the
/// tokens of the statement being lexed stay on the stack (no allocation, nothing moved).
type TokenBuffer = SmallVec<[Token; 32]>;

/// One statement of a query string: its tokens (never empty, except for text that is only
/// an unterminated comment or string) and its text span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement<'t> {
    pub tokens: &'t [Token],
    /// The statement's text runs from the first token's start to the last token's end.
    pub start: usize,
    pub end: usize,
    /// The text ended inside a comment, string or quoted identifier.
    pub unterminated: bool,
}

/// Calls `each` with the statements of `sql` in order (empty ones between `;` are
/// dropped); returns how many there were. The one pass every classifier shares.
pub fn each_statement(sql: &str, mut each: impl FnMut(&Statement<'_>)) -> usize {
    let mut lexer = Lexer::new(sql);
    let mut tokens = TokenBuffer::new();
    let mut count = 0;
    loop {
        let tok = lexer.next_token();
        if let Some(t) = tok.filter(|t| !t.is_punct(b';')) {
            tokens.push(t);
            continue;
        }
        let at_end = tok.is_none();
        if let (Some(first), Some(last)) = (tokens.first(), tokens.last()) {
            each(&Statement {
                tokens: &tokens,
                start: first.start,
                end: last.end,
                unterminated: at_end && lexer.unterminated,
            });
            count += 1;
        }
        tokens.clear();
        if at_end {
            break;
        }
    }
    if lexer.unterminated && count == 0 {
        // Only an unterminated comment or string: still report it.
        each(&Statement {
            tokens: &[],
            start: 0,
            end: sql.len(),
            unterminated: true,
        });
        count = 1;
    }
    count
}

/// A statement that owns its tokens (see [`statements`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedStatement {
    pub tokens: Vec<Token>,
    pub start: usize,
    pub end: usize,
    pub unterminated: bool,
}

impl OwnedStatement {
    pub fn as_statement(&self) -> Statement<'_> {
        Statement {
            tokens: &self.tokens,
            start: self.start,
            end: self.end,
            unterminated: self.unterminated,
        }
    }
}

/// The statements of `sql`, collected (for callers off the hot path, and tests).
pub fn statements(sql: &str) -> Vec<OwnedStatement> {
    let mut out = Vec::new();
    each_statement(sql, |s| {
        out.push(OwnedStatement {
            tokens: s.tokens.to_vec(),
            start: s.start,
            end: s.end,
            unterminated: s.unterminated,
        })
    });
    out
}

/// The token stream of one text.
pub struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
    /// The text ended inside a comment, string or quoted identifier.
    pub unterminated: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(sql: &'a str) -> Lexer<'a> {
        Lexer {
            b: sql.as_bytes(),
            i: 0,
            unterminated: false,
        }
    }

    /// The next token, comments and white space skipped.
    pub fn next_token(&mut self) -> Option<Token> {
        self.skip_blank();
        let b = self.b;
        let start = self.i;
        let c = *b.get(start)?;
        let mut backslash = false;
        let kind = match c {
            b'\'' => {
                let (end, bs) = self.string_end(start, false);
                backslash = bs;
                self.i = end;
                Kind::Str
            }
            b'"' => {
                self.i = self.string_end(start, false).0;
                Kind::QuotedIdent
            }
            b'$' => {
                if b.get(start + 1).is_some_and(u8::is_ascii_digit) {
                    self.i = start + 1;
                    while self.i < b.len() && b[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    Kind::Param
                } else if let Some(end) = self.dollar_end(start) {
                    self.i = end;
                    Kind::Str
                } else {
                    self.i = start + 1;
                    Kind::Punct(b'$')
                }
            }
            b'0'..=b'9' => {
                self.i = start + 1;
                self.number_rest();
                Kind::Number
            }
            b'.' if b.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                self.i = start + 1;
                self.number_rest();
                Kind::Number
            }
            c if is_ident_start(c) => {
                let mut j = start + 1;
                while j < b.len() && is_ident_byte(b[j]) {
                    j += 1;
                }
                let word = &b[start..j];
                match b.get(j) {
                    // E'...' with backslash escapes.
                    Some(b'\'') if word.eq_ignore_ascii_case(b"e") => {
                        self.i = self.string_end(j, true).0;
                        Kind::Str
                    }
                    // B'...', X'...', N'...': no escapes.
                    Some(b'\'')
                        if word.eq_ignore_ascii_case(b"b")
                            || word.eq_ignore_ascii_case(b"x")
                            || word.eq_ignore_ascii_case(b"n") =>
                    {
                        let (end, bs) = self.string_end(j, false);
                        backslash = bs;
                        self.i = end;
                        Kind::Str
                    }
                    // U&'...' and U&"...".
                    Some(b'&')
                        if word.eq_ignore_ascii_case(b"u")
                            && matches!(b.get(j + 1), Some(b'\'') | Some(b'"')) =>
                    {
                        let quote = b[j + 1];
                        self.i = self.string_end(j + 1, false).0;
                        if quote == b'"' {
                            Kind::QuotedIdent
                        } else {
                            Kind::Str
                        }
                    }
                    _ => {
                        self.i = j;
                        Kind::Word
                    }
                }
            }
            other => {
                self.i = start + 1;
                Kind::Punct(other)
            }
        };
        Some(Token {
            kind,
            start,
            end: self.i,
            backslash,
        })
    }

    fn skip_blank(&mut self) {
        let b = self.b;
        loop {
            match b.get(self.i) {
                Some(c) if c.is_ascii_whitespace() => self.i += 1,
                Some(b'-') if b.get(self.i + 1) == Some(&b'-') => {
                    self.i = b[self.i..]
                        .iter()
                        .position(|c| *c == b'\n')
                        .map_or(b.len(), |n| self.i + n);
                }
                Some(b'/') if b.get(self.i + 1) == Some(&b'*') => {
                    self.i = self.block_comment_end(self.i);
                }
                _ => return,
            }
        }
    }

    fn block_comment_end(&mut self, i: usize) -> usize {
        block_comment_end(self.b, i).unwrap_or_else(|| {
            self.unterminated = true;
            self.b.len()
        })
    }

    /// The index after the closing quote of the string or identifier opening at `i`
    /// (doubled quotes continue it; with `escapes`, a backslash escapes the next byte), and
    /// whether a backslash was seen inside.
    fn string_end(&mut self, i: usize, escapes: bool) -> (usize, bool) {
        let b = self.b;
        let q = b[i];
        let mut backslash = false;
        let mut j = i + 1;
        while j < b.len() {
            if b[j] == b'\\' {
                backslash = true;
                if escapes {
                    j += 2;
                    continue;
                }
            }
            if b[j] == q {
                if b.get(j + 1) == Some(&q) {
                    j += 2;
                    continue;
                }
                return (j + 1, backslash);
            }
            j += 1;
        }
        self.unterminated = true;
        (b.len(), backslash)
    }

    /// The end of a `$tag$ ... $tag$` string opening at `i`, or None if `i` does not open
    /// one (the tag is an identifier without `$`, or empty).
    fn dollar_end(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let mut j = i + 1;
        if b.get(j).is_some_and(|c| is_ident_start(*c)) {
            while j < b.len() && b[j] != b'$' && is_ident_byte(b[j]) {
                j += 1;
            }
        }
        if b.get(j) != Some(&b'$') {
            return None;
        }
        let tag = &b[i..=j];
        let body = j + 1;
        match b[body..].windows(tag.len()).position(|w| w == tag) {
            Some(n) => Some(body + n + tag.len()),
            None => {
                self.unterminated = true;
                Some(b.len())
            }
        }
    }

    fn number_rest(&mut self) {
        let b = self.b;
        while self.i < b.len() {
            let c = b[self.i];
            let exponent_sign = (c == b'+' || c == b'-')
                && self.i > 0
                && matches!(b[self.i - 1], b'e' | b'E')
                && b.get(self.i + 1).is_some_and(u8::is_ascii_digit);
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exponent_sign {
                // `1..2` is not a number, but nothing here depends on it.
                self.i += 1;
            } else {
                break;
            }
        }
    }
}

/// The index after the block comment opening at `i` (they nest in PostgreSQL), or None if
/// the text ends inside it.
pub(super) fn block_comment_end(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j + 1 < b.len() {
        match (b[j], b[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => j += 1,
        }
    }
    None
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

pub(crate) fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> Vec<Vec<String>> {
        statements(sql)
            .iter()
            .map(|s| {
                s.tokens
                    .iter()
                    .map(|t| match t.kind {
                        Kind::Word => t.text(sql).to_ascii_lowercase(),
                        Kind::Str => "<str>".into(),
                        Kind::QuotedIdent => "<ident>".into(),
                        Kind::Number => "<num>".into(),
                        Kind::Param => "<param>".into(),
                        Kind::Punct(c) => (c as char).to_string(),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn comments_are_skipped_wherever_they_are() {
        assert_eq!(
            words("/* app=web,route=/orders */ SET search_path TO t42, public"),
            vec![vec!["set", "search_path", "to", "t42", ",", "public"]]
        );
        assert_eq!(
            words("-- tag\nSET/* a /* nested */ b */role -- x\n r"),
            vec![vec!["set", "role", "r"]]
        );
        assert_eq!(
            words("/* ; */ select 1 -- ; listen x\n"),
            vec![vec!["select", "<num>"]]
        );
    }

    #[test]
    fn strings_hide_semicolons_and_keywords() {
        assert_eq!(
            words("select 'a;SET x=1'; select E'\\'; listen x'; select $$;$$; select $q$ $$ ; $q$"),
            vec![
                vec!["select", "<str>"],
                vec!["select", "<str>"],
                vec!["select", "<str>"],
                vec!["select", "<str>"]
            ]
        );
        assert_eq!(
            words("select U&'d\\0061t;a', u&\"a;b\", b'01', X'ff', n'x;'"),
            vec![vec![
                "select", "<str>", ",", "<ident>", ",", "<str>", ",", "<str>", ",", "<str>"
            ]]
        );
        assert_eq!(
            words("select \"a\"\"; b\" from t"),
            vec![vec!["select", "<ident>", "from", "t"]]
        );
    }

    #[test]
    fn params_and_dollar_quotes_are_told_apart() {
        assert_eq!(
            words("select $1, $2::int, a$b from t where x = $10"),
            vec![vec![
                "select", "<param>", ",", "<param>", ":", ":", "int", ",", "a$b", "from", "t",
                "where", "x", "=", "<param>"
            ]]
        );
        assert_eq!(
            words("do $body$ begin set x = 1; end $body$"),
            vec![vec!["do", "<str>"]]
        );
    }

    #[test]
    fn statements_split_and_empty_ones_dropped() {
        assert_eq!(words(";; select 1 ;; select 2;").len(), 2);
        assert!(statements("  -- only a comment").is_empty());
    }

    #[test]
    fn unterminated_text_is_reported() {
        for sql in ["select 'abc", "select /* x", "select $$ x", "select \"x"] {
            let s = statements(sql);
            assert!(s.last().is_some_and(|s| s.unterminated), "{sql}");
        }
        assert!(statements("/* only").iter().all(|s| s.unterminated));
    }

    #[test]
    fn backslash_in_a_plain_string_is_flagged() {
        let sql = "select 'a\\', 'b'";
        let s = statements(sql);
        assert!(s[0].tokens[1].backslash);
        assert!(!s[0].tokens[3].backslash);
        let e = statements("select E'a\\'b'");
        assert!(!e[0].tokens[1].backslash, "E'' escapes are unambiguous");
    }

    #[test]
    fn numbers() {
        assert_eq!(
            words("select 1.5e-3, .5, 10"),
            vec![vec!["select", "<num>", ",", "<num>", ",", "<num>"]]
        );
    }
}
