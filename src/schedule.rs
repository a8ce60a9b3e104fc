//! Schedules: a set's 5-field cron expression and its exact systemd
//! `OnCalendar=` equivalent, refusing what has none.
//!
//! Cron runs when the minute, hour and month match and, when both the day
//! of month and the weekday are restricted, when *either* of them does;
//! `OnCalendar=` requires both. Such an expression is refused rather than
//! translated into a timer that fires on other days. As in Vixie cron, a
//! field that starts with `*` (like `*/2`) does not count as restricted for
//! that rule: the other field then has to match as well, as on systemd.
//!
//! `sluice daemon` runs the expressions itself, with cron's own rules
//! (either day field may match), through [`Cron::next_after`] and a
//! [`Timetable`] of the sets.

mod next_fire;
mod timetable;

use std::{collections::BTreeSet, fmt, str::FromStr};

pub use timetable::{Fire, Timetable};

/// A parsed 5-field cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    /// 0 is Sunday.
    weekdays: BTreeSet<u8>,
    days_restricted: bool,
    weekdays_restricted: bool,
    text: String,
}

/// A cron expression sluice cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// Not a 5-field cron expression.
    #[error(
        "schedule `{expr}`: {reason}. Write 5 fields, minute hour day-of-month month weekday, e.g. \"30 2 * * *\" (02:30 every day) or \"0 3 * * 1-5\" (03:00 Monday to Friday)"
    )]
    Invalid {
        /// The expression.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// Day of month and weekday both restricted: cron ORs them.
    #[error(
        "schedule `{expr}` restricts both the day of the month and the weekday, which cron joins with OR (either matches) while a systemd timer requires both; restrict only one of them, or use two sets"
    )]
    DayOrWeekday {
        /// The expression.
        expr: String,
    },
    /// The expression matches no date, like the 30th of February.
    #[error(
        "schedule `{expr}` never fires: no date matches it (like the 30th of February); check the day-of-month and month fields"
    )]
    NeverFires {
        /// The expression.
        expr: String,
    },
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl FromStr for Cron {
    type Err = ScheduleError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| ScheduleError::Invalid {
            expr: expr.to_owned(),
            reason,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(invalid(format!("it has {} fields, not 5", fields.len())));
        };
        let field = |text: &str, name: &str, min: u8, max: u8, names: &[&str]| {
            parse_field(text, min, max, names).map_err(|e| invalid(format!("{name} `{text}`: {e}")))
        };
        let weekday_names: Vec<String> = WEEKDAYS.iter().map(|d| d.to_lowercase()).collect();
        let weekday_names: Vec<&str> = weekday_names.iter().map(String::as_str).collect();
        let mut weekdays = field(weekday, "weekday", 0, 7, &weekday_names)?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        Ok(Self {
            minutes: field(minute, "minute", 0, 59, &[])?,
            hours: field(hour, "hour", 0, 23, &[])?,
            days: field(day, "day of month", 1, 31, &[])?,
            months: field(month, "month", 1, 12, &MONTHS)?,
            weekdays,
            days_restricted: !day.starts_with('*'),
            weekdays_restricted: !weekday.starts_with('*'),
            text: expr.to_owned(),
        })
    }
}

/// A field's values: `*`, `*/n`, `v`, `a-b`, `a-b/n`, and lists of them.
fn parse_field(text: &str, min: u8, max: u8, names: &[&str]) -> Result<BTreeSet<u8>, String> {
    let value = |v: &str| -> Result<u8, String> {
        let lower = v.to_ascii_lowercase();
        let n = match names.iter().position(|name| *name == lower) {
            Some(i) => i as u8 + min,
            None => v
                .parse::<u8>()
                .map_err(|_| format!("`{v}` is not a number"))?,
        };
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is outside {min}-{max}"))
        }
    };
    let mut set = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u8 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step `{step}` is not a positive number"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => return Err(format!("`{part}` needs a range before /")),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("range `{range}` runs backwards"));
        }
        set.extend((from..=to).step_by(usize::from(step)));
    }
    Ok(set)
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Cron {
    /// The exact `OnCalendar=` value, in `timezone` (an IANA name; UTC
    /// when none), or why there is none.
    pub fn on_calendar(&self, timezone: Option<&str>) -> Result<String, ScheduleError> {
        if self.days_restricted && self.weekdays_restricted {
            return Err(ScheduleError::DayOrWeekday {
                expr: self.text.clone(),
            });
        }
        let weekdays = if self.weekdays.len() < 7 {
            // Monday first, as systemd counts.
            let names: Vec<&str> = (1..=7)
                .map(|d| d % 7)
                .filter(|d| self.weekdays.contains(d))
                .map(|d| WEEKDAYS[usize::from(d)])
                .collect();
            format!("{} ", names.join(","))
        } else {
            String::new()
        };
        Ok(format!(
            "{weekdays}*-{}-{} {}:{}:00 {}",
            render(&self.months, 1, 12, 2),
            render(&self.days, 1, 31, 2),
            render(&self.hours, 0, 23, 2),
            render(&self.minutes, 0, 59, 2),
            timezone.unwrap_or("UTC")
        ))
    }
}

/// A set of values in `OnCalendar=` syntax: `*`, `start/step` when the set
/// is every step-th value (three or more) from its first to the field's
/// end, else a list of values and `a..b` ranges.
fn render(values: &BTreeSet<u8>, min: u8, max: u8, width: usize) -> String {
    let all: Vec<u8> = values.iter().copied().collect();
    if all.len() == usize::from(max - min + 1) {
        return "*".to_owned();
    }
    if let [first, second, ..] = all[..] {
        let step = second - first;
        let progression: Vec<u8> = (first..=max).step_by(usize::from(step)).collect();
        if step > 1 && all.len() > 2 && progression == all {
            return format!("{first:0width$}/{step}");
        }
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1] == all[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{:0width$}..{:0width$}", all[i], all[j]));
        } else {
            parts.extend(all[i..=j].iter().map(|v| format!("{v:0width$}")));
        }
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cron expression and its `OnCalendar=` value (UTC).
    const TABLE: &[(&str, &str)] = &[
        ("30 2 * * *", "*-*-* 02:30:00 UTC"),
        ("0 * * * *", "*-*-* *:00:00 UTC"),
        ("*/15 * * * *", "*-*-* *:00/15:00 UTC"),
        ("5/15 * * * *", ""),
        ("5-59/15 * * * *", "*-*-* *:05/15:00 UTC"),
        ("0 */6 * * *", "*-*-* 00/6:00:00 UTC"),
        ("0 3 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00 UTC"),
        ("0 3 * * mon-fri", "Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00 UTC"),
        ("0 4 * * 0", "Sun *-*-* 04:00:00 UTC"),
        ("0 4 * * 7", "Sun *-*-* 04:00:00 UTC"),
        ("0 4 * * 6,0", "Sat,Sun *-*-* 04:00:00 UTC"),
        ("0 1 1 * *", "*-*-01 01:00:00 UTC"),
        ("0 1 1,15 * *", "*-*-01,15 01:00:00 UTC"),
        ("0 1 1-7 * *", "*-*-01..07 01:00:00 UTC"),
        ("0 0 1 1 *", "*-01-01 00:00:00 UTC"),
        ("0 0 1 jan,jul *", "*-01,07-01 00:00:00 UTC"),
        ("0 0 */2 * *", "*-*-01/2 00:00:00 UTC"),
        ("15,45 9-17 * * *", "*-*-* 09..17:15,45:00 UTC"),
        ("0 0,12 * 3-5 *", "*-03..05-* 00,12:00:00 UTC"),
        ("0 0 * * */2", "Tue,Thu,Sat,Sun *-*-* 00:00:00 UTC"),
        ("0 0 */2 * 1", "Mon *-*-01/2 00:00:00 UTC"),
    ];

    #[test]
    fn cron_expressions_translate_exactly() {
        for (cron, expected) in TABLE {
            let parsed = cron.parse::<Cron>();
            if expected.is_empty() {
                assert!(parsed.is_err(), "{cron} was accepted");
                continue;
            }
            let got = parsed.unwrap().on_calendar(None).unwrap();
            assert_eq!(got, *expected, "{cron}");
        }
    }

    #[test]
    fn translations_are_valid_systemd_calendar_events() {
        // systemd's own parser (installed with systemd, which test.sh
        // makes sure of) checks each translation.
        for (cron, expected) in TABLE.iter().filter(|(_, e)| !e.is_empty()) {
            let out = std::process::Command::new("systemd-analyze")
                .args(["calendar", expected])
                .output()
                .expect("systemd-analyze runs (apt-get install systemd)");
            assert!(
                out.status.success(),
                "{cron} → {expected}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn day_of_month_or_weekday_is_refused() {
        let cron: Cron = "0 2 1 * 1".parse().unwrap();
        let err = cron.on_calendar(None).unwrap_err();
        assert_eq!(
            err,
            ScheduleError::DayOrWeekday {
                expr: "0 2 1 * 1".to_owned()
            }
        );
        assert!(err.to_string().contains("OR"));
        // A starred field is unrestricted, as in cron.
        assert!(
            "0 2 */2 * 1"
                .parse::<Cron>()
                .unwrap()
                .on_calendar(None)
                .is_ok()
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (cron, needle) in [
            ("0 2 * *", "4 fields"),
            ("60 * * * *", "minute `60`: 60 is outside 0-59"),
            ("0 24 * * *", "hour `24`"),
            ("0 0 0 * *", "day of month `0`"),
            ("0 0 * 13 *", "month `13`"),
            ("0 0 * * 8", "weekday `8`"),
            ("*/0 * * * *", "not a positive number"),
            ("0 5-1 * * *", "runs backwards"),
            ("x * * * *", "`x` is not a number"),
        ] {
            let err = cron.parse::<Cron>().unwrap_err().to_string();
            assert!(err.contains(needle), "{cron}: {err}");
        }
    }

    #[test]
    fn a_timezone_is_kept() {
        let cron: Cron = "30 2 * * *".parse().unwrap();
        assert_eq!(
            cron.on_calendar(Some("Europe/Berlin")).unwrap(),
            "*-*-* 02:30:00 Europe/Berlin"
        );
    }
}
