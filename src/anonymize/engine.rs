//! The state both dialect drivers share: tables learned from the DDL, the
//! per-statement plans (which rule decides each column), problems, the
//! report, the detectors, and the output gate that closes at the first
//! problem.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::Arc;

use super::schema::{ColumnDef, SqlType};
use super::transform::{Keyed, Transformer};
use super::{ColumnAction, ColumnReport, Dialect, Error, Problem, ProblemKind, Report, Rules};
use super::{detect, mysql, postgres, rules};

/// A table as learned from the dump's DDL.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) columns: Vec<ColumnDef>,
    /// PRIMARY KEY and UNIQUE column sets.
    pub(crate) keys: Vec<Vec<String>>,
    /// The partitioned (or inheritance) parent.
    pub(crate) parent: Option<TableName>,
    /// Data for it was seen.
    pub(crate) has_data: bool,
}

/// `(schema, table)`.
pub(crate) type TableName = (String, String);

/// What to do with one column of a data statement.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Keep,
    Scan(usize),
    /// The transformer and the index of the column's memo.
    Transform(Arc<Transformer>, usize),
}

/// One column of a [`Plan`].
#[derive(Debug, Clone)]
pub(crate) struct ColPlan {
    pub(crate) ty: SqlType,
    pub(crate) action: Action,
    pub(crate) report: usize,
}

/// How to treat the values of one data statement's columns.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) table: String,
    pub(crate) columns: Vec<String>,
    pub(crate) cols: Vec<ColPlan>,
    pub(crate) transform: bool,
    pub(crate) scan: bool,
}

/// The state shared by both dialects' drivers.
pub(crate) struct Engine<'w> {
    pub(crate) dialect: Dialect,
    rules: Option<(&'w Rules, Keyed)>,
    pub(crate) tables: HashMap<TableName, Table>,
    /// Tables in order of first appearance (for `--init`).
    pub(crate) order: Vec<TableName>,
    plans: HashMap<TableName, Arc<Plan>>,
    /// Plans for data statements without a column list (the DDL's columns).
    ddl_plans: HashMap<TableName, Arc<Plan>>,
    problems: Vec<Problem>,
    problem_keys: HashSet<(ProblemKind, String)>,
    pub(crate) report: Report,
    pub(crate) scans: Vec<detect::Scan>,
    out: &'w mut dyn Write,
    enabled: bool,
    pub(crate) line: u64,
    /// The MySQL database name (schema part of patterns).
    pub(crate) database: String,
    lo_decided: Option<bool>,
    memos: Vec<Memo>,
}

impl<'w> Engine<'w> {
    pub(crate) fn new(
        dialect: Dialect,
        rules: Option<(&'w Rules, Keyed)>,
        out: &'w mut dyn Write,
    ) -> Engine<'w> {
        Engine {
            dialect,
            rules,
            tables: HashMap::new(),
            order: Vec::new(),
            plans: HashMap::new(),
            ddl_plans: HashMap::new(),
            problems: Vec::new(),
            problem_keys: HashSet::new(),
            report: Report::default(),
            scans: Vec::new(),
            out,
            enabled: true,
            line: 0,
            database: String::new(),
            lo_decided: None,
            memos: Vec::new(),
        }
    }

    pub(crate) fn run<R: BufRead>(&mut self, input: &mut R) -> Result<(), Error> {
        let result = match self.dialect {
            Dialect::Postgres => postgres::run(self, input),
            Dialect::Mysql => mysql::run(self, input),
        };
        result.map_err(|source| Error::Io {
            line: self.line,
            source,
        })
    }

    pub(crate) fn finish(mut self) -> (Report, Vec<Problem>) {
        for c in &mut self.report.columns {
            if let ColumnAction::Scanned { .. } = c.action {
                // filled below
            }
        }
        let scans = std::mem::take(&mut self.scans);
        for s in &scans {
            if let Some(c) = self.report.columns.get_mut(s.report) {
                c.action = ColumnAction::Scanned {
                    emails: s.emails,
                    phones: s.phones.len() as u64,
                    cards: s.cards.len() as u64,
                    ips: s.ips,
                };
            }
        }
        self.report.lines = self.line;
        (self.report, self.problems)
    }

    pub(crate) fn is_init(&self) -> bool {
        self.rules.is_none()
    }

    /// Writes output bytes, unless a problem already refused the copy.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.enabled {
            self.out.write_all(bytes)?;
        }
        Ok(())
    }

    pub(crate) fn problem(
        &mut self,
        kind: ProblemKind,
        column: String,
        message: String,
        example: Option<String>,
        suggestion: Option<String>,
    ) {
        self.enabled = false;
        if self.problem_keys.insert((kind, column.clone())) {
            self.problems.push(Problem {
                kind,
                column,
                message,
                example,
                suggestion,
            });
        }
    }

    pub(crate) fn table_mut(&mut self, name: &TableName) -> &mut Table {
        if !self.tables.contains_key(name) {
            self.order.push(name.clone());
        }
        self.tables.entry(name.clone()).or_default()
    }

    /// Records a table's columns from its `CREATE TABLE`.
    pub(crate) fn define_table(&mut self, name: &TableName, columns: Vec<ColumnDef>) {
        self.table_mut(name).columns = columns;
        self.ddl_plans.clear();
    }

    /// Records `ATTACH PARTITION`.
    pub(crate) fn set_parent(&mut self, child: &TableName, parent: TableName) {
        self.table_mut(child).parent = Some(parent);
        self.ddl_plans.clear();
    }

    /// The root of a partition/inheritance chain (cycle-safe).
    pub(crate) fn root(&self, name: &TableName) -> Option<TableName> {
        let mut cur = self.tables.get(name)?.parent.clone()?;
        for _ in 0..32 {
            match self.tables.get(&cur).and_then(|t| t.parent.clone()) {
                Some(p) if p != *name => cur = p,
                _ => break,
            }
        }
        Some(cur)
    }

    fn find_column(&self, name: &TableName, column: &str) -> Option<&ColumnDef> {
        let mut cur = Some(name.clone());
        for _ in 0..32 {
            let t = self.tables.get(cur.as_ref()?)?;
            if let Some(c) = t.columns.iter().find(|c| c.name == column) {
                return Some(c);
            }
            cur = t.parent.clone();
        }
        None
    }

    /// A learned key: checked at once if the table already had data.
    pub(crate) fn add_key(&mut self, name: &TableName, cols: Vec<String>) {
        let t = self.table_mut(name);
        let has_data = t.has_data;
        t.keys.push(cols.clone());
        if has_data {
            self.check_key(name, &cols);
        }
        // Keys of a parent apply to partitions that already had data.
        let children: Vec<TableName> = self
            .tables
            .iter()
            .filter(|(n, t)| t.has_data && *n != name && self.root(n).as_ref() == Some(name))
            .map(|(n, _)| n.clone())
            .collect();
        for child in children {
            self.check_key(&child, &cols);
        }
    }

    fn check_key(&mut self, name: &TableName, key: &[String]) {
        let Some((rules, _)) = &self.rules else {
            return;
        };
        let rules: &Rules = rules;
        let parent = self.root(name);
        let mut decided = Vec::new();
        for col in key {
            let res = rules.resolve(
                (&name.0, &name.1),
                parent.as_ref().map(|p| (p.0.as_str(), p.1.as_str())),
                col,
            );
            match res {
                Ok(Some(r)) if r.rule.transformer.is_constant() || r.rule.transformer.repeats() => {
                    decided.push((col.clone(), r.rule.transformer.describe()))
                }
                _ => return,
            }
        }
        if let Some((col, how)) = decided.first() {
            let column = format!("{}.{}.{}", name.0, name.1, col);
            let key_text = key.join(", ");
            self.problem(
                ProblemKind::RuleConflict,
                column.clone(),
                format!(
                    "`{how}` on a column of the PRIMARY KEY or UNIQUE constraint ({key_text}) gives \
                     every row the same or a repeating value, so the copy could not restore"
                ),
                None,
                Some(format!("{} = \"hash\"", rules::toml_key(&name.0, &name.1, col))),
            );
        }
    }

    /// The plan for a data statement on `name` with `columns` (or the DDL's
    /// columns when the statement has no list). `None` after recording a
    /// problem when the columns are unknown.
    pub(crate) fn plan(
        &mut self,
        name: &TableName,
        columns: Option<Vec<String>>,
    ) -> Option<Arc<Plan>> {
        if columns.is_none()
            && let Some(p) = self.ddl_plans.get(name)
        {
            return Some(p.clone());
        }
        let from_ddl = columns.is_none();
        let columns = match columns {
            Some(c) => c,
            None => {
                let cols = self.all_columns(name);
                if cols.is_empty() {
                    self.problem(
                        ProblemKind::BadValue,
                        format!("{}.{}", name.0, name.1),
                        "data without a column list, and no CREATE TABLE for this table earlier in the \
                         dump, so its values cannot be matched to columns"
                            .into(),
                        None,
                        None,
                    );
                    return None;
                }
                cols
            }
        };
        if let Some(p) = self.plans.get(name)
            && p.columns == columns
        {
            if from_ddl {
                self.ddl_plans.insert(name.clone(), p.clone());
            }
            return Some(p.clone());
        }
        self.table_mut(name).has_data = true;
        let plan = Arc::new(self.build_plan(name, columns));
        self.plans.insert(name.clone(), plan.clone());
        if from_ddl {
            self.ddl_plans.insert(name.clone(), plan.clone());
        }
        let keys = self.all_keys(name);
        for key in keys {
            self.check_key(name, &key);
        }
        Some(plan)
    }

    fn all_columns(&self, name: &TableName) -> Vec<String> {
        let mut chain = vec![name.clone()];
        while let Some(p) = chain
            .last()
            .and_then(|l| self.tables.get(l))
            .and_then(|t| t.parent.clone())
        {
            if chain.contains(&p) || chain.len() > 32 {
                break;
            }
            chain.push(p);
        }
        let own: Vec<String> = self
            .tables
            .get(name)
            .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        if !own.is_empty() {
            return own;
        }
        // A `PARTITION OF` table has its parent's columns.
        for t in chain.iter().skip(1) {
            if let Some(t) = self.tables.get(t)
                && !t.columns.is_empty()
            {
                return t.columns.iter().map(|c| c.name.clone()).collect();
            }
        }
        Vec::new()
    }

    fn all_keys(&self, name: &TableName) -> Vec<Vec<String>> {
        let mut keys = self
            .tables
            .get(name)
            .map(|t| t.keys.clone())
            .unwrap_or_default();
        if let Some(root) = self.root(name)
            && let Some(t) = self.tables.get(&root)
        {
            keys.extend(t.keys.iter().cloned());
        }
        keys
    }

    fn build_plan(&mut self, name: &TableName, columns: Vec<String>) -> Plan {
        let table = format!("{}.{}", name.0, name.1);
        let parent = self.root(name);
        let mut cols = Vec::with_capacity(columns.len());
        for col in &columns {
            let def = self.find_column(name, col).cloned();
            let ty = def.as_ref().map_or_else(SqlType::unknown, |d| d.ty.clone());
            let not_null = def.as_ref().is_some_and(|d| d.not_null);
            let full = format!("{table}.{col}");
            let report = self.report.columns.len();
            let (action, rule) = self.decide(name, parent.as_ref(), col, &ty, not_null, &full);
            let kind = match &action {
                Action::Keep => ColumnAction::Kept,
                Action::Scan(_) => ColumnAction::Scanned {
                    emails: 0,
                    phones: 0,
                    cards: 0,
                    ips: 0,
                },
                Action::Transform(t, _) => ColumnAction::Transformed(t.describe()),
            };
            let action = match action {
                Action::Scan(_) => {
                    self.scans.push(detect::Scan::new(
                        full.clone(),
                        name.clone(),
                        col.clone(),
                        report,
                    ));
                    Action::Scan(self.scans.len() - 1)
                }
                a => a,
            };
            self.report.columns.push(ColumnReport {
                column: full,
                rule,
                action: kind,
                values: 0,
            });
            cols.push(ColPlan { ty, action, report });
        }
        let transform = cols
            .iter()
            .any(|c| matches!(c.action, Action::Transform(..)));
        let scan = cols.iter().any(|c| matches!(c.action, Action::Scan(_)));
        Plan {
            table,
            columns,
            cols,
            transform,
            scan,
        }
    }

    fn decide(
        &mut self,
        name: &TableName,
        parent: Option<&TableName>,
        col: &str,
        ty: &SqlType,
        not_null: bool,
        full: &str,
    ) -> (Action, String) {
        let Some((rules, _)) = &self.rules else {
            // --init: scan every text-like column.
            let action = if ty.is_text_like() {
                Action::Scan(0)
            } else {
                Action::Keep
            };
            return (action, String::new());
        };
        let rules: &Rules = rules;
        // Suggest rules on the partitioned table, which apply to all partitions.
        let named = parent.unwrap_or(name);
        let key = rules::toml_key(&named.0, &named.1, col);
        let resolved = rules.resolve(
            (&name.0, &name.1),
            parent.map(|p| (p.0.as_str(), p.1.as_str())),
            col,
        );
        let r = match resolved {
            Ok(Some(r)) => r,
            Ok(None) => {
                let suggestion = detect::suggest_by_name(col, ty).unwrap_or("keep");
                self.problem(
                    ProblemKind::Uncovered,
                    full.to_string(),
                    format!("no rule covers this column (type {})", ty.declared),
                    None,
                    Some(format!("{key} = \"{suggestion}\"")),
                );
                return (Action::Keep, String::new());
            }
            Err((a, b)) => {
                self.problem(
                    ProblemKind::RuleConflict,
                    full.to_string(),
                    format!("the patterns {a:?} and {b:?} match it equally specifically"),
                    None,
                    Some(format!("{key} = \"…\"")),
                );
                return (Action::Keep, String::new());
            }
        };
        let pattern = if r.via_parent {
            format!("{} (on the partitioned table)", r.rule.pattern.source)
        } else {
            r.rule.pattern.source.clone()
        };
        let t = r.rule.transformer.clone();
        if let Err(why) = t.check_type(ty) {
            let s = detect::suggest_by_name(col, ty).unwrap_or("null");
            self.problem(
                ProblemKind::RuleConflict,
                full.to_string(),
                format!("rule {pattern:?}: {why}"),
                None,
                Some(format!("{key} = \"{s}\"")),
            );
        }
        if not_null && matches!(*t, Transformer::Null) {
            self.problem(
                ProblemKind::RuleConflict,
                full.to_string(),
                format!(
                    "rule {pattern:?}: `null` on a NOT NULL column, so the copy could not restore"
                ),
                None,
                Some(format!("{key} = \"redact\"")),
            );
        }
        let action = match *t {
            Transformer::Keep if r.rule.pattern.column_is_literal() => Action::Keep,
            Transformer::Keep if ty.is_text_like() => Action::Scan(0),
            Transformer::Keep => Action::Keep,
            _ => {
                self.memos.push(Memo::default());
                Action::Transform(t, self.memos.len() - 1)
            }
        };
        (action, pattern)
    }

    /// Feeds one non-NULL value of a scanned column to the detectors.
    pub(crate) fn scan(&mut self, idx: usize, value: &[u8]) {
        let init = self.is_init();
        let Some(s) = self.scans.get_mut(idx) else {
            return;
        };
        if let Some(finding) = s.scan(value, !init) {
            let (column, key) = (
                s.column.clone(),
                rules::toml_key(&s.table.0, &s.table.1, &s.name),
            );
            let suggestion = detect::suggest_for_finding(&s.name, &finding);
            self.problem(
                ProblemKind::Detected,
                column,
                finding.message(),
                Some(finding.example.clone()),
                Some(format!("{key} = {suggestion}")),
            );
        }
    }

    /// Applies the column's transformer to one non-NULL value, through the
    /// column's memo (repeated values, like names or foreign keys, are
    /// computed once). `Some(false)`: the output is NULL; `None`: a problem.
    pub(crate) fn transform(
        &mut self,
        col: &ColPlan,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        let Action::Transform(t, memo) = &col.action else {
            return None;
        };
        let keyed = &self.rules.as_ref()?.1;
        let memo = self.memos.get_mut(*memo)?;
        if let Some(not_null) = memo.get(value, out) {
            return Some(not_null);
        }
        match t.apply(keyed, &col.ty, value, out) {
            Ok(not_null) => {
                memo.put(value, out, not_null);
                Some(not_null)
            }
            Err(why) => {
                let column = self
                    .report
                    .columns
                    .get(col.report)
                    .map(|c| c.column.clone())
                    .unwrap_or_default();
                self.problem(ProblemKind::BadValue, column, why, None, None);
                None
            }
        }
    }

    /// Counts a value for the report.
    pub(crate) fn count(&mut self, col: &ColPlan) {
        if let Some(c) = self.report.columns.get_mut(col.report) {
            c.values += 1;
        }
    }

    /// Large objects: refused unless `pg_catalog.pg_largeobject.data` is
    /// `null` or an explicit `keep`. Returns whether to drop their data.
    pub(crate) fn large_object(&mut self) -> bool {
        self.report.large_objects += 1;
        if let Some(d) = self.lo_decided {
            return d;
        }
        let decision = match &self.rules {
            None => Some(false),
            Some((rules, _)) => match rules.resolve(("pg_catalog", "pg_largeobject"), None, "data")
            {
                Ok(Some(r)) if matches!(*r.rule.transformer, Transformer::Null) => Some(true),
                Ok(Some(r))
                    if matches!(*r.rule.transformer, Transformer::Keep)
                        && r.rule.pattern.column_is_literal() =>
                {
                    Some(false)
                }
                _ => None,
            },
        };
        let drop = match decision {
            Some(d) => d,
            None => {
                self.problem(
                    ProblemKind::LargeObject,
                    "pg_catalog.pg_largeobject.data".into(),
                    "the dump contains large objects (lo_create/lowrite), which cannot be scanned or \
                     transformed; null them (restored empty) or keep them explicitly"
                        .into(),
                    None,
                    Some("\"pg_catalog.pg_largeobject.data\" = \"null\"".into()),
                );
                true
            }
        };
        self.lo_decided = Some(drop);
        drop
    }
}

/// A small direct-mapped cache of one column's recent transformations.
/// It switches itself off when a column's values hardly repeat.
#[derive(Default)]
struct Memo {
    slots: Vec<MemoSlot>,
    lookups: u32,
    hits: u32,
    off: bool,
}

#[derive(Default)]
struct MemoSlot {
    hash: u64,
    used: bool,
    not_null: bool,
    key: Vec<u8>,
    out: Vec<u8>,
}

const MEMO_SLOTS: usize = 1024;
const MEMO_MAX_VALUE: usize = 256;

fn memo_hash(v: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ v.len() as u64;
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^ (h >> 29)
}

impl Memo {
    fn get(&mut self, value: &[u8], out: &mut Vec<u8>) -> Option<bool> {
        if self.off || value.len() > MEMO_MAX_VALUE || self.slots.is_empty() {
            return None;
        }
        self.lookups += 1;
        if self.lookups == 8192 {
            // Fewer than 1 in 16 values repeat: not worth the lookups.
            self.off = self.hits < 512;
        }
        let h = memo_hash(value);
        let slot = &self.slots[(h as usize) & (MEMO_SLOTS - 1)];
        if slot.used && slot.hash == h && slot.key == value {
            self.hits += 1;
            out.clear();
            out.extend_from_slice(&slot.out);
            return Some(slot.not_null);
        }
        None
    }

    fn put(&mut self, value: &[u8], out: &[u8], not_null: bool) {
        if self.off || value.len() > MEMO_MAX_VALUE {
            return;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(MEMO_SLOTS, MemoSlot::default);
        }
        let h = memo_hash(value);
        let slot = &mut self.slots[(h as usize) & (MEMO_SLOTS - 1)];
        slot.hash = h;
        slot.used = true;
        slot.not_null = not_null;
        slot.key.clear();
        slot.key.extend_from_slice(value);
        slot.out.clear();
        slot.out.extend_from_slice(out);
    }
}
