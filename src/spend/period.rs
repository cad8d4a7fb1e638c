//! Budget periods, with boundaries in UTC: calendar day, ISO week (Monday), calendar month, or a
//! fixed window of whole hours aligned to the Unix epoch.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    /// `window_hours` in config: fixed windows of N hours.
    #[serde(skip)]
    Fixed(u32),
}

impl Period {
    /// `[start, end)` of the period containing `now`.
    pub fn bounds(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("valid midnight"));
        let today = now.date_naive();
        match self {
            Period::Daily => {
                let s = midnight(today);
                (s, s + Duration::days(1))
            }
            Period::Weekly => {
                let s = midnight(today - Duration::days(today.weekday().num_days_from_monday() as i64));
                (s, s + Duration::days(7))
            }
            Period::Monthly => {
                let first = today.with_day(1).expect("day 1 exists");
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .expect("valid first of month");
                (midnight(first), midnight(next))
            }
            Period::Fixed(hours) => {
                let len = hours.max(1) as i64 * 3600;
                let start = now.timestamp().div_euclid(len) * len;
                let s = Utc.timestamp_opt(start, 0).single().expect("valid timestamp");
                (s, s + Duration::seconds(len))
            }
        }
    }

    /// The period before the one containing `now`.
    pub fn previous_bounds(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let (start, _) = self.bounds(now);
        self.bounds(start - Duration::seconds(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn boundaries_are_utc_calendar_units() {
        let now = at("2026-11-26T13:45:00Z"); // a Thursday
        assert_eq!(Period::Daily.bounds(now), (at("2026-11-26T00:00:00Z"), at("2026-11-27T00:00:00Z")));
        assert_eq!(Period::Weekly.bounds(now), (at("2026-11-23T00:00:00Z"), at("2026-11-30T00:00:00Z")));
        assert_eq!(Period::Monthly.bounds(now), (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z")));
        assert_eq!(Period::Monthly.bounds(at("2026-12-31T23:59:59Z")).1, at("2027-01-01T00:00:00Z"));
        assert_eq!(Period::Fixed(6).bounds(now), (at("2026-11-26T12:00:00Z"), at("2026-11-26T18:00:00Z")));
        assert_eq!(Period::Monthly.previous_bounds(now).0, at("2026-10-01T00:00:00Z"));
    }
}
