//! The OpenAPI document is valid 3.1, names every route, and every response the tests see matches
//! the schema it documents for that status — no undocumented field, no missing required one.

mod common;

use common::Clinic;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every route of `vizit_api::router` (keep in step with lib.rs).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/dev-login"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/patients"),
    ("post", "/api/v1/patients/{id}/sessions"),
    ("post", "/api/v1/staff"),
    ("get", "/api/v1/staff"),
    ("post", "/api/v1/staff/{id}/disable"),
    ("post", "/api/v1/api-keys"),
    ("get", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{id}"),
    ("get", "/api/v1/doctors"),
    ("get", "/api/v1/doctors/{id}/slots"),
    ("post", "/api/v1/doctors/{id}/slots"),
    ("post", "/api/v1/consultations"),
    ("get", "/api/v1/consultations"),
    ("get", "/api/v1/consultations/{id}"),
    ("post", "/api/v1/consultations/{id}/cancel"),
    ("post", "/api/v1/consultations/{id}/payment"),
    ("post", "/api/v1/consultations/{id}/join"),
    ("post", "/api/v1/consultations/{id}/complete"),
    ("post", "/api/v1/consultations/{id}/reschedule"),
    ("get", "/api/v1/admin/overdue"),
    ("get", "/api/v1/admin/slot-conflicts"),
    ("get", "/api/v1/audit"),
    ("post", "/api/v1/integrations/bitrix24/events"),
    ("get", "/api/v1/admin/integrations/bitrix24"),
    ("post", "/api/v1/admin/integrations/bitrix24/sync"),
    ("get", "/api/v1/admin/integrations/bitrix24/outbound"),
    (
        "post",
        "/api/v1/admin/integrations/bitrix24/outbound/{id}/retry",
    ),
    ("get", "/api/v1/recordings"),
    ("post", "/api/v1/recordings/{id}/download"),
    ("get", "/api/v1/recordings/{id}/file"),
    ("post", "/api/v1/recordings/{id}/legal-hold"),
    ("post", "/api/v1/consultations/{id}/checkout"),
    ("get", "/api/v1/consultations/{id}/payments"),
    ("get", "/api/v1/admin/payments"),
    ("get", "/api/v1/admin/refunds"),
    ("get", "/api/v1/admin/receipts"),
    ("post", "/api/v1/payments/{id}/refunds"),
    ("post", "/api/v1/integrations/yookassa/notifications"),
    ("get", "/api/v1/admin/emails"),
    ("put", "/api/v1/doctors/{id}/price"),
    ("post", "/api/v1/admin/emails/{id}/retry"),
    ("get", "/api/v1/admin/notifications"),
    ("get", "/api/v1/notifications/open/{token}"),
    ("post", "/api/v1/admin/notifications/{id}/resend"),
    ("get", "/api/v1/me/notifications"),
    ("put", "/api/v1/me/notifications"),
    ("post", "/api/v1/me/notifications/max"),
    ("delete", "/api/v1/me/notifications/max"),
    ("post", "/api/v1/integrations/max/webhook"),
    ("post", "/api/v1/integrations/edna/status"),
    ("get", "/api/v1/consultations/{id}/questionnaires"),
    ("post", "/api/v1/consultations/{id}/questionnaires"),
    ("get", "/api/v1/questionnaires/{id}"),
    ("put", "/api/v1/questionnaires/{id}"),
    ("get", "/api/v1/me/questionnaires"),
    ("get", "/api/v1/admin/questionnaire-forms"),
    ("post", "/api/v1/admin/questionnaire-forms/{kind}"),
    ("post", "/api/v1/me/deletion-requests"),
    ("get", "/api/v1/me/deletion-requests"),
    ("get", "/api/v1/admin/deletion-requests"),
    ("post", "/api/v1/admin/deletion-requests/{id}/answer"),
    ("post", "/api/v1/admin/deletion-requests/{id}/extend"),
    ("get", "/api/v1/auth/options"),
    ("get", "/api/v1/me/personal-data"),
    ("get", "/api/v1/patients/{id}/personal-data"),
    ("get", "/api/v1/consultations/{id}/identifications"),
    ("get", "/api/v1/consultations/{id}/patient-data"),
    ("get", "/api/v1/call/messages"),
    ("post", "/api/v1/call/messages"),
    ("post", "/api/v1/call/files"),
    ("get", "/api/v1/call/files/{id}"),
    ("get", "/api/v1/consultations/{id}/messages"),
    ("get", "/api/v1/consultations/{id}/files/{file}"),
    ("post", "/api/v1/connection-check"),
    ("get", "/api/v1/call/link"),
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown schema type {other}"),
    }
}

/// A small JSON-Schema check, enough for what utoipa emits.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            return if options.iter().any(|s| check(doc, s, value, at).is_ok()) {
                Ok(())
            } else {
                Err(format!("{at}: {value} matches none of {key} {options:?}"))
            };
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, value, at)?;
        }
        return Ok(());
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {values:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()), // any value (e.g. free-form details)
    };
    if !types.iter().any(|t| type_matches(t, value)) {
        return Err(format!("{at}: {value} is not of type {types:?}"));
    }
    if let (Some(object), true) = (value.as_object(), types.contains(&"object")) {
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                return Err(format!("{at}: required field {name} is missing"));
            }
        }
        for (name, field) in object {
            let Some(field_schema) = properties.get(name) else {
                return Err(format!("{at}: field {name} is not in the document"));
            };
            check(doc, field_schema, field, &format!("{at}.{name}"))?;
        }
    }
    if let (Some(items), true) = (value.as_array(), types.contains(&"array")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

struct Conformance {
    doc: Value,
    checked: Vec<String>,
}

impl Conformance {
    fn see(&mut self, method: &str, template: &str, status: StatusCode, body: &Value) {
        let op = &self.doc["paths"][template][method];
        assert!(!op.is_null(), "{method} {template} is not in the document");
        let response = &op["responses"][status.as_str()];
        assert!(
            !response.is_null(),
            "{method} {template} answered {status}, which the document does not list"
        );
        let content = &response["content"];
        if body.is_null() {
            assert!(
                content.is_null(),
                "{method} {template} {status}: documented a body, got none"
            );
        } else {
            // The helper checked what the server sent: a problem document for every error,
            // JSON otherwise. The document must say the same.
            let media_type = if status.is_client_error() || status.is_server_error() {
                "application/problem+json"
            } else {
                "application/json"
            };
            let schema = content
                .get(media_type)
                .map(|c| &c["schema"])
                .unwrap_or_else(|| {
                    panic!(
                        "{method} {template} {status}: no {media_type} body documented for {body} \
                         (documented: {content})"
                    )
                });
            if let Err(e) = check(
                &self.doc,
                schema,
                body,
                &format!("{method} {template} {status}"),
            ) {
                panic!("{e}");
            }
        }
        self.checked.push(format!("{method} {template} {status}"));
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_every_route() {
    let c = Clinic::new(vizit_api::Backend::Sqlite).await;
    let (status, doc) = c.api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for (method, path) in ROUTES {
        assert!(
            !doc["paths"][path][method].is_null(),
            "{method} {path} missing from the document"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists routes the router does not have"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let (status, _) = c.api.call(Method::GET, "/docs", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_the_tests_see_matches_the_document() {
    let c = Clinic::new(vizit_api::Backend::Sqlite).await;
    let api = &c.api;
    let (_, doc) = api.call(Method::GET, "/openapi.json", None, None).await;
    let mut seen = Conformance {
        doc,
        checked: Vec::new(),
    };
    macro_rules! see {
        ($method:literal, $template:literal, $resp:expr) => {{
            let (status, body) = $resp;
            seen.see($method, $template, status, &body);
            body
        }};
    }

    see!(
        "post",
        "/api/v1/auth/login",
        api.call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "admin@clinic.test", "password": "password-123456"}))
        )
        .await
    );
    see!(
        "post",
        "/api/v1/auth/login",
        api.call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "x@y.z", "password": "wrong"}))
        )
        .await
    );
    see!(
        "post",
        "/api/v1/auth/dev-login",
        api.call(
            Method::POST,
            "/auth/dev-login",
            None,
            Some(json!({"name": "Демо"}))
        )
        .await
    );
    see!("get", "/api/v1/me", api.get("/me", &c.patient).await);
    see!("get", "/api/v1/me", api.get("/me", &c.service).await);
    see!(
        "get",
        "/api/v1/me",
        api.call(Method::GET, "/me", None, None).await
    );
    let patient = see!(
        "post",
        "/api/v1/patients",
        api.post(
            "/patients",
            &c.service,
            json!({"name": "Новый", "email": "n@example.test"})
        )
        .await
    );
    let pid = patient["id"].as_str().unwrap();
    see!(
        "post",
        "/api/v1/patients/{id}/sessions",
        api.post(&format!("/patients/{pid}/sessions"), &c.service, json!({}))
            .await
    );
    see!(
        "post",
        "/api/v1/patients/{id}/sessions",
        api.post(&format!("/patients/{pid}/sessions"), &c.admin, json!({}))
            .await
    );
    see!("post", "/api/v1/staff", api.post("/staff", &c.admin, json!({"role": "doctor", "email": "d2@clinic.test", "name": "Д", "password": "password-123456", "specialty": "ЛОР"})).await);
    see!("post", "/api/v1/staff", api.post("/staff", &c.admin, json!({"role": "doctor", "email": "d2@clinic.test", "name": "Д", "password": "password-123456", "specialty": "ЛОР"})).await);
    let staff = see!("get", "/api/v1/staff", api.get("/staff", &c.admin).await);
    let other_doctor = staff
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["email"] == "other-doctor@clinic.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    see!(
        "post",
        "/api/v1/staff/{id}/disable",
        api.post(
            &format!("/staff/{other_doctor}/disable"),
            &c.admin,
            json!({})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/staff/{id}/disable",
        api.post(
            &format!("/staff/{other_doctor}/disable"),
            &c.admin,
            json!({})
        )
        .await
    );
    let key = see!(
        "post",
        "/api/v1/api-keys",
        api.post("/api-keys", &c.admin, json!({"name": "spare"}))
            .await
    );
    see!(
        "get",
        "/api/v1/api-keys",
        api.get("/api-keys", &c.admin).await
    );
    let kid = key["id"].as_str().unwrap();
    see!(
        "delete",
        "/api/v1/api-keys/{id}",
        api.call(
            Method::DELETE,
            &format!("/api-keys/{kid}"),
            Some(&c.admin),
            None
        )
        .await
    );
    see!(
        "delete",
        "/api/v1/api-keys/{id}",
        api.call(
            Method::DELETE,
            &format!("/api-keys/{kid}"),
            Some(&c.admin),
            None
        )
        .await
    );
    see!(
        "get",
        "/api/v1/doctors",
        api.get("/doctors", &c.patient).await
    );
    see!(
        "get",
        "/api/v1/doctors/{id}/slots",
        api.get(&format!("/doctors/{}/slots", c.doctor_id), &c.patient)
            .await
    );
    let slot = see!("post", "/api/v1/doctors/{id}/slots", api.post(&format!("/doctors/{}/slots", c.doctor_id), &c.service, json!({"startsAt": "2099-03-01T10:00:00+03:00", "endsAt": "2099-03-01T10:30:00+03:00", "priceKopecks": 150000})).await);
    see!("post", "/api/v1/doctors/{id}/slots", api.post(&format!("/doctors/{}/slots", c.doctor_id), &c.patient, json!({"startsAt": "2099-03-01T10:00:00Z", "endsAt": "2099-03-01T10:30:00Z", "priceKopecks": 1})).await);
    let booked = see!(
        "post",
        "/api/v1/consultations",
        api.post("/consultations", &c.patient, json!({"slotId": slot["id"]}))
            .await
    );
    see!(
        "post",
        "/api/v1/consultations",
        api.post(
            "/consultations",
            &c.other_patient,
            json!({"slotId": slot["id"]})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations",
        api.post("/consultations", &c.patient, json!({"slotId": 1}))
            .await
    );
    let id = booked["id"].as_str().unwrap();
    see!(
        "get",
        "/api/v1/consultations",
        api.get("/consultations?doctorId=not-an-id", &c.admin).await
    );

    // Documents: a questionnaire assigned, filled in, read; the forms; a deletion request.
    let q = see!(
        "post",
        "/api/v1/consultations/{id}/questionnaires",
        api.post(
            &format!("/consultations/{id}/questionnaires"),
            &c.doctor,
            json!({"kind": "anamnesis"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/questionnaires",
        api.post(
            &format!("/consultations/{id}/questionnaires"),
            &c.doctor,
            json!({"kind": "anamnesis"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/questionnaires",
        api.post(
            &format!("/consultations/{id}/questionnaires"),
            &c.patient,
            json!({"kind": "symptoms"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/questionnaires",
        api.post(
            &format!("/consultations/{id}/questionnaires"),
            &c.doctor,
            json!({"kind": "dreams"})
        )
        .await
    );
    let qid = q["id"].as_str().unwrap();
    see!(
        "put",
        "/api/v1/questionnaires/{id}",
        api.put(
            &format!("/questionnaires/{qid}"),
            &c.patient,
            json!({"answers": {"allergy": false}, "submit": true})
        )
        .await
    );
    see!(
        "put",
        "/api/v1/questionnaires/{id}",
        api.put(
            &format!("/questionnaires/{qid}"),
            &c.patient,
            json!({"answers": {"allergy": "нет"}})
        )
        .await
    );
    see!(
        "put",
        "/api/v1/questionnaires/{id}",
        api.put(
            &format!("/questionnaires/{qid}"),
            &c.doctor,
            json!({"answers": {}})
        )
        .await
    );
    see!(
        "put",
        "/api/v1/questionnaires/{id}",
        api.put(
            &format!("/questionnaires/{qid}"),
            &c.other_patient,
            json!({"answers": {}})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/questionnaires/{id}",
        api.get(&format!("/questionnaires/{qid}"), &c.doctor).await
    );
    see!(
        "get",
        "/api/v1/questionnaires/{id}",
        api.get(&format!("/questionnaires/{qid}"), &c.other_patient)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/questionnaires",
        api.get(&format!("/consultations/{id}/questionnaires"), &c.admin)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/questionnaires",
        api.get(
            &format!("/consultations/{id}/questionnaires"),
            &c.other_doctor
        )
        .await
    );
    see!(
        "get",
        "/api/v1/me/questionnaires",
        api.get("/me/questionnaires", &c.patient).await
    );
    see!(
        "get",
        "/api/v1/me/questionnaires",
        api.get("/me/questionnaires", &c.doctor).await
    );
    let forms = see!(
        "get",
        "/api/v1/admin/questionnaire-forms",
        api.get("/admin/questionnaire-forms", &c.doctor).await
    );
    see!(
        "get",
        "/api/v1/admin/questionnaire-forms",
        api.get("/admin/questionnaire-forms", &c.patient).await
    );
    let symptoms = forms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "symptoms")
        .unwrap()
        .clone();
    see!(
        "post",
        "/api/v1/admin/questionnaire-forms/{kind}",
        api.post(
            "/admin/questionnaire-forms/symptoms",
            &c.admin,
            json!({"title": symptoms["title"], "questions": symptoms["questions"]})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/questionnaire-forms/{kind}",
        api.post(
            "/admin/questionnaire-forms/symptoms",
            &c.admin,
            json!({"title": "", "questions": []})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/questionnaire-forms/{kind}",
        api.post(
            "/admin/questionnaire-forms/symptoms",
            &c.doctor,
            json!({"title": "x", "questions": []})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/questionnaire-forms/{kind}",
        api.post(
            "/admin/questionnaire-forms/dreams",
            &c.admin,
            json!({"title": "x", "questions": []})
        )
        .await
    );
    let request = see!(
        "post",
        "/api/v1/me/deletion-requests",
        api.post(
            "/me/deletion-requests",
            &c.patient,
            json!({"comment": "Удалите, пожалуйста"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/me/deletion-requests",
        api.post("/me/deletion-requests", &c.patient, json!({}))
            .await
    );
    see!(
        "post",
        "/api/v1/me/deletion-requests",
        api.post("/me/deletion-requests", &c.doctor, json!({}))
            .await
    );
    see!(
        "get",
        "/api/v1/me/deletion-requests",
        api.get("/me/deletion-requests", &c.patient).await
    );
    see!(
        "get",
        "/api/v1/me/deletion-requests",
        api.get("/me/deletion-requests?status=lost", &c.patient)
            .await
    );
    see!(
        "get",
        "/api/v1/me/deletion-requests",
        api.get("/me/deletion-requests", &c.admin).await
    );
    see!(
        "get",
        "/api/v1/admin/deletion-requests",
        api.get("/admin/deletion-requests?status=pending", &c.admin)
            .await
    );
    see!(
        "get",
        "/api/v1/admin/deletion-requests",
        api.get("/admin/deletion-requests", &c.patient).await
    );
    let rid = request["id"].as_str().unwrap();
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/extend",
        api.post(
            &format!("/admin/deletion-requests/{rid}/extend"),
            &c.admin,
            json!({"reason": "Нужно запросить архив"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/extend",
        api.post(
            &format!("/admin/deletion-requests/{rid}/extend"),
            &c.admin,
            json!({"reason": "Ещё раз"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/answer",
        api.post(
            &format!("/admin/deletion-requests/{rid}/answer"),
            &c.admin,
            json!({"outcome": "refused"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/answer",
        api.post(
            &format!("/admin/deletion-requests/{rid}/answer"),
            &c.admin,
            json!({"outcome": "done", "keep": [{"questionnaireId": qid,
                   "reason": "323-ФЗ ст. 22: медицинская документация"}]})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/answer",
        api.post(
            &format!("/admin/deletion-requests/{rid}/answer"),
            &c.admin,
            json!({"outcome": "done"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/extend",
        api.post(
            &format!("/admin/deletion-requests/{rid}/extend"),
            &c.patient,
            json!({"reason": "x"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/deletion-requests/{id}/answer",
        api.post(
            &format!("/admin/deletion-requests/{}/answer", uuid::Uuid::new_v4()),
            &c.admin,
            json!({"outcome": "done"})
        )
        .await
    );

    see!(
        "get",
        "/api/v1/consultations",
        api.get("/consultations?limit=10", &c.patient).await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}",
        api.get(&format!("/consultations/{id}"), &c.doctor).await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}",
        api.get(&format!("/consultations/{id}"), &c.other_patient)
            .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/join",
        api.post(&format!("/consultations/{id}/join"), &c.patient, json!({}))
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/identifications",
        api.get(&format!("/consultations/{id}/identifications"), &c.doctor)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/identifications",
        api.get(&format!("/consultations/{id}/identifications"), &c.patient)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/patient-data",
        api.get(&format!("/consultations/{id}/patient-data"), &c.doctor)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/patient-data",
        api.get(&format!("/consultations/{id}/patient-data"), &c.patient)
            .await
    );
    see!(
        "get",
        "/api/v1/auth/options",
        api.call(Method::GET, "/auth/options", None, None).await
    );
    see!(
        "get",
        "/api/v1/me/personal-data",
        api.get("/me/personal-data", &c.patient).await
    );
    see!(
        "get",
        "/api/v1/me/personal-data",
        api.get("/me/personal-data", &c.doctor).await
    );
    see!(
        "get",
        "/api/v1/patients/{id}/personal-data",
        api.get(
            &format!("/patients/{}/personal-data", c.patient_id),
            &c.admin
        )
        .await
    );
    see!(
        "get",
        "/api/v1/patients/{id}/personal-data",
        api.get(
            &format!("/patients/{}/personal-data", c.patient_id),
            &c.doctor
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/payment",
        api.post(
            &format!("/consultations/{id}/payment"),
            &c.service,
            json!({})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/payment",
        api.post(
            &format!("/consultations/{id}/payment"),
            &c.patient,
            json!({})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/cancel",
        api.post(
            &format!("/consultations/{id}/cancel"),
            &c.patient,
            json!({"reason": "передумал"})
        )
        .await
    );
    let soon = c.paid(5).await;
    see!(
        "post",
        "/api/v1/consultations/{id}/join",
        api.post(&format!("/consultations/{soon}/join"), &c.doctor, json!({}))
            .await
    );
    let joined = see!(
        "post",
        "/api/v1/consultations/{id}/join",
        api.post(
            &format!("/consultations/{soon}/join"),
            &c.patient,
            json!({})
        )
        .await
    );
    // The call's chat, with the join token.
    let call = joined["token"].as_str().unwrap().to_owned();
    see!(
        "get",
        "/api/v1/call/link",
        api.get("/call/link", &call).await
    );
    see!(
        "get",
        "/api/v1/call/link",
        api.get("/call/link", &c.patient).await
    );
    see!(
        "post",
        "/api/v1/call/messages",
        api.post(
            "/call/messages",
            &call,
            json!({"text": "Добрый день", "clientId": "oa-1"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/call/messages",
        api.post(
            "/call/messages",
            &call,
            json!({"text": "Добрый день", "clientId": "oa-1"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/call/messages",
        api.post(
            "/call/messages",
            &call,
            json!({"text": "", "clientId": "oa-2"})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/call/messages",
        api.get("/call/messages?after=0", &call).await
    );
    see!(
        "get",
        "/api/v1/call/messages",
        api.get("/call/messages", &c.patient).await
    );
    // This API keeps no files (no object store): the upload says so.
    see!(
        "post",
        "/api/v1/call/files",
        api.post(
            "/call/files?name=a.pdf&clientId=oa-3",
            &call,
            json!("%PDF-1.7")
        )
        .await
    );
    see!(
        "get",
        "/api/v1/call/files/{id}",
        api.get("/call/files/not-a-file", &call).await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/messages",
        api.get(&format!("/consultations/{soon}/messages"), &c.doctor)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/messages",
        api.get(&format!("/consultations/{soon}/messages"), &c.admin)
            .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/files/{file}",
        api.get(
            &format!("/consultations/{soon}/files/00000000-0000-4000-8000-000000000000"),
            &c.patient
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/complete",
        api.post(
            &format!("/consultations/{soon}/complete"),
            &c.doctor,
            json!({"conclusion": "Рекомендации"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/complete",
        api.post(
            &format!("/consultations/{soon}/complete"),
            &c.doctor,
            json!({"conclusion": "Ещё раз"})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/admin/overdue",
        api.get("/admin/overdue", &c.head).await
    );
    see!(
        "get",
        "/api/v1/audit",
        api.get("/audit?limit=50", &c.admin).await
    );
    see!("get", "/api/v1/audit", api.get("/audit", &c.patient).await);
    let later = c.booked(3 * 24 * 60).await;
    let other_slot = api.slot(&c.service, &c.doctor_id, 3 * 24 * 60 + 60).await;
    see!(
        "post",
        "/api/v1/consultations/{id}/reschedule",
        api.post(
            &format!("/consultations/{later}/reschedule"),
            &c.patient,
            json!({"slotId": other_slot})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/consultations/{id}/reschedule",
        api.post(
            &format!("/consultations/{later}/reschedule"),
            &c.patient,
            json!({"slotId": other_slot})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/admin/slot-conflicts",
        api.get("/admin/slot-conflicts", &c.admin).await
    );
    see!(
        "get",
        "/api/v1/admin/integrations/bitrix24",
        api.get("/admin/integrations/bitrix24", &c.admin).await
    );
    see!(
        "get",
        "/api/v1/admin/integrations/bitrix24",
        api.get("/admin/integrations/bitrix24", &c.patient).await
    );
    see!(
        "post",
        "/api/v1/admin/integrations/bitrix24/sync",
        api.post("/admin/integrations/bitrix24/sync", &c.admin, json!({}))
            .await
    );
    see!(
        "get",
        "/api/v1/admin/integrations/bitrix24/outbound",
        api.get(
            "/admin/integrations/bitrix24/outbound?status=failed",
            &c.admin
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/integrations/bitrix24/outbound/{id}/retry",
        api.post(
            "/admin/integrations/bitrix24/outbound/1/retry",
            &c.admin,
            json!({})
        )
        .await
    );
    let unknown = uuid::Uuid::new_v4();
    see!(
        "get",
        "/api/v1/recordings",
        api.get("/recordings", &c.admin).await
    );
    see!(
        "get",
        "/api/v1/recordings",
        api.get("/recordings", &c.patient).await
    );
    see!(
        "get",
        "/api/v1/recordings",
        api.get("/recordings?consultationId=not-an-id", &c.admin)
            .await
    );
    see!(
        "post",
        "/api/v1/recordings/{id}/download",
        api.post(
            &format!("/recordings/{unknown}/download"),
            &c.admin,
            json!({})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/recordings/{id}/file",
        api.call(
            Method::GET,
            &format!("/recordings/{unknown}/file?expires=1&signature=00"),
            None,
            None
        )
        .await
    );
    see!(
        "post",
        "/api/v1/recordings/{id}/legal-hold",
        api.post(
            &format!("/recordings/{unknown}/legal-hold"),
            &c.admin,
            json!({"hold": true})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/integrations/bitrix24/events",
        api.call(Method::POST, "/integrations/bitrix24/events", None, None)
            .await
    );
    see!(
        "post",
        "/api/v1/auth/logout",
        api.call(Method::POST, "/auth/logout", Some(&c.head), None)
            .await
    );

    // Payments (not configured here: the clinic marks bookings paid itself).
    let consultation = c.booked(4 * 24 * 60).await;
    see!(
        "post",
        "/api/v1/consultations/{id}/checkout",
        api.post(
            &format!("/consultations/{consultation}/checkout"),
            &c.patient,
            json!({"email": "p@example.com"})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/consultations/{id}/payments",
        api.get(
            &format!("/consultations/{consultation}/payments"),
            &c.patient
        )
        .await
    );
    see!(
        "get",
        "/api/v1/admin/payments",
        api.get("/admin/payments?status=succeeded", &c.admin).await
    );
    see!(
        "get",
        "/api/v1/admin/refunds",
        api.get("/admin/refunds", &c.head).await
    );
    see!(
        "get",
        "/api/v1/admin/receipts",
        api.get("/admin/receipts?overdue=true", &c.service).await
    );
    see!(
        "get",
        "/api/v1/admin/receipts",
        api.get("/admin/receipts", &c.patient).await
    );
    see!(
        "post",
        "/api/v1/payments/{id}/refunds",
        api.post(
            &format!("/payments/{unknown}/refunds"),
            &c.admin,
            json!({"amountKopecks": 100, "reason": "x"})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/integrations/yookassa/notifications",
        api.call(
            Method::POST,
            "/integrations/yookassa/notifications",
            None,
            None
        )
        .await
    );

    // Prices per doctor.
    see!(
        "put",
        "/api/v1/doctors/{id}/price",
        api.call(
            Method::PUT,
            &format!("/doctors/{}/price", c.doctor_id),
            Some(&c.admin),
            Some(json!({"priceKopecks": 200000}))
        )
        .await
    );
    see!(
        "put",
        "/api/v1/doctors/{id}/price",
        api.call(
            Method::PUT,
            &format!("/doctors/{}/price", c.doctor_id),
            Some(&c.service),
            Some(json!({"priceKopecks": null}))
        )
        .await
    );
    see!(
        "put",
        "/api/v1/doctors/{id}/price",
        api.call(
            Method::PUT,
            &format!("/doctors/{}/price", c.doctor_id),
            Some(&c.patient),
            Some(json!({"priceKopecks": 1}))
        )
        .await
    );

    // E-mail (not configured here: the list is empty, and still the clinic's only).
    see!(
        "get",
        "/api/v1/admin/emails",
        api.get("/admin/emails?kind=receipt&status=sent", &c.admin)
            .await
    );
    see!(
        "get",
        "/api/v1/admin/emails",
        api.get("/admin/emails?status=lost", &c.service).await
    );
    see!(
        "get",
        "/api/v1/admin/emails",
        api.get("/admin/emails", &c.doctor).await
    );

    see!(
        "post",
        "/api/v1/admin/emails/{id}/retry",
        api.post(
            &format!("/admin/emails/{unknown}/retry"),
            &c.admin,
            json!({})
        )
        .await
    );
    see!(
        "post",
        "/api/v1/admin/emails/{id}/retry",
        api.post(
            &format!("/admin/emails/{unknown}/retry"),
            &c.patient,
            json!({})
        )
        .await
    );

    // Notifications (none here; the clinic's only); a message's link, whatever it names.
    see!(
        "get",
        "/api/v1/admin/notifications",
        api.get(
            &format!("/admin/notifications?consultationId={unknown}&limit=5"),
            &c.admin
        )
        .await
    );
    see!(
        "get",
        "/api/v1/admin/notifications",
        api.get("/admin/notifications?limit=0", &c.service).await
    );
    see!(
        "get",
        "/api/v1/admin/notifications",
        api.get("/admin/notifications", &c.patient).await
    );
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}/notifications/open/{}",
            api.base,
            "0".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    seen.see(
        "get",
        "/api/v1/notifications/open/{token}",
        r.status(),
        &Value::Null,
    );

    // Without e-mail configured, notification settings and the messenger webhooks are 404s;
    // a patient may not resend (403). The configured paths are in messengers.rs.
    see!(
        "post",
        "/api/v1/admin/notifications/{id}/resend",
        api.post(
            &format!("/admin/notifications/{}/resend", uuid::Uuid::new_v4()),
            &c.patient,
            json!({})
        )
        .await
    );
    see!(
        "get",
        "/api/v1/me/notifications",
        api.get("/me/notifications", &c.patient).await
    );
    see!(
        "put",
        "/api/v1/me/notifications",
        api.put("/me/notifications", &c.patient, json!({"channels": null}))
            .await
    );
    see!(
        "post",
        "/api/v1/me/notifications/max",
        api.post("/me/notifications/max", &c.patient, json!({}))
            .await
    );
    see!(
        "delete",
        "/api/v1/me/notifications/max",
        api.call(
            Method::DELETE,
            "/me/notifications/max",
            Some(&c.patient),
            None
        )
        .await
    );
    see!(
        "post",
        "/api/v1/integrations/max/webhook",
        api.call(
            Method::POST,
            "/integrations/max/webhook",
            None,
            Some(json!({}))
        )
        .await
    );
    see!(
        "post",
        "/api/v1/integrations/edna/status",
        api.call(
            Method::POST,
            "/integrations/edna/status",
            None,
            Some(json!({}))
        )
        .await
    );

    let check = see!(
        "post",
        "/api/v1/connection-check",
        api.call(Method::POST, "/connection-check", None, Some(json!({})))
            .await
    );
    let claims = api
        .keys
        .verify(check["tokens"][0].as_str().unwrap())
        .unwrap();
    assert!(claims.room.starts_with("check-") && !claims.rec);

    // Every route was exercised at least once.
    for (method, path) in ROUTES {
        assert!(
            seen.checked
                .iter()
                .any(|c| c.starts_with(&format!("{method} {path} "))),
            "{method} {path} was not exercised"
        );
    }
}
