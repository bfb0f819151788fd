//! The recordings catalogue and its admin API: local folder on both databases, S3 (SeaweedFS from
//! `scripts/test.sh`) on SQLite.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Clinic;
use reqwest::StatusCode;
use serde_json::json;
use vizit_api::Backend;
use vizit_api::recordings::{CatalogueConfirm, NewRecording, RecordingKind, Recordings, register};
use vizit_recordings::{ObjectStore, Spool};

/// What the audit log holds of a recording made, stored and downloaded.
const DOWNLOADED_RECORDING: [&str; 4] = [
    "recording.create",
    "recording.stored",
    "recording.download",
    "recording.file_served",
];

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vizit-api-rec-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A clinic whose API has recording storage on `store`, and a paid consultation.
async fn clinic(
    backend: Backend,
    store: ObjectStore,
    ttl: Duration,
    retention: Option<Duration>,
) -> (Clinic, Arc<Recordings>, String, std::path::PathBuf) {
    let mut c = Clinic::new(backend).await;
    let dir = temp_dir();
    let spool = Spool::open(dir.join("spool"), Arc::new(store)).unwrap();
    let rec = Arc::new(Recordings::new(
        spool,
        ttl,
        retention,
        b"test-url-key".to_vec(),
    ));
    c.api.state = c.api.state.clone().with_recordings(rec.clone());
    c.api.respawn().await;
    let consultation = c.booked(60).await;
    (c, rec, consultation, dir)
}

async fn record(
    c: &Clinic,
    rec: &Recordings,
    consultation: &str,
    dir: &std::path::Path,
    role: &str,
    body: &[u8],
) -> String {
    let file = dir.join(format!("{role}.webm"));
    std::fs::write(&file, body).unwrap();
    let id = register(
        &c.api.state,
        NewRecording {
            consultation_id: consultation,
            kind: RecordingKind::Participant,
            participant_role: Some(role),
            file: &file,
            content_type: "video/webm",
            started_at: Some(vizit_api::now_ms()),
            duration_ms: Some(5_000),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        rec.spool
            .run_once(&CatalogueConfirm(c.api.state.db.clone()))
            .await
            .unwrap(),
        1
    );
    id
}

/// `who` asks for a download link of `recording`; the link as a full URL.
async fn link_for(api: &common::TestApi, recording: &str, who: &str) -> String {
    let (status, link) = api
        .post(&format!("/recordings/{recording}/download"), who, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    format!(
        "{}{}",
        api.base.trim_end_matches("/api/v1"),
        link["url"].as_str().unwrap()
    )
}

on_both_databases!(local_folder_recordings, super::local_folder_recordings);

async fn local_folder_recordings(backend: Backend) {
    let root = temp_dir();
    let (c, rec, consultation, dir) = clinic(
        backend,
        ObjectStore::local(root.join("objects")),
        Duration::from_secs(2),
        Some(Duration::from_millis(1)),
    )
    .await;
    let api = &c.api;
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let doctor_file = record(&c, &rec, &consultation, &dir, "doctor", &body).await;
    let patient_file = record(&c, &rec, &consultation, &dir, "patient", b"patient track").await;

    // Only admins and head doctors see the catalogue.
    let (status, list) = api
        .get(
            &format!("/recordings?consultationId={consultation}"),
            &c.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2);
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == doctor_file.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["status"], "stored");
    assert_eq!(item["sizeBytes"], body.len() as i64);
    assert_eq!(item["durationMs"], 5000);
    assert_eq!(item["participantRole"], "doctor");
    assert_eq!(item["sha256"].as_str().unwrap().len(), 64);
    for who in [&c.patient, &c.doctor, &c.service] {
        let (status, _) = api.get("/recordings", who).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = api
            .post(
                &format!("/recordings/{doctor_file}/download"),
                who,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = api.get("/recordings?status=stored", &c.head).await;
    assert_eq!(status, StatusCode::OK);

    // Download: a signed link to this server, byte-identical, audited.
    let url = link_for(api, &doctor_file, &c.head).await;
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), body);
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(
        reqwest::get(&tampered).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let other = url.replace(&doctor_file, &patient_file);
    assert_eq!(
        reqwest::get(&other).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "a link is for one recording"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "the link expired"
    );
    let actions = api
        .audit_actions(&format!("objectId={doctor_file}"), &c.admin)
        .await;
    for a in DOWNLOADED_RECORDING {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }

    // Retention: everything is "old" here; the one on legal hold stays.
    let (status, held) = api
        .post(
            &format!("/recordings/{patient_file}/legal-hold"),
            &c.admin,
            json!({"hold": true, "reason": "жалоба пациента"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["legalHold"], true);
    let (status, _) = api
        .post(
            &format!("/recordings/{patient_file}/legal-hold"),
            &c.head,
            json!({"hold": false}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only admins set or lift holds"
    );
    let report = vizit_api::jobs::run_all(&api.state).await.unwrap();
    assert_eq!(report.recordings_deleted, 1);
    let (_, list) = api
        .get(
            &format!("/recordings?consultationId={consultation}"),
            &c.admin,
        )
        .await;
    let status_of = |id: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(&doctor_file), "deleted");
    assert_eq!(status_of(&patient_file), "stored");
    let key = format!("recordings/{consultation}/{doctor_file}.webm");
    assert!(
        !rec.store().local_path(&key).unwrap().exists(),
        "the file is gone"
    );
    let (_, audit) = api
        .get(
            &format!("/audit?objectId={doctor_file}&action=recording.delete"),
            &c.admin,
        )
        .await;
    assert_eq!(audit["total"], 1);
    let (status, problem) = api
        .post(
            &format!("/recordings/{doctor_file}/download"),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_stored"))
    );
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(dir);
}

on_both_databases!(
    patients_download_their_own_where_the_clinic_allows,
    super::patients_download_their_own_where_the_clinic_allows
);

/// `recordings.patients_may_download`: a patient lists and downloads the stored recordings of
/// their own consultations, nothing else; off (the default), patients get 403.
async fn patients_download_their_own_where_the_clinic_allows(backend: Backend) {
    let root = temp_dir();
    let (mut c, rec, consultation, dir) = clinic(
        backend,
        ObjectStore::local(root.join("objects")),
        Duration::from_secs(60),
        None,
    )
    .await;
    let stored = record(
        &c,
        &rec,
        &consultation,
        &dir,
        "doctor",
        b"the doctor's track",
    )
    .await;
    // A second file still on its way to the store: not the patient's to see yet.
    let waiting = dir.join("waiting.webm");
    std::fs::write(&waiting, b"not yet stored").unwrap();
    let uploading = register(
        &c.api.state,
        NewRecording {
            consultation_id: &consultation,
            kind: RecordingKind::Composite,
            participant_role: None,
            file: &waiting,
            content_type: "video/webm",
            started_at: Some(vizit_api::now_ms()),
            duration_ms: Some(5_000),
        },
    )
    .await
    .unwrap();

    // Off: the patient is refused, and told so by /auth/options.
    let (status, options) = c
        .api
        .call(reqwest::Method::GET, "/auth/options", None, None)
        .await;
    assert_eq!(
        (status, &options["patientRecordings"]),
        (StatusCode::OK, &json!(false))
    );
    let (status, _) = c.api.get("/recordings", &c.patient).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // On.
    let mut settings = (*c.api.state.settings).clone();
    settings.patient_recordings = true;
    c.api.state.settings = Arc::new(settings);
    c.api.respawn().await;
    let api = &c.api;
    let (_, options) = api
        .call(reqwest::Method::GET, "/auth/options", None, None)
        .await;
    assert_eq!(options["patientRecordings"], true);

    // The patient sees the stored file of their consultation, whatever status they ask for.
    for query in ["/recordings", "/recordings?status=uploading"] {
        let (status, list) = api.get(query, &c.patient).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let ids: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![stored.as_str()], "{query}");
        assert_eq!(list["total"], 1);
    }
    // The clinic still sees both.
    let (_, all) = api
        .get(
            &format!("/recordings?consultationId={consultation}"),
            &c.admin,
        )
        .await;
    assert_eq!(all["total"], 2);
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == uploading.as_str())
    );

    // Another patient: an empty list, and the recording does not exist for them.
    let (status, list) = api.get("/recordings", &c.other_patient).await;
    assert_eq!((status, &list["total"]), (StatusCode::OK, &json!(0)));
    let (status, _) = api
        .post(
            &format!("/recordings/{stored}/download"),
            &c.other_patient,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Their own file not stored yet does not exist for them either.
    let (status, _) = api
        .post(
            &format!("/recordings/{uploading}/download"),
            &c.patient,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Doctors and the portal's key stay out.
    for who in [&c.doctor, &c.service] {
        let (status, _) = api.get("/recordings", who).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // The patient's own download: the bytes, and the audit log names the patient.
    let url = link_for(api, &stored, &c.patient).await;
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"the doctor's track");
    let (_, audit) = api
        .get(
            &format!("/audit?objectId={stored}&action=recording.download"),
            &c.admin,
        )
        .await;
    assert_eq!(audit["total"], 1, "{audit}");
    assert_eq!(audit["items"][0]["actorId"], c.patient_id.as_str());
    // A family of actions: `recording.*`; the pattern's own wildcards are taken literally.
    let actions = api
        .audit_actions(&format!("objectId={stored}&action=recording.*"), &c.admin)
        .await;
    for a in DOWNLOADED_RECORDING {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    assert!(
        actions.iter().all(|a| a.starts_with("recording.")),
        "{actions:?}"
    );
    let upper = api
        .audit_actions(&format!("objectId={stored}&action=Recording.*"), &c.admin)
        .await;
    assert_eq!(
        upper, actions,
        "the family is case-blind on either database"
    );
    let (_, none) = api
        .get(
            &format!("/audit?objectId={stored}&action=rec%25.*"),
            &c.admin,
        )
        .await;
    assert_eq!(none["total"], 0, "{none}");
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_recordings_download_through_presigned_urls() {
    let env = |n: &str| {
        std::env::var(n)
            .unwrap_or_else(|_| panic!("{n} must be set (scripts/test.sh starts SeaweedFS)"))
    };
    let store = common::s3_store("api").await;
    let (c, rec, consultation, dir) =
        clinic(Backend::Sqlite, store, Duration::from_secs(3), None).await;
    let body: Vec<u8> = (0..7 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let id = record(&c, &rec, &consultation, &dir, "doctor", &body).await;
    let (status, link) = c
        .api
        .post(&format!("/recordings/{id}/download"), &c.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&env("TEST_S3_ENDPOINT")) && url.contains("X-Amz-Signature"),
        "{url}"
    );
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        body,
        "byte-identical through S3"
    );
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(
        reqwest::get(url).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "presigned URL expired"
    );
    let _ = std::fs::remove_dir_all(dir);
}

on_both_databases!(
    interrupted_recordings_are_settled_at_start,
    super::interrupted_recordings_are_settled_at_start
);

/// After a crash: a participant file still `recording` is adopted as it is and uploaded; one
/// whose file is gone, and a composite still `processing`, are failed with the reason; the
/// leftovers of composites in the making are removed.
async fn interrupted_recordings_are_settled_at_start(backend: Backend) {
    use vizit_api::recordings::live::recover_interrupted;
    use vizit_api::recordings::{Begin, RecordingStatus, begin};
    let root = temp_dir();
    let (c, rec, consultation, dir) = clinic(
        backend,
        ObjectStore::local(root.join("objects")),
        Duration::from_secs(60),
        None,
    )
    .await;
    let work = dir.join("recording");
    std::fs::create_dir_all(&work).unwrap();
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (id, kind, role, status) in [
        (
            &ids[0],
            RecordingKind::Participant,
            Some("doctor"),
            RecordingStatus::Recording,
        ),
        (
            &ids[1],
            RecordingKind::Participant,
            Some("patient"),
            RecordingStatus::Recording,
        ),
        (
            &ids[2],
            RecordingKind::Composite,
            None,
            RecordingStatus::Processing,
        ),
        // Finished, but the process stopped before the file entered the spool.
        (
            &ids[3],
            RecordingKind::Composite,
            None,
            RecordingStatus::Uploading,
        ),
    ] {
        begin(
            &c.api.state,
            &Begin {
                id,
                consultation_id: &consultation,
                kind,
                participant_role: role,
                content_type: if kind == RecordingKind::Composite {
                    "video/mp4"
                } else {
                    "video/webm"
                },
                status,
            },
        )
        .await
        .unwrap();
    }
    // The doctor's file was being written; the patient's never began.
    std::fs::write(work.join(format!("{}.webm", ids[0])), b"partial webm").unwrap();
    std::fs::write(work.join(format!("{}.compose.webm", ids[0])), b"link").unwrap();
    std::fs::write(work.join(format!("{}.mp4", ids[2])), b"half a composite").unwrap();
    std::fs::write(work.join(format!("{}.mp4", ids[3])), b"a whole composite").unwrap();

    let settled = recover_interrupted(&c.api.state, &work).await.unwrap();
    assert_eq!(settled, (2, 2));
    assert_eq!(
        rec.spool
            .run_once(&CatalogueConfirm(c.api.state.db.clone()))
            .await
            .unwrap(),
        2
    );
    let (status, list) = c
        .api
        .get(
            &format!("/recordings?consultationId={consultation}"),
            &c.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let by_id = |id: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    let adopted = by_id(&ids[0]);
    assert_eq!(adopted["status"], "stored", "{adopted}");
    assert_eq!(adopted["sizeBytes"], 12);
    assert!(
        adopted["error"]
            .as_str()
            .unwrap()
            .contains("stopped while recording")
    );
    let composite = by_id(&ids[3]);
    assert_eq!(composite["status"], "stored", "{composite}");
    assert_eq!(composite["sizeBytes"], 17);
    for id in &ids[1..3] {
        let failed = by_id(id);
        assert_eq!(failed["status"], "failed", "{failed}");
        assert!(
            failed["error"].as_str().unwrap().contains("server stopped"),
            "{failed}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "the work folder is empty: the adopted file moved into the spool, leftovers removed"
    );
    // Nothing left to settle the next time.
    assert_eq!(
        recover_interrupted(&c.api.state, &work).await.unwrap(),
        (0, 0)
    );
}
