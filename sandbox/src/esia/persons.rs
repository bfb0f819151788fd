//! The stand's test persons: confirmed and unconfirmed accounts, with and without SNILS,
//! passport, OMS policy, e-mail and phone — what a clinic meets among real patients.

use serde_json::{Value, json};

/// A person on the stand.
#[derive(Debug, Clone)]
pub struct Person {
    pub oid: u64,
    pub last_name: &'static str,
    pub first_name: &'static str,
    pub middle_name: Option<&'static str>,
    /// `dd.MM.yyyy`, as ESIA writes dates.
    pub birth_date: &'static str,
    pub gender: &'static str,
    /// A confirmed account (`trusted`).
    pub trusted: bool,
    pub snils: Option<&'static str>,
    /// (series, number, issue date, issued by).
    pub passport: Option<(&'static str, &'static str, &'static str, &'static str)>,
    pub oms: Option<&'static str>,
    pub email: Option<&'static str>,
    pub mobile: Option<&'static str>,
    pub address: Option<&'static str>,
    /// One line on the login page.
    pub about: &'static str,
}

pub fn all() -> Vec<Person> {
    vec![
        Person {
            oid: 1_000_300_001,
            last_name: "Иванова",
            first_name: "Мария",
            middle_name: Some("Петровна"),
            birth_date: "14.03.1985",
            gender: "F",
            trusted: true,
            snils: Some("112-233-445 95"),
            passport: Some((
                "4510",
                "123456",
                "20.04.2005",
                "ОВД Тверского района г. Москвы",
            )),
            oms: Some("7755440011223344"),
            email: Some("ivanova@example.ru"),
            mobile: Some("+7(900)1112233"),
            address: Some("г. Москва, ул. Тверская, д. 1, кв. 10"),
            about: "подтверждённая, все данные",
        },
        Person {
            oid: 1_000_300_002,
            last_name: "Петров",
            first_name: "Сергей",
            middle_name: Some("Иванович"),
            birth_date: "02.11.1972",
            gender: "M",
            trusted: true,
            snils: Some("123-456-789 64"),
            passport: Some((
                "4003",
                "654321",
                "15.12.2017",
                "ГУ МВД России по г. Санкт-Петербургу",
            )),
            oms: None,
            email: None,
            mobile: Some("+7(911)2223344"),
            address: None,
            about: "подтверждённая, без полиса ОМС и e-mail",
        },
        Person {
            oid: 1_000_300_003,
            last_name: "Смирнов",
            first_name: "Алексей",
            middle_name: None,
            birth_date: "30.06.1999",
            gender: "M",
            trusted: false,
            snils: None,
            passport: None,
            oms: None,
            email: Some("smirnov@example.ru"),
            mobile: None,
            address: None,
            about: "упрощённая (не подтверждена), без СНИЛС",
        },
        Person {
            oid: 1_000_300_004,
            last_name: "Кузнецова",
            first_name: "Ольга",
            middle_name: Some("Викторовна"),
            birth_date: "09.01.1958",
            gender: "F",
            trusted: true,
            snils: Some("987-654-321 83"),
            passport: Some(("4602", "111222", "01.02.2003", "ОВД г. Подольска")),
            oms: Some("5099887766554433"),
            email: None,
            mobile: None,
            address: Some("Московская обл., г. Подольск, ул. Ленина, д. 5"),
            about: "подтверждённая, без e-mail и телефона",
        },
    ]
}

fn granted(scopes: &[String], any: &[&str]) -> bool {
    any.iter().any(|s| scopes.iter().any(|g| g == s))
}

/// `/rs/prns/{oid}` for `scopes`, with the collections inline when `embed` names them.
pub fn view(p: &Person, scopes: &[String], embed: &str, base: &str) -> Value {
    let mut v = json!({
        "stateFacts": ["EntityRoot"],
        "eTag": format!("{:X}", p.oid * 7919),
        "trusted": p.trusted,
        "status": "REGISTERED",
        "verifying": false,
        "citizenship": "RUS",
        "updatedOn": 1_765_000_000,
    });
    if granted(scopes, &["fullname"]) {
        v["lastName"] = json!(p.last_name);
        v["firstName"] = json!(p.first_name);
        if let Some(m) = p.middle_name {
            v["middleName"] = json!(m);
        }
    }
    if granted(scopes, &["birthdate"]) {
        v["birthDate"] = json!(p.birth_date);
    }
    if granted(scopes, &["gender"]) {
        v["gender"] = json!(p.gender);
    }
    if granted(scopes, &["snils"])
        && let Some(s) = p.snils
    {
        v["snils"] = json!(s);
    }
    // `embed` names the collection (`contacts.elements`); its own URL is the short path.
    let collection = |field: &str, name: &str, elements: Vec<Value>| {
        if embed.contains(&format!("{field}.elements")) {
            json!({"stateFacts": ["hasSize"], "size": elements.len(), "elements": elements})
        } else {
            let links: Vec<Value> = elements
                .iter()
                .map(|e| json!(format!("{base}/rs/prns/{}/{name}/{}", p.oid, e["id"])))
                .collect();
            json!({"stateFacts": ["hasSize"], "size": links.len(), "elements": links})
        }
    };
    let mut contacts = Vec::new();
    if granted(scopes, &["email", "contacts"])
        && let Some(e) = p.email
    {
        contacts.push(json!({"id": 14_216_773, "type": "EML", "vrfStu": "VERIFIED", "value": e, "eTag": "C1"}));
    }
    if granted(scopes, &["mobile", "contacts"])
        && let Some(m) = p.mobile
    {
        contacts.push(json!({"id": 14_216_774, "type": "MBT", "vrfStu": "VERIFIED", "value": m, "eTag": "C2"}));
    }
    if granted(scopes, &["email", "mobile", "contacts"]) {
        v["contacts"] = collection("contacts", "ctts", contacts);
    }
    let mut documents = Vec::new();
    if granted(scopes, &["id_doc"])
        && let Some((series, number, issued, by)) = p.passport
    {
        documents.push(
            json!({"id": 3571, "type": "RF_PASSPORT", "vrfStu": "VERIFIED",
            "series": series, "number": number, "issueDate": issued, "issueId": "770001",
            "issuedBy": by, "eTag": "D1"}),
        );
    }
    if granted(scopes, &["medical_doc"])
        && let Some(n) = p.oms
    {
        documents.push(
            json!({"id": 3572, "type": "MDCL_PLCY", "vrfStu": "VERIFIED",
            "number": n, "eTag": "D2"}),
        );
    }
    if granted(scopes, &["id_doc", "medical_doc"]) {
        v["documents"] = collection("documents", "docs", documents);
    }
    if granted(scopes, &["addresses"]) {
        let elements = p
            .address
            .map(|a| vec![json!({"id": 530, "type": "PRG", "addressStr": a, "countryId": "RUS", "eTag": "A1"})])
            .unwrap_or_default();
        v["addresses"] = collection("addresses", "addrs", elements);
    }
    v
}
