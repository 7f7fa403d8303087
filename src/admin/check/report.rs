//! The report of `kubesu check`: one row per check, the exit status the
//! rows decide, and the table an administrator reads.

use serde::Serialize;

use crate::failure::{Code, Failure, Result};

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do about a failure; null when ok.
    pub fix: Option<String>,
    /// Why it failed: decides the exit status.
    #[serde(skip)]
    pub code: Option<Code>,
    /// Not run because an earlier check failed.
    #[serde(skip)]
    pub skipped: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.rows.push(Row {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            code: None,
            skipped: false,
        });
    }

    pub fn fail(&mut self, name: impl Into<String>, failure: Failure, fix: impl Into<String>) {
        self.rows.push(Row {
            name: name.into(),
            ok: false,
            detail: failure.message,
            fix: Some(fix.into()),
            code: Some(failure.code),
            skipped: false,
        });
    }

    pub fn record(
        &mut self,
        name: impl Into<String>,
        result: Result<String>,
        fix: impl Into<String>,
    ) {
        match result {
            Ok(detail) => self.pass(name, detail),
            Err(failure) => self.fail(name, failure, fix),
        }
    }

    pub fn skip(&mut self, name: impl Into<String>, why: &str) {
        self.rows.push(Row {
            name: name.into(),
            ok: false,
            detail: format!("not checked: {why}"),
            fix: Some("fix the failures above, then run `kubesu check` again".into()),
            code: None,
            skipped: true,
        });
    }
}

/// The rule the help text documents: 78 beats 69 beats 0.
pub fn exit_status(rows: &[Row]) -> i32 {
    let mut status = 0;
    for row in rows.iter().filter(|r| !r.ok && !r.skipped) {
        match row.code {
            Some(Code::Unavailable) => {
                if status == 0 {
                    status = Code::Unavailable as i32;
                }
            }
            _ => status = Code::Config as i32,
        }
    }
    status
}

/// The human-readable report: CHECK, RESULT, DETAIL; a fix under each
/// failure; a summary line.
pub fn table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.name.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let indent = " ".repeat(width + 8);
    let mut out = format!("{:<width$}  RESULT  DETAIL\n", "CHECK");
    for row in rows {
        let result = match (row.ok, row.skipped) {
            (true, _) => "OK",
            (false, false) => "FAIL",
            (false, true) => "SKIP",
        };
        let mut lines = row.detail.lines();
        out.push_str(&format!(
            "{:<width$}  {result:<6}  {}\n",
            row.name,
            lines.next().unwrap_or("")
        ));
        for line in lines {
            out.push_str(&format!("{indent}{line}\n"));
        }
        if let Some(fix) = row.fix.as_ref().filter(|_| !row.skipped) {
            out.push_str(&format!("{indent}fix: {fix}\n"));
        }
    }
    let failed = rows.iter().filter(|r| !r.ok && !r.skipped).count();
    let skipped = rows.iter().filter(|r| r.skipped).count();
    match (failed, skipped) {
        (0, 0) => out.push_str(&format!("all {} checks passed\n", rows.len())),
        (_, 0) => out.push_str(&format!("{failed} of {} checks failed\n", rows.len())),
        _ => out.push_str(&format!(
            "{failed} of {} checks failed, {skipped} could not run\n",
            rows.len()
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ok: bool, code: Option<Code>, skipped: bool) -> Row {
        Row {
            name: "x".into(),
            ok,
            detail: "d".into(),
            fix: (!ok).then(|| "f".into()),
            code,
            skipped,
        }
    }

    #[test]
    fn exit_status_rule() {
        assert_eq!(exit_status(&[row(true, None, false)]), 0);
        assert_eq!(exit_status(&[]), 0);
        let unreachable = row(false, Some(Code::Unavailable), false);
        let skipped = row(false, None, true);
        let config = row(false, Some(Code::Config), false);
        let software = row(false, Some(Code::Software), false);
        assert_eq!(exit_status(&[unreachable.clone(), skipped.clone()]), 69);
        assert_eq!(exit_status(&[unreachable.clone(), config.clone()]), 78);
        assert_eq!(exit_status(&[config, unreachable.clone()]), 78);
        assert_eq!(exit_status(&[software]), 78);
        assert_eq!(exit_status(&[row(true, None, false), skipped]), 0);
    }

    #[test]
    fn table_shows_fixes_under_failures_and_indents_details() {
        let rows = vec![
            Row {
                name: "config".into(),
                ok: false,
                detail: "line 3, column 1\n  |\nunknown field".into(),
                fix: Some("edit it".into()),
                code: Some(Code::Config),
                skipped: false,
            },
            row(true, None, false),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CHECK   RESULT  DETAIL");
        assert_eq!(lines[1], "config  FAIL    line 3, column 1");
        assert_eq!(lines[2], format!("{}  |", " ".repeat(14)));
        assert_eq!(lines[3], "              unknown field");
        assert_eq!(lines[4], "              fix: edit it");
        assert_eq!(lines[5], "x       OK      d");
        assert_eq!(lines[6], "1 of 2 checks failed");
        let text = table(&[row(false, None, true)]);
        assert_eq!(text.lines().nth(1), Some("x      SKIP    d"));
        assert!(!text.contains("fix:"), "{text}");
        assert!(
            text.ends_with("0 of 1 checks failed, 1 could not run\n"),
            "{text}"
        );
    }

    #[test]
    fn json_rows_have_name_ok_detail_fix() {
        let value = serde_json::to_value(row(false, Some(Code::Config), false)).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["detail", "fix", "name", "ok"]);
    }
}
