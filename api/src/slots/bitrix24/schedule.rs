//! Free slots from a weekly template and bookings — pure, so it is tested without a portal.
//!
//! A template range (`from`..`to` minutes of the local day, `slot_size` minutes, on some
//! weekdays, in an IANA zone) is laid on the doctor's wall clock day by day. Around a
//! daylight-saving change: a slot whose local start does not exist (the spring-forward gap) is
//! skipped; a local start that happens twice (the autumn fold) is taken at its first occurrence;
//! every slot lasts `slot_size` minutes of real time.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Span, Timestamp};

use super::client::{Booking, SlotRange};

/// `[start, end)` in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

impl Interval {
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.start < end && start < self.end
    }
}

/// A template range Bitrix24 sent that cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template range {from}..{to} / {slot_size} min in {timezone:?}: {reason}")]
pub struct BadRange {
    pub from: i64,
    pub to: i64,
    pub slot_size: i64,
    pub timezone: String,
    pub reason: &'static str,
}

pub fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "Mon" => Weekday::Monday,
        "Tue" => Weekday::Tuesday,
        "Wed" => Weekday::Wednesday,
        "Thu" => Weekday::Thursday,
        "Fri" => Weekday::Friday,
        "Sat" => Weekday::Saturday,
        "Sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// Every template slot starting in `[from, to)` (unix seconds), sorted, without duplicates.
pub fn template_slots(ranges: &[SlotRange], from: i64, to: i64) -> Result<Vec<Interval>, BadRange> {
    let mut out = Vec::new();
    for range in ranges {
        let bad = |reason| BadRange {
            from: range.from,
            to: range.to,
            slot_size: range.slot_size,
            timezone: range.timezone.clone(),
            reason,
        };
        if !(0..=1440).contains(&range.from)
            || !(0..=1440).contains(&range.to)
            || range.to < range.from
        {
            return Err(bad("from/to must be minutes 0..1440, from ≤ to"));
        }
        if !(1..=1440).contains(&range.slot_size) {
            return Err(bad("slotSize must be 1..1440 minutes"));
        }
        let tz = TimeZone::get(&range.timezone).map_err(|_| bad("unknown time zone"))?;
        let days: Vec<Weekday> = range
            .week_days
            .iter()
            .map(|d| weekday(d).ok_or_else(|| bad("unknown weekday")))
            .collect::<Result<_, _>>()?;
        let (Ok(first), Ok(last)) = (Timestamp::from_second(from), Timestamp::from_second(to))
        else {
            return Err(bad("window out of range"));
        };
        // One day of margin each side: the local day of `from` may start before it.
        let mut day: Date = tz
            .to_datetime(first)
            .date()
            .yesterday()
            .map_err(|_| bad("date out of range"))?;
        let end_day = tz
            .to_datetime(last)
            .date()
            .tomorrow()
            .map_err(|_| bad("date out of range"))?;
        while day <= end_day {
            if days.contains(&day.weekday()) {
                let mut minute = range.from;
                while minute + range.slot_size <= range.to {
                    if let Some(start) = local_start(&tz, day, minute)
                        && start >= from
                        && start < to
                    {
                        out.push(Interval {
                            start,
                            end: start + range.slot_size * 60,
                        });
                    }
                    minute += range.slot_size;
                }
            }
            day = day.tomorrow().map_err(|_| bad("date out of range"))?;
        }
    }
    out.sort();
    out.dedup_by_key(|i| i.start);
    Ok(out)
}

/// The instant of `minute` minutes after local midnight of `day`; `None` in a DST gap.
fn local_start(tz: &TimeZone, day: Date, minute: i64) -> Option<i64> {
    let dt = day
        .to_datetime(Time::midnight())
        .checked_add(Span::new().minutes(minute))
        .ok()?;
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Gap { .. } => None,
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
            ambiguous.compatible().ok().map(|t| t.as_second())
        }
    }
}

/// Template slots of `resource` in `[from, to)` that no booking of `resource` overlaps.
pub fn free_slots(
    ranges: &[SlotRange],
    bookings: &[Booking],
    resource: i64,
    from: i64,
    to: i64,
) -> Result<Vec<Interval>, BadRange> {
    let busy: Vec<(i64, i64)> = bookings
        .iter()
        .filter(|b| b.resource_ids.contains(&resource))
        .map(|b| (b.date_period.from.timestamp, b.date_period.to.timestamp))
        .collect();
    Ok(template_slots(ranges, from, to)?
        .into_iter()
        .filter(|slot| !busy.iter().any(|(s, e)| slot.overlaps(*s, *e)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::bitrix24::client::{DatePeriod, Moment};

    fn range(from: i64, to: i64, size: i64, tz: &str, days: &[&str]) -> SlotRange {
        SlotRange {
            from,
            to,
            slot_size: size,
            timezone: tz.into(),
            week_days: days.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn moscow_weekday_template() {
        // Monday 2026-11-30, Moscow is UTC+3 all year.
        let slots = template_slots(
            &[range(540, 660, 30, "Europe/Moscow", &["Mon"])],
            ts("2026-11-29T00:00:00Z"),
            ts("2026-12-06T00:00:00Z"),
        )
        .unwrap();
        let starts: Vec<i64> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![
                ts("2026-11-30T06:00:00Z"),
                ts("2026-11-30T06:30:00Z"),
                ts("2026-11-30T07:00:00Z"),
                ts("2026-11-30T07:30:00Z"),
            ]
        );
        assert!(slots.iter().all(|s| s.end - s.start == 1800));
    }

    #[test]
    fn spring_forward_gap_is_skipped() {
        // Berlin, Sunday 2026-03-29: 02:00 → 03:00.
        let slots = template_slots(
            &[range(60, 240, 60, "Europe/Berlin", &["Sun"])],
            ts("2026-03-28T00:00:00Z"),
            ts("2026-03-30T00:00:00Z"),
        )
        .unwrap();
        let starts: Vec<i64> = slots.iter().map(|s| s.start).collect();
        // 01:00 CET = 00:00Z; 02:00 does not exist; 03:00 CEST = 01:00Z.
        assert_eq!(
            starts,
            vec![ts("2026-03-29T00:00:00Z"), ts("2026-03-29T01:00:00Z")]
        );
    }

    #[test]
    fn autumn_fold_takes_first_occurrence() {
        // Berlin, Sunday 2026-10-25: 03:00 CEST → 02:00 CET; 02:00 happens twice.
        let slots = template_slots(
            &[range(120, 180, 60, "Europe/Berlin", &["Sun"])],
            ts("2026-10-24T00:00:00Z"),
            ts("2026-10-26T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            slots,
            vec![Interval {
                start: ts("2026-10-25T00:00:00Z"),
                end: ts("2026-10-25T01:00:00Z")
            }]
        );
    }

    #[test]
    fn bookings_remove_overlapping_slots_of_their_resource_only() {
        let template = [range(600, 720, 30, "Asia/Yekaterinburg", &["Tue"])];
        let booking = |resource: i64, from: &str, to: &str| Booking {
            id: 1,
            name: None,
            description: None,
            resource_ids: vec![resource],
            date_period: DatePeriod {
                from: Moment {
                    timestamp: ts(from),
                    timezone: "Asia/Yekaterinburg".into(),
                },
                to: Moment {
                    timestamp: ts(to),
                    timezone: "Asia/Yekaterinburg".into(),
                },
            },
        };
        // Tuesday 2026-12-01 10:00–12:00 Yekaterinburg (UTC+5) = 05:00–07:00Z.
        let bookings = [
            booking(7, "2026-12-01T05:10:00Z", "2026-12-01T05:40:00Z"),
            booking(8, "2026-12-01T06:00:00Z", "2026-12-01T07:00:00Z"),
        ];
        let free = free_slots(
            &template,
            &bookings,
            7,
            ts("2026-12-01T00:00:00Z"),
            ts("2026-12-02T00:00:00Z"),
        )
        .unwrap();
        let starts: Vec<i64> = free.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![ts("2026-12-01T06:00:00Z"), ts("2026-12-01T06:30:00Z")]
        );
    }

    #[test]
    fn bad_ranges_are_errors() {
        let window = (ts("2026-12-01T00:00:00Z"), ts("2026-12-02T00:00:00Z"));
        for bad in [
            range(600, 500, 30, "Europe/Moscow", &["Tue"]),
            range(600, 700, 0, "Europe/Moscow", &["Tue"]),
            range(600, 700, 30, "Mars/Olympus", &["Tue"]),
            range(600, 700, 30, "Europe/Moscow", &["Tuesday"]),
        ] {
            assert!(template_slots(&[bad], window.0, window.1).is_err());
        }
    }
}
