//! One MySQL/MariaDB lexer for every look maitred takes at SQL text: session-state
//! classification (`classify.rs`), send-ahead eligibility (`send_ahead.rs`), KILL and
//! the rewrites of `CONNECTION_ID()`, `LAST_INSERT_ID()` and `@@socket`.
//!
//! The text is scanned once into statements (split on `;` outside quotes and comments) of
//! tokens. What the server ignores is skipped: `#` comments, `-- ` comments (two dashes
//! then a space or control character, or the end), `/* */` comments. What the server
//! executes is kept: the contents of `/*! ... */`, `/*!50700 ... */`, `/*M! ... */` and
//! `/*M!100100 ... */` are lexed as code, whatever the version number says (a server that
//! skips them only makes maitred's guess more careful than needed). Strings (`'...'`,
//! `"..."`) follow backslash escapes unless `NO_BACKSLASH_ESCAPES` is on, and doubled
//! quotes; names in backticks (and in double quotes under `ANSI_QUOTES`) have doubled
//! quotes and no escapes. Unterminated quotes and comments run to the end of the text.
//!
//! Spec: <https://dev.mysql.com/doc/refman/8.0/en/comments.html>,
//! <https://dev.mysql.com/doc/refman/8.0/en/string-literals.html>,
//! <https://mariadb.com/kb/en/comment-syntax/>.

/// How `sql_mode` changes the lexing of quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexMode {
    /// Backslash escapes a character inside strings (off under `NO_BACKSLASH_ESCAPES`).
    pub backslash_escapes: bool,
    /// `"` quotes names, not strings (`ANSI_QUOTES`).
    pub ansi_quotes: bool,
}

impl Default for LexMode {
    fn default() -> Self {
        LexMode {
            backslash_escapes: true,
            ansi_quotes: false,
        }
    }
}

impl LexMode {
    /// The mode a `sql_mode` value (as the server reports it) implies.
    pub fn from_sql_mode(sql_mode: &str) -> LexMode {
        let has = |flag: &str| {
            sql_mode
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(flag))
        };
        LexMode {
            backslash_escapes: !has("NO_BACKSLASH_ESCAPES"),
            // ANSI implies ANSI_QUOTES.
            ansi_quotes: has("ANSI_QUOTES") || has("ANSI"),
        }
    }
}

/// What one token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An unquoted word: keyword, name or function name (letters, digits, `_`, `$`, and
    /// any byte of a multi-byte character), not starting with a digit.
    Word,
    /// A number (starts with a digit).
    Number,
    /// A string literal; the token spans its quotes.
    Str,
    /// A quoted name (backticks, or double quotes under ANSI_QUOTES).
    QuotedName,
    /// `@name`, `@'name'`, `@"name"` or `` @`name` ``: a user variable.
    UserVar,
    /// `@@name`, `@@session.name`, ...: a system variable.
    SysVar,
    /// Any other single byte: `(`, `)`, `,`, `=`, `.`, ...
    Punct(u8),
}

/// One token: its kind and where it is in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// A statement: a range of [`Lexed::tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementSpan {
    pub first: usize,
    pub end: usize,
}

/// A text split into statements of tokens.
#[derive(Debug, Clone)]
pub struct Lexed<'a> {
    pub sql: &'a [u8],
    pub tokens: Vec<Token>,
    /// Statements with at least one token, in order.
    pub statements: Vec<StatementSpan>,
    /// The text has an executable comment (`/*!`, `/*M!`).
    pub executable_comment: bool,
}

impl<'a> Lexed<'a> {
    /// The bytes of a token.
    pub fn text(&self, t: &Token) -> &'a [u8] {
        self.sql.get(t.start..t.end).unwrap_or(&[])
    }

    /// The tokens of each statement.
    pub fn statements(&self) -> impl Iterator<Item = Stmt<'_, 'a>> {
        self.statements.iter().map(move |s| Stmt {
            lexed: self,
            tokens: self.tokens.get(s.first..s.end).unwrap_or(&[]),
        })
    }
}

/// The tokens of one statement, with the text they point into.
#[derive(Debug, Clone, Copy)]
pub struct Stmt<'l, 'a> {
    pub lexed: &'l Lexed<'a>,
    pub tokens: &'l [Token],
}

impl<'l, 'a> Stmt<'l, 'a> {
    /// Whether token `i` is the word `w` (case-insensitive).
    pub fn is_word(&self, i: usize, w: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| {
            t.kind == Kind::Word && self.lexed.text(t).eq_ignore_ascii_case(w.as_bytes())
        })
    }

    /// Whether token `i` is the punctuation `p`.
    pub fn is_punct(&self, i: usize, p: u8) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == Kind::Punct(p))
    }

    /// The index of the first token that is the word `w`, from `from` on.
    pub fn find_word(&self, from: usize, w: &str) -> Option<usize> {
        (from..self.tokens.len()).find(|i| self.is_word(*i, w))
    }

    /// Whether the word `w` is called as a function somewhere (`w (`).
    pub fn calls(&self, w: &str) -> bool {
        (0..self.tokens.len()).any(|i| self.is_word(i, w) && self.is_punct(i + 1, b'('))
    }

    /// The statement from token `from` on.
    pub fn from(&self, from: usize) -> Stmt<'l, 'a> {
        Stmt {
            lexed: self.lexed,
            tokens: self.tokens.get(from..).unwrap_or(&[]),
        }
    }
}

/// Lexes `sql` with the default mode.
pub fn lex(sql: &[u8]) -> Lexed<'_> {
    lex_with(sql, LexMode::default())
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Lexes `sql` into statements of tokens. Never panics, whatever the bytes.
pub fn lex_with(sql: &[u8], mode: LexMode) -> Lexed<'_> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut statements = Vec::new();
    let mut first = 0;
    let mut executable_comment = false;
    // Inside an executable comment: its `*/` ends it (and is not code).
    let mut in_exec = false;
    let mut i = 0;
    let n = sql.len();
    let at = |k: usize| sql.get(k).copied();
    while i < n {
        let b = sql[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if in_exec && b == b'*' && at(i + 1) == Some(b'/') {
            in_exec = false;
            i += 2;
            continue;
        }
        // Comments.
        if b == b'#'
            || (b == b'-' && at(i + 1) == Some(b'-') && at(i + 2).is_none_or(|c| c <= b' '))
        {
            // To the end of the line.
            i = sql[i..]
                .iter()
                .position(|c| *c == b'\n')
                .map_or(n, |p| i + p + 1);
            continue;
        }
        if b == b'/' && at(i + 1) == Some(b'*') {
            let mut j = i + 2;
            let exec = if at(j) == Some(b'!') {
                j += 1;
                true
            } else if at(j) == Some(b'M') && at(j + 1) == Some(b'!') {
                j += 2;
                true
            } else {
                false
            };
            if exec && !in_exec {
                executable_comment = true;
                in_exec = true;
                // The optional version number (5 digits for MySQL, 5 or 6 for MariaDB).
                let digits = sql[j..]
                    .iter()
                    .take(6)
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                i = j + if digits >= 5 { digits } else { 0 };
                continue;
            }
            // A plain comment (or a nested executable one, which the server does not
            // execute either): skipped to its `*/`.
            i = sql
                .get(i + 2..)
                .and_then(|r| r.windows(2).position(|w| w == b"*/"))
                .map_or(n, |p| i + 2 + p + 2);
            continue;
        }
        if b == b';' {
            if tokens.len() > first {
                statements.push(StatementSpan {
                    first,
                    end: tokens.len(),
                });
            }
            first = tokens.len();
            i += 1;
            continue;
        }
        let start = i;
        let kind = match b {
            b'\'' => {
                i = past_quote(sql, i, mode.backslash_escapes);
                Kind::Str
            }
            b'"' if mode.ansi_quotes => {
                i = past_quote(sql, i, false);
                Kind::QuotedName
            }
            b'"' => {
                i = past_quote(sql, i, mode.backslash_escapes);
                Kind::Str
            }
            b'`' => {
                i = past_quote(sql, i, false);
                Kind::QuotedName
            }
            b'@' if at(i + 1) == Some(b'@') => {
                i += 2;
                while i < n && (is_word_byte(sql[i]) || sql[i] == b'.') {
                    i += 1;
                }
                Kind::SysVar
            }
            b'@' => {
                i += 1;
                match at(i) {
                    Some(q @ (b'\'' | b'"' | b'`')) => {
                        i = past_quote(sql, i, q != b'`' && mode.backslash_escapes);
                        Kind::UserVar
                    }
                    Some(c) if is_word_byte(c) || c == b'.' => {
                        while i < n && (is_word_byte(sql[i]) || sql[i] == b'.') {
                            i += 1;
                        }
                        Kind::UserVar
                    }
                    _ => Kind::Punct(b'@'),
                }
            }
            c if c.is_ascii_digit() => {
                while i < n && (is_word_byte(sql[i]) || sql[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            c if is_word_byte(c) => {
                while i < n && is_word_byte(sql[i]) {
                    i += 1;
                }
                Kind::Word
            }
            c => {
                i += 1;
                Kind::Punct(c)
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i.min(n),
        });
    }
    if tokens.len() > first {
        statements.push(StatementSpan {
            first,
            end: tokens.len(),
        });
    }
    Lexed {
        sql,
        tokens,
        statements,
        executable_comment,
    }
}

/// The index just past the quoted string or name that starts at `i` (its closing quote;
/// a doubled quote continues it; a backslash escapes the next byte when `escapes`).
fn past_quote(sql: &[u8], i: usize, escapes: bool) -> usize {
    let quote = sql[i];
    let mut j = i + 1;
    while j < sql.len() {
        let c = sql[j];
        if escapes && c == b'\\' {
            j += 2;
            continue;
        }
        if c == quote {
            if sql.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    sql.len()
}

/// The text with some token runs replaced: `replace(stmt_tokens, i)` says how many tokens
/// from `i` on to replace and with what. `None` when nothing was replaced.
pub fn rewrite(
    lexed: &Lexed<'_>,
    mut replace: impl FnMut(&Lexed<'_>, &[Token], usize) -> Option<(usize, Vec<u8>)>,
) -> Option<Vec<u8>> {
    let sql = lexed.sql;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let toks = &lexed.tokens;
    let mut i = 0;
    while i < toks.len() {
        if let Some((count, with)) = replace(lexed, toks, i) {
            let count = count.max(1);
            let Some(last) = toks.get(i + count - 1) else {
                break;
            };
            let o = out.get_or_insert_with(|| Vec::with_capacity(sql.len()));
            o.extend_from_slice(sql.get(copied..toks[i].start).unwrap_or(&[]));
            o.extend_from_slice(&with);
            copied = last.end;
            i += count;
            continue;
        }
        i += 1;
    }
    let mut o = out?;
    o.extend_from_slice(sql.get(copied..).unwrap_or(&[]));
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement as its tokens' texts joined by spaces.
    fn shape(sql: &str) -> Vec<String> {
        shape_with(sql, LexMode::default())
    }

    fn shape_with(sql: &str, mode: LexMode) -> Vec<String> {
        let l = lex_with(sql.as_bytes(), mode);
        l.statements()
            .map(|s| {
                s.tokens
                    .iter()
                    .map(|t| String::from_utf8_lossy(l.text(t)).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            shape("# a ; b\nLOCK TABLES t WRITE"),
            ["LOCK TABLES t WRITE"]
        );
        assert_eq!(shape("-- a ; b\nLOCK"), ["LOCK"]);
        assert_eq!(shape("--\tx\nLOCK"), ["LOCK"]);
        assert_eq!(shape("SELECT 1 --"), ["SELECT 1"]);
        // Two dashes without the space: minus minus.
        assert_eq!(shape("SELECT 1--1"), ["SELECT 1 - - 1"]);
        assert_eq!(shape("/* ; */ LOCK /* x */ TABLES"), ["LOCK TABLES"]);
        assert_eq!(shape("/* unterminated ; LOCK"), Vec::<String>::new());
        assert_eq!(shape("/*+ hint */SELECT 1"), ["SELECT 1"]);
    }

    #[test]
    fn executable_comments_are_code() {
        assert_eq!(shape("/*!LOCK TABLES t WRITE*/"), ["LOCK TABLES t WRITE"]);
        assert_eq!(
            shape("/*!50700 LOCK TABLES t WRITE */"),
            ["LOCK TABLES t WRITE"]
        );
        assert_eq!(shape("/*M!100100 LOCK TABLES*/"), ["LOCK TABLES"]);
        assert_eq!(shape("/*M! LOCK */ x"), ["LOCK x"]);
        assert_eq!(
            shape("SELECT 1 /*!; LOCK TABLES t READ */"),
            ["SELECT 1", "LOCK TABLES t READ"]
        );
        assert_eq!(shape("/*!12 SELECT*/"), ["12 SELECT"]);
        assert!(lex(b"/*!1*/").executable_comment);
        assert!(!lex(b"/* ! */").executable_comment);
    }

    #[test]
    fn quotes_hide_everything() {
        assert_eq!(
            shape("SELECT 'a;LOCK', \"b;#\", `c;--` ; x"),
            ["SELECT 'a;LOCK' , \"b;#\" , `c;--`", "x"]
        );
        assert_eq!(
            shape(r"SELECT 'it\'s; x', 'a''b;'"),
            [r"SELECT 'it\'s; x' , 'a''b;'"]
        );
        assert_eq!(shape("SELECT `a``;b`"), ["SELECT `a``;b`"]);
        // A backslash does nothing in a name.
        assert_eq!(shape(r"SELECT `a\`; LOCK"), [r"SELECT `a\`", "LOCK"]);
        assert_eq!(shape("SELECT 'open ; LOCK"), ["SELECT 'open ; LOCK"]);
    }

    #[test]
    fn sql_mode_changes_quotes() {
        let raw = r"SELECT '\'; LOCK TABLES t WRITE; -- '";
        assert_eq!(shape(raw), [raw]);
        let nbe = LexMode::from_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES");
        assert_eq!(shape_with(raw, nbe), [r"SELECT '\'", "LOCK TABLES t WRITE"]);
        let ansi = LexMode::from_sql_mode("ANSI");
        assert_eq!(
            shape_with(r#"SELECT "a\"; LOCK"#, ansi),
            [r#"SELECT "a\""#, "LOCK"]
        );
        assert_eq!(LexMode::from_sql_mode(""), LexMode::default());
    }

    #[test]
    fn variables() {
        let l = lex(b"SET @a = @@session.x, @'b c' = @`d`, x@y");
        let kinds: Vec<Kind> = l.tokens.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Word,
                Kind::UserVar,
                Kind::Punct(b'='),
                Kind::SysVar,
                Kind::Punct(b','),
                Kind::UserVar,
                Kind::Punct(b'='),
                Kind::UserVar,
                Kind::Punct(b','),
                Kind::Word,
                Kind::UserVar,
            ]
        );
        assert_eq!(l.text(&l.tokens[3]), b"@@session.x");
    }

    #[test]
    fn statements_split_on_semicolons() {
        assert_eq!(
            shape("SELECT 1; LOCK TABLES t WRITE"),
            ["SELECT 1", "LOCK TABLES t WRITE"]
        );
        assert_eq!(shape(";;SELECT 1;;"), ["SELECT 1"]);
        assert_eq!(shape(""), Vec::<String>::new());
    }

    #[test]
    fn rewrite_replaces_token_runs() {
        let l = lex(b"SELECT a, 'a', /* a */ a");
        let out = rewrite(&l, |l, t, i| {
            (l.text(&t[i]) == b"a").then(|| (1, b"b".to_vec()))
        });
        assert_eq!(out.as_deref(), Some(&b"SELECT b, 'a', /* a */ b"[..]));
        assert_eq!(rewrite(&l, |_, _, _| None), None);
    }
}
