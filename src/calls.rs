//! The binary maps the media plane's words onto the business layer's: `vizit-api` does not
//! depend on `vizit-media` (its rule: the business layer never links the SFU's types), so room
//! events become [`CallEvent`]s here, and the recorder's reports reach the catalogue through
//! [`RecorderReports`]. A Room's id is its consultation's id; recorders are not parties.

use std::sync::Arc;

use tokio::sync::mpsc;
use vizit_api::recordings::{CallEvent, CatalogueSink, Party, TrackDone};
use vizit_media::{Role, RoomEvent, RoomId, StopReason};
use vizit_recordings::live::{RoomSink, Track, TrackOutcome};

fn party(role: Role) -> Option<Party> {
    match role {
        Role::Doctor => Some(Party::Doctor),
        Role::Patient => Some(Party::Patient),
        Role::Recorder => None,
    }
}

/// A room event in the business layer's words; `None` for what it does not store (a
/// recorder's consent).
pub fn call_event(event: RoomEvent) -> Option<CallEvent> {
    Some(match event {
        RoomEvent::Consent {
            room,
            participant,
            role,
            consent,
        } => CallEvent::Consent {
            consultation: room.as_str().to_owned(),
            user: participant.as_str().to_owned(),
            party: party(role)?,
            consent,
        },
        RoomEvent::RecordingStarted { room, session } => CallEvent::RecordingStarted {
            consultation: room.as_str().to_owned(),
            session,
        },
        RoomEvent::RecordingStopped {
            room,
            session,
            reason,
        } => CallEvent::RecordingStopped {
            consultation: room.as_str().to_owned(),
            session,
            reason: stop_reason(reason),
        },
    })
}

/// The reason as the media plane serializes it (`roomEnded`, `consentWithdrawn`, …).
fn stop_reason(reason: StopReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}

/// Forward room events to the business layer until either side closes.
pub async fn forward_room_events(
    mut from: mpsc::UnboundedReceiver<RoomEvent>,
    to: mpsc::UnboundedSender<CallEvent>,
) {
    while let Some(event) = from.recv().await {
        if let Some(event) = call_event(event)
            && to.send(event).is_err()
        {
            break;
        }
    }
}

/// The recorder's reports, handed to the catalogue.
pub struct RecorderReports(pub Arc<CatalogueSink>);

impl RoomSink for RecorderReports {
    fn track_started(&self, track: &Track) -> Result<(), String> {
        let Some(party) = party(track.role) else {
            return Err("recorders are not recorded".into());
        };
        self.0.track_started(&track.id, track.room.as_str(), party)
    }

    fn finished(&self, room: &RoomId, session: u32, reason: StopReason, tracks: Vec<TrackOutcome>) {
        let tracks = tracks
            .into_iter()
            .map(|t| TrackDone {
                id: t.track.id,
                path: t.track.path,
                result: t.result,
            })
            .collect();
        self.0.finished(
            room.as_str(),
            session,
            reason == StopReason::ServerShutdown,
            tracks,
        );
    }
}

/// Asks the business layer at every join whether a consultation's token still admits its
/// holder (tokens of other rooms, minted by `vizit token`, are not consultations'). If the
/// database cannot answer, the signed, time-limited token is trusted: a call is not refused
/// because of an outage.
pub struct ConsultationAdmission(pub vizit_api::ApiState);

impl vizit_signaling::Admission for ConsultationAdmission {
    fn admit<'a>(
        &'a self,
        claims: &'a vizit_signaling::JoinClaims,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if !claims.rec {
                return Ok(());
            }
            match vizit_api::consultations::admits_call(&self.0.core(), &claims.room, &claims.sub)
                .await
            {
                Ok(verdict) => verdict.map(|_| ()).map_err(|why| why.words().to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a join against its consultation; admitted on the token");
                    Ok(())
                }
            }
        })
    }
}

/// Ends a consultation's live room when it is cancelled, closed or expires: both parties, and a
/// patient still in the waiting room, get `roomClosed {reason: "callEnded"}` (an outbox
/// subscriber, so no change is missed).
pub struct RoomCloser(
    pub vizit_media::MediaHandle,
    pub vizit_signaling::SignalingState,
);

impl vizit_api::platform::outbox::Subscriber for RoomCloser {
    fn name(&self) -> &'static str {
        "calls.end_room"
    }

    fn wants(&self, kind: &str) -> bool {
        use vizit_api::domain::event::EventKind;
        matches!(
            EventKind::parse(kind),
            Some(
                EventKind::ConsultationCancelled
                    | EventKind::ConsultationCompleted
                    | EventKind::ConsultationExpired
            )
        )
    }

    fn handle<'a>(
        &'a self,
        _conn: &'a mut sqlx::AnyConnection,
        event: &'a vizit_api::platform::outbox::Event,
    ) -> vizit_api::platform::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if let Some(consultation) = &event.consultation_id {
                self.1.close_waiting_room(consultation.as_str());
                let ended = self
                    .0
                    .close_room(
                        RoomId::new(consultation.as_str()),
                        vizit_media::LeaveReason::CallEnded,
                    )
                    .await;
                if ended > 0 {
                    tracing::info!(room = %consultation, participants = ended, "consultation ended: its call was closed");
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vizit_media::ParticipantId;

    #[test]
    fn room_events_become_call_events_and_recorders_are_not_parties() {
        let room = RoomId::from("0b7c8a52-6d8e-4c55-9b0a-6a2f0f7e1c11");
        let consent = call_event(RoomEvent::Consent {
            room: room.clone(),
            participant: ParticipantId::from("p1"),
            role: Role::Patient,
            consent: true,
        });
        assert_eq!(
            consent,
            Some(CallEvent::Consent {
                consultation: room.as_str().to_owned(),
                user: "p1".into(),
                party: Party::Patient,
                consent: true,
            })
        );
        let recorder = call_event(RoomEvent::Consent {
            room: room.clone(),
            participant: ParticipantId::from("rec"),
            role: Role::Recorder,
            consent: true,
        });
        assert_eq!(recorder, None);
        let stopped = call_event(RoomEvent::RecordingStopped {
            room,
            session: 3,
            reason: StopReason::ConsentWithdrawn,
        });
        assert!(
            matches!(stopped, Some(CallEvent::RecordingStopped { session: 3, ref reason, .. }) if reason == "consentWithdrawn"),
            "{stopped:?}"
        );
    }
}
