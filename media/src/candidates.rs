//! Bounds on the remote ICE candidates of one participant ([`RemoteCandidates`]), and SDP parsed
//! before it reaches the media loop ([`Parsed`]).
//!
//! str0m pairs every remote candidate with every local one and prunes the pairs on each new
//! candidate: a thousand candidates cost the shared media loop hundreds of milliseconds. A
//! browser sends a handful (a host candidate per interface, a server-reflexive and a relay one
//! per TURN server), so each participant may give at most [`MAX_REMOTE_CANDIDATES`] distinct
//! ones over its session, in offers, answers and trickled alike; more are refused with
//! [`NegotiationError::TooManyCandidates`] before anything reaches str0m.

use std::collections::HashSet;

use str0m::change::{SdpAnswer, SdpOffer};

use crate::negotiation::{NegotiationError, formats_of};

/// Distinct remote ICE candidates one participant may give.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

/// An SDP parsed off the media loop, with its distinct candidate lines (without `a=`).
#[derive(Debug)]
pub struct Parsed<T> {
    pub sdp: T,
    pub candidates: Vec<String>,
    /// The payload types of each m-line: an answer lists no others, nor does a later offer.
    pub formats: Vec<Vec<u8>>,
    /// The client's ICE username fragment (`a=ice-ufrag`): a new one is an ICE restart.
    pub ufrag: Option<String>,
}

impl Parsed<SdpOffer> {
    pub fn offer(sdp: &str) -> Result<Self, NegotiationError> {
        let candidates = candidate_lines(sdp)?;
        let formats = formats_of(sdp);
        let ufrag = ufrag(sdp);
        let sdp =
            SdpOffer::from_sdp_string(sdp).map_err(|e| NegotiationError::BadSdp(e.to_string()))?;
        Ok(Parsed {
            sdp,
            candidates,
            formats,
            ufrag,
        })
    }
}

impl Parsed<SdpAnswer> {
    pub fn answer(sdp: &str) -> Result<Self, NegotiationError> {
        let candidates = candidate_lines(sdp)?;
        let formats = formats_of(sdp);
        let ufrag = ufrag(sdp);
        let sdp =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| NegotiationError::BadSdp(e.to_string()))?;
        Ok(Parsed {
            sdp,
            candidates,
            formats,
            ufrag,
        })
    }
}

/// The first `a=ice-ufrag` of `sdp` (with BUNDLE, one for all its m-lines).
fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}

/// The distinct `a=candidate` lines of `sdp`; too many is an error without parsing further.
fn candidate_lines(sdp: &str) -> Result<Vec<String>, NegotiationError> {
    let mut seen = HashSet::new();
    for line in sdp.lines() {
        if let Some(c) = line.trim().strip_prefix("a=candidate:") {
            seen.insert(c.trim());
            if seen.len() > MAX_REMOTE_CANDIDATES {
                return Err(NegotiationError::TooManyCandidates {
                    max: MAX_REMOTE_CANDIDATES,
                });
            }
        }
    }
    Ok(seen.into_iter().map(|c| format!("candidate:{c}")).collect())
}

/// The distinct remote candidates a participant gave so far.
#[derive(Debug, Default)]
pub(crate) struct RemoteCandidates {
    seen: HashSet<String>,
    /// The ICE username fragment of the candidates in `seen`.
    ufrag: Option<String>,
}

impl RemoteCandidates {
    /// The client's SDP carries ICE username fragment `ufrag`: a new one (an ICE restart, as
    /// after a change of network) starts a new generation of candidates, and the old ones no
    /// longer count against the bound. (str0m drops them with the old credentials.)
    pub fn generation(&mut self, ufrag: Option<&str>) {
        let Some(ufrag) = ufrag else { return };
        if self.ufrag.as_deref() != Some(ufrag) {
            if self.ufrag.is_some() {
                self.seen.clear();
            }
            self.ufrag = Some(ufrag.to_owned());
        }
    }

    /// Admit `candidates` (lines without `a=`): all of them, or none if they would pass the
    /// bound. Ones given before count once.
    pub fn admit<'a>(
        &mut self,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), NegotiationError> {
        let new: HashSet<&str> = candidates
            .into_iter()
            .filter(|c| !self.seen.contains(*c))
            .collect();
        if self.seen.len() + new.len() > MAX_REMOTE_CANDIDATES {
            return Err(NegotiationError::TooManyCandidates {
                max: MAX_REMOTE_CANDIDATES,
            });
        }
        self.seen.extend(new.into_iter().map(str::to_owned));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> String {
        format!(
            "candidate:{i} 1 udp 2122260223 192.0.2.1 {} typ host",
            40000 + i
        )
    }

    #[test]
    fn an_sdp_with_too_many_candidates_is_refused_before_parsing() {
        let mut sdp = String::from("v=0\r\nthis is not parsed\r\n");
        for i in 0..=MAX_REMOTE_CANDIDATES {
            sdp.push_str(&format!("a={}\r\n", line(i)));
        }
        assert_eq!(
            Parsed::offer(&sdp).unwrap_err(),
            NegotiationError::TooManyCandidates {
                max: MAX_REMOTE_CANDIDATES
            }
        );
        // The same line repeated (a candidate in every bundled m-line) counts once.
        let repeated = format!("v=0\r\n{}", format!("a={}\r\n", line(1)).repeat(500));
        assert_eq!(candidate_lines(&repeated).unwrap(), vec![line(1)]);
    }

    #[test]
    fn an_ice_restart_starts_the_bound_afresh() {
        let mut remote = RemoteCandidates::default();
        let all: Vec<String> = (0..MAX_REMOTE_CANDIDATES).map(line).collect();
        remote.generation(Some("aaaa"));
        remote.admit(all.iter().map(String::as_str)).unwrap();
        let one_more = line(MAX_REMOTE_CANDIDATES);
        // The same credentials (a renegotiation): still bounded.
        remote.generation(Some("aaaa"));
        remote.generation(None);
        assert!(remote.admit([one_more.as_str()]).is_err());
        // New credentials: the old generation no longer counts.
        remote.generation(Some("bbbb"));
        remote.admit(all.iter().map(String::as_str)).unwrap();
        assert!(remote.admit([one_more.as_str()]).is_err());
        assert_eq!(
            ufrag("v=0\r\na=ice-ufrag:Xy9z\r\na=ice-ufrag:other\r\n").as_deref(),
            Some("Xy9z")
        );
    }

    #[test]
    fn a_participant_gives_at_most_the_bound_over_its_session() {
        let mut remote = RemoteCandidates::default();
        let first: Vec<String> = (0..MAX_REMOTE_CANDIDATES - 1).map(line).collect();
        remote.admit(first.iter().map(String::as_str)).unwrap();
        // Given again (a renegotiation repeats them): nothing new.
        remote.admit(first.iter().map(String::as_str)).unwrap();
        // Two new ones would pass the bound: neither is taken.
        let (a, b) = (line(1000), line(1001));
        assert!(remote.admit([a.as_str(), b.as_str()]).is_err());
        remote.admit([a.as_str()]).unwrap();
        assert!(remote.admit([b.as_str()]).is_err());
    }
}
