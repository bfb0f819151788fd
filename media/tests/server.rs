//! The media server behind its handle: sessions that stop taking their signals.

use std::time::Duration;

use vizit_media::{
    LeaveReason, MediaServer, ParticipantId, ParticipantInfo, Role, RoomId, SIGNAL_QUEUE,
    SfuOptions, Signal, TrackKind,
};

fn person(id: &str, role: Role) -> ParticipantInfo {
    ParticipantInfo {
        id: ParticipantId::new(id),
        name: id.into(),
        role,
        audio_muted: false,
        video_muted: false,
        screen_sharing: false,
        quality: None,
        audio_only: false,
        recordable: false,
    }
}

/// A media server on loopback, running.
async fn media_server() -> (tokio::task::JoinHandle<()>, vizit_media::MediaHandle) {
    let (server, media) = MediaServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1".parse().unwrap(),
        SfuOptions::new(vec!["127.0.0.1:9".parse().unwrap()]),
        1 << 16,
        1,
        vizit_media::IceTcp::UdpPorts,
    )
    .await
    .unwrap();
    (tokio::spawn(server.spawn().await.unwrap()), media)
}

#[tokio::test]
async fn a_session_that_does_not_take_its_signals_is_removed_not_buffered() {
    let (running, media) = media_server().await;
    let room = RoomId::new("flood");
    let (doctor, _, mut doctor_signals) = media
        .join(room.clone(), person("d", Role::Doctor))
        .await
        .unwrap();
    // The patient's session never reads its signals.
    let (_patient, _, _patient_signals) = media
        .join(room.clone(), person("p", Role::Patient))
        .await
        .unwrap();
    loop {
        match doctor_signals.recv().await {
            Some(Signal::ParticipantJoined(p)) => break assert_eq!(p.id, ParticipantId::new("p")),
            Some(_) => {}
            None => panic!("the doctor's session closed"),
        }
    }

    // The same state again tells nobody anything: ten queues' worth of it leaves the patient
    // in the room (a metrics request is answered after the mutes, in order).
    for _ in 0..10 * SIGNAL_QUEUE {
        media.mute(doctor, TrackKind::Audio, false).await;
    }
    // Two round trips: the second is served after the loop delivered the first's signals.
    media.metrics().await.unwrap();
    let metrics = media.metrics().await.unwrap();
    assert_eq!(
        metrics.rooms[&room].participants, 2,
        "the patient was dropped"
    );
    // Each change is a signal to the patient, whose queue fills.
    for i in 0..2 * SIGNAL_QUEUE {
        media.mute(doctor, TrackKind::Audio, i % 2 == 0).await;
    }
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match doctor_signals.recv().await {
                Some(Signal::ParticipantLeft { id, reason }) => return (id, reason),
                Some(_) => {}
                None => panic!("the doctor's session closed"),
            }
        }
    })
    .await
    .expect("the patient is removed");
    assert_eq!(left, (ParticipantId::new("p"), LeaveReason::ConnectionLost));
    media.shutdown().await;
    running.await.unwrap();
}

#[tokio::test]
async fn an_ended_room_cannot_be_joined_again() {
    let (running, media) = media_server().await;
    let room = RoomId::new("ended");
    // Ended before anyone got in (a join racing the cancellation): still refused after.
    assert_eq!(
        media.close_room(room.clone(), LeaveReason::CallEnded).await,
        0
    );
    let refused = media.join(room.clone(), person("d", Role::Doctor)).await;
    assert!(matches!(refused, Err(vizit_media::JoinError::Ended)));
    // Another reason does not end a room for good.
    let other = RoomId::new("other");
    media
        .close_room(other.clone(), LeaveReason::ServerShutdown)
        .await;
    assert!(media.join(other, person("d", Role::Doctor)).await.is_ok());
    media.shutdown().await;
    running.await.unwrap();
}
