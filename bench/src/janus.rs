//! The same load against Janus (VideoRoom plugin), through Janus's HTTP REST API: a session per
//! participant, a publisher handle (`joinandconfigure` with our offer) and a subscriber handle
//! (`join` the other's feed, answer Janus's offer, `start`). Events arrive by long-polling the
//! session. Each participant has two transports (publish, subscribe), as Janus wants.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};

use crate::{Leg, LoadOptions, PeerStats, media_loop};

/// Janus's HTTP API.
#[derive(Clone)]
pub struct Janus {
    http: reqwest::Client,
    url: String,
    next: Arc<AtomicU64>,
}

/// A Janus session and the events it received that nobody asked for yet.
pub struct Session {
    janus: Janus,
    id: u64,
    events: VecDeque<Value>,
}

impl Janus {
    pub fn new(url: &str) -> Janus {
        Janus {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    async fn post(&self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(format!("t{}", self.next.fetch_add(1, Ordering::Relaxed)));
        let reply: Value = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await?
            .json()
            .await?;
        if reply["janus"] == "error" {
            bail!("Janus refused {body}: {}", reply["error"]);
        }
        Ok(reply)
    }

    async fn session(&self) -> anyhow::Result<Session> {
        let reply = self.post("", json!({"janus": "create"})).await?;
        let id = reply["data"]["id"].as_u64().context("no session id")?;
        Ok(Session {
            janus: self.clone(),
            id,
            events: VecDeque::new(),
        })
    }

    /// A session with a VideoRoom handle, to create and destroy rooms.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let session = self.session().await?;
        let handle = session.attach().await?;
        Ok(Admin { session, handle })
    }
}

impl Session {
    async fn attach(&self) -> anyhow::Result<u64> {
        let reply = self
            .janus
            .post(
                &format!("/{}", self.id),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            )
            .await?;
        reply["data"]["id"].as_u64().context("no handle id")
    }

    /// A request to the plugin; returns Janus's immediate reply (`success` with the plugin's
    /// data, or `ack` when the answer comes as an event).
    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let reply = self
            .janus
            .post(&format!("/{}/{handle}", self.id), request)
            .await?;
        if let Some(error) = reply["plugindata"]["data"]["error"].as_str() {
            bail!("VideoRoom: {error}");
        }
        Ok(reply)
    }

    /// The next event from `handle` that `wanted` accepts, long-polling the session; events of
    /// other handles are kept for later.
    async fn event(
        &mut self,
        handle: u64,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["sender"].as_u64() == Some(handle) && wanted(e))
            {
                return Ok(self.events.remove(i).expect("found above"));
            }
            if Instant::now() > deadline {
                bail!("no such Janus event within {timeout:?}");
            }
            let polled: Value = self
                .janus
                .http
                .get(format!("{}/{}?maxev=10", self.janus.url, self.id))
                .timeout(Duration::from_secs(35))
                .send()
                .await?
                .json()
                .await?;
            let batch = match polled {
                Value::Array(list) => list,
                one => vec![one],
            };
            for event in batch {
                if let Some(error) = event["plugindata"]["data"]["error"].as_str() {
                    bail!("VideoRoom: {error}");
                }
                if event["janus"] != "keepalive" {
                    self.events.push_back(event);
                }
            }
        }
    }

    async fn destroy(&self) {
        let _ = self
            .janus
            .post(&format!("/{}", self.id), json!({"janus": "destroy"}))
            .await;
    }
}

/// Creates and destroys VideoRoom rooms.
pub struct Admin {
    session: Session,
    handle: u64,
}

impl Admin {
    /// A room for two publishers (Opus, VP8), without a bitrate cap.
    pub async fn create_room(&self) -> anyhow::Result<u64> {
        let reply = self
            .session
            .message(
                self.handle,
                json!({"request": "create", "publishers": 2, "audiocodec": "opus",
                       "videocodec": "vp8", "bitrate": 0, "notify_joining": false}),
                None,
            )
            .await?;
        reply["plugindata"]["data"]["room"]
            .as_u64()
            .with_context(|| format!("no room in {reply}"))
    }

    pub async fn destroy_room(&self, room: u64) {
        let _ = self
            .session
            .message(
                self.handle,
                json!({"request": "destroy", "room": room}),
                None,
            )
            .await;
    }

    pub async fn destroy(self) {
        self.session.destroy().await;
    }
}

/// One participant on Janus: publish, subscribe to the other's feed, exchange media, report.
pub async fn peer(
    options: &LoadOptions,
    janus: &Janus,
    ip: std::net::IpAddr,
    room_id: u64,
    room: u32,
    me: u8,
) -> anyhow::Result<PeerStats> {
    let mut session = janus.session().await?;
    let publisher = session.attach().await?;
    let mut send = Leg::bound(ip).await?;
    let (mids, offer, pending) = send.offer_senders(me)?;
    session
        .message(
            publisher,
            json!({"request": "joinandconfigure", "room": room_id, "ptype": "publisher",
                   "display": format!("p{me}"), "audio": true, "video": true}),
            Some(json!({"type": "offer", "sdp": offer.to_sdp_string()})),
        )
        .await?;
    let joined = session
        .event(publisher, Duration::from_secs(20), |e| {
            e["jsep"]["type"] == "answer"
        })
        .await?;
    send.rtc.sdp_api().accept_answer(
        pending,
        SdpAnswer::from_sdp_string(joined["jsep"]["sdp"].as_str().unwrap_or(""))?,
    )?;
    // Janus announces a publisher to the others only once its media is up: keep our
    // publishing transport going (ICE, DTLS) while we wait for the other and subscribe.
    let subscribe = async {
        let first_feed = |data: &Value| {
            data["publishers"]
                .as_array()
                .and_then(|list| list.first())
                .and_then(|p| p["id"].as_u64())
        };
        let feed = match first_feed(&joined["plugindata"]["data"]) {
            Some(feed) => feed,
            None => {
                let event = session
                    .event(publisher, Duration::from_secs(30), |e| {
                        first_feed(&e["plugindata"]["data"]).is_some()
                    })
                    .await?;
                first_feed(&event["plugindata"]["data"]).expect("checked by the filter")
            }
        };
        let subscriber = session.attach().await?;
        session
            .message(
                subscriber,
                json!({"request": "join", "room": room_id, "ptype": "subscriber",
                       "streams": [{"feed": feed}]}),
                None,
            )
            .await?;
        let attached = session
            .event(subscriber, Duration::from_secs(20), |e| {
                e["jsep"]["type"] == "offer"
            })
            .await?;
        let mut receive = Leg::bound(ip).await?;
        let answer = receive
            .rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(
                attached["jsep"]["sdp"].as_str().unwrap_or(""),
            )?)?;
        session
            .message(
                subscriber,
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer.to_sdp_string()})),
            )
            .await?;
        anyhow::Ok(receive)
    };
    let receive = match send.drive_while(subscribe).await {
        Ok(Ok(receive)) => receive,
        Ok(Err(e)) | Err(e) => {
            session.destroy().await;
            return Err(e);
        }
    };
    let mut legs = [send, receive];
    let stats = media_loop(options, room, me, &mut legs, mids, None).await;
    session.destroy().await;
    stats
}
