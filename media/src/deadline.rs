//! The SFU's deadlines: when something must run next, kept as the earliest of several
//! (`Option<Instant>`: none yet).

use std::time::Instant;

/// Move `deadline` to `to` if that is earlier.
#[inline]
pub(crate) fn lower(deadline: &mut Option<Instant>, to: Instant) {
    *deadline = Some(deadline.map_or(to, |d| d.min(to)));
}
