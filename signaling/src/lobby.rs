//! The waiting room: a patient's join waits here, per room, until a doctor of the room admits
//! them. Nothing of the patient reaches the media node before: no session, no media. Doctors
//! watch the room's list ([`Lobby::watch`]); an admitted participant goes straight in on every
//! later join (a reload, a rejoin after an outage).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use vizit_media::ParticipantId;

/// A room nobody waits in is forgotten (its admissions too) this long after its last use.
const FORGET_AFTER: Duration = Duration::from_secs(12 * 3600);

/// Someone in the waiting room, as the doctor sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaiterView {
    pub participant_id: ParticipantId,
    pub name: String,
    /// When they started waiting, Unix milliseconds.
    pub since: u64,
}

struct Waiter {
    ticket: u64,
    view: WaiterView,
    admit: Option<oneshot::Sender<()>>,
}

struct RoomLobby {
    waiting: Vec<Waiter>,
    admitted: HashSet<String>,
    list: watch::Sender<Vec<WaiterView>>,
    used: Instant,
}

impl RoomLobby {
    fn new() -> RoomLobby {
        RoomLobby {
            waiting: Vec::new(),
            admitted: HashSet::new(),
            list: watch::Sender::new(Vec::new()),
            used: Instant::now(),
        }
    }

    /// Tell the watching doctors who waits now: each participant once, longest waiting first.
    fn publish(&self) {
        let mut seen = HashSet::new();
        let list: Vec<WaiterView> = self
            .waiting
            .iter()
            .filter(|w| seen.insert(w.view.participant_id.as_str().to_owned()))
            .map(|w| w.view.clone())
            .collect();
        self.list.send_if_modified(|old| {
            let changed = *old != list;
            *old = list;
            changed
        });
    }
}

/// Every room's waiting room.
#[derive(Default)]
pub(crate) struct Lobby {
    rooms: Mutex<HashMap<String, RoomLobby>>,
    next_ticket: std::sync::atomic::AtomicU64,
}

/// Where a join goes.
pub(crate) enum Entry {
    /// Admitted before: straight into the call.
    Admitted,
    /// Wait: the receiver fires on admission; dropping the ticket leaves the waiting room.
    Wait(WaitTicket),
}

/// A place in a waiting room; leaving it (drop) takes the participant off the doctors' list.
pub(crate) struct WaitTicket {
    lobby: Arc<Lobby>,
    room: String,
    ticket: u64,
    pub admitted: oneshot::Receiver<()>,
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        let mut rooms = self.lobby.rooms.lock().expect("lobby");
        if let Some(room) = rooms.get_mut(&self.room) {
            room.waiting.retain(|w| w.ticket != self.ticket);
            room.used = Instant::now();
            room.publish();
        }
    }
}

impl Lobby {
    /// `participant` (named `name`) joins `room`: in at once if admitted before, else waiting.
    pub fn enter(self: &Arc<Self>, room: &str, participant: &str, name: &str) -> Entry {
        let mut rooms = self.rooms.lock().expect("lobby");
        let now = Instant::now();
        rooms.retain(|_, r| !r.waiting.is_empty() || now.duration_since(r.used) < FORGET_AFTER);
        let lobby = rooms.entry(room.to_owned()).or_insert_with(RoomLobby::new);
        lobby.used = now;
        if lobby.admitted.contains(participant) {
            return Entry::Admitted;
        }
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (admit, admitted) = oneshot::channel();
        lobby.waiting.push(Waiter {
            ticket,
            view: WaiterView {
                participant_id: ParticipantId::new(participant),
                name: name.to_owned(),
                since: unix_millis(),
            },
            admit: Some(admit),
        });
        lobby.publish();
        Entry::Wait(WaitTicket {
            lobby: self.clone(),
            room: room.to_owned(),
            ticket,
            admitted,
        })
    }

    /// Who waits in `room`, now and on every change.
    pub fn watch(&self, room: &str) -> watch::Receiver<Vec<WaiterView>> {
        let mut rooms = self.rooms.lock().expect("lobby");
        let lobby = rooms.entry(room.to_owned()).or_insert_with(RoomLobby::new);
        lobby.used = Instant::now();
        lobby.list.subscribe()
    }

    /// Admit `participant` to `room`: whoever of that id waits goes in, and later joins do
    /// too. Returns whether they were waiting (nobody is admitted ahead of time).
    pub fn admit(&self, room: &str, participant: &str) -> bool {
        let mut rooms = self.rooms.lock().expect("lobby");
        let Some(lobby) = rooms.get_mut(room) else {
            return false;
        };
        let mut found = false;
        for w in lobby
            .waiting
            .iter_mut()
            .filter(|w| w.view.participant_id.as_str() == participant)
        {
            found = true;
            if let Some(admit) = w.admit.take() {
                let _ = admit.send(());
            }
        }
        if found {
            lobby.admitted.insert(participant.to_owned());
            lobby.waiting.retain(|w| w.admit.is_some());
            lobby.used = Instant::now();
            lobby.publish();
        }
        found
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[WaiterView]) -> Vec<&str> {
        list.iter().map(|w| w.participant_id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_patient_waits_until_admitted_and_then_goes_straight_in() {
        let lobby = Arc::new(Lobby::default());
        let mut list = lobby.watch("room-1");
        let Entry::Wait(mut ticket) = lobby.enter("room-1", "p1", "Пациент") else {
            panic!("admitted before anyone admitted them");
        };
        assert_eq!(ids(&list.borrow_and_update()), ["p1"]);
        assert!(ticket.admitted.try_recv().is_err(), "not yet admitted");
        assert!(!lobby.admit("room-1", "p2"), "nobody of that id waits");
        assert!(!lobby.admit("room-2", "p1"), "another room's lobby");
        assert!(lobby.admit("room-1", "p1"));
        (&mut ticket.admitted).await.expect("admitted");
        assert!(ids(&list.borrow_and_update()).is_empty());
        drop(ticket);
        assert!(matches!(
            lobby.enter("room-1", "p1", "Пациент"),
            Entry::Admitted
        ));
        assert!(
            matches!(lobby.enter("room-2", "p1", "Пациент"), Entry::Wait(_)),
            "admitted to one room only"
        );
    }

    #[test]
    fn leaving_the_waiting_room_takes_the_patient_off_the_list() {
        let lobby = Arc::new(Lobby::default());
        let list = lobby.watch("room-1");
        let first = lobby.enter("room-1", "p1", "Первый");
        let second = lobby.enter("room-1", "p1", "Первый");
        let other = lobby.enter("room-1", "p2", "Второй");
        assert_eq!(
            ids(&list.borrow()),
            ["p1", "p2"],
            "one line per participant"
        );
        drop(first);
        assert_eq!(
            ids(&list.borrow()),
            ["p1", "p2"],
            "still waiting on another tab"
        );
        drop(second);
        assert_eq!(ids(&list.borrow()), ["p2"]);
        drop(other);
        assert!(ids(&list.borrow()).is_empty());
        assert!(!lobby.admit("room-1", "p1"), "gone: nobody to admit");
    }
}
