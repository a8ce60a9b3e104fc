//! The sets `sluice daemon` runs and when each fires next: a pure table
//! that a clock reading advances, so the loop around it only sleeps,
//! starts processes and logs.

use jiff::{Timestamp, Zoned, tz::TimeZone};

use super::{Cron, ScheduleError};

/// Each scheduled set with its next fire time.
#[derive(Clone, Debug)]
pub struct Timetable {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    set: String,
    cron: Cron,
    next: Zoned,
}

/// A set whose time came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fire {
    /// The set.
    pub set: String,
    /// The fire time it was due at.
    pub due: Zoned,
    /// Its fire time after this one.
    pub next: Zoned,
}

impl Timetable {
    /// The sets (name, schedule, the schedule's time zone), each due at
    /// its first fire time after `now`; an expression that never fires is
    /// refused.
    pub fn new(
        schedules: impl IntoIterator<Item = (String, Cron, TimeZone)>,
        now: Timestamp,
    ) -> Result<Self, ScheduleError> {
        let entries = schedules
            .into_iter()
            .map(|(set, cron, tz)| {
                let next = cron.next_after(&now.to_zoned(tz)).ok_or_else(|| {
                    ScheduleError::NeverFires {
                        expr: cron.to_string(),
                    }
                })?;
                Ok(Entry { set, cron, next })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Each set and its next fire time, in the set's time zone.
    pub fn upcoming(&self) -> impl Iterator<Item = (&str, &Zoned)> {
        self.entries.iter().map(|e| (e.set.as_str(), &e.next))
    }

    /// The earliest next fire time of any set.
    pub fn next_fire(&self) -> Option<Timestamp> {
        self.entries.iter().map(|e| e.next.timestamp()).min()
    }

    /// The sets due at `now`, each once, however many of its fire times
    /// passed (after a clock jump or a suspended machine); their next fire
    /// times move past `now`.
    pub fn due(&mut self, now: Timestamp) -> Vec<Fire> {
        let mut fired = Vec::new();
        for entry in &mut self.entries {
            if entry.next.timestamp() > now {
                continue;
            }
            // A schedule that matched once matches again within its
            // search horizon (the calendar repeats every 28 years or
            // so); should it not, the set stays due at its old time.
            let Some(next) = entry
                .cron
                .next_after(&now.to_zoned(entry.next.time_zone().clone()))
            else {
                continue;
            };
            let due = std::mem::replace(&mut entry.next, next.clone());
            fired.push(Fire {
                set: entry.set.clone(),
                due,
                next,
            });
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn table(now: &str) -> Timetable {
        Timetable::new(
            [
                ("nightly", "30 2 * * *", "UTC"),
                ("quarterly", "*/15 * * * *", "UTC"),
                ("berlin", "30 2 * * *", "Europe/Berlin"),
            ]
            .map(|(set, cron, tz)| {
                (
                    set.to_owned(),
                    cron.parse().unwrap(),
                    TimeZone::get(tz).unwrap(),
                )
            }),
            at(now),
        )
        .unwrap()
    }

    fn sets(fires: &[Fire]) -> Vec<&str> {
        fires.iter().map(|f| f.set.as_str()).collect()
    }

    #[test]
    fn each_set_fires_at_its_own_time_and_only_once() {
        let mut t = table("2026-01-01T01:20:00Z");
        assert_eq!(t.next_fire(), Some(at("2026-01-01T01:30:00Z")));
        assert!(t.due(at("2026-01-01T01:29:59Z")).is_empty());
        // 01:30 UTC is 02:30 in Berlin, and a quarter hour.
        let fires = t.due(at("2026-01-01T01:30:00.2Z"));
        assert_eq!(sets(&fires), ["quarterly", "berlin"]);
        assert_eq!(
            fires[1].due.to_string(),
            "2026-01-01T02:30:00+01:00[Europe/Berlin]"
        );
        assert_eq!(
            fires[1].next.to_string(),
            "2026-01-02T02:30:00+01:00[Europe/Berlin]"
        );
        assert!(t.due(at("2026-01-01T01:30:01Z")).is_empty());
        assert_eq!(sets(&t.due(at("2026-01-01T01:45:00Z"))), ["quarterly"]);
        assert_eq!(t.next_fire(), Some(at("2026-01-01T02:00:00Z")));
        let fires = t.due(at("2026-01-01T02:30:00Z"));
        assert_eq!(sets(&fires), ["nightly", "quarterly"]);
    }

    #[test]
    fn missed_fire_times_fire_once() {
        let mut t = table("2026-01-01T00:00:00Z");
        // The clock jumps three days ahead.
        let fires = t.due(at("2026-01-04T03:10:00Z"));
        assert_eq!(sets(&fires), ["nightly", "quarterly", "berlin"]);
        assert_eq!(fires[0].due.to_string(), "2026-01-01T02:30:00+00:00[UTC]");
        assert_eq!(fires[0].next.to_string(), "2026-01-05T02:30:00+00:00[UTC]");
        assert_eq!(fires[1].next.to_string(), "2026-01-04T03:15:00+00:00[UTC]");
        assert!(t.due(at("2026-01-04T03:10:00Z")).is_empty());
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        let err = Timetable::new(
            [(
                "feb".to_owned(),
                "0 0 30 2 *".parse().unwrap(),
                TimeZone::UTC,
            )],
            at("2026-01-01T00:00:00Z"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("never fires"), "{err}");
    }
}
