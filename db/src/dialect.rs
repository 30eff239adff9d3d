//! The two SQL dialects the engine speaks, and the one rewrite between them it does itself.
//!
//! The engine's SQL is written once, in the common subset of SQLite and PostgreSQL, with
//! SQLite's placeholders (`?`, `?N`). PostgreSQL wants `$N`, so [`to_postgres`] renumbers
//! them before a statement goes there. The few statements that have no common form (JSON
//! aggregation) ask [`Dialect`] which one to build.

use std::borrow::Cow;

/// Which database the engine is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `SELECT`-list text that aggregates the rows of `from` into one JSON text value, each row
    /// as the JSON array of `columns` (`[]` when there are none), ordered by `order` if given.
    pub fn json_rows(self, columns: &str, order: Option<&str>) -> String {
        let order = order.map(|o| format!(" ORDER BY {o}")).unwrap_or_default();
        match self {
            Self::Sqlite => format!("json_group_array(json_array({columns}){order})"),
            Self::Postgres => {
                format!("COALESCE(json_agg(json_build_array({columns}){order})::text, '[]')")
            }
        }
    }

    /// A table expression of the elements of the JSON array text in parameter `param` (a
    /// placeholder such as `?3`), as one text column named `value`.
    pub fn json_elements(self, param: &str) -> String {
        match self {
            Self::Sqlite => format!("(SELECT value FROM json_each({param}))"),
            Self::Postgres => {
                format!("(SELECT value FROM json_array_elements_text(CAST({param} AS json)))")
            }
        }
    }
}

/// `sql` with SQLite placeholders (`?` counted in order, `?N` as written) rewritten to
/// PostgreSQL's `$N`. Quoted text and identifiers are left as they are.
pub fn to_postgres(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0_u32;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    out.push_str(&digits);
                }
            }
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(to_postgres("SELECT 1"), "SELECT 1");
        assert_eq!(
            to_postgres("UPDATE t SET a = ? WHERE b = ? AND c = '?'"),
            "UPDATE t SET a = $1 WHERE b = $2 AND c = '?'"
        );
        assert_eq!(
            to_postgres("UPDATE t SET a = a + ?1 WHERE u = ?2 AND a + ?1 <= m"),
            "UPDATE t SET a = a + $1 WHERE u = $2 AND a + $1 <= m"
        );
        assert_eq!(
            to_postgres("SELECT \"a?\" FROM t WHERE x = ?"),
            "SELECT \"a?\" FROM t WHERE x = $1"
        );
        assert_eq!(to_postgres("VALUES (?, ?10)"), "VALUES ($1, $10)");
    }
}
