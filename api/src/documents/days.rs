//! Working days, for the deadline of a deletion request (152-FZ: an answer within 10 working
//! days, once extendable by 5 with a reasoned notice). A working day is Monday to Friday in the
//! clinic's time zone, except the holidays of the Labour Code (art. 112: 1–8 January, 23
//! February, 8 March, 1 and 9 May, 12 June, 4 November) and the clinic's configured extra days
//! off (the government's transfers of a year); the configured working days (a transferred
//! Saturday) count as working.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// The clinic's calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub time_zone: String,
    /// Extra days off (e.g. a holiday moved to a Monday).
    pub days_off: Vec<Date>,
    /// Weekend days that are working days this year.
    pub working: Vec<Date>,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            time_zone: "Europe/Moscow".into(),
            days_off: Vec::new(),
            working: Vec::new(),
        }
    }
}

/// The Labour Code's non-working holidays (art. 112), as (month, day).
const HOLIDAYS: [(i8, i8); 14] = [
    (1, 1),
    (1, 2),
    (1, 3),
    (1, 4),
    (1, 5),
    (1, 6),
    (1, 7),
    (1, 8),
    (2, 23),
    (3, 8),
    (5, 1),
    (5, 9),
    (6, 12),
    (11, 4),
];

impl Calendar {
    fn zone(&self) -> TimeZone {
        TimeZone::get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    pub fn is_working(&self, day: Date) -> bool {
        if self.working.contains(&day) {
            return true;
        }
        if self.days_off.contains(&day) {
            return false;
        }
        let weekend = matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday);
        !weekend && !HOLIDAYS.contains(&(day.month(), day.day()))
    }

    /// The end of the `n`-th working day after the day of `from` (UTC milliseconds): the
    /// day a request arrives does not count, the deadline is midnight after the last day.
    pub fn after_working_days(&self, from: i64, n: u32) -> i64 {
        let tz = self.zone();
        let Ok(t) = Timestamp::from_millisecond(from) else {
            return from;
        };
        let mut day = tz.to_datetime(t).date();
        let mut left = n;
        while left > 0 {
            let Ok(next) = day.tomorrow() else {
                return from;
            };
            day = next;
            if self.is_working(day) {
                left -= 1;
            }
        }
        day.tomorrow()
            .ok()
            .and_then(|d| {
                tz.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                    .ok()
            })
            .map(|t| t.as_millisecond())
            .unwrap_or(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn ten_working_days_skip_weekends_and_holidays() {
        let c = Calendar::default();
        // Monday 7 Dec 2026, 10:00 MSK: the 10th working day after it is Monday 21 Dec;
        // the deadline is its end, 22 Dec 00:00 MSK.
        assert_eq!(
            c.after_working_days(ms("2026-12-07T07:00:00Z"), 10),
            ms("2026-12-21T21:00:00Z")
        );
        // Friday 25 Dec, 23:00 MSK: 28–31 Dec are four working days, 1–8 January holidays,
        // so the 10th working day is Monday 18 January 2027.
        assert_eq!(
            c.after_working_days(ms("2026-12-25T20:00:00Z"), 10),
            ms("2027-01-18T21:00:00Z")
        );
        // The day is the clinic's: 23:30 MSK on Friday is Friday, not Saturday.
        assert_eq!(
            c.after_working_days(ms("2026-12-11T20:30:00Z"), 1),
            ms("2026-12-14T21:00:00Z")
        );
    }

    #[test]
    fn configured_days_off_and_working_days_count() {
        let c = Calendar {
            days_off: vec!["2026-12-08".parse().unwrap()],
            working: vec!["2026-12-12".parse().unwrap()],
            ..Calendar::default()
        };
        // Mon 7 Dec → Tue 8 off, Wed 9, Thu 10, Fri 11, Sat 12 working: the 4th is Sat 12.
        assert_eq!(
            c.after_working_days(ms("2026-12-07T07:00:00Z"), 4),
            ms("2026-12-12T21:00:00Z")
        );
        assert!(!c.is_working("2027-03-08".parse().unwrap()));
        assert!(c.is_working("2027-03-09".parse().unwrap()));
    }
}
