//! What the console answers: tables of typed cells (errors: [`super::ConsoleError`]).

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl Value {
    pub(super) fn int(v: impl TryInto<i64>) -> Value {
        Value::Int(v.try_into().unwrap_or(i64::MAX))
    }

    pub(super) fn text(v: impl Into<String>) -> Value {
        Value::Text(v.into())
    }

    /// The text form sent on the wire.
    pub fn render(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Text(t) => t.clone(),
        }
    }
}

/// A column: its name, and whether it holds integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub numeric: bool,
}

/// A command's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The column named `name` of every row, for tests and scripts.
    pub fn column(&self, name: &str) -> Vec<&Value> {
        let Some(i) = self.columns.iter().position(|c| c.name == name) else {
            return Vec::new();
        };
        self.rows.iter().filter_map(|r| r.get(i)).collect()
    }
}

/// What a command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Rows, then the command tag `SHOW`.
    Rows(Table),
    /// Only a command tag, e.g. `PAUSE`.
    Done(&'static str),
}
