//! Vendors' published API documents, and a checker of JSON against their schemas — so the tests
//! can show that Vizit's requests and the stand-ins' answers follow the document, not memory.
//!
//! `spec/yookassa-openapi.json` is YooKassa's official OpenAPI 3.0 document
//! (`shared/reference/yookassa-openapi.yaml`, converted to JSON unchanged:
//! `python3 -c 'import sys, yaml, json; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"), ensure_ascii=False)' in.yaml out.json`).
//!
//! The checker covers what the document uses: `$ref`, `allOf`, `oneOf`/`anyOf` (with the
//! discriminator's mapping), `nullable`, `enum`, `type`, `required`, `properties`,
//! `additionalProperties`, `maxProperties`, string lengths, the simple patterns (`[class]{m,n}`,
//! `\d{n}`), numeric bounds and array sizes. A strict check also refuses a field the document
//! does not name (for what Vizit sends: a misspelt field would otherwise pass unnoticed).

use serde_json::{Map, Value};

/// An API document.
pub struct Spec {
    doc: Value,
}

const YOOKASSA: &str = include_str!("../spec/yookassa-openapi.json");

impl Spec {
    /// YooKassa API v3.
    pub fn yookassa() -> Spec {
        Spec {
            doc: serde_json::from_str(YOOKASSA).expect("the bundled document is JSON"),
        }
    }

    /// Check a request body of `method path` (the document's path template, e.g.
    /// `/payments/{payment_id}/capture`), strictly.
    pub fn request(&self, method: &str, path: &str, body: &Value) -> Result<(), String> {
        let op = self.operation(method, path)?;
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Err(format!(
                "{method} {path} takes no JSON body in the document"
            ));
        }
        self.check(schema, body, &format!("{method} {path} request"), true)
    }

    /// Does `method path` take a JSON body at all?
    pub fn has_body(&self, method: &str, path: &str) -> bool {
        self.operation(method, path)
            .is_ok_and(|op| !op["requestBody"]["content"]["application/json"].is_null())
    }

    /// Check an answer of `method path` with `status` against the documented response.
    pub fn response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let op = self.operation(method, path)?;
        let mut response = &op["responses"][status.to_string()];
        if response.is_null() {
            return Err(format!(
                "{method} {path} answered {status}, which the document does not list"
            ));
        }
        response = self.resolve(response);
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Err(format!("{method} {path} {status}: no documented body"));
        }
        self.check(schema, body, &format!("{method} {path} {status}"), false)
    }

    /// Check `value` against the named component schema.
    pub fn schema(&self, name: &str, value: &Value, strict: bool) -> Result<(), String> {
        let schema = &self.doc["components"]["schemas"][name];
        if schema.is_null() {
            return Err(format!("no schema {name} in the document"));
        }
        self.check(schema, value, name, strict)
    }

    fn operation(&self, method: &str, path: &str) -> Result<&Value, String> {
        let op = &self.doc["paths"][path][method.to_lowercase()];
        if op.is_null() {
            Err(format!("{method} {path} is not in the document"))
        } else {
            Ok(op)
        }
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            let mut target = &self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                target = &target[part];
            }
            schema = target;
        }
        schema
    }

    /// Every property an object schema names, through `allOf` and references.
    fn properties(&self, schema: &Value, out: &mut Map<String, Value>, open: &mut bool) {
        let schema = self.resolve(schema);
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                out.insert(k.clone(), v.clone());
            }
        }
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            *open = true;
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.properties(part, out, open);
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, strict: bool) -> Result<(), String> {
        let schema = self.resolve(schema);
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.check(part, value, at, false)?;
            }
            self.check_own(schema, value, at, false)?;
            if strict && let Some(o) = value.as_object() {
                let mut names = Map::new();
                let mut open = false;
                self.properties(schema, &mut names, &mut open);
                if !open {
                    for (k, v) in o {
                        let Some(field) = names.get(k) else {
                            return Err(format!("{at}: field {k} is not in the document"));
                        };
                        self.check(field, v, &format!("{at}.{k}"), true)?;
                    }
                }
            }
            return Ok(());
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                if let Some(d) = schema.get("discriminator")
                    && let Some(prop) = d["propertyName"].as_str()
                    && let Some(tag) = value.get(prop).and_then(Value::as_str)
                {
                    if let Some(target) = d["mapping"][tag].as_str() {
                        return self.check(&serde_json::json!({"$ref": target}), value, at, strict);
                    }
                    // No mapping: the option whose own discriminator mapping or enum names it.
                    for o in options {
                        let resolved = self.resolve(o);
                        if self.names_tag(resolved, prop, tag) {
                            return self.check(o, value, at, strict);
                        }
                    }
                }
                return if options
                    .iter()
                    .any(|o| self.check(o, value, at, strict).is_ok())
                {
                    Ok(())
                } else {
                    Err(format!("{at}: {value} matches none of the {key} options"))
                };
            }
        }
        self.check_own(schema, value, at, strict)
    }

    /// Does an option schema say its `prop` is `tag` (an enum of one, or a base's mapping)?
    fn names_tag(&self, schema: &Value, prop: &str, tag: &str) -> bool {
        let mut names = Map::new();
        let mut open = false;
        self.properties(schema, &mut names, &mut open);
        if let Some(p) = names.get(prop) {
            let p = self.resolve(p);
            if let Some(e) = p.get("enum").and_then(Value::as_array) {
                return e.len() == 1 && e[0] == tag;
            }
        }
        false
    }

    /// The checks of this schema itself (not of its `allOf` parts).
    fn check_own(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        strict: bool,
    ) -> Result<(), String> {
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
        let ty = schema.get("type").and_then(Value::as_str).or_else(|| {
            (schema.get("properties").is_some() || schema.get("additionalProperties").is_some())
                .then_some("object")
        });
        let Some(ty) = ty else {
            return Ok(());
        };
        let fits = match ty {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !fits {
            return Err(format!("{at}: {value} is not of type {ty}"));
        }
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                return Err(format!("{at}: {s:?} is shorter than {min}"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                return Err(format!("{at}: {s:?} is longer than {max}"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && simple_pattern(p, s) == Some(false)
            {
                return Err(format!("{at}: {s:?} does not match {p}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                return Err(format!("{at}: {n} is below {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                return Err(format!("{at}: {n} is above {max}"));
            }
        }
        if let Some(items) = value.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                return Err(format!("{at}: fewer than {min} items"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                return Err(format!("{at}: more than {max} items"));
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    self.check(item, v, &format!("{at}[{i}]"), strict)?;
                }
            }
        }
        if let Some(o) = value.as_object() {
            for r in schema["required"].as_array().into_iter().flatten() {
                let name = r.as_str().unwrap_or_default();
                if !o.contains_key(name) {
                    return Err(format!("{at}: required field {name} is missing"));
                }
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && o.len() as u64 > max
            {
                return Err(format!("{at}: more than {max} fields"));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in o {
                match (properties.and_then(|p| p.get(k)), additional) {
                    (Some(field), _) => self.check(field, v, &format!("{at}.{k}"), strict)?,
                    (None, Some(Value::Bool(false))) => {
                        return Err(format!("{at}: field {k} is not allowed"));
                    }
                    (None, Some(extra)) if extra.is_object() => {
                        self.check(extra, v, &format!("{at}.{k}"), strict)?
                    }
                    (None, _) if strict && schema.get("allOf").is_none() => {
                        return Err(format!("{at}: field {k} is not in the document"));
                    }
                    (None, _) => {}
                }
            }
        }
        Ok(())
    }
}

/// A pattern of the forms the document uses most (`[class]{m,n}`, `[class]{n}`, `\d{m,n}`),
/// matched against the whole string. `None` for any other shape (not checked).
fn simple_pattern(pattern: &str, s: &str) -> Option<bool> {
    let (class, rest): (Box<dyn Fn(char) -> bool>, &str) =
        if let Some(rest) = pattern.strip_prefix("\\d") {
            (Box::new(|c: char| c.is_ascii_digit()), rest)
        } else {
            let inner = pattern.strip_prefix('[')?;
            let (body, rest) = inner.split_once(']')?;
            let chars: Vec<char> = body.chars().collect();
            let mut ranges = Vec::new();
            let mut i = 0;
            while i < chars.len() {
                if i + 2 < chars.len() && chars[i + 1] == '-' {
                    ranges.push((chars[i], chars[i + 2]));
                    i += 3;
                } else {
                    ranges.push((chars[i], chars[i]));
                    i += 1;
                }
            }
            (
                Box::new(move |c: char| ranges.iter().any(|(a, b)| (*a..=*b).contains(&c))),
                rest,
            )
        };
    let counts = rest.strip_prefix('{')?.strip_suffix('}')?;
    let (min, max) = match counts.split_once(',') {
        Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
        None => {
            let n = counts.parse::<usize>().ok()?;
            (n, n)
        }
    };
    let n = s.chars().count();
    Some((min..=max).contains(&n) && s.chars().all(class))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn simple_patterns_match_the_whole_string() {
        assert_eq!(simple_pattern("[0-9]{4,15}", "79000000000"), Some(true));
        assert_eq!(simple_pattern("[0-9]{4,15}", "+79000000000"), Some(false));
        assert_eq!(simple_pattern("\\d{10}", "1234567890"), Some(true));
        assert_eq!(simple_pattern("[A-Z]{3}", "RUB"), Some(true));
        assert_eq!(simple_pattern("(.)([0-9]+)(.)", "x"), None);
    }

    #[test]
    fn the_document_checks_a_payment_request_strictly() {
        let spec = Spec::yookassa();
        let ok = json!({
            "amount": {"value": "1500.00", "currency": "RUB"},
            "capture": true,
            "confirmation": {"type": "redirect", "return_url": "https://clinic.example/pay"},
            "description": "Телеконсультация",
            "metadata": {"consultation_id": "c-1"},
            "receipt": {"customer": {"email": "p@example.com"}, "items": [{
                "description": "Консультация", "quantity": 1,
                "amount": {"value": "1500.00", "currency": "RUB"}, "vat_code": 1,
                "payment_subject": "service", "payment_mode": "full_prepayment", "measure": "piece"}]}
        });
        assert_eq!(spec.request("POST", "/payments", &ok), Ok(()));
        let mut misspelt = ok.clone();
        misspelt["recipt"] = json!({});
        assert!(
            spec.request("POST", "/payments", &misspelt)
                .unwrap_err()
                .contains("recipt")
        );
        let mut bad_vat = ok.clone();
        bad_vat["receipt"]["items"][0]["vat_code"] = json!(13);
        assert!(spec.request("POST", "/payments", &bad_vat).is_err());
        let mut number_amount = ok.clone();
        number_amount["amount"]["value"] = json!(1500);
        assert!(spec.request("POST", "/payments", &number_amount).is_err());
        let mut bad_measure = ok;
        bad_measure["receipt"]["items"][0]["measure"] = json!("pieces");
        assert!(spec.request("POST", "/payments", &bad_measure).is_err());
    }
}
