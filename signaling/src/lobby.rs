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

/// A room nobody waits in or watches is forgotten (its admissions too) this long after its last
/// use.
const FORGET_AFTER: Duration = Duration::from_secs(12 * 3600);
/// People waiting in one room at most (a consultation has one patient; a second tab of the same
/// person replaces the first).
pub(crate) const MAX_WAITING: usize = 16;

/// How a wait ends, besides the socket giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Admitted,
    /// The same participant now waits on another socket.
    Replaced,
    /// The room's call ended (the consultation was cancelled or closed).
    Closed,
}

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
    admit: Option<oneshot::Sender<Outcome>>,
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

    /// Tell the watching doctors who waits now, longest waiting first.
    fn publish(&self) {
        let list: Vec<WaiterView> = self.waiting.iter().map(|w| w.view.clone()).collect();
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
    /// [`MAX_WAITING`] others wait already.
    Full,
    /// Wait: the receiver fires on admission; dropping the ticket leaves the waiting room.
    Wait(WaitTicket),
}

/// A place in a waiting room; leaving it (drop) takes the participant off the doctors' list.
pub(crate) struct WaitTicket {
    lobby: Arc<Lobby>,
    room: String,
    ticket: u64,
    pub outcome: oneshot::Receiver<Outcome>,
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
    /// `participant` (named `name`) joins `room`: in at once if admitted before, else waiting
    /// (in place of the same participant's earlier wait, if any).
    pub fn enter(self: &Arc<Self>, room: &str, participant: &str, name: &str) -> Entry {
        let mut rooms = self.rooms.lock().expect("lobby");
        let now = Instant::now();
        rooms.retain(|_, r| {
            !r.waiting.is_empty()
                || r.list.receiver_count() > 0
                || now.duration_since(r.used) < FORGET_AFTER
        });
        let lobby = rooms.entry(room.to_owned()).or_insert_with(RoomLobby::new);
        lobby.used = now;
        if lobby.admitted.contains(participant) {
            return Entry::Admitted;
        }
        if let Some(i) = lobby
            .waiting
            .iter()
            .position(|w| w.view.participant_id.as_str() == participant)
        {
            let mut earlier = lobby.waiting.remove(i);
            if let Some(tell) = earlier.admit.take() {
                let _ = tell.send(Outcome::Replaced);
            }
        } else if lobby.waiting.len() >= MAX_WAITING {
            return Entry::Full;
        }
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (admit, outcome) = oneshot::channel();
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
            outcome,
        })
    }

    /// The room's call ended: whoever waits is told so, and its admissions are forgotten.
    pub fn close(&self, room: &str) {
        let mut rooms = self.rooms.lock().expect("lobby");
        if let Some(mut lobby) = rooms.remove(room) {
            for w in &mut lobby.waiting {
                if let Some(tell) = w.admit.take() {
                    let _ = tell.send(Outcome::Closed);
                }
            }
        }
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
                let _ = admit.send(Outcome::Admitted);
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
        assert!(ticket.outcome.try_recv().is_err(), "not yet admitted");
        assert!(!lobby.admit("room-1", "p2"), "nobody of that id waits");
        assert!(!lobby.admit("room-2", "p1"), "another room's lobby");
        assert!(lobby.admit("room-1", "p1"));
        assert_eq!((&mut ticket.outcome).await, Ok(Outcome::Admitted));
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

    fn ticket(entry: Entry) -> WaitTicket {
        match entry {
            Entry::Wait(ticket) => ticket,
            Entry::Admitted => panic!("admitted"),
            Entry::Full => panic!("full"),
        }
    }

    #[test]
    fn leaving_the_waiting_room_takes_the_patient_off_the_list() {
        let lobby = Arc::new(Lobby::default());
        let list = lobby.watch("room-1");
        let mut first = ticket(lobby.enter("room-1", "p1", "Первый"));
        let second = ticket(lobby.enter("room-1", "p1", "Первый"));
        assert_eq!(
            first.outcome.try_recv(),
            Ok(Outcome::Replaced),
            "a second tab replaces the first"
        );
        let other = ticket(lobby.enter("room-1", "p2", "Второй"));
        assert_eq!(
            ids(&list.borrow()),
            ["p1", "p2"],
            "one line per participant"
        );
        drop(first);
        assert_eq!(
            ids(&list.borrow()),
            ["p1", "p2"],
            "the replaced wait was off already"
        );
        drop(second);
        assert_eq!(ids(&list.borrow()), ["p2"]);
        drop(other);
        assert!(ids(&list.borrow()).is_empty());
        assert!(!lobby.admit("room-1", "p1"), "gone: nobody to admit");
    }

    #[test]
    fn a_room_holds_a_bounded_number_of_waiters_and_its_end_tells_them() {
        let lobby = Arc::new(Lobby::default());
        let mut waiting: Vec<WaitTicket> = (0..MAX_WAITING)
            .map(|i| ticket(lobby.enter("room-1", &format!("p{i}"), "П")))
            .collect();
        assert!(matches!(
            lobby.enter("room-1", "one-more", "П"),
            Entry::Full
        ));
        assert!(matches!(
            lobby.enter("room-2", "one-more", "П"),
            Entry::Wait(_)
        ));
        lobby.admit("room-1", "p0");
        lobby.close("room-1");
        assert_eq!(waiting[0].outcome.try_recv(), Ok(Outcome::Admitted));
        for w in &mut waiting[1..] {
            assert_eq!(w.outcome.try_recv(), Ok(Outcome::Closed));
        }
        drop(waiting);
        assert!(
            matches!(lobby.enter("room-1", "p0", "П"), Entry::Wait(_)),
            "admissions end with the call"
        );
    }
}
