//! oci-model patch (see README.md in this directory): the `genTime` of a TSTInfo.
//!
//! RFC 3161 §2.4.2 encodes `genTime` as a DER GeneralizedTime that "MUST include seconds"
//! and MAY carry fractional seconds: `YYYYMMDDhhmmss[.s...]Z`, ending in `Z`, the fraction
//! without trailing zeros (and without the `.` when it would be all zeros), as DER requires
//! (X.690 §11.7). `der::asn1::GeneralizedTime` accepts whole seconds only, so timestamps from
//! TSAs that write milliseconds were refused. This type accepts exactly that grammar (up to
//! nanosecond precision, years from 1970) and keeps the encoded bytes, so a TSTInfo re-encodes
//! byte for byte.

use der::{DecodeValue, EncodeValue, FixedTag, Header, Length, Reader, Tag, Writer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A GeneralizedTime as RFC 3161 `genTime`: whole or fractional seconds, UTC.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct GenTime {
    since_epoch: Duration,
    encoded: Vec<u8>,
}

/// The longest accepted form: 14 digits, `.`, 9 fraction digits, `Z`.
const MAX_LEN: usize = 14 + 1 + 9 + 1;

impl GenTime {
    /// Parse the content octets of a GeneralizedTime under RFC 3161's rules.
    pub fn parse(text: &[u8]) -> Result<GenTime, &'static str> {
        if text.len() > MAX_LEN {
            return Err("longer than YYYYMMDDhhmmss.nnnnnnnnnZ");
        }
        let (body, zulu) = text.split_at(text.len().saturating_sub(1));
        if zulu != b"Z" {
            return Err("does not end in Z (UTC)");
        }
        if body.len() < 14 {
            return Err("shorter than YYYYMMDDhhmmssZ (seconds are required)");
        }
        let (whole, fraction) = body.split_at(14);
        let number = |range: std::ops::Range<usize>| -> Result<u32, &'static str> {
            whole[range].iter().try_fold(0u32, |acc, &b| {
                if b.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(b - b'0'))
                } else {
                    Err("a date or time field is not decimal digits")
                }
            })
        };
        let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
        let (hour, minute, second) = (number(8..10)?, number(10..12)?, number(12..14)?);
        if year < 1970 {
            return Err("year before 1970");
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err("no such date");
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("no such time of day");
        }
        let nanos = match fraction {
            [] => 0,
            [b'.', digits @ ..] => {
                if digits.is_empty() {
                    return Err("a '.' without fraction digits");
                }
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err("the fraction is not decimal digits");
                }
                if digits.last() == Some(&b'0') {
                    return Err("the fraction has trailing zeros (not DER)");
                }
                // At most 9 digits (MAX_LEN): pad to nanoseconds.
                let value = digits
                    .iter()
                    .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
                value * 10u32.pow(9 - digits.len() as u32)
            }
            _ => return Err("seconds are followed by something other than '.' or 'Z'"),
        };
        let days = days_from_civil(year, month, day);
        let secs =
            days * 86_400 + u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
        Ok(GenTime {
            since_epoch: Duration::new(secs, nanos),
            encoded: text.to_vec(),
        })
    }

    /// The time as [`SystemTime`] (the API of `der::asn1::GeneralizedTime` this replaces).
    pub fn to_system_time(&self) -> SystemTime {
        UNIX_EPOCH + self.since_epoch
    }
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (year >= 1970).
fn days_from_civil(year: u32, month: u32, day: u32) -> u64 {
    let mut days: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    days += (1..month)
        .map(|m| u64::from(days_in_month(year, m)))
        .sum::<u64>();
    days + u64::from(day - 1)
}

impl<'a> DecodeValue<'a> for GenTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        if usize::try_from(header.length)? > MAX_LEN {
            return Err(Tag::GeneralizedTime.value_error());
        }
        let bytes = reader.read_vec(header.length)?;
        GenTime::parse(&bytes).map_err(|reason| {
            tracing::debug!(
                "TSTInfo genTime {:?} refused: {reason}",
                String::from_utf8_lossy(&bytes)
            );
            Tag::GeneralizedTime.value_error()
        })
    }
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.encoded.len())
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.encoded)
    }
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    fn secs(t: &GenTime) -> (u64, u32) {
        let d = t.to_system_time().duration_since(UNIX_EPOCH).unwrap();
        (d.as_secs(), d.subsec_nanos())
    }

    #[test]
    fn whole_and_fractional_seconds() {
        // 2026-11-29T13:50:02Z = 1795960202
        let whole = GenTime::parse(b"20261129135002Z").unwrap();
        assert_eq!(secs(&whole), (1_795_960_202, 0));
        let millis = GenTime::parse(b"20261129135002.488Z").unwrap();
        assert_eq!(secs(&millis), (1_795_960_202, 488_000_000));
        let one = GenTime::parse(b"20261129135002.5Z").unwrap();
        assert_eq!(secs(&one), (1_795_960_202, 500_000_000));
        let nanos = GenTime::parse(b"20261129135002.000000001Z").unwrap();
        assert_eq!(secs(&nanos), (1_795_960_202, 1));
        assert_eq!(secs(&GenTime::parse(b"19700101000000Z").unwrap()), (0, 0));
        assert_eq!(
            secs(&GenTime::parse(b"20240229235959Z").unwrap()),
            (1_709_251_199, 0)
        );
    }

    #[test]
    fn refuses_what_the_grammar_forbids() {
        for (text, why) in [
            (&b"20261129135002.480Z"[..], "trailing zero"),
            (b"20261129135002.0Z", "all-zero fraction"),
            (b"20261129135002.Z", "'.' without digits"),
            (b"20261129135002", "no Z"),
            (b"20261129135002.488", "no Z after fraction"),
            (b"20261129135002+0100", "offset instead of Z"),
            (b"202611291350Z", "no seconds"),
            (b"20261129135002,488Z", "comma"),
            (b"20261129135002.48aZ", "fraction not digits"),
            (b"20261129135002.1234567891Z", "more than nanoseconds"),
            (b"20261329135002Z", "month 13"),
            (b"20250229135002Z", "29 February of a common year"),
            (b"20261129245002Z", "hour 24"),
            (b"20261129135060Z", "second 60"),
            (b"19691231235959Z", "before 1970"),
            (b"2026112913500aZ", "letter in seconds"),
            (b"", "empty"),
        ] {
            assert!(GenTime::parse(text).is_err(), "accepted {why}");
        }
    }

    #[test]
    fn der_round_trip_keeps_the_bytes() {
        let der = [&[0x18, 19][..], b"20261129135002.488Z"].concat();
        let t = GenTime::from_der(&der).unwrap();
        assert_eq!(t.to_der().unwrap(), der);
        let bad = [&[0x18, 19][..], b"20261129135002.480Z"].concat();
        assert!(GenTime::from_der(&bad).is_err());
    }
}
