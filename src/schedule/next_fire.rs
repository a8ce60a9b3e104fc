//! When a cron expression fires next, in a time zone, across daylight
//! saving changes.
//!
//! Cron matches local wall-clock minutes. Where the clocks go forward, the
//! skipped local times do not exist: a schedule that names one of them
//! fires once, at the moment the clocks jump (as cron runs the jobs of a
//! skipped hour right after it). Where the clocks go back, the repeated
//! local times exist twice: a schedule fires at the first of them only.
//! So a daily `30 2 * * *` fires exactly once every day, and local times
//! map to instants in the same order, which lets the search walk local
//! time forward and stop at the first match that lies ahead.

use jiff::{
    Timestamp, ToSpan, Zoned,
    civil::{Date, DateTime},
    tz::{AmbiguousOffset, TimeZone},
};

use super::Cron;

/// How far ahead a schedule is searched before it is taken to never fire
/// (`0 0 30 2 *`): enough for the rarest real one, a leap day on a given
/// weekday.
const HORIZON_YEARS: i16 = 100;

impl Cron {
    /// The first instant strictly after `after` at which the expression
    /// fires, in `after`'s time zone; `None` if it never does (within a
    /// century), as for the 30th of February.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone();
        let start = after.datetime();
        let mut civil = start.with().second(0).subsec_nanosecond(0).build().ok()?;
        let last_year = start.year().saturating_add(HORIZON_YEARS);
        loop {
            civil = self.next_match(civil, last_year)?;
            let fire = fire_instant(tz, civil)?;
            if fire > after.timestamp() {
                return Some(fire.to_zoned(tz.clone()));
            }
            civil = civil.checked_add(1.minute()).ok()?;
        }
    }

    /// The first local minute at or after `from` that the expression
    /// matches, up to the end of `last_year`.
    fn next_match(&self, mut dt: DateTime, last_year: i16) -> Option<DateTime> {
        let midnight = |date: Date| date.to_datetime(jiff::civil::Time::midnight());
        while dt.year() <= last_year {
            dt = if !self.months.contains(&(dt.month() as u8)) {
                midnight(dt.date().first_of_month().checked_add(1.month()).ok()?)
            } else if !self.day_matches(dt.date()) {
                midnight(dt.date().tomorrow().ok()?)
            } else if !self.hours.contains(&(dt.hour() as u8)) {
                dt.with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?
            } else if !self.minutes.contains(&(dt.minute() as u8)) {
                dt.checked_add(1.minute()).ok()?
            } else {
                return Some(dt);
            };
        }
        None
    }

    /// Cron's day rule: when both the day of month and the weekday are
    /// restricted, either may match; otherwise both must.
    fn day_matches(&self, date: Date) -> bool {
        let day = self.days.contains(&(date.day() as u8));
        let weekday = self
            .weekdays
            .contains(&(date.weekday().to_sunday_zero_offset() as u8));
        if self.days_restricted && self.weekdays_restricted {
            day || weekday
        } else {
            day && weekday
        }
    }
}

/// The instant a local minute fires at: itself; the first of the two when
/// the clocks go back; the end of the gap when the clocks go forward past it.
fn fire_instant(tz: &TimeZone, civil: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    let gap = matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. });
    // For a gap, `earlier` reads the time with the offset after the gap,
    // which lands before the transition.
    let earlier = ambiguous.earlier().ok()?;
    if gap {
        tz.following(earlier).next().map(|t| t.timestamp())
    } else {
        Some(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (cron, time zone, after, expected next fire) — times as Zoned
    /// strings, RFC 9557 style.
    const TABLE: &[(&str, &str, &str, &str)] = &[
        // Daily, before and after today's time.
        (
            "30 2 * * *",
            "UTC",
            "2026-01-01T01:00:00Z",
            "2026-01-01T02:30:00+00:00[UTC]",
        ),
        (
            "30 2 * * *",
            "UTC",
            "2026-01-01T02:30:00Z",
            "2026-01-02T02:30:00+00:00[UTC]",
        ),
        (
            "30 2 * * *",
            "UTC",
            "2026-01-01T02:29:59.5Z",
            "2026-01-01T02:30:00+00:00[UTC]",
        ),
        // Every 15 minutes, across an hour and a day.
        (
            "*/15 * * * *",
            "UTC",
            "2026-01-01T10:07:00Z",
            "2026-01-01T10:15:00+00:00[UTC]",
        ),
        (
            "*/15 * * * *",
            "UTC",
            "2026-01-01T23:45:00Z",
            "2026-01-02T00:00:00+00:00[UTC]",
        ),
        // End of month and of year.
        (
            "0 0 * * *",
            "UTC",
            "2026-01-31T12:00:00Z",
            "2026-02-01T00:00:00+00:00[UTC]",
        ),
        (
            "0 0 1 * *",
            "UTC",
            "2026-12-15T00:00:00Z",
            "2027-01-01T00:00:00+00:00[UTC]",
        ),
        (
            "0 0 31 * *",
            "UTC",
            "2026-04-01T00:00:00Z",
            "2026-05-31T00:00:00+00:00[UTC]",
        ),
        // Leap day: the next one is in 2028.
        (
            "0 6 29 2 *",
            "UTC",
            "2026-01-01T00:00:00Z",
            "2028-02-29T06:00:00+00:00[UTC]",
        ),
        // Month and weekday restrictions.
        (
            "0 0 1 jan,jul *",
            "UTC",
            "2026-02-01T00:00:00Z",
            "2026-07-01T00:00:00+00:00[UTC]",
        ),
        // 2026-01-02 is a Friday: the next weekday 03:00 is Monday the 5th.
        (
            "0 3 * * 1-5",
            "UTC",
            "2026-01-02T04:00:00Z",
            "2026-01-05T03:00:00+00:00[UTC]",
        ),
        (
            "0 4 * * 7",
            "UTC",
            "2026-01-01T00:00:00Z",
            "2026-01-04T04:00:00+00:00[UTC]",
        ),
        // Both restricted: the 15th OR a Monday, whichever comes first.
        (
            "0 0 15 * 1",
            "UTC",
            "2026-01-06T00:00:00Z",
            "2026-01-12T00:00:00+00:00[UTC]",
        ),
        (
            "0 0 15 * 1",
            "UTC",
            "2026-01-12T00:00:00Z",
            "2026-01-15T00:00:00+00:00[UTC]",
        ),
        // A starred day field is not a restriction: odd days AND Mondays
        // (after Monday the 5th, Monday the 12th is even; the 19th is odd).
        (
            "0 0 */2 * 1",
            "UTC",
            "2026-01-01T00:00:00Z",
            "2026-01-05T00:00:00+00:00[UTC]",
        ),
        (
            "0 0 */2 * 1",
            "UTC",
            "2026-01-05T00:00:00Z",
            "2026-01-19T00:00:00+00:00[UTC]",
        ),
        // A time zone: 02:30 in Berlin is 01:30 UTC in winter.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-01-01T00:00:00Z",
            "2026-01-01T02:30:00+01:00[Europe/Berlin]",
        ),
        // Clocks go forward at 02:00 on 2026-03-29 in Berlin: 02:30 does
        // not exist and fires when the clocks jump, at 03:00 CEST; the next
        // day is normal again.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00[Europe/Berlin]",
            "2026-03-29T03:00:00+02:00[Europe/Berlin]",
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T03:00:00+02:00[Europe/Berlin]",
            "2026-03-30T02:30:00+02:00[Europe/Berlin]",
        ),
        // Every 15 minutes: the skipped hour's four times fire once, at
        // the jump, then 03:15 follows.
        (
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-03-29T01:45:00+01:00[Europe/Berlin]",
            "2026-03-29T03:00:00+02:00[Europe/Berlin]",
        ),
        (
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-03-29T03:00:00+02:00[Europe/Berlin]",
            "2026-03-29T03:15:00+02:00[Europe/Berlin]",
        ),
        // Clocks go back at 03:00 on 2026-10-25: 02:30 happens twice and
        // fires at the first one only; the next fire is the next day.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T00:00:00+02:00[Europe/Berlin]",
            "2026-10-25T02:30:00+02:00[Europe/Berlin]",
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T02:30:00+02:00[Europe/Berlin]",
            "2026-10-26T02:30:00+01:00[Europe/Berlin]",
        ),
        // Asked during the repeated hour, after its first 02:30: that
        // time was the fire, so the next is tomorrow.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T02:10:00+01:00[Europe/Berlin]",
            "2026-10-26T02:30:00+01:00[Europe/Berlin]",
        ),
        // New York: clocks go forward at 02:00 on 2026-03-08.
        (
            "0 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00-05:00[America/New_York]",
            "2026-03-08T03:00:00-04:00[America/New_York]",
        ),
    ];

    #[test]
    fn next_fire_times_follow_cron_rules() {
        for (cron, tz, after, expected) in TABLE {
            let tz = TimeZone::get(tz).unwrap();
            let after = match after.parse::<Zoned>() {
                Ok(zoned) => zoned,
                Err(_) => after.parse::<Timestamp>().unwrap().to_zoned(tz),
            };
            let next = cron.parse::<Cron>().unwrap().next_after(&after);
            assert_eq!(
                next.map(|z| z.to_string()).as_deref(),
                Some(*expected),
                "{cron} after {after}"
            );
        }
    }

    #[test]
    fn a_schedule_that_never_matches_has_no_next_fire() {
        let after: Zoned = "2026-01-01T00:00:00+00:00[UTC]".parse().unwrap();
        for cron in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            assert_eq!(cron.parse::<Cron>().unwrap().next_after(&after), None);
        }
    }

    #[test]
    fn a_daily_schedule_fires_once_a_day_through_a_whole_year_of_berlin() {
        let cron: Cron = "30 2 * * *".parse().unwrap();
        let mut at: Zoned = "2026-01-01T00:00:00+01:00[Europe/Berlin]".parse().unwrap();
        let mut days = Vec::new();
        for _ in 0..365 {
            at = cron.next_after(&at).unwrap();
            days.push(at.date());
        }
        let first = days[0];
        let expected: Vec<Date> = (0..365)
            .map(|i| first.checked_add(i.days()).unwrap())
            .collect();
        assert_eq!(days, expected);
    }
}
