//! How long to wait before trying again.

/// Backoff after `attempt` failed attempts: 1 s doubling, at most `max_ms`.
pub fn backoff_ms(attempt: i64, max_ms: i64) -> i64 {
    (1000_i64 << attempt.clamp(0, 20)).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_the_cap() {
        assert_eq!(backoff_ms(0, 300_000), 1_000);
        assert_eq!(backoff_ms(1, 300_000), 2_000);
        assert_eq!(backoff_ms(5, 300_000), 32_000);
        assert_eq!(backoff_ms(9, 300_000), 300_000);
        assert_eq!(backoff_ms(1_000, 300_000), 300_000, "no overflow");
        assert_eq!(backoff_ms(-3, 300_000), 1_000);
    }
}
