//! Identifiers of a person as Russian documents write them: SNILS with its check number, a
//! mobile number, ESIA's `dd.MM.yyyy` dates.

/// `dd.MM.yyyy` → `yyyy-mm-dd` (None if it is not such a date).
pub fn iso_date(esia: &str) -> Option<String> {
    let d = jiff::civil::Date::strptime("%d.%m.%Y", esia.trim()).ok()?;
    Some(d.to_string())
}

/// The 11 digits of a SNILS with a valid check number, or None.
pub fn snils_digits(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 11
        || raw
            .chars()
            .any(|c| !(c.is_ascii_digit() || " -".contains(c)))
    {
        return None;
    }
    let d: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    let number: u32 = d[..9].iter().fold(0, |n, x| n * 10 + x);
    let check = d[9] * 10 + d[10];
    // The check number is defined for numbers above 001-001-998.
    if number > 1_001_998 {
        let sum: u32 = d[..9]
            .iter()
            .enumerate()
            .map(|(i, x)| x * (9 - i as u32))
            .sum();
        let expected = match sum {
            s if s < 100 => s,
            100 | 101 => 0,
            s => (s % 101) % 100,
        };
        if check != expected {
            return None;
        }
    }
    Some(digits)
}

/// A Russian mobile number as `+7XXXXXXXXXX` (ESIA writes `+7(900)1112233`), or None.
pub fn mobile(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let ten = match digits.len() {
        11 if digits.starts_with('7') || digits.starts_with('8') => &digits[1..],
        10 => &digits[..],
        _ => return None,
    };
    Some(format!("+7{ten}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snils_check_numbers() {
        assert_eq!(
            snils_digits("112-233-445 95").as_deref(),
            Some("11223344595")
        );
        assert_eq!(
            snils_digits("123-456-789 64").as_deref(),
            Some("12345678964")
        );
        assert_eq!(
            snils_digits("987-654-321 83").as_deref(),
            Some("98765432183")
        );
        assert_eq!(snils_digits("112-233-445 96"), None);
        assert_eq!(snils_digits("112-233-445"), None);
        assert_eq!(snils_digits("112/233/445 95"), None);
    }
}
